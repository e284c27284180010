"""A local HTTP server that answers as scripted, misbehaving servers included: real HTTP on a free loopback port.

Each path gets an :class:`Answer`: a status and body, extra headers (a redirect's ``Location``), a declared
``Content-Length`` that differs from the body, a body sent a byte at a time (slow storage), or no answer at all.
Every request's path and ``Authorization`` header is recorded, so tests can check where credentials went. A path
with no answer gets 404.

Example:
    >>> with serve_script() as server:                                  # doctest: +SKIP
    ...     url = server.add("/slow.png", Answer(body=png, byte_delay=0.1))
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.http_serving import LoopbackHTTPServer, serving


@dataclass(frozen=True)
class Answer:
    """How the server answers one path."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    declared_length: int | None = None
    """``Content-Length`` sent instead of the body's length; -1 sends none (the body ends when the socket closes)."""
    byte_delay: float = 0.0
    """Seconds between bytes of the body (a trickle that never quite stops)."""
    silent: bool = False
    """Read the request and never answer."""


@dataclass
class ScriptedServer:
    """The answers by path, the requests seen (path, Authorization) and the base URL."""

    answers: dict[str, Answer] = field(default_factory=dict)
    queued: dict[str, list[Answer]] = field(default_factory=dict)
    """Answers a path gives after its current one, in order."""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)

    def add(self, path: str, answer: Answer, *later: Answer) -> str:
        """Answer ``path`` with ``answer`` (then with each of ``later`` in turn, the last one from then on); returns
        the absolute URL."""
        self.answers[path] = answer
        self.queued[path] = list(later)
        return self.url + path

    def auth_sent_to(self, path: str) -> list[str | None]:
        """The Authorization header of every request for ``path``."""
        return [auth for seen, auth in self.requests if seen == path]


def _handler(state: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Authorization")))
            answer = state.answers.get(self.path, Answer(404, b"not found"))
            if state.queued.get(self.path):
                state.answers[self.path] = state.queued[self.path].pop(0)
            if answer.silent:
                state.stopping.wait()
                return
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            length = len(answer.body) if answer.declared_length is None else answer.declared_length
            if length >= 0:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            with suppress(OSError):  # the client gave up (a timeout, a size limit): nothing to finish
                self._send_body(answer)

        def _send_body(self, answer: Answer) -> None:
            if not answer.byte_delay:
                self.wfile.write(answer.body)
                return
            for index in range(len(answer.body)):
                if state.stopping.wait(answer.byte_delay):
                    return
                self.wfile.write(answer.body[index : index + 1])
                self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve_script(host: str = "127.0.0.1") -> Iterator[ScriptedServer]:
    """Run a :class:`ScriptedServer` on ``host`` (a loopback address: 127.0.0.2 stands in for another machine) for
    the duration of the block."""
    state = ScriptedServer()
    with serving(LoopbackHTTPServer((host, 0), _handler(state))) as url:
        state.url = url
        try:
            yield state
        finally:
            state.stopping.set()
