"""Split annotated tasks into train and val: deterministic, stratified by label, with a minimum val size.

The gate compares models per label on val, so val must be big enough and hold every label where the data allow.
Tasks are ordered by a hash of their id (stable from job to job), the served version's training tasks last; val
takes, rarest label first, a task for each label it lacks (if the label stays in train too), then fills up to
``max(min_val, ceil(val_fraction * n))`` tasks, never more than half. If val would be empty it takes the first task
anyway, and the gate then finds too little data to judge.

Example:
    >>> split_tasks({1: {"Cat"}, 2: {"Cat"}, 3: {"Cup"}, 4: {"Cup", "Cat"}}, val_fraction=0.25, min_val=2)
    {1: 'train', 2: 'val', 3: 'val', 4: 'train'}
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Collection, Mapping

TaskLabels = Mapping[int, Collection[str]]
"""Task id -> the labels annotated on it (empty for a negative example)."""


def split_tasks(
    labels_of: TaskLabels, val_fraction: float, min_val: int, trained_before: Collection[int] = ()
) -> dict[int, str]:
    """Task id -> ``"train"`` or ``"val"`` (see the module's docstring for the rule)."""
    order = sorted(labels_of, key=lambda task: (task in trained_before, zlib.crc32(str(task).encode()), task))
    most = len(order) // 2
    wanted = min(max(min_val, math.ceil(val_fraction * len(order))), most)
    in_train = Counter(label for task in order for label in set(labels_of[task]))
    val: list[int] = []

    def move_to_val(task: int) -> None:
        val.append(task)
        in_train.subtract(set(labels_of[task]))

    def keeps_train_labels(task: int) -> bool:
        return task not in val and all(in_train[label] > 1 for label in labels_of[task])

    for label in sorted(in_train, key=lambda name: (in_train[name], name)):
        if len(val) >= most or any(label in labels_of[task] for task in val):
            continue
        holder = next((task for task in order if label in labels_of[task] and keeps_train_labels(task)), None)
        if holder is not None:
            move_to_val(holder)
    for task in order:
        if len(val) >= wanted:
            break
        if keeps_train_labels(task):
            move_to_val(task)
    if not val and most:
        move_to_val(order[0])
    return {task: "val" if task in val else "train" for task in labels_of}
