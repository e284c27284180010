"""The tag registry (label_studio_yolo.tags): which class fills each control tag, which tags each YOLO task learns
from, and which class reads each annotation result type (also through training.annotations.read_region)."""

from __future__ import annotations

from typing import Any

import pytest

from label_studio_yolo.label_config import parse_label_config
from label_studio_yolo.tags import (
    CONTROL_CLASSES,
    CONTROL_TYPES,
    BrushLabelsControl,
    ChoicesControl,
    KeyPointLabelsControl,
    PolygonLabelsControl,
    RectangleLabelsControl,
    VideoRectangleControl,
    annotation_reader,
    control_for,
    learning_tags,
    supported_controls,
)
from label_studio_yolo.tags.base import EXAMPLE_MODEL_FOR_TASK
from label_studio_yolo.tags.brush import BrushRegion
from label_studio_yolo.tags.choices import ChoiceRegion
from label_studio_yolo.tags.keypoints import KeypointRegion
from label_studio_yolo.tags.polygon import PolygonRegion
from label_studio_yolo.tags.rectangle import RectangleRegion
from label_studio_yolo.training.annotations import read_region

EVERY_TAG_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="boxes" toName="image"><Label value="Car"/></RectangleLabels>
  <PolygonLabels name="outlines" toName="image"><Label value="Car"/></PolygonLabels>
  <BrushLabels name="masks" toName="image"><Label value="Car"/></BrushLabels>
  <Choices name="kind" toName="image"><Choice value="Street"/></Choices>
  <KeyPointLabels name="points" toName="image"><Label value="Nose"/></KeyPointLabels>
  <TextArea name="notes" toName="image"/>
  <Video name="video" value="$video"/>
  <Labels name="video_kind" toName="video"><Label value="Car"/></Labels>
  <VideoRectangle name="tracks" toName="video"/>
</View>"""


@pytest.mark.parametrize(
    ("task", "tags"),
    [
        ("detect", ("RectangleLabels",)),
        ("obb", ("RectangleLabels",)),
        ("segment", ("PolygonLabels", "BrushLabels")),
        ("classify", ("Choices",)),
        ("pose", ("KeyPointLabels",)),
        ("track", ()),
    ],
)
def test_each_yolo_task_learns_from_its_tags_in_registry_order(task: str, tags: tuple[str, ...]) -> None:
    assert learning_tags(task) == tags


@pytest.mark.parametrize(
    ("result_type", "reader"),
    [
        ("rectanglelabels", RectangleLabelsControl),
        ("polygonlabels", PolygonLabelsControl),
        ("brushlabels", BrushLabelsControl),
        ("choices", ChoicesControl),
        ("keypointlabels", KeyPointLabelsControl),
        ("videorectangle", None),  # videos are not trained on
        ("labels", None),
        ("textarea", None),
        ("", None),
    ],
)
def test_each_annotation_result_type_has_the_reader_training_uses(result_type: str, reader: Any) -> None:
    assert annotation_reader(result_type) is reader


def test_every_control_class_fills_a_tag_of_its_own() -> None:
    types = [cls.control_type for cls in CONTROL_CLASSES]

    assert len(set(types)) == len(types) == 6
    assert dict(zip(types, CONTROL_CLASSES, strict=True)) == CONTROL_TYPES
    assert supported_controls() == {
        "BrushLabels": frozenset({"Image"}),
        "Choices": frozenset({"Image"}),
        "KeyPointLabels": frozenset({"Image"}),
        "PolygonLabels": frozenset({"Image"}),
        "RectangleLabels": frozenset({"Image"}),
        "VideoRectangle": frozenset({"Video"}),
    }


@pytest.mark.parametrize("cls", CONTROL_CLASSES, ids=lambda cls: cls.control_type)
def test_a_tag_that_feeds_training_reads_the_result_type_label_studio_gives_its_regions(cls: Any) -> None:
    if not cls.learns_for:
        assert cls.result_type == ""
        return
    assert cls.result_type == cls.control_type.lower()  # Label Studio's result "type" is the tag name, lower-case
    assert cls.learns_for <= cls.model_tasks, "a tag learns only for tasks whose models it can be filled from"
    assert cls.learns_for <= set(EXAMPLE_MODEL_FOR_TASK)


def test_control_for_fills_each_tag_of_a_config_with_its_class(detect_weights) -> None:
    specs = parse_label_config(EVERY_TAG_CONFIG, 0.5, supported_controls())

    filled = {spec.from_name: type(control_for(spec, detect_weights)) for spec in specs}

    assert filled == {
        "boxes": RectangleLabelsControl,
        "outlines": PolygonLabelsControl,
        "masks": BrushLabelsControl,
        "kind": ChoicesControl,
        "points": KeyPointLabelsControl,
        "tracks": VideoRectangleControl,
    }


def item(result_type: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "r1", "from_name": "control", "to_name": "image", "type": result_type, "value": value, **extra}


RLE = [0, 0, 0, 16, 58, 0, 0]


@pytest.mark.parametrize(
    ("annotation", "region"),
    [
        (
            item("rectanglelabels", {"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": ["Car", "Bus"]}),
            RectangleRegion("control", "Car", 1.0, 2.0, 3.0, 4.0, 0.0, "r1"),
        ),
        (
            item("polygonlabels", {"points": [[1, 2], [3, 4], [5, 6]], "polygonlabels": ["Car"]}),
            PolygonRegion("control", "Car", ((1.0, 2.0), (3.0, 4.0), (5.0, 6.0))),
        ),
        (
            item("brushlabels", {"format": "rle", "rle": RLE, "brushlabels": ["Car"]}),
            BrushRegion("control", "Car", tuple(RLE), None),
        ),
        (item("choices", {"choices": ["Street", "Road"]}), ChoiceRegion("control", "Street")),
        (
            item("keypointlabels", {"x": 5, "y": 6, "keypointlabels": ["Nose"]}, parentID="box1"),
            KeypointRegion("control", "Nose", 5.0, 6.0, "box1"),
        ),
    ],
    ids=lambda value: value["type"] if isinstance(value, dict) else type(value).__name__,
)
def test_training_reads_each_result_type_into_its_tag_s_region_labelled_by_its_first_label(
    annotation: dict[str, Any], region: Any
) -> None:
    assert read_region(annotation) == region


@pytest.mark.parametrize(
    "annotation",
    [
        item("rectanglelabels", {"x": 1, "y": 2, "width": 3, "height": 4}),  # no label picked
        item("rectanglelabels", {"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": []}),
        item("videorectangle", {"sequence": [], "labels": ["Car"]}),
        item("textarea", {"text": ["a note"]}),
        {"from_name": "control", "value": {}},
    ],
    ids=["no-label-key", "empty-labels", "videorectangle", "textarea", "no-type"],
)
def test_training_skips_results_without_a_label_or_of_a_type_it_does_not_learn_from(annotation: dict[str, Any]) -> None:
    assert read_region(annotation) is None
