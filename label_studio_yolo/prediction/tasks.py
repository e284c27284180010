"""Predict a batch of Label Studio tasks: one image per task, every control filled, failures isolated.

A task whose image cannot be loaded (or that fails in any other way) gets no prediction: its entry in the answer
is an empty list, which Label Studio accepts and stores nothing for, so "Retrieve predictions" tries that task
again later. The reason is logged with the task id; the other tasks of the batch are predicted as usual. A video
still being tracked when the time budget runs out gets no prediction the same way. Values from the request are
escaped in the log (:mod:`label_studio_yolo.logsafe`).

Example:
    >>> predictor = TaskPredictor("best-1a2b3c4d", controls, loader, imgsz=None, threads=2)   # doctest: +SKIP
    >>> predictor.predict([{"id": 1, "data": {"image": "/data/upload/1/a.jpg"}}])
    [{'result': [...], 'score': 0.87, 'model_version': 'best-1a2b3c4d'}]
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from label_studio_yolo.errors import MediaError, VlmError
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import ModelOutput, run_model
from label_studio_yolo.inference.tracking import TrackingStopped, threads_beside_tracking, track_task_video
from label_studio_yolo.logsafe import json_type, printable, text_shown, without_secrets
from label_studio_yolo.media.decode import Pixels
from label_studio_yolo.media.loader import ImageLoader
from label_studio_yolo.media.prefetch import ImageSource, MediaPrefetcher
from label_studio_yolo.media.storage import locate
from label_studio_yolo.tags import Control
from label_studio_yolo.tags.video import tracking_options

logger = logging.getLogger(__name__)

TaskPrediction = dict[str, Any] | list[Any]
"""One entry of ``/predict``'s ``results``: a prediction dict, or ``[]`` for a task that got none."""

ERROR_LIMIT = 600
"""Characters of an error message shown in a log line (escaped; its start and end are kept)."""

TASK_LINES_PER_BATCH = 20
"""Tasks of one batch whose failure or warning gets a log line of its own; the rest are counted in the batch's
summary line (a request of a million broken tasks wrote 130 MB of log before)."""


@dataclass(frozen=True)
class Deadline:
    """When a request's time budget of ``seconds`` runs out, at ``at`` on :func:`time.monotonic`'s clock.

    Example:
        >>> Deadline.after(90).passed()
        False
    """

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds, seconds)

    def passed(self) -> bool:
        """Whether the budget is spent."""
        return time.monotonic() > self.at


@dataclass(frozen=True)
class TaskOutcome:
    """What predicting one task gave: a prediction, or the reason there is none."""

    task_id: object
    prediction: dict[str, Any] | None = None
    error: str | None = None


class TaskLines:
    """The log lines of one batch's tasks: the first :data:`TASK_LINES_PER_BATCH` are written, the rest counted by
    cause, and :meth:`summarise` writes one line for the batch (thread-safe: lanes share it)."""

    def __init__(self, tasks: int, limit: int = TASK_LINES_PER_BATCH) -> None:
        self.tasks, self.limit = tasks, limit
        self.written = 0
        self.by_cause: Counter[str] = Counter()
        self._lock = threading.Lock()

    def log(self, level: int, cause: str, message: str, *args: object) -> None:
        """Log ``message % args`` if the batch still has lines left; count it under ``cause`` either way."""
        with self._lock:
            self.by_cause[cause] += 1
            write = self.written < self.limit
            self.written += write
        if write:
            logger.log(level, message, *args)

    def summarise(self) -> None:
        """One line for a batch of several tasks some of which failed or warned, saying how many of each cause."""
        counted = sum(self.by_cause.values())
        if self.tasks < 2 or not counted:
            return
        causes = ", ".join(f"{cause}: {number}" for cause, number in self.by_cause.most_common())
        unwritten = f"; {counted - self.written} not logged one by one" if counted > self.written else ""
        logger.warning("Batch of %d tasks: %s%s", self.tasks, causes, unwritten)


