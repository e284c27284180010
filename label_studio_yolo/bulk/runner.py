"""Predict the selected tasks a batch at a time and hand each batch to a sink while the next one is predicted.

Each task goes through the backend's own :class:`~label_studio_yolo.predictor.TaskPredictor`: the same regions, the
same model version, and a task whose image fails is counted as failed with its reason, never stopping the run. A
batch is stored before the run moves two batches on, so an interruption loses at most the batches in flight; the
next run predicts them again (see :mod:`label_studio_yolo.bulk.selection`).

Example:
    >>> summary = run_batches(predictor, selection.tasks, LabelStudioUploader(client, 3), batch_size=32)
    >>> summary.predicted, summary.failed
    (412, {})
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from label_studio_yolo.bulk.progress import Progress
from label_studio_yolo.bulk.sinks import PredictionSink

if TYPE_CHECKING:  # importing the predictor imports torch: not before the connection is checked
    from label_studio_yolo.predictor import TaskPredictor

logger = logging.getLogger(__name__)


@dataclass
class BatchTotals:
    """What a run did to the tasks it was given."""

    predicted: int = 0
    without_regions: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Tasks (predicted or failed) per second."""
        handled = self.predicted + len(self.failed)
        return handled / self.seconds if self.seconds > 0 else 0.0


def run_batches(
    predictor: TaskPredictor,
    tasks: Sequence[dict[str, Any]],
    sink: PredictionSink,
    batch_size: int,
    progress: Progress | None = None,
) -> BatchTotals:
    """Predict ``tasks`` and put each batch into ``sink``; Ctrl-C stops after storing the batch already predicted.

    Raises:
        UploadError: the sink could not store a batch (the batches before it are stored).
    """
    progress = progress or Progress(total=len(tasks), show_bar=False)
    totals = BatchTotals()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload") as uploads:
        pending: Future[dict[int, str]] | None = None
        try:
            for start in range(0, len(tasks), batch_size):
                batch = tasks[start : start + batch_size]
                predictions = _predict_batch(predictor, batch, totals)
                pending, previous = uploads.submit(sink.put, predictions), pending
                _collect(previous, totals)
                progress.advance(done=len(batch), failed=len(batch) - len(predictions))
        except KeyboardInterrupt:
            totals.interrupted = True
            logger.warning("Interrupted: storing the batch already predicted, then stopping")
        finally:
            pending, last = None, pending
            _collect(last, totals)
            totals.seconds = time.monotonic() - started
            progress.close()
    return totals


def _collect(upload: Future[dict[int, str]] | None, totals: BatchTotals) -> None:
    """Wait for an upload; tasks the sink refused count as failed instead of predicted."""
    if upload is None:
        return
    refused = upload.result()
    totals.failed.update(refused)
    totals.predicted -= len(refused)


def _predict_batch(predictor: TaskPredictor, batch: Sequence[dict[str, Any]], totals: BatchTotals) -> list[Any]:
    """The batch's predictions as upload bodies; failures are recorded in ``totals``."""
    predictions = []
    for task in batch:
        outcome = predictor.attempt(task)
        if outcome.prediction is None:
            totals.failed[int(task["id"])] = outcome.error or "no prediction"
            continue
        predictions.append({"task": task["id"], **outcome.prediction})
        totals.predicted += 1
        totals.without_regions += not outcome.prediction["result"]
    return predictions
