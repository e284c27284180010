"""The web stack is current, label-studio-ml's way of starting still works, and the development server stays local."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import requests

from conftest import PROJECT_ROOT
from tests.support.processes import free_port

PATCHED = {"flask": (3, 1, 3), "werkzeug": (3, 1, 9), "jinja2": (3, 1, 6)}
"""The releases that fix every advisory filed against Flask, Werkzeug and Jinja2 (see the README's security)."""


def release(package: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version(package).split(".")[:3])


@pytest.mark.parametrize("package", list(PATCHED))
def test_the_web_stack_is_the_patched_release(package: str) -> None:
    assert release(package) >= PATCHED[package], f"{package} {version(package)} has known advisories"


def _serving(command: list[str], port: int, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            time.sleep(0.5)
    raise TimeoutError(log.read_text()[-3000:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # label-studio-ml runs _wsgi.py in a child of its own
    process.wait(30)


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) == 0


def test_label_studio_ml_start_serves_the_backend_on_loopback_only(model_root: Path, tmp_path: Path) -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MODEL_ROOT": str(model_root)}
    env |= {"MODEL_PATH": "boxes.pt", "MODEL_DIR": str(tmp_path / "versions")}
    command = [str(bin_dir / "label-studio-ml"), "start", ".", "--port", str(port)]

    process = _serving(command, port, tmp_path / "dev.log", env)
    try:
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        missing = requests.get(f"http://127.0.0.1:{port}/no-such-route", timeout=5)
        reachable_elsewhere = _accepts("127.0.0.2", port)  # a server bound to 0.0.0.0 answers here too
    finally:
        _stop(process)

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
