"""The training job an rq worker runs: export, train, evaluate, store, publish.

1. Read the project's labelling config and annotated tasks from Label Studio (label-studio-sdk); annotations are
   never kept anywhere else, so nothing is lost when a job fails.
2. Take the weights to fine-tune: the version the project serves now, else the base weights. Their YOLO task
   (detect, segment, classify, pose, obb) is the task trained, and says which controls' annotations feed it
   (:mod:`label_studio_yolo.training.plan`).
3. Write an ultralytics dataset of that task with a deterministic train/val split.
4. Fine-tune, then score the old and the new weights on the same val images through the label mapping (mAP50 of
   boxes; top-1 accuracy for classification).
5. Store the version atomically under ``MODEL_DIR/<project>/<version>/`` with ``meta.json`` and the metrics plot,
   and publish it if it is not worse (``TRAIN_PUBLISH_POLICY``). A failure anywhere leaves the served version alone.

Example:
    >>> train_project(7)                                    # doctest: +SKIP
    {'project': 7, 'version': 'project7-v001-1a2b3c4d', 'published': True, 'task': 'detect', 'metric': 'map50',
     'map50': {'old': 0.41, 'new': 0.93}, 'annotations': 30}
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from label_studio_yolo.media import ImageLoader, MediaSettings
from label_studio_yolo.runtimes import ensure_openvino_export
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.annotations import annotated_tasks
from label_studio_yolo.training.dataset import Dataset, write_dataset
from label_studio_yolo.training.evaluate import METRIC_OF_TASK, LabelledImage, score
from label_studio_yolo.training.plan import TrainingError, TrainingPlan, plan_training
from label_studio_yolo.training.progress import report_progress
from label_studio_yolo.training.worker_side import StillHeld, claim, project_lock
from label_studio_yolo.versions import META_FILE, WEIGHTS_FILE, VersionInfo, VersionStore
from label_studio_yolo.weights import LoadedWeights, file_version, load_weights, load_weights_file

logger = logging.getLogger(__name__)

__all__ = ["TrainingError", "train_annotated", "train_project"]


def train_project(project: int) -> dict[str, Any]:
    """Train a new version of ``project``'s model from its annotations in Label Studio (the rq job)."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        return _train(project)
    claim(job.connection, project, job.id)
    report_progress(stage="waiting for the project lock")
    with project_lock(job.connection, project) as still_held:
        report_progress(stage="exporting")
        return _train(project, still_held)


def _train(project: int, still_held: StillHeld | None = None) -> dict[str, Any]:
    settings = BackendSettings()
    started = time.time()
    client = _label_studio_client(settings)
    label_config = client.projects.get(id=project).label_config
    tasks = client.tasks.list(project=project, fields="all")
    return train_annotated(project, label_config, tasks, settings, started, still_held)


