"""The commands the README, docs/, the Makefile, the image, docker-compose.yml and the Kubernetes manifests tell people
to type, run exactly as written (``tests/support/documented.py``), each in a process of its own, against real parts:
the backend they serve answers /setup and /predict with the right boxes, the workers they start run the jobs queued
on a real Redis, and none of them leaves a ``runs/`` folder behind.

Commands that need Label Studio (the bulk command, the webhook's curl, the worker of a real training job) are in
``tests/e2e/``; which test runs which command: ``tests/test_documented_commands.py``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis

from conftest import BOXES_CONFIG, PROJECT_ROOT, WEIGHTS_NAME, SampleImage
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.scheduler import RedisScheduler, redis_jobs
from label_studio_yolo.versions import META_FILE, VersionStore
from tests.integration.test_vlm import LABELS as VLM_LABELS
from tests.integration.test_vlm import ZERO_SHOT_CONFIG
from tests.support.basic_auth import PASSWORD, USER
from tests.support.container import VENV_BIN, compose_env, image_env, kubernetes_env
from tests.support.documented import (
    documented,
    fill_in,
    no_new_runs_folder,
    run_as_user,
    running_as_user,
    serving_as_user,
    user_env,
)
from tests.support.processes import free_port
from tests.support.redis_server import running_redis
from tests.support.vlm_server import colour_reader, serve_vlm

LABELS = {"red": "Red box", "blue": "Blue"}
"""BOXES_CONFIG's label for each colour the tiny model finds."""


def backend_settings(model_root: Path, tmp_path: Path, port: int, **settings: str) -> dict[str, str]:
    """What a user sets in the shell to serve the tiny model on ``port``."""
    return {
        "MODEL_ROOT": str(model_root),
        "MODEL_PATH": WEIGHTS_NAME,
        "MODEL_DIR": str(tmp_path / "model-versions"),
        "PORT": str(port),
        "TORCH_THREADS": "1",
        **settings,
    }


def predicted_labels(url: str, sample: SampleImage, config: str = BOXES_CONFIG, auth: Any = None) -> list[str]:
    """Label Studio's /setup and /predict for one task with ``sample`` as a data: URI; the regions' labels, sorted."""
    setup = requests.post(f"{url}/setup", json={"project": "1.1", "schema": config}, auth=auth, timeout=120)
    assert setup.status_code == 200, setup.text
    body = {"tasks": [{"id": 1, "data": {"image": sample.data_uri()}}], "project": "1.1", "label_config": config}
    answer = requests.post(f"{url}/predict", json=body, auth=auth, timeout=120)
    assert answer.status_code == 200, answer.text
    [entry] = answer.json()["results"]
    return sorted(region["value"]["rectanglelabels"][0] for region in entry["result"])


def true_labels(sample: SampleImage, labels: dict[str, str] = LABELS) -> list[str]:
    return sorted(labels[box.label] for box in sample.truth)


def store_versions(model_dir: Path, project: int, names: list[str]) -> VersionStore:
    """``names`` stored as versions of ``project`` (metadata only), the last one published."""
    store = VersionStore(model_dir)
    for name in names:
        with store.new_version(project, name) as folder:
            (folder / META_FILE).write_text(json.dumps({"annotations": 12}))
    store.publish(project, names[-1])
    return store


def test_make_run_serves_the_backend_and_the_training_status_commands_report_its_versions(
    model_root: Path, sample_images: list[SampleImage], tmp_path: Path
) -> None:
    port = free_port()
    settings = backend_settings(model_root, tmp_path, port)
    store_versions(Path(settings["MODEL_DIR"]), 7, ["project7-v001-1a2b3c4d"])
    env = user_env(tmp_path / "home", **settings)
    curl = fill_in(documented("curl http://localhost:9090/training/status?project=7"), {":9090": f":{port}"})

    with (
        no_new_runs_folder(PROJECT_ROOT),
        serving_as_user(documented("make run"), f"http://127.0.0.1:{port}/health", PROJECT_ROOT, env, tmp_path / "log"),
    ):
        labels = predicted_labels(f"http://127.0.0.1:{port}", sample_images[0])
        served_status = run_as_user(curl, PROJECT_ROOT, env, timeout=60)
    printed_status = run_as_user(
        documented(".venv/bin/python -m label_studio_yolo.training.status --project 7"), PROJECT_ROOT, env, timeout=120
    )

    assert labels == true_labels(sample_images[0])
    for done in (served_status, printed_status):
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)["7"]
        assert status["current"] == "project7-v001-1a2b3c4d" and status["versions"][0]["annotations"] == 12


def test_make_dev_serves_the_backend_the_label_studio_ml_way(
    model_root: Path, sample_images: list[SampleImage], tmp_path: Path
) -> None:
    port = free_port()
    env = user_env(tmp_path / "home", **backend_settings(model_root, tmp_path, port))

    with (
        no_new_runs_folder(PROJECT_ROOT),
        serving_as_user(documented("make dev"), f"http://127.0.0.1:{port}/health", PROJECT_ROOT, env, tmp_path / "log"),
    ):
        labels = predicted_labels(f"http://127.0.0.1:{port}", sample_images[1])

    assert labels == true_labels(sample_images[1])


