"""Training without Redis: jobs run one at a time in a background process of the backend.

The same policy as the rq scheduler (:class:`~label_studio_yolo.training.scheduler.EventPolicy`: one queued and one
running job per project, events fold into the queued job, ``TRAIN_MIN_NEW_ANNOTATIONS`` since the last job was
queued), kept in this process's memory. Each job runs in a fresh ``spawn`` process, so a crash in training never
takes the web server down; it logs as an rq worker does. Meant for a laptop with one backend process; use Redis and
``rq worker`` for anything bigger.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.scheduler import JOB_HISTORY, Decision, EventPolicy, JobState, Outcome

logger = logging.getLogger(__name__)


def _run_job(project: int, report: Connection) -> None:
    """Child process: train, and send back ("finished", result) or ("failed", reason)."""
    from label_studio_yolo.logging_setup import configure_package_logging
    from label_studio_yolo.training.job import train_project

    try:
        configure_package_logging(BackendSettings().log_level)  # a spawned process starts with no logging set up
        report.send((JobState.FINISHED, train_project(project)))
    except Exception as error:  # reported to the parent, which logs it and keeps the web server up
        report.send((JobState.FAILED, f"{type(error).__name__}: {error}"))


class LocalScheduler(EventPolicy):
    """Queues training jobs in memory and runs them in a child process, one at a time.

    A job claims its slot when the runner takes it off the queue, before its process reads any annotation.
    """

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self._queue: deque[int] = deque()
        self._new_annotations: dict[int, int] = {}
        self._history: dict[int, deque[dict[str, Any]]] = {}
        self._condition = threading.Condition()
        self._runner: threading.Thread | None = None
        logger.info("No REDIS_URL: training jobs run one at a time in a background process of this backend")

    def count_annotation(self, project: int) -> int:
        with self._condition:
            count = self._new_annotations.get(project, 0) + 1
            self._new_annotations[project] = count
            return count

    def fold_or_queue(self, project: int, reason: str) -> dict[str, Any]:
        with self._condition:
            count_now = self._new_annotations.get(project, 0)
            decision = self.decide(reason, project in self._queue, count_now)
            if decision is Decision.FOLD:
                self._history[project][0]["folded_events"] += 1
                return {"status": Outcome.FOLDED, "project": project}
            if decision is Decision.WAIT:
                return self.waiting(project, count_now)
            self._queue.append(project)
            self._new_annotations[project] = 0
            self._record(
                project,
                {"status": JobState.QUEUED, "reason": reason, "enqueued_at": time.time(), "folded_events": 0},
            )
            self._ensure_runner()
            self._condition.notify()
        logger.info("Project %s: local training job queued (%s)", project, reason)
        return {"status": Outcome.QUEUED, "project": project}

    def jobs(self, project: int) -> list[dict[str, Any]]:
        """This process's jobs for ``project``, newest first."""
        with self._condition:
            return list(self._history.get(project, []))

    def projects(self) -> list[int]:
        """The projects this process has queued jobs for."""
        with self._condition:
            return sorted(self._history)

    def _record(self, project: int, entry: dict[str, Any]) -> None:
        self._history.setdefault(project, deque(maxlen=JOB_HISTORY)).appendleft(entry)

    def _ensure_runner(self) -> None:
        if self._runner is None or not self._runner.is_alive():
            self._runner = threading.Thread(target=self._run_forever, name="local-training", daemon=True)
            self._runner.start()

    def _run_forever(self) -> None:
        while True:
            with self._condition:
                while not self._queue:
                    self._condition.wait()
                project = self._queue.popleft()
                self._new_annotations[project] = 0
                entry = self._history[project][0]
                entry.update(status=JobState.STARTED, started_at=time.time())
            status, detail = self._run_in_child(project)
            with self._condition:
                entry.update(
                    status=status, ended_at=time.time(), **{"error" if status == JobState.FAILED else "result": detail}
                )
            level = logging.ERROR if status == JobState.FAILED else logging.INFO
            logger.log(level, "Project %s: local training %s: %s", project, status, detail)

    @staticmethod
    def _run_in_child(project: int) -> tuple[str, Any]:
        """Run one job in a fresh process; a crash of that process is a failure too."""
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_run_job, args=(project, sender), daemon=True)
        process.start()
        sender.close()
        try:
            outcome: tuple[str, Any] = receiver.recv()
        except EOFError:
            outcome = (JobState.FAILED, "the training process died")
        process.join()
        return outcome
