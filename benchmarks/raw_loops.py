"""The raw ultralytics loop the benchmarks compare against: one ``model.predict(path)`` per local file.

This is how Label Studio's own YOLO example predicts. It runs on the process's torch thread, where the backend's
own PyTorch work runs: torch started in a second thread would give OpenMP a second team of helper threads, which
slows every thread's parallel work (see :mod:`label_studio_yolo.inference.threads`) and would handicap the baseline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from label_studio_yolo.inference.threads import on_torch_thread


def raw_rate(model: Any, images: Sequence[Path], imgsz: int, torch_threads: int) -> float:
    """Images per second of ``model.predict(path)`` over ``images``, with ``torch_threads`` torch threads (give an
    OpenVINO model 1: torch only pre- and post-processes there, and more threads fight OpenVINO's for the cores)."""
    return on_torch_thread(_loop_rate, model, images, imgsz, torch_threads)


def load_yolo(weights: Path) -> Any:
    """``YOLO(weights)``, loaded on the torch thread and warmed up (its predictor is built by the first call)."""
    return on_torch_thread(_load, weights)


def _load(weights: Path) -> Any:
    import numpy as np
    from ultralytics import YOLO

    model = YOLO(str(weights))
    model.predict(np.zeros((32, 32, 3), dtype=np.uint8), verbose=False)
    return model


def _loop_rate(model: Any, images: Sequence[Path], imgsz: int, torch_threads: int) -> float:
    import torch

    model.predict(str(images[0]), imgsz=imgsz, conf=0.25, verbose=False)  # warm-up at this size
    torch.set_num_threads(torch_threads)  # ultralytics' select_device() lowered it when the predictor was built
    started = time.perf_counter()
    for path in images:
        model.predict(str(path), imgsz=imgsz, conf=0.25, verbose=False)
    return len(images) / (time.perf_counter() - started)
