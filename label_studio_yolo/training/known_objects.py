"""Objects the served model finds that an annotation does not mention, added to a training image's targets.

People often draw only the labels they came to add: a new label on tasks opened without predictions leaves the
people in those photos unboxed. Trained on that, a version learns that people are background (held-out AP50 of
the old label went from 0.81 to 0.00). So, before a training image is written, the served model looks at it, and
for each label it already predicts that the annotation has no region of, its objects at the control's
``model_score_threshold`` become targets of that label.

Two cases are left as annotated:

- the annotation started from a prediction (Label Studio's ``parent_prediction``): the annotator saw the model's
  regions, so one that is missing was deleted on purpose and must not come back;
- the annotation has a region of that label: the annotator drew that label on this image, and drew all of it.

Example:
    >>> known = KnownObjects(weights, served_labels, "detect", thresholds={"Person": 0.25})   # doctest: +SKIP
    >>> known.missing(image, annotated=[LabelledObject("Cup", (1, 2, 30, 40))], from_prediction=False)
    [LabelledObject(label='Person', box=(40.0, 12.0, 90.0, 180.0), ...)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from PIL import Image

from label_studio_yolo.geometry import Point
from label_studio_yolo.inference.outputs import Detection, detect
from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.training.tasks import TASKS

KEPT_IOU = 0.5
"""A served object counts as kept by an annotation begun from a prediction when a region of its label overlaps it
this much."""

KEYPOINT_VISIBLE = 0.5
"""A served keypoint with at least this score is a target; below it, the keypoint is left unannotated."""


@dataclass
class KnownObjects:
    """The served model (``weights`` through ``labels``) as a source of targets for the labels in ``thresholds``,
    each at its threshold.

    ``added`` counts, per label, the training images it added objects to; ``removed`` the images whose annotation
    started from a prediction and lacks an object of that label the served model finds there (deleted on purpose,
    or by mistake: the gate's advice names them).
    """

    weights: LoadedWeights
    labels: LabelMap
    task: str
    thresholds: Mapping[str, float]
    added: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)

    def missing(
        self, image: Image.Image, annotated: Sequence[LabelledObject], from_prediction: bool
    ) -> list[LabelledObject]:
        """The served model's objects on ``image`` of the known labels that ``annotated`` has none of.

        Of an annotation begun from a prediction, none: the labels of served objects that no annotated region of
        their label covers (IoU 0.5) are counted in ``removed`` instead.
        """
        found = [
            (label, detection)
            for detection in detect(self.weights, image, conf=min(self.thresholds.values()))
            if (label := self.labels.label_for(detection.class_name)) is not None
            and detection.score >= self.thresholds.get(label, 2.0)  # a label not in thresholds is not known
        ]
        if from_prediction:
            self.removed.update({label for label, detection in found if not _covered(label, detection, annotated)})
            return []
        drawn = {item.label for item in annotated}
        missing = [(label, detection) for label, detection in found if label not in drawn]
        self.added.update({label for label, _ in missing})
        return [_labelled(self.task, label, detection) for label, detection in missing]


def _covered(label: str, detection: Detection, annotated: Sequence[LabelledObject]) -> bool:
    """Whether an annotated object of ``label`` overlaps ``detection`` by IoU 0.5 (the annotator kept it)."""
    import torch
    from ultralytics.utils.metrics import box_iou

    boxes = [item.box for item in annotated if item.label == label]
    if not boxes:
        return False
    found = torch.tensor([[detection.x0, detection.y0, detection.x1, detection.y1]])
    return bool((box_iou(found, torch.tensor(boxes)) >= KEPT_IOU).any())


def _labelled(task: str, label: str, detection: Detection) -> LabelledObject:
    """A detection as a training target of ``task``: its box, outline (segment, obb) or keypoints (pose)."""
    box, traits = (detection.x0, detection.y0, detection.x1, detection.y1), TASKS[task]
    if traits.outline:  # a segment model's polygon, or an obb model's rotated box
        return LabelledObject(label, box, _corners(detection) if detection.rotated else tuple(detection.polygon))
    if traits.keypoints:
        points: tuple[Point | None, ...] = tuple(
            (point.x, point.y) if point.score >= KEYPOINT_VISIBLE else None for point in detection.keypoints
        )
        return LabelledObject(label, box, keypoints=points)
    return LabelledObject(label, box)


def _corners(detection: Detection) -> tuple[Point, ...]:
    """The four corners of a rotated detection, in the order ultralytics' ``xyxyxyxy`` gives them."""
    import torch
    from ultralytics.utils.ops import xywhr2xyxyxyxy

    rotated = detection.rotated
    assert rotated is not None
    corners = xywhr2xyxyxyxy(torch.tensor([[rotated.cx, rotated.cy, rotated.width, rotated.height, rotated.angle]]))
    return tuple((float(x), float(y)) for x, y in corners[0].tolist())
