"""Events that arrive while a training job is queued or starting fold into it: no second job on the same data.

Measured in a real Label Studio with ``TRAIN_MIN_NEW_ANNOTATIONS=10``: the 10th annotation queued a job, and the
11th, 0.4 s later, queued another, because the count was reset only when the job claimed its slot, seconds after rq
had started it; a "Start Training" 1.3 s after the 10th queued another too. Both jobs trained on the same data.

Here a real ``rq worker`` with the project's worker class runs the job on a private Redis. The job is the real
one's start (:func:`~label_studio_yolo.training.project_lock.claim`) held until the test lets it claim
(:func:`claim_when_told`), so "started but not claimed yet" lasts as long as the test needs. This module imports
little, since the worker's work horse imports it for that function. The local scheduler (no Redis) follows the
same policy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis import Redis
from rq import Queue, Worker, get_current_job
from rq.job import Job, JobStatus

from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training import scheduler as scheduler_module
from label_studio_yolo.training.local import LocalScheduler
from label_studio_yolo.training.project_lock import claim, project_lock
from label_studio_yolo.training.scheduler import RedisScheduler, key
from tests.support.redis_server import running_redis

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[2]

WORKER_CLASS = "label_studio_yolo.training.worker.TrainingWorker"
"""The rq worker class the project runs training with."""

HELD_JOB = f"{__name__}.claim_when_told"
"""The job the scheduler queues in these tests instead of the real training."""

MINIMUM = 10
"""``TRAIN_MIN_NEW_ANNOTATIONS``, as measured."""

PROJECT = 8

TIMEOUT = 60.0
"""Seconds allowed for the worker to start, or to pick up, claim and finish a job."""


def go_key(job_id: str) -> str:
    """The key that lets a held job claim its slot."""
    return f"test:claim:{job_id}"


def claim_when_told(project: int) -> dict[str, Any]:
    """The real job's start, held: wait until the test sets :func:`go_key`, then claim as ``train_project`` does.

    The real job claims once its work horse has imported the training code (about 3 s); here that takes as long as
    the test says.
    """
    job = get_current_job()
    assert job is not None
    deadline = time.monotonic() + TIMEOUT
    while not job.connection.exists(go_key(job.id)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job.id} was never told to claim")
        time.sleep(0.05)
    claim(job.connection, project, job.id)
    return {"project": project}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def scheduler(redis_url: str, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> RedisScheduler:
    monkeypatch.setattr(scheduler_module, "JOB_FUNCTION", HELD_JOB)
    return RedisScheduler(BackendSettings(redis_url=redis_url, train_min_new_annotations=MINIMUM))


@pytest.fixture
def worker(redis_url: str, redis: Redis, tmp_path: Path) -> Iterator[Path]:
    """``rq worker`` with the project's worker class on the private Redis, as the README starts it; yields its log."""
    log = tmp_path / "worker.log"
    rq = str(Path(sys.executable).parent / "rq")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [rq, "worker", "-w", WORKER_CLASS, "--url", redis_url, "training"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "MODEL_DIR": str(tmp_path / "versions")},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: True if Worker.all(connection=redis) else None, "the worker registered", log)
        yield log
    finally:
        for job_id in Queue("training", connection=redis).started_job_registry.get_job_ids():
            redis.set(go_key(job_id), 1)  # a held job ends, so the worker stops at once
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(check: Callable[[], T | None], what: str, log: Path) -> T:
    """Poll ``check`` until it returns something; fail with ``what`` and the worker's log after :data:`TIMEOUT`."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {TIMEOUT} s\n{log.read_text(errors='replace')[-3000:]}")


def in_status(redis: Redis, job_id: str, *statuses: JobStatus) -> Job | None:
    job = Job.fetch(job_id, connection=redis)
    return job if job.get_status() in statuses else None


def annotation(action: str = "ANNOTATION_CREATED", project: int = PROJECT) -> dict[str, Any]:
    """A webhook payload shaped like Label Studio's."""
    return {
        "action": action,
        "project": {"id": project, "title": f"Project {project}"},
        "annotation": {"id": 11, "task": 21, "result": [], "completed_by": 1},
        "task": {"id": 21, "data": {"image": "/data/upload/8/a.png"}, "project": project},
    }


