"""Connections that never finish their headers, oversized headers and floods, against the backend as users run it
(gunicorn with ``gunicorn.conf.py``), real sockets.

Under gunicorn's plain ``asgi`` worker each of these fails: a connection that never finished its headers was held
without end (20,000 of them ran the process out of files and ``/health`` failed every probe), headers were taken up
to 100 fields of 8 KB, and nothing bounded the connections a process held. ``benchmarks/header_flood.py`` measures
the same with thousands of connections, plain worker beside this one.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.e2e.conftest import BackendServer, backend_server
from tests.integration.test_slow_clients import post_head, raw_request, read_answer

HEADER_TIMEOUT = 2.0
"""REQUEST_HEADER_TIMEOUT of the backend here (seconds)."""

HEADER_BYTES = 4096
"""MAX_HEADER_BYTES of the backend here."""

CAP = 12
"""MAX_CONNECTIONS of the backend here."""

CLOSED_LINE = "Connections closed in this process since the last such line"


@pytest.fixture(scope="module")
def backend(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    settings = {
        "REQUEST_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "MAX_HEADER_BYTES": str(HEADER_BYTES),
        "MAX_CONNECTIONS": str(CAP),
        "REQUEST_BODY_TIMEOUT": "60",
    }
    with backend_server(model_root, tmp_path_factory.mktemp("connections"), **settings) as server:
        yield server


def closed_by_server(sock: socket.socket, within: float) -> bytes:
    """What the server sent before it closed ``sock``, which must happen ``within`` seconds."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server still held the connection after {within} s")
    except ConnectionResetError:
        pass
    return received


@contextlib.contextmanager
def unfinished(backend: BackendServer, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that send a request line and one header, and never the rest."""
    sockets = [raw_request(backend.url, "GET /health HTTP/1.1\r\nHost: backend\r\n") for _ in range(count)]
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def read_continue(sock: socket.socket) -> bytes:
    """The interim answer to ``Expect: 100-continue``, which the server sends once it asks for the body."""
    sock.settimeout(60)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(1)
        assert chunk, f"closed: {received!r}"
        received += chunk
    return received


def worker_connections(backend: BackendServer) -> int:
    """TCP connections the backend's worker process holds now."""
    assert backend.process is not None
    (worker,) = psutil.Process(backend.process.pid).children()
    return len(worker.net_connections(kind="tcp"))


def test_a_connection_that_never_finishes_its_headers_is_closed_after_the_header_timeout(
    backend: BackendServer,
) -> None:
    started = time.monotonic()
    mute = socket.create_connection(_address(backend))  # sends nothing at all
    with unfinished(backend, 1) as (trickling,), mute:
        for sock in (trickling, mute):
            assert closed_by_server(sock, within=HEADER_TIMEOUT + 20) == b"", "closed without an answer"
    assert time.monotonic() - started >= HEADER_TIMEOUT


def test_headers_over_max_header_bytes_get_431_and_a_closed_connection(backend: BackendServer) -> None:
    """Each header is well within gunicorn's 8 KB a field; together they are over MAX_HEADER_BYTES."""
    padding = "".join(f"X-Padding-{n}: {'p' * 900}\r\n" for n in range(6))
    sock = raw_request(backend.url, f"GET /health HTTP/1.1\r\nHost: backend\r\n{padding}")
    with sock:
        status, headers, body = read_answer(sock, within=5)
    assert (status, headers["connection"]) == (431, "close")
    assert f"larger than MAX_HEADER_BYTES ({HEADER_BYTES} bytes)" in json.loads(body)["error"]


def test_more_header_fields_than_gunicorn_takes_get_431(backend: BackendServer) -> None:
    fields = "".join(f"X-Field-{n}: 1\r\n" for n in range(60))
    sock = raw_request(backend.url, f"GET /health HTTP/1.1\r\nHost: backend\r\n{fields}\r\n")
    with sock:
        status, _, _ = read_answer(sock, within=5)
    assert status == 431


def test_at_the_cap_the_longest_waiting_connection_makes_room_and_one_line_is_logged(backend: BackendServer) -> None:
    """Five times the cap of never-finishing connections: /health still answers, the process holds no more than
    the cap, and the closures are one log line, not one a connection."""
    lines_before = backend.log.read_text().count(CLOSED_LINE)
    with unfinished(backend, 5 * CAP) as sockets:
        assert requests.get(f"{backend.url}/health", timeout=5).status_code == 200
        assert worker_connections(backend) <= CAP + 1
        assert closed_by_server(sockets[0], within=5) == b"", "the oldest made room"
    log = backend.log.read_text()
    assert log.count(CLOSED_LINE) - lines_before <= 1, "a flood is one line a minute"


def test_at_the_cap_with_every_connection_inside_a_request_a_new_one_gets_503(backend: BackendServer) -> None:
    """Connections whose bodies are still arriving are inside requests: none is closed for a newcomer, which is told
    to come back; once they leave, requests are served again."""
    head = post_head("/predict", 1000, None).removesuffix("\r\n") + "Expect: 100-continue\r\n\r\n"
    uploading = [raw_request(backend.url, head) for _ in range(CAP)]
    with contextlib.ExitStack() as stack:
        for sock in uploading:
            stack.enter_context(sock)
            assert read_continue(sock).startswith(b"HTTP/1.1 100"), "the server read its headers and wants the body"
            sock.sendall(b'{"tasks": [')
        refused = requests.get(f"{backend.url}/health", timeout=5)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert "(MAX_CONNECTIONS) and all are inside requests" in refused.json()["error"]
    deadline = time.monotonic() + 20
    while requests.get(f"{backend.url}/health", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the closed uploads were never let go"
        time.sleep(0.2)


def _address(backend: BackendServer) -> tuple[str, int]:
    host, port = backend.url.removeprefix("http://").split(":")
    return host, int(port)
