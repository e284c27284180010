"""Turning pixel boxes into Label Studio regions: percent geometry, region JSON, and which detections are kept."""

from __future__ import annotations

import pytest

from conftest import BOXES_CONFIG
from label_studio_yolo.controls import RectangleLabelsControl, control_for
from label_studio_yolo.inference import Detection
from label_studio_yolo.label_config import ControlSpec, parse_label_config
from label_studio_yolo.regions import ImageSize, build_region, rectangle_percent

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


def test_control_for_picks_the_rectangle_control(spec):
    assert isinstance(control_for(spec), RectangleLabelsControl)


def test_rectangle_control_keeps_claimed_classes_at_or_above_threshold(spec):
    detections = [
        Detection("red", 0.9, 20, 10, 120, 60),
        Detection("blue", 0.4, 0, 0, 50, 50),  # exactly at the threshold: kept
        Detection("blue", 0.39, 0, 0, 50, 50),  # below the threshold
        Detection("green", 0.99, 0, 0, 50, 50),  # no label claims it
    ]

    regions = RectangleLabelsControl(spec).regions(detections, SIZE)

    assert [(r["value"]["rectanglelabels"], r["score"]) for r in regions] == [(["Red box"], 0.9), (["Blue"], 0.4)]
    assert regions[0]["value"]["x"] == pytest.approx(10.0)
    assert regions[0]["value"]["height"] == pytest.approx(50.0)


def test_rectangle_control_returns_nothing_when_all_detections_are_dropped(spec):
    detections = [Detection("red", 0.1, 0, 0, 10, 10), Detection("person", 0.95, 0, 0, 10, 10)]

    assert RectangleLabelsControl(spec).regions(detections, SIZE) == []
