"""Speed of ``/predict`` against raw ultralytics loops on the same images and weights, in one run.

Prints tasks per second, and ratios to the raw PyTorch loop, for:

- **raw loops**: ``model.predict(path)`` one local file at a time (Label Studio's own example's way) with
  PyTorch, with the backend's OpenVINO f32 network compiled for dynamic shapes (what the backend ran before it
  compiled networks per input shape), with the backend's default runtime (OpenVINO f32 with fixed-shape networks:
  the raw loop of the runtime ``/predict`` uses), and with that runtime in bf16;
- **/predict** of the backend under gunicorn, images served over local HTTP, for the default settings and for
  other runtimes and settings, each with 32 tasks in one request and with 1 task per request;
- the overhead of ``/predict`` over the raw loop of its own runtime, and the peak RSS of each backend's worker.

Every backend is started first; then each turn measures every row once, so that a slow spell of the machine (these
2-vCPU machines vary by 20% and more within minutes) hits all rows of a turn alike. Ratios are taken within each
turn, and the median over ``--repeat`` turns is shown.

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
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import requests

from benchmarks.bulk_predict import DEFAULT_WEIGHTS, PHOTOS
from benchmarks.raw_loops import load_yolo, raw_rate
from conftest import BOXES_CONFIG, WEIGHTS_NAME
from label_studio_yolo.inference.runtimes import ensure_openvino_export
from label_studio_yolo.inference.weights import file_version
from tests.e2e.conftest import BackendServer, backend_server
from tests.support.image_server import serve_files

TASKS = 32

SERVED = {
    "default (OpenVINO f32, fixed-shape networks, 2 lanes)": {},
    "OpenVINO f32, dynamic shapes only": {"OPENVINO_STATIC_SHAPES": "0"},
    "OpenVINO f32, 1 lane": {"INFERENCE_LANES": "1"},
    "PyTorch": {"INFERENCE_RUNTIME": "pytorch"},
    "OpenVINO bf16": {"OPENVINO_PRECISION": "bf16"},
}
"""Backends measured: name -> settings beside the defaults."""

PROJECTS = 8
"""Projects added to the default backend after its timings, to show that memory does not grow per project."""


@dataclass
class Row:
    """One measured line: its rate in each turn."""

    name: str
    rates: list[float] = field(default_factory=list)


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


def raw_loops(scratch: Path, images: list[Path], imgsz: int, threads: int) -> dict[str, Callable[[], float]]:
    """The raw loops by row name, each a call that measures one turn. Each OpenVINO variant gets its own copy of the
    weights (the backend's cache holds one model per file and precision)."""
    from label_studio_yolo.inference.runtimes import Runtime
    from label_studio_yolo.inference.weights import load_weights_file
    from label_studio_yolo.settings import OPENVINO

    def openvino(folder: str, **runtime: object) -> object:
        weights = scratch / folder / WEIGHTS_NAME
        weights.parent.mkdir()
        shutil.copy2(scratch / "models" / WEIGHTS_NAME, weights)
        return load_weights_file(weights, Runtime(OPENVINO, threads=threads, **runtime)).model  # type: ignore[arg-type]

    pytorch = load_yolo(scratch / "models" / WEIGHTS_NAME)
    dynamic = openvino("dynamic", static_shapes=0)
    fixed = openvino("fixed")
    bf16 = openvino("bf16", precision="bf16")
    return {
        "raw ultralytics, PyTorch": lambda: raw_rate(pytorch, images, imgsz, threads),
        "raw ultralytics, OpenVINO f32, dynamic shapes": lambda: raw_rate(dynamic, images, imgsz, 1),
        "raw ultralytics, OpenVINO f32, fixed-shape (default)": lambda: raw_rate(fixed, images, imgsz, 1),
        "raw ultralytics, OpenVINO bf16, fixed-shape": lambda: raw_rate(bf16, images, imgsz, 1),
    }


def predict_turn(url: str, tasks: list[dict[str, object]]) -> tuple[float, float]:
    """Tasks per second of ``/predict``: all tasks in one request, then one task per request."""
    body = {"project": "bench.1", "label_config": BOXES_CONFIG}
    started = time.perf_counter()
    answer = requests.post(f"{url}/predict", json={**body, "tasks": tasks}, timeout=300)
    batch = len(tasks) / (time.perf_counter() - started)
    results = answer.json().get("results")
    assert results and all(entry for entry in results), f"every task predicted: {answer.text[:300]}"
    started = time.perf_counter()
    for task in tasks:
        requests.post(f"{url}/predict", json={**body, "tasks": [task]}, timeout=120)
    return batch, len(tasks) / (time.perf_counter() - started)


def warm_up(url: str, tasks: list[dict[str, object]]) -> None:
    """Connect, let every network be built (lane copies, a fixed-shape network per photo shape), as a user's first
    minutes would."""
    body = {"project": "bench.1", "label_config": BOXES_CONFIG}
    requests.post(f"{url}/setup", json={"project": "bench.1", "schema": BOXES_CONFIG}, timeout=120)
    for _ in range(2):
        requests.post(f"{url}/predict", json={**body, "tasks": tasks[:4]}, timeout=120)
        for task in tasks[:4]:
            requests.post(f"{url}/predict", json={**body, "tasks": [task]}, timeout=120)


def start_backends(stack: ExitStack, scratch: Path, settings: dict[str, str]) -> dict[str, BackendServer]:
    """Every backend of :data:`SERVED`, running until ``stack`` closes."""
    backends = {}
    for number, (name, extra) in enumerate(SERVED.items()):
        logs = scratch / f"backend-{number}"
        logs.mkdir()
        backends[name] = stack.enter_context(backend_server(scratch / "models", logs, threads=16, **settings, **extra))
    return backends


def run(args: argparse.Namespace, scratch: Path) -> tuple[list[Row], dict[str, float], list[str]]:
    """All turns; returns the rows, the peak RSS per backend, and the backends' fixed-shape compile log lines."""
    images = [PHOTOS[index % len(PHOTOS)] for index in range(TASKS)]
    (scratch / "models").mkdir()
    weights = scratch / "models" / WEIGHTS_NAME
    shutil.copy2(args.weights, weights)
    ensure_openvino_export(weights, file_version(weights), args.imgsz)  # the backends find it made
    loops = raw_loops(scratch, images, args.imgsz, args.threads)
    settings = {"TORCH_THREADS": str(args.threads), "MODEL_IMGSZ": str(args.imgsz)}
    with serve_files() as storage, ExitStack() as stack:
        tasks: list[dict[str, object]] = [
            {"id": index, "data": {"image": storage.add(f"/{index}-{path.name}", path.read_bytes())}}
            for index, path in enumerate(images)
        ]
        backends = start_backends(stack, scratch, settings)
        for backend in backends.values():
            warm_up(backend.url, tasks)
        rows = {name: Row(name) for name in loops}
        for name in backends:
            rows[f"/predict {TASKS} tasks, {name}"] = Row(f"/predict {TASKS} tasks, {name}")
            rows[f"/predict 1 task x {TASKS}, {name}"] = Row(f"/predict 1 task x {TASKS}, {name}")
        for _ in range(args.repeat):
            for name, loop in loops.items():
                rows[name].rates.append(loop())
            for name, backend in backends.items():
                batch, single = predict_turn(backend.url, tasks)
                rows[f"/predict {TASKS} tasks, {name}"].rates.append(batch)
                rows[f"/predict 1 task x {TASKS}, {name}"].rates.append(single)
        rss = {name: worker_peak_rss_mb(backend.url) for name, backend in backends.items()}
        default_name, default = next(iter(backends.items()))
        serve_more_projects(default.url, tasks)
        rss[f"{default_name}, {PROJECTS} more projects"] = worker_peak_rss_mb(default.url)
        log = default.log.read_text(errors="replace").splitlines()
        compiles = [line for line in log if "compiled for input shape" in line]
    return list(rows.values()), rss, compiles


def ratios(row: Row, baseline: Row) -> list[float]:
    """``row``'s rate over ``baseline``'s, turn by turn."""
    return [rate / base for rate, base in zip(row.rates, baseline.rates, strict=True)]


def report(args: argparse.Namespace, rows: list[Row], rss: dict[str, float], compiles: list[str]) -> None:
    by_name = {row.name: row for row in rows}
    baseline = rows[0]
    print(f"{TASKS} photos, {args.weights.name} at {args.imgsz} px, {args.threads} threads, median of {args.repeat}")
    for row in rows:
        rate, spread = statistics.median(row.rates), f"({min(row.rates):.1f}-{max(row.rates):.1f})"
        versus = ratios(row, baseline)
        print(
            f"  {row.name + ':':78} {rate:6.1f} tasks/s {spread:13} "
            f"{statistics.median(versus):.2f}x ({min(versus):.2f}-{max(versus):.2f})"
        )
    own = by_name["raw ultralytics, OpenVINO f32, fixed-shape (default)"]
    for kind in (f"{TASKS} tasks", f"1 task x {TASKS}"):
        row = by_name[f"/predict {kind}, {next(iter(SERVED))}"]
        versus = ratios(row, own)
        print(
            f"  /predict {kind}, default, against the raw loop of its runtime: {statistics.median(versus):.2f}x "
            f"({min(versus):.2f}-{max(versus):.2f})"
        )
    for name, peak in rss.items():
        print(f"  peak RSS of the backend worker, {name}: {peak:.0f} MB")
    print(f"  peak RSS of this process (raw loops): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    for line in compiles:
        print(f"  default backend's log: {line[line.find('OpenVINO network') :]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="inference threads (default: 2)")
    parser.add_argument("--imgsz", type=int, default=640, help="inference size (default: 640)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="YOLO weights (default: tiny test model)")
    parser.add_argument("--repeat", type=int, default=5, help="turns; medians are shown (default: 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows, rss, compiles = run(args, Path(scratch))
    report(args, rows, rss, compiles)


if __name__ == "__main__":
    main()
