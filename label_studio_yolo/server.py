"""The Flask app: label-studio-ml's server, made project-aware.

label-studio-ml 1.0.9 in its V2 mode (the one Label Studio >= 1.5 speaks) keeps ONE model object for every project
and does not hand ``/predict``'s ``label_config`` to it, so two projects with different configs would get each
other's labels. We keep its app (routes, ``/health``, error handling) and replace the ``/setup`` and ``/predict``
views with ones that keep a model per project, built from that project's config and serving that project's
published version. ``/webhook`` (and the older ``/train``) hand Label Studio's events to the training scheduler;
``/training/status`` shows versions and jobs, and ``/versions`` a project's trained versions.

Example:
    >>> app = create_app(YOLOBackend)
    >>> app.test_client().post("/setup", json={"project": "1.1700000000", "schema": config}).json
    {'model_version': 'yolo11n-5b3a2f0c'}
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from typing import Any

from flask import Flask, jsonify, request
from flask.wrappers import Response

from label_studio_yolo.guard import RequestGuard, error_response, too_large_message
from label_studio_yolo.label_config import LabelConfigError, check_label_config
from label_studio_yolo.settings import BackendSettings, current_settings
from label_studio_yolo.training.factory import scheduler_for
from label_studio_yolo.training.scheduler import START_TRAINING, Scheduler, project_id_of
from label_studio_yolo.training.status import versions_status
from label_studio_yolo.versions import VersionStore
from label_studio_yolo.weights import WeightsError, file_stamps

logger = logging.getLogger(__name__)

ML_BACKEND_V2 = "true"
"""label-studio-ml's ``LABEL_STUDIO_ML_BACKEND_V2`` switch, set explicitly: Label Studio >= 1.5 speaks V2."""


class ProjectModels:
    """One model per Label Studio project, rebuilt when its config, credentials, settings or weight files change."""

    def __init__(self, model_class: type[Any]) -> None:
        self.model_class = model_class
        self._models: dict[str, tuple[tuple[Any, ...], Any, tuple[Any, ...]]] = {}
        self._credentials: dict[str, tuple[str | None, str | None]] = {}
        self._lock = threading.Lock()

    def remember_credentials(self, project: str, hostname: str | None, access_token: str | None) -> None:
        """Keep what ``/setup`` sent, for ``/predict`` calls of the same project."""
        with self._lock:
            self._credentials[project] = (hostname or None, access_token or None)

    def get(self, project: str, label_config: str) -> Any:
        """The project's model for ``label_config``, built on first use or after a change.

        A change is cheap to see: the published version's pointer and every weight file in use are only ``stat``-ed.
        """
        settings = current_settings()
        project_id = project_id_of({"project": project})
        with self._lock:
            hostname, access_token = self._credentials.get(project, (None, None))
            published = VersionStore(settings.model_dir).current_stamp(project_id) if project_id is not None else None
            # The dump masks secrets: the VLM endpoint (its key with it) is compared whole, as its client is built.
            key = (label_config, hostname, access_token, settings.model_dump_json(), settings.vlm, published)
            cached = self._models.get(project)
            if cached is not None and cached[0] == key and cached[2] == file_stamps(cached[1].weight_files):
                return cached[1]
            check_label_config(label_config)  # label-studio-ml's base class would fail on it with a bare 500
            model = self.model_class(
                label_config=label_config, hostname=hostname, access_token=access_token, project_id=project_id
            )
            self._models[project] = (key, model, file_stamps(model.weight_files))
            logger.info("Project %s: serving model version %s", project, model.model_version)
            return model

    def label_config_of(self, project: str) -> str | None:
        """The config the project's model was last built from, if any."""
        with self._lock:
            cached = self._models.get(project)
        return cached[0][0] if cached else None


def _error(message: str, status: int) -> tuple[Response, int]:
    logger.error(message)
    return jsonify({"status": "error", "error": message}), status


def _json_body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _project_of_request() -> str:
    body = _json_body() or {}
    return str(body.get("project") or "?")


