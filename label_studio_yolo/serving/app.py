"""The backend's Flask app: every route Label Studio calls, on a current Flask, built by an app factory.

label-studio-ml 1.0.9 pins Flask 1.1.2 and keeps one module-level app and one model object for every project; this
app is the project's own (each :func:`create_app` call makes a new one) and keeps a model per project
(:mod:`label_studio_yolo.serving.backends`). Routes and answers are label-studio-ml's
(:mod:`~label_studio_yolo.serving.routes`, :mod:`~label_studio_yolo.serving.version_routes`); every error, an unknown
route or an unreadable body included, is JSON (:mod:`~label_studio_yolo.serving.errors`).

Example:
    >>> app = create_app(YOLOBackend)
    >>> app.test_client().post("/setup", json={"project": "1.1700000000", "schema": config}).json
    {'model_version': 'yolo11n-5b3a2f0c'}
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from flask import Flask

from label_studio_yolo.inference.runtimes import runtime_for
from label_studio_yolo.serving.backends import ProjectBackends
from label_studio_yolo.serving.errors import register_error_handlers
from label_studio_yolo.serving.guard import RequestGuard
from label_studio_yolo.serving.page_routes import pages
from label_studio_yolo.serving.routes import Served, serve
from label_studio_yolo.serving.version_routes import versions
from label_studio_yolo.settings import BackendSettings, current_settings
from label_studio_yolo.training.factory import scheduler_for

logger = logging.getLogger(__name__)


def create_app(model_class: type[Any]) -> Flask:
    """A new WSGI app serving ``model_class`` (a ``LabelStudioMLBase`` subclass) per project.

    HTTP Basic auth (``BASIC_AUTH_USER``/``PASS``) and ``MAX_REQUEST_BYTES`` guard every route.
    """
    settings = current_settings()
    configure_logging(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep label-studio-ml's key order
    serve(app, Served(ProjectBackends(model_class), scheduler_for(settings), model_class.__name__))
    app.register_blueprint(versions)
    app.register_blueprint(pages)
    register_error_handlers(app, settings.max_request_bytes)
    app.wsgi_app = RequestGuard(app.wsgi_app, settings.basic_auth, settings.max_request_bytes)  # type: ignore[method-assign]
    _warn_about_settings(settings)
    return app


def configure_logging(settings: BackendSettings) -> None:
    """The backend's log format and ``LOG_LEVEL`` on the root logger (a server's logging set up once)."""
    from label_studio_yolo.logging_setup import configure_root_logging  # shared with rq workers, which lack Flask

    # The guard's own level, not only the root's: OpenVINO's converter sets the root level to ERROR while it runs.
    configure_root_logging(settings.log_level, RequestGuard.__module__)


def _warn_about_settings(settings: BackendSettings) -> None:
    logger.info("HTTP Basic auth %s", "required" if settings.basic_auth else "off (BASIC_AUTH_USER/PASS unset)")
    if settings.label_studio_api_key and not settings.label_studio_url:
        logger.warning(
            "LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not: the key is not used (it goes only to the Label "
            "Studio you name). Set LABEL_STUDIO_URL to Label Studio's URL"
        )


def preload_base_weights() -> threading.Thread:
    """Load and warm up ``MODEL_PATH`` in a background thread of a starting server.

    The first model a process loads pays for initialising torch and ultralytics, which could exceed Label Studio's
    ``/setup`` timeout. A failure here is only logged; ``/setup`` reports it to Label Studio as usual.
    """
    from label_studio_yolo.inference.weights import load_weights

    def load() -> None:
        settings = current_settings()
        try:
            load_weights(
                settings.model_root,
                settings.model_path,
                replace(runtime_for(settings), background_export=True),
                download=True,
            )
        except Exception as error:  # logged, and raised again by the /setup that needs the weights
            logger.warning("Weights %s not preloaded: %s", settings.model_path, error)

    thread = threading.Thread(target=load, name="preload-weights", daemon=True)
    thread.start()
    return thread
