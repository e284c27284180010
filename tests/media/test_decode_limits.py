"""MEDIA_MAX_PIXELS: an image larger than the limit is refused from its header, in every format and on every path
that decodes (serving, prefetched serving, training), with a message that says the size, the limit and the setting.
"""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from label_studio_yolo.errors import MediaError
from label_studio_yolo.media.decode import decode_image, decode_pixels
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from label_studio_yolo.media.prefetch import MediaPrefetcher
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.annotations import annotated_tasks
from label_studio_yolo.training.dataset import task_labels, write_dataset
from label_studio_yolo.training.plan import plan_training
from label_studio_yolo.training.split import split_tasks

FORMATS = ["PNG", "JPEG", "WEBP", "TIFF", "GIF", "BMP"]

CONFIG = '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">' + (
    '<Label value="Bus"/></RectangleLabels></View>'
)


def image_bytes(fmt: str, width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header announcing ``width`` x ``height`` pixels, followed by the start of their data only."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(4096)))


def assert_refused_for_size(raised: pytest.ExceptionInfo[MediaError], size: str, limit: int) -> None:
    message = str(raised.value)
    assert f"Image of {size} pixels" in message, message
    assert f"larger than MEDIA_MAX_PIXELS ({limit} pixels); raise MEDIA_MAX_PIXELS to accept it" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_image_over_the_limit_is_refused_in_every_format(fmt: str) -> None:
    data = image_bytes(fmt)  # 40 x 30 = 1200 pixels

    for decode in (decode_pixels, decode_image):
        with pytest.raises(MediaError) as raised:
            decode(data, max_pixels=1199)
        assert_refused_for_size(raised, "40 x 30", 1199)
    assert decode_pixels(data, max_pixels=1200).shape == (30, 40, 3)
    assert decode_image(data, max_pixels=1200).size == (40, 30)


def test_a_12500_by_12500_png_is_refused_from_its_header_at_once() -> None:
    """Its pixels are not even there: the size from the header is enough to refuse it."""
    started = time.monotonic()

    with pytest.raises(MediaError) as raised:
        decode_pixels(png_claiming(12500, 12500))

    assert_refused_for_size(raised, "12500 x 12500", 100_000_000)
    assert "(156250000 pixels)" in str(raised.value)
    assert time.monotonic() - started < 1


def test_the_loader_refuses_by_the_media_max_pixels_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIA_MAX_PIXELS", "1000")
    loader = ImageLoader(MediaSettings.from_settings(BackendSettings()))
    uri = data_uri(image_bytes("PNG"))

    for load in (loader.load_pixels, loader.load):
        with pytest.raises(MediaError) as raised:
            load(uri)
        assert_refused_for_size(raised, "40 x 30", 1000)


def test_a_prefetched_image_is_refused_too() -> None:
    uri = data_uri(image_bytes("JPEG"))
    loader = ImageLoader(MediaSettings(max_pixels=1000))

    with MediaPrefetcher(loader, [[uri]]) as images, pytest.raises(MediaError) as raised:
        images.of_task(0).load_pixels(uri)  # announced, so downloaded ahead and decoded from the download

    assert_refused_for_size(raised, "40 x 30", 1000)


def test_training_leaves_out_an_image_over_the_limit_with_the_reason(tmp_path: Path) -> None:
    tasks = [
        {
            "id": task_id,
            "data": {"image": data_uri(image_bytes("PNG", *size))},
            "annotations": [{"id": task_id, "result": [], "was_cancelled": False}],
        }
        for task_id, size in ((1, (40, 30)), (2, (20, 10)))
    ]
    plan = plan_training(CONFIG, "detect", 0.5, "base.pt")
    loader = ImageLoader(MediaSettings(max_pixels=1000))

    annotated = annotated_tasks(tasks, "image", plan.from_names)
    dataset = write_dataset(annotated, loader, plan, tmp_path, split_tasks(task_labels(plan, annotated), 0.5, 1))

    assert list(dataset.skipped) == [1]
    assert "Image of 40 x 30 pixels (1200 pixels) refused before decoding" in dataset.skipped[1]
    assert dataset.train_ids + dataset.val_ids == [2]
