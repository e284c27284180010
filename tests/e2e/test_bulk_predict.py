"""End to end: ``label-studio-yolo predict`` pre-labels a real Label Studio project and uploads the predictions.

A project of 50 uploaded images, 8 of them annotated and 1 skipped by an annotator. We assert what Label Studio
stores: nothing after a dry run (whose file holds the right boxes), one prediction per unannotated task after a run,
nothing more after a second run or after Label Studio's own "Retrieve predictions" through the connected backend,
no duplicates after runs that were killed or interrupted, and fast, clear failures for a bad key, URL or project.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import BOXES_CONFIG, PROJECT_ROOT, SampleImage, app_client, draw_samples
from label_studio_yolo.bulk.sinks import LabelStudioUploader
from label_studio_yolo.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_TASKS_FAILED, main
from tests.e2e.conftest import BackendServer, LabelStudioServer
from tests.e2e.test_label_studio_predictions import (
    LABELS,
    backend_version,
    pixel_box,
    retrieve_predictions,
    upload_images,
)
from tests.support.image_server import serve_files

pytestmark = pytest.mark.e2e

TASK_COUNT = 50
ANNOTATED_COUNT = 8
"""The first 8 tasks get an annotation; the 9th is skipped (a cancelled annotation)."""


@dataclass(frozen=True)
class BulkProject:
    """A Label Studio project for the bulk command: its tasks' images and which tasks a person touched."""

    id: int
    samples: dict[int, SampleImage]
    touched: frozenset[int]

    @property
    def untouched(self) -> set[int]:
        return set(self.samples) - self.touched


@pytest.fixture(scope="module")
def bulk_samples(tmp_path_factory: pytest.TempPathFactory) -> list[SampleImage]:
    return draw_samples(tmp_path_factory.mktemp("bulk"), "bulk", TASK_COUNT, seed=4321)


@pytest.fixture
def bulk_project(label_studio: LabelStudioServer, bulk_samples: list[SampleImage], request) -> BulkProject:
    """50 uploaded images as tasks; 8 annotated, 1 skipped."""
    client = label_studio.client
    project = client.projects.create(title=f"Bulk {request.node.name}"[:50], label_config=BOXES_CONFIG)
    ids = upload_images(label_studio, project.id, bulk_samples)
    samples = {ids[sample.path.name]: sample for sample in bulk_samples}
    ordered = sorted(samples)
    for task_id in ordered[:ANNOTATED_COUNT]:
        client.annotations.create(id=task_id, result=[_annotation_box()])
    client.annotations.create(id=ordered[ANNOTATED_COUNT], result=[], was_cancelled=True)
    return BulkProject(project.id, samples, frozenset(ordered[: ANNOTATED_COUNT + 1]))


def _annotation_box() -> dict[str, Any]:
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 192,
        "original_height": 144,
        "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0, "rectanglelabels": ["Blue"]},
    }


def predictions_per_task(server: LabelStudioServer, project_id: int) -> dict[int, list[Any]]:
    stored: dict[int, list[Any]] = {}
    for prediction in server.client.predictions.list(project=project_id):
        stored.setdefault(prediction.task, []).append(prediction)
    return stored


def assert_boxes_mostly_right(results: dict[int, list[dict[str, Any]]], samples: dict[int, SampleImage]) -> None:
    """At least 90% of the drawn objects have a box (IoU >= 0.7) with their label; every region has a config label.

    The tiny test model misses an object now and then on 50 random images; the exact regions are compared with the
    backend's own answer elsewhere.
    """
    found = total = 0
    for task_id, regions in results.items():
        assert all(region["value"]["rectanglelabels"][0] in LABELS.values() for region in regions)
        for truth in samples[task_id].truth:
            total += 1
            found += any(
                truth.iou(*pixel_box(region)) >= 0.7 and region["value"]["rectanglelabels"] == [LABELS[truth.label]]
                for region in regions
            )
    assert found >= 0.9 * total, f"{found} of {total} objects found"


def _backend_predictions(server: LabelStudioServer, api_key: str, task_ids: list[int]) -> list[Any]:
    """What the backend app (same environment) answers to Label Studio's /setup and /predict for these tasks."""
    tasks = [server.client.tasks.get(id=task_id).model_dump() for task_id in task_ids]
    config = server.client.projects.get(id=tasks[0]["project"]).label_config
    with app_client() as client:
        setup = {"project": "bulk.1", "schema": config, "hostname": server.url, "access_token": api_key}
        assert client.post("/setup", json=setup).status_code == 200
        answer = client.post("/predict", json={"tasks": tasks, "project": "bulk.1", "label_config": config})
    return list(answer.json["results"])


def cli_command(*args: str) -> list[str]:
    """The command as users run it: the package's entry point."""
    return [sys.executable, "-m", "label_studio_yolo", "predict", *args]


