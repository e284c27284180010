"""Decide when to train and queue the job: at most one queued and one running job per project.

``START_TRAINING`` queues a job at once; annotation events queue one once ``TRAIN_MIN_NEW_ANNOTATIONS`` have
arrived since the last job was queued or claimed; an event that arrives before the project's job has claimed its
slot folds into it (that job reads every annotation after it claims); other actions are ignored
(:class:`EventPolicy`). With ``REDIS_URL`` jobs go to an rq queue; the web process's Redis calls have short
timeouts and no retries, so a webhook answers in time even when Redis is down (with
:class:`TrainingQueueUnavailable`). Without it, jobs run one at a time in a local background process
(:mod:`label_studio_yolo.training.local`).

Example:
    >>> scheduler = RedisScheduler(BackendSettings(redis_url="redis://localhost:6379/0"))     # doctest: +SKIP
    >>> scheduler.on_event("START_TRAINING", {"project": {"id": 7}})
    {'status': 'queued', 'project': 7, 'job_id': 'train-7-1a2b3c4d'}
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from label_studio_yolo.projects import project_id_of
from label_studio_yolo.settings import BackendSettings

if TYPE_CHECKING:
    from rq.job import Job

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


class Decision(StrEnum):
    """What the event policy does with an event, under the project's lock."""

    FOLD = "fold"
    """Into the project's job that has not claimed its slot: it will read the annotation."""
    WAIT = "wait"
    """For more annotations."""
    QUEUE = "queue"


class Outcome(StrEnum):
    """The ``status`` a scheduler answers an event with."""

    QUEUED = "queued"
    FOLDED = "folded"
    WAITING = "waiting"
    IGNORED = "ignored"


class JobState(StrEnum):
    """A training job's ``status`` in status views: rq's own names, which the local scheduler uses too."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


class Scheduler(Protocol):
    """Receives Label Studio events and starts training when the policy says so."""

    def on_event(self, action: str, data: dict[str, Any]) -> dict[str, Any]: ...

    def jobs(self, project: int) -> list[dict[str, Any]]:
        """The project's training jobs, newest first, for status views."""
        ...

    def projects(self) -> list[int]:
        """The projects that have training jobs on record."""
        ...


class TrainingQueueUnavailable(RuntimeError):
    """Redis cannot be reached or did not answer in time: nothing was queued or read."""


def key(project: int, name: str) -> str:
    """Redis key ``label-studio-yolo:project:<id>:<name>``."""
    return f"{KEY_PREFIX}:project:{project}:{name}"


