"""The ASGI front gunicorn serves: slow clients wait on an event loop, the Flask app runs in a pool of threads.

A thread that waits for a slow client's body is a thread ``/health`` cannot have, so under gunicorn's ``asgi``
worker each request is handled in three steps:

1. On its headers alone (:func:`label_studio_yolo.serving.guard.header_refusal`): no or wrong Basic credentials get
   401, a declared ``Content-Length`` over MAX_REQUEST_BYTES 413, with ``Connection: close`` and the body unread.
2. The body is read on the event loop into a temporary file: at most MAX_REQUEST_BYTES (a chunked body gets 413 one
   byte past it), within ``REQUEST_BODY_TIMEOUT`` seconds of its headers (408 after that), and while the bodies the
   process holds (arriving, waiting or being answered) stay within REQUEST_BUFFER_BYTES (503 with Retry-After).
3. Only then is the WSGI app called, in a pool of ``THREADS`` threads, with the complete body framed by its length.

Example:
    >>> asgi_app = buffering_front(app)  # _wsgi.py; gunicorn.conf.py serves _wsgi:asgi_app
    $ gunicorn                            # in the repository root: reads ./gunicorn.conf.py
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import IO, TYPE_CHECKING, Any

from a2wsgi import WSGIMiddleware

from label_studio_yolo.serving.guard import Refusal, header_refusal, log_refusal, too_large
from label_studio_yolo.settings import REQUEST_BUFFERS, current_settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SPOOL_BYTES = 64 * 1024
"""A body waiting for a thread stays in memory up to this size and goes to a temporary file above it, so many large
uploads at once cost disk, not memory."""

BUSY_RETRY_AFTER = 5
"""Seconds a request refused for REQUEST_BUFFER_BYTES is told to wait (``Retry-After``)."""

REPLAY_CHUNK = 1024 * 1024
"""Bytes per message when the buffered body is handed to the WSGI adapter: large, since each message is a round
trip to the event loop and the app reads the whole body anyway."""


class BodyRefused(Exception):
    """The body broke a limit while it was read (too large, too slow); ``refusal`` is the answer."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class ClientGone(Exception):
    """The client closed its connection before its body was complete: there is nobody to answer."""


