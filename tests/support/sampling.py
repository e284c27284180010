"""Call a function again and again in a thread while a block runs: to sample memory during a request, say.

Example:
    >>> seen = []
    >>> with sampling(lambda: seen.append(1), interval=0.01):
    ...     time.sleep(0.05)                                                          # doctest: +SKIP
    >>> len(seen) > 1                                                                 # doctest: +SKIP
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def sampling(sample: Callable[[], None], interval: float, name: str = "sampler") -> Iterator[None]:
    """Call ``sample()`` at once and then every ``interval`` seconds, in a thread of its own, until the block ends
    (a peak between two calls can be missed)."""
    stop = threading.Event()

    def run() -> None:
        while True:
            sample()
            if stop.wait(interval):
                return

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