class EventPolicy(ABC):
    """When an event queues a job, folds into the project's job, waits for more annotations, or is ignored.

    A scheduler keeps, per project, the count of annotation events since its last job was queued and the job that
    has not claimed its slot yet (if any); it says how to change them atomically.

    An event may fold into a job rq has already started: the job claims its slot before it reads any annotation,
    and Label Studio saves an annotation before it sends the webhook, so that job reads it.
    """

    settings: BackendSettings

    def on_event(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        """Count, fold or queue, as the module's rules say; the answer names what happened."""
        project = project_id_of(data)
        if project is None or (action not in ANNOTATION_EVENTS and action != START_TRAINING):
            return {"status": Outcome.IGNORED, "action": action}
        if action in ANNOTATION_EVENTS:
            count = self.count_annotation(project)
            if count < self.settings.train_min_new_annotations:
                return self.waiting(project, count)
        return self.fold_or_queue(project, action)

    @abstractmethod
    def count_annotation(self, project: int) -> int:
        """Add one annotation event to the project's count and return the count."""

    @abstractmethod
    def fold_or_queue(self, project: int, reason: str) -> dict[str, Any]:
        """Under the project's lock: :meth:`decide`, then fold into the job, answer waiting, or queue a job and
        start the count again (in one step with queueing it)."""

    def decide(self, reason: str, unclaimed_job: bool, count_now: int) -> Decision:
        """What to do with an event, decided under the project's lock.

        ``count_now`` is the count read under the lock: an annotation event that reached the minimum finds it lower
        when a job was queued or claimed since the event was counted, and that job reads the annotation.
        """
        if unclaimed_job:
            return Decision.FOLD
        if reason in ANNOTATION_EVENTS and count_now < self.settings.train_min_new_annotations:
            return Decision.WAIT
        return Decision.QUEUE

    @staticmethod
    def waiting(project: int, count: int) -> dict[str, Any]:
        """The answer to an annotation event that did not queue a job."""
        return {"status": Outcome.WAITING, "project": project, "new_annotations": count}


class RedisScheduler(EventPolicy):
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
        with self._reaching_redis():
            return super().on_event(action, data)

    def count_annotation(self, project: int) -> int:
        return int(self.redis.incr(key(project, "new_annotations")))

    def jobs(self, project: int) -> list[dict[str, Any]]:
        with self._reaching_redis():
            return redis_jobs(self.redis, project, self.queue.name)

    def projects(self) -> list[int]:
        with self._reaching_redis():
            names = self.redis.scan_iter(match=f"{KEY_PREFIX}:project:*:jobs", count=1000)
            found = (name.decode().removeprefix(f"{KEY_PREFIX}:project:").partition(":")[0] for name in names)
            return sorted({int(project) for project in found if project.isdigit()})

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

    def fold_or_queue(self, project: int, reason: str) -> dict[str, Any]:
        """:meth:`_fold_or_enqueue` under the project's enqueue lock.

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
        if answer["status"] is Outcome.QUEUED:
            logger.info("Project %s: training job %s queued (%s)", project, answer["job_id"], reason)
        return answer

    def _fold_or_enqueue(self, project: int, reason: str) -> dict[str, Any]:
        """Fold into the project's unclaimed job, else wait or queue a new one (under the enqueue lock)."""
        from label_studio_yolo.training.progress import update_meta

        job = self._unclaimed_job(project)
        counted = job is None and reason in ANNOTATION_EVENTS
        count_now = int(self.redis.get(key(project, "new_annotations")) or 0) if counted else 0
        decision = self.decide(reason, job is not None, count_now)
        if decision is Decision.FOLD and job is not None:
            update_meta(job, lambda meta: meta.update(folded_events=int(meta.get("folded_events", 0)) + 1))
            return {"status": Outcome.FOLDED, "project": project, "job_id": job.id}
        if decision is Decision.WAIT:
            return self.waiting(project, count_now)
        job_id = f"train-{project}-{uuid.uuid4().hex[:8]}"
        with self.redis.pipeline() as pipe:  # one transaction: no worker claims the job before it is the queued one
            pipe.multi()  # rq's enqueue on a pipeline wants the transaction started
            pipe.set(key(project, "queued_job"), job_id)
            pipe.set(key(project, "new_annotations"), 0)
            pipe.lpush(key(project, "jobs"), job_id)
            pipe.ltrim(key(project, "jobs"), 0, JOB_HISTORY - 1)
            self.queue.enqueue_call(
                JOB_FUNCTION,
                args=(project,),
                job_id=job_id,
                timeout=self.settings.train_job_timeout,
                result_ttl=7 * 24 * 3600,
                failure_ttl=7 * 24 * 3600,
                meta={"project": project, "reason": reason, "stage": "queued", "folded_events": 0},
                pipeline=pipe,
            )
            pipe.execute()
        return {"status": Outcome.QUEUED, "project": project, "job_id": job_id}

    def _unclaimed_job(self, project: int) -> Job | None:
        """The project's job that has not claimed its slot yet: still named by ``queued_job``, and waiting in rq or
        started by a live worker (see :class:`EventPolicy` for why a started one still takes events)."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus
        from rq.registry import StartedJobRegistry

        queued_id = self.redis.get(key(project, "queued_job"))
        if not queued_id:
            return None
        try:  # deleted from rq meanwhile (rq empty, an expired key): queue a new one
            job = Job.fetch(queued_id if isinstance(queued_id, str) else queued_id.decode(), connection=self.redis)
        except NoSuchJobError:
            return None
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:  # its worker may have died before claiming: rq then fails it here
            StartedJobRegistry(job.origin, connection=self.redis).cleanup()
            status = job.get_status()
        waiting = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.STARTED)
        return job if status in waiting else None


ABANDONED = "The worker running this job stopped without finishing it (killed, or its machine or Redis went away)"
"""The reason shown for a job rq gave up as abandoned (its worker's heartbeat lapsed)."""


def redis_jobs(redis: Any, project: int, queue: str = "training") -> list[dict[str, Any]]:
    """rq jobs of ``project``, newest first: status, progress meta, times, and the error of failed ones.

    Jobs whose worker died (no heartbeat within rq's TTL) are moved to failed first, so they never look running.
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.registry import StartedJobRegistry

    StartedJobRegistry(queue, connection=redis).cleanup()
    jobs = []
    for raw_id in redis.lrange(key(project, "jobs"), 0, -1):
        try:
            job = Job.fetch(raw_id.decode(), connection=redis)
        except NoSuchJobError:
            continue
        entry: dict[str, Any] = {
            "job_id": job.id,
            "status": job.get_status().value,
            "enqueued_at": job.enqueued_at,
            "started_at": job.started_at,
            "ended_at": job.ended_at,
            "progress": job.meta,
        }
        if entry["status"] == JobState.FAILED:
            entry["error"] = _failure(job.exc_info)
        elif entry["status"] == JobState.FINISHED:
            entry["result"] = job.return_value()
        jobs.append(entry)
    return jobs


def _failure(exc_info: str | None) -> list[str]:
    """The last line of a failed job's traceback, said plainly when rq gave the job up as abandoned."""
    last = (exc_info or "").strip().splitlines()[-1:] or ["unknown (worker died?)"]
    return [f"{ABANDONED}; rq: {last[0]}"] if "AbandonedJobError" in last[0] else last
