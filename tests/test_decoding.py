"""Decoding for inference: OpenCV's pixels, turned exactly as Pillow (and so Label Studio) shows them."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import ultralytics
from PIL import Image, ImageOps

from label_studio_yolo.decoding import MediaError, decode_image, decode_pixels

PHOTOS = [Path(ultralytics.__file__).parent / "assets" / name for name in ("bus.jpg", "zidane.jpg")]
"""Real photos shipped inside ultralytics."""


def encoded(image: Image.Image, fmt: str, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, format=fmt, exif=exif)
    return buffer.getvalue()


def pillow_bgr(data: bytes) -> np.ndarray:
    """What the backend fed the model before: Pillow's decode with ``exif_transpose``, as BGR."""
    with Image.open(io.BytesIO(data)) as opened:
        return np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))[:, :, ::-1]


def gradient(width: int = 7, height: int = 4) -> Image.Image:
    """An image whose every pixel differs, so any wrong turn or mirror shows."""
    values = np.arange(width * height * 3, dtype=np.uint8).reshape(height, width, 3)
    return Image.fromarray(values, "RGB")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_as_pillow_turns_it(orientation):
    data = encoded(gradient(), "PNG", orientation)  # lossless, so the pixels must be equal

    pixels = decode_pixels(data)

    np.testing.assert_array_equal(pixels, pillow_bgr(data))
    assert pixels.flags.c_contiguous


def test_photos_decode_to_the_pixels_ultralytics_reads_from_the_file():
    for photo in PHOTOS:
        pixels = decode_pixels(photo.read_bytes())

        np.testing.assert_array_equal(pixels, cv2.imread(str(photo)))
        assert np.abs(pixels.astype(int) - pillow_bgr(photo.read_bytes())).max() <= 1


def test_a_rotated_jpeg_is_turned_to_stand_as_displayed():
    data = encoded(Image.new("RGB", (40, 20), (30, 60, 220)), "JPEG", orientation=6)

    assert decode_pixels(data).shape == (40, 20, 3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_other_pixel_modes_give_three_channels(mode):
    data = encoded(Image.new(mode, (12, 9)), "PNG")

    assert decode_pixels(data).shape == (9, 12, 3)


def test_a_format_opencv_lacks_is_decoded_by_pillow():
    data = encoded(gradient(), "TGA")

    np.testing.assert_array_equal(decode_pixels(data), pillow_bgr(data))


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with pytest.raises(MediaError, match="decompression bomb"):
        decode_pixels(encoded(gradient(40, 40), "PNG"))


@pytest.mark.parametrize("data", [b"<html>login page</html>", b""])
def test_bytes_that_are_not_an_image_fail(data):
    with pytest.raises(MediaError, match="not a readable image"):
        decode_pixels(data)


@pytest.mark.parametrize("kept", [0.02, 0.9, 0.99])
def test_a_truncated_photo_fails_with_a_reason(kept: float) -> None:
    """Not predicted on a half-grey picture: the task fails and "Retrieve predictions" tries it again."""
    whole = PHOTOS[0].read_bytes()
    data = whole[: int(len(whole) * kept)]

    with pytest.raises(MediaError, match="not a readable image"):
        decode_pixels(data)
    with pytest.raises(MediaError, match="not a readable image"):
        decode_image(data)
