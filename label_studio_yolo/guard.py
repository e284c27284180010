"""HTTP Basic auth and a request body limit, as WSGI middleware in front of the Flask app.

Both act before Flask sees a request, on every route (unknown ones too):

- Auth comes first, so a request without the right credentials is answered 401 before its body is read.
  label-studio-ml's own ``before_request`` reads the whole body (to log it), so a Flask hook would come too late.
- Werkzeug 2.0.2 (pinned through label-studio-ml's Flask 1.1.2) checks ``MAX_CONTENT_LENGTH`` only while parsing
  form data, never for the JSON this API takes, and gunicorn marks its input stream as terminated, so Werkzeug
  reads a chunked body to its end whatever its size. The guard therefore refuses a declared ``Content-Length``
  over the limit unread, and reads a body without one itself, stopping one byte past the limit.

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
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

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


class RequestGuard:
    """WSGI middleware: HTTP Basic auth (when ``credentials`` is set), then a limit on the body size."""

    def __init__(self, app: WSGIApplication, credentials: tuple[str, str] | None, max_bytes: int) -> None:
        self.app = app
        self.credentials = credentials
        self.max_bytes = max_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.credentials is not None:
            problem = credentials_problem(environ.get("HTTP_AUTHORIZATION"), self.credentials)
            if problem is not None:
                _log_refusal(environ, 401, problem)
                challenge = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
                return error_response(401, UNAUTHORIZED, challenge)(environ, start_response)
        if self._body_too_large(environ):
            _log_refusal(environ, 413, f"body over MAX_REQUEST_BYTES ({self.max_bytes} bytes)")
            return error_response(413, too_large_message(self.max_bytes))(environ, start_response)
        return self.app(environ, start_response)

    def _body_too_large(self, environ: WSGIEnvironment) -> bool:
        """Whether the body is over the limit; a body without a length is read here and handed on in memory."""
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            return declared.strip().isdigit() and int(declared) > self.max_bytes
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


def _log_refusal(environ: WSGIEnvironment, status: int, reason: str) -> None:
    """One WARNING line per refused request (a newline in the path is escaped): never a header's value."""
    method, path = (environ.get(key, "?").encode("unicode_escape").decode() for key in ("REQUEST_METHOD", "PATH_INFO"))
    logger.warning("Refused %s %s from %s with %d: %s", method, path, environ.get("REMOTE_ADDR", "?"), status, reason)
