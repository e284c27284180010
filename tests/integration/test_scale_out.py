"""Scale-out with real parts: three backend processes (gunicorn, each on its own port, as three replicas behind a
Service) and two rq workers, against one Redis and one MODEL_DIR, as a cluster's pods share them.

Label Studio's API is played by the outage tests' local server (a project's config and annotated tasks). We assert
what users and operators rely on: training requests arriving at every replica at once make one job; the version
a worker publishes is served by every replica within a bound; a replica that is stopped (SIGTERM, what Kubernetes
and ``docker stop`` send) finishes the request it is answering while the others answer the rest.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import PROJECT_ROOT, SampleImage, draw_samples
from label_studio_yolo.versions import VersionStore
from tests.e2e.conftest import BackendServer, backend_server
from tests.integration.test_outages import CONFIG, JOB_TIMEOUT, TRAINING, WORKER_CLASS, annotated_task, label_studio_api
from tests.support.image_server import serve_files
from tests.support.redis_server import RestartableRedis, restartable_redis
from tests.support.waiting import eventually

REPLICAS = 3
WORKERS = 2

SERVED_WITHIN = 5.0
"""Seconds from a version's publication until every replica serves it (each checks on its next request)."""


@dataclass(frozen=True)
class Cluster:
    """Redis, the replicas, and the folder of their logs; the MODEL_DIR they all share."""

    redis: RestartableRedis
    replicas: list[BackendServer]
    logs: Path
    model_dir: Path


