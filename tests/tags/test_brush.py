"""``<BrushLabels>`` (label_studio_yolo.tags.brush): object masks -> Label Studio brush RLEs, and painted brush
regions -> one pixel outline per blob for a segmentation model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from label_studio_sdk.converter.brush import mask2rle

from label_studio_yolo.errors import AnnotationError
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import Detection, InstanceMasks, ModelOutput
from label_studio_yolo.label_config import ControlSpec, parse_label_config
from label_studio_yolo.tags import BrushLabelsControl, supported_controls
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.tags.brush import MIN_BLOB_PIXELS, BrushRegion, decode_brush
from label_studio_yolo.training.plan import TrainingPlan

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image" model_score_threshold="0.5">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </BrushLabels>
</View>"""

SIZE = ImageSize(200, 100)

BLOB = (slice(10, 20), slice(30, 50))
"""Rows 10-19, columns 30-49: OpenCV outlines it through its edge pixels' centres, (30, 10) to (49, 19)."""

BLOB_OUTLINE = ((30.0, 10.0), (30.0, 19.0), (49.0, 19.0), (49.0, 10.0))


@pytest.fixture(scope="module")
def spec() -> ControlSpec:
    return parse_label_config(CONFIG, 0.25, supported_controls())[0]


def painted(*blobs: tuple[slice, slice], size: ImageSize = SIZE) -> np.ndarray:
    """A mask (height x width) with ``blobs`` painted."""
    mask = np.zeros((size.height, size.width), dtype=np.uint8)
    for blob in blobs:
        mask[blob] = 255
    return mask


def annotation_item(mask: np.ndarray, label: str = "Red box", size: ImageSize | None = SIZE) -> dict[str, Any]:
    """A brush region as Label Studio exports it: the RLE of the RGBA image it was painted on, and that size."""
    item: dict[str, Any] = {
        "id": "b1",
        "from_name": "mask",
        "to_name": "image",
        "type": "brushlabels",
        "value": {"format": "rle", "rle": mask2rle(mask), "brushlabels": [label]},
    }
    if size is not None:
        item |= {"original_width": size.width, "original_height": size.height}
    return item


def learnt(spec: ControlSpec, *items: dict[str, Any], size: ImageSize = SIZE) -> list[LabelledObject]:
    regions = [BrushLabelsControl.read_region(item, item["value"]["brushlabels"][0]) for item in items]
    return BrushLabelsControl.training_objects(TrainingPlan("segment", spec), regions, size)


def segmentation_output(masks: torch.Tensor, *detections: Detection) -> ModelOutput:
    return ModelOutput(SIZE, list(detections), masks=InstanceMasks(masks, SIZE))


# ------------------------------------------------------------------------------------------------------ predicting


def test_an_object_s_mask_becomes_a_brush_region_holding_exactly_its_pixels(spec, segment_weights) -> None:
    masks = torch.zeros(2, SIZE.height, SIZE.width)
    masks[0][BLOB] = 1.0
    masks[1, 50:60, 100:120] = 1.0
    output = segmentation_output(masks, Detection("red", 0.9, 30, 10, 50, 20, index=0))  # object 1: no detection

    (region,) = BrushLabelsControl(spec, segment_weights).regions(output)

    assert (region["id"], region["type"], region["value"]["format"], region["value"]["brushlabels"]) == (
        "mask-0",
        "brushlabels",
        "rle",
        ["Red box"],
    )
    assert (region["original_width"], region["original_height"], region["score"]) == (200, 100, 0.9)
    assert np.array_equal(decode_brush(region["value"]["rle"], SIZE), painted(BLOB) > 0)


