"""``<VideoRectangle>`` (label_studio_yolo.tags.video): tracks -> keyframe-sequence regions labelled by their main
class, and the ``model_tracker`` / threshold choices that decide how a video is tracked."""

from __future__ import annotations

import logging

import pytest

from label_studio_yolo.errors import LabelConfigError
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import ModelOutput, Track, TrackedBox, VideoInfo
from label_studio_yolo.inference.tracking import TrackingOptions
from label_studio_yolo.label_config import ControlSpec, parse_label_config
from label_studio_yolo.tags import VideoRectangleControl, supported_controls
from label_studio_yolo.tags.video import tracker_name, tracking_options

CONFIG = """<View>
  <Video name="video" value="$video" frameRate="{fps}"/>
  <Labels name="kind" toName="video">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </Labels>
  <VideoRectangle name="box" toName="video" model_score_threshold="0.4"{attrs}/>
</View>"""
"""As in tests/integration/test_video_tracking.py: the labels come from the ``<Labels>`` on the same video."""

SIZE = ImageSize(200, 100)
VIDEO = VideoInfo(frames=50, fps=10.0)


def video_spec(attrs: str = "", fps: str = "10") -> ControlSpec:
    return parse_label_config(CONFIG.format(attrs=attrs, fps=fps), 0.25, supported_controls())[0]


def track(*boxes: tuple[int, str, float], track_id: int = 1) -> Track:
    """A track of the box (20, 10)-(120, 60) on each (frame, class, score)."""
    return Track(track_id, tuple(TrackedBox(frame, name, score, 20, 10, 120, 60) for frame, name, score in boxes))


def regions(*tracks: Track, spec: ControlSpec | None = None, weights=None, video: VideoInfo = VIDEO) -> list[dict]:
    control = VideoRectangleControl(spec or video_spec(), weights)
    return control.regions(ModelOutput(SIZE, tracks=list(tracks), video=video))


# ------------------------------------------------------------------------------------------------------ predicting


def test_a_track_becomes_one_region_with_a_keyframe_per_frame_it_was_seen(detect_weights) -> None:
    seen = track((0, "red", 0.5), (1, "red", 0.6), (2, "red", 0.7), (5, "red", 0.8), (6, "red", 0.9))

    (region,) = regions(seen, weights=detect_weights)

    assert (region["from_name"], region["to_name"], region["type"]) == ("box", "video", "videorectangle")
    assert region["score"] == 0.7  # the mean of its boxes' scores
    value = region["value"]
    assert (value["labels"], value["framesCount"], value["duration"]) == (["Red box"], 50, 5.0)
    assert [(k["frame"], k["enabled"], k["time"]) for k in value["sequence"]] == [
        (1, True, 0.0),
        (2, True, 0.1),
        (3, False, 0.2),  # the box is gone on frames 4 and 5 (1-based): no interpolation into the gap
        (6, True, 0.5),
        (7, False, 0.6),  # the track's end
    ]
    assert {(k["x"], k["y"], k["width"], k["height"], k["rotation"]) for k in value["sequence"]} == {
        (10.0, 10.0, 50.0, 50.0, 0)
    }


def test_boxes_below_the_threshold_are_dropped_and_leave_a_gap(detect_weights) -> None:
    (region,) = regions(track((0, "blue", 0.9), (1, "blue", 0.39), (2, "blue", 0.6)), weights=detect_weights)

    assert [(k["frame"], k["enabled"]) for k in region["value"]["sequence"]] == [(1, False), (3, False)]
    assert region["score"] == 0.75


def test_keyframes_come_in_frame_order_whatever_order_the_tracker_gave(detect_weights) -> None:
    (region,) = regions(track((3, "blue", 0.9), (2, "blue", 0.9)), weights=detect_weights)

    assert [(k["frame"], k["enabled"]) for k in region["value"]["sequence"]] == [(3, True), (4, False)]


@pytest.mark.parametrize(
    ("classes", "label"),
    [(["red", "blue", "red"], "Red box"), (["blue", "red", "blue", "blue"], "Blue"), (["blue", "red"], "Blue")],
    ids=["red-on-most", "blue-on-most", "tie-first-seen"],
)
def test_a_track_is_labelled_by_the_class_it_has_on_most_frames(detect_weights, classes, label) -> None:
    boxes = [(frame, name, 0.9) for frame, name in enumerate(classes)]

    (region,) = regions(track(*boxes), weights=detect_weights)

    assert region["value"]["labels"] == [label]


def test_a_track_whose_main_class_no_label_claims_is_left_out(detect_weights) -> None:
    claimed_once = track((0, "green", 0.9), (1, "green", 0.9), (2, "red", 0.9), track_id=1)
    below = track((0, "red", 0.39), (1, "red", 0.2), track_id=2)

    assert regions(claimed_once, below, weights=detect_weights) == []


def test_an_image_s_output_gives_no_video_regions(detect_weights) -> None:
    control = VideoRectangleControl(video_spec(), detect_weights)

    assert control.regions(ModelOutput(SIZE, tracks=[track((0, "red", 0.9))])) == []


