"""Find, load, cache and version YOLO weight files.

Weights are named relative to ``MODEL_ROOT`` and never outside it. Only ``MODEL_PATH`` (an operator's setting) may
download an official release, and not with ``YOLO_OFFLINE=1``; a tag's ``model_path`` (written by whoever edits a
labelling config) names a file that is there or nothing. Each file is read once per process: the cache is keyed by
the resolved path and the file's size and modification time, so a second ``setup()`` or a second project reuses the
loaded model, while a replaced file is loaded again. It holds a model while anything uses it, and the
:data:`MAX_CACHED_WEIGHTS` loaded last: a version that a newer one replaced goes once no project serves it.

Example:
    >>> loaded = load_weights(Path("models"), "yolo11n.pt", Runtime("openvino", threads=2))   # doctest: +SKIP
    >>> loaded.version
    'yolo11n-3f2a9c1d'
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from label_studio_yolo.errors import WeightsError
from label_studio_yolo.inference.runtimes import (
    Runtime,
    load_openvino,
    openvino_export_exists,
    openvino_folder,
    openvino_lane_models,
    openvino_metadata,
)
from label_studio_yolo.inference.threads import on_torch_thread
from label_studio_yolo.inference.ultralytics_process import load_yolo
from label_studio_yolo.logsafe import printable
from label_studio_yolo.settings import OPENVINO, PYTORCH

if TYPE_CHECKING:
    from ultralytics import YOLO

logger = logging.getLogger(__name__)

VERSION_HASH_LENGTH = 8
"""Hex digits of the weights' SHA-256 in a model version (``<stem>-<hash>``)."""

EXPORT_WAIT = 80.0
"""Seconds a prediction waits for the OpenVINO export of a weight file's first start (Label Studio waits 100 s for
an answer); a task that waits longer fails with a reason and is asked for again later."""

MAX_CACHED_WEIGHTS = 1
"""Loaded weight files the cache keeps beyond those in use (the least recently used go first): the one loaded last,
so that a server's preloaded ``MODEL_PATH`` waits for its first project. Each costs 200-350 MB with a YOLOv8s; eight
held superseded versions for good before."""


@dataclass
class LoadedWeights:
    """A YOLO model loaded from one file, with the lock that serialises its (not thread-safe) predictor.

    Attributes:
        path: the weight file (``.pt``).
        version: the model version reported to Label Studio.
        model: what inference runs: the PyTorch model, or its OpenVINO export; ``None`` while a server makes the
            export on the first start of a weight file (use :meth:`ready_model`).
        runtime: ``pytorch`` or ``openvino``.
        imgsz: the image size the weights were trained at (inference uses it unless MODEL_IMGSZ is set).
        keypoints: keypoints per object of a pose model, else 0.
        task: the YOLO task: ``detect``, ``segment``, ``classify``, ``pose`` or ``obb``.
        class_names: model class id to class name.
        requested: the runtime asked for (lane copies are made for the same).
        content_version: the file's own version, which names its OpenVINO export.
    """

    path: Path
    version: str
    model: YOLO | None
    runtime: str = PYTORCH
    imgsz: int | None = None
    keypoints: int = 0
    task: str = "detect"
    class_names: dict[int, str] = field(default_factory=dict)
    requested: Runtime = field(default_factory=Runtime)
    content_version: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ready: threading.Event = field(default_factory=threading.Event, repr=False)
    _failure: str | None = field(default=None, repr=False)
    _lanes: dict[tuple[int, int | None], list[LoadedWeights]] = field(default_factory=dict, repr=False)
    _lanes_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.model is not None:
            self._ready.set()

    def ready_model(self) -> YOLO:
        """The model to predict with; on the first start of a weight file, after its export is made.

        Raises:
            WeightsError: the export is still not ready after :data:`EXPORT_WAIT` seconds.
        """
        if not self._ready.wait(EXPORT_WAIT):
            raise WeightsError(
                f"Weights {self.path.name} are still being prepared for OpenVINO (the first start of a weight file "
                f"takes a while); ask again in a minute."
            )
        if self.model is None:
            raise WeightsError(f"Weights {self.path.name} could not be loaded: {self._failure}")
        return self.model

    def serve(self, model: YOLO | None, runtime: str, failure: str | None = None) -> None:
        """Predict with ``model`` on ``runtime`` from now on (the end of a first start's export); ``None`` with the
        ``failure`` that left no model to predict with."""
        with self.lock:
            self.model, self.runtime, self._failure = model, runtime, failure
        self._ready.set()

    def lane_copies(self, lanes: int, threads: int | None) -> list[LoadedWeights]:
        """This model once per lane, for ``threads`` threads each: every copy has its own predictor and lock
        (ultralytics' predictor is not thread-safe). OpenVINO copies share one family of networks compiled with a
        stream per lane; PyTorch copies each load the file. Made on first use, then kept.
        """
        self.ready_model()  # a first start's export is made
        with self._lanes_lock:
            key = (lanes, threads)
            if key not in self._lanes:
                self._lanes[key] = _lane_copies(self, lanes, threads)
                logger.info("Weights %s: %d lane copies loaded", self.path, lanes)
            return self._lanes[key]


