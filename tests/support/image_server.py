"""A local HTTP server that plays Label Studio's file storage for tests: real HTTP on a free loopback port.

Paths under ``/data/upload/`` need ``Authorization: Token <token>`` (as Label Studio with legacy tokens); other
paths are public. Every request's path and Authorization header is recorded, so tests can check where
credentials were sent. ``delay`` makes every answer that many seconds late (slow storage); ``hold`` keeps one
path's answer back until the test releases it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.http_serving import LoopbackHTTPServer, serving


@dataclass
class FileServer:
    """Files to serve (path -> (status, body)) and the requests seen."""

    token: str
    files: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""
    delay: float = 0.0
    held: dict[str, threading.Event] = field(default_factory=dict)

    def add(self, path: str, body: bytes, status: int = 200) -> str:
        """Serve ``body`` at ``path``; returns the absolute URL."""
        self.files[path] = (status, body)
        return self.url + path

    def hold(self, path: str) -> threading.Event:
        """Answer ``path`` only once the returned event is set (or after 60 s)."""
        self.held[path] = threading.Event()
        return self.held[path]


@contextmanager
def serve_files(token: str = "test-token", host: str = "127.0.0.1") -> Iterator[FileServer]:
    """Run a :class:`FileServer` on ``host`` (a loopback address) for the duration of the block."""
    state = FileServer(token=token)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(state.delay)
            if self.path in state.held:
                state.held[self.path].wait(60)
            auth = self.headers.get("Authorization")
            state.requests.append((self.path, auth))
            status, body = state.files.get(self.path, (404, b"not found"))
            if self.path.startswith("/data/upload/") and auth != f"Token {state.token}":
                status, body = 401, b'{"detail": "Authentication credentials were not provided."}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(LoopbackHTTPServer((host, 0), Handler)) as url:
        state.url = url
        yield state
