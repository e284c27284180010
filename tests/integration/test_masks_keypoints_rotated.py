"""Brush masks, keypoints and rotated boxes, checked against the synthetic images' known ground truth.

The tiny segmentation, pose and OBB models (see ``TASK_MODELS`` in conftest) are served through the real Flask app;
every region Label Studio would store is converted back to pixels and compared with what was drawn.
"""

from __future__ import annotations

import base64
import math
import random
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from label_studio_sdk.converter.brush import decode_rle
from PIL import Image, ImageDraw

from tests.support.synthetic import GroundTruthRotatedBox, draw_rotated_image

BRUSH_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image" model_path="boxes-seg.pt" model_score_threshold="0.5">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </BrushLabels>
</View>"""

KEYPOINTS_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="figure" toName="image" model_path="boxes-pose.pt" model_score_threshold="0.3">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </RectangleLabels>
  <KeyPointLabels name="points" toName="image" model_path="boxes-pose.pt" model_score_threshold="0.3"
                  model_point_threshold="0.5">
    <Label value="Top" model_index="0" predicted_values="red,blue"/>
    <Label value="Bottom" predicted_values="1"/>
    <Label value="Top of red" model_index="0" predicted_values="red"/>
  </KeyPointLabels>
</View>"""

ROTATED_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image" model_path="boxes-obb.pt" model_score_threshold="0.4">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </RectangleLabels>
  <PolygonLabels name="corners" toName="image" model_path="boxes-obb.pt" model_score_threshold="0.4">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </PolygonLabels>
</View>"""

LABELS = {"red": "Red box", "blue": "Blue"}


@pytest.fixture(autouse=True)
def _models_present(task_models: Path) -> None:
    """Every test here needs the segmentation, pose and OBB weights in MODEL_ROOT."""


def predict(client: FlaskClient, config: str, image: Path, project: str = "40.1") -> list[dict]:
    data_uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    body = {"tasks": [{"id": 1, "data": {"image": data_uri}}], "project": project, "label_config": config}
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.json
    return response.json["results"][0]["result"]


def polygon_mask(points: list[tuple[float, float]], size: tuple[int, int]) -> np.ndarray:
    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).polygon(points, fill=1)
    return np.asarray(canvas, dtype=bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def brush_mask(region: dict) -> np.ndarray:
    """A brush region's mask, decoded with label-studio-sdk as Label Studio would."""
    height, width = region["original_height"], region["original_width"]
    return np.asarray(decode_rle(region["value"]["rle"])).reshape(height, width, 4)[..., 3] > 0


def test_brush_masks_cover_the_objects_of_a_segmentation_model(client, sample_images) -> None:
    for sample in sample_images[:3]:
        size = Image.open(sample.path).size
        regions = predict(client, BRUSH_CONFIG, sample.path)
        assert {r["type"] for r in regions} == {"brushlabels"}
        for truth in sample.truth:
            truth_mask = polygon_mask(
                [
                    (truth.x0, truth.y0),
                    (truth.x1 - 1, truth.y0),
                    (truth.x1 - 1, truth.y1 - 1),
                    (truth.x0, truth.y1 - 1),
                ],
                size,
            )
            best = max(regions, key=lambda region: mask_iou(brush_mask(region), truth_mask))
            assert mask_iou(brush_mask(best), truth_mask) >= 0.75
            assert best["value"]["brushlabels"] == [LABELS[truth.label]]
            assert best["value"]["format"] == "rle"


def test_brush_labels_with_a_detection_model_is_refused_with_the_xml_that_fixes_it(client, sample_images) -> None:
    config = BRUSH_CONFIG.replace(' model_path="boxes-seg.pt"', "")
    response = client.post("/setup", json={"project": "41.1", "schema": config})
    assert response.status_code == 400
    message = str(response.json)
    assert "needs a segment model" in message and "boxes.pt is a detect model" in message
    assert 'model_path="yolo11n-seg.pt"' in message


def test_keypoints_land_on_the_objects_with_their_boxes_as_parents(client, sample_images) -> None:
    for sample in sample_images[:4]:
        regions = predict(client, KEYPOINTS_CONFIG, sample.path)
        boxes = {r["id"]: r for r in regions if r["type"] == "rectanglelabels"}
        points = [r for r in regions if r["type"] == "keypointlabels"]
        width, height = Image.open(sample.path).size
        for truth in sample.truth:
            expected = {"Top": truth.keypoints()[0], "Bottom": truth.keypoints()[1]}
            if truth.label == "red":
                expected["Top of red"] = truth.keypoints()[0]
            for label, (x, y) in expected.items():
                near = [
                    p
                    for p in points
                    if p["value"]["keypointlabels"] == [label]
                    and math.hypot(p["value"]["x"] / 100 * width - x, p["value"]["y"] / 100 * height - y) <= 8
                ]
                assert near, (label, truth)
                for point in near:  # each point sits in its object's box, with that box's score
                    parent = boxes[point["parentID"]]
                    assert parent["value"]["rectanglelabels"] == [LABELS[truth.label]]
                    assert point["score"] == parent["score"]
        red_only = [boxes[p["parentID"]] for p in points if p["value"]["keypointlabels"] == ["Top of red"]]
        assert red_only and all(box["value"]["rectanglelabels"] == ["Red box"] for box in red_only)


