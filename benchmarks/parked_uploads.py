"""Disk and memory held by uploads that park (all of the body sent but its last byte), with and without the bound on
request bodies one process holds (``REQUEST_BUFFER_BYTES``).

Starts the backend under gunicorn (default settings, its temporary folder a private one) once per row, opens
``--uploads`` connections that each declare ``MAX_REQUEST_BYTES`` and send all of it but the last byte, then reports
how many were refused with 503, what the temporary folder holds, the worker's memory, and whether ``/health`` still
answers within Label Studio's 1 s.

Usage:
    .venv/bin/python -m benchmarks.parked_uploads --uploads 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import psutil
import requests

from benchmarks.bulk_predict import DEFAULT_WEIGHTS
from conftest import WEIGHTS_NAME
from tests.e2e.conftest import backend_server

MIB = 2**20


def park(url: str, size: int) -> socket.socket:
    """A connection that has sent all of a ``size``-byte body but its last byte (or as much as the server read
    before it answered and closed)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = f"POST /predict HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused part way: the answer is waiting
        sock.sendall(head.encode() + b" " * (size - 1))
    return sock


def refused(sock: socket.socket) -> bool:
    """Whether the server answered (503) instead of waiting for the last byte."""
    sock.settimeout(0.2)
    try:
        return sock.recv(64).startswith(b"HTTP/1.1 503")
    except (TimeoutError, ConnectionResetError):
        return False


def row(uploads: int, buffer: int | None, folder: Path) -> dict[str, float]:
    """Park ``uploads`` uploads of MAX_REQUEST_BYTES against a backend; what it holds once they are parked."""
    spool = folder / "tmp"
    spool.mkdir()
    settings = {"TMPDIR": str(spool), **({"REQUEST_BUFFER_BYTES": str(buffer)} if buffer else {})}
    (folder / "models").mkdir()
    shutil.copy2(DEFAULT_WEIGHTS, folder / "models" / WEIGHTS_NAME)
    with backend_server(folder / "models", folder, **settings) as backend:
        size = 100 * MIB - 1024  # within MAX_REQUEST_BYTES's default
        sockets = [park(backend.url, size) for _ in range(uploads)]
        time.sleep(2)  # the bodies reach the server's buffer
        answered = sum(refused(sock) for sock in sockets)
        worker = psutil.Process(backend.process.pid if backend.process else 0).children()[0]
        held = spooled_bytes(worker.pid, spool)
        started = time.perf_counter()
        health = requests.get(f"{backend.url}/health", timeout=5).status_code == 200
        health_s = time.perf_counter() - started
        rss = worker.memory_info().rss
        for sock in sockets:
            sock.close()
    return {"refused": answered, "disk": held / MIB, "rss": rss / MIB, "health": health, "health_s": health_s}


def spooled_bytes(pid: int, spool: Path) -> int:
    """Bytes of the files process ``pid`` holds open in ``spool`` (temporary files are unlinked at once: they are
    found through the process's descriptors)."""
    total = 0
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed meanwhile
            if os.readlink(descriptor).startswith(str(spool)):
                total += descriptor.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=20, help="parked uploads of 100 MiB (default: 20)")
    args = parser.parse_args()
    print(f"{args.uploads} uploads of 100 MiB parked before their last byte, default settings otherwise")
    for name, buffer in (("REQUEST_BUFFER_BYTES default (400 MiB)", None), ("no bound (100 GiB)", 100 * 2**30)):
        with tempfile.TemporaryDirectory() as folder:
            found = row(args.uploads, buffer, Path(folder))
        print(
            f"  {name:40} refused {found['refused']:.0f}/{args.uploads}   temporary files {found['disk']:7,.0f} MiB   "
            f"worker RSS {found['rss']:6,.0f} MiB   /health {'ok' if found['health'] else 'FAILED'} "
            f"in {found['health_s'] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
