"""Read a vision-language model's answer: JSON found in its text, then boxes or a label checked against the config.

Models wrap JSON in Markdown fences, add a sentence before it, or stop mid-answer when they reach their token
limit. :func:`parse_json` strips what surrounds the JSON and, for an answer cut short, keeps the items that were
complete (an object or array cut inside a value is not guessed at). Everything else is a :class:`VlmAnswerError`.

Example:
    >>> parse_boxes('```json\\n{"objects": [{"label": "drone", "box": [0.1, 0.2, 0.3, 0.4]}]}\\n```', ["Drone"])
    [NormalizedBox(label='Drone', x0=0.1, y0=0.2, x1=0.3, y1=0.4, confidence=None)]
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.logsafe import printable

FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
"""A Markdown code fence, closed or not (a cut-off answer loses its closing fence)."""

OUT_OF_RANGE_TOLERANCE = 0.25
"""How far outside 0-1 a normalized coordinate may be and still be clamped to the image; beyond it the box is
refused (it is likely in pixels or in Qwen2-VL's 0-1000 grid, not a fraction)."""

NO_LABEL = frozenset({"", "none", "null", "other", "no", "unknown", "n/a"})
"""Answers meaning "none of the labels" (the object is dropped)."""


class VlmAnswerError(ValueError):
    """The answer could not be read; the message says why and shows its start."""


@dataclass(frozen=True)
class NormalizedBox:
    """A box as fractions of the image's width and height (0-1, origin top-left), with a label of the config."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float | None = None


@dataclass(frozen=True)
class LabelAnswer:
    """What the model said about one crop: a label of the config (None: none of them) and its confidence."""

    label: str | None
    confidence: float | None = None


def parse_json(text: str) -> Any:
    """The JSON value in a model's answer: inside a code fence or after prose; an answer cut short keeps its
    complete items.

    Raises:
        VlmAnswerError: no JSON object or array could be read.
    """
    fenced = FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start = min((index for index in (body.find("{"), body.find("[")) if index >= 0), default=-1)
    if start < 0:
        raise VlmAnswerError(f"the answer holds no JSON: {printable(text)}")
    candidate = body[start:].strip()
    try:
        value, _ = json.JSONDecoder().raw_decode(candidate)
        return value
    except json.JSONDecodeError:
        repaired = _complete_items(candidate)
    if repaired is None:
        raise VlmAnswerError(f"the answer is not valid JSON: {printable(text)}")
    return json.loads(repaired)


def parse_boxes(text: str, labels: Sequence[str]) -> list[NormalizedBox]:
    """The boxes of a zero-shot answer (``{"objects": [{"label", "box": [x0, y0, x1, y1], "confidence"}]}`` or the
    bare list), labels matched to ``labels`` ignoring case; items with another label or a box that is not four
    fractions are left out, coordinates slightly outside 0-1 are clamped.

    Raises:
        VlmAnswerError: the answer is not JSON, or not a list of objects.
    """
    data = parse_json(text)
    items = data.get("objects", data.get("boxes")) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise VlmAnswerError(f'expected {{"objects": [...]}}, got {printable(text)}')
    by_name = {label.lower(): label for label in labels}
    boxes = []
    for item in items:
        if not isinstance(item, dict):
            continue
        label = by_name.get(str(item.get("label", "")).strip().lower())
        box = _fractions(item.get("box", item.get("bbox")))
        if label is not None and box is not None:
            boxes.append(NormalizedBox(label, *box, confidence=_confidence(item.get("confidence"))))
    return boxes


def parse_label(text: str, labels: Sequence[str]) -> LabelAnswer:
    """The label a model gave one crop (``{"label": ..., "confidence": ...}``), matched to ``labels`` ignoring
    case; "none" and its likes mean none of them.

    Raises:
        VlmAnswerError: the answer is not JSON, or names a label the config does not have.
    """
    data = parse_json(text)
    if not isinstance(data, dict):
        raise VlmAnswerError(f'expected {{"label": ...}}, got {printable(text)}')
    said = str(data.get("label") or "").strip()
    confidence = _confidence(data.get("confidence"))
    if said.lower() in NO_LABEL:
        return LabelAnswer(None, confidence)
    label = {label.lower(): label for label in labels}.get(said.lower())
    if label is None:
        raise VlmAnswerError(f"the answer names {said!r}, which is none of {', '.join(labels)}")
    return LabelAnswer(label, confidence)


def _fractions(raw: object) -> tuple[float, float, float, float] | None:
    """Four coordinates as an ordered box inside 0-1, or None (not four numbers, too far out, or no area)."""
    if not isinstance(raw, list | tuple) or len(raw) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(value) for value in raw)
    except (TypeError, ValueError):
        return None
    values = (x0, y0, x1, y1)
    if not all(math.isfinite(v) and -OUT_OF_RANGE_TOLERANCE <= v <= 1 + OUT_OF_RANGE_TOLERANCE for v in values):
        return None
    x0, x1 = sorted((min(1.0, max(0.0, x0)), min(1.0, max(0.0, x1))))
    y0, y1 = sorted((min(1.0, max(0.0, y0)), min(1.0, max(0.0, y1))))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _confidence(raw: object) -> float | None:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return min(1.0, max(0.0, value)) if math.isfinite(value) else None


def _complete_items(text: str) -> str | None:
    """``text`` cut back to the last complete item of its innermost open array, with the open brackets closed;
    None if no array item was complete.

    Only whole array items are kept: an object cut anywhere (inside a coordinate, before its confidence) is
    dropped. Written here because json-repair and its likes complete the value that was cut (a coordinate ``0.4``
    may have been ``0.45``, a missing confidence becomes none), which would pass a wrong box for a right one.
    """
    closers = {"{": "}", "[": "]"}
    stack: list[str] = []
    last_complete: tuple[int, list[str]] | None = None
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), in_string and (escaped or char != '"')
            continue
        if char == '"':
            in_string = True
        elif char in closers:
            stack.append(closers[char])
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if stack and stack[-1] == "]":  # an item of an array is complete
                last_complete = (index + 1, list(stack))
    if last_complete is None:
        return None
    end, still_open = last_complete
    return text[:end] + "".join(reversed(still_open))
