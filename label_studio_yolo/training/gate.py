"""Decide whether a new version replaces the served one, label by label, on the same val images.

A version is published only when all of these hold (``TRAIN_PUBLISH_POLICY=always`` publishes regardless, and the
verdicts are still recorded):

1. val holds at least ``TRAIN_MIN_VAL_IMAGES`` images;
2. no label the served model already predicts drops beyond its tolerance. A drop is forgiven only while both hold:
   it is within one object's share (``1 / n`` for ``n`` val objects: one object more or less moves AP50 that much),
   and the new score, read as a share of the ``n`` objects, can still reach ``served - TRAIN_GATE_TOLERANCE`` at
   one-sided 95% confidence (its Wilson upper bound); never less than ``TRAIN_GATE_TOLERANCE``. So one object lost
   of three (1.00 -> 0.67) refuses a version (one object's share, but beyond chance), one of ten (0.90 -> 0.80)
   does not, and with 20 objects or more the tolerance is the setting;
3. the mean over the labels in val is at least the served model's: a tie (a val set both models saturate) is not
   a regression.

A label with no val objects cannot be judged, and one with fewer than ``TRAIN_GATE_MIN_OBJECTS`` is judged on thin
evidence: both are warnings (:attr:`GateDecision.warnings`), never a reason to refuse, so that a label nobody has
annotated yet does not hold back every later version. A version that is not published is still stored;
``label-studio-yolo versions pin`` serves it.

Example:
    >>> decision = judge(old, new, already_predicted={"Person"}, val_images=6, rules=GateRules())  # doctest: +SKIP
    >>> decision.publish, decision.reason
    (False, 'Person drops 0.81 -> 0.55 on 12 val objects (tolerance 0.08)')
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from label_studio_yolo.training.evaluate import LabelScore, mean_score


@dataclass(frozen=True)
class GateRules:
    """The gate's settings (``TRAIN_PUBLISH_POLICY``, ``TRAIN_MIN_VAL_IMAGES``, ``TRAIN_GATE_*``)."""

    policy: str = "not_worse"
    min_val_images: int = 4
    min_objects: int = 3
    """Val objects under which a label's verdict comes with a warning."""
    tolerance: float = 0.05


CONFIDENCE_Z = 1.645
"""The normal quantile of the gate's one-sided 95% confidence (rule 2 of the module)."""


class Verdict(StrEnum):
    """What the gate made of one label."""

    NEW_LABEL = "new label"
    """The served model cannot predict it."""
    BETTER = "better"
    KEPT = "kept"
    """Lower or equal, within its tolerance."""
    DROPPED = "dropped"
    NOT_JUDGED = "not judged"
    """No val objects: a warning."""


@dataclass(frozen=True)
class LabelVerdict:
    """One label's scores on val, old and new, its tolerance and what the gate made of it.

    ``old`` is None for a label the served model cannot predict.
    """

    label: str
    objects: int
    old: float | None
    new: float
    tolerance: float
    verdict: Verdict


@dataclass(frozen=True)
class GateDecision:
    """Publish or not, why, every label's verdict, and what the gate could not judge well (``warnings``)."""

    publish: bool
    reason: str
    old_mean: float
    new_mean: float
    labels: tuple[LabelVerdict, ...]
    warnings: tuple[str, ...] = ()

    @property
    def dropped(self) -> tuple[LabelVerdict, ...]:
        """The labels that dropped beyond their tolerance."""
        return tuple(verdict for verdict in self.labels if verdict.verdict is Verdict.DROPPED)

    def as_dict(self) -> dict[str, Any]:
        """The decision as it goes into ``meta.json`` and the job's result."""
        labels = {verdict.label: {**asdict(verdict), "verdict": verdict.verdict.value} for verdict in self.labels}
        for fields in labels.values():
            del fields["label"]
        return {**asdict(self), "labels": labels, "warnings": list(self.warnings)}