def test_point_threshold_and_score_threshold_filter_keypoints(client, sample_images) -> None:
    no_points = KEYPOINTS_CONFIG.replace('model_point_threshold="0.5"', 'model_point_threshold="1"')
    regions = predict(client, no_points, sample_images[0].path, project="42.1")
    assert [r for r in regions if r["type"] == "keypointlabels"] == []
    assert len([r for r in regions if r["type"] == "rectanglelabels"]) >= 2  # the boxes stay
    no_objects = KEYPOINTS_CONFIG.replace('model_score_threshold="0.3"\n', 'model_score_threshold="0.99"\n')
    regions = predict(client, no_objects, sample_images[0].path, project="43.1")
    assert [r for r in regions if r["type"] == "keypointlabels"] == []


def test_keypoints_alone_have_no_parent(client, sample_images) -> None:
    config = (
        KEYPOINTS_CONFIG.split("<RectangleLabels")[0] + "<KeyPointLabels" + KEYPOINTS_CONFIG.split("<KeyPointLabels")[1]
    )
    regions = predict(client, config, sample_images[1].path, project="44.1")
    assert len(regions) >= 5 and {r["type"] for r in regions} == {"keypointlabels"}
    assert all("parentID" not in region for region in regions)


def rectangle_corners(region: dict) -> list[tuple[float, float]]:
    """A Label Studio rectangle (rotated about its top-left corner) as four pixel corners."""
    value, width, height = region["value"], region["original_width"], region["original_height"]
    x, y = value["x"] / 100 * width, value["y"] / 100 * height
    w, h = value["width"] / 100 * width, value["height"] / 100 * height
    cos, sin = math.cos(math.radians(value["rotation"])), math.sin(math.radians(value["rotation"]))
    return [
        (x, y),
        (x + w * cos, y + w * sin),
        (x + w * cos - h * sin, y + w * sin + h * cos),
        (x - h * sin, y + h * cos),
    ]


@pytest.fixture(scope="module")
def rotated_samples(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, list[GroundTruthRotatedBox]]]:
    folder, rng = tmp_path_factory.mktemp("rotated"), random.Random(4321)
    return [
        (folder / f"r{i}.png", draw_rotated_image(folder / f"r{i}.png", rng, labels=["red", "blue"])) for i in range(4)
    ]


def test_rotated_boxes_from_an_obb_model_match_the_drawn_rectangles(client, rotated_samples) -> None:
    rotations, overlaps = [], []
    for path, truths in rotated_samples:
        size = Image.open(path).size
        regions = predict(client, ROTATED_CONFIG, path)
        boxes = [r for r in regions if r["type"] == "rectanglelabels"]
        corners = [r for r in regions if r["type"] == "polygonlabels"]
        for truth in truths:
            truth_mask = polygon_mask(truth.corners(), size)
            best = max(boxes, key=lambda r: mask_iou(polygon_mask(rectangle_corners(r), size), truth_mask))
            overlaps.append(mask_iou(polygon_mask(rectangle_corners(best), size), truth_mask))
            assert best["value"]["rectanglelabels"] == [LABELS[truth.label]]
            rotations.append(best["value"]["rotation"])
            points = [[(x / 100 * size[0], y / 100 * size[1]) for x, y in r["value"]["points"]] for r in corners]
            assert max(mask_iou(polygon_mask(p, size), truth_mask) for p in points) >= 0.6
    # The tiny OBB model is good, not perfect (its longest boxes come out short); an axis-aligned box around a thin
    # rectangle at 45 degrees would overlap it by less than 0.4.
    assert min(overlaps) >= 0.6 and sum(overlaps) / len(overlaps) >= 0.8, overlaps
    assert any(5 < rotation % 90 < 85 for rotation in rotations)  # really rotated, not axis-aligned boxes


EVERY_IMAGE_TAG_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image" model_score_threshold="0.4">
    <Label value="Red box" predicted_values="red"/>
  </RectangleLabels>
  <RectangleLabels name="rotated" toName="image" model_path="boxes-obb.pt" model_score_threshold="0.3">
    <Label value="Red box" predicted_values="red"/>
  </RectangleLabels>
  <PolygonLabels name="outline" toName="image" model_path="boxes-seg.pt">
    <Label value="Blue"/>
  </PolygonLabels>
  <BrushLabels name="mask" toName="image" model_path="boxes-seg.pt">
    <Label value="Blue"/>
  </BrushLabels>
  <KeyPointLabels name="points" toName="image" model_path="boxes-pose.pt">
    <Label value="Top"/>
    <Label value="Bottom"/>
  </KeyPointLabels>
  <Choices name="colour" toName="image" model_path="colours-cls.pt" model_score_threshold="0">
    <Choice value="red"/>
    <Choice value="blue"/>
  </Choices>
</View>"""


def test_every_image_tag_is_filled_in_one_request(client, sample_images) -> None:
    response = client.post("/setup", json={"project": "45.1", "schema": EVERY_IMAGE_TAG_CONFIG})
    assert response.status_code == 200, response.json
    regions = predict(client, EVERY_IMAGE_TAG_CONFIG, sample_images[2].path, project="45.1")
    types = {r["from_name"]: r["type"] for r in regions}
    assert types == {
        "box": "rectanglelabels",
        "rotated": "rectanglelabels",
        "outline": "polygonlabels",
        "mask": "brushlabels",
        "points": "keypointlabels",
        "colour": "choices",
    }
    assert len([r for r in regions if r["from_name"] == "points"]) >= 4  # top and bottom of both boxes


def test_a_point_threshold_outside_0_to_1_fails_setup_with_corrected_xml(client) -> None:
    config = KEYPOINTS_CONFIG.replace('model_point_threshold="0.5"', 'model_point_threshold="high"')
    response = client.post("/setup", json={"project": "46.1", "schema": config})
    assert response.status_code == 400
    assert 'model_point_threshold="high"' in str(response.json) and 'model_point_threshold="0.25"' in str(response.json)