def test_a_mask_at_the_model_s_smaller_size_is_scaled_to_the_original_image(spec, segment_weights) -> None:
    half = torch.zeros(1, SIZE.height // 2, SIZE.width // 2)
    half[0, 5:10, 15:25] = 1.0  # BLOB at half size

    (region,) = BrushLabelsControl(spec, segment_weights).regions(
        segmentation_output(half, Detection("blue", 0.9, 30, 10, 50, 20))
    )

    assert np.array_equal(decode_brush(region["value"]["rle"], SIZE), painted(BLOB) > 0)


def test_an_empty_mask_or_a_model_without_masks_gives_no_region(spec, segment_weights, detect_weights) -> None:
    detection = Detection("red", 0.9, 30, 10, 50, 20)
    empty = segmentation_output(torch.zeros(1, SIZE.height, SIZE.width), detection)

    assert BrushLabelsControl(spec, segment_weights).regions(empty) == []
    assert BrushLabelsControl(spec, detect_weights).regions(ModelOutput(SIZE, [detection])) == []


def test_a_detection_model_cannot_fill_brushes_and_the_message_names_one_that_can(spec, detect_weights) -> None:
    assert BrushLabelsControl(spec, detect_weights).unusable_reason() == (
        "<BrushLabels> needs a segment model, but boxes.pt is a detect model. Name one for this tag, "
        'e.g. <BrushLabels name="mask" toName="image" model_path="yolo11n-seg.pt">.'
    )


# -------------------------------------------------------------------------------------------------------- learning


def test_read_region_keeps_the_rle_and_the_size_it_was_painted_on() -> None:
    item = annotation_item(painted(BLOB))

    assert BrushLabelsControl.read_region(item, "Red box") == BrushRegion(
        "mask", "Red box", tuple(item["value"]["rle"]), SIZE
    )
    del item["original_width"]
    assert BrushLabelsControl.read_region(item, "Red box").size is None


def test_a_painted_blob_becomes_one_object_outlined_through_its_edge_pixels(spec) -> None:
    (item,) = learnt(spec, annotation_item(painted(BLOB)))

    assert item == LabelledObject("Red box", (30.0, 10.0, 49.0, 19.0), BLOB_OUTLINE)


def test_a_predicted_brush_accepted_as_an_annotation_gives_back_the_object_s_outline(spec, segment_weights) -> None:
    masks = torch.zeros(1, SIZE.height, SIZE.width)
    masks[0][BLOB] = 1.0
    (region,) = BrushLabelsControl(spec, segment_weights).regions(
        segmentation_output(masks, Detection("blue", 0.9, 30, 10, 50, 20))
    )

    objects = BrushLabelsControl.training_objects(
        TrainingPlan("segment", spec), [BrushLabelsControl.read_region(region, "Blue")], SIZE
    )

    assert objects == [LabelledObject("Blue", (30.0, 10.0, 49.0, 19.0), BLOB_OUTLINE)]


def test_two_separate_blobs_of_one_region_are_two_objects(spec) -> None:
    objects = learnt(spec, annotation_item(painted(BLOB, (slice(60, 70), slice(150, 160)))))

    assert sorted(o.box for o in objects) == [(30.0, 10.0, 49.0, 19.0), (150.0, 60.0, 159.0, 69.0)]
    assert [o.label for o in objects] == ["Red box", "Red box"]


def test_a_blob_smaller_than_min_blob_pixels_is_brush_noise(spec) -> None:
    assert MIN_BLOB_PIXELS == 4
    speck = painted(BLOB, (slice(80, 82), slice(100, 102)))  # a 2x2 blob: kept
    speck[50, 10:13] = 255  # three pixels: noise

    objects = learnt(spec, annotation_item(speck))

    assert sorted(o.box for o in objects) == [(30.0, 10.0, 49.0, 19.0), (100.0, 80.0, 101.0, 81.0)]


def test_a_hole_in_a_blob_is_filled(spec) -> None:
    ring = painted((slice(10, 30), slice(30, 60)))
    ring[15:25, 40:50] = 0

    (item,) = learnt(spec, annotation_item(ring))

    assert item.outline == ((30.0, 10.0), (30.0, 29.0), (59.0, 29.0), (59.0, 10.0))


def test_a_brush_painted_on_a_half_size_image_is_scaled_to_the_loaded_one(spec) -> None:
    small = ImageSize(100, 50)
    blob = painted((slice(5, 10), slice(15, 25)), size=small)  # outlined (15, 5) to (24, 9) on the small image

    (item,) = learnt(spec, annotation_item(blob, size=small))

    assert item.outline == ((30.0, 10.0), (30.0, 18.0), (48.0, 18.0), (48.0, 10.0))
    assert item.box == (30.0, 10.0, 48.0, 18.0)


def test_a_brush_without_its_stored_size_is_read_at_the_loaded_image_s_size(spec) -> None:
    (item,) = learnt(spec, annotation_item(painted(BLOB), size=None))

    assert item.outline == BLOB_OUTLINE


def test_a_brush_rle_of_another_size_is_an_annotation_error_naming_the_region(spec) -> None:
    wrong = annotation_item(painted(size=ImageSize(10, 10)))  # says 200x100, holds 10x10

    with pytest.raises(AnnotationError) as raised:
        learnt(spec, wrong)

    assert str(raised.value) == (
        "brush region 'Red box' of 'mask': brush RLE holds 400 values, not the 80000 of a 200x100 RGBA image"
    )


def test_a_brush_whose_label_left_the_config_is_left_out(spec) -> None:
    objects = learnt(spec, annotation_item(painted(BLOB), label="Dog"), annotation_item(painted(BLOB), label="Blue"))

    assert [o.label for o in objects] == ["Blue"]
