"""One thread per process runs PyTorch's multi-threaded CPU work: loading weights and predicting with them.

PyTorch's OpenMP runtime gives every thread that starts parallel work its own team of helper threads; with more
helpers than cores they sleep between parallel regions and each forward pass pays to wake them. Keeping loading
and predicting on one thread keeps one team. Lanes predict with one torch thread each, which starts no team, so
they stay on their own threads.

Example:
    >>> on_torch_thread(sum, [1, 2, 3])
    6
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


class DedicatedThread:
    """One thread of this process that runs what it is given, in order; started on first use (never at import:
    gunicorn forks after importing the app). Called on the thread itself, :meth:`call` runs at once (no deadlock).

    Example:
        >>> DedicatedThread("example").call(sum, [1, 2, 3])
        6
    """

    def __init__(self, name: str, initializer: Callable[[], None] | None = None) -> None:
        self.name = name
        self._initializer = initializer
        self._executor: ThreadPoolExecutor | None = None
        self._ident: int | None = None
        self._lock = threading.Lock()

    def call(self, function: Callable[_Params, _Result], *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        """Run ``function`` on the thread, after what was queued before it; wait and return its result (or raise its
        exception)."""
        if threading.get_ident() == self._ident:
            return function(*args, **kwargs)
        return self._started().submit(function, *args, **kwargs).result()

    def _started(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=self.name, initializer=self._begin
                )
            return self._executor

    def _begin(self) -> None:
        self._ident = threading.get_ident()
        if self._initializer is not None:
            self._initializer()


_torch_thread = DedicatedThread("torch")


def on_torch_thread(function: Callable[_Params, _Result], *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
    """Run ``function`` on this process's torch thread, wait, and return its result (or raise its exception).

    Called on the torch thread itself, it runs ``function`` at once (no deadlock).
    """
    return _torch_thread.call(function, *args, **kwargs)
