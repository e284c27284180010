"""The training queue policy on a real, private Redis: when a job is queued, folded, or not queued at all.

No rq worker runs here, so queued jobs stay queued and the tests can look at exactly what a worker would pick up
(``tests/training/test_scheduler_events.py`` runs one, for events that arrive while it starts a job).
The last tests go through the Flask app, as Label Studio does, including with Redis down: the webhook must fail fast
and predictions must keep working.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.job import Job

from conftest import BOXES_CONFIG, SampleImage, app_client
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.project_lock import claim, project_lock
from label_studio_yolo.training.scheduler import RedisScheduler
from tests.support.processes import free_port
from tests.support.redis_server import running_redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture(autouse=True)
def empty_redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def scheduler(redis_url: str) -> RedisScheduler:
    return RedisScheduler(BackendSettings(redis_url=redis_url, train_min_new_annotations=3))


@pytest.fixture
def queue(empty_redis: Redis) -> Queue:
    return Queue("training", connection=empty_redis)


def event(action: str, project: int = 5) -> dict:
    """A webhook payload shaped like Label Studio's."""
    return {
        "action": action,
        "project": {"id": project, "title": f"Project {project}", "label_config": BOXES_CONFIG},
        "annotation": {"id": 11, "task": 21, "result": [], "completed_by": 1},
        "task": {"id": 21, "data": {"image": "/data/upload/5/a.png"}, "project": project},
    }


def test_start_training_queues_one_job_with_its_project_and_reason(scheduler, queue) -> None:
    answer = scheduler.on_event("START_TRAINING", event("START_TRAINING"))
    assert answer["status"] == "queued" and answer["project"] == 5
    assert queue.job_ids == [answer["job_id"]]
    job = queue.fetch_job(answer["job_id"])
    assert job is not None
    assert job.meta["project"] == 5 and job.meta["reason"] == "START_TRAINING"
    assert job.args == (5,)


def test_events_while_a_job_is_queued_fold_into_it(scheduler, queue, empty_redis) -> None:
    job_id = scheduler.on_event("START_TRAINING", event("START_TRAINING"))["job_id"]
    assert scheduler.on_event("START_TRAINING", event("START_TRAINING")) == {
        "status": "folded",
        "project": 5,
        "job_id": job_id,
    }
    answers = [scheduler.on_event("ANNOTATION_CREATED", event("ANNOTATION_CREATED")) for _ in range(3)]
    assert [a["status"] for a in answers] == ["waiting", "waiting", "folded"]
    assert answers[-1]["job_id"] == job_id
    assert queue.job_ids == [job_id]
    assert Job.fetch(job_id, connection=empty_redis).meta["folded_events"] == 2


def test_a_queued_job_deleted_from_rq_makes_way_for_a_new_one(scheduler, queue, empty_redis) -> None:
    """Someone cleared rq's job (``rq empty``, an expired key): Start Training queues a fresh job, not a 503."""
    lost = scheduler.on_event("START_TRAINING", event("START_TRAINING"))["job_id"]
    Job.fetch(lost, connection=empty_redis).delete()

    answer = scheduler.on_event("START_TRAINING", event("START_TRAINING"))

    assert answer["status"] == "queued" and answer["job_id"] != lost
    assert queue.job_ids == [answer["job_id"]]


def test_each_project_gets_its_own_job(scheduler, queue) -> None:
    first = scheduler.on_event("START_TRAINING", event("START_TRAINING", project=5))
    second = scheduler.on_event("START_TRAINING", event("START_TRAINING", project=6))
    assert first["status"] == second["status"] == "queued"
    assert first["job_id"] != second["job_id"]
    assert queue.job_ids == [first["job_id"], second["job_id"]]
    assert queue.fetch_job(second["job_id"]).meta["project"] == 6