def judge(
    old: dict[str, LabelScore],
    new: dict[str, LabelScore],
    already_predicted: Collection[str],
    val_images: int,
    rules: GateRules,
) -> GateDecision:
    """Compare per-label scores of the served (``old``) and the new model on the same val images."""
    labels = sorted(set(new) | set(already_predicted))
    verdicts = tuple(
        _verdict(label, old.get(label), new.get(label, LabelScore(0.0, 0)), label in already_predicted, rules)
        for label in labels
    )
    old_mean = mean_score({label: old.get(label, LabelScore(0.0, 0)) for label in new})
    new_mean = mean_score(new)
    publish, reason = _decide(verdicts, old_mean, new_mean, val_images, rules)
    return GateDecision(publish, reason, round(old_mean, 4), round(new_mean, 4), verdicts, _warnings(verdicts, rules))


def tolerance_for(before: float, objects: int, rules: GateRules) -> float:
    """How far below ``before`` (the served score) a label with ``objects`` val objects may land (rule 2 of the
    module)."""
    one_object = 1 / max(objects, 1)
    floor = before - rules.tolerance
    if floor <= 0.0:
        return round(max(rules.tolerance, min(one_object, before)), 4)
    low, high = 0.0, floor  # the lowest score whose upper bound reaches the floor (a bound is above its score)
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if upper_bound(middle, objects) >= floor else (middle, high)
    return round(max(rules.tolerance, min(one_object, before - high)), 4)


def upper_bound(score: float, objects: int) -> float:
    """One-sided 95% Wilson upper bound of ``score`` read as a share of ``objects``.

    Written out because scipy's ``binomtest`` takes whole counts, and an AP50 times its objects is not one.
    """
    z2 = CONFIDENCE_Z**2 / max(objects, 1)
    centre = (score + z2 / 2) / (1 + z2)
    spread = CONFIDENCE_Z * math.sqrt(score * (1 - score) / max(objects, 1) + z2 / (4 * max(objects, 1))) / (1 + z2)
    return min(1.0, centre + spread)


def _verdict(label: str, old: LabelScore | None, new: LabelScore, predicted: bool, rules: GateRules) -> LabelVerdict:
    if not predicted:
        return LabelVerdict(label, new.count, None, round(new.value, 4), rules.tolerance, Verdict.NEW_LABEL)
    before = old.value if old else 0.0
    tolerance = tolerance_for(before, new.count, rules)
    if new.count == 0:
        verdict = Verdict.NOT_JUDGED
    elif before - new.value > tolerance:
        verdict = Verdict.DROPPED
    else:
        verdict = Verdict.BETTER if new.value > before else Verdict.KEPT
    return LabelVerdict(label, new.count, round(before, 4), round(new.value, 4), tolerance, verdict)


def _warnings(verdicts: tuple[LabelVerdict, ...], rules: GateRules) -> tuple[str, ...]:
    """Labels the served model predicts that val cannot judge (no objects), or judges on few objects."""
    warnings = []
    for verdict in verdicts:
        if verdict.verdict is Verdict.NOT_JUDGED:
            warnings.append(f"{verdict.label} has no val objects: not judged")
        elif verdict.old is not None and verdict.objects < rules.min_objects:
            warnings.append(
                f"{verdict.label} judged on {verdict.objects} val object{'s' * (verdict.objects != 1)} "
                f"(TRAIN_GATE_MIN_OBJECTS is {rules.min_objects})"
            )
    return tuple(warnings)


def _decide(
    verdicts: tuple[LabelVerdict, ...], old_mean: float, new_mean: float, val_images: int, rules: GateRules
) -> tuple[bool, str]:
    """The first rule of the module's list that fails, as the reason; or why the version is published."""
    always = rules.policy == "always"
    dropped = [v for v in verdicts if v.verdict is Verdict.DROPPED]
    if val_images < rules.min_val_images:
        reason = f"too little data to judge: {val_images} val images, the gate needs {rules.min_val_images}"
    elif dropped:
        reason = "; ".join(
            f"{v.label} drops {v.old:.2f} -> {v.new:.2f} on {v.objects} val objects (tolerance {v.tolerance:.2f})"
            for v in dropped
        )
    elif new_mean < old_mean:
        reason = f"worse overall: mean {new_mean:.3f} vs the served {old_mean:.3f}"
    else:
        change = "better" if new_mean > old_mean else "as good"
        return True, f"{change} overall ({old_mean:.3f} -> {new_mean:.3f}) and no label it predicted dropped"
    return (True, f"published by TRAIN_PUBLISH_POLICY=always although {reason}") if always else (False, reason)
