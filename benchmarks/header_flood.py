"""Connections that never finish their headers, gunicorn's plain ``asgi`` worker beside this backend's, in one run.

For each worker the real backend is started under gunicorn (``gunicorn.conf.py``; the plain worker by
``--worker-class asgi``), with the same open-file limit (``prlimit --nofile``, default 4,096), and measured in two
phases:

- **flood**: ``--connections`` clients (default 8,000, twice the file limit) each open a connection, send a request
  line and one header and never the rest; a connection the server closes is opened again 0.5 s later, as an attacker
  would (``--once``: never). Meanwhile ``/health`` is polled 4 times a second with Label Studio's 1 s budget, the
  first 5 s (while the flood opens) apart. Reported: probes answered, the most connections the worker held, its RSS,
  the lines its log grew by and its "Too many open files" lines.
- **large headers**: ``--large`` connections (default 1,000) each send 95 header fields of 8 KB (760 KB, within
  gunicorn's default limits) and never the blank line. Reported: the worker's RSS while they wait and 5 s after
  they closed.

Server CPU seconds are printed beside wall time.

Usage:
    .venv/bin/python -m benchmarks.header_flood --connections 8000 --large 1000
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.bulk_predict import DEFAULT_WEIGHTS
from benchmarks.slow_clients import Latencies, backend_env, poll_health, server_cpu_seconds
from conftest import PROJECT_ROOT, WEIGHTS_NAME
from tests.support.processes import free_port, running_server

WORKERS = {"plain asgi": ["--worker-class", "asgi"], "this backend": []}
"""gunicorn's arguments besides ``--bind`` per worker; everything else comes from ``gunicorn.conf.py``."""

UNFINISHED = b"GET /health HTTP/1.1\r\nHost: flood\r\nX-Never: "
"""What a flood connection sends: a request line and a header, without the end of the headers."""

FIELD = b"X-Large-%02d: " + b"x" * 8000 + b"\r\n"
"""One header field of the large-header phase (8 KB; gunicorn takes fields up to 8,190 bytes)."""

MIB = 2**20

OPENING = 5.0
"""Seconds from the flood's start reported apart: while its connections are first opened."""


@dataclass
class Backend:
    url: str
    worker: psutil.Process
    log: Path


@contextmanager
def serving(name: str, folder: Path, open_files: int) -> Iterator[Backend]:
    """The backend under gunicorn with worker ``name``, at most ``open_files`` open files, on a free port."""
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = ["prlimit", f"--nofile={open_files}", gunicorn, "--bind", f"127.0.0.1:{port}", *WORKERS[name]]
    models = folder / "models"
    models.mkdir()
    shutil.copy2(DEFAULT_WEIGHTS, models / WEIGHTS_NAME)
    env = backend_env(models, folder)
    log = folder / "backend.log"
    with running_server(command, f"http://127.0.0.1:{port}/health", log, env, PROJECT_ROOT, 120.0) as process:
        (worker,) = psutil.Process(process.pid).children(recursive=True)[-1:]
        yield Backend(f"http://127.0.0.1:{port}", worker, log)


class Flood:
    """``count`` connections that never finish their headers, from an event loop in a thread, until the block ends;
    each one the server closes is opened again after 0.5 s."""

    def __init__(self, url: str, count: int, reconnect: bool = True) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.count, self.reconnect = count, reconnect
        self.opened = self.closed_by_server = 0
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),), daemon=True)

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    async def _run(self) -> None:
        await asyncio.gather(*(self._hold() for _ in range(self.count)))

    async def _hold(self) -> None:
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(*self.address)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            self.opened += 1
            writer.write(UNFINISHED)
            reading = asyncio.ensure_future(reader.read(65536))
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if reading.done():
                self.closed_by_server += 1
            reading.cancel()
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
            if not self.reconnect:
                await self._stop.wait()
            await asyncio.sleep(0.5)


