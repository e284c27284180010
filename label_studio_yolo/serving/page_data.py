"""What the backend's page shows: each project's served version, its jobs and its versions with the gate's verdicts.

Read from the same places as ``/training/status`` (the versions store under ``MODEL_DIR`` and the scheduler's
jobs), so every replica and worker shows the same thing. Everything here is plain data; the templates escape it.

Example:
    >>> overview = project_overview(store, scheduler, 7)
    >>> overview.served, overview.job.stage if overview.job else None   # doctest: +SKIP
    ('project7-v002-1a2b3c4d', 'training')
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from label_studio_yolo.training.scheduler import JobState, Scheduler
from label_studio_yolo.versions import BASE, META_FILE, VersionInfo, VersionStore

RUNNING = (JobState.QUEUED.value, JobState.STARTED.value)
"""Job states during which the page refreshes itself."""


@dataclass(frozen=True)
class JobView:
    """One training job as a person reads it."""

    status: str
    stage: str | None
    epoch: int | None
    epochs: int | None
    elapsed_s: float | None
    outcome: str | None
    """What the job ended with: the gate's reason, the skip's reason or the error's last line."""

    @property
    def running(self) -> bool:
        return self.status in RUNNING


@dataclass(frozen=True)
class LabelRow:
    """One row of the gate's per-label table."""

    label: str
    objects: int
    old: float | None
    new: float
    verdict: str


@dataclass(frozen=True)
class VersionView:
    """One stored version: where it came from, what it learnt from and what the gate made of it."""

    name: str
    created: float
    parent: str | None
    annotations: int | None
    train_tasks: int
    val_tasks: int
    published: bool
    served: bool
    reason: str | None
    advice: tuple[str, ...]
    warnings: tuple[str, ...]
    labels: tuple[LabelRow, ...]
    losses: dict[str, list[float]] = field(default_factory=dict)
    """Training losses per epoch by name (``results.csv``), for the training curve."""


@dataclass(frozen=True)
class ProjectView:
    """A project's state: the version served (None: the base weights), its pin, its jobs and versions."""

    project: int
    served: str | None
    pinned: str | None
    jobs: tuple[JobView, ...]
    versions: tuple[VersionView, ...] = ()

    @property
    def job(self) -> JobView | None:
        """The newest job."""
        return self.jobs[0] if self.jobs else None

    @property
    def running(self) -> bool:
        return any(job.running for job in self.jobs)

    @property
    def rolled_back(self) -> bool:
        return self.pinned == BASE


def known_projects(store: VersionStore, scheduler: Scheduler) -> list[int]:
    """Projects with stored versions or training jobs, in id order."""
    return sorted(set(store.projects()) | set(scheduler.projects()))


def project_overview(
    store: VersionStore, scheduler: Scheduler, project: int, with_versions: bool = False
) -> ProjectView:
    """``project``'s served version, pin and jobs, and with ``with_versions`` its versions, newest first."""
    current = store.current(project)
    published = set(store.published(project))
    versions = (
        tuple(_version_view(v, current, published) for v in reversed(store.versions(project))) if with_versions else ()
    )
    return ProjectView(
        project=project,
        served=current.name if current else None,
        pinned=store.pinned(project),
        jobs=tuple(job_view(job) for job in _jobs(scheduler, project)),
        versions=versions,
    )


def _jobs(scheduler: Scheduler, project: int) -> list[dict[str, Any]]:
    try:
        return scheduler.jobs(project)
    except Exception as error:  # the page must show while Redis is down, as /training/status does
        return [{"status": "unknown", "error": f"training queue unreachable: {error}"}]


def job_view(job: dict[str, Any]) -> JobView:
    """A status entry of rq's (:func:`~label_studio_yolo.training.scheduler.redis_jobs`) or the local scheduler's."""
    progress = job.get("progress") or {}
    result = job.get("result") or {}
    started, ended = _seconds(job.get("started_at")), _seconds(job.get("ended_at"))
    outcome = result.get("reason") or progress.get("reason") or _last_line(job.get("error"))
    return JobView(
        status=str(job.get("status", "unknown")),
        stage=progress.get("stage"),
        epoch=progress.get("epoch"),
        epochs=progress.get("epochs"),
        elapsed_s=((ended or time.time()) - started) if started else None,
        outcome=str(outcome) if outcome else None,
    )


def _version_view(version: VersionInfo, current: VersionInfo | None, published: set[str]) -> VersionView:
    meta, gate = version.meta, version.meta.get("gate") or {}
    return VersionView(
        name=version.name,
        created=_created(version),
        parent=meta.get("parent"),
        annotations=meta.get("annotations"),
        train_tasks=len(meta.get("train_tasks") or []),
        val_tasks=len(meta.get("val_tasks") or []),
        published=version.name in published,
        served=current is not None and current.name == version.name,
        reason=gate.get("reason"),
        advice=tuple(str(line) for line in meta.get("advice") or gate.get("advice") or ()),
        warnings=tuple(str(line) for line in gate.get("warnings") or ()),
        labels=tuple(_label_row(label, fields) for label, fields in sorted((gate.get("labels") or {}).items())),
        losses=_losses(version),
    )


def _label_row(label: str, fields: dict[str, Any]) -> LabelRow:
    old = fields.get("old")
    return LabelRow(
        label=label,
        objects=int(fields.get("objects") or 0),
        old=None if old is None else float(old),
        new=float(fields.get("new") or 0.0),
        verdict=str(fields.get("verdict", "")),
    )


def _losses(version: VersionInfo) -> dict[str, list[float]]:
    """The ``train/*`` loss columns of the version's ``results.csv`` (ultralytics writes one row per epoch)."""
    results = version.path / "results.csv"
    if not results.is_file():
        return {}
    with results.open(newline="", errors="replace") as lines:
        rows = [{key.strip(): value for key, value in row.items() if key} for row in csv.DictReader(lines)]
    names = [name for name in (rows[0] if rows else {}) if name.startswith("train/") and name.endswith("_loss")]
    return {name.removeprefix("train/"): [_number(row.get(name)) for row in rows] for name in names}


def _number(text: str | None) -> float:
    try:
        return float(text or "")
    except ValueError:
        return 0.0


def _created(version: VersionInfo) -> float:
    meta = version.path / META_FILE
    return meta.stat().st_mtime if meta.exists() else version.path.stat().st_mtime


def _seconds(moment: Any) -> float | None:
    """A job time as epoch seconds: rq gives datetimes, the local scheduler floats."""
    if isinstance(moment, datetime):  # rq's are naive UTC
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return float(moment) if isinstance(moment, int | float) else None


def _last_line(error: Any) -> str | None:
    lines = [line for line in str(error or "").splitlines() if line.strip()]
    return lines[-1] if lines else None
