"""Progress of the running training job, kept in its rq ``meta`` (and logged) so status views can show it.

Progress is for people to read: when Redis cannot be reached for a moment, the job logs that and trains on.

Two processes write a job's meta: the job (its progress) and the web process (events folded into a job that has
not claimed its slot yet, which may already be running). Each changes the meta as Redis holds it, in one
transaction (:func:`update_meta`), so neither writes back a stale copy over the other's fields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rq.job import Job

logger = logging.getLogger(__name__)


def report_progress(**fields: Any) -> None:
    """Merge ``fields`` (stage, epoch, epochs, metrics, ...) into the current rq job's meta, if any.

    Logged at INFO when the stage changes; each epoch and the gate's full table only at DEBUG (the job logs its
    decision label by label).
    """
    logger.log(logging.DEBUG if {"epoch", "gate"} & fields.keys() else logging.INFO, "Training progress: %s", fields)
    from redis.exceptions import ConnectionError, TimeoutError
    from rq import get_current_job

    try:
        job = get_current_job()
        if job is None:
            return
        update_meta(job, lambda meta: meta.update(fields))
    except (ConnectionError, TimeoutError) as error:
        logger.warning("Training progress not saved (Redis unreachable): %s", error)


def update_meta(job: Job, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to ``job``'s meta as Redis holds it now, and store it in one transaction (WATCH, MULTI).

    Unlike rq's ``save_meta``, a write by another process in between is not lost: the transaction is retried on the
    new meta. ``job.meta`` is the stored meta afterwards.
    """
    from redis.exceptions import WatchError

    with job.connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(job.key)  # type: ignore[no-untyped-call]
                stored = cast("bytes | None", pipe.hget(job.key, "meta"))  # rq's connections answer bytes
                meta: dict[str, Any] = job.serializer.loads(stored) if stored else {}
                change(meta)
                pipe.multi()
                pipe.hset(job.key, "meta", job.serializer.dumps(meta))
                pipe.execute()
            except WatchError:  # the job's hash changed meanwhile (its status, a heartbeat, the other writer)
                continue
            job.meta = meta
            return
