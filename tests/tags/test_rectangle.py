"""``<RectangleLabels>`` (label_studio_yolo.tags.rectangle): detections -> Label Studio's percent rectangles, and
annotated rectangles -> detect bounds and OBB corners in pixels."""

from __future__ import annotations

import math
from typing import Any

import pytest

from conftest import BOXES_CONFIG
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import Detection, ModelOutput, RotatedBox
from label_studio_yolo.label_config import ControlSpec, parse_label_config
from label_studio_yolo.tags import RectangleLabelsControl, supported_controls
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.tags.rectangle import RectangleRegion
from label_studio_yolo.training.plan import TrainingPlan

CONFIG = BOXES_CONFIG
"""'Red box' takes class red through predicted_values, 'Blue' takes class blue by its name."""

SIZE = ImageSize(200, 100)
"""Not square: a percent of the width is not a percent of the height."""

UPRIGHT_90 = RotatedBox(100, 50, 60, 20, math.pi / 2)
"""A 60x20 box about (100, 50) turned a quarter clockwise: its corners are (110, 20), (110, 80), (90, 80), (90, 20)."""


@pytest.fixture(scope="module")
def spec() -> ControlSpec:
    return parse_label_config(CONFIG, 0.25, supported_controls())[0]


def annotation_item(
    x: float, y: float, width: float, height: float, label: str = "Blue", rotation: Any = 0.0, region_id: Any = "r1"
) -> dict[str, Any]:
    """A rectangle as Label Studio exports it in an annotation's ``result``."""
    return {
        "id": region_id,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": SIZE.width,
        "original_height": SIZE.height,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": width, "height": height, "rotation": rotation, "rectanglelabels": [label]},
    }


def learnt(spec: ControlSpec, task: str, *items: dict[str, Any]) -> list[LabelledObject]:
    regions = [RectangleLabelsControl.read_region(item, item["value"]["rectanglelabels"][0]) for item in items]
    return RectangleLabelsControl.training_objects(TrainingPlan(task, spec), regions, SIZE)


def shape(region: dict[str, Any]) -> dict[str, Any]:
    """A rectangle region's geometry (its value without the labels)."""
    return {key: value for key, value in region["value"].items() if key != "rectanglelabels"}


def assert_points(actual: tuple[tuple[float, float], ...], expected: list[tuple[float, float]]) -> None:
    assert [c for point in actual for c in point] == pytest.approx([c for point in expected for c in point], abs=1e-9)


# ------------------------------------------------------------------------------------------------------ predicting


def test_a_detection_becomes_the_percent_rectangle_label_studio_stores(spec, detect_weights) -> None:
    detection = Detection("red", 0.876543, 20, 10, 120, 60, index=3)

    (region,) = RectangleLabelsControl(spec, detect_weights).regions(ModelOutput(SIZE, [detection]))

    assert region == {
        "id": "label-3",  # other controls filled from the same output can name it (a keypoint's parentID)
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": 10.0, "y": 10.0, "width": 50.0, "height": 50.0, "rotation": 0.0, "rectanglelabels": ["Red box"]},
        "score": 0.8765,
        "original_width": 200,
        "original_height": 100,
        "image_rotation": 0,
    }


def test_only_claimed_classes_at_or_above_the_threshold_become_regions(spec, detect_weights) -> None:
    detections = [
        Detection("BLUE", 0.4, 0, 0, 50, 50, index=0),  # class names match labels whatever their case
        Detection("blue", 0.3999, 0, 0, 50, 50, index=1),
        Detection("green", 0.99, 0, 0, 50, 50, index=2),
        Detection("red", 0.41, 100, 50, 200, 100, index=3),
    ]

    regions = RectangleLabelsControl(spec, detect_weights).regions(ModelOutput(SIZE, detections))

    assert [(r["id"], r["value"]["rectanglelabels"], r["score"]) for r in regions] == [
        ("label-0", ["Blue"], 0.4),
        ("label-3", ["Red box"], 0.41),
    ]
    assert shape(regions[1]) == pytest.approx({"x": 50.0, "y": 50.0, "width": 50.0, "height": 50.0, "rotation": 0})


