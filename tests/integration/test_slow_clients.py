"""Slow and refused clients against the backend as users run it (gunicorn with ``gunicorn.conf.py``), real sockets.

Under the old ``gthread`` setup each of these fails: a connection held a request thread while its client sent
headers or a body (so more slow clients than threads left ``/health`` unanswered), a refused body was still drained
on a kept-alive connection, and a body that never arrived was waited for without end. Label Studio gives
``/health`` 1 s. ``benchmarks/slow_clients.py`` measures the same with 200 clients, old setup beside new.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from benchmarks.slow_clients import SlowClients
from conftest import BOXES_CONFIG, SampleImage
from test_api import assert_matches_truth
from tests.e2e.conftest import BackendServer, backend_server
from tests.support.basic_auth import PASSWORD, USER, basic

THREADS = 2
"""Request threads of the backend here; every slow crowd below is four times as many connections."""

LIMIT = 100_000
"""MAX_REQUEST_BYTES of the backend here."""

BODY_TIMEOUT = 2.0
"""REQUEST_BODY_TIMEOUT of the backend here (seconds)."""

HEALTH_BUDGET = 1.0
"""Seconds Label Studio waits for ``/health``."""

CROWDS = {
    "slow headers": [("headers", False), ("headers", True)],
    "slow bodies": [("body", False), ("body", True)],
}
"""Slow clients by kind, half of them without credentials (see :class:`benchmarks.slow_clients.SlowClients`)."""


@pytest.fixture(scope="module")
def backend(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    settings = {"MAX_REQUEST_BYTES": str(LIMIT), "REQUEST_BODY_TIMEOUT": str(BODY_TIMEOUT)}
    folder = tmp_path_factory.mktemp("slow-clients")
    with backend_server(model_root, folder, threads=THREADS, auth=(USER, PASSWORD), **settings) as server:
        yield server


def crowd(backend: BackendServer, kind: str) -> SlowClients:
    """Four times THREADS connections of ``kind``, each sending every 0.5 s, open once the block starts; a slow
    body is declared within MAX_REQUEST_BYTES, so that it is buffered rather than refused."""
    mix, body_bytes = CROWDS[kind], LIMIT // 2
    return SlowClients(backend.url, 4 * THREADS, 0.5, mix, body_bytes, credentials=(USER, PASSWORD))


def health_latencies(url: str, seconds: float = 2.0) -> list[float]:
    """Authenticated ``GET /health``, each on a new connection, for ``seconds``: how long each took (a failure
    or a timeout counts as ``inf``)."""
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            ok = requests.get(f"{url}/health", auth=(USER, PASSWORD), timeout=HEALTH_BUDGET).status_code == 200
        except requests.RequestException:
            ok = False
        latencies.append(time.monotonic() - started if ok else float("inf"))
        time.sleep(0.2)
    return latencies


def raw_request(url: str, head: str, body: bytes = b"") -> socket.socket:
    """A connection that has sent ``head`` (request line and headers, blank line included) and ``body``."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(head.encode("latin-1") + body)
    return sock


def read_answer(sock: socket.socket, within: float) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (lower-case names) and body of the one answer on ``sock``, which must come ``within``
    seconds and be followed by the server's close of the connection within a second more."""
    sock.settimeout(within)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    sock.settimeout(1.0)
    try:
        while chunk := sock.recv(65536):
            body += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open after {lines[0]!r}, waiting for the rest of the body")
    return int(lines[0].split()[1]), headers, body


def post_head(path: str, length: int, authorization: str | None) -> str:
    credentials = f"Authorization: {authorization}\r\n" if authorization else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: backend\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
        f"{credentials}\r\n"
    )


@pytest.mark.parametrize("kind", list(CROWDS))
def test_health_answers_within_a_second_while_slow_clients_outnumber_the_threads(
    backend: BackendServer, kind: str
) -> None:
    with crowd(backend, kind) as slow:
        assert slow.open_now > THREADS, "the slow clients are connected"
        latencies = health_latencies(backend.url)
    assert max(latencies) <= HEALTH_BUDGET, latencies


def test_an_unauthenticated_body_is_refused_before_it_is_sent(backend: BackendServer) -> None:
    """A client without credentials declares 100 times the limit and sends nothing of it: it gets 401 at once and
    the connection is closed, so the server neither waits for nor buffers the body."""
    sock = raw_request(backend.url, post_head("/predict", 100 * LIMIT, None))
    with sock:
        status, headers, body = read_answer(sock, within=HEALTH_BUDGET)
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="label-studio-yolo", charset="UTF-8"'
    assert headers["connection"] == "close"
    assert "BASIC_AUTH_USER" in json.loads(body)["error"]
    assert "Refused POST /predict from 127.0.0.1 with 401: no Authorization header" in backend.log.read_text()


