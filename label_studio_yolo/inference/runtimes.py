"""Inference runtimes: PyTorch, or OpenVINO through ultralytics' own export, cached beside the weights.

OpenVINO is the default on the CPU: in float32 it gives PyTorch's boxes, faster. ``OPENVINO_PRECISION=bf16`` is
faster still but moves boxes slightly. The export is made once per weight content, with dynamic input shapes so
images keep their aspect ratio, and lives beside the weights as ``<stem>-<sha256[:8]>_openvino_model/``; it is
renamed into place under a lock file, so concurrent processes export once and never read half an export. Any
failure (OpenVINO missing, a read-only folder, an export error) leaves PyTorch in use, with the reason logged.

Example:
    >>> folder = ensure_openvino_export(Path("models/yolo11n.pt"), imgsz=640)   # doctest: +SKIP
    >>> folder.name
    'yolo11n-5b3a2f0c_openvino_model'
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from label_studio_yolo.inference.openvino_shapes import ShapeNetworks, ShapeRequests
from label_studio_yolo.inference.ultralytics_process import load_yolo
from label_studio_yolo.settings import DEFAULT_STATIC_SHAPES, OPENVINO, PYTORCH, BackendSettings

if TYPE_CHECKING:
    from ultralytics import YOLO

logger = logging.getLogger(__name__)

OPENVINO_FOLDER_SUFFIX = "_openvino_model"
"""ultralytics recognises an OpenVINO export by this ending of its folder name."""

EXPORT_PROCESS_TIMEOUT = 900
"""Seconds a background export's child process may run before it is killed (PyTorch then serves)."""

WARM_UP_IMGSZ = 32
"""Input size of the prediction that builds an exported model's predictor (the smallest a stride allows)."""


@dataclass(frozen=True)
class Runtime:
    """How weights are run: the runtime asked for, the torch device, the CPU threads per process, the precision
    OpenVINO computes in, and the lanes (tasks of one batch predicted at once, each with its own predictor)."""

    name: str = PYTORCH
    device: str = "cpu"
    threads: int | None = None
    precision: str = "f32"
    lanes: int = 1
    static_shapes: int = DEFAULT_STATIC_SHAPES
    """Input shapes OpenVINO compiles a fixed-shape network for, per network family (0: dynamic only)."""
    background_export: bool = False
    """Make a missing OpenVINO export in a child process while loading returns at once, and let predictions wait
    for it (a server's /setup must answer within Label Studio's timeout, which an export would exceed)."""

    @property
    def wants_openvino(self) -> bool:
        """OpenVINO is asked for and can serve the device (it runs on the CPU)."""
        return self.name == OPENVINO and self.device == "cpu"


def runtime_for(settings: BackendSettings) -> Runtime:
    """How the settings say inference runs: runtime, device, threads, precision and lanes."""
    lanes = settings.inference_lanes or default_lanes(settings.device, settings.torch_threads)
    return Runtime(
        settings.inference_runtime,
        settings.device,
        settings.torch_threads,
        settings.openvino_precision,
        lanes,
        static_shapes=settings.openvino_static_shapes,
    )


def default_lanes(device: str, threads: int) -> int:
    """Lanes when ``INFERENCE_LANES`` is unset: 2 on a CPU with 2 or more threads, else 1.

    One thread per lane wastes no time synchronising, and one lane's decoding overlaps the other's inference.
    """
    return 2 if device == "cpu" and threads >= 2 else 1


def openvino_folder(weights: Path, version: str) -> Path:
    """Where the OpenVINO export of ``weights`` (whose content version is ``version``) lives."""
    return weights.parent / f"{version}{OPENVINO_FOLDER_SUFFIX}"


def openvino_export_exists(weights: Path, version: str) -> bool:
    """Whether the OpenVINO export of ``weights`` (content version ``version``) is already made."""
    return _is_complete(openvino_folder(weights, version))


def ensure_openvino_export(weights: Path, version: str, imgsz: int, in_child: bool = False) -> Path:
    """The OpenVINO export of ``weights``, made if no process has made it yet; ``in_child`` makes it in a child
    process (see :func:`_export_in_child`).

    Raises:
        Exception: whatever the export raised (the caller falls back to PyTorch).
    """
    target = openvino_folder(weights, version)
    if _is_complete(target):
        return target
    with _exclusive(target.with_name(f".{target.name}.lock")):
        if _is_complete(target):  # another process exported it while this one waited
            return target
        _export_into(weights, target, imgsz, in_child)
    return target


def load_openvino(weights: Path, version: str, task: str, imgsz: int, runtime: Runtime) -> YOLO:
    """The OpenVINO export of ``weights`` as a YOLO model, compiled for the runtime's threads and precision and for
    the input shapes it meets (see :mod:`label_studio_yolo.inference.openvino_shapes`); made now if missing (in a
    child process with ``runtime.background_export``)."""
    folder = ensure_openvino_export(weights, version, imgsz, in_child=runtime.background_export)
    model = _openvino_model(folder, task)
    export = _backend(model).compile_model.func.__self__.read_model(str(next(folder.glob("*.xml"))))
    networks = _compile_networks(model, export, _settings(runtime), runtime.static_shapes)
    _backend(model).ov_compiled_model = ShapeRequests(networks)
    return model


