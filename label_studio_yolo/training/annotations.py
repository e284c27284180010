"""Read a project's annotated tasks (exported from Label Studio) into typed regions, one class per tag.

Each task contributes its latest non-cancelled annotation, and of it only the regions of the controls that feed
training. Geometry stays as Label Studio stores it (percent of the image, degrees), so the dataset writer converts it
with the size of the image it actually loads.

================================  ============================================================================
Result ``type``                   Region
================================  ============================================================================
``rectanglelabels``               :class:`RectangleRegion`: ``x``, ``y``, ``width``, ``height``, ``rotation``
``polygonlabels``                 :class:`PolygonRegion`: ``points``
``brushlabels``                   :class:`BrushRegion`: ``rle`` and ``original_width``/``original_height``
``keypointlabels``                :class:`KeypointRegion`: ``x``, ``y`` and the region's ``parentID``
``choices``                       :class:`ChoiceRegion`: the first choice
================================  ============================================================================

Example:
    >>> tasks = annotated_tasks(client.tasks.list(project=7, fields="all"), "image", {"label"})  # doctest: +SKIP
    >>> tasks[0].regions[0]
    RectangleRegion(from_name='label', label='Car', x=10.0, y=20.0, width=30.0, height=40.0, rotation=0.0, ...)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.geometry import ImageSize, rectangle_corners

Point = tuple[float, float]
"""x, y."""


class AnnotationError(ValueError):
    """An annotation cannot be turned into training data; the message says which region and why."""


@dataclass(frozen=True)
class RectangleRegion:
    """A box: top-left corner ``x``, ``y`` and ``width``, ``height`` in percent of the image; ``rotation`` in degrees
    clockwise about that corner."""

    from_name: str
    label: str
    x: float
    y: float
    width: float
    height: float
    rotation: float = 0.0
    region_id: str | None = None

    def corners(self, size: ImageSize) -> list[Point]:
        """The box's corners in pixels of an image of ``size``."""
        return rectangle_corners(self.x, self.y, self.width, self.height, self.rotation, size)


@dataclass(frozen=True)
class PolygonRegion:
    """An outline: its points in percent of the image."""

    from_name: str
    label: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class BrushRegion:
    """A brush mask: Label Studio's RLE of an RGBA image and the size it was painted on (None when not stored)."""

    from_name: str
    label: str
    rle: tuple[int, ...]
    size: ImageSize | None


@dataclass(frozen=True)
class KeypointRegion:
    """A keypoint in percent of the image, and the id of the region it belongs to (``parentID``), if any."""

    from_name: str
    label: str
    x: float
    y: float
    parent_id: str | None = None


@dataclass(frozen=True)
class ChoiceRegion:
    """The class of the whole image (the first choice when several are chosen)."""

    from_name: str
    label: str


Region = RectangleRegion | PolygonRegion | BrushRegion | KeypointRegion | ChoiceRegion


@dataclass(frozen=True)
class AnnotatedTask:
    """A task's image and the regions of its latest annotation; ``error`` says why its regions could not be read."""

    task_id: int
    image: str
    regions: tuple[Region, ...]
    error: str | None = None


def _rectangle(item: dict[str, Any], value: dict[str, Any], label: str) -> Region:
    x, y, width, height = (float(value[key]) for key in ("x", "y", "width", "height"))
    region_id = str(item["id"]) if item.get("id") is not None else None
    return RectangleRegion(item["from_name"], label, x, y, width, height, float(value.get("rotation") or 0), region_id)


def _polygon(item: dict[str, Any], value: dict[str, Any], label: str) -> Region:
    return PolygonRegion(item["from_name"], label, tuple((float(x), float(y)) for x, y in value["points"]))


def _brush(item: dict[str, Any], value: dict[str, Any], label: str) -> Region:
    width, height = item.get("original_width"), item.get("original_height")
    size = ImageSize(int(width), int(height)) if width and height else None
    return BrushRegion(item["from_name"], label, tuple(int(v) for v in value["rle"]), size)


def _keypoint(item: dict[str, Any], value: dict[str, Any], label: str) -> Region:
    parent = str(item["parentID"]) if item.get("parentID") else None
    return KeypointRegion(item["from_name"], label, float(value["x"]), float(value["y"]), parent)


def _choice(item: dict[str, Any], value: dict[str, Any], label: str) -> Region:
    return ChoiceRegion(item["from_name"], label)


READERS: dict[str, Callable[[dict[str, Any], dict[str, Any], str], Region]] = {
    "rectanglelabels": _rectangle,
    "polygonlabels": _polygon,
    "brushlabels": _brush,
    "keypointlabels": _keypoint,
    "choices": _choice,
}
"""Result ``type`` -> reader of its region (the labels are in ``value[type]``)."""


def read_region(item: dict[str, Any]) -> Region | None:
    """The typed region of one annotation result item, or None for a type training does not read.

    Raises:
        KeyError, TypeError, ValueError: the item lacks its geometry or has non-numbers in it.
    """
    kind = str(item.get("type") or "")
    reader, value = READERS.get(kind), item.get("value") or {}
    labels = value.get(kind) or []
    if reader is None or not labels:
        return None
    return reader(item, value, str(labels[0]))


def _field(item: Any, name: str) -> Any:
    """Read a field from an SDK model or a plain dict."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _latest_annotation(task: Any) -> dict[str, Any] | None:
    annotations = [a for a in (_field(task, "annotations") or []) if not _field(a, "was_cancelled")]
    if not annotations:
        return None
    latest = max(annotations, key=lambda a: (str(_field(a, "updated_at") or ""), _field(a, "id") or 0))
    return latest if isinstance(latest, dict) else latest.dict()


def _read_regions(result: list[dict[str, Any]], from_names: Collection[str]) -> tuple[Region, ...]:
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
        try:
            regions = _read_regions(annotation.get("result") or [], from_names)
        except AnnotationError as error:
            found.append(AnnotatedTask(task_id, image, (), error=str(error)))
            continue
        if regions or not require_region:
            found.append(AnnotatedTask(task_id, image, regions))
    return sorted(found, key=lambda t: t.task_id)
