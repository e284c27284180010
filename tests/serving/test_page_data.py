"""What the page shows of jobs and versions, from rq's entries, the local scheduler's and results.csv."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from label_studio_yolo.serving.page_data import job_view, known_projects, project_overview
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.scheduler import RedisScheduler
from label_studio_yolo.versions import META_FILE, VersionStore
from tests.support.redis_server import running_redis


def test_a_running_rq_job_shows_its_stage_epoch_and_seconds_and_a_failed_one_its_error() -> None:
    started = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=30)  # rq's times are naive UTC
    progress = {"stage": "training", "epoch": 3, "epochs": 20}
    running = job_view({"status": "started", "started_at": started, "progress": progress})
    assert (running.stage, running.epoch, running.epochs, running.running) == ("training", 3, 20, True)
    assert running.elapsed_s is not None and 29 <= running.elapsed_s < 300
    error = "Traceback (most recent call last):\n  ...\nTrainingError: set LABEL_STUDIO_URL\n"
    failed = job_view({"status": "failed", "started_at": time.time() - 5, "ended_at": time.time(), "error": error})
    assert failed.outcome == "TrainingError: set LABEL_STUDIO_URL" and not failed.running


def test_a_version_shows_its_gate_table_and_losses_and_every_project_with_jobs_is_listed(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "versions")
    gate = {
        "reason": "Person drops",
        "labels": {"Person": {"objects": 4, "old": 0.9, "new": 0.2, "verdict": "dropped"}},
    }
    with store.new_version(5, "project5-v001-00000000") as folder:
        meta = {"parent": None, "train_tasks": [1, 2], "val_tasks": [3], "gate": gate}
        (folder / META_FILE).write_text(json.dumps(meta))
        (folder / "results.csv").write_text(
            "epoch, train/box_loss, train/cls_loss, metrics/mAP50(B)\n1, 2.0, 3.0, 0\n2, 1.5, 2.0, 0.4\n"
        )
    with running_redis() as redis_url:
        scheduler = RedisScheduler(BackendSettings(redis_url=redis_url))
        scheduler.on_event("START_TRAINING", {"project": {"id": 8}})
        assert known_projects(store, scheduler) == [5, 8]
        view = project_overview(store, scheduler, 5, with_versions=True)
    [version] = view.versions
    assert (version.train_tasks, version.val_tasks, version.published, version.reason) == (2, 1, False, "Person drops")
    assert [(row.label, row.old, row.new, row.verdict) for row in version.labels] == [("Person", 0.9, 0.2, "dropped")]
    assert version.losses == {"box_loss": [2.0, 1.5], "cls_loss": [3.0, 2.0]}


def test_with_redis_down_the_page_still_shows_the_versions(tmp_path: Path) -> None:
    with running_redis() as redis_url:
        scheduler = RedisScheduler(BackendSettings(redis_url=redis_url))
    view = project_overview(VersionStore(tmp_path), scheduler, 5)
    assert view.job is not None and view.job.status == "unknown" and "unreachable" in (view.job.outcome or "")
