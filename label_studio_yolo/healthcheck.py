"""The Docker health check: exit 0 if the backend answers ``GET /health`` with 200, else 1 with the reason.

It sends BASIC_AUTH_USER / BASIC_AUTH_PASS when they are set (every route asks for them then, ``/health`` too).
The URL defaults to ``http://127.0.0.1:$PORT/health``; a path or a whole URL may be given instead.

Example:
    $ python -m label_studio_yolo.healthcheck /health
"""

from __future__ import annotations

import base64
import os
import sys
import urllib.error
import urllib.request

from label_studio_yolo.settings import BackendSettings


def health_url(target: str) -> str:
    """``target`` if it is a URL, else that path on this machine's ``PORT`` (9090)."""
    if target.startswith(("http://", "https://")):
        return target
    return f"http://127.0.0.1:{os.environ.get('PORT', '9090')}{target}"


def auth_headers(settings: BackendSettings) -> dict[str, str]:
    """The ``Authorization`` header for the configured credentials; none when auth is off."""
    if settings.basic_auth is None:
        return {}
    token = base64.b64encode(":".join(settings.basic_auth).encode()).decode()
    return {"Authorization": f"Basic {token}"}


def main(argv: list[str] | None = None) -> int:
    """Probe the backend once; the exit status is what Docker reads."""
    args = sys.argv[1:] if argv is None else argv
    url = health_url(args[0] if args else "/health")
    request = urllib.request.Request(url, headers=auth_headers(BackendSettings()))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:  # HTTPError (a 401) is a URLError
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
