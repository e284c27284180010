"""Images of the next tasks download while a task is predicted, a bounded number ahead, failures staying with their
task. Real HTTP against a local file server."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BOXES_CONFIG, SampleImage
from label_studio_yolo.errors import MediaError
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from label_studio_yolo.media.prefetch import PREFETCH_AHEAD, MediaPrefetcher
from label_studio_yolo.prediction.project import build_project_predictor
from label_studio_yolo.settings import BackendSettings
from tests.support.image_server import serve_files
from tests.support.waiting import eventually


def test_the_next_images_are_requested_while_the_first_task_is_predicted(
    backend_env: Path, sample_images: list[SampleImage]
) -> None:
    predictor = build_project_predictor(BOXES_CONFIG, project_id=1, settings=BackendSettings(inference_lanes=1))
    with serve_files() as storage:
        urls = [storage.add(f"/images/{n}.png", sample_images[n % 6].path.read_bytes()) for n in range(12)]
        tasks = [{"id": n, "data": {"image": url}} for n, url in enumerate(urls)]
        outcomes = predictor.attempt_all(tasks)

        first = next(outcomes)
        assert first.prediction and first.prediction["result"]
        assert eventually(lambda: len(storage.requests) >= 1 + PREFETCH_AHEAD), storage.requests
        assert len(storage.requests) <= 2 + PREFETCH_AHEAD, "downloads stay a bounded number ahead"
        rest = list(outcomes)

    assert [outcome.task_id for outcome in rest] == list(range(1, 12))
    assert all(outcome.prediction and outcome.prediction["result"] for outcome in rest)
    assert sorted(path for path, _ in storage.requests) == sorted(f"/images/{n}.png" for n in range(12)), "each once"


def test_a_failed_download_fails_its_task_only(backend_env: Path, sample_images: list[SampleImage]) -> None:
    predictor = build_project_predictor(BOXES_CONFIG, project_id=1, settings=BackendSettings())
    with serve_files() as storage:
        good = storage.add("/images/good.png", sample_images[0].path.read_bytes())
        tasks = [
            {"id": 1, "data": {"image": storage.url + "/images/missing.png"}},
            {"id": 2, "data": {"image": good}},
            {"id": 3, "data": {}},
            {"id": 4, "data": {"image": good}},
        ]
        outcomes = list(predictor.attempt_all(tasks))

    assert outcomes[0].prediction is None and "404" in (outcomes[0].error or "")
    assert outcomes[2].prediction is None and "no 'image' key" in (outcomes[2].error or "")
    assert outcomes[1].prediction and outcomes[3].prediction and outcomes[1].prediction == outcomes[3].prediction


def test_an_unannounced_image_is_loaded_directly(sample_images: list[SampleImage]) -> None:
    loader = ImageLoader(MediaSettings())
    with MediaPrefetcher(loader, [[sample_images[0].data_uri()]]) as images:
        assert images.of_task(0).load_pixels(sample_images[1].data_uri()).shape == (144, 192, 3)
        assert images.of_task(0).load_pixels(sample_images[0].data_uri()).shape == (144, 192, 3)


@pytest.mark.parametrize("value", ["", None, 7])
def test_values_that_are_not_urls_get_the_loaders_clear_error(value) -> None:
    with MediaPrefetcher(ImageLoader(MediaSettings()), [[value]]) as images, pytest.raises(MediaError) as raised:
        images.of_task(0).load_pixels(value)
    assert "is not an image URL or path" in str(raised.value)
