"""Finding, loading, caching and versioning YOLO weights inside MODEL_ROOT, with errors that say how to fix them."""

from __future__ import annotations

import gc
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from label_studio_yolo.errors import WeightsError
from label_studio_yolo.inference.weights import (
    file_stamps,
    file_version,
    load_weights,
    loaded_weight_files,
    resolve_weights_path,
)


@pytest.fixture
def root_with_model(tiny_weights: Path, tmp_path: Path) -> Path:
    """A fresh MODEL_ROOT holding the tiny model as ``boxes.pt`` (its own path, so its own cache entries)."""
    shutil.copy2(tiny_weights, tmp_path / "boxes.pt")
    return tmp_path


def test_name_inside_model_root_resolves_there(tmp_path):
    assert resolve_weights_path(tmp_path, "sub/best.pt") == tmp_path.resolve() / "sub" / "best.pt"


@pytest.mark.parametrize("name", ["/etc/passwd", "../x.pt", "sub/../../x.pt", ""])
def test_names_outside_model_root_are_refused(tmp_path, name):
    with pytest.raises(WeightsError, match="MODEL_ROOT"):
        resolve_weights_path(tmp_path, name)


def test_missing_custom_weights_name_the_file_model_root_and_model_path(tmp_path):
    with pytest.raises(WeightsError) as error:
        load_weights(tmp_path, "my-detector.pt", download=True)

    message = str(error.value)
    assert "'my-detector.pt' not found" in message
    assert f"MODEL_ROOT={tmp_path.resolve()}" in message
    assert "MODEL_PATH" in message


@pytest.mark.timeout(60)
def test_missing_official_weights_offline_say_download_failed_and_how_to_provide_them(tmp_path):
    started = time.monotonic()

    with pytest.raises(WeightsError) as error:
        load_weights(tmp_path, "yolo11n.pt", download=True)

    message = str(error.value)
    assert "'yolo11n.pt' not found" in message
    assert "YOLO_OFFLINE=1 forbids downloads" in message  # make test sets it
    assert f"Put the file at {tmp_path.resolve() / 'yolo11n.pt'}" in message
    assert "MODEL_PATH" in message
    assert time.monotonic() - started < 30
    assert not (tmp_path / "yolo11n.pt").exists()


def test_file_that_is_not_a_model_could_not_be_loaded(tmp_path):
    (tmp_path / "bad.pt").write_bytes(os.urandom(4096))

    with pytest.raises(WeightsError, match="could not be loaded as a YOLO model"):
        load_weights(tmp_path, "bad.pt")

    assert tmp_path.resolve() / "bad.pt" not in loaded_weight_files()


def test_loaded_weights_know_their_classes_and_version(root_with_model):
    loaded = load_weights(root_with_model, "boxes.pt")

    assert loaded.class_names == {0: "red", 1: "blue"}
    assert loaded.path == root_with_model.resolve() / "boxes.pt"
    assert loaded.version == file_version(root_with_model / "boxes.pt")
    assert re.fullmatch(r"boxes-[0-9a-f]{8}", loaded.version)


def test_same_weights_load_once_and_are_reused(root_with_model):
    first = load_weights(root_with_model, "boxes.pt")
    second = load_weights(root_with_model, "./boxes.pt")

    assert second is first
    assert loaded_weight_files().count(root_with_model.resolve() / "boxes.pt") == 1


def test_touched_file_is_loaded_again_with_the_same_version(root_with_model):
    path = root_with_model / "boxes.pt"
    first = load_weights(root_with_model, "boxes.pt")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    second = load_weights(root_with_model, "boxes.pt")

    assert second is not first
    assert second.version == first.version


def test_copy_under_another_name_is_its_own_model_with_same_content_hash(root_with_model):
    shutil.copy2(root_with_model / "boxes.pt", root_with_model / "copy.pt")

    original = load_weights(root_with_model, "boxes.pt")
    copy = load_weights(root_with_model, "copy.pt")

    assert copy is not original
    assert copy.version.startswith("copy-")
    assert copy.version.split("-")[1] == original.version.split("-")[1]


def test_file_version_is_stem_and_short_hash_that_follows_content(tmp_path):
    path = tmp_path / "detector.v2.pt"
    path.write_text("first weights")
    first = file_version(path)
    path.write_text("second weights")
    second = file_version(path)

    assert re.fullmatch(r"detector\.v2-[0-9a-f]{8}", first)
    assert re.fullmatch(r"detector\.v2-[0-9a-f]{8}", second)
    assert first != second
    path.write_text("first weights")
    assert file_version(path) == first


def test_file_stamps_track_size_and_mtime_without_loading(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"12345")
    before = file_stamps([path, tmp_path / "missing.pt"])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    after = file_stamps([path, tmp_path / "missing.pt"])

    assert before[0] is not None and before[0][:2] == (path, 5)
    assert before[1] is None and after[1] is None
    assert after != before
    assert path not in loaded_weight_files()


def test_weights_not_asked_to_download_never_touch_the_network_or_the_disk(tmp_path, monkeypatch):
    """A tag's model_path (anyone who edits a labelling config writes it) names a file that is there, or nothing:
    ``x/deeper/yolo11x.pt`` made folders in MODEL_ROOT and downloaded the official release before."""
    monkeypatch.setenv("YOLO_OFFLINE", "0")
    monkeypatch.setattr("ultralytics.utils.downloads.attempt_download_asset", _no_download)

    with pytest.raises(WeightsError, match=r"Weights x/deeper/yolo11x.pt are not in MODEL_ROOT"):
        load_weights(tmp_path, "x/deeper/yolo11x.pt")

    assert list(tmp_path.iterdir()) == []


def test_the_cache_keeps_the_weights_in_use_and_those_used_last(root_with_model, monkeypatch):
    """A published version replaces the last one: the old network family must go once no project serves it, not stay
    among the eight files used last (each 100-300 MB with a YOLOv8s)."""
    monkeypatch.setattr("label_studio_yolo.inference.weights.MAX_CACHED_WEIGHTS", 2)
    for name in ("one.pt", "two.pt", "three.pt", "four.pt", "served.pt"):
        shutil.copy2(root_with_model / "boxes.pt", root_with_model / name)
    served = load_weights(root_with_model, "served.pt")  # a project serves it

    for name in ("one.pt", "two.pt", "one.pt", "three.pt", "four.pt", "three.pt"):
        load_weights(root_with_model, name)
    gc.collect()

    held = {path.name for path in loaded_weight_files()}
    assert held == {"served.pt", "three.pt", "four.pt"}, "in use, and the two used last"
    assert load_weights(root_with_model, "served.pt") is served


def _no_download(*args, **kwargs):
    raise AssertionError("nothing may be downloaded for these weights")
