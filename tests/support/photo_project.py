"""A labelling project of composed photos: the base model's people, plus a cup and a cat it never saw.

Scenes come from :mod:`tests.support.photos`; tasks are what Label Studio exports after a person drew the truth.
Used by the learning tests and by ``benchmarks/fine_tune_choices.py`` and ``benchmarks/learning_loop.py``.

Example:
    >>> scenes = project_scenes(Path("scenes"), train=20, held_out=40, size=(256, 192))
    >>> task = annotated_task(101, scenes["train"][0], "/data/local-files/?d=train/train0000.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from conftest import SampleImage
from label_studio_yolo.inference.weights import load_weights_file
from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.training.evaluate import LabelledImage, LabelScore, ap50_per_label, score_per_label
from tests.support.label_studio import LabelStudioServer, upload_files
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

NEW_LABELS = {"cup": "Cup", "cat": "Cat"}
"""The truth labels the base model never saw: what a person adding labels to a project draws, and nothing else."""

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


def annotation_result(scene: Scene, labels: dict[str, str] = LABELS) -> list[dict[str, Any]]:
    """The regions a person draws for ``scene``'s truth, only of the truth labels that ``labels`` names."""
    regions = SampleImage(scene.path, scene.truth).annotation_result(labels)
    return [region for region in regions if region["value"]["rectanglelabels"][0] in labels.values()]


def annotated_task(task_id: int, scene: Scene, image: str, labels: dict[str, str] = LABELS) -> dict[str, Any]:
    """A task whose annotation is ``scene``'s truth of the truth labels ``labels`` names, as Label Studio exports
    it (drawn by hand: no ``parent_prediction``)."""
    annotation = {"id": task_id, "result": annotation_result(scene, labels), "was_cancelled": False}
    return {"id": task_id, "data": {"image": image}, "annotations": [annotation]}


def upload_scenes(server: LabelStudioServer, project: int, scenes: list[Scene]) -> dict[str, int]:
    """Upload the scenes to a Label Studio project as tasks; task id by file name."""
    upload_files(server, project, [scene.path for scene in scenes])
    tasks = server.client.tasks.list(project=project, fields="all")
    # Label Studio stores an upload as /data/upload/<project>/<8 hex digits>-<file name>.
    by_name = {task.data["image"].rsplit("/", 1)[-1].split("-", 1)[1]: task.id for task in tasks}
    return {scene.path.name: by_name[scene.path.name] for scene in scenes}


def stored_scores(
    server: LabelStudioServer, task_ids: dict[str, int], scenes: list[Scene], version: str
) -> dict[str, LabelScore]:
    """Per-label AP50 of the predictions Label Studio stored for ``version`` on ``scenes`` (one per task expected)."""
    predictions, truths = [], []
    for scene in scenes:
        listed = server.client.predictions.list(task=task_ids[scene.path.name])
        stored = [prediction for prediction in listed if prediction.model_version == version]
        assert len(stored) == 1, f"{scene.path.name}: one prediction of {version} expected, got {stored}"
        predictions.append([(r["value"]["rectanglelabels"][0], r["score"], *_pixel_box(r)) for r in stored[0].result])
        truths.append(scene.truth_objects(LABELS))
    return ap50_per_label(predictions, truths, list(LABELS.values()))


def _pixel_box(region: dict[str, Any]) -> tuple[float, float, float, float]:
    value, width, height = region["value"], region["original_width"], region["original_height"]
    x0, y0 = value["x"] / 100 * width, value["y"] / 100 * height
    return x0, y0, x0 + value["width"] / 100 * width, y0 + value["height"] / 100 * height


def held_out_scores(weights: Path, labels: LabelMap, scenes: list[Scene]) -> dict[str, LabelScore]:
    """Per-label AP50 of ``weights`` served through ``labels`` on ``scenes``."""
    samples = [LabelledImage(Image.open(s.path).convert("RGB"), s.truth_objects(LABELS)) for s in scenes]
    return score_per_label("detect", load_weights_file(weights), labels, samples, list(LABELS.values()))
