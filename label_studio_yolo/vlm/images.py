"""What a vision-language model is shown: the image, or a padded crop around one box, as a bounded JPEG.

Example:
    >>> jpeg = encode_jpeg(pixels, max_side=1024)                    # doctest: +SKIP
    >>> crop = padded_crop(pixels, (120, 40, 180, 90), padding=0.15) # doctest: +SKIP
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from label_studio_yolo.media.decode import Pixels

JPEG_QUALITY = 90
"""JPEG quality of what is sent (the models read JPEG well, and a photo's PNG is much larger)."""

MIN_CROP_SIDE = 224
"""A crop's long side is enlarged to at least this many pixels: models see tiny images poorly, and a small box
would be only a few patches."""

CROP_PADDING = 0.15
"""Context kept around a box on each side, as a fraction of the box's width and height."""


def encode_jpeg(pixels: Pixels, max_side: int, min_side: int = 0) -> bytes:
    """``pixels`` (BGR) as JPEG bytes, scaled so the long side is at most ``max_side`` and at least ``min_side``."""
    import cv2

    height, width = pixels.shape[:2]
    long_side = max(height, width)
    scale = min(1.0, max_side / long_side) if long_side > max_side else max(1.0, min_side / long_side)
    sent: Any = pixels
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        sent = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    ok, encoded = cv2.imencode(".jpg", sent, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return bytes(encoded.tobytes())


def padded_crop(pixels: Pixels, box: tuple[float, float, float, float], padding: float = CROP_PADDING) -> Pixels:
    """The part of ``pixels`` around ``box`` (x0, y0, x1, y1 in pixels), ``padding`` of its size added on each
    side, clipped to the image; at least one pixel."""
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = box
    pad_x, pad_y = (x1 - x0) * padding, (y1 - y0) * padding
    left, top = int(max(0, np.floor(x0 - pad_x))), int(max(0, np.floor(y0 - pad_y)))
    right, bottom = int(min(width, np.ceil(x1 + pad_x))), int(min(height, np.ceil(y1 + pad_y)))
    crop: Any = pixels[top : max(bottom, top + 1), left : max(right, left + 1)]
    return np.ascontiguousarray(crop)


def data_url(jpeg: bytes) -> str:
    """A ``data:`` URL of JPEG bytes, as the OpenAI chat API takes images."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
