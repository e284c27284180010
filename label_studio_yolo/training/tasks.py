"""What differs between the YOLO tasks a job trains, in one table (as ultralytics' ``task_map`` does for its own).

Example:
    >>> TASKS["classify"].metric, TASKS["segment"].outline
    ('accuracy', True)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainedTask:
    """How a job trains and judges one YOLO task."""

    name: str
    metric: str
    """The gate's per-label metric: ``ap50`` of boxes, or ``accuracy`` of an image's class."""
    example_config: str
    """The control part of a labelling config that trains the task (shown in errors)."""
    image_class: bool = False
    """One class per image (classify): an ImageFolder dataset, an image with no choice teaches nothing, and there
    are no objects for the served model to add."""
    outline: bool = False
    """Label lines are outlines (segment: polygons; obb: the four corners), not boxes."""
    keypoints: bool = False
    """Objects have keypoints (pose); their classes are the labels of the rectangles around them."""
    several_sources: bool = True
    """Every control on the image that learns for the task feeds it (not classify: an image has one class; not pose:
    its keypoints belong to one set of boxes)."""
    anchors: bool = True
    """The head scores every class at every anchor (ultralytics' ``Detect`` family): what distillation needs."""
    matched_by: str = "box"
    """What makes a prediction find a truth object for the gate: ``box`` IoU, ``mask`` IoU (segment) or
    ``keypoints`` similarity (pose, OKS), each at 0.5."""


TASKS: dict[str, TrainedTask] = {
    task.name: task
    for task in (
        TrainedTask(
            "detect", "ap50", '<RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels>'
        ),
        TrainedTask(
            "segment",
            "ap50",
            '<PolygonLabels name="outline" toName="image"><Label value="Car"/></PolygonLabels>',
            outline=True,
            matched_by="mask",
        ),
        TrainedTask(
            "classify",
            "accuracy",
            '<Choices name="kind" toName="image"><Choice value="Cat"/><Choice value="Dog"/></Choices>',
            image_class=True,
            several_sources=False,
            anchors=False,
        ),
        TrainedTask(
            "pose",
            "ap50",
            '<RectangleLabels name="label" toName="image"><Label value="Person"/></RectangleLabels>\n  '
            '<KeyPointLabels name="points" toName="image"><Label value="Nose" model_index="0"/></KeyPointLabels>',
            keypoints=True,
            several_sources=False,
            matched_by="keypoints",
        ),
        TrainedTask(
            "obb",
            "ap50",
            '<RectangleLabels name="label" toName="image"><Label value="Ship"/></RectangleLabels>',
            outline=True,
        ),
    )
}
"""The tasks a job can fine-tune, in the order messages list them."""
