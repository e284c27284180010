"""Load on ``/predict``: concurrent clients for a fixed time, then latency percentiles, throughput and errors.

Each client sends one request after another, picking the next of a list of request bodies (different images, one
task or a batch, two projects with different labels). An answer counts as an error when it is not HTTP 200, has
the wrong number of results, or differs from the answer the same request got alone before the load started, so
concurrency that mixed up projects, lanes or images shows up here. ``/health`` is polled once a second meanwhile.

The test suite runs :func:`run_load` in a bounded form (``tests/integration/test_load.py``); this script runs it
for real.

Usage:
    .venv/bin/python -m benchmarks.predict_load --clients 8 --seconds 60
"""

from __future__ import annotations

import argparse
import itertools
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from benchmarks.bulk_predict import DEFAULT_WEIGHTS, PHOTOS
from benchmarks.predict_speed import worker_peak_rss_mb
from conftest import BOXES_CONFIG, WEIGHTS_NAME
from tests.e2e.conftest import backend_server
from tests.support.image_server import serve_files

CLIENTS = 8
"""Concurrent clients (the issue's load: 8 labellers' browsers or scripts at once)."""

SECONDS = 60.0
"""How long the load lasts."""

REQUEST_TIMEOUT = 100.0
"""Seconds a client waits for one answer: Label Studio's own ``/predict`` timeout."""

OTHER_PROJECT_CONFIG = BOXES_CONFIG.replace('"Red box"', '"Crimson"')
"""A second project on the same weights with a label of its own, so answers mixed up between projects show."""


@dataclass
class LoadReport:
    """What the clients saw: one latency per answered request, the errors, and ``/health`` polls that failed."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tasks: int = 0
    health_latencies: list[float] = field(default_factory=list)
    health_failures: list[str] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        """Latency (s) that ``share`` of the requests took at most (nearest rank)."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else float("nan")

    def summary(self) -> str:
        """One paragraph for a terminal or a log."""
        count = len(self.latencies)
        slowest_health = max(self.health_latencies, default=0.0)
        return (
            f"{count} requests ({self.tasks} tasks) in {self.seconds:.1f} s: {count / self.seconds:.2f} requests/s, "
            f"{self.tasks / self.seconds:.2f} tasks/s; latency p50 {self.percentile(0.5) * 1000:.0f} ms, "
            f"p90 {self.percentile(0.9) * 1000:.0f} ms, p99 {self.percentile(0.99) * 1000:.0f} ms, "
            f"max {max(self.latencies, default=float('nan')) * 1000:.0f} ms; {len(self.errors)} errors; "
            f"/health answered {len(self.health_latencies) - len(self.health_failures)} of "
            f"{len(self.health_latencies)} polls within 1 s, slowest {slowest_health * 1000:.0f} ms"
        )


def comparable(answer: dict[str, Any]) -> list[list[tuple[Any, ...]]]:
    """The regions of a ``/predict`` answer as rounded tuples (label, box, score), task by task."""
    tasks = []
    for entry in answer["results"]:
        regions = []
        for region in entry.get("result", []) if entry else []:
            value = region["value"]
            box = tuple(round(value[key], 2) for key in ("x", "y", "width", "height"))
            regions.append((region["from_name"], tuple(value["rectanglelabels"]), box, round(region["score"], 2)))
        tasks.append(sorted(regions))
    return tasks