_CacheKey = tuple[Path, int, int, str]
"""A weight file (path, size, mtime) and runtime (``pytorch``, or the OpenVINO precision)."""

_in_use: weakref.WeakValueDictionary[_CacheKey, LoadedWeights] = weakref.WeakValueDictionary()
"""Every loaded weight file something still holds (a project model, a job, a lane)."""
_recent: OrderedDict[_CacheKey, LoadedWeights] = OrderedDict()
"""The :data:`MAX_CACHED_WEIGHTS` loaded or asked for last, held even when unused."""
_cache_lock = threading.Lock()


def resolve_weights_path(model_root: Path, name: str) -> Path:
    """Return ``name`` resolved inside ``model_root``; absolute paths and ``..`` escapes are refused."""
    if not name or PurePosixPath(name).is_absolute() or Path(name).is_absolute():
        raise WeightsError(f"Weights must be named relative to MODEL_ROOT ({model_root}), got {name!r}.")
    root = model_root.expanduser().resolve()
    candidate = (root / name).resolve()
    if not candidate.is_relative_to(root):
        raise WeightsError(f"Weights {name!r} resolve outside MODEL_ROOT ({root}); name a file inside it.")
    return candidate


def file_version(path: Path) -> str:
    """Model version for a weight file: its stem and a short SHA-256 of its content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"{path.stem}-{digest.hexdigest()[:VERSION_HASH_LENGTH]}"


def _download_official(path: Path) -> None:
    """Fetch an official Ultralytics release asset (``yolo11n.pt`` ...) into ``path``, or raise WeightsError."""
    from ultralytics.utils import env_bool
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

    how_to = f"Put the file at {path} (MODEL_ROOT={path.parent}), or set MODEL_PATH to a weight file inside MODEL_ROOT."
    if path.name not in GITHUB_ASSETS_NAMES:
        raise WeightsError(f"Weights {path.name!r} not found at {path}. {how_to}")
    if env_bool("YOLO_OFFLINE"):  # ultralytics' own switch, read as it reads it
        raise WeightsError(f"Weights {path.name!r} not found at {path}, and YOLO_OFFLINE=1 forbids downloads. {how_to}")
    logger.info("Weights %s not found locally; downloading the official Ultralytics release", path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        attempt_download_asset(path)
    except Exception as error:  # ultralytics raises several kinds for offline machines and bad answers
        raise WeightsError(
            f"Weights {path.name!r} not found at {path} and download failed ({error}). {how_to}"
        ) from error
    if not path.is_file():
        raise WeightsError(f"Weights {path.name!r} not found at {path} and could not be downloaded. {how_to}")


def load_weights(
    model_root: Path, name: str, runtime: Runtime | None = None, *, download: bool = False
) -> LoadedWeights:
    """Load the weights named ``name`` in ``model_root``; cached per file. A missing official release is downloaded
    only with ``download`` (``MODEL_PATH``, never a tag's ``model_path``) and without ``YOLO_OFFLINE``."""
    try:
        path = resolve_weights_path(model_root, name)
        if not path.is_file():
            if not download:
                raise WeightsError(f"Weights {printable(name)} are not in MODEL_ROOT ({model_root}).")
            _download_official(path)
        return load_weights_file(path, runtime)
    except OSError as error:  # a name too long for the file system, no permission, an I/O error
        raise WeightsError(f"Weights {printable(name)} in MODEL_ROOT ({model_root}) cannot be read: {error}") from error


def load_weights_file(path: Path, runtime: Runtime | None = None, version: str | None = None) -> LoadedWeights:
    """Load an existing weight file (a trained version), cached per file and runtime; ``version`` overrides the file's.

    ``runtime`` defaults to PyTorch on the CPU.
    """
    runtime = runtime or Runtime()
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns, runtime.precision if runtime.wants_openvino else PYTORCH)
    with _cache_lock:
        cached = _in_use.get(key)
        if cached is None:
            cached = _in_use[key] = _load(path, runtime, version)
        _recent[key] = cached
        _recent.move_to_end(key)
        while len(_recent) > MAX_CACHED_WEIGHTS:
            _recent.popitem(last=False)
    return cached


