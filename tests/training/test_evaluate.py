"""How the gate finds objects: a segment version is judged on its masks, a pose version on its keypoints."""

from __future__ import annotations

from label_studio_yolo.inference.outputs import Detection, Keypoint
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.training.evaluate import ap50_per_label, box_overlap, keypoint_overlap, mask_overlap

SQUARE = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))
STRIP = ((0.0, 0.0), (100.0, 0.0), (100.0, 30.0), (0.0, 30.0))
"""The top third of the square: a predicted mask in the right box that misses most of the object."""


def found(polygon: tuple[tuple[float, float], ...] = (), keypoints: tuple[Keypoint, ...] = ()) -> tuple:
    """A prediction of ``Cup`` whose box is the square's, with an outline or keypoints."""
    detection = Detection("cup", 0.9, 0.0, 0.0, 100.0, 100.0, polygon, keypoints)
    return ("Cup", 0.9, 0.0, 0.0, 100.0, 100.0, detection)


def test_a_mask_that_misses_most_of_the_object_does_not_find_it_though_its_box_does() -> None:
    square = LabelledObject("Cup", (0.0, 0.0, 100.0, 100.0), SQUARE)
    strip = found(STRIP)
    assert box_overlap(strip, square) == 1.0
    assert 0.25 < mask_overlap(strip, square) < 0.35
    assert mask_overlap(found(SQUARE), square) > 0.97
    assert ap50_per_label([[strip]], [[square]], ["Cup"])["Cup"].value > 0.9, "by boxes, it was found"
    scores = ap50_per_label([[strip]], [[square]], ["Cup"], mask_overlap)
    assert scores["Cup"].value == 0.0, "a segment version is judged on the masks users see"


def test_keypoints_in_the_wrong_places_do_not_find_the_object() -> None:
    person = LabelledObject("Cup", (0.0, 0.0, 100.0, 100.0), keypoints=((10.0, 10.0), None, (90.0, 90.0)))
    right = (Keypoint(11.0, 10.0, 0.9), Keypoint(50.0, 50.0, 0.9), Keypoint(90.0, 89.0, 0.9))
    wrong = (Keypoint(90.0, 90.0, 0.9), Keypoint(50.0, 50.0, 0.9), Keypoint(10.0, 10.0, 0.9))
    assert keypoint_overlap(found(keypoints=right), person) > 0.9
    assert keypoint_overlap(found(keypoints=wrong), person) < 0.1
    assert ap50_per_label([[found(keypoints=wrong)]], [[person]], ["Cup"], keypoint_overlap)["Cup"].value == 0.0
    no_points = LabelledObject("Cup", (0.0, 0.0, 100.0, 100.0))
    assert keypoint_overlap(found(keypoints=wrong), no_points) == 1.0, "an object without keypoints: its box"