def post_predict(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One ``/predict`` call; raises on anything Label Studio could not use."""
    answer = requests.post(f"{url}/predict", json=body, timeout=REQUEST_TIMEOUT)
    if answer.status_code != 200:
        raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
    data: dict[str, Any] = answer.json()
    if len(data.get("results", [])) != len(body["tasks"]):
        raise RuntimeError(f"{len(data.get('results', []))} results for {len(body['tasks'])} tasks")
    return data


def reference_answers(url: str, bodies: Sequence[dict[str, Any]]) -> list[list[list[tuple[Any, ...]]]]:
    """Each body's answer alone, before any load; each project is set up first, as Label Studio does."""
    for body in bodies:
        requests.post(f"{url}/setup", json={"project": body["project"], "schema": body["label_config"]}, timeout=120)
    return [comparable(post_predict(url, body)) for body in bodies]


def run_load(
    url: str,
    bodies: Sequence[dict[str, Any]],
    clients: int = CLIENTS,
    seconds: float = SECONDS,
    max_requests: int | None = None,
) -> LoadReport:
    """``clients`` threads posting ``bodies`` round-robin to ``url`` for ``seconds`` (or ``max_requests`` in all).

    Every answer is compared with the body's answer alone (taken first), and ``/health`` is polled once a second.
    """
    expected = reference_answers(url, bodies)
    report = LoadReport(seconds=seconds)
    lock = threading.Lock()
    tickets = itertools.count()
    started = time.monotonic()
    deadline = started + seconds

    def client(offset: int) -> None:
        for turn in itertools.count(offset):
            ticket = next(tickets)
            if time.monotonic() >= deadline or (max_requests is not None and ticket >= max_requests):
                return
            index = turn % len(bodies)
            sent = time.monotonic()
            try:
                error = None if comparable(post_predict(url, bodies[index])) == expected[index] else "answer differs"
            except Exception as failure:  # every failure is counted, none ends the load
                error = repr(failure)
            with lock:
                report.latencies.append(time.monotonic() - sent)
                report.tasks += len(bodies[index]["tasks"])
                if error is not None:
                    report.errors.append(f"request {ticket} (body {index}): {error}")

    threads = [threading.Thread(target=client, args=(number,), name=f"load-{number}") for number in range(clients)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        poll_health(url, report)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))
    for thread in threads:
        thread.join()
    report.seconds = time.monotonic() - started
    return report


def wait_for_log_line(log: Path, text: str, timeout: float) -> None:
    """Wait until the backend's log holds ``text`` (e.g. its first-start OpenVINO export is in use)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {text!r} in {log} after {timeout} s")
        time.sleep(0.2)


def poll_health(url: str, report: LoadReport) -> None:
    """One ``GET /health`` with Label Studio's 1 s budget; a failure is recorded."""
    sent = time.monotonic()
    try:
        requests.get(f"{url}/health", timeout=1.0).raise_for_status()
    except requests.RequestException as error:
        report.health_failures.append(repr(error))
    report.health_latencies.append(time.monotonic() - sent)


def photo_bodies(image_urls: Sequence[str]) -> list[dict[str, Any]]:
    """Request bodies over ``image_urls``: one task each, then a batch of 4, for two projects in turn."""
    tasks = [{"id": index, "data": {"image": url}} for index, url in enumerate(image_urls)]
    bodies = []
    for number, task in enumerate(tasks):
        project, config = ("load.1", BOXES_CONFIG) if number % 2 == 0 else ("load.2", OTHER_PROJECT_CONFIG)
        bodies.append({"project": project, "label_config": config, "tasks": [task], "params": {}})
    bodies.append({"project": "load.1", "label_config": BOXES_CONFIG, "tasks": tasks[:4], "params": {}})
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=CLIENTS, help=f"concurrent clients (default: {CLIENTS})")
    parser.add_argument("--seconds", type=float, default=SECONDS, help=f"load duration (default: {SECONDS:.0f})")
    parser.add_argument("--threads", type=int, default=2, help="TORCH_THREADS of the backend (default: 2)")
    parser.add_argument("--gunicorn-threads", type=int, default=16, help="gunicorn --threads (default: 16)")
    parser.add_argument("--imgsz", type=int, default=640, help="inference size (default: 640)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="YOLO weights (default: tiny test model)")
    parser.add_argument(
        "--during-export", action="store_true", help="start at once, while the first OpenVINO export runs"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, serve_files() as storage:
        root = Path(scratch) / "models"
        root.mkdir()
        shutil.copy2(args.weights, root / WEIGHTS_NAME)
        urls = [storage.add(f"/{index}-{path.name}", path.read_bytes()) for index, path in enumerate(PHOTOS * 4)]
        settings = {"TORCH_THREADS": str(args.threads), "MODEL_IMGSZ": str(args.imgsz)}
        with backend_server(root, Path(scratch), threads=args.gunicorn_threads, **settings) as backend:
            if not args.during_export:
                wait_for_log_line(backend.log, "run on OpenVINO", timeout=300)
            report = run_load(backend.url, photo_bodies(urls), args.clients, args.seconds)
            peak = worker_peak_rss_mb(backend.url)
    print(
        f"{args.clients} clients, {args.weights.name} at {args.imgsz} px, TORCH_THREADS={args.threads}, "
        f"gunicorn --threads {args.gunicorn_threads}, photos {', '.join(p.name for p in PHOTOS)} over local HTTP"
    )
    print(f"  {report.summary()}")
    print(f"  peak RSS of the backend worker: {peak:.0f} MB")
    for error in report.errors[:10]:
        print(f"  error: {error}")


if __name__ == "__main__":
    main()
