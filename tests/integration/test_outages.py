"""Outages, with real parts: Redis stopped, restarted and hung; a worker killed mid-training; workers side by side.

Everything runs as users run it: a private ``redis-server`` (append-only, like docker-compose's), the backend under
gunicorn, ``rq worker`` processes with the project's worker class, and HTTP. Label Studio's API (a project's
config and its annotated tasks, images inline as ``data:`` URIs) is played by a small local HTTP server, as
``tests/support/image_server.py`` plays its file storage; the real one is covered by ``tests/e2e``. Training is
tiny: six images at 64 px, one epoch, PyTorch (no OpenVINO export), every version published. Each test uses its own
projects; Redis is emptied before each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from redis import Redis
from rq import Worker

from conftest import PROJECT_ROOT, SampleImage, draw_samples
from label_studio_yolo.training.scheduler import key
from label_studio_yolo.training.worker import HEARTBEAT_EVERY
from label_studio_yolo.versions import META_FILE, WEIGHTS_FILE, VersionStore
from tests.e2e.conftest import BackendServer, backend_server
from tests.support.http_serving import LoopbackHTTPServer, serving
from tests.support.redis_server import RestartableRedis, restartable_redis

T = TypeVar("T")

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.25">
    <Label value="red"/>
    <Label value="blue"/>
  </RectangleLabels>
</View>"""
"""Every project's config: its labels are the tiny model's classes, so that model can stand for a trained version."""

WORKER_CLASS = "label_studio_yolo.training.worker.TrainingWorker"
"""The rq worker class the project runs training with."""

TRAINING = {
    "TRAIN_EPOCHS": "1",
    "TRAIN_IMGSZ": "64",
    "TRAIN_BATCH": "4",
    "TRAIN_VAL_FRACTION": "0.34",
    "TRAIN_PUBLISH_POLICY": "always",
    "INFERENCE_RUNTIME": "pytorch",
}
"""Tiny training: a job takes seconds, and publishes whatever it trains."""

RECOVERY_TIMEOUT = 60.0
"""Seconds allowed for a dead worker's job to show as failed (10-15 s with the project's worker class)."""

WORKER_START_TIMEOUT = 30.0
"""Seconds an ``rq worker`` may take to register with Redis."""

SLOW_PROJECT = 15
"""The project whose export from Label Studio is slow: its job waits there while Redis restarts."""

SLOW_EXPORT = HEARTBEAT_EVERY + 0.5
"""Seconds the slow project's export takes: long enough for the worker to miss a heartbeat meanwhile."""

JOB_TIMEOUT = 150.0
"""Seconds allowed for a handful of tiny jobs to finish on two busy cores."""


@dataclass(frozen=True)
class Parts:
    """The parts every test uses: Redis, the backend, and the folder of their logs and model versions."""

    redis: RestartableRedis
    backend: BackendServer
    logs: Path


def annotated_task(task_id: int, sample: SampleImage) -> dict[str, Any]:
    """A task as Label Studio's API returns it, with one annotation of the sample's boxes."""
    result = sample.annotation_result()
    annotation = {"id": task_id, "result": result, "was_cancelled": False, "updated_at": "2026-01-01T00:00:00Z"}
    return {"id": task_id, "data": {"image": sample.data_uri()}, "annotations": [annotation]}


