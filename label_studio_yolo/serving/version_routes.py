"""``/versions`` (``GET`` as Label Studio calls it, or ``POST``), ``/versions/pin`` and ``/versions/unpin``.

Each reads ``MODEL_DIR`` at the request; a pin replaces ``current.json``, which every process checks per request.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from label_studio_yolo.logsafe import printable
from label_studio_yolo.serving.requests import body_project, json_body, required_project
from label_studio_yolo.settings import current_settings
from label_studio_yolo.versions import VersionStore

logger = logging.getLogger(__name__)

versions = Blueprint("versions", __name__)


def version_store() -> VersionStore:
    """The versions under ``MODEL_DIR`` as the settings say now."""
    return VersionStore(current_settings().model_dir)


@versions.route("/versions", methods=["GET", "POST"])
def list_versions() -> ResponseReturnValue:
    store, project = version_store(), _versions_project()
    return jsonify(_every_project_versions(store) if project is None else project_versions(store, project))


@versions.post("/versions/pin")
def pin() -> ResponseReturnValue:
    body = json_body("version", str, "a version name or 'base' (a string)")
    project, store = body_project(body), version_store()
    store.pin(project, body["version"])
    logger.info("Project %d: pinned to version %s", project, printable(body["version"]))
    return jsonify(project_versions(store, project))


@versions.post("/versions/unpin")
def unpin() -> ResponseReturnValue:
    project, store = body_project(json_body()), version_store()
    removed = store.unpin(project)
    logger.info("Project %d: unpinned (was %s)", project, printable(removed or "not pinned"))
    return jsonify(project_versions(store, project))


def _versions_project() -> int | None:
    """The project ``/versions`` is asked about: ``?project=`` or the JSON body's ``project`` (required in a POST).
    None for a ``GET`` without one, as Label Studio sends it (no body, no query)."""
    asked = request.args.get("project")
    if asked is not None:
        return required_project(asked)
    if request.method == "POST":
        return body_project(json_body())
    return None


def project_versions(store: VersionStore, project: int) -> dict[str, Any]:
    """A project's version names (oldest first), the one served (None: the base weights) and its pin."""
    current = store.current(project)
    names = [version.name for version in store.versions(project)]
    return {"versions": names, "current": current.name if current else None, "pinned": store.pinned(project)}


def _every_project_versions(store: VersionStore) -> dict[str, Any]:
    """Every project's version names in one list (Label Studio reads only ``versions``; trained names start with
    ``project<N>-``), and the served and pinned version of each project by id."""
    answers = {str(project): project_versions(store, project) for project in store.projects()}
    return {
        "versions": [name for answer in answers.values() for name in answer["versions"]],
        "current": {project: answer["current"] for project, answer in answers.items()},
        "pinned": {project: answer["pinned"] for project, answer in answers.items()},
    }
