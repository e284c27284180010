"""The backend's Flask app: every route Label Studio calls, on a current Flask, built by an app factory.

label-studio-ml 1.0.9 pins Flask 1.1.2 and keeps one module-level app and one model object for every project; this
app is the project's own (each :func:`create_app` call makes a new one) and keeps a model per project
(:mod:`label_studio_yolo.serving.backends`). Routes and answers are label-studio-ml's:

- ``GET /`` and ``/health``: ``{"status": "UP", ...}``; ``GET /metrics``: ``{}``.
- ``POST /setup``: ``{"model_version": ...}``; ``POST /predict``: ``{"results": [...], "model_version": ...}``.
- ``POST /webhook`` and ``/train``: Label Studio's events, to the training scheduler; ``GET /is_training``.
- ``GET``/``POST /versions``: trained versions (a project's, or every project's for Label Studio's bare ``GET``);
  ``POST /versions/pin`` and ``/versions/unpin`` choose the served one; ``GET /training/status``: versions and jobs.

Every error, an unknown route or an unreadable body included, is JSON: ``{"status": "error", "error": "..."}``.

Example:
    >>> app = create_app(YOLOBackend)
    >>> app.test_client().post("/setup", json={"project": "1.1700000000", "schema": config}).json
    {'model_version': 'yolo11n-5b3a2f0c'}
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from typing import Any

from flask import Flask, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from label_studio_yolo.credentials import SetupRefused
from label_studio_yolo.inference.runtimes import runtime_for
from label_studio_yolo.inference.weights import WeightsError
from label_studio_yolo.label_config import LabelConfigError
from label_studio_yolo.logsafe import json_type, printable
from label_studio_yolo.projects import project_id, project_id_of
from label_studio_yolo.serving.backends import ProjectBackends
from label_studio_yolo.serving.guard import RequestGuard, error_response, too_large_message
from label_studio_yolo.settings import BackendSettings, current_settings
from label_studio_yolo.training.factory import scheduler_for
from label_studio_yolo.training.scheduler import ANNOTATION_EVENTS, START_TRAINING, Scheduler
from label_studio_yolo.training.status import versions_status
from label_studio_yolo.versions import VersionNotFound, VersionStore

logger = logging.getLogger(__name__)

ML_BACKEND_V2 = "true"
"""What ``/health`` reports as ``v2``: this backend speaks label-studio-ml's V2 protocol (Label Studio >= 1.5)."""

MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects a request body may have (Label Studio's tasks nest about 8 deep)."""


class BadRequestBody(Exception):
    """The request body is not what the route takes; the message says what is wrong."""


def create_app(model_class: type[Any]) -> Flask:
    """A new WSGI app serving ``model_class`` (a ``LabelStudioMLBase`` subclass) per project.

    HTTP Basic auth (``BASIC_AUTH_USER``/``PASS``) and ``MAX_REQUEST_BYTES`` guard every route.
    """
    settings = current_settings()
    configure_logging(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep label-studio-ml's key order
    models = app.extensions["label_studio_yolo"] = ProjectBackends(model_class)
    _register_routes(app, models, scheduler_for(settings), model_class.__name__)
    _register_error_handlers(app, settings)
    app.wsgi_app = RequestGuard(app.wsgi_app, settings.basic_auth, settings.max_request_bytes)  # type: ignore[method-assign]
    _warn_about_settings(settings)
    return app


def configure_logging(settings: BackendSettings) -> None:
    """The backend's log format and ``LOG_LEVEL`` on the root logger (a server's logging set up once)."""
    from label_studio_yolo.logging_setup import configure_root_logging  # shared with rq workers, which lack Flask

    # The guard's own level, not only the root's: OpenVINO's converter sets the root level to ERROR while it runs.
    configure_root_logging(settings.log_level, RequestGuard.__module__)


def json_body(required: str | None = None, kind: type = object, what: str = "") -> dict[str, Any]:
    """The request's JSON object, parsed once per request, nesting at most :data:`MAX_JSON_DEPTH` deep.

    With ``required``, that key must hold a ``kind`` (described as ``what`` in the error).

    Raises:
        BadRequestBody: not JSON, not an object, too deep, or the required key is missing or of another type.
    """
    if "json_body" not in g:
        g.json_body = _parse_body()
    body: dict[str, Any] = g.json_body
    if required is not None and not isinstance(body.get(required), kind):
        found = f"a JSON {json_type(body[required])}" if required in body else "missing"
        raise BadRequestBody(f"{request.path} expects {required!r} to be {what}; it is {found}")
    return body


def _parse_body() -> dict[str, Any]:
    route = request.path
    if not request.is_json:
        raise BadRequestBody(f"{route} expects Content-Type application/json, got {request.mimetype or 'none'}")
    try:
        body = json.loads(request.get_data())
    except RecursionError as error:
        raise BadRequestBody(f"{route}: the JSON body nests deeper than {MAX_JSON_DEPTH} levels") from error
    except ValueError as error:  # also UnicodeDecodeError
        raise BadRequestBody(f"{route}: the body is not valid JSON ({printable(str(error))})") from error
    if _depth_over(body, MAX_JSON_DEPTH):
        raise BadRequestBody(f"{route}: the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(body, dict):
        raise BadRequestBody(f"{route} expects a JSON object, got a JSON {json_type(body)}")
    return body


def _depth_over(value: object, limit: int) -> bool:
    """Whether ``value`` nests lists and dicts more than ``limit`` deep (without recursion)."""
    pending = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict | list):
            if depth > limit:
                return True
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _register_routes(app: Flask, models: ProjectBackends, scheduler: Scheduler, model_name: str) -> None:
    def health() -> ResponseReturnValue:
        return jsonify({"status": "UP", "model_class": model_name, "v2": ML_BACKEND_V2})

    def setup() -> ResponseReturnValue:
        body = json_body("schema", str, "the labelling config (a string)")
        project = _project_key(body)
        model = models.setup(project, body["schema"], body.get("hostname"), body.get("access_token"))
        return jsonify({"model_version": model.model_version})

    def predict() -> ResponseReturnValue:
        body = json_body("tasks", list, "a list of tasks")
        project = _project_key(body)
        label_config = body.get("label_config") or models.label_config_of(project)
        if label_config is None:
            raise BadRequestBody(
                f"Project {printable(project)}: /predict has no 'label_config' and /setup was not called"
            )
        if not isinstance(label_config, str):
            raise BadRequestBody(
                f"Project {printable(project)}: 'label_config' must be the labelling config (a string)"
            )
        model = models.get(project, label_config)
        results = model.predict(body["tasks"])
        predicted = sum(1 for entry in results if entry)
        logger.info("Project %s: predicted %d of %d tasks", printable(project), predicted, len(results))
        return jsonify({"results": results, "model_version": model.model_version})

    def webhook() -> ResponseReturnValue:
        body = json_body("action", str, "the event's name (a string)")
        return _handle_event(scheduler, body["action"], body)

    def train() -> ResponseReturnValue:
        return _handle_event(scheduler, START_TRAINING, json_body())

    def is_training() -> ResponseReturnValue:
        project = project_id(request.args.get("project"))
        jobs = _jobs(scheduler, project) if project is not None else []
        return jsonify({"is_training": any(job.get("status") == "started" for job in jobs)})

    def training_status() -> ResponseReturnValue:
        store = VersionStore(current_settings().model_dir)
        asked = request.args.get("project")
        projects = store.projects() if asked is None else [_required_project(asked)]
        return jsonify({str(p): {**versions_status(store, p), "jobs": _jobs(scheduler, p)} for p in projects})

    def metrics() -> ResponseReturnValue:
        return jsonify({})

    for rule, view, methods in (
        ("/", health, ["GET"]),
        ("/health", health, ["GET"]),
        ("/setup", setup, ["POST"]),
        ("/predict", predict, ["POST"]),
        ("/webhook", webhook, ["POST"]),
        ("/train", train, ["POST"]),
        ("/is_training", is_training, ["GET"]),
        ("/training/status", training_status, ["GET"]),
        ("/metrics", metrics, ["GET"]),
    ):
        app.add_url_rule(rule, f"{view.__name__}{rule}", view, methods=methods)
    _register_version_routes(app)


def _register_version_routes(app: Flask) -> None:
    """``/versions`` (``GET`` as Label Studio calls it, or ``POST``), ``/versions/pin`` and ``/versions/unpin``.

    Each reads ``MODEL_DIR`` at the request; a pin replaces ``current.json``, which every process checks per request.
    """

    def versions() -> ResponseReturnValue:
        store = VersionStore(current_settings().model_dir)
        project = _versions_project()
        return jsonify(_every_project_versions(store) if project is None else _project_versions(store, project))

    def pin() -> ResponseReturnValue:
        body = json_body("version", str, "a version name or 'base' (a string)")
        project = _body_project(body)
        store = VersionStore(current_settings().model_dir)
        store.pin(project, body["version"])
        logger.info("Project %d: pinned to version %s", project, printable(body["version"]))
        return jsonify(_project_versions(store, project))

    def unpin() -> ResponseReturnValue:
        project = _body_project(json_body())
        store = VersionStore(current_settings().model_dir)
        removed = store.unpin(project)
        logger.info("Project %d: unpinned (was %s)", project, printable(removed or "not pinned"))
        return jsonify(_project_versions(store, project))

    app.add_url_rule("/versions", "versions", versions, methods=["GET", "POST"])
    app.add_url_rule("/versions/pin", "pin", pin, methods=["POST"])
    app.add_url_rule("/versions/unpin", "unpin", unpin, methods=["POST"])


def _versions_project() -> int | None:
    """The project ``/versions`` is asked about: ``?project=`` or the JSON body's ``project`` (required in a POST).
    None for a ``GET`` without one, as Label Studio sends it (no body, no query)."""
    asked = request.args.get("project")
    if asked is not None:
        return _required_project(asked)
    if request.method == "POST":
        return _body_project(json_body())
    return None


def _body_project(body: dict[str, Any]) -> int:
    """The body's ``project`` id (``3``, ``"3.1700000000"``, ``{"id": 3}``); :class:`BadRequestBody` otherwise."""
    if body.get("project") is None:
        raise BadRequestBody(f"{request.path} expects a JSON object with the 'project' id")
    return _required_project(body["project"])


def _project_versions(store: VersionStore, project: int) -> dict[str, Any]:
    """A project's version names (oldest first), the one served (None: the base weights) and its pin."""
    current = store.current(project)
    names = [version.name for version in store.versions(project)]
    return {"versions": names, "current": current.name if current else None, "pinned": store.pinned(project)}


def _every_project_versions(store: VersionStore) -> dict[str, Any]:
    """Every project's version names in one list (Label Studio reads only ``versions``; trained names start with
    ``project<N>-``), and the served and pinned version of each project by id."""
    answers = {str(project): _project_versions(store, project) for project in store.projects()}
    return {
        "versions": [name for answer in answers.values() for name in answer["versions"]],
        "current": {project: answer["current"] for project, answer in answers.items()},
        "pinned": {project: answer["pinned"] for project, answer in answers.items()},
    }


def _project_key(body: dict[str, Any]) -> str:
    """The ``project`` string of ``/setup`` or ``/predict`` (Label Studio's ``"<id>.<epoch>"``), as the key of its
    model; a project that names no id still gets one (it serves MODEL_PATH, never a trained version)."""
    project = body.get("project")
    if isinstance(project, dict):  # as webhooks send it
        project = project_id(project)
    if isinstance(project, bool) or not isinstance(project, str | int | None):
        raise BadRequestBody(f"{request.path} expects 'project' to be Label Studio's project id (a string)")
    return str(project or "")


def _required_project(value: object) -> int:
    project = project_id(value)
    if project is None:
        raise BadRequestBody(
            f"{printable(value)} is not a project id: Label Studio's ids are positive integers, e.g. 3 or 3.1700000000"
        )
    return project


def _handle_event(scheduler: Scheduler, action: str, body: dict[str, Any]) -> ResponseReturnValue:
    if (action == START_TRAINING or action in ANNOTATION_EVENTS) and body.get("project") is not None:
        _required_project(body["project"])
    try:
        answer = scheduler.on_event(action, body)
    except Exception as error:  # Redis down or slow: answer at once, Label Studio keeps the annotations
        message = f"Training request {printable(action)} for project {project_id_of(body)} failed: {error!r}"
        return _error_answer(message, 503)
    logger.info("Event %s: %s", printable(action), answer)
    return jsonify(answer), 200


def _jobs(scheduler: Scheduler, project: int) -> list[dict[str, Any]]:
    """The scheduler's jobs for ``project``; an unreachable Redis shows as an error entry, not a failed request."""
    try:
        return scheduler.jobs(project)
    except Exception as error:  # status must work while Redis is down
        return [{"status": "unknown", "error": repr(error)}]


def _register_error_handlers(app: Flask, settings: BackendSettings) -> None:
    """Every error answers JSON with a message a person can act on (and is logged), never an HTML page."""

    def project_error(status: int) -> Any:
        return lambda error: _error_answer(f"Project {printable(_request_project())}: {error}", status)

    app.register_error_handler(BadRequestBody, lambda error: _error_answer(str(error), 400))
    app.register_error_handler(LabelConfigError, project_error(400))
    app.register_error_handler(SetupRefused, lambda error: _error_answer(str(error), 403))
    app.register_error_handler(VersionNotFound, _version_not_found)
    app.register_error_handler(WeightsError, project_error(500))
    app.register_error_handler(413, lambda _error: error_response(413, too_large_message(settings.max_request_bytes)))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    message = f"{request.method} {printable(request.path)}: {error.name}. {error.description or ''}".strip()
    level = logging.WARNING if status < 500 else logging.ERROR
    logger.log(level, message)
    return jsonify({"status": "error", "error": message}), status


def _unexpected_error(error: Exception) -> ResponseReturnValue:
    logger.exception("%s %s failed", request.method, printable(request.path))
    return jsonify({"status": "error", "error": f"Internal error: {printable(repr(error), 300)}"}), 500


def _version_not_found(error: VersionNotFound) -> ResponseReturnValue:
    logger.warning("%s %s: %s", request.method, printable(request.path), error)
    return jsonify({"status": "error", "error": str(error), "versions": error.stored}), 404


def _error_answer(message: str, status: int) -> ResponseReturnValue:
    logger.error(message)
    return jsonify({"status": "error", "error": message}), status


def _request_project() -> object:
    body = g.get("json_body") or {}
    return body.get("project") or "?"


def _warn_about_settings(settings: BackendSettings) -> None:
    logger.info("HTTP Basic auth %s", "required" if settings.basic_auth else "off (BASIC_AUTH_USER/PASS unset)")
    if settings.label_studio_api_key and not settings.label_studio_url:
        logger.warning(
            "LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not: the key goes only to the first Label Studio "
            "that calls /setup. Set LABEL_STUDIO_URL to Label Studio's URL"
        )


def preload_base_weights() -> threading.Thread:
    """Load and warm up ``MODEL_PATH`` in a background thread of a starting server.

    The first model a process loads pays for initialising torch and ultralytics (about 3 s on 2 cores), and Label
    Studio gives ``/setup`` only 3 s: without this, connecting a fresh backend can fail with a read timeout. A
    failure here is only logged; ``/setup`` reports it to Label Studio as usual.
    """
    from label_studio_yolo.inference.weights import load_weights

    def load() -> None:
        settings = current_settings()
        try:
            load_weights(
                settings.model_root, settings.model_path, replace(runtime_for(settings), background_export=True)
            )
        except Exception as error:  # logged, and raised again by the /setup that needs the weights
            logger.warning("Weights %s not preloaded: %s", settings.model_path, error)

    thread = threading.Thread(target=load, name="preload-weights", daemon=True)
    thread.start()
    return thread