def register_error_handlers(app: Flask) -> None:
    """Configuration errors answer with their message (and are logged), instead of a bare 500."""
    app.register_error_handler(WeightsError, lambda error: _error(f"Project {_project_of_request()}: {error}", 500))
    app.register_error_handler(LabelConfigError, lambda error: _error(f"Project {_project_of_request()}: {error}", 400))


def register_views(app: Flask, models: ProjectModels, scheduler: Scheduler) -> None:
    """Replace label-studio-ml's model views with project-aware ones."""

    def body_problem(route: str, key: str, kind: type, what: str) -> str | None:
        """Why the request is not a JSON object whose ``key`` holds ``what`` (of type ``kind``); None when it is."""
        from label_studio_yolo.predictor import json_type  # imports torch: not at module import

        if not request.is_json:
            return f"{route} expects Content-Type application/json, got {request.mimetype or 'none'}"
        body = request.get_json(silent=True)
        if body is None and request.get_data().strip() != b"null":
            return f"{route}: the body is not valid JSON"
        if not isinstance(body, dict):
            return f"{route} expects a JSON object with {key!r}, got a JSON {json_type(body)}"
        if not isinstance(body.get(key), kind):
            found = f"a JSON {json_type(body[key])}" if key in body else "missing"
            return f"{route} expects {key!r} to be {what}; it is {found}"
        return None

    def setup() -> Any:
        problem = body_problem("/setup", "schema", str, "the labelling config (a string)")
        if problem:
            return _error(problem, 400)
        body = _json_body() or {}
        project = str(body.get("project") or "")
        models.remember_credentials(project, body.get("hostname"), body.get("access_token"))
        return jsonify({"model_version": models.get(project, body["schema"]).model_version})

    def predict() -> Any:
        problem = body_problem("/predict", "tasks", list, "a list of tasks")
        if problem:
            return _error(problem, 400)
        body = _json_body() or {}
        project = str(body.get("project") or "")
        label_config = body.get("label_config") or models.label_config_of(project)
        if label_config is None:
            return _error(f"Project {project}: /predict has no 'label_config' and /setup was not called", 400)
        if not isinstance(label_config, str):
            return _error(f"Project {project}: 'label_config' must be the labelling config (a string)", 400)
        model = models.get(project, label_config)
        results = model.predict(body["tasks"])
        predicted = sum(1 for entry in results if entry)
        logger.info("Project %s: predicted %d of %d tasks", project, predicted, len(results))
        return jsonify({"results": results, "model_version": model.model_version})

    def handle_event(action: str, body: dict[str, Any]) -> Any:
        try:
            answer = scheduler.on_event(action, body)
        except Exception as error:  # Redis down or slow: answer at once, Label Studio keeps the annotations
            return _error(f"Training request {action} for project {project_id_of(body)} failed: {error!r}", 503)
        logger.info("Event %s: %s", action, answer)
        return jsonify(answer), 200

    def webhook() -> Any:
        body = _json_body()
        if body is None or not isinstance(body.get("action"), str):
            return _error("/webhook expects a JSON object with an 'action'", 400)
        return handle_event(body["action"], body)

    def train() -> Any:
        return handle_event(START_TRAINING, _json_body() or {})

    def is_training() -> Any:
        project = project_id_of({"project": request.args.get("project")})
        jobs = _jobs(scheduler, project) if project is not None else []
        return jsonify({"is_training": any(job.get("status") == "started" for job in jobs)})

    def training_status() -> Any:
        settings = BackendSettings()
        store = VersionStore(settings.model_dir)
        asked = project_id_of({"project": request.args.get("project")})
        projects = [asked] if asked is not None else store.projects()
        return jsonify({str(p): {**versions_status(store, p), "jobs": _jobs(scheduler, p)} for p in projects})

    def versions() -> Any:
        project = project_id_of(_json_body() or {})
        if project is None:
            return _error("/versions expects a JSON object with the 'project' id", 400)
        store = VersionStore(current_settings().model_dir)
        current = store.current(project)
        names = [version.name for version in store.versions(project)]
        return jsonify({"versions": names, "current": current.name if current else None})

    app.view_functions["_setup"] = setup
    app.view_functions["_predict"] = predict
    app.view_functions["webhook"] = webhook
    app.view_functions["_train"] = train
    app.view_functions["_is_training"] = is_training
    app.view_functions["get_version"] = versions  # label-studio-ml's lists its own folder, tracebacks in its 500s
    if "training_status" not in app.view_functions:  # label-studio-ml's app is a module-level singleton
        app.add_url_rule("/training/status", "training_status", methods=["GET"])
    app.view_functions["training_status"] = training_status


