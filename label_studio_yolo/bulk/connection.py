"""Connect to Label Studio with label-studio-sdk, failing fast with a message that says what to fix.

Three checks run before any model is loaded, each a single request: the URL answers as Label Studio
(``/api/version``), the API key is accepted (``/api/current-user/whoami``), and the project exists and is visible to
that key's user.

Example:
    >>> client = connect("http://localhost:8080", "d6f8a2622d39e9d89ff0dfef1a80ad877f4ee9e3")   # doctest: +SKIP
    >>> open_project(client, 3).title
    'Street photos'
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError

CHECK_TIMEOUT_S = 15
"""Seconds each start-up check may take: a wrong address should fail in seconds, not minutes."""

PROJECTS_LISTED = 10
"""How many visible projects an "unknown project" error lists."""

PERSONAL_ACCESS_TOKEN = "personal access token"  # noqa: S105 - a name for messages, not a secret
LEGACY_TOKEN = "legacy token"  # noqa: S105


class ConnectionProblem(Exception):
    """Label Studio cannot be used with the given URL, key or project; the message says why and what to do."""


def token_kind(api_key: str) -> str:
    """How label-studio-sdk sends ``api_key``: a JWT is a personal access token, anything else a legacy token.

    The SDK makes the same distinction (it decodes the key as a JWT); it does not expose it, so it is repeated here
    for the error messages.
    """
    try:
        jwt.decode(api_key, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return LEGACY_TOKEN
    return PERSONAL_ACCESS_TOKEN


def connect(url: str, api_key: str) -> LabelStudio:
    """An SDK client for ``url``, checked: the server is Label Studio and it accepts ``api_key``.

    Raises:
        ConnectionProblem: the URL does not answer as Label Studio, or the key is refused.
    """
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConnectionProblem(f"Label Studio URL {url!r} must start with http:// or https://")
    if not api_key:
        raise ConnectionProblem("No API key: pass --api-key or set LABEL_STUDIO_API_KEY")
    kind = token_kind(api_key)
    try:
        client = LabelStudio(base_url=url, api_key=api_key)  # type: ignore[no-untyped-call]
    except ApiError as error:  # the SDK checks a personal access token's expiry when it is created
        raise ConnectionProblem(_refused(url, kind, error)) from error
    _check_is_label_studio(client, url, api_key)
    try:
        client.users.whoami(request_options=_quick())
    except ApiError as error:
        if error.status_code in (401, 403):
            raise ConnectionProblem(_refused(url, kind, error)) from error
        raise ConnectionProblem(_not_label_studio(url, "/api/current-user/whoami", error)) from error
    except httpx.HTTPError as error:
        raise ConnectionProblem(f"Lost Label Studio at {url}: {error}") from error
    return client


def open_project(client: LabelStudio, project_id: int) -> Any:
    """The project, or a clear error naming the projects the key's user can see.

    Raises:
        ConnectionProblem: no such project, or the user has no access to it.
    """
    try:
        return client.projects.get(id=project_id, request_options=_quick())
    except ApiError as error:
        if error.status_code not in (403, 404):
            raise ConnectionProblem(f"Reading project {project_id} failed: HTTP {error.status_code}") from error
    projects: Iterator[Any] = iter(client.projects.list())
    visible = [f"{project.id} ({project.title!r})" for project in itertools.islice(projects, PROJECTS_LISTED)]
    listing = ", ".join(visible) if visible else "none"
    raise ConnectionProblem(
        f"Project {project_id} does not exist or this API key's user cannot see it. Projects it can see: {listing}"
    )


def _check_is_label_studio(client: LabelStudio, url: str, api_key: str) -> None:
    try:
        client.versions.get(request_options=_quick())
    except httpx.HTTPError as error:
        raise ConnectionProblem(f"Cannot reach Label Studio at {url}: {error}") from error
    except ApiError as error:
        if error.status_code in (401, 403):  # a personal access token is exchanged before the first request
            raise ConnectionProblem(_refused(url, token_kind(api_key), error)) from error
        raise ConnectionProblem(_not_label_studio(url, "/api/version", error)) from error
    except ValueError as error:  # an answer that is not JSON
        raise ConnectionProblem(f"{url} does not answer like Label Studio (/api/version is not JSON)") from error


def _not_label_studio(url: str, path: str, error: ApiError) -> str:
    return (
        f"{url} answered HTTP {error.status_code} to {path}: is this Label Studio's address (scheme, host and port, "
        "with no path)?"
    )


def _refused(url: str, kind: str, error: ApiError) -> str:
    advice = {
        LEGACY_TOKEN: "check the key under Account & Settings → Legacy Token; legacy tokens also stop working when "
        "an admin disables them (Organization → API Token Settings), then use a personal access token",
        PERSONAL_ACCESS_TOKEN: "Label Studio did not exchange it for an access token at /api/token/refresh/ (revoked, "
        "expired or from another Label Studio); create a new one under Account & Settings → Personal Access Token",
    }[kind]
    return f"Label Studio at {url} refused the API key, tried as a {kind} ({_detail(error)}). To fix: {advice}."


def _detail(error: ApiError) -> str:
    body = error.body
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    return f"HTTP {error.status_code}"


def _quick() -> Any:
    """Request options for start-up checks: a short timeout and no retries."""
    return {"timeout": CHECK_TIMEOUT_S, "max_retries": 0}