def train_annotated(
    project: int,
    label_config: str,
    tasks: Iterable[Any],
    settings: BackendSettings,
    started: float | None = None,
    still_held: StillHeld | None = None,
) -> dict[str, Any]:
    """Everything after the export: dataset, fine-tuning, comparison, storing and publishing.

    ``tasks`` are Label Studio tasks with their annotations (SDK models or dicts as Label Studio exports them).
    ``still_held`` (the project lock's check) is called after every epoch and before publishing.

    Raises:
        TrainingError: nothing in the config or the annotations can be trained (the message says what to fix).
        LockLost: the job lost its project lock (``still_held`` raised).
    """
    still_held = still_held or _always_held
    started = started or time.time()
    store = VersionStore(settings.model_dir)
    parent = store.current(project)
    start, plan = _start_weights(settings, parent, label_config)
    annotated = annotated_tasks(tasks, plan.source.value_key, plan.from_names, require_region=plan.task == "classify")
    if not annotated:
        raise TrainingError(f"Project {project} has no annotated tasks for {plan.describe()}")
    with tempfile.TemporaryDirectory(prefix=f"train-{project}-") as work:
        loader = ImageLoader(
            MediaSettings.from_settings(settings, settings.label_studio_url, settings.label_studio_api_key)
        )
        dataset = write_dataset(annotated, loader, plan, Path(work) / "dataset", settings.train_val_fraction)
        _check_splits(project, dataset)
        report_progress(
            stage="training", annotations=len(annotated), train=len(dataset.train_ids), val=len(dataset.val_ids)
        )
        best, run_dir = _fine_tune(settings, dataset, start.path, Path(work) / "run", still_held)
        trained_at = time.time()
        scores = _compare(plan, start, parent, best, dataset)
        name = f"project{project}-v{len(store.versions(project)) + 1:03d}-{file_version(best).rsplit('-', 1)[-1]}"
        meta = _meta(project, name, parent, settings, plan, dataset, scores)
        meta["annotations"] = len(annotated)
        meta["timings"] = {
            "export_and_train_s": round(trained_at - started, 1),
            "total_s": round(time.time() - started, 1),
        }
        _store_version(store, project, name, best, run_dir, meta, settings)
    published = settings.train_publish_policy == "always" or scores["new"] >= scores["old"]
    if published:
        still_held()
        store.publish(project, name)
    metric = meta["metric"]
    logger.info("Project %s: %s version %s, %s %s, published=%s", project, plan.task, name, metric, scores, published)
    summary = {"project": project, "version": name, "published": published, "task": plan.task, "metric": metric}
    return {**summary, metric: scores, "annotations": len(annotated)}


def _start_weights(
    settings: BackendSettings, parent: VersionInfo | None, label_config: str
) -> tuple[LoadedWeights, TrainingPlan]:
    """The weights to fine-tune (the served version, else MODEL_PATH) and what their task learns from the config."""
    start = load_weights_file(parent.weights) if parent else load_weights(settings.model_root, settings.model_path)
    task = str(getattr(start.model, "task", "detect"))
    weights_name = f"version {parent.name}" if parent else settings.model_path
    return start, plan_training(label_config, task, settings.model_score_threshold, weights_name)


def _meta(
    project: int,
    name: str,
    parent: VersionInfo | None,
    settings: BackendSettings,
    plan: TrainingPlan,
    dataset: Dataset,
    scores: dict[str, float],
) -> dict[str, Any]:
    """``meta.json`` of a new version: lineage, task, data, classes, scores under the metric's name, settings."""
    metric = METRIC_OF_TASK[plan.task]
    return {
        "project": project,
        "version": name,
        "parent": parent.name if parent else None,
        "base_weights": str(parent.weights if parent else settings.model_path),
        "task": plan.task,
        "controls": plan.describe(),
        "train_tasks": dataset.train_ids,
        "val_tasks": dataset.val_ids,
        "skipped_tasks": dataset.skipped,
        "classes": list(plan.class_names),
        "metric": metric,
        metric: scores,
        "settings": {k: getattr(settings, k) for k in ("train_epochs", "train_imgsz", "train_batch", "train_device")},
    }


def _check_splits(project: int, dataset: Dataset) -> None:
    """ultralytics needs images in both splits."""
    if dataset.train_ids and dataset.val_ids:
        return
    reasons = "; ".join(f"task {task_id}: {reason}" for task_id, reason in sorted(dataset.skipped.items())[:5])
    raise TrainingError(
        f"Project {project} needs at least two usable annotated tasks (one for validation); the dataset has "
        f"{len(dataset.train_ids)} train and {len(dataset.val_ids)} val tasks" + (f" ({reasons})" if reasons else "")
    )


def _store_version(
    store: VersionStore,
    project: int,
    name: str,
    best: Path,
    run_dir: Path,
    meta: dict[str, Any],
    settings: BackendSettings,
) -> None:
    """Write the version folder atomically: weights, their OpenVINO export, metadata, and ultralytics' metrics."""
    with store.new_version(project, name) as folder:
        shutil.copy2(best, folder / WEIGHTS_FILE)
        if settings.runtime.wants_openvino:
            _export_for_serving(folder / WEIGHTS_FILE, settings.train_imgsz)
        for artefact in ("results.csv", "results.png"):
            if (run_dir / artefact).exists():
                shutil.copy2(run_dir / artefact, folder / artefact)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))


