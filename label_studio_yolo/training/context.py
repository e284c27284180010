"""One training job's context: what every step reads, and the stages it goes through with their time.

Example:
    >>> clock = StageClock()
    >>> with clock.stage(Stage.TRAINING, epochs=20):                       # doctest: +SKIP
    ...     train()
    >>> clock.timings()                                                      # doctest: +SKIP
    {'exporting_s': 3.1, 'training_s': 95.0, 'total_s': 98.1, 'cpu_s': 160.2, 'training_cpu_s': 150.0}
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.gate import GateRules
from label_studio_yolo.training.plan import TrainingPlan
from label_studio_yolo.training.progress import report_progress
from label_studio_yolo.training.project_lock import StillHeld
from label_studio_yolo.versions import VersionInfo, VersionStore


class Stage(StrEnum):
    """Where a job is, as ``/training/status`` shows it (``progress.stage``)."""

    WAITING = "waiting for the project lock"
    EXPORTING = "exporting"
    WRITING = "writing the dataset"
    TRAINING = "training"
    EVALUATING = "evaluating"
    STORING = "storing"
    PUBLISHED = "published"
    STORED = "stored, not published"
    SKIPPED = "skipped"


@dataclass
class StageClock:
    """Reports each stage of a job as it starts, and keeps its wall and CPU seconds for ``meta.json``."""

    started: float = field(default_factory=time.time)
    cpu_started: float = field(default_factory=time.process_time)
    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def ran_before(self, stage: Stage) -> None:
        """Count the time from ``started`` until now as ``stage`` (the export, which runs before a job's context)."""
        self.wall[stage.name.lower()] = time.time() - self.started

    @contextmanager
    def stage(self, stage: Stage, **fields: Any) -> Iterator[None]:
        """Report ``stage`` (with ``fields``) now, and time the block as that stage."""
        report_progress(stage=stage.value, **fields)
        wall, cpu = time.time(), time.process_time()
        try:
            yield
        finally:
            name = stage.name.lower()
            self.wall[name] = self.wall.get(name, 0.0) + time.time() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu

    def timings(self) -> dict[str, float]:
        """Seconds per stage, in all (wall and this process's CPU), and CPU seconds of each timed stage."""
        stages = {f"{name}_s": round(seconds, 1) for name, seconds in self.wall.items()}
        cpu = {f"{name}_cpu_s": round(seconds, 1) for name, seconds in self.cpu.items()}
        total = {"total_s": round(time.time() - self.started, 1)}
        return {**stages, **total, "cpu_s": round(time.process_time() - self.cpu_started, 1), **cpu}


@dataclass
class JobContext:
    """What every step of one job reads: the project, settings and versions, where it starts and what it learns.

    ``parent`` is the version served when the job started (None: the base weights), ``start`` its weights, and
    ``served_labels`` how their classes map to labels as they are served.
    """

    project: int
    settings: BackendSettings
    store: VersionStore
    parent: VersionInfo | None
    start: LoadedWeights
    plan: TrainingPlan
    still_held: StillHeld
    clock: StageClock

    @property
    def served_labels(self) -> LabelMap:
        """Class -> label of the starting weights as the project serves them."""
        if self.parent is not None:
            return self.plan.own_labels
        return self.plan.base_labels(self.start.class_names.values())

    @property
    def predicted_labels(self) -> set[str]:
        """The labels the served model predicts."""
        labels = self.served_labels
        return {label for name in self.start.class_names.values() if (label := labels.label_for(name))}

    @property
    def gate_rules(self) -> GateRules:
        """The gate's settings."""
        settings = self.settings
        return GateRules(
            settings.train_publish_policy,
            settings.train_min_val_images,
            settings.train_gate_min_objects,
            settings.train_gate_tolerance,
        )
