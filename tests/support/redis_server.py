"""A private, throw-away ``redis-server`` for tests: its own free port, no persistence, stopped afterwards.

Tests never talk to a shared Redis (such as one on 6379): each run gets an empty server that dies with it.

Example:
    >>> with running_redis() as url:                       # doctest: +SKIP
    ...     Redis.from_url(url).ping()
    True
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from redis import Redis
from redis.exceptions import RedisError

from tests.support.processes import free_port, stop

START_TIMEOUT = 15.0
"""Seconds ``redis-server`` may take to answer PING."""


@contextmanager
def running_redis() -> Iterator[str]:
    """Run ``redis-server`` on a free port of 127.0.0.1 until the block ends; yields ``redis://127.0.0.1:PORT/0``."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not on PATH")
    port = free_port()
    command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    url = f"redis://127.0.0.1:{port}/0"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_ping(url, process, log)
            yield url
        finally:
            stop(process, grace=10)


def _wait_for_ping(url: str, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    client = Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log.seek(0)
                output = log.read().decode(errors="replace")
                raise RuntimeError(f"redis-server exited with {process.returncode}:\n{output[-4000:]}")
            try:
                if client.ping():
                    return
            except RedisError:
                pass
            time.sleep(0.05)
    finally:
        client.close()
    raise TimeoutError(f"redis-server at {url} did not answer PING within {START_TIMEOUT} s")
