"""What a person can do about a gate's decision, in the terms of their project: labels, images, annotations.

The gate says what it measured ("Person drops 0.99 -> 0.49 on 4 val objects"); this says what to do next, from
what the job saw while it wrote the dataset (:class:`~label_studio_yolo.training.known_objects.KnownObjects`).

Example:
    >>> advice_for(decision, {"Person": 7}, GateRules(), 6, pin_hint(7, "project7-v002-1a2b3c4d"))  # doctest: +SKIP
    ('Person: YOLO finds Person in 7 training image(s) whose annotations began from its predictions and ...',)
"""

from __future__ import annotations

from collections.abc import Mapping

from label_studio_yolo.training.gate import GateDecision, GateRules, Verdict


def pin_hint(project: int, version: str) -> str:
    """How a person serves a stored version the gate refused (shown in advice)."""
    return (
        f'the page\'s "Pin this version" (/ui/projects/{project}) or '
        f"label-studio-yolo versions pin --project {project} --version {version}"
    )


def advice_for(
    decision: GateDecision, removed: Mapping[str, int], rules: GateRules, val_images: int, pin: str
) -> tuple[str, ...]:
    """One line per thing to do about ``decision``.

    ``removed``: per label, the training images whose annotation started from a prediction and lacks an object of
    that label the served model finds there. ``pin``: how to serve the version anyway (:func:`pin_hint`).
    """
    lines = []
    if val_images < rules.min_val_images:
        lines.append(
            f"annotate {rules.min_val_images - val_images} more task(s): the gate needs {rules.min_val_images} "
            "val images to compare the versions"
        )
    for verdict in decision.labels:
        label = verdict.label
        if verdict.verdict is Verdict.DROPPED and removed.get(label):
            lines.append(
                f"{label}: YOLO finds {label} in {removed[label]} training image(s) whose annotations began from its "
                f"predictions and left some out; if they are {label}, keep those regions (or draw them) and train "
                "again; "
                f"if they are not, the new version is right to forget them: serve it with {pin}"
            )
        elif verdict.verdict is Verdict.DROPPED:
            lines.append(
                f"{label}: annotate more images with {label} ({verdict.objects} val objects now) and train again, "
                f"or serve the stored version anyway with {pin}"
            )
        elif verdict.verdict is Verdict.NOT_JUDGED:
            lines.append(f"{label}: draw {label} where it appears, so that the next versions are checked on it")
    return tuple(lines)
