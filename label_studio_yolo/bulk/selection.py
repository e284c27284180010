"""Choose the tasks of a project to predict: by id range, without human annotations, not yet predicted.

The project is listed once, a page at a time, asking Label Studio only for the fields the choice needs (no
annotation or prediction bodies). A task is skipped when:

- its id is outside the requested range;
- a person annotated or skipped it (unless annotated tasks are asked for): predictions never replace their work;
- it holds a prediction of the model version about to be uploaded (or, with ``unpredicted_only``, any prediction).

The last rule makes a run resumable: run again after an interruption and only the tasks still missing a prediction
of this version are predicted.

Example:
    >>> selection = select_tasks(client, 3, TaskFilter(first_id=100), model_version="yolo11n-5b3a2f0c")
    >>> len(selection.tasks), dict(selection.skipped)
    (412, {'annotated': 37, 'already predicted': 51})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from label_studio_sdk.client import LabelStudio

LIST_PAGE_SIZE = 500
"""Tasks per page when listing a project (one request each)."""

LISTED_FIELDS = "id,data,total_annotations,cancelled_annotations,total_predictions,predictions_model_versions"
"""The task fields the selection reads; Label Studio leaves the others out of its answer."""

SKIPPED_OUTSIDE_RANGE = "outside the id range"
SKIPPED_ANNOTATED = "annotated"
SKIPPED_PREDICTED = "already predicted"
SKIPPED_OVER_LIMIT = "over --limit"


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks to predict.

    Attributes:
        first_id: smallest task id to predict (inclusive); None for no lower bound.
        last_id: largest task id to predict (inclusive); None for no upper bound.
        include_annotated: also predict tasks a person annotated or skipped.
        unpredicted_only: skip tasks holding any prediction, not only one of the current model version.
    """

    first_id: int | None = None
    last_id: int | None = None
    include_annotated: bool = False
    unpredicted_only: bool = False


@dataclass
class Selection:
    """The tasks to predict (``id`` and ``data``, in id order) and how many were skipped, by reason."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def listed(self) -> int:
        """How many tasks the project listed."""
        return len(self.tasks) + sum(self.skipped.values())

    def keep_first(self, limit: int) -> None:
        """Predict only the first ``limit`` tasks; the others count as skipped."""
        if len(self.tasks) > limit:
            self.skipped[SKIPPED_OVER_LIMIT] += len(self.tasks) - limit
            del self.tasks[limit:]


def select_tasks(client: LabelStudio, project_id: int, task_filter: TaskFilter, model_version: str) -> Selection:
    """The project's tasks that ``task_filter`` and ``model_version`` leave to predict."""
    listed: Iterable[Any] = client.tasks.list(
        project=project_id,
        fields="all",  # Label Studio fills predictions_model_versions only with fields=all
        include=LISTED_FIELDS,
        page_size=LIST_PAGE_SIZE,
        resolve_uri=True,  # cloud-storage URIs come back as URLs Label Studio serves
    )
    return choose(_as_dicts(listed), task_filter, model_version)


def choose(tasks: Iterable[dict[str, Any]], task_filter: TaskFilter, model_version: str) -> Selection:
    """Split listed tasks into those to predict and those skipped (with the reason)."""
    selection = Selection()
    for task in tasks:
        reason = _skip_reason(task, task_filter, model_version)
        if reason:
            selection.skipped[reason] += 1
        else:
            selection.tasks.append({"id": task["id"], "data": task.get("data") or {}})
    selection.tasks.sort(key=lambda task: int(task["id"]))
    return selection


def _skip_reason(task: dict[str, Any], task_filter: TaskFilter, model_version: str) -> str | None:
    task_id = int(task["id"])
    if (task_filter.first_id is not None and task_id < task_filter.first_id) or (
        task_filter.last_id is not None and task_id > task_filter.last_id
    ):
        return SKIPPED_OUTSIDE_RANGE
    touched = (task.get("total_annotations") or 0) + (task.get("cancelled_annotations") or 0)
    if touched and not task_filter.include_annotated:
        return SKIPPED_ANNOTATED
    if task_filter.unpredicted_only and task.get("total_predictions"):
        return SKIPPED_PREDICTED
    if _has_version(task.get("predictions_model_versions"), model_version):
        return SKIPPED_PREDICTED
    return None


def _has_version(listed_versions: object, model_version: str) -> bool:
    """Whether Label Studio's ``predictions_model_versions`` holds ``model_version``.

    Label Studio joins the versions with commas after splitting each on commas, so a version is present when all its
    comma-separated parts are.
    """
    if not isinstance(listed_versions, str) or not listed_versions:
        return False
    present = set(listed_versions.split(","))
    return all(part in present for part in model_version.split(","))


def _as_dicts(listed: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for task in listed:
        yield task if isinstance(task, dict) else task.model_dump()
