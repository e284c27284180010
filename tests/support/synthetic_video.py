"""A short synthetic video of a red and a blue box moving steadily, with each frame's ground-truth boxes.

Frames look like the images of :mod:`tests.support.synthetic` (noisy grey background, filled boxes of the
classes' colours, the same size), so the tiny detector trained on those images finds the boxes on every frame.

Example:
    >>> video = write_video(Path("boxes.mp4"))
    >>> video.frames, video.fps, video.truth[0][0].label
    (30, 10.0, 'red')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tests.support.synthetic import CLASS_COLOURS, IMAGE_SIZE, GroundTruthBox

FRAMES = 30
"""Frames in the video."""

FPS = 10.0
"""Frame rate of the video."""

MOTION: dict[str, tuple[tuple[int, int, int, int], tuple[int, int]]] = {
    "red": ((8, 12, 48, 44), (3, 1)),
    "blue": ((144, 92, 180, 134), (-3, 0)),
}
"""Each box's first position (x0, y0, x1, y1) and its move per frame (dx, dy); they never overlap or leave the frame."""


@dataclass(frozen=True)
class SyntheticVideo:
    """A video file, its frame rate, and the boxes on each frame (``truth[0]`` is the first frame)."""

    path: Path
    fps: float
    truth: list[list[GroundTruthBox]]

    @property
    def frames(self) -> int:
        """Number of frames."""
        return len(self.truth)


def frame_truth(index: int) -> list[GroundTruthBox]:
    """The boxes on frame ``index`` (0-based)."""
    boxes = []
    for label, ((x0, y0, x1, y1), (dx, dy)) in MOTION.items():
        boxes.append(GroundTruthBox(label, x0 + dx * index, y0 + dy * index, x1 + dx * index, y1 + dy * index))
    return boxes


def write_video(path: Path, seed: int = 0, frames: int = FRAMES, fps: float = FPS) -> SyntheticVideo:
    """Write ``frames`` frames (MPEG-4 Part 2, ``mp4v``) to ``path`` and return the video with its ground truth."""
    width, height = IMAGE_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {path}")
    rng = np.random.default_rng(seed)
    truth = []
    try:
        for index in range(frames):
            frame = rng.integers(90, 160, size=(height, width, 3), dtype=np.uint8)
            boxes = frame_truth(index)
            for box in boxes:
                red, green, blue = CLASS_COLOURS[box.label]
                frame[box.y0 : box.y1, box.x0 : box.x1] = (blue, green, red)  # OpenCV frames are BGR
            writer.write(frame)
            truth.append(boxes)
    finally:
        writer.release()
    return SyntheticVideo(path, fps, truth)
