"""``<KeyPointLabels>`` (label_studio_yolo.tags.keypoints): a pose model's keypoints -> point regions (with their
box as parent), and annotated keypoints -> each rectangle's keypoints, or one object around them, for a pose model."""

from __future__ import annotations

from typing import Any

import pytest

from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import Detection, Keypoint, ModelOutput
from label_studio_yolo.label_config import ControlSpec, parse_label_config
from label_studio_yolo.tags import KeyPointLabelsControl, RectangleLabelsControl, control_for, supported_controls
from label_studio_yolo.tags.base import AnnotatedRegion, LabelledObject
from label_studio_yolo.tags.keypoints import KEYPOINT_OBJECT_CLASS, KeypointRegion
from label_studio_yolo.training.plan import TrainingPlan

SIZE = ImageSize(200, 100)

BOXES = """<RectangleLabels name="label" toName="image" model_score_threshold="0.4">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </RectangleLabels>"""

POINTS = """<KeyPointLabels name="points" toName="image" model_score_threshold="0.3"{attrs}>
    <Label value="Top" model_index="0"/>
    <Label value="Bottom" model_index="1"/>
    <Label value="Top of red" model_index="0" predicted_values="red"/>
  </KeyPointLabels>"""
"""'Top' is every object's keypoint 0, 'Bottom' its keypoint 1, 'Top of red' keypoint 0 of red objects only."""


def config(*tags: str) -> str:
    return '<View><Image name="image" value="$image"/>' + "".join(tags) + "</View>"


def specs(*tags: str) -> dict[str, ControlSpec]:
    return {spec.control_type: spec for spec in parse_label_config(config(*tags), 0.25, supported_controls())}


def blue_object(score: float = 0.9, top_score: float = 0.9, bottom_score: float = 0.49, index: int = 2) -> Detection:
    """A blue object from (20, 10) to (120, 90) with its top (70, 10) and bottom (70, 90) keypoints."""
    points = (Keypoint(70, 10, top_score), Keypoint(70, 90, bottom_score))
    return Detection("blue", score, 20, 10, 120, 90, keypoints=points, index=index)


def values(regions: list[dict[str, Any]]) -> list[tuple[list[str], float, float]]:
    return [(r["value"]["keypointlabels"], r["value"]["x"], r["value"]["y"]) for r in regions]


# ------------------------------------------------------------------------------------------------------ predicting


def test_each_keypoint_above_the_point_threshold_becomes_a_percent_point_region(pose_weights) -> None:
    control = KeyPointLabelsControl(specs(POINTS.format(attrs=""))["KeyPointLabels"], pose_weights)

    (region,) = control.regions(ModelOutput(SIZE, [blue_object(score=0.35)]))  # bottom: 0.49 < 0.5 by default

    assert (region["from_name"], region["to_name"], region["type"]) == ("points", "image", "keypointlabels")
    assert values([region]) == [(["Top"], 35.0, 10.0)]
    assert (region["score"], region["original_width"], region["original_height"]) == (0.35, 200, 100)
    assert "parentID" not in region


def test_model_point_threshold_sets_how_visible_a_keypoint_must_be(pose_weights) -> None:
    control = KeyPointLabelsControl(
        specs(POINTS.format(attrs=' model_point_threshold="0.49"'))["KeyPointLabels"], pose_weights
    )

    regions = control.regions(ModelOutput(SIZE, [blue_object()]))

    assert values(regions) == [(["Top"], 35.0, 10.0), (["Bottom"], 35.0, 90.0)]


def test_an_object_below_the_score_threshold_gives_no_keypoints(pose_weights) -> None:
    control = KeyPointLabelsControl(specs(POINTS.format(attrs=""))["KeyPointLabels"], pose_weights)

    assert control.regions(ModelOutput(SIZE, [blue_object(score=0.29)])) == []


def test_a_label_restricted_to_a_class_takes_only_that_class_s_keypoints(pose_weights) -> None:
    control = KeyPointLabelsControl(specs(POINTS.format(attrs=""))["KeyPointLabels"], pose_weights)
    red = Detection("red", 0.9, 0, 0, 10, 10, keypoints=(Keypoint(10, 20, 0.9), Keypoint(10, 80, 0.1)))

    regions = control.regions(ModelOutput(SIZE, [blue_object(), red]))

    assert values(regions) == [(["Top"], 35.0, 10.0), (["Top"], 5.0, 20.0), (["Top of red"], 5.0, 20.0)]