def project_jobs(redis: Redis, project: int = PROJECT) -> list[str]:
    """The ids of every job queued for ``project``, newest first."""
    return [raw.decode() for raw in redis.lrange(key(project, "jobs"), 0, -1)]


def count(redis: Redis, project: int = PROJECT) -> int:
    return int(redis.get(key(project, "new_annotations")) or 0)


def test_events_while_the_job_is_started_but_not_claimed_fold_into_it(
    scheduler: RedisScheduler, redis: Redis, worker: Path
) -> None:
    """The measured race: the 11th and 12th annotations and a Start Training while rq runs the 10th's job."""
    answers = [scheduler.on_event("ANNOTATION_CREATED", annotation()) for _ in range(MINIMUM)]
    assert [a["status"] for a in answers] == ["waiting"] * (MINIMUM - 1) + ["queued"]
    job_id = answers[-1]["job_id"]
    wait_for(lambda: in_status(redis, job_id, JobStatus.STARTED), "the job started", worker)

    later = [scheduler.on_event("ANNOTATION_CREATED", annotation()) for _ in range(2)]
    pressed = scheduler.on_event("START_TRAINING", annotation("START_TRAINING"))

    assert later == [
        {"status": "waiting", "project": PROJECT, "new_annotations": 1},
        {"status": "waiting", "project": PROJECT, "new_annotations": 2},
    ], "the count starts again when a job is queued"
    assert pressed == {"status": "folded", "project": PROJECT, "job_id": job_id}
    assert project_jobs(redis) == [job_id], "one job: it reads these annotations once it claims"
    assert Job.fetch(job_id, connection=redis).meta["folded_events"] == 1

    redis.set(go_key(job_id), 1)
    wait_for(lambda: in_status(redis, job_id, JobStatus.FINISHED), "the job finished", worker)
    assert count(redis) == 0, "what the job read is not counted again"
    assert scheduler.on_event("ANNOTATION_CREATED", annotation())["new_annotations"] == 1
    following = scheduler.on_event("START_TRAINING", annotation("START_TRAINING"))
    assert following["status"] == "queued" and following["job_id"] != job_id, "a claimed job takes no more events"
    assert project_jobs(redis) == [following["job_id"], job_id]


def test_annotations_reaching_the_minimum_while_the_job_starts_fold_into_it(
    scheduler: RedisScheduler, redis: Redis, worker: Path
) -> None:
    """Even ten more annotations fold into a job that has not claimed: it reads them all."""
    job_id = scheduler.on_event("START_TRAINING", annotation("START_TRAINING"))["job_id"]
    wait_for(lambda: in_status(redis, job_id, JobStatus.STARTED), "the job started", worker)

    answers = [scheduler.on_event("ANNOTATION_UPDATED", annotation("ANNOTATION_UPDATED")) for _ in range(MINIMUM + 1)]

    assert [a["status"] for a in answers] == ["waiting"] * (MINIMUM - 1) + ["folded"] * 2
    assert {a["job_id"] for a in answers[MINIMUM - 1 :]} == {job_id}
    assert project_jobs(redis) == [job_id]
    progress = Job.fetch(job_id, connection=redis).meta
    assert progress["folded_events"] == 2 and progress["reason"] == "START_TRAINING"


def test_a_start_training_right_after_the_queueing_annotation_folds_into_its_job(
    scheduler: RedisScheduler, redis: Redis, worker: Path
) -> None:
    """Start Training pressed 1.3 s after the 10th annotation: its job is running but has not read anything yet."""
    for _ in range(MINIMUM):
        answer = scheduler.on_event("ANNOTATION_CREATED", annotation())
    job_id = answer["job_id"]
    wait_for(lambda: in_status(redis, job_id, JobStatus.STARTED), "the job started", worker)

    assert scheduler.on_event("START_TRAINING", annotation("START_TRAINING"))["job_id"] == job_id
    assert scheduler.on_event("START_TRAINING", annotation("START_TRAINING"))["job_id"] == job_id
    assert project_jobs(redis) == [job_id]
    assert Queue("training", connection=redis).job_ids == [], "nothing waits behind the running job"


