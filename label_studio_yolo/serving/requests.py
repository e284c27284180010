"""What a request carries, checked before any work: its JSON body (parsed once, depth-bounded) and project ids.

Every check raises :class:`BadRequestBody` with a message naming the route and what it expects; the app answers it
with 400.
"""

from __future__ import annotations

import json
from typing import Any

from flask import g, request

from label_studio_yolo.logsafe import json_type, printable, text_shown
from label_studio_yolo.projects import project_id

MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects a request body may have (far deeper than Label Studio's tasks)."""


class BadRequestBody(Exception):
    """The request body is not what the route takes; the message says what is wrong."""


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
        raise BadRequestBody(f"{route}: the body is not valid JSON ({text_shown(str(error))})") from error
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


def project_key(body: dict[str, Any]) -> str:
    """The ``project`` string of ``/setup`` or ``/predict`` (Label Studio's ``"<id>.<epoch>"``), as the key of its
    model; a project that names no id still gets one (it serves MODEL_PATH, never a trained version)."""
    project = body.get("project")
    if isinstance(project, dict):  # as webhooks send it
        project = project_id(project)
    if isinstance(project, bool) or not isinstance(project, str | int | None):
        raise BadRequestBody(f"{request.path} expects 'project' to be Label Studio's project id (a string)")
    return str(project or "")


def required_project(value: object) -> int:
    project = project_id(value)
    if project is None:
        raise BadRequestBody(
            f"{printable(value)} is not a project id: Label Studio's ids are positive integers, e.g. 3 or 3.1700000000"
        )
    return project


def body_project(body: dict[str, Any]) -> int:
    """The body's ``project`` id (``3``, ``"3.1700000000"``, ``{"id": 3}``); :class:`BadRequestBody` otherwise."""
    if body.get("project") is None:
        raise BadRequestBody(f"{request.path} expects a JSON object with the 'project' id")
    return required_project(body["project"])
