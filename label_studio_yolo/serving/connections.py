"""gunicorn's ``asgi`` worker with the bounds its HTTP/1 connections lack: a header deadline, a header size, a cap.

gunicorn 27's asgi worker waits for a new connection's headers without end, counts its connections without limiting
them, and takes up to 100 header fields of 8 KB each: 20,000 connections that never finished their headers ran the
process out of file descriptors. :class:`GuardedASGIWorker` (``worker_class`` in ``gunicorn.conf.py``) adds, per
process:

- ``REQUEST_HEADER_TIMEOUT``: a connection that has not sent its request line and headers within it is closed
  (between requests on a kept-alive connection, gunicorn's own ``keepalive`` of 2 s already applies);
- ``MAX_HEADER_BYTES``: a request line and headers larger than it get 431 and the connection is closed;
- ``MAX_CONNECTIONS``, lowered to fit the open-file limit: at the cap, the connection that has waited longest for
  its headers is closed to make room, and when every connection is inside a request a new one gets 503;
- one log line a minute at most that counts what was closed and why, however many connections it was.

Example:
    $ gunicorn --worker-class label_studio_yolo.serving.connections.GuardedASGIWorker _wsgi:asgi_app
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

from label_studio_yolo.heap import limit_arenas
from label_studio_yolo.settings import current_settings

logger = logging.getLogger(__name__)

FILES_RESERVED = 128
"""Open files a process keeps for itself beside its connections: weights, Redis, downloads, logs."""

FILES_PER_CONNECTION = 2
"""Open files one connection may hold: its socket and its request body's temporary file."""

LOG_EVERY = 60.0
"""Seconds between two log lines about closed or refused connections: a flood writes one line a minute."""

BUSY_RETRY_AFTER = 5
"""Seconds a connection refused at the cap is told to wait (``Retry-After``)."""

TIMED_OUT, TOO_LARGE, EVICTED, REFUSED = "timed out", "too large", "evicted", "refused"


def connection_cap(configured: int, open_files: int | None = None) -> int:
    """Connections a process may hold: ``configured`` (MAX_CONNECTIONS), lowered so that they, their body files and
    :data:`FILES_RESERVED` fit the soft open-file limit (``ulimit -n``; read from the process when not given)."""
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if open_files == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, (open_files - FILES_RESERVED) // FILES_PER_CONNECTION))


