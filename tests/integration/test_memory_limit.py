"""The Kubernetes manifest's memory limit holds: the image's command, with a new YOLOv8s-size model, stays inside the
``backend`` container's ``resources.limits.memory`` (deploy/kubernetes/backend.yaml).

The image's ``gunicorn`` runs as the pod runs it (the Dockerfile's ENV, the ConfigMap, one worker of 16 threads,
TORCH_THREADS from its CPU limit) in a Linux memory cgroup of a test's own with the manifest's limit and no swap, as the
container runtime confines a pod. The weights have no OpenVINO export yet (a user's first start of a new model), so
the server exports them in a child process, then compiles the export: the heaviest moment of its life. It must
answer /health, /setup and a 16-task /predict with regions for every task, during and after the export, with no
process of the cgroup killed by the OOM killer; so must a second start (the export now on disk), whose anonymous
memory may not peak above the first start's.

Needs root on Linux with a memory cgroup (``tests/support/memory_cgroup.py``); elsewhere the test fails and says so.
"""

from __future__ import annotations

import math
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
import requests
import yaml

from conftest import PROJECT_ROOT
from tests.support.container import image_env, kubernetes_env
from tests.support.documented import documented
from tests.support.image_server import FileServer, serve_files
from tests.support.memory_cgroup import CgroupUnavailable, MemoryCgroup, Peak, kubernetes_bytes, memory_cgroup, mib
from tests.support.processes import free_port, wait_until_healthy

MANIFEST = PROJECT_ROOT / "deploy" / "kubernetes" / "backend.yaml"
CONTAINER = "backend"
WEIGHTS_NAME = "yolov8s-new.pt"
TASKS = 16

SCORE_THRESHOLD = "0.0001"
"""A randomly initialised YOLOv8 head scores every anchor at its prior, 5 objects in 80 classes over the anchors of
its stride: 1.6e-4 at stride 32, under 4e-5 at the others. 0.0001 keeps the stride-32 boxes, about 40-60 a photo
after NMS (at 0.01 no box is left)."""

START_TIMEOUT = 180.0
"""Seconds gunicorn may take to answer /health on a busy machine."""
PREDICT_TIMEOUT = 120.0
"""Seconds one /predict may take (a first start's may wait for the export)."""
EXPORT_TIMEOUT = 600.0
"""Seconds the first start's OpenVINO export and compilation may take on a busy machine near its memory limit."""
GRACE = 110.0
"""terminationGracePeriodSeconds of the manifest: how long gunicorn has after SIGTERM before it is killed."""


@dataclass(frozen=True)
class Start:
    """What one start of the server did inside its cgroup."""

    name: str
    limit: int
    peak_usage: int | None
    peak_anon: int
    samples: int
    anon_at_end: int
    limit_hits: int | None
    oom_kills: int
    regions: list[int]
    alive: bool

    def summary(self) -> str:
        return (
            f"{self.name}: peak usage {mib(self.peak_usage)} (memory.max_usage_in_bytes / memory.peak: page cache "
            f"included), peak anonymous memory {mib(self.peak_anon)} (total_rss / anon of memory.stat, {self.samples} "
            f"samples 50 ms apart), anonymous memory at the end {mib(self.anon_at_end)}; limit {mib(self.limit)} "
            f"reached {self.limit_hits} times, {self.oom_kills} processes OOM-killed, server alive: {self.alive}; "
            f"regions per task {self.regions}"
        )


def backend_limits() -> dict[str, str]:
    """``resources.limits`` of the backend container of the manifest, as written (``{"cpu": "2", "memory": "3Gi"}``)."""
    for document in yaml.safe_load_all(MANIFEST.read_text()):
        if document and document.get("kind") == "Deployment":
            for container in document["spec"]["template"]["spec"]["containers"]:
                if container["name"] == CONTAINER:
                    return {name: str(value) for name, value in container["resources"]["limits"].items()}
    raise AssertionError(f"no container {CONTAINER!r} in {MANIFEST}")


def kubernetes_cpus(quantity: str) -> int:
    """A Kubernetes CPU quantity (``2``, ``1500m``, ``0.5``) as whole cores, rounded up, as the backend reads a CPU
    quota (``label_studio_yolo/cpus.py``)."""
    cores = int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
    return max(1, math.ceil(cores))


def boxes_config(names: Iterable[str]) -> str:
    """A project with one ``<RectangleLabels>`` whose labels are the model's class names."""
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in names)
    return f"""<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="{SCORE_THRESHOLD}">
{labels}
  </RectangleLabels>
</View>"""


