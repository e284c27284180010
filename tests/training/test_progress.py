"""A training job's progress report while Redis is down: logged as not saved, and the job trains on.

The job runs in rq's in-process worker on a private Redis, which the job itself stops around one report and starts
again, so the report meets an outage whatever the speed of this machine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import JobStatus

from label_studio_yolo.training.progress import report_progress
from tests.support.redis_server import RestartableRedis, restartable_redis

OUTAGE: list[RestartableRedis] = []
"""The Redis that :func:`report_through_an_outage` stops and starts (set by the test: the job runs in-process)."""


def report_through_an_outage() -> str:
    """The job: one progress report with Redis stopped, then one with it back."""
    (redis,) = OUTAGE
    redis.stop()
    try:
        report_progress(stage="training", epoch=1)
    finally:
        redis.start()
    report_progress(stage="trained")
    return "trained on"


@pytest.fixture
def redis() -> Iterator[RestartableRedis]:
    with restartable_redis() as server:
        OUTAGE.append(server)
        yield server
        OUTAGE.clear()


def test_a_report_redis_cannot_take_is_logged_and_the_job_goes_on(
    redis: RestartableRedis, caplog: pytest.LogCaptureFixture
) -> None:
    connection = Redis.from_url(redis.url)
    job = Queue("training", connection=connection).enqueue(report_through_an_outage)

    with caplog.at_level(logging.INFO, logger="label_studio_yolo.training.progress"):
        SimpleWorker(["training"], connection=connection).work(burst=True)

    job.refresh()
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == "trained on"
    assert job.meta == {"stage": "trained"}, "the report made while Redis was down is not there; the next one is"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("Training progress not saved (Redis unreachable): ")
