"""``<PolygonLabels>`` (label_studio_yolo.tags.polygon): outlines -> Label Studio's percent points, and annotated
polygons -> pixel outlines a segmentation model learns."""

from __future__ import annotations

import math
from typing import Any

import pytest

from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import Detection, ModelOutput, RotatedBox
from label_studio_yolo.label_config import ControlSpec, parse_label_config
from label_studio_yolo.tags import PolygonLabelsControl, supported_controls
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.tags.polygon import PolygonRegion
from label_studio_yolo.training.plan import TrainingPlan

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="outline" toName="image" model_score_threshold="0.5">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </PolygonLabels>
</View>"""

SIZE = ImageSize(200, 100)
TRIANGLE = ((20.0, 10.0), (120.0, 10.0), (70.0, 90.0))
"""A triangle in pixels; in percent of SIZE it is (10, 10), (60, 10), (35, 90)."""


@pytest.fixture(scope="module")
def spec() -> ControlSpec:
    return parse_label_config(CONFIG, 0.25, supported_controls())[0]


def annotation_item(points: list[list[float]], label: str = "Red box") -> dict[str, Any]:
    """A polygon as Label Studio exports it in an annotation's ``result``."""
    return {
        "id": "p1",
        "from_name": "outline",
        "to_name": "image",
        "type": "polygonlabels",
        "original_width": SIZE.width,
        "original_height": SIZE.height,
        "value": {"points": points, "closed": True, "polygonlabels": [label]},
    }


def learnt(spec: ControlSpec, *items: dict[str, Any]) -> list[LabelledObject]:
    regions = [PolygonLabelsControl.read_region(item, item["value"]["polygonlabels"][0]) for item in items]
    return PolygonLabelsControl.training_objects(TrainingPlan("segment", spec), regions, SIZE)


def flat(points: Any) -> list[float]:
    return [float(c) for point in points for c in point]


# ------------------------------------------------------------------------------------------------------ predicting


def test_a_segmentation_outline_becomes_a_polygon_region_in_percent(spec, segment_weights) -> None:
    (region,) = PolygonLabelsControl(spec, segment_weights).regions(
        ModelOutput(SIZE, [Detection("red", 0.8, 20, 10, 120, 90, TRIANGLE, index=4)])
    )

    assert (region["id"], region["from_name"], region["to_name"], region["type"]) == (
        "outline-4",
        "outline",
        "image",
        "polygonlabels",
    )
    assert region["value"]["polygonlabels"] == ["Red box"]
    assert flat(region["value"]["points"]) == pytest.approx([10, 10, 60, 10, 35, 90])
    assert (region["score"], region["original_width"], region["original_height"]) == (0.8, 200, 100)


def test_outline_points_past_the_image_edge_are_clipped_to_it(spec, segment_weights) -> None:
    outline = ((-20.0, 10.0), (250.0, 10.0), (100.0, 130.0))

    (region,) = PolygonLabelsControl(spec, segment_weights).regions(
        ModelOutput(SIZE, [Detection("blue", 0.9, -20, 10, 250, 130, outline)])
    )

    assert flat(region["value"]["points"]) == pytest.approx([0, 10, 100, 10, 50, 100])


def test_an_obb_model_s_rotated_box_is_outlined_by_its_four_corners(spec, obb_weights) -> None:
    rotated = RotatedBox(100, 50, 60, 20, math.pi / 2)

    (region,) = PolygonLabelsControl(spec, obb_weights).regions(
        ModelOutput(SIZE, [Detection("blue", 0.9, 90, 20, 110, 80, rotated=rotated)])
    )

    # corners (110, 20), (110, 80), (90, 80), (90, 20) in pixels
    assert flat(region["value"]["points"]) == pytest.approx([55, 20, 55, 80, 45, 80, 45, 20])


def test_an_outline_of_fewer_than_three_points_gives_no_region(spec, segment_weights) -> None:
    detections = [
        Detection("red", 0.9, 20, 10, 30, 10, ((20.0, 10.0), (30.0, 10.0))),  # a sliver of a mask
        Detection("red", 0.49, 20, 10, 120, 90, TRIANGLE),  # below the threshold
        Detection("green", 0.99, 20, 10, 120, 90, TRIANGLE),  # no label claims it
    ]

    assert PolygonLabelsControl(spec, segment_weights).regions(ModelOutput(SIZE, detections)) == []


# -------------------------------------------------------------------------------------------------------- learning


def test_read_region_keeps_the_percent_points() -> None:
    region = PolygonLabelsControl.read_region(annotation_item([[10, 10], [60, 10.5], [35, 90]]), "Red box")

    assert region == PolygonRegion("outline", "Red box", ((10.0, 10.0), (60.0, 10.5), (35.0, 90.0)))


def test_annotated_percent_points_become_a_pixel_outline_with_its_bounds(spec) -> None:
    (item,) = learnt(spec, annotation_item([[10, 10], [60, 10], [35, 90]]))

    assert item.label == "Red box"
    assert flat(item.outline) == pytest.approx(flat(TRIANGLE))
    assert item.box == pytest.approx((20, 10, 120, 90))


def test_annotated_points_past_the_image_edge_are_clipped_to_it(spec) -> None:
    (item,) = learnt(spec, annotation_item([[-5, 10], [110, 10], [50, 120]]))

    assert flat(item.outline) == pytest.approx([0, 10, 200, 10, 100, 100])
    assert item.box == pytest.approx((0, 10, 200, 100))


def test_a_polygon_of_fewer_than_three_points_or_of_a_removed_label_is_left_out(spec) -> None:
    objects = learnt(
        spec,
        annotation_item([[10, 10], [60, 10]]),
        annotation_item([[10, 10], [60, 10], [35, 90]], label="Dog"),
        annotation_item([[50, 50], [60, 50], [60, 60]], label="Blue"),
    )

    assert [(o.label, o.box) for o in objects] == [("Blue", pytest.approx((100, 50, 120, 60)))]


def test_a_predicted_polygon_accepted_as_an_annotation_gives_back_the_model_s_outline(spec, segment_weights) -> None:
    (region,) = PolygonLabelsControl(spec, segment_weights).regions(
        ModelOutput(SIZE, [Detection("blue", 0.8, 20, 10, 120, 90, TRIANGLE)])
    )

    (item,) = PolygonLabelsControl.training_objects(
        TrainingPlan("segment", spec), [PolygonLabelsControl.read_region(region, "Blue")], SIZE
    )

    assert item.label == "Blue"
    assert flat(item.outline) == pytest.approx(flat(TRIANGLE))
