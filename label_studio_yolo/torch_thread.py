"""One thread per process runs PyTorch's multi-threaded CPU work: loading weights and predicting with them.

PyTorch's CPU build parallelises with OpenMP (libgomp), which gives every thread that starts parallel work a team
of helper threads of its own. Once a process holds more helpers than cores, libgomp stops letting idle helpers spin
between parallel regions and puts them to sleep, and waking them costs each of the hundreds of regions in one YOLO
forward pass. A server soon has two teams: it loads weights in one thread and predicts in another, and gunicorn
hands each request to the next of its threads. Measured on 2 cores, yolo11n at 640 px, 2 torch threads: 37-39 ms a
photo when one thread loads and predicts, 62-66 ms when one thread loads and another predicts, and a single-task
``/predict`` under gunicorn at 0.5x the raw ultralytics loop. Lanes predict with one torch thread each, which starts
no team, so they stay on their own threads.

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

_executor: ThreadPoolExecutor | None = None
"""The torch thread, started on first use (never at import: gunicorn forks after importing the app)."""
_executor_lock = threading.Lock()
_torch_thread_ident: int | None = None


def on_torch_thread(function: Callable[_Params, _Result], *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
    """Run ``function`` on this process's torch thread, wait, and return its result (or raise its exception).

    Called on the torch thread itself, it runs ``function`` at once (no deadlock).
    """
    if threading.get_ident() == _torch_thread_ident:
        return function(*args, **kwargs)
    return _torch_executor().submit(function, *args, **kwargs).result()


def _torch_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch", initializer=_remember_thread)
        return _executor


def _remember_thread() -> None:
    global _torch_thread_ident
    _torch_thread_ident = threading.get_ident()
