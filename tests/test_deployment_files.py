"""Static checks of the deployment files: docker-compose.yml, validated against the Compose Specification
schema vendored by check-jsonschema, the Dockerfile, read as text, and gunicorn.conf.py, which every place that
serves shares. No Docker engine is needed."""

from __future__ import annotations

import copy
import importlib.resources
import json
import runpy
from typing import Any

import gunicorn.config
import gunicorn.util
import jsonschema
import pytest
from gunicorn.workers.gasgi import ASGIWorker

from tests.support.container import (
    ROOT,
    compose_value,
    dockerfile_env,
    dockerfile_instructions,
    load_compose,
)

GUNICORN_CONF = ROOT / "gunicorn.conf.py"
MAKEFILE = ROOT / "Makefile"

SERVING_VARIABLES = {"WORKERS", "PORT"}
"""Variables read by gunicorn.conf.py rather than the backend's settings."""


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema_file = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return [error.message for error in validator_class(schema).iter_errors(document)]


def gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The settings gunicorn.conf.py gives gunicorn when the environment holds ``env`` (and no other serving
    variable)."""
    for name in SERVING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    values = runpy.run_path(str(GUNICORN_CONF))
    return {name: value for name, value in values.items() if not name.startswith("__") and name != "os"}


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    assert compose_errors(load_compose()) == []


def test_compose_validation_rejects_broken_files() -> None:
    bad_ports = copy.deepcopy(load_compose())
    bad_ports["services"]["backend"]["ports"] = 9090
    assert any("9090" in error for error in compose_errors(bad_ports))

    unknown_key = copy.deepcopy(load_compose())
    unknown_key["services"]["worker"]["replicaz"] = 3
    assert any("replicaz" in error for error in compose_errors(unknown_key))


def test_backend_and_worker_share_image_env_and_model_versions() -> None:
    services = load_compose()["services"]
    backend, worker = services["backend"], services["worker"]
    assert backend["image"] == worker["image"] == "label-studio-yolo-backend:latest"
    assert backend["environment"] == worker["environment"]
    for service in (backend, worker):
        assert "model-versions:/data/model-versions" in service["volumes"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_worker_runs_rq_against_the_redis_service() -> None:
    services = load_compose()["services"]
    command = services["worker"]["command"].split()
    assert command[:2] == ["rq", "worker"]
    assert command[command.index("-w") + 1] == "label_studio_yolo.training.worker.TrainingWorker"  # fast recovery
    url = command[command.index("--url") + 1]
    assert url == services["worker"]["environment"]["REDIS_URL"]
    assert url.split("//")[1].split(":")[0] in services
    assert command[-1] == "training"


def test_healthchecks() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        if name == "worker":  # serves no HTTP, so the image's /health probe is switched off
            assert service["healthcheck"] == {"disable": True}
        else:
            assert service["healthcheck"]["test"], name
    assert "/health" in " ".join(services["backend"]["healthcheck"]["test"])


def test_backend_publishes_9090() -> None:
    assert "9090:9090" in load_compose()["services"]["backend"]["ports"]


def test_dockerfile_runs_gunicorn_as_non_root_with_healthcheck() -> None:
    instructions = dockerfile_instructions()
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.upper().startswith("HEALTHCHECK ") and "/health" in line for line in instructions)
    cmd = [line for line in instructions if line.upper().startswith("CMD ")][-1]
    assert json.loads(cmd.split(None, 1)[1]) == ["gunicorn"], "gunicorn.conf.py alone says how to serve"
    assert "WORKDIR /app" in instructions and "COPY --chown=app:app . /app" in instructions
    assert "gunicorn.conf.py" not in (ROOT / ".dockerignore").read_text()
    volumes = [line for line in instructions if line.upper().startswith("VOLUME ")]
    assert any("/models" in line for line in volumes)


def test_dockerfile_env_matches_compose_env() -> None:
    image_env = dockerfile_env()
    compose_env = load_compose()["services"]["backend"]["environment"]
    shared = set(image_env) & set(compose_env)
    assert {"MODEL_ROOT", "MODEL_DIR", "WORKERS", "THREADS"} <= shared
    for name in shared:
        assert compose_value(compose_env[name]) == image_env[name], name


def test_every_compose_variable_is_a_setting_the_backend_reads() -> None:
    """A misspelt variable in the compose file would be ignored silently."""
    from label_studio_yolo.settings import BackendSettings

    names = set(load_compose()["services"]["backend"]["environment"])
    settings = {name.upper() for name in BackendSettings.model_fields}
    assert names - settings - SERVING_VARIABLES == set()
    assert {"INFERENCE_RUNTIME", "INFERENCE_LANES", "TORCH_THREADS", "PREDICT_TIME_BUDGET"} <= names


def test_gunicorn_conf_serves_the_asgi_front_with_the_environment_s_port_and_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = gunicorn_config(monkeypatch)
    assert set(defaults) <= {setting.name for setting in gunicorn.config.KNOWN_SETTINGS}, "a misspelt one is ignored"
    assert defaults["wsgi_app"] == "_wsgi:asgi_app"
    worker = gunicorn.util.load_class(defaults["worker_class"])
    assert issubclass(worker, ASGIWorker) and worker.__name__ == "GuardedASGIWorker", "the asgi worker, bounded"
    assert defaults["limit_request_fields"] == 50
    assert (defaults["bind"], defaults["workers"]) == ([":9090"], 1)
    assert (defaults["timeout"], defaults["graceful_timeout"]) == (300, 100)

    configured = gunicorn_config(monkeypatch, PORT="8000", WORKERS="3")
    assert (configured["bind"], configured["workers"]) == ([":8000"], 3)


def test_every_place_that_serves_runs_gunicorn_with_gunicorn_conf_alone() -> None:
    """make run, the image (so compose and Kubernetes) and the tests give gunicorn no flag that would override it."""
    recipe = MAKEFILE.read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    assert recipe == ["\tPORT=$(PORT) WORKERS=$(WORKERS) THREADS=$(THREADS) $(VENV)/bin/gunicorn"]
    assert "command" not in load_compose()["services"]["backend"], "the image's CMD serves"
    conftest = (ROOT / "tests" / "e2e" / "conftest.py").read_text()
    assert 'command = [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]' in conftest


def test_the_serving_variables_reach_the_asgi_front(monkeypatch: pytest.MonkeyPatch) -> None:
    from label_studio_yolo.serving.front import buffering_front

    monkeypatch.setenv("THREADS", "3")
    monkeypatch.setenv("REQUEST_BODY_TIMEOUT", "7.5")
    front = buffering_front(lambda environ, start_response: [])
    assert (front.threads, front.wsgi.executor._max_workers, front.body_timeout) == (3, 3, 7.5)

    monkeypatch.setenv("THREADS", "0")
    with pytest.raises(ValueError, match="threads"):
        buffering_front(lambda environ, start_response: [])


def test_docker_stop_waits_longer_than_gunicorn_lets_requests_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    grace = load_compose()["services"]["backend"]["stop_grace_period"]
    assert int(grace.removesuffix("s")) > gunicorn_config(monkeypatch)["graceful_timeout"]
