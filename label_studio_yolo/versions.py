"""Trained model versions on disk: ``MODEL_DIR/<project>/<version>/`` and a ``current.json`` pointer per project.

A version directory is written under a temporary name and renamed into place, and ``current.json`` is replaced
with ``os.replace``: readers (every gunicorn worker, every replica on a shared volume) see either the old or the new
version, never half-written weights. Serving checks ``current.json`` cheaply (one ``stat``) on each request.

Example:
    >>> store = VersionStore(Path("data/model-versions"))
    >>> store.current(7)                                   # doctest: +SKIP
    VersionInfo(project=7, name='p7-20261121-220501-1a2b3c4d', weights=PosixPath('.../best.pt'), meta={...})
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEIGHTS_FILE = "best.pt"
"""Weights of a version, inside its directory."""

META_FILE = "meta.json"
"""Metadata of a version: metrics, annotation count, parent, settings, timings."""

CURRENT_FILE = "current.json"
"""Per-project pointer to the published version."""


@dataclass(frozen=True)
class VersionInfo:
    """One stored version of a project's model."""

    project: int
    name: str
    path: Path
    meta: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE


class VersionStore:
    """Reads and writes the versions of every project under one ``MODEL_DIR``."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def project_dir(self, project: int) -> Path:
        return self.root / str(int(project))

    def current(self, project: int) -> VersionInfo | None:
        """The published version of ``project``, or None when it serves the base weights."""
        try:
            pointer = json.loads((self.project_dir(project) / CURRENT_FILE).read_text())
        except (OSError, ValueError):
            return None
        return self._read(project, str(pointer["version"]))

    def current_stamp(self, project: int) -> tuple[int, int] | None:
        """Cheap change detector for the published version (the pointer's inode and mtime), without reading it."""
        try:
            stat = (self.project_dir(project) / CURRENT_FILE).stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns)

    def versions(self, project: int) -> list[VersionInfo]:
        """Every complete version of ``project``, oldest first."""
        folder = self.project_dir(project)
        names = sorted(p.name for p in folder.iterdir() if (p / META_FILE).is_file()) if folder.is_dir() else []
        return [info for name in names if (info := self._read(project, name)) is not None]

    def projects(self) -> list[int]:
        """Projects that have a folder in the store."""
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit()) if self.root.is_dir() else []

    @contextmanager
    def new_version(self, project: int, name: str) -> Iterator[Path]:
        """A temporary folder to fill; renamed to ``<project>/<name>`` when the block ends without error."""
        folder = self.project_dir(project)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
        try:
            yield staging
            os.rename(staging, folder / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def publish(self, project: int, name: str) -> None:
        """Make ``name`` the version served for ``project`` (atomic)."""
        folder = self.project_dir(project)
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".current.", dir=folder)
        with os.fdopen(handle, "w") as pointer:
            pointer.write(json.dumps({"version": name}))
        os.replace(temporary, folder / CURRENT_FILE)

    def _read(self, project: int, name: str) -> VersionInfo | None:
        path = self.project_dir(project) / name
        try:
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, ValueError):
            return None
        return VersionInfo(project=project, name=name, path=path, meta=meta)