def json_answer(status: int, phrase: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, with the app's JSON error body."""
    body = json.dumps({"status": "error", "error": message}).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


@dataclass
class ConnectionGuard:
    """One process's connection bounds and its record of the connections that wait for their headers.

    ``waiting`` holds them oldest first: the first is the one closed to make room at the cap.
    """

    cap: int
    header_timeout: float
    header_bytes: int
    waiting: OrderedDict[GuardedProtocol, None] = field(default_factory=OrderedDict)
    closed: Counter[str] = field(default_factory=Counter)
    """Connections closed or refused since the last log line, by why."""
    _last_logged: float = float("-inf")
    _flush: asyncio.TimerHandle | None = None

    def make_room(self, open_now: int) -> bool:
        """Whether a new connection may be served with ``open_now`` open: at the cap, the connection that has waited
        longest for its headers is closed for it; False when every open connection is inside a request."""
        if open_now < self.cap:
            return True
        if not self.waiting:
            self.note(REFUSED)
            return False
        oldest = next(iter(self.waiting))
        oldest.close_waiting(EVICTED)
        return True

    def note(self, why: str) -> None:
        """Count one connection closed or refused; the count is logged at once, or within :data:`LOG_EVERY`."""
        self.closed[why] += 1
        if self._flush is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_logged + LOG_EVERY - loop.time()
        if wait <= 0:
            self.log_closed()
        else:
            self._flush = loop.call_later(wait, self.log_closed)

    def log_closed(self) -> None:
        """The one line about the connections closed or refused since the last one."""
        self._flush = None
        self._last_logged = asyncio.get_running_loop().time()
        counts, self.closed = self.closed, Counter()
        parts = {
            TIMED_OUT: f"{counts[TIMED_OUT]} sent no complete headers within REQUEST_HEADER_TIMEOUT "
            f"({self.header_timeout:g} s)",
            TOO_LARGE: f"{counts[TOO_LARGE]} sent headers over MAX_HEADER_BYTES ({self.header_bytes} bytes, 431)",
            EVICTED: f"{counts[EVICTED]} waiting for their headers were closed to make room at MAX_CONNECTIONS "
            f"({self.cap})",
            REFUSED: f"{counts[REFUSED]} were refused with 503: all {self.cap} connections were inside requests",
        }
        said = "; ".join(text for why, text in parts.items() if counts[why])
        logger.warning("Connections closed in this process since the last such line: %s", said)


class GuardedProtocol(ASGIProtocol):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's HTTP/1 connection handler, with the header deadline, header size and cap of its worker's guard.

    It overrides gunicorn 27.0.1's connection hooks (``connection_made``, ``data_received``,
    ``_on_headers_complete``, ``_arm_keepalive_timer``, ``connection_lost``): gunicorn offers no public ones.
    """

    def __init__(self, worker: GuardedASGIWorker) -> None:
        super().__init__(worker)
        self.guard = worker.guard
        self._refused = False
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        if not self.guard.make_room(self.worker.nr_conns):
            self._refused = True
            message = (
                f"The backend serves {self.guard.cap} connections at once (MAX_CONNECTIONS) and all are inside "
                f"requests: try again in {BUSY_RETRY_AFTER} s"
            )
            transport.write(json_answer(503, "Service Unavailable", message, {"Retry-After": str(BUSY_RETRY_AFTER)}))
            transport.close()
            return
        super().connection_made(transport)
        if self._callback_parser is not None:  # HTTP/1 (HTTP/2 is not switched on here)
            self._wait_for_headers()
            self._header_deadline = self.worker.loop.call_later(self.guard.header_timeout, self._headers_too_slow)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self in self.guard.waiting:  # the headers are still not complete after these bytes
            self._header_bytes += len(data)
            if self._header_bytes > self.guard.header_bytes:
                message = (
                    f"The request line and headers are larger than MAX_HEADER_BYTES ({self.guard.header_bytes} bytes)"
                )
                self._safe_write(json_answer(431, "Request Header Fields Too Large", message))
                self.close_waiting(TOO_LARGE)

    def _on_headers_complete(self) -> Any:
        self._stop_waiting()
        return super()._on_headers_complete()

    def _arm_keepalive_timer(self) -> None:
        super()._arm_keepalive_timer()
        self._wait_for_headers()  # idle between requests: the next one's headers are counted, and it may make room

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return  # never counted as open by gunicorn
        self._stop_waiting()
        super().connection_lost(exc)

    def close_waiting(self, why: str) -> None:
        """Close this connection, which waits for its headers, and count why."""
        self._stop_waiting()
        self.guard.note(why)
        self._close_transport()
        self._request_ready.set()  # wakes gunicorn's connection loop, which sees the connection closed

    def _wait_for_headers(self) -> None:
        self._header_bytes = 0
        self.guard.waiting[self] = None

    def _stop_waiting(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self in self.guard.waiting:
            self.close_waiting(TIMED_OUT)


class GuardedASGIWorker(gasgi.ASGIWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's ``asgi`` worker whose connections are :class:`GuardedProtocol` under one :class:`ConnectionGuard`
    built from this process's settings (REQUEST_HEADER_TIMEOUT, MAX_HEADER_BYTES, MAX_CONNECTIONS)."""

    def init_process(self) -> None:
        limit_arenas()  # before the worker's threads start allocating
        settings = current_settings()
        self.guard = ConnectionGuard(
            connection_cap(settings.max_connections), settings.request_header_timeout, settings.max_header_bytes
        )
        # gunicorn 27 builds each connection's protocol by this module-level name and has no setting for it; this
        # runs in the worker process only, where this is the one worker.
        gasgi.ASGIProtocol = GuardedProtocol
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()  # the app sets up logging: say a lowered cap after it, where operators read
        configured = current_settings().max_connections
        if self.guard.cap < configured:
            logger.warning(
                "Serving at most %d connections, not MAX_CONNECTIONS=%d: this process may open %d files (ulimit -n) "
                "and each connection may take %d; raise the limit to serve more",
                self.guard.cap,
                configured,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                FILES_PER_CONNECTION,
            )
