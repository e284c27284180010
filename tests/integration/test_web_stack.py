"""The web stack is current, label-studio-ml's way of starting still works, and the development server stays local."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import requests

from conftest import PROJECT_ROOT
from tests.support.documented import documented, serving_as_user, user_env
from tests.support.processes import free_port

PATCHED = {"flask": (3, 1, 3), "werkzeug": (3, 1, 9), "jinja2": (3, 1, 6)}
"""The releases that fix every advisory filed against Flask, Werkzeug and Jinja2 (see the README's security)."""


def release(package: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version(package).split(".")[:3])


@pytest.mark.parametrize("package", list(PATCHED))
def test_the_web_stack_is_the_patched_release(package: str) -> None:
    assert release(package) >= PATCHED[package], f"{package} {version(package)} has known advisories"


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) == 0


def test_label_studio_ml_start_serves_the_backend_on_loopback_only(model_root: Path, tmp_path: Path) -> None:
    """``label-studio-ml start .`` as the README gives it, in a shell whose virtualenv is activated; PORT says where."""
    port = free_port()
    settings = {"MODEL_ROOT": str(model_root), "MODEL_PATH": "boxes.pt", "MODEL_DIR": str(tmp_path / "versions")}
    env = user_env(tmp_path / "home", Path(sys.executable).parent, PORT=str(port), **settings)
    start = documented("label-studio-ml start .")

    with serving_as_user(start, f"http://127.0.0.1:{port}/health", PROJECT_ROOT, env, tmp_path / "dev.log"):
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        missing = requests.get(f"http://127.0.0.1:{port}/no-such-route", timeout=5)
        reachable_elsewhere = _accepts("127.0.0.2", port)  # a server bound to 0.0.0.0 answers here too

    assert health["status"] == "UP" and health["model_class"] == "YOLOBackend"
    assert missing.status_code == 404 and missing.json()["status"] == "error", "errors are JSON, not HTML"
    assert not reachable_elsewhere, "the development server listens on 127.0.0.1 unless told otherwise"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10"])
def test_the_debugger_refuses_an_address_others_can_reach(host: str, tmp_path: Path) -> None:
    env = {**os.environ, "MODEL_ROOT": str(tmp_path), "MODEL_PATH": "missing.pt"}
    command = [sys.executable, "_wsgi.py", "--debug", "--host", host, "--port", str(free_port())]

    completed = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=120)

    assert completed.returncode == 2
    assert "loopback only" in completed.stderr.decode()
