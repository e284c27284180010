"""Training jobs that fail: a real rq worker (and the no-Redis local runner) report the reason, keep the served
version, and go on with the next job.

The jobs fail the way they do in real life when Label Studio cannot be reached: no training happens, so these
tests are quick. The learning loop that succeeds is tested end to end in ``tests/e2e/test_learning_loop.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from label_studio_yolo.errors import TrainingError
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.job import train_project
from label_studio_yolo.training.local import LocalScheduler
from label_studio_yolo.training.scheduler import RedisScheduler, redis_jobs
from label_studio_yolo.training.status import versions_status
from label_studio_yolo.versions import META_FILE, VersionStore
from tests.support.processes import free_port
from tests.support.redis_server import running_redis

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture
def failing_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings whose Label Studio does not answer, and a project that already serves version v-old."""
    env = {
        "MODEL_DIR": str(tmp_path / "versions"),
        "LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",
        "LABEL_STUDIO_API_KEY": "some-key",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = VersionStore(tmp_path / "versions")
    with store.new_version(3, "v-old") as folder:
        (folder / META_FILE).write_text('{"annotations": 5}')
    store.publish(3, "v-old")
    return env


def run_worker_burst(redis_url: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    rq = str(Path(sys.executable).parent / "rq")
    return subprocess.run(
        [rq, "worker", "--burst", "--url", redis_url, "training"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        timeout=300,
    )


def test_a_failed_job_is_reported_with_its_reason_and_the_next_job_still_runs(redis_url, failing_env) -> None:
    settings = BackendSettings(redis_url=redis_url)
    scheduler = RedisScheduler(settings)
    first = scheduler.on_event("START_TRAINING", {"project": {"id": 3}})
    run_worker_burst(redis_url, failing_env)
    second = scheduler.on_event("START_TRAINING", {"project": {"id": 3}})
    assert second["status"] == "queued" and second["job_id"] != first["job_id"], "a failed job must not block the queue"
    run_worker_burst(redis_url, failing_env)

    jobs = redis_jobs(scheduler.redis, 3)
    assert [job["job_id"] for job in jobs] == [second["job_id"], first["job_id"]]
    for job in jobs:
        assert job["status"] == "failed"
        assert "ConnectError" in job["error"][0] or "Connection" in job["error"][0], job["error"]
    status = versions_status(VersionStore(Path(failing_env["MODEL_DIR"])), 3)
    assert status["current"] == "v-old", "a failed job leaves the served version alone"


def test_without_redis_jobs_run_in_a_background_process_and_report_failure(failing_env) -> None:
    scheduler = LocalScheduler(BackendSettings())
    assert scheduler.on_event("START_TRAINING", {"project": "3.1700000000"})["status"] == "queued"
    assert scheduler.on_event("START_TRAINING", {"project": {"id": 3}})["status"] in ("folded", "queued")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(job["status"] in ("queued", "started") for job in scheduler.jobs(3)):
        time.sleep(0.5)
    jobs = scheduler.jobs(3)
    assert jobs and all(job["status"] == "failed" for job in jobs), jobs
    assert "Connect" in jobs[-1]["error"], "the reason reaches the status"
    assert VersionStore(Path(failing_env["MODEL_DIR"])).current(3).name == "v-old"


HOLD_TRAINING = """
import sys, time
from pathlib import Path
from label_studio_yolo.versions import VersionStore
with VersionStore(Path(sys.argv[1])).training(7):
    print("holding", flush=True)
    time.sleep(1.0)
    print(time.time(), flush=True)
"""
"""Another backend process's local job of project 7: holds its training lock for a second."""


def test_local_jobs_of_one_project_in_two_processes_take_turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # WORKERS > 1 without REDIS_URL: every process runs its own local scheduler, and two jobs of one project
    # trained at once before.
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)  # the job fails at once, after the lock
    command = [sys.executable, "-c", HOLD_TRAINING, str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as other:
        assert other.stdout is not None and other.stdout.readline().strip() == "holding"
        with pytest.raises(TrainingError, match="LABEL_STUDIO_URL"):
            train_project(7)
        failed_at = time.time()
        released_at = float(other.stdout.readline())
    assert failed_at >= released_at, "the job started only once the other process's job was done"
