"""The train/val split: deterministic, big enough for the gate, every label in val where the data allow."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from label_studio_yolo.training.split import split_tasks

LABELS = ("Person", "Cup", "Cat", "Dog")


def val_of(split: dict[int, str]) -> set[int]:
    return {task for task, where in split.items() if where == "val"}


def project(tasks: int, seed: int) -> dict[int, set[str]]:
    rng = random.Random(seed)
    return {100 + n: set(rng.sample(LABELS[:3], rng.randint(1, 2))) for n in range(tasks)}


def test_fourteen_tasks_give_the_gate_at_least_its_minimum_of_val_images() -> None:
    # The case: 14 annotated tasks, a 0.2 share and a hash split put 1 task in val.
    split = split_tasks(project(14, seed=1), val_fraction=0.2, min_val=4)
    assert len(val_of(split)) == 4


def test_val_never_takes_more_than_half_of_the_tasks() -> None:
    assert len(val_of(split_tasks(project(5, seed=2), val_fraction=0.25, min_val=4))) == 2
    assert val_of(split_tasks({1: {"Cup"}}, val_fraction=0.25, min_val=4)) == set()


def test_every_label_with_two_tasks_or_more_is_in_val_and_stays_in_train() -> None:
    tasks = {n: {"Person"} for n in range(1, 19)} | {50: {"Cat"}, 51: {"Cat"}, 60: {"Dog"}}
    split = split_tasks(tasks, val_fraction=0.2, min_val=4)
    val = val_of(split)
    assert any("Cat" in tasks[t] for t in val), "the rare label is scored by the gate"
    assert any("Cat" in tasks[t] for t in tasks if t not in val), "and still learned"
    assert split[60] == "train", "a label on one task only is needed for training"
    assert len(val) == 5


def test_the_split_is_the_same_whatever_the_order_tasks_come_in() -> None:
    tasks = project(30, seed=3)
    shuffled = list(tasks.items())
    random.Random(4).shuffle(shuffled)
    assert split_tasks(dict(shuffled), 0.25, 4) == split_tasks(tasks, 0.25, 4)


def test_new_annotations_leave_earlier_val_tasks_in_val() -> None:
    tasks = project(20, seed=5)
    before = val_of(split_tasks(tasks, 0.25, 4))
    after = val_of(split_tasks(tasks | project(24, seed=6) | tasks, 0.25, 4))
    assert len(before & after) >= len(before) - 1


def test_tasks_the_served_version_trained_on_go_to_val_last() -> None:
    tasks = project(20, seed=7)
    trained = set(list(tasks)[:14])
    val = val_of(split_tasks(tasks, 0.25, 4, trained_before=trained))
    assert val and not val & trained, "the served model is not scored on its own training images"


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.integers(1, 10_000), st.sets(st.sampled_from(LABELS), max_size=3), max_size=40),
    st.floats(0.05, 0.6),
    st.integers(1, 8),
)
def test_any_split_keeps_each_label_in_train_and_respects_the_sizes(
    tasks: dict[int, set[str]], fraction: float, min_val: int
) -> None:
    split = split_tasks(tasks, fraction, min_val)
    val = val_of(split)
    assert set(split) == set(tasks)
    assert len(val) <= len(tasks) // 2
    assert bool(val) == (len(tasks) >= 2), "two tasks or more always give the gate something to look at"
    untrained = {label for t in val for label in tasks[t]} - {
        label for t in tasks if t not in val for label in tasks[t]
    }
    assert not untrained or len(val) == 1, "a label loses its last train example only to the one fallback val task"
    if not untrained:
        short = len(val) < min(min_val, len(tasks) // 2)
        assert not short or all(
            any(sum(label in tasks[o] for o in tasks if o not in val) == 1 for label in tasks[t])
            for t in tasks
            if t not in val
        ), "val is short only when every train task holds some label's last train example"
