"""Which tasks the bulk command predicts: id range, human work, and predictions already made (what makes it resumable).

The task dicts are shaped as Label Studio 1.23 lists them with the fields the command asks for.
"""

from __future__ import annotations

from label_studio_yolo.bulk.selection import (
    SKIPPED_ANNOTATED,
    SKIPPED_OUTSIDE_RANGE,
    SKIPPED_OVER_LIMIT,
    SKIPPED_PREDICTED,
    TaskFilter,
    choose,
)

VERSION = "boxes-ab29d8a2"


def listed(task_id: int, annotations: int = 0, cancelled: int = 0, versions: str = "") -> dict:
    return {
        "id": task_id,
        "data": {"image": f"/data/upload/1/{task_id}.png"},
        "total_annotations": annotations,
        "cancelled_annotations": cancelled,
        "total_predictions": len(versions.split(",")) if versions else 0,
        "predictions_model_versions": versions,
    }


PROJECT = [
    listed(5),
    listed(1, annotations=1),
    listed(2, cancelled=1),
    listed(3, versions=VERSION),
    listed(4, versions="yolo11n-00000000"),
    listed(6, versions=f"yolo11n-00000000,{VERSION}"),
    listed(7),
]


def chosen(task_filter: TaskFilter, version: str = VERSION) -> list[int]:
    return [task["id"] for task in choose(PROJECT, task_filter, version).tasks]


def test_annotated_skipped_and_predicted_tasks_are_left_alone_by_default():
    selection = choose(PROJECT, TaskFilter(), VERSION)
    assert [task["id"] for task in selection.tasks] == [4, 5, 7], "in id order; an older version is predicted again"
    assert selection.tasks[0] == {"id": 4, "data": {"image": "/data/upload/1/4.png"}}
    assert selection.skipped == {SKIPPED_ANNOTATED: 2, SKIPPED_PREDICTED: 2}


def test_annotated_tasks_are_predicted_only_when_asked():
    assert chosen(TaskFilter(include_annotated=True)) == [1, 2, 4, 5, 7]


def test_unpredicted_only_skips_every_version():
    assert chosen(TaskFilter(unpredicted_only=True)) == [5, 7]


def test_id_range_is_inclusive_and_open_ended():
    assert chosen(TaskFilter(first_id=5)) == [5, 7]
    assert chosen(TaskFilter(last_id=5)) == [4, 5]
    assert chosen(TaskFilter(first_id=4, last_id=4)) == [4]
    assert choose(PROJECT, TaskFilter(first_id=7), VERSION).skipped[SKIPPED_OUTSIDE_RANGE] == 6


def test_a_new_model_version_predicts_again_what_an_old_one_predicted():
    assert chosen(TaskFilter(), version="boxes-ffffffff") == [3, 4, 5, 6, 7]


def test_a_version_is_matched_whole_not_as_a_prefix():
    assert chosen(TaskFilter(), version="boxes-ab29d8a") == [3, 4, 5, 6, 7]


def test_a_limit_keeps_the_first_tasks_and_counts_the_rest_as_skipped():
    selection = choose(PROJECT, TaskFilter(), VERSION)
    selection.keep_first(2)
    assert [task["id"] for task in selection.tasks] == [4, 5]
    assert selection.skipped[SKIPPED_OVER_LIMIT] == 1 and selection.listed == len(PROJECT)
