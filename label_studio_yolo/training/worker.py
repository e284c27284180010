"""The rq worker class for training jobs: rq's abandoned-job handling in seconds rather than minutes.

This worker sends a heartbeat every 5 s with 10 s of grace, so a job whose worker died (killed, out of memory) is
moved to failed (``AbandonedJobError``) within seconds once rq's registries are cleaned (``/training/status`` does);
the project's training lock lapses as quickly (:mod:`label_studio_yolo.training.project_lock`). A heartbeat that
cannot reach Redis is tried again every 0.5 s instead of quitting, so a running job outlives a short Redis restart.
It also prints the backend's log lines at ``LOG_LEVEL`` to stderr, from its work horses too.

Example:
    rq worker -w label_studio_yolo.training.worker.TrainingWorker --url redis://localhost:6379/0 training
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from pydantic import ValidationError
from redis.exceptions import ConnectionError, TimeoutError
from rq import Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.executions import Execution
from rq.job import Job

from label_studio_yolo.logging_setup import configure_package_logging, hide_secrets_in
from label_studio_yolo.settings import current_settings

HEARTBEAT_EVERY = 5
"""Seconds between the worker's heartbeats while a job runs (rq's ``job_monitoring_interval``; rq's default is 30)."""

HEARTBEAT_GRACE = 10
"""Seconds a running job's heartbeat may be late before rq counts the job as abandoned (rq's default is 60)."""

RETRY_EVERY = 0.5
"""Seconds between tries of a heartbeat that could not reach Redis."""


class TrainingWorker(Worker):
    """An rq ``Worker`` whose running job is given up as abandoned soon after the worker dies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job_monitoring_interval = min(int(self.job_monitoring_interval), HEARTBEAT_EVERY)

    def bootstrap(
        self,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """rq's start of work, with the backend's own loggers set up first (the work horses fork from here)."""
        configure_package_logging(_log_level(), date_format)
        super().bootstrap(logging_level, date_format, log_format)
        hide_secrets_in()  # rq's own handlers, set up by bootstrap

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        """rq's heartbeat for the running job, tried again every :data:`RETRY_EVERY` s while Redis is unreachable.

        Keeps trying for :data:`HEARTBEAT_GRACE` s, so a job outlives a shorter Redis restart; after that it gives up
        until the next heartbeat, and the job may be counted as abandoned.
        """
        deadline = time.monotonic() + HEARTBEAT_GRACE
        for attempt in itertools.count():
            try:
                super().maintain_heartbeats(job, execution)
                return
            except (ConnectionError, TimeoutError) as error:
                if attempt == 0:
                    self.log.warning(
                        "Worker %s: no heartbeat for job %s yet (Redis unreachable): %s", self.name, job.id, error
                    )
                if time.monotonic() >= deadline:
                    self.log.error("Worker %s: no heartbeat for job %s for %s s", self.name, job.id, HEARTBEAT_GRACE)
                    return
                time.sleep(RETRY_EVERY)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """Seconds the job's next heartbeat may take: the time to the next heartbeat plus :data:`HEARTBEAT_GRACE`."""
        until_next = float(self.job_monitoring_interval)
        if job.timeout and job.timeout > 0:
            until_next = min(job.timeout - working_time, until_next)
        return int(until_next) + HEARTBEAT_GRACE


def _log_level() -> str:
    """``LOG_LEVEL``; INFO if the settings are invalid (each job then fails with the reason, as it did before)."""
    try:
        return current_settings().log_level
    except ValidationError as error:
        logging.getLogger(__name__).warning("Settings invalid, training jobs will fail: %s", error)
        return "INFO"