@pytest.fixture(scope="module")
def cluster(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("scale-out")
    samples = draw_samples(logs, "task", 6, seed=11)
    tasks = [annotated_task(index + 1, sample) for index, sample in enumerate(samples)]
    model_dir = logs / "model-versions"
    with ExitStack() as stack:
        redis = stack.enter_context(restartable_redis())
        api = stack.enter_context(label_studio_api(tasks))
        settings = {
            "REDIS_URL": redis.url,
            "LABEL_STUDIO_URL": api,
            "LABEL_STUDIO_API_KEY": "scale-out-token",
            "MODEL_DIR": str(model_dir),
            **TRAINING,
        }
        replicas = []
        for number in range(REPLICAS):
            folder = logs / f"replica-{number}"
            folder.mkdir()
            replicas.append(stack.enter_context(backend_server(model_root, folder, threads=4, **settings)))
        yield Cluster(redis, replicas, logs, model_dir)


@contextmanager
def rq_workers(cluster: Cluster, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` rq workers with the project's worker class and the replicas' settings, stopped when the block ends."""
    rq = str(Path(sys.executable).parent / "rq")
    started = []
    for number in range(count):
        command = [rq, "worker", "-w", WORKER_CLASS, "--url", cluster.redis.url, "--name", f"w{number}", "training"]
        with (cluster.logs / f"worker-{number}.log").open("wb") as log:
            env = cluster.replicas[0].env
            started.append(subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        yield started
    finally:
        for worker in started:
            worker.terminate()
        for worker in started:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


def start_training(replica: BackendServer, project: int) -> dict[str, Any]:
    body = {"action": "START_TRAINING", "project": {"id": project, "title": f"Project {project}"}}
    answer = requests.post(f"{replica.url}/webhook", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def jobs(replica: BackendServer, project: int) -> list[dict[str, Any]]:
    answer = requests.get(f"{replica.url}/training/status", params={"project": project}, timeout=10)
    return list(answer.json()[str(project)]["jobs"])


def served_version(replica: BackendServer, project: int) -> str:
    body = {"project": f"{project}.1700000000", "schema": CONFIG}
    return str(requests.post(f"{replica.url}/setup", json=body, timeout=60).json()["model_version"])


def logs_of(cluster: Cluster) -> str:
    return "\n".join(
        f"--- {log}\n{log.read_text(errors='replace')[-2000:]}" for log in sorted(cluster.logs.rglob("*.log"))
    )


def test_training_asked_of_every_replica_at_once_is_one_job_whose_version_every_replica_serves(
    cluster: Cluster, sample_images: list[SampleImage]
) -> None:
    project = 31
    before = {served_version(replica, project) for replica in cluster.replicas}
    with ThreadPoolExecutor(2 * REPLICAS) as pool:  # "Start Training" twice, and webhooks, at every replica at once
        answers = list(pool.map(lambda replica: start_training(replica, project), cluster.replicas * 2))

    assert len({answer["job_id"] for answer in answers}) == 1, answers
    assert sorted(answer["status"] for answer in answers) == ["folded"] * (2 * REPLICAS - 1) + ["queued"]
    assert all(len(jobs(replica, project)) == 1 for replica in cluster.replicas), "every replica sees the one job"
    overviews = [requests.get(f"{replica.url}/ui/", timeout=10).text for replica in cluster.replicas]
    assert all(f"Project {project}</a>" in page and "queued" in page for page in overviews), "every replica's page"

    with rq_workers(cluster, WORKERS):
        finished = eventually(
            lambda: jobs(cluster.replicas[0], project)[0]["status"] in ("finished", "failed"), JOB_TIMEOUT
        )
        assert finished and jobs(cluster.replicas[0], project)[0]["status"] == "finished", logs_of(cluster)
        published = VersionStore(cluster.model_dir).current(project)
        assert published is not None
        publication = (cluster.model_dir / str(project) / "current.json").stat().st_mtime
        all_served = eventually(
            lambda: {served_version(replica, project) for replica in cluster.replicas} == {published.name},
            SERVED_WITHIN,
        )
        served_after = time.time() - publication

    assert len(before) == 1 and published.name not in before, "all replicas served the base weights before"
    assert all_served, f"every replica serves {published.name} within {SERVED_WITHIN} s of its publication"
    assert served_after < SERVED_WITHIN + 1
    task = {"id": 1, "data": {"image": sample_images[0].data_uri()}}
    body = {"tasks": [task], "project": f"{project}.1700000000", "label_config": CONFIG}
    for replica in cluster.replicas:
        result = requests.post(f"{replica.url}/predict", json=body, timeout=60).json()["results"][0]
        assert result["model_version"] == published.name, "its predictions carry the new version"
        page = requests.get(f"{replica.url}/ui/projects/{project}", timeout=10).text
        assert f'Serves <strong class="served">{published.name}</strong>' in page, "and its page says so"


def test_a_stopped_replica_finishes_its_request_while_the_others_answer(
    cluster: Cluster, sample_images: list[SampleImage]
) -> None:
    stopping, others = cluster.replicas[-1], cluster.replicas[:-1]
    assert stopping.process is not None
    with serve_files() as storage:
        storage.delay = 0.3  # slow storage: the batch takes a few seconds
        urls = [storage.add(f"/slow/{n}.png", sample_images[n % 6].path.read_bytes()) for n in range(16)]
        batch = {
            "tasks": [{"id": n, "data": {"image": url}} for n, url in enumerate(urls)],
            "project": "41.1",
            "label_config": CONFIG,
        }
        answered: dict[str, Any] = {}

        def long_request() -> None:
            answer = requests.post(f"{stopping.url}/predict", json=batch, timeout=120)
            answered.update(status=answer.status_code, results=answer.json().get("results"))

        request = threading.Thread(target=long_request)
        request.start()
        assert eventually(lambda: len(storage.requests) >= 2, 30), "the batch is under way"
        stopping.process.send_signal(signal.SIGTERM)  # what Kubernetes sends a pod it stops
        single = {
            "tasks": [{"id": 1, "data": {"image": sample_images[0].data_uri()}}],
            "project": "41.1",
            "label_config": CONFIG,
        }
        meanwhile = [requests.post(f"{replica.url}/predict", json=single, timeout=60) for replica in others]
        request.join(120)
        stopping.process.wait(60)

    assert answered["status"] == 200, "the request in flight is answered, not cut"
    assert len(answered["results"]) == 16 and all(entry["result"] for entry in answered["results"])
    assert [answer.status_code for answer in meanwhile] == [200] * len(others)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stopping.url}/health", timeout=5)  # gone: the Service sends its traffic to the others