@dataclass
class TaskPredictor:
    """Fills the controls of one labelling config, each with its model; every prediction carries ``model_version``.

    With ``lanes`` > 1, a batch is predicted that many tasks at a time, each lane with its own predictor of every
    model (:meth:`LoadedWeights.lane_copies`) and ``threads / lanes`` threads; a single task runs alone with all
    threads.
    """

    model_version: str
    controls: Sequence[Control]
    loader: ImageLoader
    imgsz: int | None = None
    threads: int | None = None
    lanes: int = 1
    _by_image: dict[str, list[list[Control]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_image = _group_by_image_and_model(self.controls)
        for control in self.controls:
            control.link(self.controls)

    def predict(self, tasks: Sequence[object], time_budget: float | None = None) -> list[TaskPrediction]:
        """One entry per task, in task order.

        With ``time_budget`` (seconds), tasks whose turn comes after it is spent get ``[]``: Label Studio stores the
        predictions made so far instead of timing out on the whole batch, and asks for the others on the next
        "Retrieve predictions". A video still being tracked when it is spent gets ``[]`` too (see :meth:`attempt`).
        """
        deadline = Deadline.after(time_budget) if time_budget else None
        results: list[TaskPrediction] = []
        outcomes = self.attempt_all(tasks, deadline)
        try:
            for outcome in outcomes:
                results.append(outcome.prediction or [])
                if deadline is not None and deadline.passed() and len(results) < len(tasks):
                    logger.warning(
                        "Time budget of %.0f s spent after %d of %d tasks: the other %d get no prediction this time "
                        "(run Retrieve predictions again, or `label-studio-yolo predict` for whole projects)",
                        time_budget,
                        len(results),
                        len(tasks),
                        len(tasks) - len(results),
                    )
                    break
        finally:
            outcomes.close()
        return results + [[] for _ in tasks[len(results) :]]

    def attempt_all(
        self, tasks: Sequence[object], deadline: Deadline | None = None
    ) -> Generator[TaskOutcome, None, None]:
        """Each task's outcome, in task order; the next tasks' images download while a task is predicted.

        Without ``deadline`` (the bulk command) every video is tracked to its end.
        """
        if len(tasks) == 1:  # nothing to download ahead of
            yield self.attempt(tasks[0], position=0, deadline=deadline)
            return
        lines = TaskLines(len(tasks))
        try:
            with MediaPrefetcher(self.loader, [self._image_values(task) for task in tasks]) as images:
                lanes = min(self.lanes, len(tasks))
                if lanes > 1:
                    yield from self._attempt_in_lanes(tasks, lanes, images, deadline, lines)
                    return
                for position, task in enumerate(tasks):
                    yield self.attempt(task, images.of_task(position), None, position, deadline, lines)
                    images.finished(position)
        finally:
            lines.summarise()

    def attempt(
        self,
        task: object,
        images: ImageSource | None = None,
        lane: int | None = None,
        position: int | None = None,
        deadline: Deadline | None = None,
        lines: TaskLines | None = None,
    ) -> TaskOutcome:
        """The prediction for one task, or the reason (also logged) why there is none; ``lane`` picks the lane's
        copies of the models (``None``: the models themselves, with all threads); ``position`` (the task's index in
        its batch) names a task that has no id in the log; ``deadline`` stops tracking a video; ``lines`` are the
        batch's log lines (none: this task's lines are all written)."""
        task_id = _task_id(task)
        name = _task_name(task_id, position)
        lines = lines or TaskLines(1)
        notes: list[str] = []
        try:
            regions = self._regions(task, images or self.loader, lane, notes, deadline)
        except MediaError as error:
            shown = text_shown(str(error), ERROR_LIMIT)
            lines.log(logging.ERROR, "media not loaded", "Task %s: no prediction, media not loaded: %s", name, shown)
            return TaskOutcome(task_id, error=f"media not loaded: {without_secrets(str(error))}")
        except VlmError as error:
            shown = text_shown(str(error), ERROR_LIMIT)
            message = "Task %s: no prediction, the vision-language model failed: %s"
            lines.log(logging.ERROR, "vision-language model failed", message, name, shown)
            return TaskOutcome(task_id, error=f"vision-language model: {without_secrets(str(error))}")
        except TrackingStopped as stopped:
            return _budget_spent(task_id, name, stopped, deadline, lines)
        except Exception as error:
            message = "Task %s: no prediction, unexpected error %s\n%s"
            shown = text_shown(repr(error), ERROR_LIMIT)
            lines.log(logging.ERROR, "unexpected error", message, name, shown, _frames(error))
            return TaskOutcome(task_id, error=f"unexpected error: {without_secrets(repr(error))}")
        for note in notes:
            lines.log(logging.WARNING, "predicted with a warning", "Task %s: %s", name, printable(note, ERROR_LIMIT))
        score = sum(region["score"] for region in regions) / len(regions) if regions else 0.0
        prediction = {"result": regions, "score": round(score, 4), "model_version": self.model_version}
        return TaskOutcome(task_id, prediction=prediction)

    def _attempt_in_lanes(
        self,
        tasks: Sequence[object],
        lanes: int,
        images: MediaPrefetcher,
        deadline: Deadline | None,
        lines: TaskLines,
    ) -> Generator[TaskOutcome, None, None]:
        """``lanes`` threads predict the tasks, each taking the next one as it finishes one (images differ in size,
        so a fixed share per lane would leave one lane idle at the end); outcomes come in task order.

        Closing the generator early stops each lane after the task it is on.
        """
        outcomes: list[Future[TaskOutcome]] = [Future() for _ in tasks]
        next_index = iter(range(len(tasks)))
        stop = threading.Event()
        lock = threading.Lock()
        running = [lanes]

        def take() -> int | None:
            with lock:
                return None if stop.is_set() else next(next_index, None)

        def run_lane(lane: int) -> None:
            try:
                while (index := take()) is not None:
                    done = self.attempt(tasks[index], images.of_task(index), lane, index, deadline, lines)
                    outcomes[index].set_result(done)
                    images.finished(index)
            finally:  # the last lane to end (or die) must not leave the consumer waiting
                with lock:
                    running[0] -= 1
                    last = running[0] == 0
                if last:
                    for index, outcome in enumerate(outcomes):
                        if not outcome.done():
                            outcome.set_result(TaskOutcome(_task_id(tasks[index]), error="prediction stopped"))

        with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="lane") as pool:
            for lane in range(lanes):
                pool.submit(run_lane, lane)
            try:
                for outcome in outcomes:
                    yield outcome.result()
            finally:
                stop.set()

    def _image_values(self, task: object) -> list[object]:
        """The image values of ``task`` in the order prediction loads them (videos are streamed, not prefetched)."""
        keys = [key for key, by_model in self._by_image.items() if by_model[0][0].spec.object_type != "Video"]
        if not isinstance(task, dict) or not isinstance(data := task.get("data"), dict):
            return []
        return [locate(data[key], task.get("id")) for key in keys if key in data]

    def _regions(
        self, task: object, images: ImageSource, lane: int | None, notes: list[str], deadline: Deadline | None
    ) -> list[dict[str, Any]]:
        if not isinstance(task, dict):
            raise MediaError(f"the task is a JSON {json_type(task)}, not an object with 'data'")
        data = task.get("data")
        if not isinstance(data, dict):
            found = f"is a JSON {json_type(data)}" if "data" in task else "is missing"
            raise MediaError(f"the task's 'data' {found}; expected an object such as {{'image': '<URL>'}}")
        regions: list[dict[str, Any]] = []
        for value_key, by_model in self._by_image.items():
            if value_key not in data:
                keys = sorted(map(str, data))
                shown = ", ".join(map(printable, keys[:10])) + (", ..." if len(keys) > 10 else "")
                raise MediaError(
                    f"task data has no '{printable(value_key)}' key, which the config reads (keys: {shown})"
                )
            value = locate(data[value_key], task.get("id"))  # a cloud-storage file is read for its task
            for control, output in self._outputs(value, by_model, images, lane, notes, deadline):
                regions.extend(control.regions(output))
        return _without_missing_parents(regions)

    def _outputs(
        self,
        value: object,
        by_model: list[list[Control]],
        images: ImageSource,
        lane: int | None,
        notes: list[str],
        deadline: Deadline | None,
    ) -> Iterator[tuple[Control, ModelOutput]]:
        """Each control's output on the task's image (loaded once, each model run once, then the control's
        vision-language stage if it has one; its problems go to ``notes``) or video (tracked once per model, until
        ``deadline``)."""
        if by_model[0][0].spec.object_type == "Video":
            for controls in by_model:
                options = tracking_options(controls)
                at = deadline.at if deadline else None
                output = track_task_video(controls[0].weights, value, self.loader, options, self.imgsz, at)
                yield from ((control, output) for control in controls)
            return
        image = images.load_pixels(value)
        for controls in by_model:
            output = self._model_output(controls, image, lane)
            for control in controls:
                if control.vlm is None:
                    yield control, output
                    continue
                staged = control.vlm.apply(image, output)
                tag = f"<{control.spec.control_type} name={control.spec.from_name!r}>"
                notes.extend(f"{tag}: {problem}" for problem in staged.problems)
                yield control, staged.output
        del image  # decoded pixels are not needed past inference

    def _model_output(self, controls: list[Control], image: Pixels, lane: int | None) -> ModelOutput:
        """The controls' model on ``image`` (with the lane's copy and threads, or all threads but the one tracking a
        video); not run when every control is filled zero-shot by a vision-language model."""
        if all(control.vlm is not None and not control.vlm.needs_yolo for control in controls):
            return ModelOutput(ImageSize(image.shape[1], image.shape[0]))
        conf = min(control.spec.threshold for control in controls)
        weights, threads = controls[0].weights, threads_beside_tracking(self.threads)
        if lane is not None:
            threads = max(1, self.threads // self.lanes) if self.threads else None
            weights = weights.lane_copies(self.lanes, threads)[lane]
        return run_model(weights, image, conf=conf, imgsz=self.imgsz, threads=threads)


def _task_id(task: object) -> object:
    return task.get("id") if isinstance(task, dict) else None


def _task_name(task_id: object, position: int | None) -> str:
    """The task as the log names it: its id (escaped: it comes from the request), else its place in the batch."""
    if task_id is None and position is not None:
        return f"#{position} of the batch (it has no id)"
    return printable(task_id)


def _budget_spent(
    task_id: object, name: str, stopped: TrackingStopped, deadline: Deadline | None, lines: TaskLines
) -> TaskOutcome:
    """No prediction for a video whose tracking the time budget stopped, and the logged reason.

    Not the tracks found so far: Label Studio never asks again for a task that holds a prediction of the current
    model version, so a video tracked to its middle would look fully predicted for good; ``[]`` has it asked again.
    """
    budget = f"{deadline.seconds:g} s" if deadline else "?"
    frames = f"{stopped.tracked} of {stopped.total}" if stopped.total else f"{stopped.tracked}"
    if stopped.waited_for:  # a process tracks one video at a time: say where the budget went
        others = f"{stopped.waited_for} other video{'s' if stopped.waited_for > 1 else ''}"
        spent = (
            f"while its video waited {stopped.waited:.0f} s for {others} to be tracked (a process tracks one at a time)"
        )
        advice = "raise WORKERS (each process tracks its own video)"
    else:
        spent = (
            f"after tracking {frames} frames of its video (tracks of part of a video would look complete in Label "
            "Studio)"
        )
        advice = "raise PREDICT_TIME_BUDGET (Label Studio waits 100 s at most)"
    lines.log(
        logging.WARNING,
        "time budget spent on a video",
        "Task %s: no prediction, the time budget of %s ran out %s. Predict videos with `label-studio-yolo predict`, "
        "which has no time budget, or %s",
        name,
        budget,
        spent,
        advice,
    )
    if stopped.waited_for:
        return TaskOutcome(task_id, error=f"time budget of {budget} spent while the video waited for {others}")
    return TaskOutcome(task_id, error=f"time budget of {budget} spent after tracking {frames} frames of the video")


def _frames(error: BaseException) -> str:
    """The traceback of ``error`` without its message (which may quote the request; it is logged escaped)."""
    return "Traceback (most recent call last):\n" + "".join(traceback.format_tb(error.__traceback__)).rstrip()


def _without_missing_parents(regions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop ``parentID`` links to regions that were not predicted (a box below its own threshold)."""
    ids = {region.get("id") for region in regions}
    for region in regions:
        if "parentID" in region and region["parentID"] not in ids:
            del region["parentID"]
    return regions


def _group_by_image_and_model(controls: Sequence[Control]) -> dict[str, list[list[Control]]]:
    """Controls grouped by the image they label, then by model: each image is loaded once, each model run once."""
    groups: dict[str, dict[int, list[Control]]] = defaultdict(lambda: defaultdict(list))
    for control in controls:
        groups[control.spec.value_key][id(control.weights)].append(control)
    return {value_key: list(by_model.values()) for value_key, by_model in groups.items()}