def test_a_job_that_failed_before_claiming_takes_no_events(scheduler: RedisScheduler, redis: Redis) -> None:
    """A job rq gave up before it claimed still names the slot, but it will never read: the next event queues."""
    first = scheduler.on_event("START_TRAINING", annotation("START_TRAINING"))["job_id"]
    job = Job.fetch(first, connection=redis)
    job.set_status(JobStatus.FAILED)

    second = scheduler.on_event("START_TRAINING", annotation("START_TRAINING"))

    assert second["status"] == "queued" and second["job_id"] != first
    assert project_jobs(redis) == [second["job_id"], first]


@contextmanager
def local_scheduler_without_runner(minimum: int) -> Iterator[LocalScheduler]:
    """A local scheduler whose jobs stay queued (its runner, which claims them, never starts)."""
    local = LocalScheduler(BackendSettings(train_min_new_annotations=minimum))
    local._ensure_runner = lambda: None  # type: ignore[method-assign]
    yield local


def test_the_local_scheduler_counts_from_the_queued_job_and_folds_into_it() -> None:
    with local_scheduler_without_runner(3) as local:
        answers = [local.on_event("ANNOTATION_CREATED", annotation()) for _ in range(3)]
        assert [a["status"] for a in answers] == ["waiting", "waiting", "queued"]

        later = local.on_event("ANNOTATION_CREATED", annotation())
        pressed = local.on_event("START_TRAINING", annotation("START_TRAINING"))
        folded = [local.on_event("ANNOTATION_CREATED", annotation()) for _ in range(2)]

        assert later == {"status": "waiting", "project": PROJECT, "new_annotations": 1}
        assert pressed == {"status": "folded", "project": PROJECT}
        assert [a["status"] for a in folded] == ["waiting", "folded"]
        jobs = local.jobs(PROJECT)
        assert len(jobs) == 1 and jobs[0]["status"] == "queued" and jobs[0]["folded_events"] == 2


def test_a_job_waiting_for_the_project_lock_has_not_claimed_so_events_still_fold_into_it(
    redis_url: str, redis: Redis, worker: Path
) -> None:
    # It claimed first before: events after the claim queued another job, which waited too; one busy project could
    # hold every worker, and a job killed while waiting took its folded events with it.
    real = RedisScheduler(BackendSettings(redis_url=redis_url, train_min_new_annotations=MINIMUM))
    held, release = threading.Event(), threading.Event()

    def another_job_trains() -> None:
        with project_lock(Redis.from_url(redis_url), PROJECT):
            held.set()
            release.wait(TIMEOUT)

    holder = threading.Thread(target=another_job_trains)
    holder.start()
    try:
        assert held.wait(10)
        job_id = real.on_event("START_TRAINING", annotation("START_TRAINING"))["job_id"]
        waiting = wait_for(
            lambda: (
                True
                if Job.fetch(job_id, connection=redis).meta.get("stage") == "waiting for the project lock"
                else None
            ),
            "the job waits for the lock",
            worker,
        )
        assert waiting
        pressed = real.on_event("START_TRAINING", annotation("START_TRAINING"))
        assert pressed == {"status": "folded", "project": PROJECT, "job_id": job_id}
        assert project_jobs(redis) == [job_id], "no second job waits beside it"
    finally:
        release.set()
        holder.join(10)
    failed = wait_for(lambda: in_status(redis, job_id, JobStatus.FAILED), "the job ran once the lock was free", worker)
    assert "LABEL_STUDIO_URL" in (failed.exc_info or ""), "it claimed and went on to read Label Studio"
    assert redis.get(key(PROJECT, "queued_job")) is None, "claimed once it held the lock"