def test_a_label_for_a_keypoint_the_model_does_not_have_gives_no_region(pose_weights) -> None:
    tag = POINTS.format(attrs="").replace('value="Bottom" model_index="1"', 'value="Bottom" model_index="5"')
    control = KeyPointLabelsControl(specs(tag)["KeyPointLabels"], pose_weights)

    assert values(control.regions(ModelOutput(SIZE, [blue_object(bottom_score=0.99)]))) == [(["Top"], 35.0, 10.0)]


def test_keypoints_name_the_box_predicted_from_the_same_weights_as_their_parent(pose_weights) -> None:
    found = specs(BOXES, POINTS.format(attrs=""))
    controls = [control_for(spec, pose_weights) for spec in found.values()]
    for control in controls:
        control.link(controls)
    boxes, points = controls
    output = ModelOutput(SIZE, [blue_object(index=2)])

    (box,) = boxes.regions(output)
    (point,) = points.regions(output)

    assert box["id"] == "label-2"
    assert point["parentID"] == "label-2"


def test_a_box_from_other_weights_is_not_a_parent(pose_weights, detect_weights) -> None:
    found = specs(BOXES, POINTS.format(attrs=""))
    boxes = RectangleLabelsControl(found["RectangleLabels"], detect_weights)
    points = KeyPointLabelsControl(found["KeyPointLabels"], pose_weights)

    points.link([boxes, points])

    assert points.parent_from_name is None
    assert "parentID" not in points.regions(ModelOutput(SIZE, [blue_object()]))[0]


def test_a_detection_model_cannot_fill_keypoints(detect_weights) -> None:
    control = KeyPointLabelsControl(specs(POINTS.format(attrs=""))["KeyPointLabels"], detect_weights)

    assert control.unusable_reason() == (
        "<KeyPointLabels> needs a pose model, but boxes.pt is a detect model. Name one for this tag, "
        'e.g. <KeyPointLabels name="points" toName="image" model_path="yolo11n-pose.pt">.'
    )


def test_labels_that_take_none_of_the_model_s_keypoints_are_refused_with_a_label_that_would(pose_weights) -> None:
    tag = '<KeyPointLabels name="points" toName="image"><Label value="Tail" model_index="5"/></KeyPointLabels>'

    reason = KeyPointLabelsControl(specs(tag)["KeyPointLabels"], pose_weights).unusable_reason()

    assert reason == (
        'No <Label> of <KeyPointLabels name="points"> takes one of the 2 keypoints of boxes-pose.pt (classes: blue, '
        'red). Give each label its keypoint, e.g. <Label value="Tail" model_index="0" predicted_values="red"/>.'
    )
    assert (
        KeyPointLabelsControl(specs(POINTS.format(attrs=""))["KeyPointLabels"], pose_weights).unusable_reason() is None
    )


# -------------------------------------------------------------------------------------------------------- learning


def rectangle(region_id: str, label: str, box: tuple[float, float, float, float]) -> dict[str, Any]:
    """A rectangle annotation item over the pixel ``box`` of SIZE."""
    x0, y0, x1, y1 = box
    value = {"x": x0 / 2, "y": y0, "width": (x1 - x0) / 2, "height": y1 - y0, "rotation": 0, "rectanglelabels": [label]}
    return {"id": region_id, "from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": value}


def point(label: str, x: float, y: float, parent: str | None = None) -> dict[str, Any]:
    """A keypoint annotation item at pixel (x, y) of SIZE."""
    item: dict[str, Any] = {
        "id": f"{label}-{x}-{y}",
        "from_name": "points",
        "to_name": "image",
        "type": "keypointlabels",
        "value": {"x": x / 2, "y": y, "width": 0.5, "keypointlabels": [label]},
    }
    if parent is not None:
        item["parentID"] = parent
    return item


def read(*items: dict[str, Any]) -> list[AnnotatedRegion]:
    readers = {"rectanglelabels": RectangleLabelsControl, "keypointlabels": KeyPointLabelsControl}
    return [readers[item["type"]].read_region(item, item["value"][item["type"]][0]) for item in items]


