"""Trained model versions on disk: ``MODEL_DIR/<project>/<version>/``, a ``current.json`` pointer and an optional
``pin.json`` per project.

A version directory is written under a temporary name and renamed into place, and ``current.json`` is replaced
with ``os.replace``: readers (every gunicorn worker, every replica on a shared volume) see either the old or the new
version, never half-written weights. Serving checks ``current.json`` cheaply (one ``stat``) on each request.

A person may pin a project to a version, or to ``"base"`` (``MODEL_PATH``, no trained version): it is served and
kept, and training's ``publish(..., unless_pinned=True)`` stores new versions without serving them until ``unpin``,
which serves the newest version training published again (``published.json`` lists them). A job publishes only over
the version it started from (``replacing=``): a version published meanwhile is never overwritten by one trained on
older data.

Example:
    >>> store = VersionStore(Path("data/model-versions"))
    >>> store.current(7)                                   # doctest: +SKIP
    VersionInfo(project=7, name='p7-20261121-220501-1a2b3c4d', weights=PosixPath('.../best.pt'), meta={...})
    >>> store.pin(7, "base"); store.current(7) is None      # doctest: +SKIP
    True
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from label_studio_yolo.logsafe import printable

WEIGHTS_FILE = "best.pt"
"""Weights of a version, inside its directory."""

META_FILE = "meta.json"
"""Metadata of a version: metrics, annotation count, parent, settings, timings."""

CURRENT_FILE = "current.json"
"""Per-project pointer to the published version (``{"version": null}`` serves the base weights)."""

PIN_FILE = "pin.json"
"""Per-project pin: ``{"version": name or "base", "pinned_at": epoch}``; absent when the project is not pinned."""

PUBLISHED_FILE = "published.json"
"""Per-project list of the versions training published, oldest first: ``{"versions": [name, ...]}``."""

TRAINING_LOCK_FILE = ".training.lock"
"""Per-project lock file a training job without Redis holds while it runs (:meth:`VersionStore.training`)."""

LOCK_FILE = ".versions.lock"
"""Per-project lock file of :meth:`VersionStore.pin`, :meth:`~VersionStore.unpin` and :meth:`~VersionStore.publish`."""

BASE = "base"
"""The pin that serves ``MODEL_PATH``, the weights the backend starts from, instead of a trained version."""

KEEP_SERVED: Any = object()
"""``publish(replacing=KEEP_SERVED)``'s default: publish whatever is served now."""


class Published(StrEnum):
    """What :meth:`VersionStore.publish` did."""

    PUBLISHED = "published"
    PINNED = "pinned"
    """Not published: the project is pinned."""
    SUPERSEDED = "superseded"
    """Not published: another version was published after the one it was to replace."""


VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", re.ASCII)
"""What a version folder may be called: one path segment, no ``..``, ``/`` or leading dot (staging folders)."""


