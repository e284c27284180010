"""Turning pixel boxes into Label Studio regions: percent geometry, region JSON, and which detections are kept."""

from __future__ import annotations

import math

import pytest

from conftest import BOXES_CONFIG
from label_studio_yolo.geometry import (
    ImageSize,
    rectangle_percent,
    rotated_corners,
    rotated_rectangle_percent,
)
from label_studio_yolo.inference.outputs import ClassScore, Detection, ModelOutput
from label_studio_yolo.inference.weights import load_weights
from label_studio_yolo.label_config import ControlSpec, parse_label_config
from label_studio_yolo.tags import (
    ChoicesControl,
    PolygonLabelsControl,
    RectangleLabelsControl,
    control_for,
    supported_controls,
)
from label_studio_yolo.tags.base import build_region

SIZE = ImageSize(width=200, height=100)


@pytest.fixture
def spec() -> ControlSpec:
    return parse_label_config(BOXES_CONFIG, default_threshold=0.25)[0]  # model_score_threshold=0.4


def test_rectangle_percent_uses_width_for_x_and_height_for_y():
    box = rectangle_percent(20, 10, 120, 60, SIZE)

    assert box == pytest.approx({"x": 10.0, "y": 10.0, "width": 50.0, "height": 50.0, "rotation": 0})


def test_rectangle_percent_clips_boxes_past_the_image_edges():
    box = rectangle_percent(-30, -5, 250, 130, SIZE)

    assert box == pytest.approx({"x": 0.0, "y": 0.0, "width": 100.0, "height": 100.0, "rotation": 0})


def test_rectangle_percent_of_box_entirely_outside_has_no_negative_size():
    box = rectangle_percent(210, 105, 260, 150, SIZE)

    assert 0.0 <= box["x"] <= 100.0 and 0.0 <= box["y"] <= 100.0
    assert box["width"] >= 0.0 and box["height"] >= 0.0
    assert box["x"] + box["width"] <= 100.0 and box["y"] + box["height"] <= 100.0


def test_build_region_has_everything_label_studio_needs(spec):
    region = build_region(spec, "Blue", rectangle_percent(20, 10, 120, 60, SIZE), 0.876543, SIZE)

    assert region["from_name"] == "label"
    assert region["to_name"] == "image"
    assert region["type"] == "rectanglelabels"
    assert region["value"]["rectanglelabels"] == ["Blue"]
    assert region["value"]["x"] == pytest.approx(10.0)
    assert region["value"]["width"] == pytest.approx(50.0)
    assert region["score"] == pytest.approx(0.8765)
    assert (region["original_width"], region["original_height"]) == (200, 100)


def test_build_region_refuses_a_label_missing_from_the_config(spec):
    with pytest.raises(ValueError, match="not defined in labeling config"):
        build_region(spec, "Dog", rectangle_percent(0, 0, 10, 10, SIZE), 0.9, SIZE)


@pytest.fixture(scope="module")
def weights(model_root):
    return load_weights(model_root, "boxes.pt")


def test_control_for_picks_the_rectangle_control(spec, weights):
    assert isinstance(control_for(spec, weights), RectangleLabelsControl)


def test_rectangle_control_keeps_claimed_classes_at_or_above_threshold(spec, weights):
    detections = [
        Detection("red", 0.9, 20, 10, 120, 60),
        Detection("blue", 0.4, 0, 0, 50, 50),  # exactly at the threshold: kept
        Detection("blue", 0.39, 0, 0, 50, 50),  # below the threshold
        Detection("green", 0.99, 0, 0, 50, 50),  # no label claims it
    ]

    regions = RectangleLabelsControl(spec, weights).regions(ModelOutput(SIZE, detections))

    assert [(r["value"]["rectanglelabels"], r["score"]) for r in regions] == [(["Red box"], 0.9), (["Blue"], 0.4)]
    assert regions[0]["value"]["x"] == pytest.approx(10.0)
    assert regions[0]["value"]["height"] == pytest.approx(50.0)


def test_rectangle_control_returns_nothing_when_all_detections_are_dropped(spec, weights):
    detections = [Detection("red", 0.1, 0, 0, 10, 10), Detection("person", 0.95, 0, 0, 10, 10)]

    assert RectangleLabelsControl(spec, weights).regions(ModelOutput(SIZE, detections)) == []


