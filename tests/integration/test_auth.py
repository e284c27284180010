"""HTTP Basic auth (BASIC_AUTH_USER / BASIC_AUTH_PASS) and the request body limit (MAX_REQUEST_BYTES).

Routes are called through Flask's test client, the body limit and the Docker health check over real sockets to
the backend under gunicorn. Label Studio's side is in ``tests/e2e/test_label_studio_auth.py``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from flask.testing import FlaskClient
from pydantic import ValidationError
from werkzeug.test import Client

from conftest import PROJECT_ROOT, app_client
from label_studio_yolo.settings import DEFAULT_MAX_REQUEST_BYTES
from tests.support.basic_auth import PASSWORD, USER, backend_with_basic_auth, basic

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
LIMIT = 100_000
"""MAX_REQUEST_BYTES of the gunicorn backend here."""

ROUTES = [
    ("GET", "/health", 200),
    ("GET", "/", 200),
    ("POST", "/setup", 400),
    ("POST", "/predict", 400),
    ("POST", "/webhook", 400),
    ("POST", "/train", 200),
    ("GET", "/is_training", 200),
    ("GET", "/training/status", 200),
    ("GET", "/metrics", 200),
    ("POST", "/versions", 400),
    ("GET", "/versions", 200),
    ("POST", "/versions/pin", 400),
    ("POST", "/versions/unpin", 400),
    ("GET", "/no-such-route", 404),
]
"""Every route, and its status for an empty JSON object once the credentials are right."""

WRONG = {
    "no header": None,
    "wrong user": basic("admin", PASSWORD),
    "wrong password": basic(USER, "correct horse"),
    "password with a byte more": basic(USER, PASSWORD + "!"),
    "empty credentials": basic("", ""),
    "not base64": "Basic bGFiZWwtc3R1ZGlv!!",
    "no colon": "Basic " + base64.b64encode(USER.encode()).decode(),
    "nothing after Basic": "Basic ",
    "Bearer scheme": "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    "Token scheme": "Token e2e-admin-legacy-token",
    "non-UTF-8 credentials": basic(b"label-studio\xff", b"\xc3\x28" + PASSWORD.encode()),
    "non-ASCII header": "Basic ÿÿÿÿ",
}


@pytest.fixture
def auth_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A backend environment with Basic auth on (no weights needed: these requests never load a model)."""
    monkeypatch.setenv("MODEL_ROOT", str(tmp_path))
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "model-versions"))
    monkeypatch.setenv("BASIC_AUTH_USER", USER)
    monkeypatch.setenv("BASIC_AUTH_PASS", PASSWORD)
    return tmp_path


@pytest.fixture
def guarded(auth_env: Path) -> Iterator[FlaskClient]:
    with app_client() as client:
        yield client


def _headers(authorization: str | None) -> dict[str, str]:
    return {"Authorization": authorization} if authorization is not None else {}


@pytest.mark.parametrize(("method", "path", "status"), ROUTES, ids=[path for _, path, _ in ROUTES])
def test_every_route_asks_for_the_credentials_and_accepts_only_the_right_ones(
    guarded: FlaskClient, method: str, path: str, status: int
) -> None:
    for case, authorization in WRONG.items():
        response = guarded.open(path, method=method, json={}, headers=_headers(authorization))
        assert response.status_code == 401, case
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="label-studio-yolo"'), case
        assert response.json is not None and "BASIC_AUTH_USER" in response.json["error"], case

    for scheme in ("Basic", "basic"):  # the scheme is case-insensitive
        authorization = basic(USER, PASSWORD).replace("Basic", scheme)
        response = guarded.open(path, method=method, json={}, headers=_headers(authorization))
        assert response.status_code == status, response.get_data(as_text=True)


