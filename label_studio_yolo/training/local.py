"""Training without Redis: jobs run one at a time in a background process of the backend.

The same policy as the rq scheduler (one queued and one running job per project, events fold into the queued
job, ``TRAIN_MIN_NEW_ANNOTATIONS``), kept in this process's memory. Each job runs in a fresh ``spawn`` process, so a
crash in training never takes the web server down. Meant for a laptop with one backend process; use Redis and
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

from label_studio_yolo.projects import project_id_of
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.scheduler import ANNOTATION_EVENTS, JOB_HISTORY, START_TRAINING

logger = logging.getLogger(__name__)


def _run_job(project: int, report: Connection) -> None:
    """Child process: train, and send back ("finished", result) or ("failed", reason)."""
    from label_studio_yolo.training.job import train_project

    try:
        report.send(("finished", train_project(project)))
    except Exception as error:  # reported to the parent, which logs it and keeps the web server up
        report.send(("failed", f"{type(error).__name__}: {error}"))


class LocalScheduler:
    """Queues training jobs in memory and runs them in a child process, one at a time."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self._queue: deque[int] = deque()
        self._new_annotations: dict[int, int] = {}
        self._history: dict[int, deque[dict[str, Any]]] = {}
        self._condition = threading.Condition()
        self._runner: threading.Thread | None = None
        logger.info("No REDIS_URL: training jobs run one at a time in a background process of this backend")

    def on_event(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        project = project_id_of(data)
        if project is None or (action not in ANNOTATION_EVENTS and action != START_TRAINING):
            return {"status": "ignored", "action": action}
        with self._condition:
            if action in ANNOTATION_EVENTS:
                count = self._new_annotations.get(project, 0) + 1
                self._new_annotations[project] = count
                if count < self.settings.train_min_new_annotations:
                    return {"status": "waiting", "project": project, "new_annotations": count}
            if project in self._queue:
                return {"status": "folded", "project": project}
            self._queue.append(project)
            self._record(project, {"status": "queued", "reason": action, "enqueued_at": time.time()})
            self._ensure_runner()
            self._condition.notify()
        return {"status": "queued", "project": project}

    def jobs(self, project: int) -> list[dict[str, Any]]:
        """This process's jobs for ``project``, newest first."""
        with self._condition:
            return list(self._history.get(project, []))

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
                entry.update(status="started", started_at=time.time())
            status, detail = self._run_in_child(project)
            with self._condition:
                entry.update(
                    status=status, ended_at=time.time(), **{"error" if status == "failed" else "result": detail}
                )
            level = logging.ERROR if status == "failed" else logging.INFO
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
            outcome = ("failed", "the training process died")
        process.join()
        return outcome