def most_connections(worker: psutil.Process, seconds: float) -> int:
    """The most TCP connections ``worker`` held, sampled every 0.5 s for ``seconds``."""
    most, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        with suppress(psutil.Error):
            most = max(most, len(worker.net_connections(kind="tcp")))
        time.sleep(0.5)
    return most


def flood_phase(backend: Backend, connections: int, seconds: float, reconnect: bool) -> str:
    log_before = backend.log.stat().st_size
    cpu, wall = server_cpu_seconds(backend.worker.ppid()), time.monotonic()
    held: list[int] = []
    with Flood(backend.url, connections, reconnect) as flood:
        sampler = threading.Thread(target=lambda: held.append(most_connections(backend.worker, seconds)))
        sampler.start()
        opening: Latencies = poll_health(backend.url, OPENING)
        health: Latencies = poll_health(backend.url, seconds - OPENING)
        sampler.join()
        rss = backend.worker.memory_info().rss / MIB
    log = backend.log.read_bytes()[log_before:]
    cpu, wall = server_cpu_seconds(backend.worker.ppid()) - cpu, time.monotonic() - wall
    return (
        f"    /health while the flood opens (first {OPENING:g} s) {opening.summary()}\n"
        f"    /health after that {health.summary()}\n"
        f"    connections opened {flood.opened:,}, closed by the server {flood.closed_by_server:,}; "
        f"worker held at most {held[0]:,}; RSS {rss:,.0f} MiB\n"
        f"    log +{len(log) / MIB:,.2f} MiB in {len(log.splitlines()):,} lines, "
        f"{log.count(b'Too many open files'):,} 'Too many open files'\n"
        f"    server CPU {cpu:.1f} s in {wall:.1f} s wall"
    )


def large_headers_phase(backend: Backend, connections: int) -> str:
    rss_before = backend.worker.memory_info().rss / MIB
    head = b"GET /health HTTP/1.1\r\nHost: flood\r\n" + b"".join(FIELD % n for n in range(95))

    async def send_all() -> float:
        opened = await asyncio.gather(*(_send(backend.url, head) for _ in range(connections)))
        await asyncio.sleep(5)
        waiting = backend.worker.memory_info().rss / MIB
        for writer in opened:
            if writer is not None:
                writer.close()
        return waiting

    waiting = asyncio.run(send_all())
    time.sleep(5)
    after = backend.worker.memory_info().rss / MIB
    return (
        f"    worker RSS {rss_before:,.0f} MiB before, {waiting:,.0f} MiB while they wait, {after:,.0f} MiB 5 s after "
        "they closed"
    )


async def _send(url: str, data: bytes) -> asyncio.StreamWriter | None:
    host, port = url.removeprefix("http://").split(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(data)
        await asyncio.wait_for(writer.drain(), 10)
    except (OSError, TimeoutError):
        return None
    return writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8000, help="flood connections (default: 8,000)")
    parser.add_argument("--large", type=int, default=1000, help="connections with large headers (default: 1,000)")
    parser.add_argument("--seconds", type=float, default=30, help="length of the flood (default: 30 s)")
    parser.add_argument("--open-files", type=int, default=4096, help="the server's file limit (default: 4,096)")
    parser.add_argument("--once", action="store_true", help="flood clients do not reconnect once closed")
    args = parser.parse_args()
    again = "never reconnecting" if args.once else "reconnecting 0.5 s after a close"
    flood = f"flood of {args.connections:,} ({again}) for {args.seconds:g} s"
    print(f"gunicorn, 1 worker, at most {args.open_files:,} open files; {flood}; each phase on a fresh server")
    for name in WORKERS:
        with tempfile.TemporaryDirectory() as folder, serving(name, Path(folder), args.open_files) as backend:
            print(f"{name}:\n  flood\n{flood_phase(backend, args.connections, args.seconds, not args.once)}")
        with tempfile.TemporaryDirectory() as folder, serving(name, Path(folder), args.open_files) as backend:
            large = large_headers_phase(backend, args.large)
            print(f"  {args.large:,} connections of 95 header fields x 8 KB\n{large}")


if __name__ == "__main__":
    main()
