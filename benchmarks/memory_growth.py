"""What each piece of serving adds to a worker process's memory, measured step by step in one process.

Prints the process's RSS and anonymous memory (``/proc/self/smaps_rollup``) after each step and what the step added:
the imports a worker makes, a weight file loaded on OpenVINO (its export on disk), each fixed-shape network, the
dynamic network (a shape beyond ``OPENVINO_STATIC_SHAPES``), two lanes, a second weight file (a tag's
``model_path``, or a project's own trained version), a version that replaces it, and the same weights on PyTorch
with two lanes (each a model copy). Photos: ultralytics' ``bus.jpg`` (640x480 after letterboxing), ``zidane.jpg``
(384x640) and a square crop (640x640).

Usage:
    .venv/bin/python -m benchmarks.memory_growth --weights yolov8s.pt
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bulk_predict import DEFAULT_WEIGHTS, PHOTOS

MIB = 1024


def memory_mb() -> tuple[int, int]:
    """This process's resident and anonymous memory in MB."""
    values: dict[str, int] = {}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Anonymous"):
                values[name] = int(rest.split()[0]) // MIB
    return values["Rss"], values["Anonymous"]


class Steps:
    """Runs steps and prints what each added."""

    def __init__(self) -> None:
        self.last = memory_mb()
        print(f"{'step':58} {'RSS MB':>7} {'anon MB':>8} {'added RSS':>10}")
        self.show("python", self.last)

    def run(self, name: str, step: Callable[[], object]) -> object:
        result = step()
        gc.collect()
        now = memory_mb()
        self.show(name, now, now[0] - self.last[0])
        self.last = now
        return result

    @staticmethod
    def show(name: str, now: tuple[int, int], added: int | None = None) -> None:
        grown = f"{added:+10d}" if added is not None else ""
        print(f"{name:58} {now[0]:7d} {now[1]:8d} {grown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memory-growth-") as scratch:
        measure(args.weights, Path(scratch), args.threads)


def measure(weights: Path, scratch: Path, threads: int) -> None:
    steps = Steps()
    steps.run("imports of a worker (the app)", _import_app)
    import cv2

    from label_studio_yolo.inference.outputs import run_model
    from label_studio_yolo.inference.runtimes import Runtime, ensure_openvino_export
    from label_studio_yolo.inference.weights import file_version, load_weights_file
    from label_studio_yolo.settings import OPENVINO, PYTORCH

    files = [scratch / name for name in ("served.pt", "tag.pt", "replacing.pt")]
    for file in files:
        shutil.copy2(weights, file)
        ensure_openvino_export(file, file_version(file), 640)  # as the rq worker leaves a version: exported
    photos = [cv2.imread(str(photo)) for photo in PHOTOS]
    square = np.ascontiguousarray(photos[0][:640, :640])
    openvino = Runtime(OPENVINO, threads=threads, lanes=2)

    served = steps.run("weights on OpenVINO, export on disk", lambda: load_weights_file(files[0], openvino))

    def predict(image: Any, lane: int | None = None) -> None:
        model = served if lane is None else served.lane_copies(2, 1)[lane]  # type: ignore[attr-defined]
        for _ in range(3):
            run_model(model, image, conf=0.25, imgsz=640, threads=threads)

    steps.run("1st photo shape: its fixed-shape network", lambda: predict(photos[0]))
    steps.run("2nd photo shape: its fixed-shape network", lambda: predict(photos[1]))
    steps.run("3rd shape: the dynamic network", lambda: predict(square))
    steps.run("two lanes: their own networks, a stream each", lambda: [predict(photos[lane], lane) for lane in (0, 1)])
    tag = steps.run("a second weight file, 2 shapes", lambda: _load_and_predict(files[1], openvino, photos))
    steps.run(
        "a version replacing it (the old one still served)", lambda: _load_and_predict(files[2], openvino, photos)
    )
    del tag
    steps.run("the replaced version dropped (no project serves it)", lambda: load_weights_file(files[2], openvino))
    pytorch = Runtime(PYTORCH, threads=threads, lanes=2)
    on_pytorch = steps.run("the first weights on PyTorch too", lambda: _load_and_predict(files[0], pytorch, photos))
    steps.run("two PyTorch lanes (a model copy each)", lambda: on_pytorch.lane_copies(2, 1))  # type: ignore[attr-defined]


def _import_app() -> None:
    import _wsgi  # noqa: F401  # the worker's imports: Flask, label-studio-ml, torch, ultralytics, OpenVINO


def _load_and_predict(file: Path, runtime: object, photos: list[Any]) -> object:
    from label_studio_yolo.inference.outputs import run_model
    from label_studio_yolo.inference.weights import load_weights_file

    loaded = load_weights_file(file, runtime)  # type: ignore[arg-type]
    for photo in photos * 2:
        run_model(loaded, photo, conf=0.25, imgsz=640, threads=2)
    return loaded


if __name__ == "__main__":
    main()