def test_a_frame_rate_other_than_the_video_s_is_warned_about_once(detect_weights, caplog) -> None:
    control = VideoRectangleControl(video_spec(), detect_weights)
    output = ModelOutput(SIZE, tracks=[track((0, "red", 0.9))], video=VideoInfo(50, 12.5))

    with caplog.at_level(logging.WARNING, logger="label_studio_yolo.tags.video"):
        control.regions(output)
        control.regions(output)

    warnings = [r.getMessage() for r in caplog.records if r.name == "label_studio_yolo.tags.video"]
    assert len(warnings) == 1
    assert '<Video name="video"> has frameRate 10' in warnings[0] and 'set frameRate="12.5"' in warnings[0]


@pytest.mark.parametrize("fps", ["10", "10.05", "$fps"])
def test_a_matching_or_data_driven_frame_rate_is_not_warned_about(detect_weights, caplog, fps) -> None:
    control = VideoRectangleControl(video_spec(fps=fps), detect_weights)

    with caplog.at_level(logging.WARNING, logger="label_studio_yolo.tags.video"):
        control.regions(ModelOutput(SIZE, tracks=[track((0, "red", 0.9))], video=VIDEO))

    assert [r for r in caplog.records if r.name == "label_studio_yolo.tags.video"] == []


# ------------------------------------------------------------------------------------------------------- trackers


@pytest.mark.parametrize(
    ("attrs", "name"),
    [("", "bytetrack"), (' model_tracker="botsort"', "botsort"), (' model_tracker=" BoTSORT.yaml "', "botsort")],
)
def test_model_tracker_names_the_tracker_in_any_case_with_or_without_yaml(attrs: str, name: str) -> None:
    assert tracker_name(video_spec(attrs)) == name


def test_an_unknown_tracker_is_a_config_error_showing_the_xml_that_fixes_it() -> None:
    with pytest.raises(LabelConfigError) as raised:
        tracker_name(video_spec(' model_tracker="sort"'))

    assert str(raised.value) == (
        '<VideoRectangle name="box"> has model_tracker="sort"; it must be one of botsort, bytetrack, '
        'e.g. <VideoRectangle name="box" toName="video" model_tracker="botsort"/>.'
    )


def test_an_unknown_tracker_makes_the_control_refuse_setup(detect_weights) -> None:
    with pytest.raises(LabelConfigError, match='model_tracker="sort"'):
        VideoRectangleControl(video_spec(' model_tracker="sort"'), detect_weights).unusable_reason()
    assert VideoRectangleControl(video_spec(' model_tracker="botsort"'), detect_weights).unusable_reason() is None


def test_a_classification_model_cannot_track(classify_weights) -> None:
    assert VideoRectangleControl(video_spec(), classify_weights).unusable_reason() == (
        "<VideoRectangle> needs a detect or pose or segment model, but colours-cls.pt is a classify model. "
        'Name one for this tag, e.g. <VideoRectangle name="box" toName="video" model_path="yolo11n.pt">.'
    )


UNCLAIMED = CONFIG.replace('predicted_values="red"', 'predicted_values="car"').replace('"Blue"', '"Truck"')
"""Labels 'Red box' (class car) and 'Truck': neither takes a class of the red/blue model."""


def test_labels_that_take_no_class_of_the_model_make_the_control_unusable(detect_weights) -> None:
    spec = parse_label_config(UNCLAIMED.format(attrs="", fps="10"), 0.25, supported_controls())[0]

    reason = VideoRectangleControl(spec, detect_weights).unusable_reason()

    assert reason is not None and "matches a class of the model (blue, red)" in reason


def test_the_fix_shown_for_unclaimed_video_labels_names_the_labels_tag_that_holds_them(detect_weights) -> None:
    """``<VideoRectangle>`` has no ``<Label>`` of its own: they are in ``<Labels name="kind">``."""
    spec = parse_label_config(UNCLAIMED.format(attrs="", fps="10"), 0.25, supported_controls())[0]

    reason = VideoRectangleControl(spec, detect_weights).unusable_reason()

    assert reason is not None
    assert 'name="kind"' in reason
    assert '<Label value="Red box" predicted_values="blue"/>' in reason


TWO_TRACKERS = """<View>
  <Video name="video" value="$video" frameRate="10"/>
  <Labels name="kind" toName="video"><Label value="Red box" predicted_values="red"/></Labels>
  <VideoRectangle name="box" toName="video" model_score_threshold="0.4" model_tracker="botsort"/>
  <VideoRectangle name="box2" toName="video" model_score_threshold="0.25"/>
</View>"""


def test_controls_sharing_weights_track_once_at_their_lowest_threshold_with_the_first_tracker(
    detect_weights, caplog
) -> None:
    strict, lenient = (
        VideoRectangleControl(spec, detect_weights)
        for spec in parse_label_config(TWO_TRACKERS, 0.5, supported_controls())
    )

    with caplog.at_level(logging.WARNING, logger="label_studio_yolo.tags.video"):
        options = tracking_options([strict, lenient])

    assert options == TrackingOptions(conf=0.25, tracker="botsort")
    assert "ask for trackers ['botsort', 'bytetrack']; tracking once with botsort" in caplog.text
    assert tracking_options([lenient]) == TrackingOptions(conf=0.25, tracker="bytetrack")
