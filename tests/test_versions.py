"""VersionStore on a real folder: what each project serves, which versions exist, and that failures leave no trace.

The store never reads weights, so small text files stand in for them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from label_studio_yolo.versions import CURRENT_FILE, META_FILE, WEIGHTS_FILE, VersionStore


@pytest.fixture
def store(tmp_path: Path) -> VersionStore:
    return VersionStore(tmp_path / "model-versions")


def write_version(store: VersionStore, project: int, name: str, **meta) -> None:
    with store.new_version(project, name) as folder:
        (folder / WEIGHTS_FILE).write_text(f"weights of {name}")
        (folder / META_FILE).write_text(json.dumps(meta))


def test_a_new_project_serves_no_version(store: VersionStore) -> None:
    assert store.current(7) is None
    assert store.current_stamp(7) is None
    assert store.versions(7) == []
    assert store.projects() == []


def test_a_published_version_becomes_current_with_its_meta_and_weights(store: VersionStore) -> None:
    write_version(store, 7, "p7-20250101-000000-aaaa", map50=0.9, annotations=12)
    assert store.current(7) is None  # written but not yet published
    store.publish(7, "p7-20250101-000000-aaaa")
    current = store.current(7)
    assert current is not None
    assert (current.project, current.name) == (7, "p7-20250101-000000-aaaa")
    assert current.meta == {"map50": 0.9, "annotations": 12}
    assert current.weights.read_text() == "weights of p7-20250101-000000-aaaa"
    assert store.current(8) is None


def test_versions_are_listed_oldest_first_and_incomplete_folders_are_ignored(store: VersionStore) -> None:
    write_version(store, 7, "p7-20250101-000000-aaaa", map50=0.5)
    write_version(store, 7, "p7-20250102-000000-bbbb", map50=0.7)
    (store.project_dir(7) / "p7-20250103-000000-cccc").mkdir()  # weights copied, meta.json never written
    (store.project_dir(7) / "p7-20250103-000000-cccc" / WEIGHTS_FILE).write_text("half a version")
    listed = store.versions(7)
    assert [v.name for v in listed] == ["p7-20250101-000000-aaaa", "p7-20250102-000000-bbbb"]
    assert [v.meta["map50"] for v in listed] == [0.5, 0.7]


def test_a_failure_while_writing_leaves_no_folder_and_keeps_the_served_version(store: VersionStore) -> None:
    write_version(store, 7, "p7-20250101-000000-aaaa", map50=0.5)
    store.publish(7, "p7-20250101-000000-aaaa")
    with pytest.raises(RuntimeError, match="training crashed"), store.new_version(7, "p7-broken") as folder:
        (folder / WEIGHTS_FILE).write_text("partial weights")
        raise RuntimeError("training crashed")
    entries = sorted(p.name for p in store.project_dir(7).iterdir())
    assert entries == [CURRENT_FILE, "p7-20250101-000000-aaaa"]
    assert [v.name for v in store.versions(7)] == ["p7-20250101-000000-aaaa"]
    current = store.current(7)
    assert current is not None and current.name == "p7-20250101-000000-aaaa"


def test_the_stamp_changes_when_another_version_is_published(store: VersionStore) -> None:
    write_version(store, 7, "p7-a")
    write_version(store, 7, "p7-b")
    store.publish(7, "p7-a")
    first = store.current_stamp(7)
    assert first is not None
    time.sleep(0.05)  # publishes are minutes apart in practice; stay clear of coarse file-system clocks
    store.publish(7, "p7-b")
    assert store.current_stamp(7) not in (None, first)
    current = store.current(7)
    assert current is not None and current.name == "p7-b"


def test_projects_lists_numeric_project_folders_in_order(store: VersionStore) -> None:
    write_version(store, 12, "p12-a")
    write_version(store, 3, "p3-a")
    (store.root / "scratch").mkdir()
    assert store.projects() == [3, 12]
