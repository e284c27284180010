"""Every error the app meets answers JSON, ``{"status": "error", "error": "..."}``, and is logged (never HTML)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from label_studio_yolo.errors import LabelConfigError, SetupRefused, WeightsError
from label_studio_yolo.logsafe import printable
from label_studio_yolo.serving.guard import error_response, too_large_message
from label_studio_yolo.serving.requests import BadRequestBody
from label_studio_yolo.versions import VersionNotFound

logger = logging.getLogger(__name__)


def register_error_handlers(app: Flask, max_request_bytes: int) -> None:
    """Every error answers JSON with a message a person can act on (and is logged), never an HTML page."""

    def project_error(status: int) -> Any:
        return lambda error: error_answer(f"Project {printable(_request_project())}: {error}", status)

    app.register_error_handler(BadRequestBody, lambda error: error_answer(str(error), 400))
    app.register_error_handler(LabelConfigError, project_error(400))
    app.register_error_handler(SetupRefused, lambda error: error_answer(str(error), 403))
    app.register_error_handler(VersionNotFound, _version_not_found)
    app.register_error_handler(WeightsError, project_error(500))
    app.register_error_handler(413, lambda _error: error_response(413, too_large_message(max_request_bytes)))
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


def error_answer(message: str, status: int) -> ResponseReturnValue:
    logger.error(message)
    return jsonify({"status": "error", "error": message}), status


def _request_project() -> object:
    body = g.get("json_body") or {}
    return body.get("project") or "?"
