"""HTTP Basic auth and a request body limit, as WSGI middleware in front of the Flask app.

Both act before Flask sees a request, on every route (unknown ones too); a Flask hook would come too late, as
label-studio-ml's ``before_request`` reads the whole body. Auth comes first: a request without the right credentials
is answered 401 before its body is read. A declared ``Content-Length`` over the limit is refused unread, and a body
without one is read here, stopping one byte past the limit (Werkzeug 2.0.2 does not enforce ``MAX_CONTENT_LENGTH``
for JSON). Under gunicorn the ASGI front (:mod:`label_studio_yolo.serving.front`) applies :func:`header_refusal`
first; this middleware still guards Flask's development server and the test client.

Example:
    >>> app.wsgi_app = RequestGuard(app.wsgi_app, ("label-studio", "s3cret"), 100 * 1024 * 1024)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from label_studio_yolo.logsafe import printable

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

REALM = "label-studio-yolo"
READ_CHUNK = 64 * 1024

UNAUTHORIZED = (
    "This backend requires HTTP Basic auth: connect it in Label Studio with the authentication method "
    "'Basic Authentication' and the user and password set in BASIC_AUTH_USER and BASIC_AUTH_PASS"
)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON error like the app's own (``{"status": "error", "error": message}``)."""
    body = json.dumps({"status": "error", "error": message})
    return Response(body, status=status, headers=headers, mimetype="application/json")


def too_large_message(max_bytes: int) -> str:
    """What a 413 says: the limit, the setting that raises it, and the way round it."""
    return (
        f"Request body is larger than MAX_REQUEST_BYTES ({max_bytes} bytes): raise MAX_REQUEST_BYTES, or send fewer "
        "tasks at once (the label-studio-yolo predict command has no such limit)"
    )


def _encodings(text: str) -> list[bytes]:
    """``text`` in UTF-8 (RFC 7617) and, where that differs, in Latin-1 (what ``requests``, so Label Studio, sends)."""
    forms = [text.encode()]
    with contextlib.suppress(UnicodeEncodeError):
        forms.append(text.encode("latin-1"))
    return list(dict.fromkeys(forms))


def credentials_problem(header: str | None, expected: tuple[str, str]) -> str | None:
    """Why an ``Authorization`` header (as WSGI gives it: Latin-1 text) fails ``expected``; None if it passes.

    User and password are compared as bytes with ``hmac.compare_digest``, both of them every time.
    """
    if not header:
        return "no Authorization header"
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return "Authorization is not Basic"
    try:
        decoded = base64.b64decode(encoded.strip().encode("latin-1"), validate=True)
    except (binascii.Error, ValueError):  # also UnicodeEncodeError, a ValueError
        return "malformed Basic credentials"
    user, colon, password = decoded.partition(b":")
    if not colon:
        return "malformed Basic credentials"
    matches = [
        hmac.compare_digest(user, expected_user) & hmac.compare_digest(password, expected_password)
        for expected_user in _encodings(expected[0])
        for expected_password in _encodings(expected[1])
    ]
    return None if any(matches) else "wrong user or password"


@dataclass(frozen=True)
class Refusal:
    """A request answered with an error before the app sees it: the status, the log's reason, the client's answer."""

    status: int
    reason: str
    """What the WARNING line says (never a header's value)."""
    message: str
    """What the client reads in the JSON error."""
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        """The JSON error, as the app's own errors look."""
        return error_response(self.status, self.message, self.headers or None)


def too_large(max_bytes: int) -> Refusal:
    """The 413 of a body over ``max_bytes``, declared or counted."""
    return Refusal(413, f"body over MAX_REQUEST_BYTES ({max_bytes} bytes)", too_large_message(max_bytes))


def header_refusal(
    authorization: str | None, content_length: str | None, credentials: tuple[str, str] | None, max_bytes: int
) -> Refusal | None:
    """Whether a request is refused on its headers alone, before any byte of its body is read; None if not.

    ``authorization`` and ``content_length`` are the header values as WSGI gives them (Latin-1 text, repeated headers
    joined with commas); ``credentials`` None means Basic auth is off. Credentials are checked first: a client
    without them learns nothing about the size limit.
    """
    if credentials is not None:
        problem = credentials_problem(authorization, credentials)
        if problem is not None:
            challenge = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
            return Refusal(401, problem, UNAUTHORIZED, challenge)
    declared = (content_length or "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        return too_large(max_bytes)
    return None


def log_refusal(method: str, path: str, remote_addr: str, refusal: Refusal) -> None:
    """One WARNING line per refused request (a newline in the path is escaped): never a header's value.

    ``path`` is WSGI's ``PATH_INFO`` (the URL's bytes as Latin-1 text).
    """
    method, path = printable(method), printable(path)
    logger.warning("Refused %s %s from %s with %d: %s", method, path, remote_addr, refusal.status, refusal.reason)


class RequestGuard:
    """WSGI middleware: HTTP Basic auth (when ``credentials`` is set), then a limit on the body size."""

    def __init__(self, app: WSGIApplication, credentials: tuple[str, str] | None, max_bytes: int) -> None:
        self.app = app
        self.credentials = credentials
        self.max_bytes = max_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        authorization, declared = environ.get("HTTP_AUTHORIZATION"), environ.get("CONTENT_LENGTH")
        refusal = header_refusal(authorization, declared, self.credentials, self.max_bytes)
        if refusal is None and not declared and self._unframed_body_too_large(environ):
            refusal = too_large(self.max_bytes)
        if refusal is not None:
            method, path, peer = (environ.get(key, "?") for key in ("REQUEST_METHOD", "PATH_INFO", "REMOTE_ADDR"))
            log_refusal(method, path, peer, refusal)
            return refusal.response()(environ, start_response)
        return self.app(environ, start_response)

    def _unframed_body_too_large(self, environ: WSGIEnvironment) -> bool:
        """Whether a body without a length is over the limit; it is read here and handed on in memory."""
        if not environ.get("wsgi.input_terminated"):  # no length, no end marker: Werkzeug reads nothing
            return False
        body = bytearray()
        stream = environ["wsgi.input"]
        while len(body) <= self.max_bytes:
            chunk = stream.read(min(READ_CHUNK, self.max_bytes + 1 - len(body)))
            if not chunk:
                break
            body += chunk
        if len(body) > self.max_bytes:
            return True
        environ["wsgi.input"] = io.BytesIO(bytes(body))
        environ["CONTENT_LENGTH"] = str(len(body))
        return False