def learnt(*items: dict[str, Any], with_boxes: bool = True) -> list[LabelledObject]:
    found = specs(BOXES, POINTS.format(attrs=""))
    boxes = found["RectangleLabels"] if with_boxes else None
    return KeyPointLabelsControl.training_objects(
        TrainingPlan("pose", found["KeyPointLabels"], boxes), read(*items), SIZE
    )


RED = rectangle("a", "Red box", (20, 10, 120, 90))
BLUE = rectangle("b", "Blue", (140, 20, 180, 60))


def test_read_region_keeps_the_percent_point_and_its_parent() -> None:
    assert KeyPointLabelsControl.read_region(point("Top", 70, 10, parent="a"), "Top") == KeypointRegion(
        "points", "Top", 35.0, 10.0, "a"
    )
    assert KeyPointLabelsControl.read_region(point("Top", 70, 10), "Top").parent_id is None


def test_each_keypoint_goes_to_the_rectangle_containing_it_at_its_index() -> None:
    objects = learnt(RED, BLUE, point("Top", 70, 10), point("Bottom", 160, 60))

    assert objects == [
        LabelledObject("Red box", (20.0, 10.0, 120.0, 90.0), keypoints=((70.0, 10.0), None)),
        LabelledObject("Blue", (140.0, 20.0, 180.0, 60.0), keypoints=(None, (160.0, 60.0))),
    ]


def test_a_keypoint_s_parent_id_wins_over_the_rectangle_containing_it() -> None:
    red, blue = learnt(RED, BLUE, point("Top", 160, 40, parent="a"))

    assert (red.keypoints, blue.keypoints) == (((160.0, 40.0), None), (None, None))


def test_a_keypoint_in_nested_rectangles_goes_to_the_smallest() -> None:
    inner = rectangle("c", "Blue", (40, 20, 100, 80))

    outer, small = learnt(RED, inner, point("Bottom", 70, 50))

    assert (outer.keypoints, small.keypoints) == ((None, None), (None, (70.0, 50.0)))


def test_a_keypoint_just_outside_a_rectangle_edge_still_belongs_to_it() -> None:
    (red,) = learnt(RED, point("Top", 120.5, 50), point("Bottom", 70, 90.5))  # half a pixel right of / below it

    assert red.keypoints == ((120.5, 50.0), (70.0, 90.5))


def test_keypoints_outside_every_rectangle_are_left_out() -> None:
    red, blue = learnt(RED, BLUE, point("Top", 122, 50), point("Bottom", 190, 95))  # two pixels past RED's edge

    assert (red.keypoints, blue.keypoints) == ((None, None), (None, None))


def test_a_parent_id_naming_a_removed_rectangle_falls_back_to_the_containing_one() -> None:
    dog = rectangle("d", "Dog", (0, 0, 200, 100))  # its label left the config: not an object

    (red,) = learnt(dog, RED, point("Top", 70, 10, parent="d"))

    assert red.keypoints == ((70.0, 10.0), None)


def test_the_first_of_two_points_of_one_label_in_a_rectangle_is_kept_and_unknown_labels_are_ignored() -> None:
    (red,) = learnt(RED, point("Bottom", 70, 80), point("Bottom", 70, 85), point("Elbow", 30, 30))

    assert red.keypoints == (None, (70.0, 80.0))


def test_without_rectangles_all_keypoints_are_one_object_bounded_by_them_and_a_margin() -> None:
    (item,) = learnt(point("Top", 50, 20), point("Bottom", 50, 80), with_boxes=False)

    assert (item.label, item.keypoints) == (KEYPOINT_OBJECT_CLASS, ((50.0, 20.0), (50.0, 80.0)))
    assert item.box == pytest.approx((44, 14, 56, 86))  # margin: a tenth of the larger side (60 px)


def test_without_rectangles_one_keypoint_gets_a_four_pixel_margin_clipped_to_the_image() -> None:
    (middle,) = learnt(point("Top", 100, 50), with_boxes=False)
    (edge,) = learnt(point("Bottom", 2, 50), with_boxes=False)

    assert middle.box == pytest.approx((96, 46, 104, 54))
    assert edge.box == pytest.approx((0, 46, 6, 54))
    assert edge.keypoints == (None, (2.0, 50.0))


def test_without_keypoints_there_is_no_object() -> None:
    assert learnt(point("Elbow", 50, 50), with_boxes=False) == []
    assert learnt(RED) == [LabelledObject("Red box", (20.0, 10.0, 120.0, 90.0), keypoints=(None, None))]