def test_a_declared_length_over_the_limit_gets_413_unread(backend: BackendServer) -> None:
    sock = raw_request(backend.url, post_head("/predict", LIMIT + 1, basic(USER, PASSWORD)))
    with sock:
        status, headers, body = read_answer(sock, within=HEALTH_BUDGET)
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert f"MAX_REQUEST_BYTES ({LIMIT} bytes)" in json.loads(body)["error"]
    assert f"Refused POST /predict from 127.0.0.1 with 413: body over MAX_REQUEST_BYTES ({LIMIT} bytes)" in (
        backend.log.read_text()
    )


def test_a_body_that_arrives_too_slowly_gets_408_and_is_dropped(backend: BackendServer) -> None:
    started = time.monotonic()
    sock = raw_request(backend.url, post_head("/predict", 1000, basic(USER, PASSWORD)), b'{"tasks": [')
    with sock:
        status, _, body = read_answer(sock, within=BODY_TIMEOUT + 2)
    assert status == 408
    assert BODY_TIMEOUT <= time.monotonic() - started < BODY_TIMEOUT + 2
    assert "REQUEST_BODY_TIMEOUT" in json.loads(body)["error"]
    assert "Refused POST /predict from 127.0.0.1 with 408: body not complete within 2 s" in backend.log.read_text()


def test_predict_answers_on_a_kept_alive_connection_while_slow_clients_hold_others(
    backend: BackendServer, sample_images: list[SampleImage]
) -> None:
    """Two predictions on one connection, the second body chunked, while more slow clients than threads wait."""
    sample = sample_images[0]
    task = {"data": {"image": sample.data_uri()}}
    body = json.dumps({"project": "slow.1", "label_config": BOXES_CONFIG, "tasks": [task]}).encode()
    headers = {"Authorization": basic(USER, PASSWORD), "Content-Type": "application/json"}
    host, port = backend.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    with crowd(backend, "slow bodies"), crowd(backend, "slow headers"), contextlib.closing(connection):
        connection.request("POST", "/predict", body, headers)
        first = connection.getresponse()
        first_answer, first_socket = json.loads(first.read()), connection.sock
        connection.request("POST", "/predict", iter([body]), headers)  # an iterable goes chunked, with no length
        assert connection.sock is first_socket, "the connection was kept alive"
        second = connection.getresponse()
        second_answer = json.loads(second.read())
    for status, answer in ((first.status, first_answer), (second.status, second_answer)):
        assert status == 200, answer
        assert_matches_truth(answer["results"][0]["result"], sample, {"red": "Red box", "blue": "Blue"})


BUFFER = 3 * LIMIT // 2
"""REQUEST_BUFFER_BYTES of the backend below: one body of MAX_REQUEST_BYTES and half of another."""


@pytest.fixture(scope="module")
def buffered(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    settings = {"MAX_REQUEST_BYTES": str(LIMIT), "REQUEST_BUFFER_BYTES": str(BUFFER), "REQUEST_BODY_TIMEOUT": "30"}
    with backend_server(model_root, tmp_path_factory.mktemp("buffered"), threads=THREADS, **settings) as server:
        yield server


def padded_body(size: int) -> bytes:
    """A valid /predict body of ``size`` bytes (no tasks; the rest is padding the app ignores)."""
    head = json.dumps({"project": "buffer.1", "label_config": BOXES_CONFIG, "tasks": [], "padding": ""}).encode()
    return head[:-2] + b"x" * (size - len(head)) + head[-2:]


def test_bodies_held_past_request_buffer_bytes_get_503_with_retry_after(buffered: BackendServer) -> None:
    """Parked uploads cannot fill the disk: 20 bodies of 99 MiB held 1.94 GiB of the temporary folder before. The
    bytes held are counted as they arrive, so a client that only declares a length holds nothing."""
    parked = raw_request(buffered.url, post_head("/predict", LIMIT, None), padded_body(LIMIT)[: LIMIT - 10])
    declared_only = raw_request(buffered.url, post_head("/predict", LIMIT, None))
    with parked, declared_only:
        time.sleep(0.5)  # the parked body is read into the buffer (not a speed assertion: more time only helps)
        refused = requests.post(f"{buffered.url}/predict", data=padded_body(LIMIT), timeout=30, headers=JSON)
        small = requests.post(f"{buffered.url}/predict", data=padded_body(LIMIT // 4), timeout=30, headers=JSON)

    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert f"holds {BUFFER} bytes of request bodies already (REQUEST_BUFFER_BYTES)" in refused.json()["error"]
    assert small.status_code == 200, "what is left of the budget still serves"
    assert f"with 503: request bodies held over REQUEST_BUFFER_BYTES ({BUFFER} bytes)" in buffered.log.read_text()
    after = requests.post(f"{buffered.url}/predict", data=padded_body(LIMIT), timeout=30, headers=JSON)
    assert after.status_code == 200, "the parked bytes were given back when their client left"


JSON = {"Content-Type": "application/json"}
