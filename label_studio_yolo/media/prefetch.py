"""Download the images of the next tasks while the current ones run through the model.

A batch from Label Studio (or a bulk run) names its images up front (task-data strings, or cloud-storage files
located for their task), so their downloads need not wait for the model: a few threads fetch the bytes of the next
tasks in task order, a bounded number ahead, and each image is decoded only when its task is predicted (decoded
pixels are large; compressed bytes are not). One prefetcher serves every
lane of a batch: lanes take the next task as they finish one, so the downloads run ahead of all of them together.

Example:
    >>> with MediaPrefetcher(loader, [["/data/upload/1/a.jpg"], ["/data/upload/1/b.jpg"]]) as images:  # doctest: +SKIP
    ...     first = images.of_task(0).load_pixels("/data/upload/1/a.jpg")    # b.jpg is downloading meanwhile
    ...     images.finished(0)
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from label_studio_yolo.errors import MediaError
from label_studio_yolo.logsafe import url_shown
from label_studio_yolo.media.decode import Pixels, decode_pixels
from label_studio_yolo.media.loader import ImageLoader
from label_studio_yolo.media.storage import StorageFile

PREFETCH_AHEAD = 8
"""Images downloaded ahead of the ones being predicted (their bytes are held until their task's turn)."""

PREFETCH_THREADS = 4
"""Concurrent downloads of one batch, whatever its lanes (Label Studio's own server drops connections past a small
backlog)."""


class ImageSource(Protocol):
    """Anything that turns a task-data value into pixels: :class:`ImageLoader`, or one task's prefetched images."""

    def load_pixels(self, value: object) -> Pixels: ...


class MediaPrefetcher:
    """Downloads the images of tasks ``0, 1, ...`` in that order, up to ``ahead`` of them before they are asked for.

    Thread-safe: several lanes may predict tasks of one prefetcher at once. A task's images come from
    :meth:`of_task`; :meth:`finished` drops what a task did not ask for (one that failed before its second image).
    An image that was not announced, or not fetched yet, is loaded directly. Download errors are raised for that
    image only.
    """

    def __init__(
        self, loader: ImageLoader, values_per_task: Sequence[Sequence[object]], ahead: int = PREFETCH_AHEAD
    ) -> None:
        self.loader = loader
        self._upcoming = deque(
            (position, value)
            for position, values in enumerate(values_per_task)
            for value in values
            if isinstance(value, StorageFile) or (isinstance(value, str) and value.strip())
        )
        self._ahead = ahead
        self._pending: dict[int, list[tuple[str | StorageFile, Future[bytes]]]] = defaultdict(list)
        self._held = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=PREFETCH_THREADS, thread_name_prefix="prefetch")
        with self._lock:
            self._fill()

    def of_task(self, position: int) -> ImageSource:
        """The images of task ``position`` (its index in the sequence given)."""
        return _TaskImages(self, position)

    def load_pixels(self, position: int, value: object) -> Pixels:
        """Task ``position``'s image at ``value``: from its download if one was started, else loaded now."""
        download = self._take(position, value)
        if download is None:
            return self.loader.load_pixels(value)
        return decode_pixels(download.result(), self.loader.settings.max_pixels, self.loader.decode_budget)

    def finished(self, position: int) -> None:
        """Task ``position`` is done: downloads of its images it did not ask for are dropped."""
        with self._lock:
            for _, download in self._pending.pop(position, []):
                download.cancel()
                self._held -= 1
            self._skip_through(position)
            self._fill()

    def close(self) -> None:
        """Stop: downloads not yet started are cancelled, the running ones finish in the background."""
        with self._lock:
            self._upcoming.clear()
            for entries in self._pending.values():
                for _, download in entries:
                    download.cancel()
            self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> MediaPrefetcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _take(self, position: int, value: object) -> Future[bytes] | None:
        """The download of ``value`` for task ``position`` if one was started; else none is started later."""
        with self._lock:
            entries = self._pending.get(position, [])
            index = next((index for index, (pending, _) in enumerate(entries) if pending == value), None)
            if index is None:
                self._skip_through(position)  # loaded directly now: never downloaded twice
                return None
            _, download = entries.pop(index)
            self._held -= 1
            self._fill()
            return download

    def _skip_through(self, position: int) -> None:
        """Start no download for tasks up to ``position``: they are being predicted or done, and load what they still
        need directly (called with the lock held; tasks are taken in order, so these lead the queue)."""
        while self._upcoming and self._upcoming[0][0] <= position:
            self._upcoming.popleft()

    def _fill(self) -> None:
        """Start downloads in task order until ``ahead`` are held (called with the lock held)."""
        while self._upcoming and self._held < self._ahead:
            position, value = self._upcoming.popleft()
            self._pending[position].append((value, self._pool.submit(self._read, value)))
            self._held += 1

    def _read(self, value: str | StorageFile) -> bytes:
        try:
            return self.loader.read_bytes(value)
        except MediaError:
            raise
        except Exception as error:  # a thread must hand every failure back to the task that needs it
            raise MediaError(f"Could not download {url_shown(str(value), 80)}: {error!r}") from error


@dataclass(frozen=True)
class _TaskImages:
    """One task's view of a :class:`MediaPrefetcher`."""

    prefetcher: MediaPrefetcher
    position: int

    def load_pixels(self, value: object) -> Pixels:
        return self.prefetcher.load_pixels(self.position, value)
