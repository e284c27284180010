"""Slow clients against the backend, before and after the ASGI front, in one run: does ``/health`` still answer?

For each setup, the real backend is started under gunicorn and measured in three phases:

- **slow clients**: N connections (default 200) send slowly for a fixed time: half send their headers one line
  every few seconds, half send complete headers and then their body a few bytes at a time; half of each half have
  no credentials. A connection the server closes is opened again after the same pause. Meanwhile ``/health`` is
  polled 4 times a second with Label Studio's 1 s budget: p50, p99, max and failures (over 1 s or no answer).
- **large bodies**: M authenticated clients (default 40) each send most of a large body at once and then wait,
  so that the server holds M bodies at the same time: the worker's resident memory before and during.
- **one client**: sequential ``/health`` and ``/predict`` (one photo as a data URI) on one kept-alive connection:
  the latency each setup adds on its own.

Setups: ``gthread`` is the old command line (``gunicorn --workers 1 --threads 16 --timeout 300 --graceful-timeout
100 _wsgi:app``); ``asgi front`` is what ``make run`` runs now (``gunicorn``, reading ``gunicorn.conf.py``). Server
CPU seconds (gunicorn's processes, from /proc) are printed beside wall time.

Usage:
    .venv/bin/python -m benchmarks.slow_clients --clients 200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from benchmarks.bulk_predict import DEFAULT_WEIGHTS, PHOTOS
from conftest import BOXES_CONFIG, PROJECT_ROOT, WEIGHTS_NAME
from tests.support.processes import free_port, running_server

USER, PASSWORD = "label-studio", "slow-clients"
HEALTH_BUDGET = 1.0
"""Seconds Label Studio waits for ``/health``."""

THREADS = 16
"""Request threads per process in both setups (``make run``'s default)."""

SETUPS = {
    "gthread": [
        "--worker-class",
        "gthread",
        "--threads",
        str(THREADS),
        "--timeout",
        "300",
        "--graceful-timeout",
        "100",
    ],
    "asgi front": [],
}
"""gunicorn's arguments besides ``--bind`` per setup; the ASGI front's come from ``gunicorn.conf.py``. The old
command names its worker class and app, which the configuration file would set otherwise."""

APPS = {"gthread": "_wsgi:app", "asgi front": None}


@dataclass
class Backend:
    """A running backend: its URL and gunicorn's master process id."""

    url: str
    pid: int


@contextmanager
def serving(setup: str, model_root: Path, folder: Path, threads: int = THREADS, **settings: str) -> Iterator[Backend]:
    """gunicorn serving the backend as ``setup`` did, on a free loopback port, with Basic auth on."""
    port = free_port()
    app = APPS[setup]
    command = [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}", *SETUPS[setup]]
    command += [app] if app else []
    env = backend_env(model_root, folder, BASIC_AUTH_USER=USER, BASIC_AUTH_PASS=PASSWORD, THREADS=str(threads))
    env.update(settings)
    health = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/health"
    with running_server(command, health, folder / f"{setup}.log", env, PROJECT_ROOT, 120.0) as process:
        yield Backend(f"http://127.0.0.1:{port}", process.pid)


def backend_env(model_root: Path, folder: Path, **settings: str) -> dict[str, str]:
    """A benchmark backend's settings: the weights in ``model_root``, versions under ``folder``, PyTorch on one
    thread, offline, no Label Studio; ``settings`` on top."""
    return {
        "MODEL_ROOT": str(model_root),
        "MODEL_PATH": WEIGHTS_NAME,
        "MODEL_DIR": str(folder / "model-versions"),
        "INFERENCE_RUNTIME": "pytorch",
        "TORCH_THREADS": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(PROJECT_ROOT / ".cache" / "ultralytics"),
        "LABEL_STUDIO_URL": "",
        "LABEL_STUDIO_API_KEY": "",
        **settings,
    }


def authorization(user: str = USER, password: str = PASSWORD) -> str:
    """The Basic ``Authorization`` value of ``user`` and ``password`` (the benchmark's by default)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- Slow clients ------------------------------------------------------------------------------------------------

MIX = [("headers", False), ("body", False), ("headers", True), ("body", True)]
"""The benchmark's slow clients, in turn: slow headers and slow bodies, without and with credentials."""


@dataclass
class SlowClientStats:
    """What the slow clients saw: connections opened, answers by status line, connections the server closed."""

    opened: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    closed_by_server: int = 0


class SlowClients:
    """``count`` connections that send slowly, from an event loop in a thread of their own, until :meth:`stop`.

    Client ``n`` behaves as ``mix[n % len(mix)]`` says: ``(kind, authenticated)``, where kind ``"headers"`` sends one
    header line every ``interval`` s and never finishes, and ``"body"`` sends complete headers and then ``trickle``
    bytes of a ``body_bytes`` body every ``interval`` s; authenticated ones send ``credentials``. A connection the
    server closes is opened again after ``interval`` s, as a client that retries.
    """

    def __init__(
        self,
        url: str,
        count: int,
        interval: float = 3.0,
        mix: Sequence[tuple[str, bool]] = MIX,
        body_bytes: int = 1_000_000,
        trickle: int = 10,
        credentials: tuple[str, str] = (USER, PASSWORD),
    ) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.count, self.interval, self.mix = count, interval, list(mix)
        self.body_bytes, self.trickle = body_bytes, trickle
        self.authorization = authorization(*credentials)
        self.stats = SlowClientStats()
        self._open = 0
        self._started: set[int] = set()
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        deadline = time.monotonic() + 10
        while len(self._started) < self.count and time.monotonic() < deadline:
            time.sleep(0.05)  # every client has connected (and sent its first bytes) before measuring starts
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def open_now(self) -> int:
        return self._open

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._all())
        self._loop.close()

    async def _all(self) -> None:
        self._stopping = asyncio.Event()
        await asyncio.gather(*(self._client(number) for number in range(self.count)))

    async def _client(self, number: int) -> None:
        kind, authenticated = self.mix[number % len(self.mix)]
        slow_body = kind == "body"
        assert self._stopping is not None
        while not self._stopping.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await self._pause()
                continue
            self.stats.opened += 1
            self._open += 1
            self._started.add(number)
            try:
                await self._converse(reader, writer, slow_body, authenticated)
            finally:
                self._open -= 1
                writer.close()
            await self._pause()

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow_body: bool, authenticated: bool
    ) -> None:
        """Send until the server closes or the run stops; record the server's answer if there is one."""
        assert self._stopping is not None
        sender = asyncio.ensure_future(self._send(writer, slow_body, authenticated))
        answer = asyncio.ensure_future(reader.read())  # up to EOF: the server's answer and its close
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({sender, answer, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done() and not answer.exception():
            self.stats.closed_by_server += 1
            status = answer.result().split(b"\r\n", 1)[0].decode("latin-1") or "closed without an answer"
            self.stats.answers[status] += 1
        for task in (sender, answer, stopping):
            task.cancel()
        await asyncio.gather(sender, answer, stopping, return_exceptions=True)

    async def _send(self, writer: asyncio.StreamWriter, slow_body: bool, authenticated: bool) -> None:
        credentials = f"Authorization: {self.authorization}\r\n" if authenticated else ""
        try:
            if slow_body:
                head = (
                    f"POST /predict HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {self.body_bytes}\r\n{credentials}\r\n"
                )
                writer.write(head.encode())
                while True:
                    writer.write(b" " * self.trickle)
                    await writer.drain()
                    await asyncio.sleep(self.interval)
            writer.write(f"GET /health HTTP/1.1\r\nHost: {self.host}\r\n{credentials}".encode())
            for line in range(10**6):
                writer.write(f"X-Slow-{line}: {line}\r\n".encode())
                await writer.drain()
                await asyncio.sleep(self.interval)
        except OSError:
            await asyncio.Event().wait()  # the server closed: the reader sees it

    async def _pause(self) -> None:
        assert self._stopping is not None
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.interval)


# --- Measurements -------------------------------------------------------------------------------------------------


@dataclass
class Latencies:
    """Latencies (s) of answered requests and the requests that failed or took over ``budget``."""

    budget: float
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else float("nan")

    def summary(self) -> str:
        total = len(self.seconds) + len(self.failures)
        if not self.seconds:
            return f"no answer within {self.budget:g} s: failed {total}/{total}"
        slowest = max(self.seconds)
        return (
            f"p50 {self.percentile(0.5) * 1000:7.1f} ms  p99 {self.percentile(0.99) * 1000:7.1f} ms  "
            f"max {slowest * 1000:7.1f} ms  failed {len(self.failures)}/{total}"
        )


def get_health(url: str, budget: float = HEALTH_BUDGET, session: requests.Session | None = None) -> float:
    """Seconds one authenticated ``GET /health`` took; raises if it failed or took over ``budget``."""
    started = time.monotonic()
    answer = (session or requests).get(f"{url}/health", auth=(USER, PASSWORD), timeout=budget)
    elapsed = time.monotonic() - started
    if answer.status_code != 200 or elapsed > budget:
        raise RuntimeError(f"HTTP {answer.status_code} in {elapsed:.2f} s")
    return elapsed


def poll_health(url: str, seconds: float, every: float = 0.25) -> Latencies:
    """``/health`` on a new connection every ``every`` s for ``seconds``, each within Label Studio's 1 s."""
    report = Latencies(HEALTH_BUDGET)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            report.seconds.append(get_health(url))
        except (requests.RequestException, RuntimeError) as error:
            report.failures.append(type(error).__name__)
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return report


def server_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of gunicorn's master ``pid`` and its workers so far."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for proc in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError):
            continue
    return total


def worker_rss_mb(pid: int) -> float:
    """Resident memory (MB) of the largest child of gunicorn's master ``pid`` (the worker)."""
    sizes = [0.0]
    for child in _children(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
            sizes.append(int(status.split("VmRSS:")[1].split()[0]) / 1024)
        except (OSError, IndexError):
            continue
    return max(sizes)


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# --- Phases -------------------------------------------------------------------------------------------------------


@dataclass
class SlowPhase:
    health: Latencies
    clients: SlowClientStats
    wall: float
    server_cpu: float
    client_cpu: float


def slow_phase(backend: Backend, clients: int, seconds: float, interval: float) -> SlowPhase:
    """``/health`` polled for ``seconds`` while ``clients`` slow connections stay open."""
    cpu, client_cpu, started = server_cpu_seconds(backend.pid), time.process_time(), time.monotonic()
    with SlowClients(backend.url, clients, interval) as slow:
        health = poll_health(backend.url, seconds)
    wall = time.monotonic() - started
    return SlowPhase(health, slow.stats, wall, server_cpu_seconds(backend.pid) - cpu, time.process_time() - client_cpu)


def large_bodies_phase(backend: Backend, clients: int, body_mb: float) -> tuple[float, float, Latencies]:
    """Worker RSS (MB) before and while ``clients`` bodies of ``body_mb`` MB wait 95% sent, and ``/health`` then."""
    before = worker_rss_mb(backend.pid)
    size = int(body_mb * 1024 * 1024)
    host, port = backend.url.removeprefix("http://").split(":")
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
        f"Authorization: {authorization()}\r\n\r\n"
    ).encode()
    sockets = []
    try:
        for _ in range(clients):
            sock = socket.create_connection((host, int(port)), timeout=30)
            sockets.append(sock)
            threading.Thread(target=_send_quietly, args=(sock, head + b" " * int(size * 0.95)), daemon=True).start()
        time.sleep(5)  # the bodies reach the server (or fill the socket buffers when nothing reads them)
        during = worker_rss_mb(backend.pid)
        health = poll_health(backend.url, 3)
    finally:
        for sock in sockets:
            sock.close()
    return before, during, health


@dataclass
class OneClientPhase:
    health: Latencies
    predict: Latencies
    health_cpu: float
    """Server CPU seconds per ``/health``."""
    predict_cpu: float
    """Server CPU seconds per ``/predict``."""


def one_client_phase(backend: Backend, health_count: int, predict_count: int) -> OneClientPhase:
    """Sequential ``/health`` and ``/predict`` on one kept-alive connection, and server CPU seconds per request."""
    photo = "data:image/jpeg;base64," + base64.b64encode(PHOTOS[0].read_bytes()).decode()
    body: dict[str, Any] = {
        "project": "slow.1",
        "label_config": BOXES_CONFIG,
        "tasks": [{"id": 1, "data": {"image": photo}}],
    }
    health, predict = Latencies(HEALTH_BUDGET), Latencies(100.0)
    with requests.Session() as session:
        session.auth = (USER, PASSWORD)
        for _ in range(3):  # the model loads and warms up
            session.post(f"{backend.url}/predict", json=body, timeout=100).raise_for_status()
        cpu = server_cpu_seconds(backend.pid)
        for _ in range(health_count):
            health.seconds.append(get_health(backend.url, session=session))
        health_cpu, cpu = server_cpu_seconds(backend.pid) - cpu, server_cpu_seconds(backend.pid)
        for _ in range(predict_count):
            started = time.monotonic()
            session.post(f"{backend.url}/predict", json=body, timeout=100).raise_for_status()
            predict.seconds.append(time.monotonic() - started)
        predict_cpu = server_cpu_seconds(backend.pid) - cpu
    return OneClientPhase(health, predict, health_cpu / health_count, predict_cpu / predict_count)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with suppress(OSError):  # closed by the server or by the end of the phase
        sock.sendall(data)


# --- Main ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="slow connections (default: 200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the slow phase (default: 20)")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between a slow client's sends (3)")
    parser.add_argument("--large-bodies", type=int, default=40, help="clients of the large-body phase (40; 0: skip)")
    parser.add_argument("--body-mb", type=float, default=8.0, help="size of each large body in MB (default: 8)")
    parser.add_argument("--requests", type=int, default=300, help="sequential /health requests (default: 300)")
    parser.add_argument("--predicts", type=int, default=30, help="sequential /predict requests (default: 30)")
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS), help="what to run")
    args = parser.parse_args()

    print(
        f"{args.clients} slow clients for {args.seconds:g} s (half slow headers, half slow bodies, one send every "
        f"{args.interval:g} s; half without credentials), /health polled every 0.25 s with a {HEALTH_BUDGET:g} s "
        f"budget; {THREADS} request threads; gunicorn 1 worker"
    )
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "models"
        root.mkdir()
        shutil.copy2(DEFAULT_WEIGHTS, root / WEIGHTS_NAME)
        for setup in args.setups:
            folder = Path(scratch) / setup.replace(" ", "-")
            folder.mkdir()
            with serving(setup, root, folder) as backend:
                run_setup(setup, backend, args)


