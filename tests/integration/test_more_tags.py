"""Polygons from a segmentation model, choices from a classification model, and all tags in one request.

Each tag names its own weights with ``model_path``; the models are tiny ones trained here on synthetic images
(boxes as masks for segmentation, the colour of an image's boxes for classification), checked against the
images' known ground truth through the Flask app.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from conftest import SampleImage
from tests.support.synthetic import draw_image

ALL_TAGS_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image" model_score_threshold="0.4">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </RectangleLabels>
  <PolygonLabels name="outline" toName="image" model_score_threshold="0.5" model_path="boxes-seg.pt">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </PolygonLabels>
  <Choices name="colour" toName="image" model_path="colours-cls.pt" model_score_threshold="0.5">
    <Choice value="Mostly red" predicted_values="red"/>
    <Choice value="Mostly blue" predicted_values="blue"/>
  </Choices>
</View>"""


@pytest.fixture(autouse=True)
def _models_present(task_models: Path) -> None:
    """Every test here needs the segmentation and classification weights in MODEL_ROOT."""


@pytest.fixture(scope="module")
def one_colour_images(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, SampleImage]]:
    folder = tmp_path_factory.mktemp("one-colour")
    rng = random.Random(7)
    images = []
    for index, colour in enumerate(["red", "blue", "red", "blue"]):
        path = folder / f"{colour}{index}.png"
        images.append((colour, SampleImage(path, draw_image(path, rng, labels=[colour, colour]))))
    return images


def predict_one(client: FlaskClient, sample: SampleImage) -> list[dict]:
    body = {
        "tasks": [{"id": 1, "data": {"image": sample.data_uri()}}],
        "project": "30.1",
        "label_config": ALL_TAGS_CONFIG,
    }
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.json
    return response.json["results"][0]["result"]


def outline_box(region: dict) -> tuple[float, float, float, float]:
    """The pixel bounding box of a polygon region."""
    xs = [x / 100 * region["original_width"] for x, _ in region["value"]["points"]]
    ys = [y / 100 * region["original_height"] for _, y in region["value"]["points"]]
    return min(xs), min(ys), max(xs), max(ys)


def test_polygons_follow_the_objects_of_a_segmentation_model(client, sample_images) -> None:
    labels = {"red": "Red box", "blue": "Blue"}
    for sample in sample_images[:3]:
        outlines = [r for r in predict_one(client, sample) if r["from_name"] == "outline"]
        for truth in sample.truth:  # every object is outlined, with its label
            best = max(outlines, key=lambda region: truth.iou(*outline_box(region)))
            assert truth.iou(*outline_box(best)) >= 0.6
            assert best["value"]["polygonlabels"] == [labels[truth.label]]
            assert len(best["value"]["points"]) >= 4
        for outline in outlines:  # and nothing is outlined where there is no object of that label
            label = outline["value"]["polygonlabels"][0]
            assert any(t.iou(*outline_box(outline)) >= 0.3 for t in sample.truth if labels[t.label] == label)


def test_choices_come_from_a_classification_model(client, one_colour_images) -> None:
    for colour, sample in one_colour_images:
        choices = [r for r in predict_one(client, sample) if r["from_name"] == "colour"]
        assert [r["value"]["choices"] for r in choices] == [[f"Mostly {colour}"]]
        assert choices[0]["type"] == "choices" and choices[0]["score"] >= 0.5


def test_all_tags_are_filled_in_one_request_with_one_version_naming_every_model(client, sample_images) -> None:
    version = client.post("/setup", json={"project": "30.1", "schema": ALL_TAGS_CONFIG}).json["model_version"]
    assert [part.split("-")[0] for part in version.split("+")] == ["boxes", "boxes", "colours"]
    result = predict_one(client, sample_images[5])
    assert {r["from_name"] for r in result} == {"box", "outline", "colour"}
