"""A private, throw-away ``redis-server`` for tests: its own free port, stopped afterwards.

Tests never talk to a shared Redis (such as one on 6379): each run gets an empty server that dies with it.
:func:`restartable_redis` can be stopped and started again on the same port, keeping its data in an append-only
file as ``docker-compose.yml``'s Redis does, or paused (hung), for tests of Redis outages.

Example:
    >>> with running_redis() as url:                       # doctest: +SKIP
    ...     Redis.from_url(url).ping()
    True
    >>> with restartable_redis() as server:                # doctest: +SKIP
    ...     server.stop()                                  # clients now get "connection refused"
    ...     server.start()                                 # same URL, same data
    ...     server.pause()                                 # clients connect, then wait for answers
    ...     server.resume()
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from redis import Redis
from redis.exceptions import RedisError

from tests.support.processes import free_port, stop

START_TIMEOUT = 15.0
"""Seconds ``redis-server`` may take to answer PING."""


@contextmanager
def running_redis() -> Iterator[str]:
    """Run ``redis-server`` on a free port of 127.0.0.1 until the block ends; yields ``redis://127.0.0.1:PORT/0``."""
    with restartable_redis(persistent=False) as server:
        yield server.url


class RestartableRedis:
    """A ``redis-server`` on a fixed port that can be stopped and started again; data survives in ``data_dir``."""

    def __init__(self, port: int, data_dir: Path, log: IO[bytes], persistent: bool) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.data_dir = data_dir
        self.log = log
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers PING."""
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not on PATH")
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes" if self.persistent else "no", "--dir", str(self.data_dir)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        _wait_for_ping(self.url, self.process, self.log)

    def stop(self) -> None:
        """Shut the server down (SIGTERM: it writes its append-only file and closes every connection)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a paused server would not see SIGTERM
            stop(self.process, grace=10)
            self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are still accepted, but nothing answers until :meth:`resume`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT); it then runs the commands that arrived meanwhile."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def restartable_redis(persistent: bool = True) -> Iterator[RestartableRedis]:
    """A started :class:`RestartableRedis` on a free port of 127.0.0.1, stopped when the block ends."""
    with tempfile.TemporaryDirectory(prefix="redis-") as data_dir, tempfile.TemporaryFile() as log:
        server = RestartableRedis(free_port(), Path(data_dir), log, persistent)
        server.start()
        try:
            yield server
        finally:
            server.stop()


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
