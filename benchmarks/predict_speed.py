"""Speed of ``/predict`` against raw ultralytics loops on the same images and weights, in one run.

Prints tasks per second and ratios for:

- **raw PyTorch**: ``YOLO(weights).predict(path)`` one local file at a time (Label Studio's own example's way);
- **raw OpenVINO** (``f32`` and ``bf16``): the same loop on the backend's OpenVINO export;
- **/predict** of the backend under gunicorn, for each ``INFERENCE_RUNTIME`` and precision (and the default runtime
  with ``INFERENCE_LANES=1``), with 32 tasks in one request and with 1 task per request, images served over local
  HTTP, and the peak RSS of the backend's worker process.

Photos are ultralytics' ``bus.jpg`` and ``zidane.jpg``, alternating. The default weights are the repository's tiny
test model asked at 640 px (yolo11n's cost); ``--weights`` takes a real model.

Usage:
    .venv/bin/python -m benchmarks.predict_speed --threads 2
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.bulk_predict import DEFAULT_WEIGHTS, PHOTOS
from conftest import BOXES_CONFIG, WEIGHTS_NAME
from tests.e2e.conftest import backend_server
from tests.support.image_server import serve_files

TASKS = 32

SERVED = [("pytorch", "f32", ""), ("openvino", "f32", ""), ("openvino", "f32", "1"), ("openvino", "bf16", "")]
"""Backends measured: runtime, OpenVINO precision, INFERENCE_LANES ("" = the default)."""

PROJECTS = 8
"""Projects added to the default backend after its timings, to show that memory does not grow per project."""


def serve_more_projects(url: str, tasks: list[dict[str, object]], count: int = PROJECTS) -> None:
    """Set up ``count`` more projects, each with its own labels for the same weights, and predict for each."""
    for number in range(count):
        config = BOXES_CONFIG.replace('value="Red box"', f'value="Red {number}"')
        body = {"project": f"bench.extra{number}", "label_config": config}
        requests.post(f"{url}/setup", json={"project": body["project"], "schema": config}, timeout=120)
        requests.post(f"{url}/predict", json={**body, "tasks": tasks[:4]}, timeout=120).raise_for_status()


def worker_peak_rss_mb(url: str) -> float:
    """Peak resident memory (VmHWM) of the gunicorn processes bound to ``url``'s port, the largest one (the worker)."""
    bind = url.removeprefix("http://")
    peaks = [0.0]
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and bind in (proc / "cmdline").read_text():
                status = (proc / "status").read_text()
                peaks.append(int(status.split("VmHWM:")[1].split()[0]) / 1024)
        except (OSError, IndexError):
            continue  # a process that ended meanwhile
    return max(peaks)


def raw_rates(weights: Path, images: list[Path], imgsz: int, threads: int, repeat: int) -> dict[str, list[float]]:
    """Images per second of one ``predict(path)`` per local file: PyTorch, and the backend's OpenVINO export in f32
    and bf16, measured in turns ``repeat`` times (so a slow spell of the machine hits all three)."""
    import torch
    from ultralytics import YOLO

    from label_studio_yolo.runtimes import OPENVINO, Runtime
    from label_studio_yolo.weights import load_weights_file

    models = {"PyTorch": YOLO(str(weights))}
    for precision in ("f32", "bf16"):
        runtime = Runtime(OPENVINO, threads=threads, precision=precision)
        models[f"OpenVINO {precision}"] = load_weights_file(weights, runtime).model
    for model in models.values():
        model.predict(str(images[0]), imgsz=imgsz, conf=0.25, verbose=False)  # warm-up
    torch.set_num_threads(threads)  # select_device() lowered it; compare at the same thread count
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeat):
        for name, model in models.items():
            started = time.perf_counter()
            for path in images:
                model.predict(str(path), imgsz=imgsz, conf=0.25, verbose=False)
            rates[name].append(len(images) / (time.perf_counter() - started))
    return rates


def predict_rates(url: str, tasks: list[dict[str, object]], repeat: int) -> tuple[list[float], list[float]]:
    """Tasks per second of ``/predict``, ``repeat`` times each: all tasks in one request, and one task per request."""
    body = {"project": "bench.1", "label_config": BOXES_CONFIG}
    requests.post(f"{url}/setup", json={"project": "bench.1", "schema": BOXES_CONFIG}, timeout=120)
    requests.post(f"{url}/predict", json={**body, "tasks": tasks[:2]}, timeout=120)  # warm-up, lane copies made
    batch, single = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = requests.post(f"{url}/predict", json={**body, "tasks": tasks}, timeout=300)
        batch.append(len(tasks) / (time.perf_counter() - started))
        assert all(entry for entry in answer.json()["results"]), "every task predicted"
        started = time.perf_counter()
        for task in tasks:
            requests.post(f"{url}/predict", json={**body, "tasks": [task]}, timeout=120)
        single.append(len(tasks) / (time.perf_counter() - started))
    return batch, single


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="inference threads (default: 2)")
    parser.add_argument("--imgsz", type=int, default=640, help="inference size (default: 640)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="YOLO weights (default: tiny test model)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per row; the median is shown (default: 3)")
    args = parser.parse_args()

    images = [PHOTOS[index % len(PHOTOS)] for index in range(TASKS)]
    rows: list[tuple[str, list[float]]] = []
    rss: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "models"
        root.mkdir()
        weights = root / WEIGHTS_NAME
        shutil.copy2(args.weights, weights)
        raw_loops = raw_rates(weights, images, args.imgsz, args.threads, args.repeat)
        rows.extend((f"raw ultralytics, {name}", rates) for name, rates in raw_loops.items())
        with serve_files() as storage:
            tasks: list[dict[str, object]] = [
                {"id": index, "data": {"image": storage.add(f"/{index}-{path.name}", path.read_bytes())}}
                for index, path in enumerate(images)
            ]
            for runtime, precision, lanes in SERVED:
                settings = {
                    "TORCH_THREADS": str(args.threads),
                    "MODEL_IMGSZ": str(args.imgsz),
                    "INFERENCE_RUNTIME": runtime,
                    "OPENVINO_PRECISION": precision,
                    "INFERENCE_LANES": lanes,
                }
                name = (runtime if runtime == "pytorch" else f"openvino {precision}") + (", 1 lane" if lanes else "")
                with backend_server(root, Path(scratch), **settings) as backend:
                    batch, single = predict_rates(backend.url, tasks, args.repeat)
                    peak = worker_peak_rss_mb(backend.url)
                    if (runtime, precision, lanes) == SERVED[1]:
                        serve_more_projects(backend.url, tasks)
                        rss.append((f"{name}, {PROJECTS} more projects", worker_peak_rss_mb(backend.url)))
                rows.append((f"/predict {TASKS} tasks, {name}", batch))
                rows.append((f"/predict 1 task x {TASKS}, {name}", single))
                rss.append((name, peak))

    raw = statistics.median(rows[0][1])
    print(f"{TASKS} photos, {args.weights.name} at {args.imgsz} px, {args.threads} threads, median of {args.repeat}")
    for name, rates in rows:
        rate = statistics.median(rates)
        spread = f"({min(rates):.1f}-{max(rates):.1f})"
        print(f"  {name + ':':44} {rate:6.1f} tasks/s {spread:13} {rate / raw:.2f}x")
    for name, peak in rss:
        print(f"  peak RSS of the backend worker, {name}: {peak:.0f} MB")
    print(f"  peak RSS of this process (raw loops) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
