"""What a training job does in the worker before and around training: claim its slot and hold the project lock.

- Claiming: the job stops being the project's queued job (so new events queue the next one) and the count of new
  annotations starts again from zero.
- The project lock: two workers never train one project at once. The lock lives 60 s and is renewed every 20 s
  while the job runs, so a killed worker frees the project within a minute.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from label_studio_yolo.training.scheduler import key

LOCK_TTL = 60
"""Seconds the per-project training lock lives without renewal."""

LOCK_RENEW_EVERY = 20
"""Seconds between renewals of the per-project training lock."""


def claim(redis: Any, project: int, job_id: str) -> None:
    """Make room for the next queued job and reset the new-annotation count."""
    queued = redis.get(key(project, "queued_job"))
    if queued is not None and (queued if isinstance(queued, str) else queued.decode()) == job_id:
        redis.delete(key(project, "queued_job"))
    redis.set(key(project, "new_annotations"), 0)


@contextmanager
def project_lock(
    redis: Any, project: int, ttl: float = LOCK_TTL, renew_every: float = LOCK_RENEW_EVERY
) -> Iterator[None]:
    """Hold the project's training lock (waiting for another worker's job to finish first)."""
    # thread_local=False: the renewing thread must see the token the job thread acquired.
    lock = redis.lock(key(project, "training_lock"), timeout=ttl, thread_local=False)
    lock.acquire(blocking=True)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(renew_every):
            lock.reacquire()

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        lock.release()
