"""Memory for decoding images, shared by every thread of a process: decodes in flight stay within a byte budget.

``MEDIA_MAX_PIXELS`` bounds one image; this bounds them together. A decode first reserves what it will need at its
peak (its pixel count times what its decoder was measured to use per pixel), waits while other decodes hold the
budget, and gives it back when it ends; after a large decode the C heap is trimmed, so the freed pages go back to the
system instead of staying with the process.

Example:
    >>> budget = decode_budget(2 * 1024**3)
    >>> with budget.reserved(decode_cost(4000 * 3000, opencv=True), "a 4000x3000 JPEG"):    # doctest: +SKIP
    ...     pixels = decode(...)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from label_studio_yolo.errors import MediaError
from label_studio_yolo.heap import trim_heap

OPENCV_BYTES_PER_PIXEL = 7
"""Peak bytes per pixel of a JPEG, PNG or WebP decode (OpenCV, then the EXIF turn): 6.1-6.4 measured at 16 Mpx."""

PILLOW_BYTES_PER_PIXEL = 15
"""Peak bytes per pixel of a decode by Pillow (its image, the RGB conversion, the BGR copy): TIFF and BMP 14.2, GIF
11.2 measured at 16 Mpx."""

AV1_HEVC_BYTES_PER_PIXEL = 21
"""Peak bytes per pixel of an AVIF or HEIF/HEIC decode (the codec's planes besides Pillow's copies): 16.5 measured at
16 Mpx, 20.9 at 100 Mpx."""

AV1_HEVC_FORMATS = ("AVIF", "HEIF")

DECODE_WAIT = 30.0
"""Seconds a decode waits for others to give back the budget before its task fails with the reason."""

TRIM_AFTER_BYTES = 256 * 1024 * 1024
"""A decode reserving at least this much trims the C heap when it ends (a 9999x9999 AVIF left 1 GiB behind)."""


def decode_cost(pixels: int, opencv: bool, image_format: str | None = None) -> int:
    """The bytes a decode of ``pixels`` pixels reserves: by OpenCV (``opencv``), or by Pillow of ``image_format``."""
    if opencv:
        return pixels * OPENCV_BYTES_PER_PIXEL
    return pixels * (AV1_HEVC_BYTES_PER_PIXEL if image_format in AV1_HEVC_FORMATS else PILLOW_BYTES_PER_PIXEL)


class DecodeBudget:
    """A byte budget that decodes reserve from (thread-safe)."""

    def __init__(self, total: int, wait: float = DECODE_WAIT) -> None:
        self.total, self.wait = total, wait
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserved(self, cost: int, what: str) -> Iterator[None]:
        """Hold ``cost`` bytes for the block, waiting up to :attr:`wait` seconds for them.

        Raises:
            MediaError: ``cost`` alone is over the budget, or the budget stayed taken by other decodes.
        """
        if cost > self.total:
            raise MediaError(
                f"Decoding {what} needs about {_mib(cost)} of memory, more than MEDIA_DECODE_BYTES ({_mib(self.total)})"
                " allows one process; raise MEDIA_DECODE_BYTES, or send a smaller image"
            )
        with self._changed:
            if not self._changed.wait_for(lambda: self.in_use + cost <= self.total, timeout=self.wait):
                raise MediaError(
                    f"Decoding {what} needs about {_mib(cost)} of memory; other images held MEDIA_DECODE_BYTES "
                    f"({_mib(self.total)}) for {self.wait:g} s"
                )
            self.in_use += cost
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= cost
                self._changed.notify_all()
            if cost >= TRIM_AFTER_BYTES:
                trim_heap()


@functools.cache
def decode_budget(total: int) -> DecodeBudget:
    """The process's budget of ``total`` bytes (one per value, so every loader of the process shares it)."""
    return DecodeBudget(total)


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"
