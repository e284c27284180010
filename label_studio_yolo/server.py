"""The Flask app: label-studio-ml's server, made project-aware.

label-studio-ml 1.0.9 in its V2 mode (the one Label Studio >= 1.5 speaks) keeps ONE model object for every project
and does not hand ``/predict``'s ``label_config`` to it, so two projects with different configs would get each
other's labels. We keep its app (routes, ``/health``, error handling) and replace the ``/setup`` and ``/predict``
views with ones that keep a model per project, built from that project's config. ``/webhook`` and ``/train``
accept Label Studio's events and train nothing yet.

Example:
    >>> app = create_app(YOLOBackend)
    >>> app.test_client().post("/setup", json={"project": "1.1700000000", "schema": config}).json
    {'model_version': 'yolo11n-5b3a2f0c'}
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from flask import Flask, jsonify, request
from flask.wrappers import Response

from label_studio_yolo.label_config import LabelConfigError
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.weights import WeightsError, weights_fingerprint

logger = logging.getLogger(__name__)

ML_BACKEND_V2 = "true"
"""label-studio-ml's ``LABEL_STUDIO_ML_BACKEND_V2`` switch, set explicitly: Label Studio >= 1.5 speaks V2."""


class ProjectModels:
    """One model per Label Studio project, rebuilt when its config, credentials, settings or weight file change."""

    def __init__(self, model_class: type[Any]) -> None:
        self.model_class = model_class
        self._models: dict[str, tuple[tuple[Any, ...], Any]] = {}
        self._credentials: dict[str, tuple[str | None, str | None]] = {}
        self._lock = threading.Lock()

    def remember_credentials(self, project: str, hostname: str | None, access_token: str | None) -> None:
        """Keep what ``/setup`` sent, for ``/predict`` calls of the same project."""
        with self._lock:
            self._credentials[project] = (hostname or None, access_token or None)

    def get(self, project: str, label_config: str) -> Any:
        """The project's model for ``label_config``, built on first use or after a change."""
        settings = BackendSettings()
        with self._lock:
            hostname, access_token = self._credentials.get(project, (None, None))
            weights = weights_fingerprint(settings.model_root, settings.model_path)
            key = (label_config, hostname, access_token, settings.model_dump_json(), weights)
            cached = self._models.get(project)
            if cached is not None and cached[0] == key:
                return cached[1]
            model = self.model_class(label_config=label_config, hostname=hostname, access_token=access_token)
            self._models[project] = (key, model)
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


def register_views(app: Flask, models: ProjectModels) -> None:
    """Replace label-studio-ml's model views with project-aware ones."""

    def setup() -> Any:
        body = _json_body()
        if body is None or not isinstance(body.get("schema"), str):
            return _error("/setup expects a JSON object with 'project' and 'schema' (the labelling config)", 400)
        project = str(body.get("project") or "")
        models.remember_credentials(project, body.get("hostname"), body.get("access_token"))
        return jsonify({"model_version": models.get(project, body["schema"]).model_version})

    def predict() -> Any:
        body = _json_body()
        if body is None or not isinstance(body.get("tasks"), list):
            return _error("/predict expects a JSON object with a 'tasks' list", 400)
        project = str(body.get("project") or "")
        label_config = body.get("label_config") or models.label_config_of(project)
        if not isinstance(label_config, str):
            return _error(f"Project {project}: /predict has no 'label_config' and /setup was not called", 400)
        model = models.get(project, label_config)
        results = model.predict(body["tasks"])
        predicted = sum(1 for entry in results if entry)
        logger.info("Project %s: predicted %d of %d tasks", project, predicted, len(results))
        return jsonify({"results": results, "model_version": model.model_version})

    def webhook() -> Any:
        body = _json_body() or {}
        logger.info("Event %s accepted; training is not available in this version", body.get("action"))
        return jsonify({"status": "ignored", "reason": "training is not available in this version"}), 200

    def is_training() -> Any:
        return jsonify({"is_training": False})

    app.view_functions["_setup"] = setup
    app.view_functions["_predict"] = predict
    app.view_functions["webhook"] = webhook
    app.view_functions["_train"] = webhook
    app.view_functions["_is_training"] = is_training


def create_app(model_class: type[Any]) -> Flask:
    """The WSGI app serving ``model_class`` (a ``LabelStudioMLBase`` subclass) per project."""
    settings = BackendSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s")
    os.environ["LABEL_STUDIO_ML_BACKEND_V2"] = ML_BACKEND_V2
    from label_studio_ml.api import init_app  # imports torch and rq: keep it out of module import

    app: Flask = init_app(model_class=model_class)
    register_views(app, ProjectModels(model_class))
    register_error_handlers(app)
    return app