def _export_for_serving(weights: Path, imgsz: int) -> None:
    """Export the version to OpenVINO here, so a web process does not pay for it inside a request.

    A failure only costs speed: the web process tries again, and serves with PyTorch if that fails too.
    """
    try:
        ensure_openvino_export(weights, file_version(weights), imgsz)
    except Exception as error:  # OpenVINO export errors vary; training must still publish
        logger.warning("Version %s not exported to OpenVINO: %s", weights.parent.name, error)


def _label_studio_client(settings: BackendSettings) -> Any:
    if not (settings.label_studio_url and settings.label_studio_api_key):
        raise TrainingError(
            "Training reads annotations from Label Studio: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
        )
    from label_studio_sdk.client import LabelStudio

    return LabelStudio(base_url=settings.label_studio_url, api_key=settings.label_studio_api_key)  # type: ignore[no-untyped-call]


def _always_held() -> None:
    """The lock check of a job that holds no lock (run outside rq)."""


def _fine_tune(
    settings: BackendSettings, dataset: Dataset, start: Path, run_dir: Path, still_held: StillHeld
) -> tuple[Path, Path]:
    """Train from the weights at ``start`` and return the best weights and the run folder.

    ``still_held`` runs after every epoch: an error it raises stops training.
    """
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import YOLO

    # select_device() would drop torch to cpu_count - 1 threads; train with the configured count instead.
    torch_utils.NUM_THREADS = settings.torch_threads
    model = YOLO(str(start))
    model.add_callback("on_fit_epoch_end", _epoch_progress)
    model.add_callback("on_fit_epoch_end", lambda _trainer: still_held())
    model.train(
        data=str(dataset.data),
        epochs=settings.train_epochs,
        imgsz=settings.train_imgsz,
        batch=settings.train_batch,
        device=settings.train_device,
        workers=0,
        amp=settings.train_device != "cpu",
        project=str(run_dir.parent),
        name=run_dir.name,
        exist_ok=True,
        plots=False,  # ultralytics' label, batch and curve plots take longer than a short fine-tune; none is kept
        verbose=False,
        seed=0,
        deterministic=True,
    )
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise TrainingError(f"ultralytics finished without writing {best}")
    _plot_metrics(run_dir)
    return best, run_dir


def _plot_metrics(run_dir: Path) -> None:
    """``results.png`` (losses and metrics per epoch) from ultralytics' ``results.csv``, as ``plots=True`` draws it."""
    from ultralytics.utils.plotting import plot_results

    if (run_dir / "results.csv").is_file():
        plot_results(file=run_dir / "results.csv")


def _epoch_progress(trainer: Any) -> None:
    metrics = {k: round(float(v), 4) for k, v in (trainer.metrics or {}).items()}
    # ultralytics calls this once more for the final validation of the best weights (epoch == epochs then).
    epoch = min(trainer.epoch + 1, trainer.epochs)
    report_progress(stage="training", epoch=epoch, epochs=trainer.epochs, metrics=metrics)


def _compare(
    plan: TrainingPlan, old: LoadedWeights, parent: VersionInfo | None, best: Path, dataset: Dataset
) -> dict[str, float]:
    """The task's metric of the served (``old``) and the new weights on the same val images."""
    from PIL import Image

    report_progress(stage="evaluating")
    samples = [
        LabelledImage(Image.open(item.path).convert("RGB"), list(item.boxes), item.label) for item in dataset.val_images
    ]
    old_labels = plan.own_labels if parent else plan.base_labels(old.class_names.values())
    new = load_weights_file(best, version="candidate")
    names = list(plan.class_names)
    return {
        "old": round(score(plan.task, old, old_labels, samples, names), 4),
        "new": round(score(plan.task, new, plan.own_labels, samples, names), 4),
    }