def test_a_box_past_the_image_edge_is_clipped_to_it(spec, detect_weights) -> None:
    (region,) = RectangleLabelsControl(spec, detect_weights).regions(
        ModelOutput(SIZE, [Detection("blue", 0.9, -20, 80, 40, 130)])
    )

    assert shape(region) == pytest.approx({"x": 0.0, "y": 80.0, "width": 20.0, "height": 20.0, "rotation": 0})


def test_an_obb_detection_gets_label_studio_rotation_about_its_top_left_corner(spec, obb_weights) -> None:
    detection = Detection("blue", 0.9, 90, 20, 110, 80, rotated=UPRIGHT_90, index=1)

    (region,) = RectangleLabelsControl(spec, obb_weights).regions(ModelOutput(SIZE, [detection]))

    # the unrotated box's top-left corner (70, 40) lands at (110, 20); the size stays 60x20 pixels
    assert shape(region) == pytest.approx({"x": 55.0, "y": 20.0, "width": 30.0, "height": 20.0, "rotation": 90.0})
    assert (region["id"], region["value"]["rectanglelabels"]) == ("label-1", ["Blue"])


def test_an_upright_obb_box_crossing_the_edge_becomes_an_upright_box_clipped_to_the_image(spec, obb_weights) -> None:
    detection = Detection("red", 0.9, 170, 40, 210, 60, rotated=RotatedBox(190, 50, 40, 20, 0.0))

    (region,) = RectangleLabelsControl(spec, obb_weights).regions(ModelOutput(SIZE, [detection]))

    assert shape(region) == pytest.approx({"x": 85.0, "y": 40.0, "width": 15.0, "height": 20.0, "rotation": 0})


def test_a_classification_model_cannot_fill_rectangles_and_the_message_names_one_that_can(
    spec, classify_weights
) -> None:
    reason = RectangleLabelsControl(spec, classify_weights).unusable_reason()

    assert reason == (
        "<RectangleLabels> needs a detect or obb or pose or segment model, but colours-cls.pt is a classify model. "
        'Name one for this tag, e.g. <RectangleLabels name="label" toName="image" model_path="yolo11n.pt">.'
    )


def test_labels_that_take_no_class_of_the_model_make_the_control_unusable(detect_weights) -> None:
    config = CONFIG.replace('predicted_values="red"', 'predicted_values="car"').replace('"Blue"', '"Truck"')
    spec = parse_label_config(config, 0.25, supported_controls())[0]

    reason = RectangleLabelsControl(spec, detect_weights).unusable_reason()

    assert reason is not None
    assert 'No <Label> of <RectangleLabels name="label"> matches a class of the model (blue, red)' in reason
    assert RectangleLabelsControl(parse_label_config(CONFIG, 0.25)[0], detect_weights).unusable_reason() is None


# -------------------------------------------------------------------------------------------------------- learning


def test_read_region_keeps_the_percent_geometry_the_rotation_and_the_region_id() -> None:
    item = annotation_item(10, 20, 30, 40, label="Blue", rotation=15.5, region_id=7)

    assert RectangleLabelsControl.read_region(item, "Blue") == RectangleRegion(
        "label", "Blue", 10, 20, 30, 40, 15.5, "7"
    )


@pytest.mark.parametrize("rotation", [None, 0])
def test_a_rectangle_without_rotation_is_upright_and_one_without_id_has_none(rotation: Any) -> None:
    item = annotation_item(10, 20, 30, 40, rotation=rotation, region_id=None)
    del item["id"]
    if rotation is None:
        del item["value"]["rotation"]

    region = RectangleLabelsControl.read_region(item, "Blue")

    assert (region.rotation, region.region_id) == (0.0, None)


def test_a_rectangle_without_its_size_or_with_text_for_a_number_raises_for_the_reader_to_report() -> None:
    missing = annotation_item(10, 20, 30, 40)
    del missing["value"]["width"]
    with pytest.raises(KeyError):
        RectangleLabelsControl.read_region(missing, "Blue")
    with pytest.raises(ValueError):
        RectangleLabelsControl.read_region(annotation_item("left", 20, 30, 40), "Blue")


