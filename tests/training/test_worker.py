"""The backend's own log lines reach the output of an rq worker that trains, its work horse's included.

rq sets up logging for its own loggers only, so a worker started as the README says printed rq's lines and none of
the backend's (``Training progress: ...``, the published version, errors). The jobs here fail fast, as when Label
Studio cannot be reached, after their first progress report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.scheduler import RedisScheduler
from tests.support.processes import free_port
from tests.support.redis_server import running_redis

PROJECT_ROOT = Path(__file__).resolve().parents[2]

WORKER_CLASS = "label_studio_yolo.training.worker.TrainingWorker"

PROGRESS = "[label_studio_yolo.training.progress] Training progress: {'stage': 'waiting for the project lock'}"
"""The job's first line, from its work horse (logger, then message)."""


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture
def unreachable_label_studio(tmp_path: Path) -> dict[str, str]:
    """Settings whose Label Studio does not answer: a job fails at its export."""
    return {
        "MODEL_DIR": str(tmp_path / "versions"),
        "LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",
        "LABEL_STUDIO_API_KEY": "some-key",
    }


def worker_output(redis_url: str, env: dict[str, str]) -> str:
    """Queue a job for project 4 and run it with ``rq worker -w ...TrainingWorker`` (``--burst``); its output."""
    answer = RedisScheduler(BackendSettings(redis_url=redis_url)).on_event("START_TRAINING", {"project": {"id": 4}})
    assert answer["status"] == "queued", answer
    rq = str(Path(sys.executable).parent / "rq")
    done = subprocess.run(
        [rq, "worker", "--burst", "-w", WORKER_CLASS, "--url", redis_url, "training"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        timeout=300,
    )
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


def test_the_worker_prints_the_backend_s_lines_from_its_work_horse_once_each(
    redis_url: str, unreachable_label_studio: dict[str, str]
) -> None:
    output = worker_output(redis_url, {**unreachable_label_studio, "LOG_LEVEL": "INFO"})

    assert "ConnectError" in output, output  # rq's own lines, as before
    lines = [line for line in output.splitlines() if PROGRESS in line]
    assert len(lines) == 1, output
    assert lines[0].split(" [")[1] == "INFO]", "time, level, logger and message"


def test_the_worker_respects_log_level(redis_url: str, unreachable_label_studio: dict[str, str]) -> None:
    output = worker_output(redis_url, {**unreachable_label_studio, "LOG_LEVEL": "WARNING"})

    assert "ConnectError" in output, output
    assert "Training progress" not in output, output
