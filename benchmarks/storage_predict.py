"""Speed of a ``/predict`` whose images are in an S3 storage, against the same images uploaded to Label Studio, in one
run.

Starts a throwaway Label Studio (``.venv-label-studio``), an S3-compatible server (moto, on loopback) and the backend
under gunicorn (default settings). The same photos (ultralytics' ``bus.jpg`` and ``zidane.jpg``, alternating) are
uploaded to one project and put in a bucket that two more projects read through an S3 storage, with presigned URLs
and with Label Studio proxying the bytes. Each turn sends every project's tasks, as Label Studio sends them, in one
``/predict``; rows are measured in turn so that a slow spell of the machine hits them alike. Prints tasks/s (median
over the turns), the ratio to the uploads' row taken within each turn (median and range), and CPU-milliseconds per
task of the backend and of the servers beside it (Label Studio and the S3 server, which share this machine's cores
with the backend).

Usage:
    .venv/bin/python -m benchmarks.storage_predict --tasks 32 --repeat 5
    .venv/bin/python -m benchmarks.storage_predict --tasks 32 --repeat 5 --apart
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from benchmarks.bulk_predict import DEFAULT_WEIGHTS, PHOTOS
from conftest import BOXES_CONFIG, WEIGHTS_NAME
from tests.e2e.conftest import backend_server
from tests.support.label_studio import LabelStudioServer, running_label_studio, upload_files
from tests.support.s3_server import S3Server, running_s3

BUCKET = "benchmark"


def bucket_project(server: LabelStudioServer, s3: S3Server, presign: bool) -> int:
    """A project reading every object of the bucket through an S3 storage; its id once every task is synced."""
    client = server.client
    project = client.projects.create(title=f"S3 presign {presign}", label_config=BOXES_CONFIG)
    settings = s3.storage_settings(BUCKET, "photos")
    storage = client.import_storage.s3.create(project=project.id, presign=presign, presign_ttl=60, **settings)
    client.import_storage.s3.sync(id=storage.id)
    return project.id


def listed_tasks(server: LabelStudioServer, project_id: int, count: int) -> list[dict[str, Any]]:
    """The project's tasks as Label Studio sends them to /predict (storage URIs unresolved)."""
    deadline = time.monotonic() + 120
    while len(tasks := list(server.client.tasks.list(project=project_id, resolve_uri=False))) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"project {project_id} has {len(tasks)} of {count} tasks")
        time.sleep(0.5)
    return [{"id": task.id, "data": task.data} for task in tasks]


def timed_predict(
    url: str, project: str, tasks: list[dict[str, Any]], backend: psutil.Process
) -> tuple[float, float, float]:
    """Seconds of one /predict of ``tasks``, and the CPU-seconds spent on it by the backend's processes and by the
    other servers this benchmark started (Label Studio, S3)."""
    before, everything_before = cpu_seconds(backend), children_cpu_seconds()
    started = time.perf_counter()
    body = {"tasks": tasks, "project": project, "label_config": BOXES_CONFIG}
    answer = requests.post(f"{url}/predict", json=body, timeout=600)
    wall = time.perf_counter() - started
    results = answer.json()["results"]
    if sum(1 for entry in results if entry and entry.get("result")) != len(tasks):
        raise RuntimeError(f"not every task was predicted: {results}")
    backend_cpu = cpu_seconds(backend) - before
    return wall, backend_cpu, children_cpu_seconds() - everything_before - backend_cpu


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU-seconds of ``process`` and its children."""
    total = 0.0
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return total
    for each in family:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:  # a worker that ended between the listing and now
            continue
        total += times.user + times.system
    return total


def pin_apart(backend: psutil.Process) -> None:
    """Every thread of the backend on CPU 0; this process's, Label Studio's and the S3 server's on CPU 1 (threads
    started later inherit their starter's CPU)."""
    backend_family = {backend.pid, *(child.pid for child in backend.children(recursive=True))}
    me = psutil.Process()
    for each in [me, *me.children(recursive=True)]:
        cpus = {0} if each.pid in backend_family else {1}
        for thread in each.threads():  # sched_setaffinity on a process id pins its main thread only
            with contextlib.suppress(ProcessLookupError):  # a thread that ended since the listing
                os.sched_setaffinity(thread.id, cpus)


def children_cpu_seconds() -> float:
    """CPU-seconds of every process this benchmark started (the backend, Label Studio, the S3 server)."""
    return sum(cpu_seconds(child) for child in psutil.Process().children())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32, help="tasks per /predict (default: 32)")
    parser.add_argument("--repeat", type=int, default=5, help="turns (default: 5)")
    parser.add_argument(
        "--apart",
        action="store_true",
        help="the backend on CPU 0 (1 torch thread), Label Studio, the S3 server and this client on CPU 1: as when "
        "they run on machines of their own, so that only the round trips, not their CPU, can slow the backend",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        images = [PHOTOS[index % len(PHOTOS)] for index in range(args.tasks)]
        (folder / "models").mkdir()
        shutil.copy2(DEFAULT_WEIGHTS, folder / "models" / WEIGHTS_NAME)
        (folder / "ls").mkdir()
        with running_label_studio(folder / "ls") as server, running_s3(folder) as s3:
            s3.client.create_bucket(Bucket=BUCKET)
            for index, image in enumerate(images):
                s3.client.put_object(Bucket=BUCKET, Key=f"photos/{index:03d}-{image.name}", Body=image.read_bytes())
            uploads = server.client.projects.create(title="Uploads", label_config=BOXES_CONFIG)
            upload_files(server, uploads.id, images)
            projects = {
                "uploaded to Label Studio": uploads.id,
                "S3 storage, presigned URLs": bucket_project(server, s3, presign=True),
                "S3 storage, proxied by Label Studio": bucket_project(server, s3, presign=False),
            }
            tasks = {name: listed_tasks(server, project, args.tasks) for name, project in projects.items()}
            settings = {"LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": server.token, "MODEL_IMGSZ": "640"}
            torch_threads = "1" if args.apart else "2"
            with backend_server(
                folder / "models", folder, threads=16, TORCH_THREADS=torch_threads, **settings
            ) as backend:
                process = psutil.Process(backend.process.pid if backend.process else 0)
                for name, project in projects.items():  # the first /predict of a project sets it up
                    setup = {"project": str(project), "schema": BOXES_CONFIG}
                    requests.post(f"{backend.url}/setup", json=setup, timeout=120).raise_for_status()
                    timed_predict(backend.url, str(project), tasks[name], process)
                if args.apart:
                    pin_apart(process)
                turns = [
                    {name: timed_predict(backend.url, str(id_), tasks[name], process) for name, id_ in projects.items()}
                    for _ in range(args.repeat)
                ]

    base = "uploaded to Label Studio"
    where = "backend on CPU 0, the rest on CPU 1" if args.apart else "all on the same cores"
    print(f"{args.tasks} tasks per /predict, tiny test model at 640 px, default settings, {where}, {args.repeat} turns")
    for name in projects:
        rate = statistics.median(args.tasks / turn[name][0] for turn in turns)
        ratios = [turn[base][0] / turn[name][0] for turn in turns]
        cpu = statistics.median(turn[name][1] / args.tasks for turn in turns)
        others = statistics.median(turn[name][2] / args.tasks for turn in turns)
        print(
            f"  {name + ':':38} {rate:6.1f} tasks/s   {statistics.median(ratios):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f})   CPU-ms per task: {cpu * 1000:4.0f} backend, "
            f"{others * 1000:4.0f} Label Studio and S3"
        )


if __name__ == "__main__":
    main()
