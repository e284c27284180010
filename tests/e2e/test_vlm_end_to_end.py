"""End to end through a vision-language model: the backend under gunicorn answers /predict, and
``label-studio-yolo predict`` fills a real Label Studio project.

One config, two box tags on the same image: one zero-shot (the model alone), one refined (YOLO's boxes, relabelled
by the model's answer for each crop). The model is the local OpenAI-compatible test server that reads the colours
of the test images (:mod:`tests.support.vlm_server`). We assert the regions a user gets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import SampleImage
from label_studio_yolo.cli import EXIT_OK, main
from label_studio_yolo.vlm.stages import ANSWERS
from tests.e2e.conftest import LabelStudioServer, backend_server
from tests.e2e.test_label_studio_predictions import pixel_box, upload_images
from tests.support.vlm_server import colour_reader, serve_vlm

pytestmark = pytest.mark.e2e

LABELS = {"red": "Crimson", "blue": "Navy"}

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="seen" toName="image" vlm="zero-shot">
    <Label value="Crimson"/>
    <Label value="Navy"/>
  </RectangleLabels>
  <RectangleLabels name="refined" toName="image" vlm="refine" model_score_threshold="0.4">
    <Label value="Crimson" predicted_values="red,blue"/>
    <Label value="Navy"/>
  </RectangleLabels>
</View>"""


def assert_both_tags_found(result: list[dict[str, Any]], sample: SampleImage) -> None:
    for tag, min_iou in (("seen", 0.85), ("refined", 0.7)):
        regions = [region for region in result if region["from_name"] == tag]
        assert len(regions) == len(sample.truth), (tag, regions)
        for truth in sample.truth:
            best = max(regions, key=lambda region: truth.iou(*pixel_box(region)))
            assert truth.iou(*pixel_box(best)) >= min_iou, (tag, truth)
            assert best["value"]["rectanglelabels"] == [LABELS[truth.label]], (tag, truth)


def test_the_backend_under_gunicorn_answers_with_both_tags(
    model_root: Path, sample_images: list[SampleImage], tmp_path: Path
) -> None:
    ANSWERS.clear()
    tasks = [{"id": n, "data": {"image": sample.data_uri()}} for n, sample in enumerate(sample_images[:3])]
    body = {"project": "vlm.1", "label_config": CONFIG, "tasks": tasks}
    with serve_vlm(colour_reader(LABELS)) as server:
        settings = {"VLM_BASE_URL": server.base_url, "VLM_MODEL": "colour-reader", "VLM_API_KEY": "sk-e2e-7a1b"}
        with backend_server(model_root, tmp_path, **settings) as backend:
            setup = requests.post(f"{backend.url}/setup", json={"project": "vlm.1", "schema": CONFIG}, timeout=60)
            answer = requests.post(f"{backend.url}/predict", json=body, timeout=120)
            log = backend.log.read_text()

    assert setup.json()["model_version"].endswith("+vlm-colour-reader")
    for result, sample in zip(answer.json()["results"], sample_images, strict=False):
        assert_both_tags_found(result["result"], sample)
    assert len(server.questions) == 3 * (1 + 2)
    assert "sk-e2e-7a1b" not in log


def test_the_bulk_command_stores_zero_shot_and_refined_boxes(
    label_studio: LabelStudioServer,
    personal_access_token: str,
    backend_env: Path,
    sample_images: list[SampleImage],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = label_studio.client.projects.create(title="VLM bulk", label_config=CONFIG)
    ids = upload_images(label_studio, project.id, sample_images[:4])
    samples = {ids[sample.path.name]: sample for sample in sample_images[:4]}
    ANSWERS.clear()
    with serve_vlm(colour_reader(LABELS)) as server:
        monkeypatch.setenv("VLM_BASE_URL", server.base_url)
        monkeypatch.setenv("VLM_MODEL", "colour-reader")
        code = main(
            ["predict", "--url", label_studio.url, "--api-key", personal_access_token, "--project", str(project.id)]
        )

    assert code == EXIT_OK, capsys.readouterr().out
    assert len(server.questions) == 4 * (1 + 2), "per task: one zero-shot question, one per YOLO box"
    stored = list(label_studio.client.predictions.list(project=project.id))
    assert sorted(prediction.task for prediction in stored) == sorted(samples)
    for prediction in stored:
        assert prediction.model_version.endswith("+vlm-colour-reader")
        assert_both_tags_found(prediction.result, samples[prediction.task])