@pytest.mark.parametrize("action", ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"])
def test_annotation_events_queue_a_job_at_the_threshold(scheduler, queue, action) -> None:
    answers = [scheduler.on_event(action, event(action)) for _ in range(3)]
    assert answers[0] == {"status": "waiting", "project": 5, "new_annotations": 1}
    assert answers[1] == {"status": "waiting", "project": 5, "new_annotations": 2}
    assert answers[2]["status"] == "queued"
    assert queue.job_ids == [answers[2]["job_id"]]
    assert queue.fetch_job(answers[2]["job_id"]).meta["reason"] == action


@pytest.mark.parametrize("action", ["PROJECT_UPDATED", "SOMETHING_NEW"])
def test_other_actions_are_ignored(scheduler, queue, action) -> None:
    for _ in range(3):
        assert scheduler.on_event(action, event(action))["status"] == "ignored"
    assert queue.job_ids == []
    assert scheduler.on_event("ANNOTATION_CREATED", event("ANNOTATION_CREATED"))["new_annotations"] == 1


def test_a_claimed_job_makes_room_for_the_next_one_and_resets_the_count(scheduler, queue, empty_redis) -> None:
    running = scheduler.on_event("START_TRAINING", event("START_TRAINING"))["job_id"]
    for _ in range(2):
        scheduler.on_event("ANNOTATION_CREATED", event("ANNOTATION_CREATED"))
    claim(empty_redis, 5, running)  # what a worker does when it starts the job
    waiting = scheduler.on_event("ANNOTATION_CREATED", event("ANNOTATION_CREATED"))
    assert waiting == {"status": "waiting", "project": 5, "new_annotations": 1}
    following = scheduler.on_event("START_TRAINING", event("START_TRAINING"))
    assert following["status"] == "queued" and following["job_id"] != running
    assert queue.job_ids == [running, following["job_id"]]
    assert scheduler.on_event("START_TRAINING", event("START_TRAINING"))["job_id"] == following["job_id"]


def test_the_count_starts_again_when_a_job_is_queued(scheduler, queue, empty_redis) -> None:
    """Annotations after the one that queued a job count towards the next job, not again towards this one."""
    queued = [scheduler.on_event("ANNOTATION_CREATED", event("ANNOTATION_CREATED")) for _ in range(3)][-1]
    assert queued["status"] == "queued"
    after = scheduler.on_event("ANNOTATION_CREATED", event("ANNOTATION_CREATED"))
    assert after == {"status": "waiting", "project": 5, "new_annotations": 1}
    assert empty_redis.get("label-studio-yolo:project:5:new_annotations") == b"1"
    assert queue.job_ids == [queued["job_id"]]


def test_an_annotation_counted_before_a_job_was_queued_and_claimed_waits(scheduler, queue, empty_redis) -> None:
    """The count reached the minimum, then (before this request took the enqueue lock) Start Training queued a job
    that a worker claimed: that job reads the annotation, so it queues nothing."""
    for _ in range(2):
        scheduler.on_event("ANNOTATION_CREATED", event("ANNOTATION_CREATED"))
    assert scheduler.count_annotation(5) == 3  # this request's count: the minimum
    other = scheduler.on_event("START_TRAINING", event("START_TRAINING"))["job_id"]  # another request, meanwhile
    claim(empty_redis, 5, other)

    assert scheduler.fold_or_queue(5, "ANNOTATION_CREATED") == {"status": "waiting", "project": 5, "new_annotations": 0}
    assert queue.job_ids == [other]


def test_claiming_an_older_job_keeps_the_queued_one(scheduler, queue, empty_redis) -> None:
    queued = scheduler.on_event("START_TRAINING", event("START_TRAINING"))["job_id"]
    claim(empty_redis, 5, "train-5-older")
    assert scheduler.on_event("START_TRAINING", event("START_TRAINING"))["status"] == "folded"
    assert queue.job_ids == [queued]


def hold_lock(redis_url: str, project: int, seconds: float, held: threading.Event) -> None:
    with project_lock(Redis.from_url(redis_url), project):
        held.set()
        time.sleep(seconds)


def test_a_second_worker_waits_for_the_project_lock(redis_url) -> None:
    held, waited = threading.Event(), []
    first = threading.Thread(target=hold_lock, args=(redis_url, 5, 1.0, held))
    first.start()
    assert held.wait(5)
    started = time.monotonic()
    with project_lock(Redis.from_url(redis_url), 5):
        waited.append(time.monotonic() - started)
    first.join(5)
    assert waited[0] >= 0.8


def test_the_project_lock_does_not_block_other_projects(redis_url) -> None:
    held = threading.Event()
    first = threading.Thread(target=hold_lock, args=(redis_url, 5, 2.0, held))
    first.start()
    assert held.wait(5)
    started = time.monotonic()
    with project_lock(Redis.from_url(redis_url), 6):
        waited = time.monotonic() - started
    first.join(5)
    assert waited < 0.5


def test_the_project_lock_is_renewed_while_a_long_job_runs(redis_url) -> None:
    redis = Redis.from_url(redis_url)
    with project_lock(redis, 7, ttl=1, renew_every=0.3):
        time.sleep(2.5)  # far past the lock's 1 s life: only renewal keeps it
        assert redis.exists("label-studio-yolo:project:7:training_lock")
    assert not redis.exists("label-studio-yolo:project:7:training_lock"), "released at the end"


@pytest.fixture
def client(backend_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Iterator[FlaskClient]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "model-versions"))
    with app_client() as test_client:
        yield test_client


def test_the_webhook_queues_a_job_that_the_status_lists(client, queue) -> None:
    response = client.post("/webhook", json=event("START_TRAINING"))
    assert response.status_code == 200
    assert response.json["status"] == "queued"
    job_id = response.json["job_id"]
    assert queue.job_ids == [job_id]
    status = client.get("/training/status?project=5")
    assert status.status_code == 200
    project = status.json["5"]
    assert project["current"] is None and project["versions"] == []
    assert [job["job_id"] for job in project["jobs"]] == [job_id]
    assert project["jobs"][0]["progress"]["reason"] == "START_TRAINING"


def test_the_status_says_the_job_is_queued(client) -> None:
    client.post("/webhook", json=event("START_TRAINING"))
    jobs = client.get("/training/status?project=5").json["5"]["jobs"]
    assert [job["status"] for job in jobs] == ["queued"]


@pytest.fixture
def client_without_redis(backend_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "model-versions"))
    with app_client() as test_client:
        yield test_client


def test_with_redis_down_the_webhook_fails_fast_with_a_message(client_without_redis) -> None:
    started = time.monotonic()
    response = client_without_redis.post("/webhook", json=event("START_TRAINING"))
    assert time.monotonic() - started < 1.0
    assert response.status_code == 503
    assert response.json["status"] == "error"
    assert "START_TRAINING" in response.json["error"] and "project 5" in response.json["error"]


def test_with_redis_down_predictions_and_status_still_work(client_without_redis, sample_images: list[SampleImage]):
    task = {"id": 1, "data": {"image": sample_images[0].data_uri()}}
    body = {"tasks": [task], "project": "5.1700000000", "label_config": BOXES_CONFIG, "params": {}}
    response = client_without_redis.post("/predict", json=body)
    assert response.status_code == 200
    regions = response.json["results"][0]["result"]
    assert {label for region in regions for label in region["value"]["rectanglelabels"]} == {"Red box", "Blue"}
    status = client_without_redis.get("/training/status?project=5")
    assert status.status_code == 200
    assert status.json["5"]["jobs"][0]["status"] == "unknown"