def cli_env(backend: BackendServer, api_key: str) -> dict[str, str]:
    """The backend's own settings (same weights, same MODEL_DIR), as the README tells users to run it."""
    return {**backend.env, "LABEL_STUDIO_API_KEY": api_key, "TORCH_THREADS": "1"}


def test_dry_run_writes_the_predictions_and_uploads_nothing(
    label_studio: LabelStudioServer,
    personal_access_token: str,
    bulk_project: BulkProject,
    backend_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "predictions.json"
    args = ["--url", label_studio.url, "--api-key", personal_access_token, "--project", str(bulk_project.id)]

    code = main(["predict", *args, "--dry-run", str(output), "--batch-size", "16"])

    assert code == EXIT_OK
    entries = json.loads(output.read_text())
    assert sorted(entry["task"] for entry in entries) == sorted(bulk_project.untouched)
    assert_boxes_mostly_right({entry["task"]: entry["result"] for entry in entries}, bulk_project.samples)
    backend_answer = _backend_predictions(label_studio, personal_access_token, [entry["task"] for entry in entries])
    assert [{key: entry[key] for key in ("result", "score", "model_version")} for entry in entries] == backend_answer, (
        "the command predicts exactly what the backend answers to Label Studio"
    )
    assert predictions_per_task(label_studio, bulk_project.id) == {}, "a dry run uploads nothing"
    summary = capsys.readouterr().out
    assert f"predicted: {len(bulk_project.untouched)} (0 with no region), written to {output}" in summary
    assert "skipped:   9 annotated" in summary


def test_run_stores_one_prediction_per_unannotated_task_once(
    label_studio: LabelStudioServer, backend: BackendServer, bulk_project: BulkProject
) -> None:
    client = label_studio.client
    broken = client.tasks.create(project=bulk_project.id, data={"image": "http://127.0.0.1:9/gone.png"})
    args = cli_command("--url", label_studio.url, "--project", str(bulk_project.id), "--batch-size", "8")
    env = cli_env(backend, label_studio.token)

    first = subprocess.run(args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)

    assert first.returncode == EXIT_TASKS_FAILED, first.stderr
    stored = predictions_per_task(label_studio, bulk_project.id)
    assert set(stored) == bulk_project.untouched, "annotated, skipped and broken tasks get no prediction"
    version = backend_version(backend)
    assert all(len(predictions) == 1 for predictions in stored.values())
    assert {predictions[0].model_version for predictions in stored.values()} == {version}, "the backend's version"
    assert_boxes_mostly_right(
        {task: predictions[0].result for task, predictions in stored.items()}, bulk_project.samples
    )
    assert f"task {broken.id}: media not loaded" in first.stdout
    assert "tasks/s" in first.stdout and "tasks/s" in first.stderr, "summary and per-batch progress show the rate"

    second = subprocess.run(args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == EXIT_TASKS_FAILED, "only the broken task is tried again"
    assert f"{len(bulk_project.untouched)} already predicted" in second.stdout
    client.ml.create(project=bulk_project.id, url=backend.url, title="YOLO", is_interactive=False)
    retrieve_predictions(label_studio, bulk_project.id)
    stored = predictions_per_task(label_studio, bulk_project.id)
    duplicated = {task: len(stored[task]) for task in bulk_project.untouched if len(stored[task]) != 1}
    assert duplicated == {}, "neither a rerun nor Retrieve predictions adds a second prediction"


def test_killed_and_interrupted_runs_resume_without_duplicates(
    label_studio: LabelStudioServer, backend: BackendServer, bulk_samples: list[SampleImage]
) -> None:
    client = label_studio.client
    project = client.projects.create(title="Bulk resumed", label_config=BOXES_CONFIG)
    with serve_files() as storage:
        samples = bulk_samples[:40]
        paths = [f"/images/{sample.path.name}" for sample in samples]
        urls = [storage.add(path, sample.path.read_bytes()) for path, sample in zip(paths, samples, strict=True)]
        client.projects.import_tasks(id=project.id, request=[{"image": url} for url in urls])
        args = cli_command("--url", label_studio.url, "--project", str(project.id), "--batch-size", "4")
        env = cli_env(backend, label_studio.token)

        # Each run stalls at a held image (the 13th, then the 25th), however fast this machine is: it is stopped
        # part way, after storing a few batches, never after the end (the test used a slow storage and timing).
        killed = _stop_part_way(args, env, label_studio, project.id, signal.SIGKILL, storage.hold(paths[12]))
        interrupted = _stop_part_way(args, env, label_studio, project.id, signal.SIGINT, storage.hold(paths[24]))
        final = subprocess.run(args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)

    assert killed.returncode == -signal.SIGKILL
    assert interrupted.returncode == EXIT_INTERRUPTED, interrupted.stderr
    assert "Interrupted: run the same command again" in interrupted.stdout
    assert final.returncode == EXIT_OK, final.stderr
    counts = Counter(prediction.task for prediction in client.predictions.list(project=project.id))
    assert len(counts) == 40 and set(counts.values()) == {1}, counts


def _stop_part_way(
    args: list[str],
    env: dict[str, str],
    server: LabelStudioServer,
    project_id: int,
    stop: signal.Signals,
    stall: threading.Event,
) -> subprocess.CompletedProcess[str]:
    """Start a run, send ``stop`` once it has stored a few more predictions (it cannot pass the image ``stall``
    holds back), then let the image go and wait for the run to end."""
    before = len(server.client.predictions.list(project=project_id))
    process = subprocess.Popen(
        args,
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    deadline = time.monotonic() + 120
    try:
        while len(server.client.predictions.list(project=project_id)) < before + 4:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run stored no predictions"
            time.sleep(0.2)
        os.kill(process.pid, stop)
    except BaseException:
        process.kill()  # a failed check leaves no run behind to load the machine for the next tests
        raise
    finally:
        stall.set()  # its download ends, so a stopped run exits at once
    stdout, stderr = process.communicate(timeout=120)
    assert len(server.client.predictions.list(project=project_id)) < 40, "stopped before the end"
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def _ctrl_c_as_in_a_terminal() -> None:
    """In the run's process before it starts: Ctrl-C (SIGINT) does what it does in a terminal. A test suite started
    in the background (``make test &``, nohup) passes SIGINT on ignored, and Python then never raises
    KeyboardInterrupt: the interrupted run went on to the end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [
        ("not-a-valid-token", "refused the API key, tried as a legacy token"),
        (
            # a well-formed personal access token (JWT) that this Label Studio never issued
            "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJl",
            "refused the API key, tried as a personal access token",
        ),
    ],
)
def test_a_bad_key_fails_fast_saying_which_token_type_was_tried(
    label_studio: LabelStudioServer, api_key: str, expected: str, backend_env: Path, capsys
) -> None:
    started = time.monotonic()
    code = main(["predict", "--url", label_studio.url, "--api-key", api_key, "--project", "1"])
    assert code == EXIT_ERROR
    assert expected in capsys.readouterr().err
    assert time.monotonic() - started < 10


def test_unknown_project_and_wrong_url_are_named(
    label_studio: LabelStudioServer, bulk_project: BulkProject, backend_env: Path, capsys
) -> None:
    key = ["--api-key", label_studio.token]
    assert main(["predict", "--url", label_studio.url, *key, "--project", "99999"]) == EXIT_ERROR
    assert "Project 99999 does not exist or this API key's user cannot see it. Projects it can see: " in (
        capsys.readouterr().err
    )
    assert main(["predict", "--url", "http://127.0.0.1:9", *key, "--project", "1"]) == EXIT_ERROR
    assert "Cannot reach Label Studio at http://127.0.0.1:9" in capsys.readouterr().err
    assert main(["predict", "--url", f"{label_studio.url}/label-studio", *key, "--project", "1"]) == EXIT_ERROR
    assert "is this Label Studio's address" in capsys.readouterr().err


def test_a_config_the_model_cannot_fill_is_refused_with_xml(
    label_studio: LabelStudioServer, backend_env: Path, capsys
) -> None:
    config = """<View><Image name="image" value="$image"/>
      <Choices name="kind" toName="image"><Choice value="Red"/></Choices></View>"""
    project = label_studio.client.projects.create(title="Bulk choices only", label_config=config)
    code = main(["predict", "--url", label_studio.url, "--api-key", label_studio.token, "--project", str(project.id)])
    assert code == EXIT_ERROR
    error = capsys.readouterr().err
    assert "needs a classify model" in error and 'model_path="yolo11n-cls.pt"' in error


def test_a_task_deleted_during_the_run_fails_alone(label_studio: LabelStudioServer) -> None:
    """Label Studio refuses a whole batch for one missing task; the uploader then stores the others one by one."""
    client = label_studio.client
    project = client.projects.create(title="Bulk deleted task", label_config=BOXES_CONFIG)
    client.projects.import_tasks(id=project.id, request=[{"image": f"http://127.0.0.1:9/{n}.png"} for n in range(3)])
    task_ids = sorted(task.id for task in client.tasks.list(project=project.id))
    client.tasks.delete(id=task_ids[1])
    batch = [{"task": task_id, "result": [], "score": 0.0, "model_version": "v1"} for task_id in task_ids]

    refused = LabelStudioUploader(client, project.id).put(batch)

    assert list(refused) == [task_ids[1]] and "upload refused: HTTP 400" in refused[task_ids[1]]
    assert sorted(prediction.task for prediction in client.predictions.list(project=project.id)) == [
        task_ids[0],
        task_ids[2],
    ]
