"""The training job an rq worker runs: export, train, evaluate, store, publish.

1. Read the project's labelling config and annotated tasks from Label Studio (label-studio-sdk); annotations are
   never kept anywhere else, so nothing is lost when a job fails.
2. Write an ultralytics dataset with a deterministic train/val split.
3. Fine-tune from the version the project serves now (else the base weights).
4. Score the old and the new weights on the same val images (mAP50 through the label mapping).
5. Store the version atomically under ``MODEL_DIR/<project>/<version>/`` with ``meta.json`` and the metrics plot,
   and publish it if it is not worse (``TRAIN_PUBLISH_POLICY``). A failure anywhere leaves the served version alone.

Example:
    >>> train_project(7)                                    # doctest: +SKIP
    {'project': 7, 'version': 'project7-v001-1a2b3c4d', 'published': True, 'map50': {'old': 0.41, 'new': 0.93}}
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from label_studio_yolo.label_config import ControlSpec, parse_label_config, with_own_labels
from label_studio_yolo.media import ImageLoader, MediaSettings
from label_studio_yolo.regions import ImageSize
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.dataset import Dataset, annotated_tasks, write_dataset
from label_studio_yolo.training.evaluate import LabelledImage, map50
from label_studio_yolo.training.progress import report_progress
from label_studio_yolo.training.worker_side import claim, project_lock
from label_studio_yolo.versions import META_FILE, WEIGHTS_FILE, VersionStore
from label_studio_yolo.weights import file_version, load_weights, load_weights_file

logger = logging.getLogger(__name__)


TRAINABLE_CONTROLS = {"RectangleLabels": frozenset({"Image"})}
"""Control tags whose annotations training turns into a dataset."""


class TrainingError(RuntimeError):
    """Training cannot run; the message says what to fix."""


def train_project(project: int) -> dict[str, Any]:
    """Train a new version of ``project``'s model from its annotations in Label Studio (the rq job)."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        return _train(project)
    claim(job.connection, project, job.id)
    report_progress(stage="waiting for the project lock")
    with project_lock(job.connection, project):
        return _train(project)


def _train(project: int) -> dict[str, Any]:
    settings = BackendSettings()
    started = time.time()
    client = _label_studio_client(settings)
    label_config = client.projects.get(id=project).label_config
    spec = _trainable_control(label_config, settings)
    store = VersionStore(settings.model_dir)
    parent = store.current(project)
    tasks = annotated_tasks(client.tasks.list(project=project, fields="all"), spec)
    if not tasks:
        raise TrainingError(
            f"Project {project} has no annotated tasks for <{spec.control_type} name={spec.from_name!r}>"
        )
    class_names = [str(label) for label in spec.tag.labels or []]
    loader = ImageLoader(_media_settings(settings))
    with tempfile.TemporaryDirectory(prefix=f"train-{project}-") as work:
        dataset = write_dataset(tasks, loader, class_names, Path(work) / "dataset", settings.train_val_fraction)
        report_progress(
            stage="training", annotations=len(tasks), train=len(dataset.train_ids), val=len(dataset.val_ids)
        )
        base = parent.weights if parent else None
        best, run_dir = _fine_tune(settings, dataset, base, Path(work) / "run")
        trained_at = time.time()
        scores = _compare(settings, spec, parent, best, dataset, class_names)
        name = f"project{project}-v{len(store.versions(project)) + 1:03d}-{file_version(best).rsplit('-', 1)[-1]}"
        meta = {
            "project": project,
            "version": name,
            "parent": parent.name if parent else None,
            "base_weights": str(base or settings.model_path),
            "annotations": len(tasks),
            "train_tasks": dataset.train_ids,
            "val_tasks": dataset.val_ids,
            "skipped_tasks": dataset.skipped,
            "classes": class_names,
            "map50": scores,
            "settings": {
                k: getattr(settings, k) for k in ("train_epochs", "train_imgsz", "train_batch", "train_device")
            },
            "timings": {
                "export_and_train_s": round(trained_at - started, 1),
                "total_s": round(time.time() - started, 1),
            },
        }
        _store_version(store, project, name, best, run_dir, meta)
    published = settings.train_publish_policy == "always" or scores["new"] >= scores["old"]
    if published:
        store.publish(project, name)
    logger.info("Project %s: version %s, mAP50 %s, published=%s", project, name, scores, published)
    return {"project": project, "version": name, "published": published, "map50": scores, "annotations": len(tasks)}


