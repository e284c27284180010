"""The routes Label Studio calls to predict (``/``, ``/health``, ``/setup``, ``/predict``, ``/metrics``) and to train
(``/webhook``, ``/train``, ``/is_training``, ``/training/status``), with label-studio-ml's answers.

Views find the app's per-project backends and training scheduler in ``app.extensions`` (:func:`serve`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from label_studio_yolo.logsafe import printable
from label_studio_yolo.projects import project_id, project_id_of
from label_studio_yolo.serving.backends import ProjectBackends
from label_studio_yolo.serving.errors import error_answer
from label_studio_yolo.serving.requests import BadRequestBody, json_body, project_key, required_project
from label_studio_yolo.serving.version_routes import version_store
from label_studio_yolo.training.scheduler import ANNOTATION_EVENTS, START_TRAINING, JobState, Scheduler
from label_studio_yolo.training.status import versions_status

logger = logging.getLogger(__name__)

ML_BACKEND_V2 = "true"
"""What ``/health`` reports as ``v2``: this backend speaks label-studio-ml's V2 protocol (Label Studio >= 1.5)."""

EXTENSION = "label_studio_yolo"
"""The key of :class:`Served` in ``app.extensions``."""

predictions = Blueprint("predictions", __name__)
training = Blueprint("training", __name__)


@dataclass(frozen=True)
class Served:
    """What the views of one app serve: a model per project, the training scheduler and the model class's name."""

    backends: ProjectBackends
    scheduler: Scheduler
    model_name: str


def serve(app: Flask, served: Served) -> None:
    """Register the prediction and training routes on ``app``, serving ``served``."""
    app.extensions[EXTENSION] = served
    app.register_blueprint(predictions)
    app.register_blueprint(training)


def _served() -> Served:
    served: Served = current_app.extensions[EXTENSION]
    return served


def current_scheduler() -> Scheduler:
    """The training scheduler of the app handling this request."""
    return _served().scheduler


@predictions.get("/")
@predictions.get("/health")
def health() -> ResponseReturnValue:
    return jsonify({"status": "UP", "model_class": _served().model_name, "v2": ML_BACKEND_V2})


@predictions.post("/setup")
def setup() -> ResponseReturnValue:
    body = json_body("schema", str, "the labelling config (a string)")
    model = _served().backends.setup(project_key(body), body["schema"], body.get("hostname"), body.get("access_token"))
    return jsonify({"model_version": model.model_version})


@predictions.post("/predict")
def predict() -> ResponseReturnValue:
    body = json_body("tasks", list, "a list of tasks")
    project, backends = project_key(body), _served().backends
    label_config = body.get("label_config") or backends.label_config_of(project)
    if label_config is None:
        raise BadRequestBody(f"Project {printable(project)}: /predict has no 'label_config' and /setup was not called")
    if not isinstance(label_config, str):
        raise BadRequestBody(f"Project {printable(project)}: 'label_config' must be the labelling config (a string)")
    model = backends.get(project, label_config)
    results = model.predict(body["tasks"])
    predicted = sum(1 for entry in results if entry)
    logger.info("Project %s: predicted %d of %d tasks", printable(project), predicted, len(results))
    return jsonify({"results": results, "model_version": model.model_version})


@predictions.get("/metrics")
def metrics() -> ResponseReturnValue:
    return jsonify({})


@training.post("/webhook")
def webhook() -> ResponseReturnValue:
    body = json_body("action", str, "the event's name (a string)")
    return _handle_event(body["action"], body)


@training.post("/train")
def train() -> ResponseReturnValue:
    return _handle_event(START_TRAINING, json_body())


@training.get("/is_training")
def is_training() -> ResponseReturnValue:
    project = project_id(request.args.get("project"))
    jobs = _jobs(project) if project is not None else []
    return jsonify({"is_training": any(job.get("status") == JobState.STARTED for job in jobs)})


@training.get("/training/status")
def training_status() -> ResponseReturnValue:
    store, asked = version_store(), request.args.get("project")
    projects = store.projects() if asked is None else [required_project(asked)]
    return jsonify({str(p): {**versions_status(store, p), "jobs": _jobs(p)} for p in projects})


def _handle_event(action: str, body: dict[str, Any]) -> ResponseReturnValue:
    if (action == START_TRAINING or action in ANNOTATION_EVENTS) and body.get("project") is not None:
        required_project(body["project"])
    try:
        answer = _served().scheduler.on_event(action, body)
    except Exception as error:  # Redis down or slow: answer at once, Label Studio keeps the annotations
        message = f"Training request {printable(action)} for project {project_id_of(body)} failed: {error!r}"
        return error_answer(message, 503)
    logger.info("Event %s: %s", printable(action), answer)
    return jsonify(answer), 200


def _jobs(project: int) -> list[dict[str, Any]]:
    """The scheduler's jobs for ``project``; an unreachable Redis shows as an error entry, not a failed request."""
    try:
        return _served().scheduler.jobs(project)
    except Exception as error:  # status must work while Redis is down
        return [{"status": "unknown", "error": repr(error)}]
