"""Every EXIF orientation in JPEG, PNG, WebP and TIFF is shown as displayed, by serving and by training alike.

Each image is a real photo (ultralytics' ``bus.jpg``, shrunk) stored unturned with an EXIF orientation tag, so what
is displayed is known: the stored pixels turned as the EXIF standard says (and as Pillow's ``exif_transpose`` turns
them, and browsers show them, which is what Label Studio's annotators see).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import ultralytics
from PIL import Image, ImageOps

from label_studio_yolo.media.decode import decode_image, decode_pixels
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from label_studio_yolo.training.annotations import annotated_tasks
from label_studio_yolo.training.dataset import task_labels, write_dataset
from label_studio_yolo.training.plan import plan_training
from label_studio_yolo.training.split import split_tasks

STORED = np.asarray(
    Image.open(Path(ultralytics.__file__).parent / "assets" / "bus.jpg").resize((160, 213), Image.Resampling.BILINEAR)
)
"""The stored pixels (RGB, 213 rows of 160): a photo, whose every turn and mirror looks different."""

DISPLAYED: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left to right
    3: lambda a: np.rot90(a, 2),
    4: lambda a: a[::-1],  # mirrored top to bottom
    5: lambda a: a.transpose(1, 0, 2),  # mirrored along the diagonal from the top left
    6: lambda a: np.rot90(a, -1),  # turned 90 degrees clockwise
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # mirrored along the other diagonal
    8: lambda a: np.rot90(a, 1),  # turned 90 degrees counter-clockwise
}
"""EXIF orientation -> the displayed image, from the stored one (EXIF 2.3, tag 0x0112)."""

TOLERANCE = {"JPEG": 8.0, "WEBP": 8.0, "PNG": 0.0, "TIFF": 0.0}
"""Mean difference per channel allowed from the stored pixels: lossy formats change them a little (about 5); a
wrong turn or mirror of the photo differs by 50 and more."""

CASES = [(fmt, orientation) for fmt in TOLERANCE for orientation in DISPLAYED]

CONFIG = '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">' + (
    '<Label value="Bus"/></RectangleLabels></View>'
)


def stored_with(fmt: str, orientation: int) -> bytes:
    """The photo's stored pixels in ``fmt``, tagged with EXIF ``orientation``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(STORED).save(buffer, format=fmt, exif=exif)
    return buffer.getvalue()


def assert_displayed(rgb: np.ndarray, fmt: str, orientation: int) -> None:
    expected = DISPLAYED[orientation](STORED)
    assert rgb.shape == expected.shape, f"{fmt} orientation {orientation}: {rgb.shape}, displayed {expected.shape}"
    difference = np.abs(rgb.astype(float) - expected).mean()
    assert difference <= TOLERANCE[fmt], f"{fmt} orientation {orientation}: pixels differ by {difference:.1f}"


def test_the_displayed_images_are_what_pillow_shows() -> None:
    """The expected images above are the truth: Pillow's ``exif_transpose`` gives them from a lossless file."""
    for orientation, turned in DISPLAYED.items():
        shown = ImageOps.exif_transpose(Image.open(io.BytesIO(stored_with("PNG", orientation))))
        np.testing.assert_array_equal(np.asarray(shown), turned(STORED))


@pytest.mark.parametrize(("fmt", "orientation"), CASES)
def test_serving_and_training_decode_the_displayed_image(fmt: str, orientation: int) -> None:
    data = stored_with(fmt, orientation)

    served = decode_pixels(data)[:, :, ::-1]  # BGR for ultralytics
    trained = np.asarray(decode_image(data))

    assert_displayed(served, fmt, orientation)
    np.testing.assert_array_equal(trained, served)


def test_the_training_dataset_holds_the_displayed_images(tmp_path: Path) -> None:
    """What training writes to its dataset, from Label Studio tasks (data: URIs), is the displayed image."""
    images = {task_id: stored_with(fmt, orientation) for task_id, (fmt, orientation) in enumerate(CASES, start=1)}
    tasks = [
        {
            "id": task_id,
            "data": {"image": "data:image/any;base64," + base64.b64encode(data).decode()},
            "annotations": [{"id": task_id, "result": [], "was_cancelled": False}],
        }
        for task_id, data in images.items()
    ]
    plan = plan_training(CONFIG, "detect", 0.5, "base.pt")
    annotated = annotated_tasks(tasks, "image", plan.from_names)

    split_of = split_tasks(task_labels(plan, annotated), val_fraction=0.25, min_val=1)
    dataset = write_dataset(annotated, ImageLoader(MediaSettings()), plan, tmp_path, split_of)

    assert dataset.skipped == {}
    for task_id, (fmt, orientation) in enumerate(CASES, start=1):
        (written,) = tmp_path.glob(f"images/*/{task_id}.png")
        assert_displayed(np.asarray(Image.open(written).convert("RGB")), fmt, orientation)
