"""Decodes in flight share one memory budget per process: a big image waits for its share or fails alone."""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from label_studio_yolo.errors import MediaError
from label_studio_yolo.media.decode import decode_pixels
from label_studio_yolo.media.decode_budget import OPENCV_BYTES_PER_PIXEL, DecodeBudget
from label_studio_yolo.media.loader import ImageLoader, MediaSettings

SIDE = 1000
"""Side of the test images: a million pixels."""


def encoded(fmt: str) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 255, (SIDE // 10, SIDE // 10, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((SIDE, SIDE)).save(buffer, format=fmt)
    return buffer.getvalue()


class WatchedBudget(DecodeBudget):
    """A budget that remembers the most it ever had in use."""

    def __init__(self, total: int, wait: float = 30.0) -> None:
        super().__init__(total, wait)
        self.most = 0

    def reserved(self, cost: int, what: str):  # type: ignore[no-untyped-def]
        context = super().reserved(cost, what)

        class Watching:
            def __enter__(inner) -> None:
                context.__enter__()
                self.most = max(self.most, self.in_use)

            def __exit__(inner, *exc: object) -> None:
                context.__exit__(*exc)

        return Watching()


def test_decodes_that_do_not_fit_together_take_turns_and_all_finish() -> None:
    """Four PNGs at once took +2,147 MiB before; with room for one, each waits for its turn."""
    one = SIDE * SIDE * OPENCV_BYTES_PER_PIXEL
    budget = WatchedBudget(one + one // 2)
    data = encoded("PNG")

    with ThreadPoolExecutor(4) as pool:
        decoded = list(pool.map(lambda _: decode_pixels(data, 10**8, budget), range(4)))

    assert [pixels.shape for pixels in decoded] == [(SIDE, SIDE, 3)] * 4
    assert budget.most == one, "never two decodes at once"
    assert budget.in_use == 0


def test_an_image_that_alone_needs_more_than_the_budget_is_refused_before_decoding() -> None:
    loader = ImageLoader(MediaSettings(decode_bytes=10 * 2**20))  # the TIFF needs 1 Mpx x PILLOW_BYTES_PER_PIXEL
    data_uri = "data:image/tiff;base64," + base64.b64encode(encoded("TIFF")).decode()

    with pytest.raises(MediaError) as refused:
        loader.load_pixels(data_uri)

    assert str(refused.value) == (
        "Decoding a 1000x1000 TIFF needs about 14 MiB of memory, more than MEDIA_DECODE_BYTES (10 MiB) allows one "
        "process; raise MEDIA_DECODE_BYTES, or send a smaller image"
    )
    assert loader.decode_budget is not None and loader.decode_budget.in_use == 0


def test_a_decode_that_waits_too_long_fails_with_the_reason_and_gives_nothing_back_twice() -> None:
    budget = DecodeBudget(100, wait=0.2)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with budget.reserved(80, "the first image"):
            holding.set()
            release.wait(30)

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(hold)
        assert holding.wait(30)
        second = r"Decoding the second image needs about 0 MiB of memory; other images held MEDIA_DECODE_BYTES"
        with pytest.raises(MediaError, match=second), budget.reserved(40, "the second image"):
            pass
        with budget.reserved(20, "a small one"):  # what is left still serves
            assert budget.in_use == 100
        release.set()
        first.result()

    assert budget.in_use == 0


def test_loaders_of_one_process_share_one_budget() -> None:
    first = ImageLoader(MediaSettings(decode_bytes=10**9, allowed_hosts="public"))
    second = ImageLoader(MediaSettings(decode_bytes=10**9, allowed_hosts="*"))
    assert first.decode_budget is second.decode_budget
