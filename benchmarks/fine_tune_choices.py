"""What each fine-tuning choice does to old and new labels, and what it costs: one training job per choice.

A project of composed photos (real people, a cup and a cat's head pasted on real backgrounds,
:mod:`tests.support.photos`) with three labels: ``Person`` (the base model's ``person`` through
``predicted_values``) and ``Cup`` and ``Cat``, which the base never saw. Each choice runs the real training job
(:func:`label_studio_yolo.training.job.train_annotated`) on the same annotated scenes, then the new version is
scored per label on held-out scenes, beside the base model. Printed per choice: held-out AP50 of each label, the
job's wall time and CPU seconds (and each stage's wall / CPU seconds), and the gate's decision.

Choices, each adding to the one before unless said:

- ``before``: the recipe of the previous release: ultralytics' defaults (30 epochs, one optimizer step per 64
  images, validation every epoch, nothing frozen) and ultralytics' own head transfer, which keeps the rows of
  classes named like a label (here ``person`` -> ``Person``) and starts every other row from scratch (so a
  ``predicted_values="Normal,Fall"`` label would start from scratch);
- ``carry-over``: ``before`` with each label's head rows started from the classes it maps (``predicted_values``);
- ``step per batch``: every batch an optimizer step, epochs from the data's size, AdamW at ``TRAIN_LR``, one
  validation (the current recipe without freezing);
- ``freeze backbone``: the backbone kept as it is (``TRAIN_FREEZE=10``, YOLOv8's backbone);
- ``annotations only``: freezing all before the head's first input (the neck's top-down path too), learning from
  the annotations alone (the previous release's recipe);
- ``known objects``: the served model's objects added where an annotation does not mention their label
  (:mod:`label_studio_yolo.training.known_objects`);
- ``default``: the current recipe, which also distils the served model's scores for the labels it knows
  (:mod:`label_studio_yolo.training.distill`, ``TRAIN_DISTILL``);
- further rows vary one setting of the default recipe (``--row "name:TRAIN_BATCH=4,TRAIN_LR=0.0005"``).

``--train 10`` is the few-tasks case; ``--drawn new`` the case where people draw only the labels the base never saw
(its people stay unboxed on every annotated scene; val too, so the gate cannot judge ``Person``).

Usage:
    .venv/bin/python -m benchmarks.fine_tune_choices                     # shipped people model, 256x192 scenes
    .venv/bin/python -m benchmarks.fine_tune_choices --train 10 --choices "annotations only" default --seeds 3
    .venv/bin/python -m benchmarks.fine_tune_choices --train 20 --held-out 40 --imgsz 256
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training import job
from label_studio_yolo.training.carry_over import StartWeights, carry_over
from label_studio_yolo.training.evaluate import LabelScore
from label_studio_yolo.versions import VersionStore
from tests.support.photo_project import (
    BASE_LABELS,
    CONFIG,
    LABELS,
    NEW_LABELS,
    OWN_LABELS,
    annotated_task,
    held_out_scores,
    project_scenes,
)
from tests.support.photos import PEOPLE_IMGSZ, PEOPLE_MODEL, SCENE_SIZE, Scene

CHOICES: dict[str, dict[str, Any]] = {
    "before": {},
    "carry-over": {},
    "step per batch": {"train_freeze": 0},
    "freeze backbone": {"train_freeze": 10},
    "annotations only": {"train_distill": 0},
    "known objects": {"train_distill": 0},
    "default": {},
}
"""The rows of the module's docstring: name -> settings beside the defaults (``before``, ``carry-over`` and
``annotations only`` also patch the job)."""


@dataclass(frozen=True)
class OldRecipe:
    """The previous release's fine-tuning arguments (ultralytics' defaults but the epochs)."""

    imgsz: int
    epochs: int = 30
    batch: int = 8

    def train_arguments(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "imgsz": self.imgsz, "batch": self.batch}


@contextmanager
def choice(name: str) -> Iterator[None]:
    """Patch the job to train as ``name`` says (the current recipe needs no patch)."""
    if name == "annotations only":
        with mock.patch.object(job, "_known_objects", lambda *_: None):
            yield
        return
    if name not in ("before", "carry-over"):
        yield
        return
    real_carry_over = carry_over

    def carried_over_or_not(weights: Path, class_names: Any, labels: LabelMap, folder: Path) -> StartWeights:
        start = real_carry_over(weights, class_names, labels, folder)
        # "before": ultralytics starts the rows of every class that is not in the old head from scratch.
        return start if name == "carry-over" else StartWeights(weights, {}, start.layers_before_head_inputs)

    def old_recipe(settings: BackendSettings, train_images: int, layers_before_head_inputs: int) -> OldRecipe:
        return OldRecipe(imgsz=settings.train_imgsz)

    with mock.patch.object(job, "carry_over", carried_over_or_not), mock.patch.object(job, "recipe_for", old_recipe):
        yield


def run_choice(
    name: str, settings: BackendSettings, tasks: list[dict[str, Any]], held_out: list[Scene], seed: int
) -> dict[str, Any]:
    """Train one version as ``name`` says with training seed ``seed``; its held-out scores, wall time, CPU seconds
    and gate decision."""
    shutil.rmtree(settings.model_dir, ignore_errors=True)
    started, cpu = time.monotonic(), time.process_time()
    with choice(name), mock.patch.object(job, "TRAIN_SEED", seed):
        result = job.train_annotated(1, CONFIG, tasks, settings)
    wall, cpu = time.monotonic() - started, time.process_time() - cpu
    version = VersionStore(settings.model_dir).versions(1)[-1]
    return {
        "scores": held_out_scores(version.weights, OWN_LABELS, held_out),
        "wall": wall,
        "cpu": cpu,
        "epochs": version.meta["recipe"]["epochs"] if "recipe" in version.meta else None,
        "timings": version.meta.get("timings", {}),
        "gate": result["gate"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=PEOPLE_MODEL, help="base weights with a 'person' class")
    parser.add_argument("--train", type=int, default=20, help="annotated scenes")
    parser.add_argument("--held-out", type=int, default=40, help="held-out scenes")
    parser.add_argument("--size", type=int, nargs=2, default=SCENE_SIZE, metavar=("W", "H"), help="scene size")
    parser.add_argument("--imgsz", type=int, default=PEOPLE_IMGSZ, help="TRAIN_IMGSZ")
    parser.add_argument("--threads", type=int, default=2, help="TORCH_THREADS")
    parser.add_argument("--choices", nargs="*", default=list(CHOICES), help=f"of {', '.join(CHOICES)}")
    parser.add_argument("--seeds", type=int, default=1, help="train each row with seeds 0..N-1")
    parser.add_argument(
        "--drawn", choices=("all", "new"), default="all", help="labels drawn: all, or only those the base never saw"
    )
    parser.add_argument("--row", action="append", default=[], metavar="NAME:KEY=VALUE,...", help="another row")
    args = parser.parse_args()
    size = (args.size[0], args.size[1])
    with tempfile.TemporaryDirectory(prefix="fine-tune-choices-") as folder:
        root = Path(folder)
        scenes = project_scenes(root / "scenes", args.train, args.held_out, size)
        (root / "models").mkdir()
        shutil.copy2(args.base, root / "models" / "base.pt")
        drawn = NEW_LABELS if args.drawn == "new" else LABELS
        tasks = [
            annotated_task(100 + n, scene, f"/data/local-files/?d=train/{scene.path.name}", drawn)
            for n, scene in enumerate(scenes["train"])
        ]
        base = held_out_scores(root / "models" / "base.pt", BASE_LABELS, scenes["held-out"])
        print(
            f"{args.train} annotated ({args.drawn} labels drawn) and {args.held_out} held-out scenes of "
            f"{size[0]}x{size[1]}, imgsz {args.imgsz}"
        )
        print(_row("base model", base, None))
        rows = {name: CHOICES[name] for name in args.choices} | dict(_extra(text) for text in args.row)
        outcomes: dict[str, list[dict[str, Any]]] = {name: [] for name in rows}
        for seed in range(args.seeds):  # every row once per turn: a slow spell of the machine hits all rows alike
            for name, overrides in rows.items():
                outcome = run_choice(name, _settings(root, args, overrides), tasks, scenes["held-out"], seed)
                outcomes[name].append(outcome)
                print(f"seed {seed} " + _row(name, outcome["scores"], outcome), flush=True)
        if args.seeds > 1:
            print(f"\nmean [min-max] over {args.seeds} training seeds:")
            for name, runs in outcomes.items():
                print(_summary(name, runs))


def _extra(text: str) -> tuple[str, dict[str, Any]]:
    name, _, pairs = text.partition(":")
    return name, {key.lower(): value for key, _, value in (pair.partition("=") for pair in pairs.split(",") if pair)}


def _settings(root: Path, args: argparse.Namespace, overrides: dict[str, Any]) -> BackendSettings:
    values: dict[str, Any] = dict(
        model_root=root / "models",
        model_path="base.pt",
        model_dir=root / "versions",
        local_files_document_root=root / "scenes",
        train_imgsz=args.imgsz,
        torch_threads=args.threads,
        inference_runtime="pytorch",
    )
    return BackendSettings(**(values | overrides))


def _row(name: str, scores: dict[str, LabelScore], outcome: dict[str, Any] | None) -> str:
    labels = " ".join(f"{label} {scores[label].value:.3f}" for label in LABELS.values() if label in scores)
    if outcome is None:
        return f"{name:>16}: {labels}"
    gate = outcome["gate"]
    verdict = "publish" if gate["publish"] else "refuse"
    return (
        f"{name:>16}: {labels} | {outcome['wall']:.0f} s wall, {outcome['cpu']:.0f} CPU-s, "
        f"{outcome['epochs'] or 30} epochs ({_stages(outcome['timings'])}) | gate: {verdict} ({gate['reason']})"
    )


def _stages(timings: dict[str, float]) -> str:
    """The job's stages as wall / CPU seconds: "training 182/312 s, writing 7/7 s, ..."."""
    stages = [key.removesuffix("_s") for key in timings if key.endswith("_s") and not key.endswith("cpu_s")]
    return ", ".join(
        f"{stage} {timings[f'{stage}_s']:.0f}/{timings.get(f'{stage}_cpu_s', 0):.0f} s"
        for stage in stages
        if stage != "total"
    )


def _summary(name: str, runs: list[dict[str, Any]]) -> str:
    def spread(values: list[float], digits: int) -> str:
        return f"{sum(values) / len(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"

    labels = " ".join(f"{label} {spread([run['scores'][label].value for run in runs], 3)}" for label in LABELS.values())
    published = sum(run["gate"]["publish"] for run in runs)
    cost = f"{spread([run['wall'] for run in runs], 0)} s wall, {spread([run['cpu'] for run in runs], 0)} CPU-s"
    return f"{name:>16}: {labels} | {cost} | gate passed {published} of {len(runs)}"


if __name__ == "__main__":
    main()
