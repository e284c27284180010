"""Read a Label Studio labelling config into what the model has to fill.

The config is parsed by label-studio-sdk's ``LabelInterface``. For every control tag this backend supports (see
:data:`label_studio_yolo.tags.CONTROL_TYPES`) we read:

- which object tag it labels and which task-data key holds that object's URL (``value="$image"`` -> ``image``);
- ``model_score_threshold``: the minimum region score, else the ``MODEL_SCORE_THRESHOLD`` setting;
- for each ``<Label>``: the model classes it takes, from ``predicted_values="car,truck"``, else the class whose name
  equals the label's value (case-insensitive);
- for ``<KeyPointLabels>``: the keypoint index each label takes (:func:`keypoint_labels`).

Example:
    >>> spec = parse_label_config(EXAMPLE_CONFIG, default_threshold=0.5)[0]
    >>> spec.labels.label_for("truck"), spec.threshold
    ('Car', 0.25)
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import PurePosixPath, PureWindowsPath

from label_studio_sdk.label_interface.control_tags import ControlTag
from label_studio_sdk.label_interface.interface import LabelInterface
from label_studio_sdk.label_interface.object_tags import ObjectTag

from label_studio_yolo.errors import LabelConfigError
from label_studio_yolo.logsafe import printable
from label_studio_yolo.settings import VLM_ATTR, VLM_TAG_MODES

logger = logging.getLogger(__name__)

PREDICTED_VALUES_ATTR = "predicted_values"
"""``<Label>`` attribute listing the model classes (comma separated) that become this label."""

THRESHOLD_ATTR = "model_score_threshold"
"""Control-tag attribute with the minimum score (0-1) of a predicted region."""

MAX_MODEL_PATH_CHARS = 255
"""Longest ``model_path`` a tag may give (a file name's limit on common file systems)."""

MODEL_PATH_ATTR = "model_path"
"""Control-tag attribute naming the weights (inside MODEL_ROOT) for this tag; else MODEL_PATH."""

MODEL_INDEX_ATTR = "model_index"
"""``<Label>`` attribute of ``<KeyPointLabels>``: the index of the model's keypoint this label takes."""

SUPPORTED_OBJECT_TAGS = frozenset({"Image", "Video"})
"""Object tags whose data this backend can load."""

EXAMPLE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.25">
    <Label value="Car" predicted_values="car,truck"/>
    <Label value="Person" predicted_values="person"/>
  </RectangleLabels>
</View>"""
"""A labelling config this backend fills, shown in error messages."""


@dataclass(frozen=True)
class LabelMap:
    """Model class names (lower-case) to the Label Studio label each becomes."""

    by_class: Mapping[str, str]

    def label_for(self, class_name: str) -> str | None:
        """The label for a model class, or None when no label claims it."""
        return self.by_class.get(class_name.lower())

    def restricted_to(self, class_names: Iterable[str]) -> LabelMap:
        """Only the entries whose class the model actually has."""
        known = {name.lower() for name in class_names}
        return LabelMap({name: label for name, label in self.by_class.items() if name in known})


@dataclass(frozen=True)
class KeypointLabel:
    """A ``<KeyPointLabels>`` label: the model keypoint it takes and, optionally, the object classes it belongs to."""

    label: str
    index: int
    classes: frozenset[str] | None = None

    def accepts(self, class_name: str) -> bool:
        """Whether a keypoint of an object of ``class_name`` becomes this label."""
        return self.classes is None or class_name.lower() in self.classes


@dataclass(frozen=True)
class ControlSpec:
    """One control tag to fill: its names, the task-data key of its object, threshold and label mapping."""

    tag: ControlTag
    from_name: str
    to_name: str
    object_type: str
    value_key: str
    threshold: float
    labels: LabelMap
    model_path: str | None = None
    keypoints: tuple[KeypointLabel, ...] = ()
    label_names: tuple[str, ...] = ()
    vlm_mode: str | None = None
    """The tag's ``vlm`` attribute (None: VLM_MODE decides)."""
    predicted_classes: frozenset[str] = frozenset()
    """The model classes (lower-case) the tag's ``predicted_values`` attributes name."""
    labels_holder: str = ""
    """The tag holding the labels, as XML (``<Labels name="kind">`` for a ``<VideoRectangle>``); empty: the control."""

    @property
    def control_type(self) -> str:
        """The tag name, e.g. ``RectangleLabels``."""
        return str(self.tag.tag)

    def attribute(self, name: str) -> str | None:
        """The control tag's attribute ``name`` (e.g. ``model_point_threshold``), or None when it is not set."""
        value = (self.tag.attr or {}).get(name)
        return str(value) if value not in (None, "") else None


DEFAULT_SUPPORTED: Mapping[str, frozenset[str]] = {"RectangleLabels": frozenset({"Image"})}
"""Control tag -> object tags it can label, when the caller names none."""


def parse_label_config(
    config: str, default_threshold: float, supported_controls: Mapping[str, Iterable[str]] = DEFAULT_SUPPORTED
) -> list[ControlSpec]:
    """Return a spec for every supported control of ``config`` that labels an object tag it supports.

    ``supported_controls`` maps each control tag to the object tags it can label (``{"VideoRectangle":
    {"Video"}}``).

    Raises:
        LabelConfigError: the XML is invalid, a threshold is not a number in 0-1, or no control can be filled.
    """
    try:
        interface = LabelInterface(config)
    except Exception as error:  # the SDK raises lxml, KeyError or its own errors for broken XML
        raise LabelConfigError(
            f"The labelling config could not be parsed ({error!r:.300}). {_example_hint()}"
        ) from error
    specs = []
    for control in interface.controls:
        objects = [obj for obj in control.objects or [] if obj.tag in supported_controls.get(control.tag, ())]
        if objects:
            specs.append(_control_spec(interface, control, objects[0], default_threshold))
    if not specs:
        found = ", ".join(sorted({f"<{c.tag} name={c.name!r}>" for c in interface.controls})) or "no control tags"
        can_fill = ", ".join(f"{tag} on {'/'.join(sorted(objs))}" for tag, objs in sorted(supported_controls.items()))
        raise LabelConfigError(
            f"This YOLO backend can fill {can_fill}, but the labelling config has {found}. {_example_hint()}"
        )
    return specs


def _control_spec(
    interface: LabelInterface, control: ControlTag, image: ObjectTag, default_threshold: float
) -> ControlSpec:
    labels_tag = _label_source(interface, control)
    if not image.value_name:
        raise LabelConfigError(
            f'<{image.tag} name="{image.name}"> must take its URL from task data, e.g. value="$image". '
            f"{_example_hint()}"
        )
    return ControlSpec(
        tag=control,
        from_name=str(control.name),
        to_name=str(image.name),
        object_type=str(image.tag),
        value_key=image.value_name,
        threshold=_threshold(control, default_threshold),
        labels=_label_map(labels_tag),
        label_names=tuple(str(label) for label in labels_tag.labels or []),
        model_path=_model_path(control),
        keypoints=keypoint_labels(control) if control.tag == "KeyPointLabels" else (),
        vlm_mode=_vlm_mode(control),
        predicted_classes=_predicted_classes(labels_tag),
        labels_holder=f'<{labels_tag.tag} name="{printable(labels_tag.name)}">',
    )


def _vlm_mode(control: ControlTag) -> str | None:
    raw = (control.attr or {}).get(VLM_ATTR)
    if raw is None:
        return None
    if str(raw) not in VLM_TAG_MODES:
        raise LabelConfigError(
            f'<{control.tag} name="{control.name}"> has {VLM_ATTR}="{raw}"; it must be one of '
            f'{", ".join(VLM_TAG_MODES)}, e.g. <{control.tag} name="{control.name}" toName="..." {VLM_ATTR}="refine">.'
        )
    return str(raw)


def _predicted_classes(control: ControlTag) -> frozenset[str]:
    names: set[str] = set()
    for label in control.labels or []:
        attrs = _label_attributes(control, label)
        names.update(name.strip().lower() for name in (attrs.get(PREDICTED_VALUES_ATTR) or "").split(","))
    return frozenset(names - {""})


def _model_path(control: ControlTag) -> str | None:
    """The tag's ``model_path``, refused when it is absolute or climbs out of MODEL_ROOT with ``..``.

    (A symbolic link inside MODEL_ROOT that points out of it is refused when the weights are loaded.)
    """
    raw = (control.attr or {}).get(MODEL_PATH_ATTR) or None
    if raw is None:
        return None
    tag = f'<{control.tag} name="{printable(control.name)}">'
    if len(str(raw)) > MAX_MODEL_PATH_CHARS:
        raise LabelConfigError(
            f"{tag} has a {MODEL_PATH_ATTR} of {len(str(raw))} characters; name a weight file relative to MODEL_ROOT "
            f'in at most {MAX_MODEL_PATH_CHARS}, e.g. {MODEL_PATH_ATTR}="extra/best.pt".'
        )
    normal = posixpath.normpath(str(raw).replace("\\", "/"))
    if PurePosixPath(normal).is_absolute() or PureWindowsPath(raw).is_absolute() or normal.split("/")[0] == "..":
        raise LabelConfigError(
            f'{tag} has {MODEL_PATH_ATTR}="{printable(raw)}", which points outside MODEL_ROOT; '
            f'name a weight file relative to MODEL_ROOT, e.g. {MODEL_PATH_ATTR}="extra/best.pt".'
        )
    return str(raw)


def _label_source(interface: LabelInterface, control: ControlTag) -> ControlTag:
    """The tag holding the control's ``<Label>`` list: itself, or for ``<VideoRectangle>`` (which has none) the
    ``<Labels>`` tag on the same object."""
    if control.labels or control.tag != "VideoRectangle":
        return control
    for other in interface.controls:
        if other.tag == "Labels" and set(other.to_name or []) & set(control.to_name or []):
            labels_tag: ControlTag = other
            return labels_tag
    return control


def keypoint_labels(control: ControlTag) -> tuple[KeypointLabel, ...]:
    """Each ``<KeyPointLabels>`` label and the model keypoint it takes.

    The index is ``model_index="N"``, else an integer ``predicted_values="N"``, else the label's position in the
    control. With ``model_index``, ``predicted_values`` names the object classes the keypoint belongs to.
    """
    found = []
    for position, label in enumerate(control.labels or []):
        attrs = _label_attributes(control, label)
        raw_index, predicted = attrs.get(MODEL_INDEX_ATTR), (attrs.get(PREDICTED_VALUES_ATTR) or "").strip()
        classes = frozenset(n.strip().lower() for n in predicted.split(",") if n.strip()) or None
        if raw_index is None and predicted.isdigit():
            raw_index, classes = predicted, None
        try:
            index = int(raw_index) if raw_index is not None else position
        except ValueError:
            raise LabelConfigError(
                f'<Label value="{label}"> of <KeyPointLabels name="{control.name}"> has {MODEL_INDEX_ATTR}='
                f'"{raw_index}"; it must be the keypoint\'s index in the model, e.g. <Label value="{label}" '
                f'{MODEL_INDEX_ATTR}="0" predicted_values="person"/>.'
            ) from None
        found.append(KeypointLabel(str(label), index, classes if raw_index is not None else None))
    return tuple(found)


def _label_attributes(control: ControlTag, label: str) -> dict[str, str]:
    """The attributes of the control's ``<Label value=label>`` (``predicted_values``, ``model_index`` ...)."""
    if not control.labels_attrs or label not in control.labels_attrs:
        return {}
    return dict(control.labels_attrs[label].attr or {})


def _threshold(control: ControlTag, default: float) -> float:
    return score_attribute(control, THRESHOLD_ATTR, default)


def score_attribute(control: ControlTag, name: str, default: float) -> float:
    """The control's score attribute ``name`` (a number from 0 to 1), else ``default``.

    Raises:
        LabelConfigError: the attribute is not a number from 0 to 1 (the message shows one that is).
    """
    raw = (control.attr or {}).get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise LabelConfigError(
            f'<{control.tag} name="{control.name}"> has {name}="{raw}"; it must be a number from 0 to 1, '
            f'e.g. <{control.tag} name="{control.name}" toName="..." {name}="0.25">.'
        )
    return value


def _label_map(control: ControlTag) -> LabelMap:
    """Model class -> label; when two labels claim one class, the first in the config wins."""
    by_class: dict[str, str] = {}
    for label in control.labels or []:
        attrs = _label_attributes(control, label)
        raw = attrs.get(PREDICTED_VALUES_ATTR)
        classes = [name.strip() for name in raw.split(",")] if raw else [label]
        for class_name in filter(None, classes):
            claimed = by_class.setdefault(class_name.lower(), label)
            if claimed != label:
                logger.warning(
                    "Model class %r is claimed by labels %r and %r of <%s name=%r>; using %r",
                    class_name,
                    claimed,
                    label,
                    control.tag,
                    control.name,
                    claimed,
                )
    return LabelMap(by_class)


def with_own_labels(spec: ControlSpec) -> ControlSpec:
    """The spec for a model trained on this project: its classes are the labels themselves (keypoints keep their
    indices, for any object class)."""
    labels = LabelMap({label.lower(): label for label in spec.label_names})
    keypoints = tuple(replace(point, classes=None) for point in spec.keypoints)
    return replace(spec, labels=labels, keypoints=keypoints)


def unmapped_control_hint(spec: ControlSpec, class_names: Iterable[str]) -> str:
    """Explain, with XML, how to map a control's labels to the model's classes."""
    classes = sorted(set(class_names))
    shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
    first = printable(spec.label_names[0]) if spec.label_names else "MyLabel"
    child = "Choice" if spec.control_type == "Choices" else "Label"
    holder = spec.labels_holder or f'<{spec.control_type} name="{printable(spec.from_name)}">'
    return (
        f"No <{child}> of {holder} matches a class of the model ({shown}). "
        f"Name a {child.lower()} after a class, or list classes in predicted_values, e.g. "
        f'<{child} value="{first}" predicted_values="{classes[0] if classes else "car"}"/>.'
    )


def _example_hint() -> str:
    return f"A config this backend fills:\n{EXAMPLE_CONFIG}"
