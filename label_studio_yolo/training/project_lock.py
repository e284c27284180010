"""What a training job does in the worker before and around training: claim its slot and hold the project lock.

- The project lock: two workers never train one project at once. It lives 15 s and is renewed every 5 s, so a
  killed worker frees its project within 15 s; a job that finds its lock gone stops at its next epoch and publishes
  nothing. A job takes it first and waits for it at most ``lock_wait`` seconds (half rq's job timeout): while it
  waits it has not claimed, so events still fold into it, a job killed meanwhile loses none of them, and a project
  holds at most one waiting worker.
- Claiming (once the lock is held): the job stops being the project's queued job (new events queue the next one)
  and the count of new annotations starts again, in one Redis transaction. A job claims before it reads any
  annotation, so every event folded into it is in its data (see
  :class:`~label_studio_yolo.training.scheduler.EventPolicy`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import LockNotOwnedError, RedisError

from label_studio_yolo.errors import TrainingError
from label_studio_yolo.training.progress import report_progress
from label_studio_yolo.training.scheduler import key

logger = logging.getLogger(__name__)

LOCK_TTL = 15
"""Seconds the per-project training lock lives without renewal: how long a dead worker keeps its project."""

LOCK_RENEW_EVERY = 5
"""Seconds between renewals of the per-project training lock (three tries before it lapses)."""

RETRY_EVERY = 0.5
"""Seconds between tries of a renewal that could not reach Redis."""

StillHeld = Callable[[], None]
"""Raises :class:`LockLost` once the job no longer holds its project's lock."""


class ProjectBusy(TrainingError):
    """Another job held the project's lock for longer than a job waits for it."""


class LockLost(TrainingError):
    """The job's project lock lapsed or was taken: the job stops so two workers never train one project at once."""


def claim(redis: Any, project: int, job_id: str) -> None:
    """Make room for the next queued job and reset the new-annotation count, atomically (call it before reading
    annotations): an event never sees the job gone but the count not yet reset."""
    queued_key, count_key = key(project, "queued_job"), key(project, "new_annotations")

    def in_one_step(pipe: Any) -> None:
        queued = pipe.get(queued_key)
        pipe.multi()
        if queued is not None and (queued if isinstance(queued, str) else queued.decode()) == job_id:
            pipe.delete(queued_key)
        pipe.set(count_key, 0)

    redis.transaction(in_one_step, queued_key)


@contextmanager
def project_lock(
    redis: Any,
    project: int,
    lock_wait: float | None = None,
    ttl: float = LOCK_TTL,
    renew_every: float = LOCK_RENEW_EVERY,
) -> Iterator[StillHeld]:
    """Hold the project's training lock, waiting up to ``lock_wait`` seconds (None: for ever) for another worker's
    job to finish first.

    Yields a check to call between steps of the job: it raises :class:`LockLost` once the lock is gone. The job's
    progress records when it took the lock and when it gave it back (``lock_acquired_at``, ``lock_released_at``).

    Raises:
        ProjectBusy: another job held the lock for all of ``lock_wait``.
    """
    # thread_local=False: the renewing thread must see the token the job thread acquired.
    lock = redis.lock(key(project, "training_lock"), timeout=ttl, thread_local=False)
    if not lock.acquire(blocking=True, blocking_timeout=lock_wait):
        raise ProjectBusy(
            f"Project {project}: another training job held the project for {lock_wait:.0f} s, so this one stopped "
            "without training; press Train again once it has finished"
        )
    report_progress(lock_acquired_at=time.time())
    stop, lost = threading.Event(), threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, project, renew_every, stop, lost), daemon=True)
    renewer.start()

    def still_held() -> None:
        if lost.is_set():
            raise LockLost(
                f"Project {project}: this job lost its training lock (Redis unreachable for more than {ttl:g} s, "
                "or emptied), so it stopped without publishing: another job may be training the project"
            )

    try:
        yield still_held
    finally:
        stop.set()
        renewer.join()
        _release(lock, project, lost)


def _renew(lock: Any, project: int, every: float, stop: threading.Event, lost: threading.Event) -> None:
    """Extend ``lock`` every ``every`` seconds until ``stop``; set ``lost`` and give up once it is not ours.

    A renewal that cannot reach Redis is tried again every :data:`RETRY_EVERY` s: the lock outlives a Redis restart
    shorter than its remaining life.
    """
    wait = every
    while not stop.wait(wait):
        try:
            lock.reacquire()
            wait = every
        except LockNotOwnedError:
            lost.set()
            logger.error("Project %s: the training lock lapsed while this job ran", project)
            return
        except RedisError as error:  # Redis briefly unreachable: the lock still has time, try again soon
            if wait == every:
                logger.warning("Project %s: training lock not renewed yet (Redis unreachable): %s", project, error)
            wait = min(RETRY_EVERY, every)


def _release(lock: Any, project: int, lost: threading.Event) -> None:
    """Free the lock; one that lapsed or cannot be reached frees itself when its time is up."""
    if lost.is_set():
        return
    try:
        lock.release()
    except RedisError as error:
        logger.warning("Project %s: training lock not released (it lapses by itself): %s", project, error)
        return
    report_progress(lock_released_at=time.time())