def run_setup(setup: str, backend: Backend, args: argparse.Namespace) -> None:
    """Every phase on one running backend; prints as it goes."""
    alone = one_client_phase(backend, args.requests, args.predicts)
    print(f"\n[{setup}]")
    health_cpu = f"server CPU {alone.health_cpu * 1e3:.2f} ms each"
    print(f"  one client, /health x{args.requests}: {alone.health.summary()}; {health_cpu}")
    print(
        f"  one client, /predict x{args.predicts}: {alone.predict.summary()}; server CPU "
        f"{alone.predict_cpu * 1e3:.1f} ms each"
    )
    slow = slow_phase(backend, args.clients, args.seconds, args.interval)
    answers = ", ".join(f"{status!r} x{count}" for status, count in slow.clients.answers.most_common()) or "none"
    print(f"  {args.clients} slow clients, /health: {slow.health.summary()}")
    print(
        f"    wall {slow.wall:.1f} s, server CPU {slow.server_cpu:.2f} s, benchmark CPU {slow.client_cpu:.2f} s; "
        f"{slow.clients.opened} connections opened, {slow.clients.closed_by_server} closed by the server; "
        f"answers: {answers}"
    )
    if args.large_bodies:
        before, during, large_health = large_bodies_phase(backend, args.large_bodies, args.body_mb)
        print(
            f"  {args.large_bodies} bodies of {args.body_mb:g} MB waiting: worker RSS {before:.0f} MB -> "
            f"{during:.0f} MB; /health: {large_health.summary()}"
        )


if __name__ == "__main__":
    main()