def test_a_non_ascii_password_works_as_utf8_and_as_latin1(auth_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """curl sends UTF-8; requests (and so Label Studio) sends Latin-1."""
    monkeypatch.setenv("BASIC_AUTH_PASS", "pässwörd")
    with app_client() as client:
        for password in ("pässwörd".encode(), "pässwörd".encode("latin-1")):
            assert client.get("/health", headers={"Authorization": basic(USER, password)}).status_code == 200
        assert client.get("/health", headers={"Authorization": basic(USER, "passwort")}).status_code == 401


def test_neither_password_nor_header_reaches_the_log(
    auth_env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Refusals are logged at WARNING with the client address; even at DEBUG no header or password is logged."""
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    right, wrong = basic(USER, PASSWORD), basic(USER, PASSWORD[:-1])
    with caplog.at_level(logging.DEBUG), app_client() as flask_client:
        client = Client(flask_client.application)  # Werkzeug's own client: environ_base per request
        assert client.post("/webhook", json={"action": "X"}, headers={"Authorization": right}).status_code == 200
        refused = client.get("/health", headers={"Authorization": wrong}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
        assert refused.status_code == 401
        assert client.get("/x%0A[forged] line").status_code == 401

    refusals = [r for r in caplog.records if r.levelno == logging.WARNING and r.getMessage().startswith("Refused")]
    assert [r.getMessage() for r in refusals] == [
        "Refused GET /health from 10.1.2.3 with 401: wrong user or password",
        "Refused GET /x\\n[forged] line from ? with 401: no Authorization header",  # one line, not two
    ]
    for secret in (PASSWORD, PASSWORD[:-1], right.split()[1], wrong.split()[1]):
        assert secret not in caplog.text


def test_refusals_are_logged_while_openvino_converts_a_model(guarded: FlaskClient, caplog) -> None:
    """OpenVINO's converter holds the root logger at ERROR while it runs (a background export, for seconds)."""
    from openvino.tools.ovc.logger import get_logger_state, init_logger, restore_logger_state

    state = get_logger_state()
    init_logger("ERROR", verbose=False, python_api_used=True)  # what convert_model() does first
    try:
        assert guarded.get("/health").status_code == 401
    finally:
        restore_logger_state(state)
    assert "Refused GET /health from 127.0.0.1 with 401: no Authorization header" in caplog.text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BASIC_AUTH_USER": USER}, "BASIC_AUTH_PASS is not set"),
        ({"BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": ""}, "BASIC_AUTH_PASS is not set"),  # empty counts as unset
        ({"BASIC_AUTH_PASS": PASSWORD}, "BASIC_AUTH_USER is not set"),
        ({"BASIC_AUTH_USER": "a:b", "BASIC_AUTH_PASS": PASSWORD}, "BASIC_AUTH_USER must not contain ':'"),
    ],
    ids=["user only", "empty password", "password only", "colon in user"],
)
def test_half_a_credential_pair_stops_the_backend_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("MODEL_ROOT", str(tmp_path))
    for name in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message) as error, app_client():
        pass
    assert PASSWORD not in str(error.value), "the startup error must not print the password"


def test_without_credentials_set_no_route_asks_for_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_ROOT", str(tmp_path))
    for name in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
        monkeypatch.delenv(name, raising=False)
    with app_client() as client:
        assert client.get("/health").status_code == 200
        assert client.post("/train", json={}).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The backend under gunicorn, with Basic auth and MAX_REQUEST_BYTES=100000 (no weights: none are needed)."""
    folder = tmp_path_factory.mktemp("auth-backend")
    with backend_with_basic_auth(folder, folder, warm_up=False, MAX_REQUEST_BYTES=str(LIMIT)) as running:
        yield running


def chunks(body: bytes) -> Iterator[bytes]:
    """``body`` as a generator: requests then sends it chunked, with no Content-Length."""
    for start in range(0, len(body), 16 * 1024):
        yield body[start : start + 16 * 1024]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_oversized_body_gets_a_json_413_and_the_server_stays_up(server: tuple[str, Path], framing: str) -> None:
    url, log = server
    body = json.dumps({"tasks": [{"data": {"image": "data:image/png;base64," + "A" * 3 * LIMIT}}]}).encode()
    data = body if framing == "content-length" else chunks(body)
    headers = {"Content-Type": "application/json"}

    response = requests.post(f"{url}/predict", data=data, headers=headers, auth=(USER, PASSWORD), timeout=30)

    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert f"MAX_REQUEST_BYTES ({LIMIT} bytes)" in response.json()["error"]
    assert requests.get(f"{url}/health", auth=(USER, PASSWORD), timeout=10).json()["status"] == "UP"
    assert f"Refused POST /predict from 127.0.0.1 with 413: body over MAX_REQUEST_BYTES ({LIMIT} bytes)" in (
        log.read_text()
    )


def test_credentials_are_checked_before_the_size(server: tuple[str, Path]) -> None:
    url, _ = server
    response = requests.post(f"{url}/predict", data=b"x" * 2 * LIMIT, timeout=30)
    assert response.status_code == 401
    assert requests.get(f"{url}/health", timeout=10).status_code == 401


def test_a_chunked_body_within_the_limit_reaches_the_route_whole(server: tuple[str, Path]) -> None:
    url, _ = server
    event = {"action": "PROJECT_UPDATED", "project": {"id": 7}, "padding": "x" * (LIMIT - 1000)}
    body = json.dumps(event).encode()
    assert len(body) <= LIMIT
    headers = {"Content-Type": "application/json"}

    response = requests.post(f"{url}/webhook", data=chunks(body), headers=headers, auth=(USER, PASSWORD), timeout=30)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ignored", "action": "PROJECT_UPDATED"}


@pytest.mark.parametrize("target", ["url", "path on PORT"])
def test_the_docker_health_check_sends_the_credentials(server: tuple[str, Path], target: str) -> None:
    url, _ = server
    argument = f"{url}/health" if target == "url" else "/health"
    command = [sys.executable, "-m", "label_studio_yolo.healthcheck", argument]
    env = {**os.environ, "PORT": url.rsplit(":", 1)[1], "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD}
    assert subprocess.run(command, env=env, capture_output=True, text=True, timeout=60).returncode == 0

    for name in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
        del env[name]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "401" in refused.stderr


def test_compose_passes_the_backend_s_default_body_limit() -> None:
    environment = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["backend"]["environment"]
    assert environment["MAX_REQUEST_BYTES"] == f"${{MAX_REQUEST_BYTES:-{DEFAULT_MAX_REQUEST_BYTES}}}"
    assert {"BASIC_AUTH_USER", "BASIC_AUTH_PASS"} <= set(environment)
