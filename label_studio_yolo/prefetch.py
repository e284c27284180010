"""Download the images of the next tasks while the current one runs through the model.

A batch from Label Studio (or a bulk run) names its images up front, so their downloads need not wait for the model:
a few threads fetch the bytes of the next tasks, a bounded number ahead, and each image is decoded only when its
task is predicted (decoded pixels are large; compressed bytes are not).

Example:
    >>> with MediaPrefetcher(loader, ["/data/upload/1/a.jpg", "/data/upload/1/b.jpg"]) as images:  # doctest: +SKIP
    ...     first = images.load_pixels("/data/upload/1/a.jpg")     # b.jpg is downloading meanwhile
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Protocol

from label_studio_yolo.decoding import MediaError, Pixels, decode_pixels
from label_studio_yolo.media import ImageLoader

PREFETCH_AHEAD = 8
"""Images downloaded ahead of the one being predicted (their bytes are held until their task's turn)."""

PREFETCH_THREADS = 4
"""Concurrent downloads."""


class ImageSource(Protocol):
    """Anything that turns a task-data value into pixels: :class:`ImageLoader` or :class:`MediaPrefetcher`."""

    def load_pixels(self, value: object) -> Pixels: ...


class MediaPrefetcher:
    """Serves ``load_pixels(value)`` for ``values`` in the order given, downloading up to ``ahead`` of them in advance.

    A value that was not announced is loaded directly; announced values skipped over (a task that failed before its
    second image) are dropped. Download errors are raised by ``load_pixels`` for that value only.
    """

    def __init__(self, loader: ImageLoader, values: Sequence[object], ahead: int = PREFETCH_AHEAD) -> None:
        self.loader = loader
        self._upcoming = deque(value for value in values if isinstance(value, str) and value.strip())
        self._ahead = ahead
        self._pending: deque[tuple[str, Future[bytes]]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=PREFETCH_THREADS, thread_name_prefix="prefetch")
        self._fill()

    def load_pixels(self, value: object) -> Pixels:
        """The image at ``value``: from its download if it was prefetched, else loaded now."""
        while self._pending and self._pending[0][0] != value and any(v == value for v, _ in self._pending):
            self._pending.popleft()[1].cancel()
        if not self._pending or self._pending[0][0] != value:
            return self.loader.load_pixels(value)
        _, download = self._pending.popleft()
        self._fill()
        return decode_pixels(download.result())

    def close(self) -> None:
        """Stop: downloads not yet started are cancelled, the running ones finish in the background."""
        self._upcoming.clear()
        for _, download in self._pending:
            download.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> MediaPrefetcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _fill(self) -> None:
        while self._upcoming and len(self._pending) < self._ahead:
            value = self._upcoming.popleft()
            self._pending.append((value, self._pool.submit(self._read, value)))

    def _read(self, value: str) -> bytes:
        try:
            return self.loader.read_bytes(value)
        except MediaError:
            raise
        except Exception as error:  # a thread must hand every failure back to the task that needs it
            raise MediaError(f"Could not download {value[:80]}: {error!r}") from error