VLM_COMMANDS = {
    "self-hosted": (
        "VLM_BASE_URL=http://gpu-host:8000/v1 VLM_MODEL=Qwen/Qwen2-VL-7B-Instruct make run",
        "http://gpu-host:8000/v1",
    ),
    "hosted": ("VLM_BASE_URL=https://api.openai.com/v1 VLM_MODEL=gpt-4o-mini make run", "https://api.openai.com/v1"),
}
"""docs/vlm.md's two ways to serve with a vision-language model, and the endpoint each names."""


@pytest.mark.parametrize("kind", list(VLM_COMMANDS))
def test_the_vision_language_commands_serve_what_the_endpoint_sees(
    kind: str, model_root: Path, sample_images: list[SampleImage], tmp_path: Path
) -> None:
    """The endpoint named in the command is a local OpenAI-compatible server that reads the boxes' colours."""
    endpoint = VLM_COMMANDS[kind][1]
    port = free_port()
    env = user_env(tmp_path / "home", **backend_settings(model_root, tmp_path, port))
    key = "sk-test-documented-9d1e"
    with serve_vlm(colour_reader(VLM_LABELS)) as server:
        script = documented(VLM_COMMANDS[kind][0])
        if kind == "hosted":  # the block exports the key before it starts the backend
            script = f"{fill_in(documented('export VLM_API_KEY=sk-...'), {'sk-...': key})}\n{script}"
        script = fill_in(script, {endpoint: server.base_url})
        with serving_as_user(script, f"http://127.0.0.1:{port}/health", PROJECT_ROOT, env, tmp_path / "log"):
            labels = predicted_labels(f"http://127.0.0.1:{port}", sample_images[2], ZERO_SHOT_CONFIG)

    assert labels == true_labels(sample_images[2], VLM_LABELS)
    if kind == "hosted":
        assert {question.authorization for question in server.questions} == {f"Bearer {key}"}