def openvino_lane_models(model: YOLO, folder: Path, runtime: Runtime, count: int) -> list[YOLO]:
    """``count`` YOLO models of ``model``'s export (in ``folder``, from :func:`load_openvino`) for the lanes of
    batches, sharing one family of networks compiled with a stream per lane of ``runtime.threads`` threads.

    Each model has its own predictor and infer requests, so the lanes predict at the same time while the weights are
    held once per input shape. A family of its own: two requests on the single-task networks (all threads, one
    stream) ran batches 8% slower than two streams, and single tasks on a two-stream network at half speed. Streams
    are not pinned to cores: OpenVINO pins stream ``i`` of every network to the same core, so lanes on two
    fixed-shape networks would share one core.
    """
    lanes = [_openvino_model(folder, model.task) for _ in range(count)]
    settings = {
        **_settings(runtime),
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": count,
        "ENABLE_CPU_PINNING": False,
    }
    if runtime.threads:
        settings["INFERENCE_NUM_THREADS"] = runtime.threads * count
    export = _backend(model).ov_compiled_model.networks.model  # read once per weight file
    networks = _compile_networks(lanes[0], export, settings, runtime.static_shapes)
    for lane in lanes:
        _backend(lane).ov_compiled_model = ShapeRequests(networks)
    return lanes


def openvino_metadata(weights: Path, version: str) -> dict[str, Any]:
    """What ultralytics wrote about the export of ``weights`` (task, names, imgsz, kpt_shape, ...)."""
    from ultralytics.utils import YAML

    return dict(YAML.load(openvino_folder(weights, version) / "metadata.yaml"))


def _openvino_model(folder: Path, task: str) -> YOLO:
    """The export in ``folder`` as a YOLO model with its predictor built.

    ultralytics compiles the network when it builds the predictor, for its own settings; that network is replaced at
    once, so the warm-up runs it on a tiny input: at full size it would allocate its buffers for nothing.
    """
    model = load_yolo(folder, task=task)
    model.predict(_blank_image(), imgsz=WARM_UP_IMGSZ, verbose=False)
    return model


def _settings(runtime: Runtime) -> dict[str, object]:
    settings: dict[str, object] = {"INFERENCE_PRECISION_HINT": runtime.precision}
    if runtime.threads:
        settings["INFERENCE_NUM_THREADS"] = runtime.threads
    return settings


def _export_into(weights: Path, target: Path, imgsz: int, in_child: bool = False) -> None:
    """Export in a temporary folder beside ``target``, then rename it into place."""
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        source = work / weights.name
        shutil.copy2(weights, source)  # ultralytics writes the export beside the file it exports
        logger.info("Exporting %s to OpenVINO (once per weight file)", weights)
        exported = _export_in_child(source, imgsz) if in_child else export_openvino(source, imgsz)
        os.replace(exported, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("OpenVINO export of %s saved as %s", weights, target)


def export_openvino(weights: Path, imgsz: int) -> Path:
    """ultralytics' OpenVINO export of ``weights`` (dynamic shapes, float32, batch 1), made beside it; its folder."""
    return Path(load_yolo(weights).export(format="openvino", dynamic=True, imgsz=imgsz, batch=1))


def _export_in_child(weights: Path, imgsz: int) -> Path:
    """:func:`export_openvino` in a child Python process, for a server that keeps serving meanwhile.

    In the server's own process the export would hold the GIL for seconds (starving ``/health``), and OpenVINO's
    converter sets the root logger to ERROR while it runs, silencing every other thread's log lines.

    Raises:
        RuntimeError: the child failed; the message ends with its error output.
    """
    package_parent = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", __name__, str(weights), str(imgsz)]
    env = {**os.environ, "PYTHONPATH": python_path}
    done = subprocess.run(  # noqa: S603  # our own module, with paths we made
        command, capture_output=True, text=True, env=env, timeout=EXPORT_PROCESS_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the export process exited with {done.returncode}: {done.stderr.strip()[-800:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _is_complete(folder: Path) -> bool:
    return (folder / "metadata.yaml").is_file() and any(folder.glob("*.xml"))


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if needed) for the block."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _compile_networks(model: YOLO, export: Any, settings: dict[str, object], static_shapes: int) -> ShapeNetworks:
    """The read ``export`` compiled, with OpenVINO ``settings`` added to ultralytics' own for ``model``, as a family
    of fixed-shape networks (at most ``static_shapes``) and a dynamic one (see :class:`ShapeNetworks`).

    ultralytics (8.4) compiles OpenVINO models with a fixed config (no threads, default precision); its backend keeps
    the ``compile_model`` partial it used (device and config), which this extends.
    """
    compile_model = _backend(model).compile_model
    config = {**compile_model.keywords["config"], **settings}
    compile_with_settings = functools.partial(compile_model.func, **{**compile_model.keywords, "config": config})
    return ShapeNetworks(compile_with_settings, export, static_shapes)


def _backend(model: YOLO) -> Any:
    """ultralytics' OpenVINO backend object inside ``model``'s predictor."""
    return model.predictor.model.backend  # type: ignore[union-attr]


def compiled_property(model: YOLO, name: str) -> str:
    """A property of the compiled OpenVINO network, e.g. ``INFERENCE_NUM_THREADS`` (for diagnostics and tests)."""
    return str(_backend(model).ov_compiled_model.get_property(name))


def _blank_image() -> Any:
    import numpy as np

    return np.zeros((32, 32, 3), dtype=np.uint8)


if __name__ == "__main__":  # the child process of _export_in_child: prints the export's folder last
    print(export_openvino(Path(sys.argv[1]), int(sys.argv[2])))
