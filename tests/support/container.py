"""What a command of this repository's image sees, so that the image's commands can run on a machine without a Docker
engine: the Dockerfile's ``ENV``, a docker-compose service's or the Kubernetes ConfigMap's environment, and the
image's folders mapped to folders here.

Example:
    >>> env = image_env(compose_env("backend", {"MODEL_PATH": "boxes.pt"}), {"/models": models, "/data": data})
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
KUBERNETES_CONFIG = ROOT / "deploy" / "kubernetes" / "config.yaml"
VENV_BIN = ROOT / ".venv" / "bin"
"""What the image's ``/opt/venv/bin`` is here."""
MACHINE_VARIABLES = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
"""What a container has from its machine and user rather than from the image (nothing else of this process)."""


def dockerfile_instructions() -> list[str]:
    """Dockerfile instructions, one string each, with comments dropped and continuation lines joined."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def dockerfile_env() -> dict[str, str]:
    """The runtime image's ``ENV`` (the last stage's), as written (``PATH`` keeps its ``$PATH``)."""
    env: dict[str, str] = {}
    for instruction in dockerfile_instructions():
        if instruction.upper().startswith("FROM "):
            env = {}  # each stage starts with its base image's environment
        elif instruction.upper().startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", instruction))
    return env


def load_compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def compose_value(value: object, shell: Mapping[str, str] | None = None) -> str:
    """What Compose substitutes for ``${VAR:-default}``: VAR from ``shell`` (the user's shell or ``.env``) when it is
    set and not empty, else the default."""
    shell = shell or {}
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda match: shell.get(match[1]) or match[2], str(value))


def compose_env(service: str, shell: Mapping[str, str]) -> dict[str, str]:
    """The environment docker compose gives ``service``, with ``shell`` as the user's shell."""
    environment = load_compose()["services"][service]["environment"]
    return {name: compose_value(value, shell) for name, value in environment.items()}


def kubernetes_env() -> dict[str, str]:
    """The ConfigMap every backend and worker pod takes its environment from."""
    for document in yaml.safe_load_all(KUBERNETES_CONFIG.read_text()):
        if document and document.get("kind") == "ConfigMap":
            return {name: str(value) for name, value in document["data"].items()}
    raise AssertionError(f"no ConfigMap in {KUBERNETES_CONFIG}")


def image_env(service_env: Mapping[str, str], folders: Mapping[str, Path], **here: str) -> dict[str, str]:
    """The environment of a process in the image: this machine's basics, the Dockerfile's ``ENV``, then
    ``service_env``, with the image's folders (``/models``, ``/data``, ...) replaced by ``folders`` and ``here`` (what
    differs on this machine: a free ``PORT``) last. The image's virtualenv is ``.venv`` here."""
    env = {name: os.environ[name] for name in MACHINE_VARIABLES if name in os.environ}
    for name, value in {**dockerfile_env(), **service_env}.items():
        env[name] = _mapped(value, folders)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**env, **here}


def _mapped(value: str, folders: Mapping[str, Path]) -> str:
    for inside, outside in folders.items():
        if value == inside or value.startswith(inside.rstrip("/") + "/"):
            return str(outside) + value[len(inside.rstrip("/")) :]
    return value


def compose_run_command(command: str) -> tuple[str, str]:
    """``docker compose run [options] SERVICE COMMAND...`` split into the service and the command it runs inside."""
    words = shlex.split(command)
    assert words[:3] == ["docker", "compose", "run"], command
    rest = words[3:]
    while rest and rest[0].startswith("-"):
        rest = rest[1:]
    return rest[0], shlex.join(rest[1:])
