"""Eight clients at once on the backend under gunicorn, in a bounded form of ``benchmarks/predict_load.py``.

Under load every answer must be the one the same request gets alone: concurrency may make requests wait, never
drop, mix up projects or images, or fail them. ``/health`` keeps answering within Label Studio's 1 s throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.predict_load import CLIENTS, LoadReport, photo_bodies, post_predict, run_load, wait_for_log_line
from conftest import SampleImage
from test_api import assert_matches_truth
from tests.e2e.conftest import BackendServer, backend_server
from tests.support.image_server import FileServer, serve_files

LOAD_SECONDS = 10.0
"""How long the bounded load lasts in the suite (the script's default is 60 s)."""

MAX_REQUESTS = 600
"""Upper bound on requests, so a fast machine does not spend longer on the answers' checks than on the load."""

EXPORT_TIMEOUT = 180.0
"""Seconds the backend's first-start OpenVINO export may take on a slow machine."""

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def storage() -> Iterator[FileServer]:
    with serve_files() as server:
        yield server


@pytest.fixture(scope="module")
def loaded_backend(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    """The backend as ``make run`` serves it (gunicorn, 1 worker, 16 threads), with two inference threads, once its
    first-start OpenVINO export is done (it runs in the background; the load measures the steady state)."""
    with backend_server(model_root, tmp_path_factory.mktemp("load"), threads=16, TORCH_THREADS="2") as server:
        wait_for_log_line(server.log, "run on OpenVINO", EXPORT_TIMEOUT)
        yield server


@pytest.fixture(scope="module")
def report(loaded_backend: BackendServer, storage: FileServer, sample_images: list[SampleImage]) -> LoadReport:
    urls = [storage.add(f"/load/{sample.path.name}", sample.path.read_bytes()) for sample in sample_images]
    result = run_load(loaded_backend.url, photo_bodies(urls), CLIENTS, LOAD_SECONDS, MAX_REQUESTS)
    logger.warning("Load on /predict: %s", result.summary())  # shown in the test log; figures go to the README
    return result


def test_eight_clients_get_only_correct_answers(report: LoadReport) -> None:
    assert report.errors == []
    assert len(report.latencies) >= 2 * CLIENTS  # every client got answers, more than once


def test_health_answers_within_a_second_throughout_the_load(report: LoadReport) -> None:
    assert len(report.health_latencies) >= LOAD_SECONDS / 2
    assert report.health_failures == []


def test_the_answers_compared_under_load_hold_the_known_boxes(
    loaded_backend: BackendServer, storage: FileServer, sample_images: list[SampleImage]
) -> None:
    """The answers the load compares with are right (else 'equal to the answer alone' would prove little)."""
    urls = [storage.add(f"/load/{sample.path.name}", sample.path.read_bytes()) for sample in sample_images]
    for body, sample in zip(photo_bodies(urls), sample_images, strict=False):
        labels = {"red": "Red box" if body["project"] == "load.1" else "Crimson", "blue": "Blue"}
        assert_matches_truth(post_predict(loaded_backend.url, body)["results"][0]["result"], sample, labels)
