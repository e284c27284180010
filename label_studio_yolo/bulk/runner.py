"""Predict the selected tasks a batch at a time and hand each batch to a sink while the next one is predicted.

Each task goes through the backend's own :class:`~label_studio_yolo.prediction.tasks.TaskPredictor`: the same
regions, the same model version, and a task whose image fails is counted as failed with its reason, never stopping
the run. A batch is stored while the next one is predicted, so an interruption loses at most the batch being
predicted; the next run predicts it again (see :mod:`label_studio_yolo.bulk.selection`).

Example:
    >>> summary = run_batches(predictor, selection.tasks, LabelStudioUploader(client, 3), batch_size=32)
    >>> summary.predicted, summary.failed
    (412, {})
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from label_studio_yolo.bulk.progress import Progress
from label_studio_yolo.bulk.sinks import PredictionSink, UploadError

if TYPE_CHECKING:  # importing the predictor imports torch: not before the connection is checked
    from label_studio_yolo.prediction.tasks import TaskOutcome, TaskPredictor

logger = logging.getLogger(__name__)


@dataclass
class BatchTotals:
    """What a run did to the tasks it was given.

    Attributes:
        predicted: predictions stored by the sink.
        without_regions: stored predictions with an empty result (nothing found above the thresholds).
        failed: task id -> why it has no prediction (its image, or the sink refused it).
        seconds: time spent predicting and storing.
        interrupted: Ctrl-C stopped the run.
        upload_error: why the sink stopped taking batches, which stopped the run.
    """

    predicted: int = 0
    without_regions: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    upload_error: str | None = None

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
    """Predict ``tasks`` and put each batch into ``sink`` while the next batch is predicted.

    Ctrl-C stops after storing the batch already predicted; a batch the sink cannot store stops the run (the
    batches before it stay stored). Either way the totals say what was stored.
    """
    progress = progress or Progress(total=len(tasks), show_bar=False)
    totals = BatchTotals()
    started = time.monotonic()
    uploads = _BackgroundUploads(sink, totals)
    outcomes = predictor.attempt_all(tasks)  # one stream: images download ahead across batch boundaries
    try:
        for start in range(0, len(tasks), batch_size):
            batch = tasks[start : start + batch_size]
            predictions = _predict_batch(batch, itertools.islice(outcomes, len(batch)), totals)
            uploads.submit(predictions)
            progress.advance(done=len(batch), failed=len(batch) - len(predictions))
        uploads.wait()
    except KeyboardInterrupt:
        totals.interrupted = True
        logger.warning("Interrupted: storing the batch already predicted, then stopping")
        _wait_quietly(uploads)
    except UploadError:
        logger.error("Stopped: %s", totals.upload_error)
    finally:
        outcomes.close()  # stops the image downloads still running ahead
        uploads.close()
        totals.seconds = time.monotonic() - started
        progress.close()
    return totals


class _BackgroundUploads:
    """Stores one batch in a background thread while the caller predicts the next one."""

    def __init__(self, sink: PredictionSink, totals: BatchTotals) -> None:
        self._sink = sink
        self._totals = totals
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload")
        self._pending: tuple[Future[dict[int, str]], list[dict[str, Any]]] | None = None

    def submit(self, predictions: list[dict[str, Any]]) -> None:
        """Wait for the previous batch to be stored, then start storing ``predictions``."""
        self.wait()
        self._pending = (self._executor.submit(self._sink.put, predictions), predictions)

    def wait(self) -> None:
        """Wait for the batch being stored and count what was stored; what the sink refused counts as failed.

        Raises:
            UploadError: the batch was not stored (recorded in the totals).
        """
        if self._pending is None:
            return
        (upload, predictions), self._pending = self._pending, None
        try:
            refused = upload.result()
        except UploadError as error:
            self._totals.upload_error = str(error)
            raise
        self._totals.failed.update(refused)
        stored = [prediction for prediction in predictions if int(prediction["task"]) not in refused]
        self._totals.predicted += len(stored)
        self._totals.without_regions += sum(1 for prediction in stored if not prediction["result"])

    def close(self) -> None:
        """Stop the upload thread (after the batch it is storing)."""
        self._executor.shutdown(wait=True)


def _wait_quietly(uploads: _BackgroundUploads) -> None:
    """After Ctrl-C: let the batch already predicted be stored; an upload error is in the totals."""
    try:
        uploads.wait()
    except UploadError:
        logger.error("Stopped: the last batch was not stored")


def _predict_batch(
    batch: Sequence[dict[str, Any]], outcomes: Iterable[TaskOutcome], totals: BatchTotals
) -> list[dict[str, Any]]:
    """The batch's predictions as upload bodies; failures are recorded in ``totals``."""
    predictions = []
    for task, outcome in zip(batch, outcomes, strict=True):
        if outcome.prediction is None:
            totals.failed[int(task["id"])] = outcome.error or "no prediction"
            continue
        predictions.append({"task": task["id"], **outcome.prediction})
    return predictions
