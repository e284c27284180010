"""Decoding: OpenCV's pixels where they match Pillow's, decoded once, and never an image Pillow's header check did not
see. Orientation is in ``test_decoding_orientation.py``, the pixel limit in ``test_decoding_limits.py``."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import ultralytics
from PIL import Image, ImageOps

from label_studio_yolo.errors import MediaError
from label_studio_yolo.media.decode import decode_image, decode_pixels
from tests.support.peak_memory import run_probe

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


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def with_exif_after_pixels(png: bytes, orientation: int) -> bytes:
    """``png`` with an eXIf chunk (as Pillow writes it) moved after the pixel data, just before IEND."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    chunk = png_chunk(b"eXIf", exif.tobytes())
    return png[:-12] + chunk + png[-12:]


def test_photos_decode_to_the_pixels_ultralytics_reads_from_the_file() -> None:
    for photo in PHOTOS:
        pixels = decode_pixels(photo.read_bytes())

        np.testing.assert_array_equal(pixels, cv2.imread(str(photo)))
        assert np.abs(pixels.astype(int) - pillow_bgr(photo.read_bytes())).max() <= 1


def test_the_orientation_of_an_exif_chunk_after_the_pixels_is_applied() -> None:
    """PNG allows eXIf after IDAT; read without decoding, it must still turn the image."""
    data = with_exif_after_pixels(encoded(gradient(), "PNG"), orientation=6)

    pixels = decode_pixels(data)

    assert pixels.shape == (7, 4, 3)
    np.testing.assert_array_equal(pixels, pillow_bgr(data))


def test_a_png_is_decoded_once(tmp_path: Path) -> None:
    """Decoding a 12-megapixel PNG costs OpenCV's decode alone (its pixels and the PNG reader's own buffer, 1.9x the
    pixels), not Pillow's decode (4 bytes a pixel) on top of it as well."""
    path = tmp_path / "large.png"
    Image.new("RGB", (4000, 3000), (10, 120, 230)).save(path, compress_level=1)
    probe = (
        "from label_studio_yolo.media.decode import decode_pixels\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "decode_pixels(open(sys.argv[2], 'rb').read())  # imports and first-call setup, on a small image\n"
        "before = reset_peak()\n"
        "shape = decode_pixels(data).shape\n"
        "print(json.dumps({'shape': shape, 'grown_kib': peak_kib() - before}))\n"
    )

    result = run_probe(probe, path, PHOTOS[0])

    pixel_bytes = 4000 * 3000 * 3
    assert result["shape"] == [3000, 4000, 3]
    assert result["grown_kib"] * 1024 < 2.5 * pixel_bytes, f"{result['grown_kib'] // 1024} MiB for 34 MiB of pixels"


def test_opencv_does_not_decode_another_format_hidden_in_the_bytes() -> None:
    """A Radiance HDR image of 2000 x 1000 pixels that Pillow reads as a 768 x 512 Kodak PhotoCD (its signature sits
    at byte 2048): OpenCV would decode the HDR, whose size Pillow's header check never saw."""
    ok, hdr = cv2.imencode(".hdr", np.full((1000, 2000, 3), 0.5, np.float32))
    assert ok
    first_line, rest = hdr.tobytes().split(b"\n", 1)
    head = first_line + b"\n" + (b"#" + b"x" * 62 + b"\n") * 31  # short comment lines, up to byte 2048
    head += b"#" + b"y" * (2047 - len(head))
    polyglot = head + b"PCD_\n" + rest
    assert cv2.imdecode(np.frombuffer(polyglot, np.uint8), cv2.IMREAD_COLOR).shape == (1000, 2000, 3)
    assert Image.open(io.BytesIO(polyglot)).size == (768, 512)

    with pytest.raises(MediaError, match="not a readable image"):
        decode_pixels(polyglot)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_other_pixel_modes_give_three_channels(mode: str) -> None:
    data = encoded(Image.new(mode, (12, 9)), "PNG")

    assert decode_pixels(data).shape == (9, 12, 3)
    assert decode_image(data).size == (12, 9)


def test_training_sees_a_16_bit_png_as_shown_not_white() -> None:
    """Pillow's RGB conversion clips 16-bit values to 255; training now decodes as serving does (the top 8 bits)."""
    grey = np.asarray(Image.open(PHOTOS[0]).convert("L"))
    data = encoded(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")

    for rgb in (np.asarray(decode_image(data)), decode_pixels(data)):
        assert np.abs(rgb.astype(int) - grey[:, :, None]).max() <= 1


def test_a_format_opencv_lacks_is_decoded_by_pillow() -> None:
    data = encoded(gradient(), "BMP")

    np.testing.assert_array_equal(decode_pixels(data), pillow_bgr(data))


@pytest.mark.parametrize("fmt", ["TGA", "PPM", "PCX", "SGI"])
def test_formats_no_browser_shows_are_not_decoded(fmt: str) -> None:
    """Pillow reads some forty formats; each decoder is code a crafted file can reach, so only images Label Studio
    can show are decoded."""
    with pytest.raises(MediaError, match="not one of JPEG, PNG, WEBP, GIF, BMP, TIFF, HEIF, AVIF"):
        decode_pixels(encoded(gradient(), fmt))


def test_pillows_own_decompression_bomb_check_still_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with pytest.raises(MediaError, match="decompression bomb") as raised:
        decode_pixels(encoded(gradient(40, 40), "PNG"))
    assert "Image size (1600 pixels) exceeds limit of 200 pixels" in str(raised.value)
    assert "MEDIA_MAX_PIXELS" in str(raised.value)


@pytest.mark.parametrize("data", [b"<html>login page</html>", b""])
def test_bytes_that_are_not_an_image_fail(data: bytes) -> None:
    with pytest.raises(MediaError, match="not a readable image"):
        decode_pixels(data)


@pytest.mark.parametrize("kept", [0.02, 0.9, 0.99])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_image_fails_with_a_reason(kept: float, fmt: str) -> None:
    """Not predicted on a half-grey picture: the task fails and "Retrieve predictions" tries it again."""
    whole = PHOTOS[0].read_bytes() if fmt == "JPEG" else encoded(Image.open(PHOTOS[0]), "PNG")
    data = whole[: int(len(whole) * kept)]

    with pytest.raises(MediaError, match="not a readable image"):
        decode_pixels(data)
    with pytest.raises(MediaError, match="not a readable image"):
        decode_image(data)
