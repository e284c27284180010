"""End to end: polygons, choices and keypoints (with their parent boxes) stored by a real Label Studio 1.23.

One project whose config has four tags, each filled by its own tiny model through ``model_path``: outlines from
the segmentation model, the image's colour from the classification model, boxes and their top/bottom keypoints
from the pose model. We assert what Label Studio stored against the images' ground truth.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import SampleImage
from tests.e2e.conftest import BackendServer, LabelStudioServer
from tests.e2e.test_label_studio_predictions import pixel_box, retrieve_predictions, stored_predictions, upload_images
from tests.integration.test_more_tags import outline_box
from tests.support.synthetic import draw_image

pytestmark = pytest.mark.e2e

TAGS_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="outline" toName="image" model_path="boxes-seg.pt" model_score_threshold="0.5">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </PolygonLabels>
  <Choices name="colour" toName="image" model_path="colours-cls.pt" model_score_threshold="0.5">
    <Choice value="Mostly red" predicted_values="red"/>
    <Choice value="Mostly blue" predicted_values="blue"/>
  </Choices>
  <RectangleLabels name="figure" toName="image" model_path="boxes-pose.pt" model_score_threshold="0.3">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </RectangleLabels>
  <KeyPointLabels name="points" toName="image" model_path="boxes-pose.pt" model_score_threshold="0.3">
    <Label value="Top" model_index="0" predicted_values="red,blue"/>
    <Label value="Bottom" model_index="1" predicted_values="red,blue"/>
  </KeyPointLabels>
</View>"""

LABELS = {"red": "Red box", "blue": "Blue"}


@pytest.fixture(scope="module")
def one_colour_samples(tmp_path_factory: pytest.TempPathFactory) -> list[SampleImage]:
    """Four images, each with two boxes of one colour (red, blue, red, blue)."""
    folder, rng = tmp_path_factory.mktemp("tags-e2e"), random.Random(2024)
    samples = []
    for index, colour in enumerate(["red", "blue", "red", "blue"]):
        path = folder / f"{colour}{index}.png"
        samples.append(SampleImage(path, draw_image(path, rng, labels=[colour, colour])))
    return samples


def assert_outlines(regions: list[dict[str, Any]], sample: SampleImage) -> None:
    outlines = [r for r in regions if r["type"] == "polygonlabels"]
    assert len(outlines) == len(sample.truth), outlines
    for truth in sample.truth:
        best = max(outlines, key=lambda region: truth.iou(*outline_box(region)))
        assert truth.iou(*outline_box(best)) >= 0.6
        assert best["value"]["polygonlabels"] == [LABELS[truth.label]]


def assert_keypoints(regions: list[dict[str, Any]], sample: SampleImage, width: int, height: int) -> None:
    boxes = {r["id"]: r for r in regions if r["type"] == "rectanglelabels"}
    points = [r for r in regions if r["type"] == "keypointlabels"]
    assert len(points) == 2 * len(sample.truth), points
    for truth in sample.truth:
        box_id = next(i for i, box in boxes.items() if truth.iou(*pixel_box(box)) >= 0.6)
        for label, (x, y) in zip(("Top", "Bottom"), truth.keypoints(), strict=True):
            point = next(p for p in points if p["parentID"] == box_id and p["value"]["keypointlabels"] == [label])
            distance = math.hypot(point["value"]["x"] / 100 * width - x, point["value"]["y"] / 100 * height - y)
            assert distance <= 6, (label, truth, point)


def test_polygons_choices_and_keypoints_are_stored_by_label_studio(
    label_studio: LabelStudioServer,
    backend: BackendServer,
    task_models: Path,
    one_colour_samples: list[SampleImage],
) -> None:
    client = label_studio.client
    project = client.projects.create(title="E2E polygons, choices, keypoints", label_config=TAGS_CONFIG)
    task_ids = upload_images(label_studio, project.id, one_colour_samples)
    client.ml.create(project=project.id, url=backend.url, title="YOLO, four models", is_interactive=False)
    body = {"project": f"{project.id}.0", "schema": TAGS_CONFIG}
    setup = requests.post(f"{backend.url}/setup", json=body, timeout=30)
    version = setup.json()["model_version"]
    assert len(version.split("+")) == 3, version  # the segmentation, classification and pose models

    retrieve_predictions(label_studio, project.id)

    for sample in one_colour_samples:
        predictions = stored_predictions(label_studio, task_ids[sample.path.name])
        assert len(predictions) == 1, f"{sample.path.name}: {predictions}"
        regions, colour = predictions[0].result, sample.truth[0].label
        assert predictions[0].model_version == version
        assert [r["value"]["choices"] for r in regions if r["type"] == "choices"] == [[f"Mostly {colour}"]]
        assert_outlines(regions, sample)
        assert_keypoints(regions, sample, regions[0]["original_width"], regions[0]["original_height"])
