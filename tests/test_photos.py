"""The photographic scene composer and the shipped people model (tests/support/photos.py)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support import photos
from tests.support.photos import PIECES, SCENE_SIZE, compose_scene, write_scenes

CROWDED = ("person", "person", "person", "cup", "cat")


def test_every_piece_and_background_is_inside_its_photo() -> None:
    for piece in (*PIECES, *photos.DISTRACTORS):
        x0, y0, x1, y1 = piece.box
        width, height = photos._load(piece.package, piece.file).size
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, piece
    for package, file, area in photos.BACKGROUNDS:
        width, height = photos._load(package, file).size
        assert area is None or (area[2] <= width and area[3] <= height), file
    assert {piece.label for piece in PIECES} == {"person", "cup", "cat"}


def test_a_seed_composes_the_same_scene() -> None:
    first, first_truth = compose_scene(random.Random(7), SCENE_SIZE, CROWDED, distractors=2)
    again, again_truth = compose_scene(random.Random(7), SCENE_SIZE, CROWDED, distractors=2)
    other, other_truth = compose_scene(random.Random(8), SCENE_SIZE, CROWDED, distractors=2)
    assert first.tobytes() == again.tobytes() and first_truth == again_truth
    assert first.tobytes() != other.tobytes() and first_truth != other_truth
    assert first.size == SCENE_SIZE and first.mode == "RGB"


@pytest.mark.parametrize("labels", [(), ("cat",), ("person", "person"), CROWDED])
def test_the_requested_labels_are_pasted_inside_and_apart(labels: tuple[str, ...]) -> None:
    width, height = SCENE_SIZE
    for seed in range(20):
        _, truth = compose_scene(random.Random(seed), SCENE_SIZE, labels, distractors=2)
        assert Counter(box.label for box in truth) == Counter(labels)
        for box in truth:
            assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
            assert 0.1 * height - 1 <= box.y1 - box.y0 <= 0.7 * height + 1
        for a, b in itertools.combinations(truth, 2):
            assert a.iou(b.x0, b.y0, b.x1, b.y1) < photos.MAX_IOU


def test_truth_is_where_the_piece_landed(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a plain green background, the pasted pixels fill the truth box and nothing outside it."""
    green = (0, 255, 0)
    monkeypatch.setattr(photos, "background", lambda rng, size: Image.new("RGB", size, green))
    for seed in range(10):
        image, truth = compose_scene(random.Random(seed), SCENE_SIZE, ["person"])
        (box,) = truth
        pasted = np.abs(np.asarray(image, dtype=int) - green).sum(axis=2) > 60
        ys, xs = np.nonzero(pasted)
        assert box.x0 <= xs.min() <= box.x0 + photos.FEATHER_PX and box.x1 - photos.FEATHER_PX <= xs.max() < box.x1
        assert box.y0 <= ys.min() <= box.y0 + photos.FEATHER_PX and box.y1 - photos.FEATHER_PX <= ys.max() < box.y1
        # The piece's aspect is kept (to the rounding of a pixel).
        aspects = {photos._aspect(piece) for piece in PIECES if piece.label == "person"}
        assert min(abs((box.x1 - box.x0) / (box.y1 - box.y0) - a) for a in aspects) < 2 / (box.y1 - box.y0)


def test_unknown_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="motorcycle"):
        compose_scene(random.Random(0), SCENE_SIZE, ["motorcycle"])


def test_write_scenes_cycles_the_label_sets(tmp_path: Path) -> None:
    scenes = write_scenes(tmp_path, 4, seed=3, label_sets=[("cup",), ("person", "cat")])
    assert [sorted(box.label for box in scene.truth) for scene in scenes] == [["cup"], ["cat", "person"]] * 2
    for scene in scenes:
        with Image.open(scene.path) as image:
            assert image.size == SCENE_SIZE
    assert write_scenes(tmp_path / "again", 4, seed=3, label_sets=[("cup",), ("person", "cat")])[3].truth == (
        scenes[3].truth
    )


def test_the_shipped_people_model_finds_people_in_new_scenes(tmp_path: Path) -> None:
    assert photos.train_people_model(tmp_path / "cache") == photos.PEOPLE_MODEL  # shipped: never retrained here
    assert photos.PEOPLE_MODEL.stat().st_size < 10_000_000
    seed = 9001  # not one of photos.PEOPLE_SEEDS: scenes the model never saw
    assert seed not in photos.PEOPLE_SEEDS.values()
    scenes = write_scenes(tmp_path, 24, seed, label_sets=[("person",), ("person", "person"), ("person",) * 3])
    assert photos.ap50(photos.PEOPLE_MODEL, scenes) >= 0.7
