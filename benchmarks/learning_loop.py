"""The whole learning loop through a real Label Studio: annotate, press Train, get a better version served.

Starts Label Studio (``.venv-label-studio``), a private Redis, the backend under gunicorn and one ``rq worker`` as
the README says, with every training setting at its default unless given. A project of composed photos
(:mod:`tests.support.photo_project`: the base model's people as ``Person``, plus ``Cup`` and ``Cat``, which it never
saw) gets ``--train`` annotated tasks and ``--held-out`` tasks nobody annotates. Then:

1. "Retrieve predictions" with the base model; per-label AP50 on the held-out tasks, from what Label Studio stored;
2. "Start Training" (Label Studio's train call), and the time until ``/setup`` reports the new version;
3. "Retrieve predictions" again, with the new version.

Printed: per label, held-out AP50 before and after; Train -> served wall time; the job's wall and CPU seconds; the
gate's per-label verdicts and decision.

Usage:
    .venv/bin/python -m benchmarks.learning_loop                                   # shipped people model, 256x192
    .venv/bin/python -m benchmarks.learning_loop --base yolov8s-people.pt --size 640 480 --setting TRAIN_IMGSZ=640
    .venv/bin/python -m benchmarks.learning_loop --train 10                   # the few-tasks case
    .venv/bin/python -m benchmarks.learning_loop --drawn new                  # people left unboxed, as many annotate
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from label_studio_yolo.training.evaluate import LabelScore
from label_studio_yolo.training.worker import TrainingWorker
from tests.e2e.conftest import BackendServer, backend_server
from tests.e2e.test_label_studio_predictions import retrieve_predictions
from tests.support.label_studio import PROJECT_ROOT, running_label_studio
from tests.support.photo_project import (
    CONFIG,
    LABELS,
    NEW_LABELS,
    annotation_result,
    project_scenes,
    stored_scores,
    upload_scenes,
)
from tests.support.photos import PEOPLE_MODEL, SCENE_SIZE
from tests.support.redis_server import running_redis

WORKER_CLASS = f"{TrainingWorker.__module__}.{TrainingWorker.__name__}"

SERVED_TIMEOUT = 3600.0
"""Seconds to wait for the job's outcome."""


def served_version(backend: BackendServer, project: int) -> str:
    body = {"project": f"{project}.0", "schema": CONFIG}
    return str(requests.post(f"{backend.url}/setup", json=body, timeout=60).json()["model_version"])


