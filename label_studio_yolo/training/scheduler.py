"""Decide when to train and queue the job: at most one queued and one running job per project.

- ``START_TRAINING`` queues a job now.
- ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` / ``ANNOTATIONS_DELETED`` count as new annotations; a job is
  queued once ``TRAIN_MIN_NEW_ANNOTATIONS`` have arrived since the last job started.
- An event that arrives while the project already has a queued job folds into it (the job reads every annotation
  from Label Studio when it starts, so nothing is missed).
- Any other action is accepted and ignored.

With ``REDIS_URL`` the job goes to an rq queue served by ``rq worker`` processes on any machine. Every Redis call
of the web process has short timeouts and no retries (redis-py's defaults would wait 5 s to connect and 5 s for an
answer), so a webhook answers well inside Label Studio's 1 s even when Redis is down or hangs: with
:class:`TrainingQueueUnavailable`, which names Redis. The client reconnects by itself once Redis is back. Without
``REDIS_URL``, jobs run one at a time in a local background process (see :mod:`label_studio_yolo.training.local`).

Example:
    >>> scheduler = RedisScheduler(BackendSettings(redis_url="redis://localhost:6379/0"))     # doctest: +SKIP
    >>> scheduler.on_event("START_TRAINING", {"project": {"id": 7}})
    {'status': 'queued', 'project': 7, 'job_id': 'train-7-1a2b3c4d'}
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

from label_studio_yolo.projects import project_id_of
from label_studio_yolo.settings import BackendSettings

logger = logging.getLogger(__name__)

ANNOTATION_EVENTS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"})
"""Webhook actions that count as new annotations."""

START_TRAINING = "START_TRAINING"
"""The action Label Studio's "Start Training" button sends."""

REDIS_TIMEOUT = 0.3
"""Seconds the web process waits to connect to Redis, and for each answer (Label Studio's webhook timeout is 1 s)."""

ENQUEUE_LOCK_TTL = 3
"""Seconds a project's enqueue lock lives: longer than its six or so Redis round trips can take (each at most
:data:`REDIS_TIMEOUT`), and as long as a lock left behind by a request cut off by a hung Redis blocks the next."""

KEY_PREFIX = "label-studio-yolo"
"""Prefix of every Redis key this backend writes."""

JOB_HISTORY = 50
"""Training jobs remembered per project for status views."""

JOB_FUNCTION = "label_studio_yolo.training.job.train_project"
"""What rq workers run (imported by name, so the web process need not import training code)."""


class Scheduler(Protocol):
    """Receives Label Studio events and starts training when the policy says so."""

    def on_event(self, action: str, data: dict[str, Any]) -> dict[str, Any]: ...

    def jobs(self, project: int) -> list[dict[str, Any]]:
        """The project's training jobs, newest first, for status views."""
        ...


class TrainingQueueUnavailable(RuntimeError):
    """Redis cannot be reached or did not answer in time: nothing was queued or read."""


def key(project: int, name: str) -> str:
    """Redis key ``label-studio-yolo:project:<id>:<name>``."""
    return f"{KEY_PREFIX}:project:{project}:{name}"


class RedisScheduler:
    """Queues training jobs on rq."""

    def __init__(self, settings: BackendSettings) -> None:
        from redis import Redis
        from rq import Queue

        assert settings.redis_url
        self.settings = settings
        self.redis = Redis.from_url(
            settings.redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self.queue = Queue(settings.training_queue, connection=self.redis)

    def on_event(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        project = project_id_of(data)
        if project is None or (action not in ANNOTATION_EVENTS and action != START_TRAINING):
            return {"status": "ignored", "action": action}
        with self._reaching_redis():
            if action in ANNOTATION_EVENTS:
                count = int(self.redis.incr(key(project, "new_annotations")))
                if count < self.settings.train_min_new_annotations:
                    return {"status": "waiting", "project": project, "new_annotations": count}
            return self.enqueue(project, action)

    def jobs(self, project: int) -> list[dict[str, Any]]:
        from label_studio_yolo.training.status import redis_jobs  # status imports this module

        with self._reaching_redis():
            return redis_jobs(self.redis, project, self.queue.name)

    @contextmanager
    def _reaching_redis(self) -> Iterator[None]:
        """Turn redis-py's connection errors and timeouts into :class:`TrainingQueueUnavailable`."""
        from redis.exceptions import ConnectionError, TimeoutError

        try:
            yield
        except (ConnectionError, TimeoutError) as error:
            where = self.redis.connection_pool.connection_kwargs
            address = where.get("path") or f"{where.get('host', 'localhost')}:{where.get('port', 6379)}"
            raise TrainingQueueUnavailable(f"Redis at {address} is unreachable: {error}") from error

    def enqueue(self, project: int, reason: str) -> dict[str, Any]:
        """Queue a job for ``project``, or fold into the one already queued.

        Raises:
            TrainingQueueUnavailable: another request holds the project's enqueue lock (for at most
                :data:`ENQUEUE_LOCK_TTL`).
        """
        from redis.exceptions import LockNotOwnedError

        lock = self.redis.lock(key(project, "enqueue"), timeout=ENQUEUE_LOCK_TTL, blocking_timeout=REDIS_TIMEOUT * 2)
        if not lock.acquire():
            raise TrainingQueueUnavailable(
                f"Redis: another request is queueing a training job for project {project}; try again in a moment"
            )
        try:
            answer = self._fold_or_enqueue(project, reason)
        finally:
            with suppress(LockNotOwnedError):  # it lapsed: the work is done all the same
                lock.release()
        if answer["status"] == "queued":
            logger.info("Project %s: training job %s queued (%s)", project, answer["job_id"], reason)
        return answer

    def _fold_or_enqueue(self, project: int, reason: str) -> dict[str, Any]:
        """Fold into the project's queued job if it is still waiting, else queue a new one (under the enqueue lock)."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus

        queued_id = self.redis.get(key(project, "queued_job"))
        if queued_id:
            job_id = queued_id if isinstance(queued_id, str) else queued_id.decode()
            with suppress(NoSuchJobError):  # deleted from rq meanwhile: queue a new one
                job = Job.fetch(job_id, connection=self.redis)
                if job.get_status() in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
                    job.meta["folded_events"] = int(job.meta.get("folded_events", 0)) + 1
                    job.save_meta()  # type: ignore[no-untyped-call]
                    return {"status": "folded", "project": project, "job_id": job.id}
        job = self.queue.enqueue(
            JOB_FUNCTION,
            project,
            job_id=f"train-{project}-{uuid.uuid4().hex[:8]}",
            job_timeout=self.settings.train_job_timeout,
            result_ttl=7 * 24 * 3600,
            failure_ttl=7 * 24 * 3600,
            meta={"project": project, "reason": reason, "stage": "queued", "folded_events": 0},
        )
        pipe = self.redis.pipeline()
        pipe.set(key(project, "queued_job"), job.id)
        pipe.lpush(key(project, "jobs"), job.id)
        pipe.ltrim(key(project, "jobs"), 0, JOB_HISTORY - 1)
        pipe.execute()
        return {"status": "queued", "project": project, "job_id": job.id}
