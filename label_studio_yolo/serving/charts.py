"""The page's two pictures as SVG geometry: each label's score before and after, and the training losses per epoch.

Only numbers are computed here; the templates draw them and escape every label. No chart library: two charts of a
few dozen shapes are cheaper to describe than to ship a library for, and need no JavaScript.

Example:
    >>> bars = score_bars([LabelRow("Cup", 4, None, 0.8, "new label")])
    >>> bars.height, bars.rows[0].new_width
    (30, 240.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from label_studio_yolo.serving.page_data import LabelRow

BAR_WIDTH = 300
"""Pixels of a score of 1.0."""

ROW_HEIGHT = 30
"""Pixels per label: the served model's bar above the new version's."""

LABEL_GUTTER = 120
"""Pixels left of the bars for the label's name."""

CURVE_SIZE = (420, 160)
"""Width and height of the training curve's plot area."""

CURVE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b")
"""One colour per loss, in the order ultralytics writes them."""


@dataclass(frozen=True)
class Bar:
    label: str
    y: int
    old_width: float | None
    new_width: float
    old: float | None
    new: float


@dataclass(frozen=True)
class ScoreBars:
    rows: tuple[Bar, ...]
    height: int
    width: int = LABEL_GUTTER + BAR_WIDTH + 60
    gutter: int = LABEL_GUTTER


@dataclass(frozen=True)
class Curve:
    name: str
    points: str
    """SVG polyline points, "x,y x,y ..." (numbers only)."""
    colour: str
    last: float


@dataclass(frozen=True)
class TrainingCurve:
    curves: tuple[Curve, ...]
    epochs: int
    width: int = CURVE_SIZE[0]
    height: int = CURVE_SIZE[1]


def score_bars(labels: Sequence[LabelRow]) -> ScoreBars:
    """One pair of bars per label: the served model's val score (none for a label it cannot predict) and the new."""
    rows = tuple(
        Bar(
            label=row.label,
            y=index * ROW_HEIGHT,
            old_width=None if row.old is None else _clamp(row.old) * BAR_WIDTH,
            new_width=_clamp(row.new) * BAR_WIDTH,
            old=row.old,
            new=row.new,
        )
        for index, row in enumerate(labels)
    )
    return ScoreBars(rows=rows, height=max(1, len(rows)) * ROW_HEIGHT)


def training_curve(losses: dict[str, list[float]]) -> TrainingCurve | None:
    """Each loss per epoch, scaled to its own first epoch's value, so all fit one plot; None without two epochs."""
    series = {name: values for name, values in losses.items() if len(values) >= 2}
    if not series:
        return None
    epochs = max(len(values) for values in series.values())
    width, height = CURVE_SIZE
    top = max(max(values) / (values[0] or 1.0) for values in series.values()) or 1.0
    curves = []
    for index, (name, values) in enumerate(sorted(series.items())):
        scale = values[0] or 1.0
        points = " ".join(
            f"{epoch / (epochs - 1) * width:.1f},{height - value / scale / top * height:.1f}"
            for epoch, value in enumerate(values)
        )
        curves.append(Curve(name, points, CURVE_COLOURS[index % len(CURVE_COLOURS)], values[-1]))
    return TrainingCurve(curves=tuple(curves), epochs=epochs)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
