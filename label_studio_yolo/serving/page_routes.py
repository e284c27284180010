"""The backend's page for people, under ``/ui``: what each project serves, what training did and why, and buttons.

- ``GET /ui/``: every project with versions or jobs: the version served, its pin, the job now, the last outcome;
- ``GET /ui/projects/<id>``: its versions, newest first, with the gate's table, reason, advice and two charts;
- ``POST /ui/projects/<id>/pin`` (``version``), ``/unpin``, ``/rollback`` (pin the base weights), ``/train``: what
  ``/versions/pin``, ``/versions/unpin`` and ``/train`` do, from a form (every post passes
  :mod:`~label_studio_yolo.serving.csrf` first), then back to the project's page;
- ``GET /ui/projects/<id>/versions/<name>/weights``: the version's ``best.pt``, for operators.

Basic auth guards these routes as every other. Templates escape everything they show; nothing here runs on the
``/predict`` path.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue

from label_studio_yolo.logsafe import printable
from label_studio_yolo.serving.charts import score_bars, training_curve
from label_studio_yolo.serving.csrf import FIELD, forged_post_reason, page_token, remember_token
from label_studio_yolo.serving.page_data import known_projects, project_overview
from label_studio_yolo.serving.routes import current_scheduler
from label_studio_yolo.serving.version_routes import version_store
from label_studio_yolo.training.scheduler import START_TRAINING
from label_studio_yolo.versions import BASE, VERSION_NAME, VersionNotFound

logger = logging.getLogger(__name__)

pages = Blueprint("pages", __name__, url_prefix="/ui", template_folder="templates")

REFRESH_SECONDS = 5
"""How often a page reloads itself while a job is queued or running."""

DONE = {
    "pinned": "Pinned: this version is served until you unpin it; training keeps running but does not publish.",
    "unpinned": "Unpinned: the newest published version is served, and training publishes again.",
    "rolled-back": "Rolled back: the base weights (MODEL_PATH) are served until you unpin.",
    "queued": "Training queued.",
    "folded": "A job for this project is already waiting: it will read the newest annotations.",
}
"""What a button did, shown on the page it returns to (chosen by key, so a link cannot put words on the page)."""


@pages.before_request
def _refuse_forged_posts() -> ResponseReturnValue | None:
    """Every form post of the page, whichever button: refused unless it came from the page's own form."""
    reason = forged_post_reason() if request.method == "POST" else None
    if reason:
        logger.warning("Page form post refused: %s", reason)
        return render_template("ui/refused.html", reason=reason), 403
    return None


@pages.after_request
def _set_token_cookie(response: Response) -> Response:
    return remember_token(response)


@pages.app_template_filter("datetime_utc")
def _datetime_utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


@pages.get("/")
def overview() -> ResponseReturnValue:
    store, scheduler = version_store(), current_scheduler()
    projects = [project_overview(store, scheduler, project) for project in known_projects(store, scheduler)]
    refresh = REFRESH_SECONDS if any(project.running for project in projects) else None
    return render_template("ui/overview.html", projects=projects, refresh=refresh)


@pages.get("/projects/<int:project>")
def project_page(project: int) -> ResponseReturnValue:
    view = project_overview(version_store(), current_scheduler(), project, with_versions=True)
    return render_template(
        "ui/project.html",
        view=view,
        refresh=REFRESH_SECONDS if view.running else None,
        token=page_token(),
        token_field=FIELD,
        done=DONE.get(request.args.get("done", "")),
        charts={v.name: (score_bars(v.labels), training_curve(v.losses)) for v in view.versions},
    )


@pages.post("/projects/<int:project>/pin")
def pin(project: int) -> ResponseReturnValue:
    name = request.form.get("version", "")
    if not VERSION_NAME.fullmatch(name):
        return _problem(project, "Choose one of the versions listed below.", 400)
    return _pin(project, name, "pinned")


@pages.post("/projects/<int:project>/rollback")
def rollback(project: int) -> ResponseReturnValue:
    return _pin(project, BASE, "rolled-back")


@pages.post("/projects/<int:project>/unpin")
def unpin(project: int) -> ResponseReturnValue:
    removed = version_store().unpin(project)
    logger.info("Project %d: unpinned from the page (was %s)", project, printable(removed or "not pinned"))
    return _back(project, "unpinned")


@pages.post("/projects/<int:project>/train")
def train(project: int) -> ResponseReturnValue:
    try:
        answer = current_scheduler().on_event(START_TRAINING, {"project": project})
    except Exception as error:  # Redis down: say so on the page, as /train answers 503
        return _problem(project, f"Training could not be queued: {error}", 503)
    logger.info("Project %d: training asked from the page: %s", project, answer)
    return _back(project, str(answer.get("status", "")))


@pages.get("/projects/<int:project>/versions/<name>/weights")
def weights(project: int, name: str) -> ResponseReturnValue:
    version = next((v for v in version_store().versions(project) if v.name == name), None)
    if version is None or not version.weights.is_file():
        abort(404)
    return send_file(version.weights, as_attachment=True, download_name=f"{version.name}.pt")


def _pin(project: int, name: str, done: str) -> ResponseReturnValue:
    try:
        version_store().pin(project, name)
    except VersionNotFound as error:
        return _problem(project, str(error), 404)
    logger.info("Project %d: pinned to %s from the page", project, printable(name))
    return _back(project, done)


def _back(project: int, done: str) -> ResponseReturnValue:
    return redirect(url_for("pages.project_page", project=project, done=done), code=303)


def _problem(project: int, message: str, status: int) -> ResponseReturnValue:
    return render_template("ui/refused.html", reason=message, project=project), status