class VersionNotFound(LookupError):
    """A version name that is not a stored version of the project; the message lists the stored ones."""

    def __init__(self, project: int, name: object, stored: list[str]) -> None:
        self.project, self.name, self.stored = project, name, stored
        listed = ", ".join(stored) if stored else "none"
        if name == BASE and not stored:
            message = f"Project {project} has no trained versions: it serves the base weights, and has nothing to pin"
        else:
            message = (
                f"Project {project} has no version '{printable(name)}'. Stored versions: {listed}; "
                f"'{BASE}' serves the base weights (MODEL_PATH)"
            )
        super().__init__(message)


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
        name = self._read_current(project)
        return self._read(project, name) if name is not None else None

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
        names = sorted(p.name for p in folder.iterdir() if _is_name(p.name)) if folder.is_dir() else []
        return [info for name in names if (info := self._read(project, name)) is not None]

    def projects(self) -> list[int]:
        """Projects that have a folder in the store."""
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit()) if self.root.is_dir() else []

    def pinned(self, project: int) -> str | None:
        """The version ``project`` is pinned to (a name or :data:`BASE`), or None when training may publish."""
        name = _read_json(self.project_dir(project) / PIN_FILE).get("version")
        return name if isinstance(name, str) else None

    def pin(self, project: int, name: str) -> None:
        """Serve ``name`` (or :data:`BASE`) for ``project`` now and keep it: training stops publishing until unpin.

        Raises:
            VersionNotFound: ``name`` is neither ``"base"`` nor a stored version of ``project``.
        """
        if not self.project_dir(project).is_dir():  # nothing trained: no folder is made for any id a request names
            raise VersionNotFound(project, name, [])
        with self._locked(project):
            served = None if name == BASE else self._existing(project, name).name
            folder = self.project_dir(project)
            _write_json(folder / PIN_FILE, {"version": name, "pinned_at": time.time()})
            _write_json(folder / CURRENT_FILE, {"version": served})

    def unpin(self, project: int) -> str | None:
        """Let training publish again and serve the newest version it published (the base weights if none is left).

        Returns the pin removed, if there was one.
        """
        if not self.project_dir(project).is_dir():  # never trained, never pinned
            return None
        with self._locked(project):
            pinned = self.pinned(project)
            folder = self.project_dir(project)
            published = [name for name in self.published(project) if (folder / name).is_dir()]
            if pinned is not None and (published or (folder / PUBLISHED_FILE).exists()):
                _write_json(folder / CURRENT_FILE, {"version": published[-1] if published else None})
            (folder / PIN_FILE).unlink(missing_ok=True)
        return pinned

    def published(self, project: int) -> list[str]:
        """The versions training published for ``project``, oldest first."""
        names = _read_json(self.project_dir(project) / PUBLISHED_FILE).get("versions")
        return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []

    @contextmanager
    def new_version(self, project: int, name: str) -> Iterator[Path]:
        """A temporary folder to fill; renamed to ``<project>/<name>`` when the block ends without error."""
        if not _is_name(name):
            raise ValueError(f"{printable(name)} cannot name a version: use letters, digits, '.', '_' and '-'")
        folder = self.project_dir(project)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
        try:
            yield staging
            os.rename(staging, folder / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def publish(
        self, project: int, name: str, *, unless_pinned: bool = False, replacing: str | None = KEEP_SERVED
    ) -> Published:
        """Make ``name`` the version served for ``project`` (atomic) and record it as published.

        With ``unless_pinned``, only when the project is not pinned; with ``replacing`` (a version name, or None for
        the base weights), only while that is what is served.

        Raises:
            VersionNotFound: ``name`` is not a stored version of ``project``.
        """
        with self._locked(project):
            self._existing(project, name)
            if unless_pinned and self.pinned(project) is not None:
                return Published.PINNED
            served = self._read_current(project)
            if replacing is not KEEP_SERVED and served != replacing:
                return Published.SUPERSEDED
            folder = self.project_dir(project)
            _write_json(folder / PUBLISHED_FILE, {"versions": [*self.published(project), name]})
            _write_json(folder / CURRENT_FILE, {"version": name})
        return Published.PUBLISHED

    def _read_current(self, project: int) -> str | None:
        name = _read_json(self.project_dir(project) / CURRENT_FILE).get("version")
        return name if isinstance(name, str) else None

    @contextmanager
    def training(self, project: int) -> Iterator[None]:
        """Hold ``project``'s training lock file, waiting while another process's job holds it: backend processes
        without Redis each run their own jobs, and two of one project must not train at once."""
        folder = self.project_dir(project)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / TRAINING_LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _locked(self, project: int) -> Iterator[None]:
        """Hold the project's lock file for the block (every process on this machine or on the shared volume)."""
        folder = self.project_dir(project)
        folder.mkdir(parents=True, exist_ok=True)
        # A publish must not read "not pinned", then replace current.json after another process's pin() wrote it.
        handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing releases the lock

    def _existing(self, project: int, name: str) -> VersionInfo:
        """The stored version ``name`` of ``project``; :class:`VersionNotFound` otherwise."""
        info = self._read(project, name)
        if info is None:
            raise VersionNotFound(project, name, [version.name for version in self.versions(project)])
        return info

    def _read(self, project: int, name: str) -> VersionInfo | None:
        if not _is_name(name):  # a name from a request or a pointer never leaves the project's folder
            return None
        path = self.project_dir(project) / name
        try:
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, ValueError):
            return None
        return VersionInfo(project=project, name=name, path=path, meta=meta)


def _is_name(name: object) -> bool:
    return isinstance(name, str) and VERSION_NAME.fullmatch(name) is not None


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; empty when the file is missing or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: readers see the old or the new file, never a half-written one."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as output:
            output.write(json.dumps(data))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
