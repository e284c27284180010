"""The backend under gunicorn with HTTP Basic auth on, and what a client sends for it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import backend_server

USER = "label-studio"
PASSWORD = "correct horse: battery staple"
"""A password with a space and a colon: Basic auth splits user and password at the first colon only."""


def basic(user: bytes | str, password: bytes | str) -> str:
    """The ``Authorization`` header value for ``user`` and ``password`` (str in UTF-8, bytes as they are)."""
    raw = b":".join(part.encode() if isinstance(part, str) else part for part in (user, password))
    return "Basic " + base64.b64encode(raw).decode()


@contextmanager
def backend_with_basic_auth(
    model_root: Path, log_dir: Path, warm_up: bool = True, **settings: str
) -> Iterator[tuple[str, Path]]:
    """gunicorn serving ``_wsgi:app`` with BASIC_AUTH_USER/PASS = USER/PASSWORD; yields its URL and log file.

    ``warm_up`` waits for the weights as ``backend_server`` does (Label Studio gives ``/setup`` 3 s).
    """
    with backend_server(model_root, log_dir, auth=(USER, PASSWORD), warm_up=warm_up, **settings) as server:
        yield server.url, server.log
