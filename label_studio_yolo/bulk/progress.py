"""Progress of a bulk run: a tqdm bar with tasks/s on a terminal, a log line per batch otherwise (cron, CI, files).

Example:
    >>> progress = Progress(total=500)
    >>> progress.advance(done=50, failed=1)   # a bar, or "Predicted 50/500 tasks (1 failed), 14.2 tasks/s"
    >>> progress.close()
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

logger = logging.getLogger(__name__)


class Progress:
    """Counts predicted tasks and shows the rate."""

    def __init__(self, total: int, show_bar: bool | None = None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        show_bar = sys.stderr.isatty() if show_bar is None else show_bar
        self._bar = tqdm(total=total, unit="task", desc="Predicting", dynamic_ncols=True) if show_bar else None

    @property
    def rate(self) -> float:
        """Tasks per second since the start."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, done: int, failed: int) -> None:
        """Count ``done`` more tasks, ``failed`` of them without a prediction."""
        self.done += done
        self.failed += failed
        if self._bar is not None:
            self._bar.update(done)
            self._bar.set_postfix(failed=self.failed, refresh=False)
            return
        logger.info("Predicted %d/%d tasks (%d failed), %.1f tasks/s", self.done, self.total, self.failed, self.rate)

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()