POLYGON_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="outline" toName="image" model_score_threshold="0.5">
    <Label value="Red box" predicted_values="red"/>
  </PolygonLabels>
</View>"""


def test_polygon_control_gives_the_outline_in_percent(weights):
    spec = parse_label_config(POLYGON_CONFIG, 0.25, supported_controls())[0]
    outline = ((20.0, 10.0), (120.0, 10.0), (70.0, 90.0))
    output = ModelOutput(SIZE, [Detection("red", 0.8, 20, 10, 120, 90, outline), Detection("red", 0.3, 0, 0, 5, 5)])

    regions = PolygonLabelsControl(spec, weights).regions(output)

    assert len(regions) == 1
    assert regions[0]["type"] == "polygonlabels"
    assert regions[0]["value"]["polygonlabels"] == ["Red box"]
    assert regions[0]["value"]["points"] == [[10.0, 10.0], [60.0, 10.0], [35.0, 90.0]]


def test_polygon_control_uses_box_corners_from_a_detection_model(weights):
    spec = parse_label_config(POLYGON_CONFIG, 0.25, supported_controls())[0]

    regions = PolygonLabelsControl(spec, weights).regions(ModelOutput(SIZE, [Detection("red", 0.8, 20, 10, 120, 60)]))

    assert regions[0]["value"]["points"] == [[10.0, 10.0], [60.0, 10.0], [60.0, 60.0], [10.0, 60.0]]


def choices_spec(multiple: bool):
    choice = ' choice="multiple"' if multiple else ""
    config = f"""<View><Image name="image" value="$image"/>
      <Choices name="kind" toName="image" model_score_threshold="0.2"{choice}>
        <Choice value="Reddish" predicted_values="red"/><Choice value="Blue"/><Choice value="Green"/>
      </Choices></View>"""
    return parse_label_config(config, 0.5, supported_controls())[0]


CLASS_SCORES = ModelOutput(SIZE, classes=[ClassScore("blue", 0.6), ClassScore("red", 0.3), ClassScore("green", 0.1)])


def test_single_choice_takes_the_best_class_above_threshold(weights):
    regions = ChoicesControl(choices_spec(multiple=False), weights).regions(CLASS_SCORES)

    assert [(r["type"], r["value"]["choices"], r["score"]) for r in regions] == [("choices", ["Blue"], 0.6)]
    assert "original_width" not in regions[0]


def test_multiple_choice_takes_every_class_above_threshold(weights):
    regions = ChoicesControl(choices_spec(multiple=True), weights).regions(CLASS_SCORES)

    assert regions[0]["value"]["choices"] == ["Blue", "Reddish"]


def test_choices_give_no_region_when_no_class_passes(weights):
    low = ModelOutput(SIZE, classes=[ClassScore("blue", 0.1), ClassScore("red", 0.05)])

    assert ChoicesControl(choices_spec(multiple=True), weights).regions(low) == []


@pytest.mark.parametrize("angle_degrees", [0, 17, 45, 80, 135, 260])
def test_rotated_rectangle_puts_label_studio_corners_on_the_rotated_box(angle_degrees: float) -> None:
    angle = math.radians(angle_degrees)
    value = rotated_rectangle_percent(100, 50, 60, 20, angle, SIZE)  # SIZE is not square: percents differ per axis
    x, y = value["x"] / 100 * SIZE.width, value["y"] / 100 * SIZE.height
    w, h = value["width"] / 100 * SIZE.width, value["height"] / 100 * SIZE.height
    turn = math.radians(value["rotation"])
    across, down = (w * math.cos(turn), w * math.sin(turn)), (-h * math.sin(turn), h * math.cos(turn))
    label_studio_corners = [
        (x, y),
        (x + across[0], y + across[1]),
        (x + across[0] + down[0], y + across[1] + down[1]),
        (x + down[0], y + down[1]),
    ]
    for (ax, ay), (bx, by) in zip(label_studio_corners, rotated_corners(100, 50, 60, 20, angle), strict=True):
        assert ax == pytest.approx(bx, abs=1e-6) and ay == pytest.approx(by, abs=1e-6)
    assert 0 <= value["rotation"] < 360
