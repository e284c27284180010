"""``<VideoRectangle>``: one region per object the tracker follows through a task's video.

``<VideoRectangle>`` has no labels of its own; they come from the ``<Labels>`` tag on the same ``<Video>``, with
``predicted_values`` as for images. A track's label is that of the class it has on most frames (a track whose
class no label claims is left out). Its region is Label Studio's keyframe sequence: the box on every frame the
tracker reported it (1-based frame numbers, percent coordinates), with interpolation switched off
(``enabled: false``) on the last box before a gap and on the track's last box, so the box disappears where the
object did. The region's score is the mean score of its boxes; boxes below ``model_score_threshold`` are dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from label_studio_yolo.errors import LabelConfigError
from label_studio_yolo.geometry import ImageSize, rectangle_percent
from label_studio_yolo.inference.outputs import ModelOutput, Track, TrackedBox, VideoInfo
from label_studio_yolo.inference.tracking import DEFAULT_TRACKER, TRACKERS, TrackingOptions
from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.label_config import ControlSpec
from label_studio_yolo.logsafe import printable
from label_studio_yolo.tags.base import Control, build_region

logger = logging.getLogger(__name__)

TRACKER_ATTR = "model_tracker"
"""``<VideoRectangle>`` attribute naming the tracker: ``bytetrack`` (default) or ``botsort``."""

LABEL_STUDIO_DEFAULT_FRAMERATE = 24.0
"""Frame rate Label Studio assumes for a ``<Video>`` without ``frameRate``; it maps frame numbers to times."""


class VideoRectangleControl(Control):
    """Tracks from a detection, segmentation or pose model as video rectangles (``model_tracker`` picks the
    tracker: ``bytetrack``, the default, or ``botsort``)."""

    control_type = "VideoRectangle"
    object_tags = frozenset({"Video"})
    model_tasks = frozenset({"detect", "segment", "pose"})

    def __init__(self, spec: ControlSpec, weights: LoadedWeights) -> None:
        super().__init__(spec, weights)
        self._warned_fps: set[float] = set()

    def regions(self, output: ModelOutput) -> list[dict[str, Any]]:
        """One region per track that keeps a box above the threshold and whose main class a label claims."""
        if output.video is None:
            return []
        self._check_framerate(output.video.fps)
        regions = []
        for track in output.tracks:
            region = self._track_region(track, output.size, output.video)
            if region is not None:
                regions.append(region)
        return regions

    def unusable_reason(self) -> str | None:
        """The base checks, after refusing an unknown ``model_tracker`` (a config error with the fix)."""
        tracker_name(self.spec)
        return super().unusable_reason()

    def _check_framerate(self, fps: float) -> None:
        """Warn (once per frame rate) when the ``<Video>`` tag's ``frameRate`` is not the video's: Label Studio
        would then show each box on another frame than the one it was found on."""
        video_tag = next((tag for tag in self.spec.tag.objects or [] if tag.name == self.spec.to_name), None)
        attrs = {str(key).lower(): value for key, value in ((video_tag.attr or {}) if video_tag else {}).items()}
        declared = attrs.get("framerate", LABEL_STUDIO_DEFAULT_FRAMERATE)  # attribute names ignore case
        try:
            declared_fps = float(declared)
        except (TypeError, ValueError):
            return  # taken from task data ("$fps"): the project's business
        if abs(declared_fps - fps) > 0.01 * fps and fps not in self._warned_fps:
            self._warned_fps.add(fps)
            logger.warning(
                '<Video name="%s"> has frameRate %s but the video has %.3f frames per second: set frameRate="%g" '
                '(or frameRate="$fps" from task data) so Label Studio shows the boxes on the right frames',
                printable(self.spec.to_name),  # the config comes with the request
                printable(declared),
                fps,
                fps,
            )

    def _track_region(self, track: Track, size: ImageSize, video: VideoInfo) -> dict[str, Any] | None:
        boxes = sorted((box for box in track.boxes if box.score >= self.spec.threshold), key=lambda box: box.frame)
        if not boxes:
            return None
        main_class = Counter(box.class_name for box in boxes).most_common(1)[0][0]
        label = self.spec.labels.label_for(main_class)
        if label is None:
            return None
        sequence = keyframe_sequence(boxes, size, video.fps)
        value = {"framesCount": video.frames, "duration": video.frames / video.fps, "sequence": sequence}
        score = sum(box.score for box in boxes) / len(boxes)
        region = build_region(self.spec, [label], value, score, None)
        region["value"]["sequence"] = sequence  # the SDK's model drops the "enabled" flags
        return region


def keyframe_sequence(boxes: list[TrackedBox], size: ImageSize, fps: float) -> list[dict[str, Any]]:
    """Label Studio keyframes for a track's boxes (sorted by frame): 1-based frame, time, percent box.

    A keyframe followed by a gap in frames, and the last one, get ``enabled: false``: Label Studio does not
    interpolate the box past them.
    """
    sequence = []
    for position, box in enumerate(boxes):
        is_last = position == len(boxes) - 1
        continues = not is_last and boxes[position + 1].frame == box.frame + 1
        frame = box.frame + 1
        percent = rectangle_percent(box.x0, box.y0, box.x1, box.y1, size)
        sequence.append(
            {
                "frame": frame,
                "enabled": continues,
                "rotation": 0,
                "x": percent["x"],
                "y": percent["y"],
                "width": percent["width"],
                "height": percent["height"],
                "time": (frame - 1) / fps,
            }
        )
    return sequence


def tracker_name(spec: ControlSpec) -> str:
    """The tracker ``spec``'s control asks for (``model_tracker``, any case), else the default (ByteTrack).

    Raises:
        LabelConfigError: the attribute names a tracker that is not supported.
    """
    raw = spec.attribute(TRACKER_ATTR)
    name = (raw or DEFAULT_TRACKER).strip().lower().removesuffix(".yaml")
    if name not in TRACKERS:
        control, from_name, to_name = spec.control_type, printable(spec.from_name), printable(spec.to_name)
        raise LabelConfigError(
            f'<{control} name="{from_name}"> has {TRACKER_ATTR}="{printable(raw)}"; it must be one of '
            f'{", ".join(sorted(TRACKERS))}, e.g. <{control} name="{from_name}" toName="{to_name}" '
            f'{TRACKER_ATTR}="botsort"/>.'
        )
    return name


def tracking_options(controls: Sequence[Control]) -> TrackingOptions:
    """How to track once for controls that share weights: their lowest threshold, and the first control's tracker
    (a warning names the others when they differ)."""
    names = [tracker_name(control.spec) for control in controls]
    if len(set(names)) > 1:
        logger.warning(
            "Controls %s share weights but ask for trackers %s; tracking once with %s",
            printable([control.spec.from_name for control in controls]),
            names,
            names[0],
        )
    return TrackingOptions(conf=min(control.spec.threshold for control in controls), tracker=names[0])
