"""Read a project's annotated tasks (exported from Label Studio) into typed regions.

Each task contributes its latest non-cancelled annotation, and of it only the regions of the controls that feed
training, each read by its tag's class (:func:`label_studio_yolo.tags.annotation_reader`). Geometry stays as Label
Studio stores it (percent of the image, degrees), so the dataset writer converts it with the size of the image it
actually loads.

Example:
    >>> tasks = annotated_tasks(client.tasks.list(project=7, fields="all"), "image", {"label"})  # doctest: +SKIP
    >>> tasks[0].regions[0]
    RectangleRegion(from_name='label', label='Car', x=10.0, y=20.0, width=30.0, height=40.0, rotation=0.0, ...)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.errors import AnnotationError
from label_studio_yolo.tags import annotation_reader
from label_studio_yolo.tags.base import AnnotatedRegion


@dataclass(frozen=True)
class AnnotatedTask:
    """A task's image and the regions of its latest annotation; ``error`` says why its regions could not be read.

    ``from_prediction``: the annotation started from a model's prediction (Label Studio's ``parent_prediction``),
    so its annotator saw the model's regions and deleted the ones missing.
    """

    task_id: int
    image: str
    regions: tuple[AnnotatedRegion, ...]
    error: str | None = None
    from_prediction: bool = False


def read_region(item: dict[str, Any]) -> AnnotatedRegion | None:
    """The typed region of one annotation result item, or None for a type training does not read.

    Raises:
        KeyError, TypeError, ValueError: the item lacks its geometry or has non-numbers in it.
    """
    kind = str(item.get("type") or "")
    reader, labels = annotation_reader(kind), (item.get("value") or {}).get(kind) or []
    if reader is None or not labels:
        return None
    return reader.read_region(item, str(labels[0]))


def _field(item: Any, name: str) -> Any:
    """Read a field from an SDK model or a plain dict."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _latest_annotation(task: Any) -> dict[str, Any] | None:
    annotations = [a for a in (_field(task, "annotations") or []) if not _field(a, "was_cancelled")]
    if not annotations:
        return None
    latest = max(annotations, key=lambda a: (str(_field(a, "updated_at") or ""), _field(a, "id") or 0))
    return latest if isinstance(latest, dict) else latest.dict()


def _read_regions(result: list[dict[str, Any]], from_names: Collection[str]) -> tuple[AnnotatedRegion, ...]:
    """The regions of the controls ``from_names`` in an annotation's ``result``.

    Raises:
        AnnotationError: a region lacks its geometry or has non-numbers in it.
    """
    regions = []
    for item in result:
        if item.get("from_name") not in from_names:
            continue
        try:
            region = read_region(item)
        except (KeyError, TypeError, ValueError) as error:
            raise AnnotationError(
                f"region {item.get('id')!r} of {item.get('from_name')!r} is malformed ({error!r})"
            ) from error
        if region is not None:
            regions.append(region)
    return tuple(regions)


def annotated_tasks(
    tasks: Iterable[Any], value_key: str, from_names: Collection[str], require_region: bool = False
) -> list[AnnotatedTask]:
    """The tasks with a usable annotation of the controls ``from_names``, in task-id order.

    ``value_key`` is the task-data key of the image. A task whose annotation has no region of those controls is a
    negative example, unless ``require_region`` (classification: an image without a choice teaches nothing).
    """
    found = []
    for task in tasks:
        annotation, data = _latest_annotation(task), _field(task, "data") or {}
        if annotation is None or value_key not in data:
            continue
        task_id, image = int(_field(task, "id")), str(data[value_key])
        from_prediction = annotation.get("parent_prediction") is not None
        try:
            regions = _read_regions(annotation.get("result") or [], from_names)
        except AnnotationError as error:
            found.append(AnnotatedTask(task_id, image, (), error=str(error), from_prediction=from_prediction))
            continue
        if regions or not require_region:
            found.append(AnnotatedTask(task_id, image, regions, from_prediction=from_prediction))
    return sorted(found, key=lambda t: t.task_id)