def _load(path: Path, runtime: Runtime, version: str | None = None) -> LoadedWeights:
    """Read one weight file for the runtime: its OpenVINO export alone when it is made (no PyTorch model is held
    beside it), else the PyTorch model, or (a server's first start) nothing until the export made in a child process
    is ready."""
    content_version = file_version(path)  # names the OpenVINO export; hashed once per load
    version = version or content_version
    if runtime.wants_openvino and openvino_export_exists(path, content_version):
        loaded = _openvino_weights(path, version, content_version, runtime)
    elif runtime.wants_openvino and runtime.background_export:
        loaded = _described(path, version, content_version, runtime)
        # Not a daemon: a process that exits while OpenVINO works in this thread would abort ("terminate called").
        threading.Thread(target=_serve_when_exported, args=(loaded,), name="openvino-export").start()
        return loaded
    else:
        loaded = _pytorch_weights(path, version, content_version, runtime)
        if runtime.wants_openvino:
            loaded = _openvino_weights(path, version, content_version, runtime, fallback=loaded)
    _log_loaded(loaded)
    return loaded


def _log_loaded(loaded: LoadedWeights) -> None:
    runtime = "OpenVINO" if loaded.runtime == OPENVINO else "PyTorch"
    count = len(loaded.class_names)
    logger.info("Weights %s run on %s as model version %s (%d classes)", loaded.path, runtime, loaded.version, count)


def _pytorch_weights(path: Path, version: str, content_version: str, runtime: Runtime) -> LoadedWeights:
    """The weight file as a warmed-up PyTorch model."""
    model = _read_checkpoint(path, lambda: _pytorch_model(path, runtime.device))
    described = _described_by(model)
    return LoadedWeights(path, version, model, **described, requested=runtime, content_version=content_version)


def _described(path: Path, version: str, content_version: str, runtime: Runtime) -> LoadedWeights:
    """The weight file's classes, task and size, with no model to predict with yet (the checkpoint is read and
    dropped: no predictor, no warm-up)."""
    model = _read_checkpoint(path, lambda: load_yolo(path))
    described = _described_by(model)
    return LoadedWeights(path, version, None, **described, requested=runtime, content_version=content_version)


def _read_checkpoint(path: Path, read: Callable[[], YOLO]) -> YOLO:
    try:
        return read()
    except Exception as error:  # a corrupt or foreign file raises anything from pickle to KeyError
        raise WeightsError(f"Weights at {path} could not be loaded as a YOLO model: {error}") from error


def _described_by(model: YOLO) -> dict[str, Any]:
    """What a PyTorch model says about itself that serving needs: task, classes, trained image size, keypoints."""
    return {
        "task": str(model.task),
        "class_names": dict(model.names),
        "imgsz": _trained_imgsz(model),
        "keypoints": _keypoint_count(model),
    }


def _openvino_weights(
    path: Path, version: str, content_version: str, runtime: Runtime, fallback: LoadedWeights | None = None
) -> LoadedWeights:
    """The weight file's OpenVINO export alone, described by its metadata; with ``fallback`` (the PyTorch model,
    which describes it) the export is made now if missing, and ``fallback`` is returned if that fails.

    Raises:
        WeightsError: the export cannot be read and there is no fallback.
    """
    try:
        described = _described_by_export(path, content_version) if fallback is None else _described_by_weights(fallback)
        model = load_openvino(path, content_version, described["task"], described["imgsz"] or 640, runtime)
    except Exception as error:  # OpenVINO missing, a read-only folder, an export that fails: PyTorch serves
        if fallback is None:
            raise WeightsError(f"The OpenVINO export of {path} could not be loaded: {error}") from error
        logger.warning("Weights %s run on PyTorch: no OpenVINO export (%s)", path, error)
        return fallback
    return LoadedWeights(
        path, version, model, OPENVINO, **described, requested=runtime, content_version=content_version
    )


def _described_by_export(path: Path, content_version: str) -> dict[str, Any]:
    """What ultralytics wrote about the export (:func:`_described_by`'s keys)."""
    metadata = openvino_metadata(path, content_version)
    shape = metadata.get("kpt_shape")
    return {
        "task": str(metadata["task"]),
        "class_names": {int(number): str(name) for number, name in metadata["names"].items()},
        "imgsz": _metadata_imgsz(metadata),
        "keypoints": int(shape[0]) if shape else 0,
    }