def _trainable_control(label_config: str, settings: BackendSettings) -> ControlSpec:
    """The first control training supports (boxes, for now) of the project's config."""
    specs = parse_label_config(label_config, settings.model_score_threshold, TRAINABLE_CONTROLS)
    return specs[0]


def _store_version(
    store: VersionStore, project: int, name: str, best: Path, run_dir: Path, meta: dict[str, Any]
) -> None:
    """Write the version folder atomically: weights, metadata, and ultralytics' metrics table and plot."""
    with store.new_version(project, name) as folder:
        shutil.copy2(best, folder / WEIGHTS_FILE)
        for artefact in ("results.csv", "results.png"):
            if (run_dir / artefact).exists():
                shutil.copy2(run_dir / artefact, folder / artefact)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))


def _label_studio_client(settings: BackendSettings) -> Any:
    if not (settings.label_studio_url and settings.label_studio_api_key):
        raise TrainingError(
            "Training reads annotations from Label Studio: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
        )
    from label_studio_sdk.client import LabelStudio

    return LabelStudio(base_url=settings.label_studio_url, api_key=settings.label_studio_api_key)  # type: ignore[no-untyped-call]


def _media_settings(settings: BackendSettings) -> MediaSettings:
    return MediaSettings(
        label_studio_url=settings.label_studio_url,
        api_key=settings.label_studio_api_key,
        document_root=settings.local_files_document_root,
        timeout=settings.media_timeout,
        max_bytes=settings.media_max_bytes,
    )


def _fine_tune(settings: BackendSettings, dataset: Dataset, base: Path | None, run_dir: Path) -> tuple[Path, Path]:
    """Train from ``base`` (else MODEL_PATH) and return the best weights and the run folder."""
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import YOLO

    # select_device() would drop torch to cpu_count - 1 threads; train with the configured count instead.
    torch_utils.NUM_THREADS = settings.torch_threads
    start = base or load_weights(settings.model_root, settings.model_path).path
    model = YOLO(str(start))
    model.add_callback("on_fit_epoch_end", _epoch_progress)
    model.train(
        data=str(dataset.yaml_path),
        epochs=settings.train_epochs,
        imgsz=settings.train_imgsz,
        batch=settings.train_batch,
        device=settings.train_device,
        workers=0,
        amp=settings.train_device != "cpu",
        project=str(run_dir.parent),
        name=run_dir.name,
        exist_ok=True,
        plots=True,
        verbose=False,
        seed=0,
        deterministic=True,
    )
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise TrainingError(f"ultralytics finished without writing {best}")
    return best, run_dir


def _epoch_progress(trainer: Any) -> None:
    metrics = {k: round(float(v), 4) for k, v in (trainer.metrics or {}).items()}
    # ultralytics calls this once more for the final validation of the best weights (epoch == epochs then).
    epoch = min(trainer.epoch + 1, trainer.epochs)
    report_progress(stage="training", epoch=epoch, epochs=trainer.epochs, metrics=metrics)


def _compare(
    settings: BackendSettings, spec: ControlSpec, parent: Any, best: Path, dataset: Dataset, class_names: list[str]
) -> dict[str, float]:
    """mAP50 of the served weights and the new weights on the same val images."""
    report_progress(stage="evaluating")
    samples = _val_samples(dataset, class_names)
    if parent is not None:
        old, old_labels = load_weights_file(parent.weights), with_own_labels(spec).labels
    else:
        old, old_labels = load_weights(settings.model_root, settings.model_path), spec.labels
    new = load_weights_file(best, version="candidate")
    return {
        "old": round(map50(old, old_labels, samples, class_names), 4),
        "new": round(map50(new, with_own_labels(spec).labels, samples, class_names), 4),
    }


def _val_samples(dataset: Dataset, class_names: list[str]) -> list[LabelledImage]:
    """The val split's images with their boxes in pixels, read back from the written dataset."""
    from PIL import Image

    samples = []
    for image_path in sorted(dataset.val_dir.glob("*.png")):
        image = Image.open(image_path).convert("RGB")
        size = ImageSize(*image.size)
        label_file = dataset.yaml_path.parent / "labels" / "val" / f"{image_path.stem}.txt"
        boxes = []
        for line in label_file.read_text().split("\n"):
            if line.strip():
                index, cx, cy, w, h = (float(v) for v in line.split())
                x0, y0 = (cx - w / 2) * size.width, (cy - h / 2) * size.height
                boxes.append((class_names[int(index)], x0, y0, x0 + w * size.width, y0 + h * size.height))
        samples.append(LabelledImage(image, boxes))
    return samples
