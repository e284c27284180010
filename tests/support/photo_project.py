"""A labelling project of composed photos: the base model's people, plus a cup and a cat it never saw.

Scenes come from :mod:`tests.support.photos`; tasks are what Label Studio exports after a person drew the truth.
Used by the learning tests and by ``benchmarks/fine_tune_choices.py`` and ``benchmarks/learning_loop.py``.

Example:
    >>> scenes = project_scenes(Path("scenes"), train=20, held_out=40, size=(256, 192))
    >>> task = annotated_task(101, scenes["train"][0], "/data/local-files/?d=train/train0000.png", (256, 192))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.training.evaluate import LabelledImage, LabelScore, score_per_label
from label_studio_yolo.weights import load_weights_file
from tests.support.photos import Scene, write_scenes

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.25">
    <Label value="Person" predicted_values="person"/>
    <Label value="Cup"/>
    <Label value="Cat"/>
  </RectangleLabels>
</View>"""
"""The project's labelling config: the base model's people, and two labels it never saw."""

LABELS = {"person": "Person", "cup": "Cup", "cat": "Cat"}
"""Scene truth label -> the project's label."""

BASE_LABELS = LabelMap({"person": "Person"})
"""How the base model is served in this project (``predicted_values="person"``)."""

OWN_LABELS = LabelMap({label.lower(): label for label in LABELS.values()})
"""How a version trained on this project is served (its classes are the labels)."""

LABEL_SETS = (("person", "cup"), ("person", "cat"), ("cup", "cat"), ("person", "cup", "cat"), ("person", "person"))
"""What the scenes hold, in turn: every label in most scenes, and people in more of them."""

SEEDS = {"train": 7001, "held-out": 7002}
"""Scene seeds (the people model's own scenes use other seeds)."""


def project_scenes(folder: Path, train: int, held_out: int, size: tuple[int, int]) -> dict[str, list[Scene]]:
    """The annotated (``train``) and the ``held-out`` scenes of the project, written under ``folder``."""
    return {
        split: write_scenes(folder / split, count, SEEDS[split], size, LABEL_SETS, distractors=1, prefix=split)
        for split, count in (("train", train), ("held-out", held_out))
    }


def annotation_result(scene: Scene, size: tuple[int, int], labels: dict[str, str] = LABELS) -> list[dict[str, Any]]:
    """The regions a person draws for ``scene``'s truth (only the truth labels in ``labels``)."""
    width, height = size
    return [
        {
            "id": f"{scene.path.stem}-{index}",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": width,
            "original_height": height,
            "value": {
                "x": box.x0 / width * 100,
                "y": box.y0 / height * 100,
                "width": (box.x1 - box.x0) / width * 100,
                "height": (box.y1 - box.y0) / height * 100,
                "rotation": 0,
                "rectanglelabels": [labels[box.label]],
            },
        }
        for index, box in enumerate(scene.truth)
        if box.label in labels
    ]


def annotated_task(task_id: int, scene: Scene, image: str, size: tuple[int, int]) -> dict[str, Any]:
    """A task whose annotation is ``scene``'s truth, as Label Studio exports it."""
    annotation = {"id": task_id, "result": annotation_result(scene, size), "was_cancelled": False}
    return {"id": task_id, "data": {"image": image}, "annotations": [annotation]}


def held_out_scores(weights: Path, labels: LabelMap, scenes: list[Scene]) -> dict[str, LabelScore]:
    """Per-label AP50 of ``weights`` served through ``labels`` on ``scenes``."""
    samples = [
        LabelledImage(Image.open(s.path).convert("RGB"), [(LABELS[b[0]], *b[1:]) for b in s.pixel_boxes()])
        for s in scenes
    ]
    return score_per_label("detect", load_weights_file(weights), labels, samples, list(LABELS.values()))