@pytest.fixture(scope="session")
def yolov8s_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLOv8s detector (11 M parameters, 80 classes) with random weights: the size of a user's model."""
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("yolov8s") / WEIGHTS_NAME
    YOLO("yolov8s.yaml").save(path)
    return path


@pytest.fixture
def photos() -> Iterator[list[str]]:
    """URLs of ultralytics' two sample photos (a bus, two people), served over HTTP on loopback, 16 in turn."""
    from ultralytics.utils import ASSETS

    with serve_files() as storage:
        yield photo_urls(storage, [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"])


def photo_urls(storage: FileServer, files: list[Path]) -> list[str]:
    urls = [storage.add(f"/photos/{path.name}", path.read_bytes()) for path in files]
    return [urls[index % len(urls)] for index in range(TASKS)]


def test_a_new_yolov8s_model_is_exported_and_served_within_the_manifest_s_memory_limit(
    yolov8s_weights: Path, photos: list[str], tmp_path: Path
) -> None:
    from ultralytics import YOLO

    limits = backend_limits()
    quantity = limits["memory"]
    limit = kubernetes_bytes(quantity)
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy2(yolov8s_weights, models / WEIGHTS_NAME)
    config = boxes_config(YOLO(yolov8s_weights).names.values())
    body = {
        "project": "memory.1",
        "label_config": config,
        "tasks": [{"id": index + 1, "data": {"image": url}} for index, url in enumerate(photos)],
    }

    first = serve_in_cgroup("first-start", limit, limits["cpu"], models, tmp_path, config, body)
    print(
        f"\n{MANIFEST.name}, container {CONTAINER!r}: memory limit {quantity} ({mib(limit)}), CPU limit {limits['cpu']}"
    )
    print(first.summary())
    assert first.oom_kills == 0, f"The first start of a new model exceeded the manifest's {quantity}: {first.summary()}"
    assert first.alive, first.summary()
    made = exports(models)
    assert len(made) == 1, f"the first start saves one OpenVINO export beside the weights: {made}"

    second = serve_in_cgroup("second-start", limit, limits["cpu"], models, tmp_path, config, body)
    print(second.summary())
    assert second.oom_kills == 0, (
        f"A start with the export on disk exceeded the manifest's {quantity}: {second.summary()}"
    )
    assert second.alive, second.summary()
    assert exports(models) == made, "the second start serves the export the first one made"
    # Compared: the anonymous memory charged to the cgroup (what the processes allocated; without swap only the OOM
    # killer takes it back), sampled every 50 ms. Not the cgroup's peak usage: it holds page cache, charged to the
    # first cgroup that reads a file, so the second start finds the libraries and the export already paid for. Not
    # the processes' summed RSS either: it counts the shared libraries' pages once per process.
    assert second.peak_anon <= first.peak_anon, (
        f"a start with the export on disk took more memory than the first:\n{first.summary()}\n{second.summary()}"
    )


def exports(models: Path) -> list[Path]:
    """The complete OpenVINO exports beside the weights (ultralytics' folder, its network and metadata in it)."""
    folders = sorted(path.parent for path in models.glob("*_openvino_model/metadata.yaml"))
    return [folder for folder in folders if any(folder.glob("*.xml"))]


def serve_in_cgroup(
    name: str, limit: int, cpus: str, models: Path, tmp_path: Path, config: str, body: dict[str, Any]
) -> Start:
    """Start the image's command in a new cgroup limited to ``limit`` bytes, serve ``body`` (see :func:`serve`),
    then stop the server with SIGTERM."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / f"{name}.log"
    env = pod_env(models, tmp_path / "data", tmp_path / "ultralytics", port, cpus)
    command = shlex.split(documented("gunicorn"))  # the Dockerfile's CMD, in the image's working folder
    try:
        with memory_cgroup(name, limit) as cgroup, cgroup.watching() as peak, log.open("wb") as output:
            process = subprocess.Popen(
                cgroup.command(command), cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )
            try:
                return serve(name, cgroup, peak, process, url, log, models, config, body)
            finally:
                stop(process)
    except CgroupUnavailable as error:
        pytest.fail(f"No memory cgroup to hold the server to the manifest's limit: {error}")


def pod_env(models: Path, data: Path, ultralytics: Path, port: int, cpus: str) -> dict[str, str]:
    """The backend container's environment: the Dockerfile's ENV and the ConfigMap, with the pod's volumes mapped to
    folders here; no Label Studio or Redis (the web API only needs them for images and training); the test's photo
    server on loopback stands in for public storage; offline.

    TORCH_THREADS is what the backend reads from the pod's CPU limit (``cpus``): the quota of a cgroup of the test's
    own would not be where it looks (the top of /sys/fs/cgroup, as a container sees it), and this machine's cores
    would make the threads, and the memory they take, depend on the machine that runs the test.
    """
    for folder in (models, data / "model-versions", ultralytics):
        folder.mkdir(parents=True, exist_ok=True)
    folders = {"/models": models, "/data": data, "/tmp/ultralytics": ultralytics}
    settings = {"MODEL_PATH": WEIGHTS_NAME, "LABEL_STUDIO_URL": "", "REDIS_URL": "", "YOLO_OFFLINE": "1"}
    settings["TORCH_THREADS"] = str(kubernetes_cpus(cpus))
    return image_env(kubernetes_env(), folders, PORT=str(port), MEDIA_ALLOWED_HOSTS="public,127.0.0.1", **settings)


def serve(
    name: str,
    cgroup: MemoryCgroup,
    peak: Peak,
    process: subprocess.Popen[bytes],
    url: str,
    log: Path,
    models: Path,
    config: str,
    body: dict[str, Any],
) -> Start:
    """/health, /setup and /predict until every task has regions (while the first start exports, predictions wait
    for it, and may be refused if it takes long); then, once the export is on disk, /predict must give every task
    regions at once; what the cgroup saw."""
    step = "start"
    try:
        wait_until_healthy(f"{url}/health", process, log, START_TIMEOUT)
        step = "/setup"
        setup = requests.post(f"{url}/setup", json={"project": body["project"], "schema": config}, timeout=120)
        assert setup.status_code == 200, setup.text
        step = "/predict"
        predict_until_every_task_has_regions(url, body, process, EXPORT_TIMEOUT)
        step = "waiting for the OpenVINO export"
        wait_for_export(models, process)
        step = "/predict with the export made"
        regions = predict_until_every_task_has_regions(url, body, process, 0)
        alive = process.poll() is None and requests.get(f"{url}/health", timeout=10).status_code == 200
    except Exception as error:
        figures = f"{cgroup.oom_kills()} processes OOM-killed, peak usage {mib(cgroup.peak_usage())}, peak anonymous "
        figures += f"memory {mib(peak.anon_bytes)}, limit {mib(cgroup.limit_bytes)}"
        raise AssertionError(
            f"{name}, {step}: {error}\n{figures}\n{log.read_text(errors='replace')[-4000:]}"
        ) from error
    return Start(
        name,
        cgroup.limit_bytes,
        cgroup.peak_usage(),
        peak.anon_bytes,
        peak.samples,
        cgroup.anon_bytes(),
        cgroup.limit_hits(),
        cgroup.oom_kills(),
        regions,
        alive,
    )


def predict_until_every_task_has_regions(
    url: str, body: dict[str, Any], process: subprocess.Popen[bytes], seconds: float
) -> list[int]:
    """POST /predict, again for up to ``seconds`` while an answer fails or leaves a task without regions (a first
    start's predictions wait for the export, and fail with a reason when it takes long); the regions per task."""
    deadline = time.monotonic() + seconds
    while True:
        answer = requests.post(f"{url}/predict", json=body, timeout=PREDICT_TIMEOUT)
        results = answer.json().get("results") if answer.status_code == 200 else None
        regions = [len(entry.get("result") or []) if entry else 0 for entry in results or []]
        if len(regions) == TASKS and all(regions):
            return regions
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(
                f"/predict answered {answer.status_code}, regions per task {regions}: {answer.text[:2000]}"
            )
        time.sleep(2)


def wait_for_export(models: Path, process: subprocess.Popen[bytes]) -> None:
    """Wait until the OpenVINO export is on disk beside the weights (renamed into place once its child process is
    done)."""
    deadline = time.monotonic() + EXPORT_TIMEOUT
    while not exports(models):
        assert process.poll() is None, f"the server exited with {process.returncode}"
        assert time.monotonic() < deadline, f"no OpenVINO export beside the weights after {EXPORT_TIMEOUT} s"
        time.sleep(0.5)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to gunicorn, as Kubernetes stops a pod; killed after the manifest's grace period."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