@contextmanager
def label_studio_api(tasks: list[dict[str, Any]]) -> Iterator[str]:
    """Label Studio's ``/api/projects/<id>/`` and ``/api/tasks/?project=<id>`` for any project, over HTTP.

    The tasks of :data:`SLOW_PROJECT` take :data:`SLOW_EXPORT` seconds to come.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            page = int(query.get("page", ["1"])[0])
            if url.path.startswith("/api/projects/"):
                body: dict[str, Any] = {"id": int(url.path.split("/")[3]), "label_config": CONFIG}
            elif url.path == "/api/tasks/":
                if query.get("project") == [str(SLOW_PROJECT)] and page == 1:
                    time.sleep(SLOW_EXPORT)
                body = {"tasks": tasks if page == 1 else [], "total": len(tasks)}
            else:
                self.send_error(404)
                return
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(LoopbackHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url


@pytest.fixture(scope="module")
def parts(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parts]:
    """Redis, the stand-in Label Studio and the backend, shared by the tests (each uses its own projects)."""
    logs = tmp_path_factory.mktemp("outages")
    samples = draw_samples(logs, "task", 6, seed=7)
    tasks = [annotated_task(index + 1, sample) for index, sample in enumerate(samples)]
    with ExitStack() as stack:
        redis = stack.enter_context(restartable_redis())
        api = stack.enter_context(label_studio_api(tasks))
        settings = {"REDIS_URL": redis.url, "LABEL_STUDIO_URL": api, "LABEL_STUDIO_API_KEY": "outage-token"}
        backend = stack.enter_context(backend_server(model_root, logs, **settings, **TRAINING))
        yield Parts(redis, backend, logs)


@pytest.fixture(autouse=True)
def empty_redis(parts: Parts) -> None:
    with Redis.from_url(parts.redis.url) as client:
        client.flushdb()


def start_worker(parts: Parts, name: str, **env: str) -> subprocess.Popen[bytes]:
    """``rq worker`` with the project's worker class, as docker-compose runs it; its log goes to ``<name>.log``."""
    rq = str(Path(sys.executable).parent / "rq")
    command = [rq, "worker", "-w", WORKER_CLASS, "--url", parts.redis.url, "--name", name, "training"]
    with (parts.logs / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            command, cwd=PROJECT_ROOT, env={**parts.backend.env, **env}, stdout=log, stderr=subprocess.STDOUT
        )


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (an rq worker's work horse), from ``/proc``."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def kill_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and then the work horse training its job, as when a machine or container dies."""
    children = children_of(worker.pid)
    worker.kill()
    worker.wait()
    for child in children:
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


@contextmanager
def workers(parts: Parts, *names: str, **env: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run one worker per name until the block ends (then kill them: a test leaves no job running)."""
    started = [start_worker(parts, name, **env) for name in names]
    try:
        wait_for(lambda: listening(parts, names), WORKER_START_TIMEOUT, f"workers {names} listening", parts)
        yield started
    finally:
        for worker in started:
            if worker.poll() is None:
                kill_worker(worker)


def listening(parts: Parts, names: tuple[str, ...]) -> bool | None:
    """True once every worker of ``names`` has registered with Redis (one started while Redis is down exits)."""
    with Redis.from_url(parts.redis.url) as client:
        registered = {worker.name for worker in Worker.all(connection=client)}
    return True if registered.issuperset(names) else None


def worker_logs(parts: Parts) -> str:
    """The end of every worker's log and of the backend's, for failure messages."""
    parts = [f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in sorted(parts.logs.glob("*.log"))]
    return "\n".join(parts)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, parts: Parts) -> T:
    """Poll ``check`` until it returns something, or fail with ``what`` and the logs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s\n{worker_logs(parts)}")


def start_training(parts: Parts, project: int) -> requests.Response:
    """Label Studio's "Start Training", with the 5 s that bound a hung request (Label Studio itself waits 1 s)."""
    body = {"action": "START_TRAINING", "project": {"id": project, "title": f"Project {project}"}}
    return requests.post(f"{parts.backend.url}/webhook", json=body, timeout=5)


def status(parts: Parts, project: int) -> dict[str, Any]:
    """``/training/status`` of ``project``."""
    response = requests.get(f"{parts.backend.url}/training/status", params={"project": project}, timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json()[str(project)])


def job(parts: Parts, project: int, job_id: str) -> dict[str, Any]:
    """The status entry of one job."""
    return next(entry for entry in status(parts, project)["jobs"] if entry.get("job_id") == job_id)


def jobs_when(
    parts: Parts, project: int, done: Callable[[dict[str, dict[str, Any]]], bool]
) -> dict[str, dict[str, Any]] | None:
    """The project's jobs by id once ``done`` says so, else None (for :func:`wait_for`)."""
    jobs = {entry["job_id"]: entry for entry in status(parts, project)["jobs"]}
    return jobs if done(jobs) else None


def job_when(parts: Parts, project: int, job_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The job's status entry once ``done`` says so, else None (for :func:`wait_for`)."""
    entry = job(parts, project, job_id)
    return entry if done(entry) else None


def finished(parts: Parts, project: int, job_id: str) -> dict[str, Any]:
    """Wait until the job has finished; fail at once if it failed."""

    def check() -> dict[str, Any] | None:
        entry = job(parts, project, job_id)
        assert entry["status"] != "failed", f"{job_id} failed: {entry.get('error')}\n{worker_logs(parts)}"
        return entry if entry["status"] == "finished" else None

    return wait_for(check, JOB_TIMEOUT, f"job {job_id} finished", parts)


def served_version(parts: Parts, project: int) -> str:
    """The version ``/setup`` reports for ``project``."""
    body = {"project": f"{project}.1700000000", "schema": CONFIG}
    response = requests.post(f"{parts.backend.url}/setup", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def predicted_labels(parts: Parts, sample: SampleImage) -> set[str]:
    """The labels of the regions ``/predict`` returns for one task of a project that serves the base weights."""
    task = {"id": 1, "data": {"image": sample.data_uri()}}
    body = {"tasks": [task], "project": "99.1700000000", "label_config": CONFIG, "params": {}}
    response = requests.post(f"{parts.backend.url}/predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return {label for region in response.json()["results"][0]["result"] for label in region["value"]["rectanglelabels"]}


def publish_tiny_model(parts: Parts, tiny_weights: Path, project: int) -> str:
    """Give ``project`` a published version (the tiny model, whose classes are the config's labels)."""
    store, name = VersionStore(parts.logs / "model-versions"), f"project{project}-v001-00000000"
    with store.new_version(project, name) as folder:
        (folder / WEIGHTS_FILE).write_bytes(tiny_weights.read_bytes())
        (folder / META_FILE).write_text(json.dumps({"task": "detect", "parent": None}))
    store.publish(project, name)
    return name


def in_training(parts: Parts, project: int, job_id: str) -> dict[str, Any]:
    """Wait until the job has trained its first epoch."""
    return wait_for(
        lambda: job_when(parts, project, job_id, lambda entry: entry["progress"].get("epoch", 0) >= 1),
        JOB_TIMEOUT,
        f"job {job_id} in training",
        parts,
    )


def lock_interval(entry: dict[str, Any]) -> tuple[float, float]:
    """When the job held its project's training lock."""
    return entry["progress"]["lock_acquired_at"], entry["progress"]["lock_released_at"]


def logged(parts: Parts, worker: str, text: str) -> bool | None:
    """True once the worker's log (its work horse's too) has a line with ``text``."""
    return True if text in (parts.logs / f"{worker}.log").read_text(errors="replace") else None


def accepted(response: requests.Response) -> dict[str, Any] | None:
    """The webhook's answer if the request was accepted, else None (for :func:`wait_for`)."""
    return dict(response.json()) if response.status_code == 200 else None


def test_with_redis_down_training_requests_fail_fast_and_predictions_go_on_until_it_is_back(
    parts: Parts, sample_images: list[SampleImage]
) -> None:
    with workers(parts, "rides-the-outage"):
        parts.redis.stop()
        try:
            assert predicted_labels(parts, sample_images[0]) == {"red", "blue"}
            refused = start_training(parts, 11)  # a hung request would raise requests' Timeout here
            jobs = status(parts, 11)["jobs"]
        finally:
            parts.redis.start()
        assert refused.status_code == 503
        assert "Redis" in refused.json()["error"] and "project 11" in refused.json()["error"]
        logged = [line for line in parts.backend.log.read_text().splitlines() if "[ERROR]" in line]
        assert any("Redis at 127.0.0.1" in line and "project 11" in line for line in logged), logged
        assert [entry["status"] for entry in jobs] == ["unknown"] and "Redis" in jobs[0]["error"]

        queued = start_training(parts, 11)  # the same backend process: redis-py has reconnected
        assert queued.status_code == 200 and queued.json()["status"] == "queued", queued.text
        finished(parts, 11, queued.json()["job_id"])  # the worker that lived through the outage trains it
    assert served_version(parts, 11).startswith("project11-v001-")


def test_a_job_running_while_redis_restarts_finishes_and_its_worker_stays(parts: Parts) -> None:
    with workers(parts, "through-a-restart", TRAIN_EPOCHS="20") as [worker]:
        job_id = start_training(parts, SLOW_PROJECT).json()["job_id"]
        wait_for(
            lambda: job_when(parts, SLOW_PROJECT, job_id, lambda entry: entry["progress"]["stage"] == "exporting"),
            JOB_TIMEOUT,
            "the job exporting",
            parts,
        )
        parts.redis.stop()
        try:  # Redis stays down until the job has missed a heartbeat: a restart shorter than the worker's grace
            wait_for(lambda: logged(parts, "through-a-restart", "no heartbeat for job"), JOB_TIMEOUT, "missed", parts)
        finally:
            parts.redis.start()
        run = finished(parts, SLOW_PROJECT, job_id)
        assert worker.poll() is None and listening(parts, ("through-a-restart",)), "the worker waits for the next job"
    assert run["progress"]["epoch"] == 20
    assert served_version(parts, SLOW_PROJECT).startswith(f"project{SLOW_PROJECT}-v001-")


def test_with_redis_hung_training_requests_still_answer_at_once_and_queue_again_once_it_answers(
    parts: Parts, sample_images: list[SampleImage]
) -> None:
    parts.redis.pause()  # connections are accepted and then nothing answers: the case that needs timeouts
    try:
        refused = start_training(parts, 14)  # requests' Timeout if the backend waited on Redis
        jobs = status(parts, 14)["jobs"]
        assert predicted_labels(parts, sample_images[0]) == {"red", "blue"}
    finally:
        parts.redis.resume()
    resumed = time.monotonic()
    assert refused.status_code == 503
    assert "Redis" in refused.json()["error"] and "project 14" in refused.json()["error"]
    assert [entry["status"] for entry in jobs] == ["unknown"] and "Redis" in jobs[0]["error"]
    # The cut-off request's commands run when Redis wakes: its enqueue lock may hold project 14 for 3 s.
    queued = wait_for(lambda: accepted(start_training(parts, 14)), 10, "START_TRAINING accepted again", parts)
    print(f"\nRedis hung: START_TRAINING queued again {time.monotonic() - resumed:.1f} s after it answered")
    assert queued["status"] == "queued"
    assert [entry["job_id"] for entry in status(parts, 14)["jobs"]] == [queued["job_id"]]


def test_a_worker_killed_mid_training_fails_its_job_keeps_the_served_version_and_frees_the_project(
    parts: Parts, tiny_weights: Path
) -> None:
    previous = publish_tiny_model(parts, tiny_weights, 12)
    assert served_version(parts, 12) == previous
    with workers(parts, "doomed", TRAIN_EPOCHS="500") as [doomed]:
        killed_job = start_training(parts, 12).json()["job_id"]
        training = in_training(parts, 12, killed_job)
        kill_worker(doomed)
    killed_at = time.time()
    assert training["status"] == "started"

    next_job = start_training(parts, 12).json()
    assert next_job["status"] == "queued", "the dead job does not hold the project's queue slot"
    assert served_version(parts, 12) == previous
    with workers(parts, "successor"):
        failed = wait_for(
            lambda: job_when(parts, 12, killed_job, lambda entry: entry["status"] == "failed"),
            RECOVERY_TIMEOUT,
            "the dead worker's job shown as failed",
            parts,
        )
        failed_after = time.time() - killed_at
        assert "worker running this job stopped" in failed["error"][0], failed
        assert served_version(parts, 12) == previous, "a dead worker's job never changes what is served"
        successor = finished(parts, 12, next_job["job_id"])

    project = status(parts, 12)
    assert project["current"] == served_version(parts, 12) != previous
    assert project["current"].startswith("project12-v002-")
    assert [(v["version"], v["parent"]) for v in project["versions"]][-1] == (project["current"], previous)
    print(
        f"\nworker killed at epoch {training['progress']['epoch']}: job shown failed after {failed_after:.1f} s, "
        f"project lock free for the next job after {successor['progress']['lock_acquired_at'] - killed_at:.1f} s"
    )


def test_a_job_that_loses_its_project_lock_stops_without_publishing(parts: Parts) -> None:
    with workers(parts, "loses-its-lock", TRAIN_EPOCHS="500"):
        job_id = start_training(parts, 13).json()["job_id"]
        in_training(parts, 13, job_id)
        with Redis.from_url(parts.redis.url) as client:
            client.delete(key(13, "training_lock"))  # what Redis down for longer than the lock lives does
        failed = wait_for(
            lambda: job_when(parts, 13, job_id, lambda entry: entry["status"] == "failed"),
            RECOVERY_TIMEOUT,
            "the job stopped",
            parts,
        )
    assert "lost its training lock" in failed["error"][0], failed
    project = status(parts, 13)
    assert project["current"] is None and project["versions"] == [], "it publishes nothing"


def test_workers_never_train_one_project_at_once_but_train_two_projects_side_by_side(parts: Parts) -> None:
    with workers(parts, "first", "second", "third"):
        first = start_training(parts, 21).json()["job_id"]
        other = start_training(parts, 22).json()["job_id"]
        wait_for(
            lambda: job_when(parts, 21, first, lambda entry: entry["progress"]["stage"] != "queued"),
            JOB_TIMEOUT,
            "the first job claimed",
            parts,
        )
        second = start_training(parts, 21).json()["job_id"]
        side_by_side = wait_for(
            lambda: jobs_when(parts, 21, lambda jobs: jobs[second]["status"] == "started"),
            JOB_TIMEOUT,
            "the idle worker took the second job",
            parts,
        )
        assert side_by_side[first]["status"] == "started", "two workers run a job of project 21 each"
        runs = [finished(parts, 21, job_id) for job_id in (first, second)]
        other_run = finished(parts, 22, other)

    (_, first_released), (second_acquired, _) = (lock_interval(run) for run in runs)
    assert first_released <= second_acquired, "the second job trained only once the first was done"
    other_acquired, other_released = lock_interval(other_run)
    assert other_acquired < first_released and lock_interval(runs[0])[0] < other_released, "project 22 trained beside"
    versions = status(parts, 21)["versions"]
    assert [v["parent"] for v in versions] == [None], versions
    skipped = runs[1]["result"]
    assert skipped["status"] == "skipped", "the same annotations are not trained twice"
    assert versions[0]["version"] in skipped["reason"], "the second job started from the first's published version"