def test_the_image_s_command_serves_and_its_health_checks_pass_with_compose_s_settings(
    model_root: Path, sample_images: list[SampleImage], tmp_path: Path
) -> None:
    """``gunicorn`` in the image's working folder, with the Dockerfile's ENV and docker-compose.yml's backend
    environment (the user's shell setting MODEL_PATH and Basic auth, as the README says); the container's own port
    9090 is a free port here. Then the image's, compose's and Kubernetes' health checks, in the same environment."""
    port = free_port()
    shell = {"MODEL_PATH": WEIGHTS_NAME, "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD}
    folders = {"/models": model_root, "/data": tmp_path / "data", "/tmp/ultralytics": tmp_path / "ultralytics"}
    with running_redis() as redis_url:
        env = image_env(compose_env("backend", shell), folders, PORT=str(port), REDIS_URL=redis_url)
        health = f"http://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{port}/health"
        compose_check = documented("python -m label_studio_yolo.healthcheck http://127.0.0.1:9090/health")
        checks = [
            documented("python -m label_studio_yolo.healthcheck /health"),  # Dockerfile, Kubernetes probes
            fill_in(compose_check, {":9090": f":{port}"}),
        ]
        with (
            no_new_runs_folder(PROJECT_ROOT),
            serving_as_user(documented("gunicorn"), health, PROJECT_ROOT, env, tmp_path / "log"),
        ):
            labels = predicted_labels(f"http://127.0.0.1:{port}", sample_images[3], auth=(USER, PASSWORD))
            passed = [run_as_user(check, PROJECT_ROOT, env, timeout=60).returncode for check in checks]
            without_password = {name: value for name, value in env.items() if name != "BASIC_AUTH_PASS"}
            refused = [run_as_user(check, PROJECT_ROOT, without_password, timeout=60).returncode for check in checks]

    assert labels == true_labels(sample_images[3])
    assert passed == [0, 0], (tmp_path / "log").read_text()[-3000:]
    assert 0 not in refused, "a health check without the password is refused by the backend"


WORKER_COMMANDS = {
    "docker-compose.yml": (
        "rq worker -w label_studio_yolo.training.worker.TrainingWorker --url redis://redis:6379/0 training",
        "redis://redis:6379/0",
    ),
    "kubernetes": (
        "rq worker -w label_studio_yolo.training.worker.TrainingWorker --url '$(REDIS_URL)' training",
        "'$(REDIS_URL)'",  # Kubernetes puts the pod's REDIS_URL there
    ),
}


@pytest.mark.parametrize("where", list(WORKER_COMMANDS))
def test_the_deployed_worker_command_runs_the_training_jobs_the_backend_queues(
    where: str, model_root: Path, tmp_path: Path
) -> None:
    """The worker starts as the deployment starts it and takes the backend's job from the queue; its Label Studio
    (the deployment's default address, which does not resolve here) cannot be reached, so the job fails at once, with
    the backend's own lines and the reason in the worker's output."""
    redis_in_command = WORKER_COMMANDS[where][1]
    folders = {"/models": model_root, "/data": tmp_path / "data", "/tmp/ultralytics": tmp_path / "ultralytics"}
    with running_redis() as redis_url:
        if where == "kubernetes":
            service_env = {**kubernetes_env(), "LABEL_STUDIO_API_KEY": "from-the-secret"}
        else:
            service_env = compose_env("worker", {"LABEL_STUDIO_API_KEY": "from-the-shell"})
        env = image_env(service_env, folders, REDIS_URL=redis_url)
        queued = RedisScheduler(BackendSettings(redis_url=redis_url)).on_event("START_TRAINING", {"project": {"id": 5}})
        assert queued["status"] == "queued", queued
        script = fill_in(documented(WORKER_COMMANDS[where][0]), {redis_in_command: shlex.quote(redis_url)})
        with no_new_runs_folder(PROJECT_ROOT), running_as_user(script, PROJECT_ROOT, env, tmp_path / "worker.log"):
            job = _wait_for_job_end(Redis.from_url(redis_url), 5)

    output = (tmp_path / "worker.log").read_text()
    assert job["status"] == "failed", job
    assert "ConnectError" in output and "Name or service not known" in output, output[-3000:]
    assert "Training progress" in output, "the backend's lines reach the worker's output"


def _wait_for_job_end(redis: Redis, project: int, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = redis_jobs(redis, project)
        if jobs and jobs[0]["status"] in ("finished", "failed"):
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError(f"project {project}'s job did not end within {timeout} s: {redis_jobs(redis, project)}")


def test_pip_check_reports_only_label_studio_ml_s_stale_pins(tmp_path: Path) -> None:
    """docs/security.md: label-studio-ml is installed without its pins, and that is all ``pip check`` finds."""
    done = run_as_user(documented("pip check"), PROJECT_ROOT, user_env(tmp_path / "home", VENV_BIN), timeout=120)

    problems = done.stdout.strip().splitlines()
    assert problems, "label-studio-ml 1.0.9's pins of Flask 1.1.2 and friends are reported"
    assert all(line.startswith("label-studio-ml 1.0.9 ") for line in problems), problems


def test_make_install_and_install_test_are_done_once_make_test_ran(tmp_path: Path) -> None:
    env = user_env(tmp_path / "home")
    for target in (documented("make install"), documented("make install-test")):
        done = run_as_user(target, PROJECT_ROOT, env, timeout=600)
        assert done.returncode == 0, done.stderr
        assert "pip install" not in done.stdout, f"{target} installed again what make test had installed"
    assert run_as_user(".venv/bin/label-studio-yolo --help", PROJECT_ROOT, env, timeout=120).returncode == 0


def test_make_clean_removes_the_virtualenvs_and_caches_and_nothing_else(tmp_path: Path) -> None:
    """In a copy of the Makefile, so that this checkout keeps its virtualenvs."""
    shutil.copy2(PROJECT_ROOT / "Makefile", tmp_path / "Makefile")
    made = [".venv", ".venv-label-studio", ".venv-audit", ".cache", ".pytest_cache", ".mypy_cache", ".ruff_cache"]
    for name in made:
        (tmp_path / name / "inside").mkdir(parents=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.pt").write_bytes(b"weights")

    done = run_as_user(documented("make clean"), tmp_path, user_env(tmp_path / "home"), timeout=60)

    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["Makefile", "home", "models"]
    assert (tmp_path / "models" / "mine.pt").read_bytes() == b"weights"


def test_the_tiny_models_command_ships_nothing_when_every_model_is_shipped(tmp_path: Path) -> None:
    shipped = PROJECT_ROOT / "tests" / "assets" / "models"
    before = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in shipped.iterdir()}

    done = run_as_user(
        documented("python -m tests.support.synthetic"),
        PROJECT_ROOT,
        user_env(tmp_path / "home", VENV_BIN),
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    assert "shipped" not in done.stdout
    assert {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in shipped.iterdir()} == before


BENCHMARKS = [
    "python -m benchmarks.bulk_predict --tasks 100 --threads 2",
    "python -m benchmarks.predict_speed --threads 2",
    "python -m benchmarks.predict_load --clients 8 --seconds 60",
    "python -m benchmarks.slow_clients",
    "python -m benchmarks.decode_memory --side 9999 --copies 4",
    "python -m benchmarks.parked_uploads --uploads 20",
    "python -m benchmarks.storage_predict --tasks 32 --repeat 9",
    "python -m benchmarks.storage_predict --tasks 32 --repeat 9 --apart",
]


@pytest.mark.parametrize("command", BENCHMARKS)
def test_each_documented_benchmark_takes_its_documented_options(command: str, tmp_path: Path) -> None:
    """Benchmarks run for minutes (and start their own Label Studio), so CI asks each only for its ``--help``."""
    words = shlex.split(documented(command))
    env = user_env(tmp_path / "home", VENV_BIN)

    done = run_as_user(shlex.join([*words[:3], "--help"]), PROJECT_ROOT, env, timeout=120)

    assert done.returncode == 0, done.stderr
    assert all(option in done.stdout for option in words if option.startswith("--")), done.stdout
