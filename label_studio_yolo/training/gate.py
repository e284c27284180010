"""Decide whether a new version replaces the served one, label by label, on the same val images.

A version is published only when all of these hold (``TRAIN_PUBLISH_POLICY=always`` publishes regardless, and the
verdicts are still recorded):

1. val holds at least ``TRAIN_MIN_VAL_IMAGES`` images;
2. every label the served model already predicts has at least ``TRAIN_GATE_MIN_OBJECTS`` objects (classify:
   images) in val, so that its drop can be measured at all (a label nobody annotated could be forgotten unseen);
3. no such label's score drops by more than ``max(TRAIN_GATE_TOLERANCE, 1 / n)`` for ``n`` val objects (one object
   more or less moves AP50 by about ``1 / n``, which cannot be told from chance);
4. the mean over the labels in val is higher than the served model's.

A version that is not published is still stored; ``label-studio-yolo versions pin`` serves it.

Example:
    >>> decision = judge(old, new, already_predicted={"Person"}, val_images=6, rules=GateRules())  # doctest: +SKIP
    >>> decision.publish, decision.reason
    (False, 'Person drops 0.81 -> 0.55 (more than its tolerance 0.10)')
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from label_studio_yolo.training.evaluate import LabelScore, mean_score


@dataclass(frozen=True)
class GateRules:
    """The gate's settings (``TRAIN_PUBLISH_POLICY``, ``TRAIN_MIN_VAL_IMAGES``, ``TRAIN_GATE_*``)."""

    policy: str = "not_worse"
    min_val_images: int = 4
    min_objects: int = 3
    tolerance: float = 0.05


@dataclass(frozen=True)
class LabelVerdict:
    """One label's scores on val, old and new, its tolerance and what the gate made of it.

    ``old`` is None for a label the served model cannot predict; ``verdict`` is one of ``new label``, ``better``,
    ``kept`` (within tolerance), ``dropped`` or ``too few objects``.
    """

    label: str
    objects: int
    old: float | None
    new: float
    tolerance: float
    verdict: str


@dataclass(frozen=True)
class GateDecision:
    """Publish or not, why, and every label's verdict."""

    publish: bool
    reason: str
    old_mean: float
    new_mean: float
    labels: tuple[LabelVerdict, ...]

    def as_dict(self) -> dict[str, Any]:
        """The decision as it goes into ``meta.json`` and the job's result."""
        labels = {verdict.label: asdict(verdict) for verdict in self.labels}
        for fields in labels.values():
            del fields["label"]
        return {**asdict(self), "labels": labels}


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
    return GateDecision(publish, reason, round(old_mean, 4), round(new_mean, 4), verdicts)


def _verdict(label: str, old: LabelScore | None, new: LabelScore, predicted: bool, rules: GateRules) -> LabelVerdict:
    tolerance = round(max(rules.tolerance, 1 / max(new.count, 1)), 4)
    if not predicted:
        return LabelVerdict(label, new.count, None, round(new.value, 4), tolerance, "new label")
    before = old.value if old else 0.0
    if new.count < rules.min_objects:
        verdict = "too few objects"
    elif before - new.value > tolerance:
        verdict = "dropped"
    else:
        verdict = "better" if new.value > before else "kept"
    return LabelVerdict(label, new.count, round(before, 4), round(new.value, 4), tolerance, verdict)


def _decide(
    verdicts: tuple[LabelVerdict, ...], old_mean: float, new_mean: float, val_images: int, rules: GateRules
) -> tuple[bool, str]:
    """The first rule of the module's list that fails, as the reason; or why the version is published."""
    always = rules.policy == "always"
    dropped = [v for v in verdicts if v.verdict == "dropped"]
    unjudged = [v for v in verdicts if v.verdict == "too few objects"]
    if val_images < rules.min_val_images:
        reason = f"too little data to judge: {val_images} val images, the gate needs {rules.min_val_images}"
    elif unjudged:
        reason = "too little data to judge " + ", ".join(
            f"{v.label} ({v.objects} val objects, the gate needs {rules.min_objects})" for v in unjudged
        )
    elif dropped:
        reason = "; ".join(f"{v.label} drops {v.old:.2f} -> {v.new:.2f} (tolerance {v.tolerance:.2f})" for v in dropped)
    elif new_mean <= old_mean:
        reason = f"not better overall: mean {new_mean:.3f} vs the served {old_mean:.3f}"
    else:
        return True, f"better overall ({old_mean:.3f} -> {new_mean:.3f}) and no label it predicted dropped"
    return (True, f"published by TRAIN_PUBLISH_POLICY=always although {reason}") if always else (False, reason)