def test_a_detect_model_learns_the_rectangle_in_pixels(spec) -> None:
    objects = learnt(spec, "detect", annotation_item(10, 10, 50, 50, "Blue"), annotation_item(0, 50, 25, 50, "Red box"))

    assert [o.label for o in objects] == ["Blue", "Red box"]
    assert [o.box for o in objects] == [pytest.approx((20, 10, 120, 60)), pytest.approx((0, 50, 50, 100))]
    assert [(o.outline, o.keypoints) for o in objects] == [((), ()), ((), ())]


def test_a_detect_model_learns_the_axis_aligned_bounds_of_a_rotated_rectangle(spec) -> None:
    (item,) = learnt(spec, "detect", annotation_item(55, 20, 30, 20, rotation=90))

    assert item.box == pytest.approx((90, 20, 110, 80))
    assert item.outline == ()


def test_an_obb_model_learns_the_four_corners_of_a_rotated_rectangle(spec) -> None:
    (item,) = learnt(spec, "obb", annotation_item(55, 20, 30, 20, rotation=90))

    assert_points(item.outline, [(110, 20), (110, 80), (90, 80), (90, 20)])
    assert item.box == pytest.approx((90, 20, 110, 80))


def test_a_rectangle_past_the_image_edge_is_clipped_for_detect_and_obb(spec) -> None:
    past = annotation_item(90, -10, 20, 50)  # pixels x 180..220, y -10..40

    (detect,) = learnt(spec, "detect", past)
    (obb,) = learnt(spec, "obb", past)

    assert detect.box == pytest.approx((180, 0, 200, 40))
    assert_points(obb.outline, [(180, 0), (200, 0), (200, 40), (180, 40)])
    assert obb.box == pytest.approx((180, 0, 200, 40))


def test_a_rectangle_whose_label_left_the_config_is_left_out(spec) -> None:
    objects = learnt(spec, "detect", annotation_item(10, 10, 5, 5, "Dog"), annotation_item(10, 10, 50, 50, "Blue"))

    assert [o.label for o in objects] == ["Blue"]


def test_a_predicted_rectangle_accepted_as_an_annotation_gives_back_the_detection_s_pixels(
    spec, detect_weights
) -> None:
    (region,) = RectangleLabelsControl(spec, detect_weights).regions(
        ModelOutput(SIZE, [Detection("red", 0.9, 20, 10, 120, 60)])
    )

    (item,) = RectangleLabelsControl.training_objects(
        TrainingPlan("detect", spec), [RectangleLabelsControl.read_region(region, "Red box")], SIZE
    )

    assert item == LabelledObject("Red box", pytest.approx((20, 10, 120, 60)))


ROOT3 = math.sqrt(3)


@pytest.mark.parametrize(
    ("rotated", "corners"),
    [
        (UPRIGHT_90, [(110, 20), (110, 80), (90, 80), (90, 20)]),
        (  # 30 degrees: half-width 30 and half-height 10 turned by cos 30 = sqrt(3)/2, sin 30 = 1/2
            RotatedBox(100, 50, 60, 20, math.radians(30)),
            [
                (105 - 15 * ROOT3, 35 - 5 * ROOT3),
                (105 + 15 * ROOT3, 65 - 5 * ROOT3),
                (95 + 15 * ROOT3, 65 + 5 * ROOT3),
                (95 - 15 * ROOT3, 35 + 5 * ROOT3),
            ],
        ),
    ],
    ids=["quarter-turn", "30-degrees"],
)
def test_a_predicted_rotated_rectangle_accepted_as_an_annotation_gives_back_the_obb_corners(
    spec, obb_weights, rotated: RotatedBox, corners: list[tuple[float, float]]
) -> None:
    (region,) = RectangleLabelsControl(spec, obb_weights).regions(
        ModelOutput(SIZE, [Detection("red", 0.9, 0, 0, 0, 0, rotated=rotated)])
    )

    (item,) = RectangleLabelsControl.training_objects(
        TrainingPlan("obb", spec), [RectangleLabelsControl.read_region(region, "Red box")], SIZE
    )

    assert_points(item.outline, corners)
    xs, ys = zip(*corners, strict=True)
    assert item.box == pytest.approx((min(xs), min(ys), max(xs), max(ys)))
