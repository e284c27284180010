"""One training scheduler per process: rq on Redis when ``REDIS_URL`` is set, else a local background process."""

from __future__ import annotations

import threading

from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.local import LocalScheduler
from label_studio_yolo.training.scheduler import RedisScheduler, Scheduler

_schedulers: dict[str | None, Scheduler] = {}
_lock = threading.Lock()


def scheduler_for(settings: BackendSettings) -> Scheduler:
    """The process's scheduler for ``settings.redis_url`` (the local one keeps its queue in memory, so share it)."""
    with _lock:
        if settings.redis_url not in _schedulers:
            _schedulers[settings.redis_url] = (
                RedisScheduler(settings) if settings.redis_url else LocalScheduler(settings)
            )
        return _schedulers[settings.redis_url]
