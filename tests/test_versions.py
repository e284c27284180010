"""VersionStore on a real folder: what each project serves, which versions exist, and that failures leave no trace.

The store never reads weights, so small text files stand in for them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from label_studio_yolo.versions import (
    BASE,
    CURRENT_FILE,
    LOCK_FILE,
    META_FILE,
    PIN_FILE,
    PUBLISHED_FILE,
    WEIGHTS_FILE,
    Published,
    VersionNotFound,
    VersionStore,
)


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
    assert entries == [LOCK_FILE, CURRENT_FILE, "p7-20250101-000000-aaaa", PUBLISHED_FILE]
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


def test_a_version_being_written_is_not_listed_even_once_its_meta_is_there(store: VersionStore) -> None:
    with store.new_version(7, "p7-a") as folder:
        (folder / META_FILE).write_text("{}")
        assert store.versions(7) == [], "the staging folder is not a version"
    assert [v.name for v in store.versions(7)] == ["p7-a"]


@pytest.fixture
def two_versions(store: VersionStore) -> VersionStore:
    """Project 7 with versions p7-a and p7-b, p7-b published."""
    write_version(store, 7, "p7-a")
    write_version(store, 7, "p7-b")
    store.publish(7, "p7-b")
    return store


def served(store: VersionStore, project: int = 7) -> str | None:
    current = store.current(project)
    return current.name if current else None


def test_a_pin_serves_an_older_version_and_training_stores_but_does_not_publish_while_pinned(
    two_versions: VersionStore,
) -> None:
    store = two_versions
    assert store.pinned(7) is None
    store.pin(7, "p7-a")
    assert (store.pinned(7), served(store)) == ("p7-a", "p7-a")
    assert json.loads((store.project_dir(7) / PIN_FILE).read_text())["pinned_at"] == pytest.approx(time.time(), abs=60)

    write_version(store, 7, "p7-c")
    assert store.publish(7, "p7-c", unless_pinned=True) is Published.PINNED
    assert served(store) == "p7-a", "a pinned project keeps its version"
    assert [v.name for v in store.versions(7)] == ["p7-a", "p7-b", "p7-c"], "the new version is stored"


def test_unpin_serves_the_newest_published_version_and_lets_training_publish_again(
    two_versions: VersionStore,
) -> None:
    store = two_versions
    store.pin(7, "p7-a")
    assert store.unpin(7) == "p7-a"
    assert (store.pinned(7), served(store)) == (None, "p7-b"), "p7-b was published last"
    assert not (store.project_dir(7) / PIN_FILE).exists()
    store.pin(7, "p7-a")
    store.unpin(7)
    assert store.unpin(7) is None, "unpinning twice is harmless"
    assert served(store) == "p7-b", "and keeps what the first unpin served"
    write_version(store, 7, "p7-c")
    assert store.publish(7, "p7-c", unless_pinned=True) is Published.PUBLISHED
    assert served(store) == "p7-c"


def test_unpin_after_a_roll_back_to_base_returns_to_the_newest_published_version(two_versions: VersionStore) -> None:
    store = two_versions
    store.pin(7, BASE)
    assert store.current(7) is None
    store.unpin(7)
    assert served(store) == "p7-b"


def test_unpin_serves_the_base_weights_when_no_published_version_is_left(two_versions: VersionStore) -> None:
    store = two_versions
    store.pin(7, "p7-a")
    shutil.rmtree(store.project_dir(7) / "p7-b")  # an operator deleted it
    store.unpin(7)
    assert store.current(7) is None


def test_a_job_does_not_publish_over_a_version_published_while_it_trained(two_versions: VersionStore) -> None:
    store = two_versions  # a job started while p7-b was served, then someone published p7-a
    store.publish(7, "p7-a")
    write_version(store, 7, "p7-c")
    assert store.publish(7, "p7-c", unless_pinned=True, replacing="p7-b") is Published.SUPERSEDED
    assert served(store) == "p7-a"
    assert store.publish(7, "p7-c", unless_pinned=True, replacing="p7-a") is Published.PUBLISHED
    assert store.published(7) == ["p7-b", "p7-a", "p7-c"]


def test_a_plain_publish_still_publishes_and_other_projects_are_not_pinned(two_versions: VersionStore) -> None:
    store = two_versions
    write_version(store, 8, "p8-a")
    store.pin(7, "p7-a")
    assert store.publish(8, "p8-a", unless_pinned=True) is Published.PUBLISHED
    assert served(store, 8) == "p8-a"
    assert store.publish(7, "p7-b") is Published.PUBLISHED, "callers that do not ask about pins publish as before"
    assert served(store) == "p7-b"


def test_a_base_pin_serves_the_base_weights_and_changes_the_stamp(two_versions: VersionStore) -> None:
    store = two_versions
    before = store.current_stamp(7)
    time.sleep(0.05)  # stay clear of coarse file-system clocks
    store.pin(7, BASE)
    assert store.current(7) is None
    assert store.pinned(7) == BASE
    assert json.loads((store.project_dir(7) / CURRENT_FILE).read_text()) == {"version": None}
    assert store.current_stamp(7) not in (None, before), "every process notices and switches to the base weights"
    assert store.publish(7, "p7-b", unless_pinned=True) is Published.PINNED
    assert store.current(7) is None


def test_a_project_never_trained_has_nothing_to_pin_and_gets_no_folder(store: VersionStore) -> None:
    """Any id a request names could make a folder before (3,000 pins: 12,017 inodes, /versions 35x slower)."""
    with pytest.raises(VersionNotFound, match="Project 5 has no trained versions: it serves the base weights"):
        store.pin(5, BASE)
    with pytest.raises(VersionNotFound, match="Project 6 has no version 'p6-a'"):
        store.pin(6, "p6-a")
    assert store.unpin(7) is None

    assert store.projects() == []
    assert not store.root.exists() or not any(store.root.iterdir())


def test_an_unknown_version_is_refused_with_the_stored_names_and_changes_nothing(two_versions: VersionStore) -> None:
    store = two_versions
    with pytest.raises(VersionNotFound, match=re.escape("no version 'p7-z'. Stored versions: p7-a, p7-b")) as refused:
        store.pin(7, "p7-z")
    assert refused.value.stored == ["p7-a", "p7-b"]
    assert isinstance(refused.value, LookupError)
    with pytest.raises(VersionNotFound):
        store.publish(7, "p7-z")
    assert (store.pinned(7), served(store)) == (None, "p7-b")


@pytest.mark.parametrize(
    "name",
    ["../8/p8-a", "..", ".", "", "/tmp", "p7-a/", "p7-a/../p7-a", ".p7-a", "p7-a\n", "7/p7-a", "p7-a/meta.json"],
)
def test_names_that_leave_the_project_folder_are_refused(two_versions: VersionStore, name: str) -> None:
    store = two_versions
    write_version(store, 8, "p8-a")  # "../8/p8-a" exists on disk, as another project's version
    with pytest.raises(VersionNotFound, match="Stored versions: p7-a, p7-b"):
        store.pin(7, name)
    with pytest.raises(VersionNotFound):
        store.publish(7, name)
    assert (store.pinned(7), served(store)) == (None, "p7-b")


def test_a_pointer_that_names_another_projects_folder_serves_nothing(two_versions: VersionStore) -> None:
    store = two_versions
    write_version(store, 8, "p8-a")
    (store.project_dir(7) / CURRENT_FILE).write_text(json.dumps({"version": "../8/p8-a"}))
    assert store.current(7) is None


HOLD_THE_LOCK_AND_PIN = """
import fcntl, json, os, sys, time
folder = sys.argv[1]
handle = os.open(os.path.join(folder, sys.argv[2]), os.O_RDWR | os.O_CREAT)
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(1.0)  # another process pinning, slowly: between its pin.json and its current.json
with open(os.path.join(folder, "pin.json"), "w") as pin:
    json.dump({"version": "p7-a", "pinned_at": time.time()}, pin)
with open(os.path.join(folder, "current.json"), "w") as current:
    json.dump({"version": "p7-a"}, current)
"""


def test_a_publish_waits_for_a_pin_under_way_in_another_process(two_versions: VersionStore) -> None:
    """Without the lock, training would check "not pinned", then replace the pointer the pin just wrote."""
    store = two_versions
    write_version(store, 7, "p7-c")
    folder = str(store.project_dir(7))
    command = [sys.executable, "-c", HOLD_THE_LOCK_AND_PIN, folder, LOCK_FILE]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as pinning:
        assert pinning.stdout is not None and pinning.stdout.readline().strip() == "locked"
        started = time.monotonic()
        published = store.publish(7, "p7-c", unless_pinned=True)
        waited = time.monotonic() - started
        assert pinning.wait(30) == 0
    assert published is Published.PINNED and waited > 0.5
    assert (store.pinned(7), served(store)) == ("p7-a", "p7-a")
