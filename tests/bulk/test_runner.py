"""The bulk command's prediction loop with the backend's real predictor and tiny model, without Label Studio.

Tasks carry their images as ``data:`` URIs. A dry run's file is checked entry by entry; an upload to a Label Studio
that does not answer stops the run early and says that nothing was stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from label_studio_sdk.client import LabelStudio

from conftest import BOXES_CONFIG, SampleImage
from label_studio_yolo.bulk.progress import Progress
from label_studio_yolo.bulk.project_run import BulkReport
from label_studio_yolo.bulk.report import format_report
from label_studio_yolo.bulk.runner import run_batches
from label_studio_yolo.bulk.selection import Selection
from label_studio_yolo.bulk.sinks import JsonFileWriter, LabelStudioUploader
from label_studio_yolo.prediction.project import build_project_predictor
from label_studio_yolo.settings import BackendSettings


@pytest.fixture
def predictor(backend_env: Path):
    return build_project_predictor(BOXES_CONFIG, project_id=1, settings=BackendSettings())


@pytest.fixture
def tasks(sample_images: list[SampleImage]) -> list[dict]:
    images = [{"id": 10 + index, "data": {"image": sample.data_uri()}} for index, sample in enumerate(sample_images)]
    return [*images, {"id": 99, "data": {"image": "data:image/png;base64,bm90IGFuIGltYWdl"}}]


def report_of(totals, tasks: list[dict], dry_run: Path | None = None) -> str:
    return format_report(BulkReport(1, "Boxes", "boxes-v", Selection(tasks), totals, dry_run))


def test_a_dry_run_file_holds_one_upload_body_per_predicted_task(predictor, tasks, tmp_path):
    output = tmp_path / "predictions.json"
    sink = JsonFileWriter(output)
    totals = run_batches(predictor, tasks, sink, batch_size=4)
    sink.close()

    entries = json.loads(output.read_text())
    assert [entry["task"] for entry in entries] == [task["id"] for task in tasks[:-1]]
    assert all(entry["model_version"] == predictor.model_version and entry["result"] for entry in entries)
    assert totals.predicted == len(tasks) - 1 and totals.without_regions == 0
    assert list(totals.failed) == [99] and totals.failed[99].startswith("media not loaded: Content is not a readable")
    summary = report_of(totals, tasks, output)
    assert "task 99: media not loaded" in summary and "Run the same command again to retry" in summary


def test_a_label_studio_that_stops_answering_stops_the_run_and_says_nothing_was_stored(predictor, tasks):
    unreachable = LabelStudio(base_url="http://127.0.0.1:9", api_key="legacy-key")
    progress = Progress(total=len(tasks), show_bar=False)

    totals = run_batches(predictor, tasks, LabelStudioUploader(unreachable, 1, retries=0), 2, progress)

    assert totals.predicted == 0
    assert totals.upload_error and "Label Studio could not be reached" in totals.upload_error
    assert progress.done <= 4 < len(tasks), "the run stops at the first batch Label Studio did not take"
    assert "Stopped, predictions not stored: Label Studio could not be reached" in report_of(totals, tasks)
