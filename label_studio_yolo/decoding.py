"""Turn image bytes into pixels, oriented as Label Studio shows them (EXIF orientation applied).

Two forms, for two users:

- :func:`decode_pixels` gives what inference wants: the BGR ``uint8`` array ultralytics itself reads from a file.
  OpenCV decodes (about 3x faster than Pillow's decode, ``exif_transpose`` and ``convert`` copies, and no RGB to BGR
  copy inside ultralytics afterwards); Pillow reads only the header first, for its decompression-bomb check and the
  orientation, and decodes what OpenCV cannot (HEIC).
- :func:`decode_image` gives a Pillow image (training writes it to the dataset).

Every failure raises :class:`MediaError` with the reason.

Example:
    >>> pixels = decode_pixels(Path("bus.jpg").read_bytes())       # doctest: +SKIP
    >>> pixels.shape, pixels.dtype
    ((1080, 810, 3), dtype('uint8'))
"""

from __future__ import annotations

import functools
import io
from typing import Any, cast

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

Pixels = np.ndarray[Any, np.dtype[np.uint8]]
"""An image as ultralytics reads it: height x width x 3, BGR, uint8."""


class MediaError(Exception):
    """A task's image could not be loaded; the message says why."""


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (phone photos) once per process."""
    from pi_heif import register_heif_opener

    register_heif_opener()


def decode_image(data: bytes) -> Image.Image:
    """Decode bytes (any format Pillow reads, plus HEIC/HEIF) into an RGB image with its EXIF orientation applied."""
    _register_heif()
    with _opened(data) as opened:
        try:
            return ImageOps.exif_transpose(opened).convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise MediaError(f"Content is not a readable image ({error})") from error


def decode_pixels(data: bytes) -> Pixels:
    """Decode bytes into a BGR ``uint8`` array (height x width x 3) with the EXIF orientation applied."""
    import cv2

    _register_heif()
    with _opened(data) as opened:  # reads the header only
        try:  # EXIF may sit past the pixels (PNG): a truncated file fails here
            orientation = opened.getexif().get(ExifTags.Base.Orientation, 1)
            flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # orientation is applied below, for every format
            pixels = cast("Pixels | None", cv2.imdecode(np.frombuffer(data, np.uint8), flags))
        except (OSError, SyntaxError, ValueError, cv2.error) as error:
            raise MediaError(f"Content is not a readable image ({error})") from error
        if pixels is None:  # a format OpenCV lacks (HEIC): Pillow decodes it
            return _pillow_pixels(opened)
    return _oriented(pixels, orientation)


def _opened(data: bytes) -> Image.Image:
    """The image opened lazily by Pillow (header read, size checked against its decompression-bomb limit)."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise MediaError(f"Image refused as a decompression bomb: {error}") from error
    except UnidentifiedImageError as error:
        raise MediaError(f"Content is not a readable image: {_described(data)}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise MediaError(f"Content is not a readable image ({error})") from error


def _described(data: bytes) -> str:
    """What ``data`` holds, for a person to recognise: its length and first bytes (an HTML page shows as such)."""
    if not data:
        return "it is empty (0 bytes)"
    return f"{len(data)} bytes starting {data[:24]!r} (an unknown format, or a file cut short)"


def _pillow_pixels(opened: Image.Image) -> Pixels:
    try:
        rgb = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise MediaError(f"Content is not a readable image ({error})") from error
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _oriented(pixels: Pixels, orientation: object) -> Pixels:
    """``pixels`` turned as EXIF ``orientation`` asks, exactly as Pillow's ``ImageOps.exif_transpose`` turns them.

    Written here because OpenCV applies the EXIF orientation of JPEG files only.
    """
    turned = {
        2: lambda a: a[:, ::-1],  # mirrored
        3: lambda a: a[::-1, ::-1],  # upside down
        4: lambda a: a[::-1],  # mirrored upside down
        5: lambda a: a.transpose(1, 0, 2),  # transposed
        6: lambda a: a.transpose(1, 0, 2)[:, ::-1],  # 90 degrees clockwise to display
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # transversed
        8: lambda a: a.transpose(1, 0, 2)[::-1],  # 90 degrees counter-clockwise to display
    }.get(orientation if isinstance(orientation, int) else 1)
    return pixels if turned is None else np.ascontiguousarray(turned(pixels))