def _described_by_weights(loaded: LoadedWeights) -> dict[str, Any]:
    return {
        "task": loaded.task,
        "class_names": loaded.class_names,
        "imgsz": loaded.imgsz,
        "keypoints": loaded.keypoints,
    }


def _serve_when_exported(loaded: LoadedWeights) -> None:
    """Make the export in a child process and serve it; on failure serve PyTorch, with the reason logged."""
    try:
        model = load_openvino(loaded.path, loaded.content_version, loaded.task, loaded.imgsz or 640, loaded.requested)
        loaded.serve(model, OPENVINO)
        _log_loaded(loaded)
    except Exception as error:  # OpenVINO missing, a read-only folder, an export that fails: PyTorch serves
        logger.warning("Weights %s run on PyTorch: no OpenVINO export (%s)", loaded.path, error)
        try:
            loaded.serve(_pytorch_model(loaded.path, loaded.requested.device), PYTORCH)
        except Exception as pytorch_error:  # predictions fail at once with the reason instead of waiting
            logger.exception("Weights %s could not be loaded on PyTorch either", loaded.path)
            loaded.serve(None, PYTORCH, f"no OpenVINO export ({error}) and no PyTorch model ({pytorch_error})")


def _lane_copies(loaded: LoadedWeights, lanes: int, threads: int | None) -> list[LoadedWeights]:
    """``lanes`` copies of ``loaded``: the same file on the same runtime, each with ``threads`` threads."""
    runtime = replace(loaded.requested, threads=threads, lanes=1)
    if loaded.runtime == OPENVINO:
        folder = openvino_folder(loaded.path, loaded.content_version)
        models = openvino_lane_models(loaded.ready_model(), folder, runtime, lanes)
    else:
        models = [_pytorch_model(loaded.path, runtime.device) for _ in range(lanes)]
    return [
        replace(
            loaded,
            model=copy,
            requested=runtime,
            lock=threading.Lock(),
            _ready=_set_event(),
            _lanes={},
            _lanes_lock=threading.Lock(),
        )
        for copy in models
    ]


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _pytorch_model(path: Path, device: str) -> YOLO:
    """The weights as a PyTorch YOLO model, loaded and warmed up on the torch thread (see
    :mod:`label_studio_yolo.inference.threads`: loading in another thread would leave a second OpenMP team behind)."""
    return on_torch_thread(_load_pytorch_model, path, device)


def _load_pytorch_model(path: Path, device: str) -> YOLO:
    model = load_yolo(path)
    if device != "cpu":
        model.to(device)
    _warm_up(model, device)
    return model


def _keypoint_count(model: YOLO) -> int:
    """How many keypoints a pose model gives per object (0 when it is not a pose model)."""
    network = getattr(model, "model", None)
    shape = getattr(network, "kpt_shape", None) or (getattr(network, "yaml", None) or {}).get("kpt_shape")
    return int(shape[0]) if shape else 0


def _trained_imgsz(model: YOLO) -> int | None:
    """The image size the weights were trained at, as ultralytics keeps it in the checkpoint's arguments."""
    imgsz = model.overrides.get("imgsz")
    if isinstance(imgsz, (list, tuple)):
        return int(max(imgsz))
    return int(imgsz) if imgsz else None


def _metadata_imgsz(metadata: dict[str, Any]) -> int | None:
    """The image size an export was made at (the trained size: exports are made at it)."""
    imgsz = metadata.get("imgsz")
    if isinstance(imgsz, (list, tuple)):
        return int(max(imgsz))
    return int(imgsz) if imgsz else None


def _warm_up(model: YOLO, device: str) -> None:
    """Run one tiny prediction so the predictor is built now, not inside the first user request.

    Building it calls ultralytics' ``select_device()``, which resets torch to ``cpu_count - 1`` threads; after the
    warm-up that happens no more, and inference sets its thread count itself.
    """
    import numpy as np

    model.predict(np.zeros((32, 32, 3), dtype=np.uint8), device=device, verbose=False)


def loaded_weight_files() -> list[Path]:
    """Weight files currently held in this process's cache (for diagnostics and tests)."""
    with _cache_lock:
        return [loaded.path for loaded in _in_use.values()]


def file_stamps(paths: Iterable[Path]) -> tuple[tuple[Path, int, int] | None, ...]:
    """Size and mtime of each file (None for a missing one), read with ``stat`` only: a cheap change detector."""
    stamps: list[tuple[Path, int, int] | None] = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((path, stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)