def wait_for_outcome(backend: BackendServer, project: int, base: str) -> tuple[float, dict[str, Any]]:
    """Seconds until a new version is served or the job ends without one, and the job's status entry."""
    started = time.monotonic()
    while time.monotonic() - started < SERVED_TIMEOUT:
        status = requests.get(f"{backend.url}/training/status", params={"project": project}, timeout=10).json()
        jobs = status[str(project)]["jobs"]
        if served_version(backend, project) != base:
            return time.monotonic() - started, jobs[0] if jobs else {}
        if jobs and jobs[0]["status"] in ("finished", "failed"):
            return time.monotonic() - started, jobs[0]
        time.sleep(1.0)
    raise TimeoutError(f"no outcome within {SERVED_TIMEOUT:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=PEOPLE_MODEL, help="base weights with a 'person' class")
    parser.add_argument("--train", type=int, default=20, help="annotated tasks")
    parser.add_argument("--held-out", type=int, default=40, help="held-out tasks")
    parser.add_argument("--size", type=int, nargs=2, default=SCENE_SIZE, metavar=("W", "H"), help="scene size")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE", help="a backend setting")
    parser.add_argument(
        "--drawn", choices=("all", "new"), default="all", help="labels drawn: all, or only those the base never saw"
    )
    args = parser.parse_args()
    drawn = NEW_LABELS if args.drawn == "new" else LABELS
    size = (args.size[0], args.size[1])
    settings = dict(item.split("=", 1) for item in args.setting)
    with tempfile.TemporaryDirectory(prefix="learning-loop-") as folder, ExitStack() as stack:
        root = Path(folder)
        scenes = project_scenes(root / "scenes", args.train, args.held_out, size)
        (root / "models").mkdir()
        shutil.copy2(args.base, root / "models" / "base.pt")
        (root / "label-studio").mkdir()
        server = stack.enter_context(running_label_studio(root / "label-studio"))
        project = server.client.projects.create(title="Learning loop", label_config=CONFIG).id
        train_ids = upload_scenes(server, project, scenes["train"])
        for scene in scenes["train"]:
            server.client.annotations.create(id=train_ids[scene.path.name], result=annotation_result(scene, drawn))
        held_out_ids = upload_scenes(server, project, scenes["held-out"])
        redis_url = stack.enter_context(running_redis())
        env = {
            "MODEL_PATH": "base.pt",
            "REDIS_URL": redis_url,
            "MODEL_DIR": str(root / "versions"),
            "LABEL_STUDIO_URL": server.url,
            "LABEL_STUDIO_API_KEY": server.token,
            "TORCH_THREADS": "2",
            **settings,
        }
        backend = stack.enter_context(backend_server(root / "models", root, **env))
        worker_log = (root / "worker.log").open("wb")
        rq = str(Path(sys.executable).parent / "rq")
        worker = subprocess.Popen(  # noqa: S603 (our own rq, from this venv)
            [rq, "worker", "-w", WORKER_CLASS, "--url", redis_url, "training"],
            cwd=PROJECT_ROOT,
            env={**backend.env, "PATH": str(Path(sys.executable).parent)},
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(worker.terminate)
        ml = server.client.ml.create(project=project, url=backend.url, title="YOLO", is_interactive=False)
        base = served_version(backend, project)
        retrieve_predictions(server, project)
        before = stored_scores(server, held_out_ids, scenes["held-out"], base)

        pressed = time.monotonic()
        server.client.ml.train(id=ml.id)
        _, job = wait_for_outcome(backend, project, base)
        served = time.monotonic() - pressed
        new = served_version(backend, project)
        status = requests.get(f"{backend.url}/training/status", params={"project": project}, timeout=10).json()
        versions = status[str(project)]["versions"]
        job["timings"] = versions[-1]["timings"] if versions else None
        retrieve_predictions(server, project)
        after = stored_scores(server, held_out_ids, scenes["held-out"], new) if new != base else before
        report(args, size, settings, before, after, served if new != base else None, job)
        worker_log.close()
        print("worker log tail:\n" + (root / "worker.log").read_text(errors="replace")[-1500:])


def report(
    args: argparse.Namespace,
    size: tuple[int, int],
    settings: dict[str, str],
    before: dict[str, LabelScore],
    after: dict[str, LabelScore],
    served: float | None,
    job: dict[str, Any],
) -> None:
    result = job.get("result") or {}
    print(
        f"\n{args.train} annotated ({args.drawn} labels drawn), {args.held_out} held-out tasks of {size[0]}x{size[1]}; "
        f"base {args.base.name}"
    )
    print(f"settings beside the defaults: {settings or 'none'}")
    print(f"{'label':>8} | held-out AP50 before -> after (objects)")
    for label in LABELS.values():
        print(f"{label:>8} | {before[label].value:.3f} -> {after[label].value:.3f} ({after[label].count})")
    print(f"Train -> new version served: {f'{served:.0f} s' if served is not None else 'not served'}")
    print(f"job timings (s): {job.get('timings')}")
    gate = result.get("gate", {})
    print(f"gate: {'publish' if gate.get('publish') else 'refuse'}: {gate.get('reason')}")
    print(json.dumps(gate.get("labels"), indent=1))
    progress = job.get("progress", {})
    print(f"job: {job.get('status')}, stage {progress.get('stage')!r}")


if __name__ == "__main__":
    main()