class BufferingFront:
    """ASGI app in front of a WSGI app: headers checked, body buffered on the event loop, then the app in a thread.

    ``credentials`` (user, password) switches Basic auth on; ``max_bytes`` bounds every body; ``threads`` is the
    size of the pool that runs ``app``; ``body_timeout`` the seconds a body may take after its headers;
    ``buffer_bytes`` the bytes of bodies held at once (counted as they arrive, on the event loop: no lock needed).
    """

    def __init__(
        self,
        app: WSGIApplication,
        credentials: tuple[str, str] | None,
        max_bytes: int,
        threads: int,
        body_timeout: float,
        buffer_bytes: int | None = None,
    ) -> None:
        self.credentials = credentials
        self.max_bytes = max_bytes
        self.threads = threads
        self.body_timeout = body_timeout
        self.buffer_bytes = buffer_bytes or REQUEST_BUFFERS * max_bytes
        self.held = 0
        """Bytes of the bodies held now."""
        # a2wsgi's body stream reads from the loop on demand (a slow body would hold a thread), so it only ever gets
        # a body that is already complete: see _replay.
        self.wsgi = WSGIMiddleware(app, workers=threads)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] != "http":
            await self.wsgi(scope, receive, send)  # type: ignore[arg-type]  # a websocket is closed: none served here
        else:
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        authorization, declared = headers.get("authorization"), headers.get("content-length")
        refusal = header_refusal(authorization, declared, self.credentials, self.max_bytes)
        if refusal is not None:
            await _refuse(scope, refusal, send)
            return
        hold = [0]  # this request's bytes in self.held, released whatever happens
        try:
            try:
                body, size = await self._buffer(receive, hold)
            except BodyRefused as refused:
                await _refuse(scope, refused.refusal, send)
                return
            except ClientGone:
                return
            with body:
                await self.wsgi(_framed(scope, size), _replay(body, size), send)  # type: ignore[arg-type]
        finally:
            self.held -= hold[0]

    async def _buffer(self, receive: Receive, hold: list[int]) -> tuple[IO[bytes], int]:
        """The whole body, in a spooled temporary file at its start, and its size; ``hold[0]`` counts its bytes in
        :attr:`held`.

        Raises:
            BodyRefused: over ``max_bytes`` (413), over what ``buffer_bytes`` has left (503), or not complete within
                ``body_timeout`` (408).
            ClientGone: the client disconnected first.
        """
        body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115  # closed by the caller
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        raise ClientGone
                    chunk, more = message.get("body", b""), message.get("more_body", False)
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise BodyRefused(too_large(self.max_bytes))
                    if self.held + len(chunk) > self.buffer_bytes:
                        raise BodyRefused(self._busy())
                    self.held += len(chunk)
                    hold[0] += len(chunk)
                    # At most one socket read, to memory or the page cache: a thread would cost more than it saves.
                    body.write(chunk)
        except TimeoutError:
            body.close()
            raise BodyRefused(self._too_slow()) from None
        except BaseException:
            body.close()
            raise
        body.seek(0)
        return body, size

    def _busy(self) -> Refusal:
        message = (
            f"The backend holds {self.buffer_bytes} bytes of request bodies already (REQUEST_BUFFER_BYTES): try again "
            f"in {BUSY_RETRY_AFTER} s"
        )
        reason = f"request bodies held over REQUEST_BUFFER_BYTES ({self.buffer_bytes} bytes)"
        return Refusal(503, reason, message, {"Retry-After": str(BUSY_RETRY_AFTER)})

    def _too_slow(self) -> Refusal:
        seconds = f"{self.body_timeout:g} s"
        message = (
            f"The request body did not arrive within {seconds} of its headers (REQUEST_BODY_TIMEOUT): send it at "
            "once, or raise REQUEST_BODY_TIMEOUT for a slow link"
        )
        return Refusal(408, f"body not complete within {seconds}", message)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start and stop with the worker; the thread pool is let go at shutdown (gunicorn has drained requests)."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.wsgi.executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return


def buffering_front(app: WSGIApplication) -> BufferingFront:
    """The front for ``app`` with this process's settings: BASIC_AUTH_USER/PASS, MAX_REQUEST_BYTES, THREADS,
    REQUEST_BODY_TIMEOUT and REQUEST_BUFFER_BYTES."""
    settings = current_settings()
    return BufferingFront(
        app,
        settings.basic_auth,
        settings.max_request_bytes,
        settings.threads,
        settings.request_body_timeout,
        settings.buffer_budget,
    )


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name, as WSGI gives them: Latin-1 text, repeated ones joined by commas."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _path_info(scope: Scope) -> str:
    """The path as WSGI's ``PATH_INFO`` has it (UTF-8 bytes as Latin-1 text), so both guards log it alike."""
    return str(scope["path"]).encode("utf-8").decode("latin-1")


async def _refuse(scope: Scope, refusal: Refusal, send: Send) -> None:
    """Log and answer ``refusal``; gunicorn then closes the connection, the rest of the body unread."""
    client = scope.get("client")
    log_refusal(scope["method"], _path_info(scope), client[0] if client else "?", refusal)
    response = refusal.response()
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.get_data()})


def _framed(scope: Scope, size: int) -> Scope:
    """``scope`` with a chunked body framed by its ``Content-Length`` (what it is once buffered).

    Werkzeug reads a body without a length only from a server that marks its stream as terminated.
    """
    names = {name.lower() for name, _ in scope["headers"]}
    if b"transfer-encoding" not in names:
        return scope
    kept = [(name, value) for name, value in scope["headers"] if name.lower() != b"transfer-encoding"]
    return {**scope, "headers": [*kept, (b"content-length", str(size).encode())]}


def _replay(body: IO[bytes], size: int) -> Receive:
    """An ASGI ``receive`` that hands out the buffered ``body`` (``size`` bytes) in :data:`REPLAY_CHUNK` pieces."""

    async def receive() -> Message:
        chunk = body.read(REPLAY_CHUNK)
        return {"type": "http.request", "body": chunk, "more_body": body.tell() < size}

    return receive
