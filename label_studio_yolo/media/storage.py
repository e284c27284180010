"""Files in a cloud storage that Label Studio connects (S3, GCS, Azure): which task values name one, and the Label
Studio URL that serves it.

Label Studio writes a storage object into a task as its URI (``s3://bucket/key``), or lists it in the resolve form
(``<host>/tasks/<id>/resolve/?fileuri=<base64 of the URI>``). Either way the file is read through Label Studio's
resolve endpoint for the task, with Label Studio's key: Label Studio checks that the URI is in a storage of the task's
project, then answers with the bytes (presign off) or a redirect to a presigned URL on the storage (presign on).

Example:
    >>> locate("s3://imgs/photos/bus.jpg", 7).resolve_path
    '/tasks/7/resolve/?fileuri=czM6Ly9pbWdzL3Bob3Rvcy9idXMuanBn'
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

STORAGE_SCHEMES = ("s3", "gs", "azure-blob", "azure-spi")
"""URI schemes of Label Studio's cloud storages: ``url_scheme`` of its S3, GCS and Azure Blob storages (1.23,
``io_storages/*/models.py``) and of the Enterprise edition's Azure service-principal storage. label-studio-sdk's
``is_cloud_storage_uri`` knows the first three only, in a private module."""

RESOLVE_PATH = re.compile(r"/(tasks|projects)/(\d{1,18})/(resolve|presign)/?$")
"""The path of Label Studio's resolve endpoint (``presign`` is its older name), after any base path."""


@dataclass(frozen=True)
class StorageFile:
    """A cloud-storage object, read through Label Studio for a task (or, when the task is unknown, a project)."""

    uri: str
    task_id: int | None = None
    project_id: int | None = None

    @property
    def resolve_path(self) -> str | None:
        """Label Studio's path that serves the object (relative to its base URL); None without a task or project."""
        fileuri = base64.urlsafe_b64encode(self.uri.encode()).decode()
        if self.task_id is not None:
            return f"/tasks/{self.task_id}/resolve/?fileuri={fileuri}"
        if self.project_id is not None:
            return f"/projects/{self.project_id}/resolve/?fileuri={fileuri}"
        return None

    def __str__(self) -> str:
        return self.uri


def locate(value: object, task_id: object = None) -> object:
    """Where a task's media value is read from: a :class:`StorageFile` for a storage URI or a resolve URL (read for
    ``task_id`` when it is known), else ``value`` unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    own_task = _task_number(task_id)
    if text.startswith(tuple(f"{scheme}://" for scheme in STORAGE_SCHEMES)):
        return StorageFile(text, own_task)
    parts = urlsplit(text)
    match = RESOLVE_PATH.search(parts.path)
    fileuri = parse_qs(parts.query).get("fileuri", [""])[0] if match else ""
    if not match or not fileuri or parts.scheme not in ("", "http", "https"):
        return value
    uri, kind, number = _decoded(fileuri), match.group(1), int(match.group(2))
    if own_task is not None:  # Label Studio then checks the URI against this task's project's storages
        return StorageFile(uri, task_id=own_task)
    return StorageFile(uri, task_id=number) if kind == "tasks" else StorageFile(uri, project_id=number)


def _decoded(fileuri: str) -> str:
    """The URI in a ``fileuri`` parameter: base64 (URL-safe), or percent-encoded as older Label Studios wrote it."""
    try:
        decoded = base64.urlsafe_b64decode(fileuri + "=" * (-len(fileuri) % 4)).decode()
    except (binascii.Error, ValueError):  # not base64, or not UTF-8 text
        return unquote(fileuri)
    return decoded if decoded.startswith(tuple(f"{s}:" for s in STORAGE_SCHEMES)) else unquote(fileuri)


def _task_number(task_id: object) -> int | None:
    """A task id as Label Studio sends it (a positive integer, or its decimal string), else None."""
    if isinstance(task_id, bool):
        return None
    if isinstance(task_id, int):
        return task_id if task_id > 0 else None
    if isinstance(task_id, str) and task_id.isascii() and task_id.isdigit() and len(task_id) <= 18:
        return int(task_id) or None
    return None