def _jobs(scheduler: Scheduler, project: int) -> list[dict[str, Any]]:
    """The scheduler's jobs for ``project``; an unreachable Redis shows as an error entry, not a failed request."""
    try:
        return scheduler.jobs(project)
    except Exception as error:  # status must work while Redis is down
        return [{"status": "unknown", "error": repr(error)}]


def create_app(model_class: type[Any]) -> Flask:
    """The WSGI app serving ``model_class`` (a ``LabelStudioMLBase`` subclass) per project."""
    settings = BackendSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s")
    os.environ["LABEL_STUDIO_ML_BACKEND_V2"] = ML_BACKEND_V2
    from label_studio_ml.api import init_app  # imports torch and rq: keep it out of module import

    app: Flask = init_app(model_class=model_class)
    register_views(app, ProjectModels(model_class), scheduler_for(settings))
    register_error_handlers(app)
    guard(app, settings)
    return app


def guard(app: Flask, settings: BackendSettings) -> None:
    """Put HTTP Basic auth (if BASIC_AUTH_USER/PASS are set) and MAX_REQUEST_BYTES in front of every route.

    label-studio-ml's app is a module-level singleton: a guard from an earlier ``create_app`` is replaced, not
    stacked. Its request log at DEBUG printed every header, the ``Authorization`` header too: ours leaves it out.
    """
    inner = app.wsgi_app
    while isinstance(inner, RequestGuard):
        inner = inner.app
    app.wsgi_app = RequestGuard(inner, settings.basic_auth, settings.max_request_bytes)  # type: ignore[method-assign]
    # Its own level, not the root logger's: OpenVINO's convert_model sets the root level to ERROR while it runs in a
    # process. A server exports in a child process now (runtimes._export_in_child); this keeps refusals logged anyway.
    logging.getLogger(RequestGuard.__module__).setLevel(settings.log_level.upper())
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.register_error_handler(413, lambda _error: error_response(413, too_large_message(settings.max_request_bytes)))
    hooks = app.before_request_funcs.setdefault(None, [])
    hooks[:] = [_log_request if getattr(hook, "__name__", "") == "log_request_info" else hook for hook in hooks]
    logger.info("HTTP Basic auth %s", "required" if settings.basic_auth else "off (BASIC_AUTH_USER/PASS unset)")


def _log_request() -> None:
    """label-studio-ml's request log at DEBUG, without the credentials of the ``Authorization`` header."""
    if logger.isEnabledFor(logging.DEBUG):
        headers = {name: "<hidden>" if name.lower() == "authorization" else value for name, value in request.headers}
        logger.debug("Request headers: %s", headers)
        logger.debug("Request body: %s", request.get_data())


def preload_base_weights() -> threading.Thread:
    """Load and warm up ``MODEL_PATH`` in a background thread of a starting server.

    The first model a process loads pays for initialising torch and ultralytics (about 3 s on 2 cores), and Label
    Studio gives ``/setup`` only 3 s: without this, connecting a fresh backend can fail with a read timeout. A
    failure here is only logged; ``/setup`` reports it to Label Studio as usual.
    """
    from label_studio_yolo.weights import load_weights

    def load() -> None:
        settings = BackendSettings()
        try:
            load_weights(settings.model_root, settings.model_path, replace(settings.runtime, background_export=True))
        except Exception as error:  # logged, and raised again by the /setup that needs the weights
            logger.warning("Weights %s not preloaded: %s", settings.model_path, error)

    thread = threading.Thread(target=load, name="preload-weights", daemon=True)
    thread.start()
    return thread
