"""Static checks of the deployment files: docker-compose.yml, validated against the Compose Specification
schema vendored by check-jsonschema, and the Dockerfile, read as text. No Docker engine is needed."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema_file = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return [error.message for error in validator_class(schema).iter_errors(document)]


def dockerfile_instructions() -> list[str]:
    """Dockerfile instructions, one string each, with comments dropped and continuation lines joined."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in dockerfile_instructions():
        if instruction.upper().startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", instruction))
    return env


def resolve_default(value: str) -> str:
    """What Compose substitutes for `${VAR:-default}` when VAR is unset; plain values pass through."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


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
    assert "gunicorn" in cmd and "_wsgi:app" in cmd
    volumes = [line for line in instructions if line.upper().startswith("VOLUME ")]
    assert any("/models" in line for line in volumes)


def test_dockerfile_env_matches_compose_env() -> None:
    image_env = dockerfile_env()
    compose_env = load_compose()["services"]["backend"]["environment"]
    shared = set(image_env) & set(compose_env)
    assert {"MODEL_ROOT", "MODEL_DIR", "WORKERS", "THREADS"} <= shared
    for name in shared:
        assert resolve_default(compose_env[name]) == image_env[name], name


def test_every_compose_variable_is_a_setting_the_backend_reads() -> None:
    """A misspelt variable in the compose file would be ignored silently."""
    from label_studio_yolo.settings import BackendSettings

    names = set(load_compose()["services"]["backend"]["environment"])
    settings = {name.upper() for name in BackendSettings.model_fields}
    gunicorn = {"WORKERS", "THREADS", "PORT"}

    assert names - settings - gunicorn == set()
    assert {"INFERENCE_RUNTIME", "INFERENCE_LANES", "TORCH_THREADS", "PREDICT_TIME_BUDGET"} <= names
