"""One bulk run over a project: connect, build the backend's predictor, choose the tasks, predict and store.

Example:
    >>> report = predict_project(BulkOptions(url="http://localhost:8080", api_key="...", project_id=3))
    >>> report.totals.predicted, report.totals.rate
    (412, 14.2)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from label_studio_sdk.client import LabelStudio

from label_studio_yolo.bulk.connection import connect, open_project
from label_studio_yolo.bulk.progress import Progress
from label_studio_yolo.bulk.runner import BatchTotals, run_batches
from label_studio_yolo.bulk.selection import Selection, TaskFilter, select_tasks
from label_studio_yolo.bulk.sinks import JsonFileWriter, LabelStudioUploader, PredictionSink
from label_studio_yolo.settings import BackendSettings

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
"""Tasks predicted between two uploads (one ``import_predictions`` request each)."""


@dataclass(frozen=True)
class BulkOptions:
    """What to predict and where the predictions go.

    Attributes:
        url: Label Studio's base URL.
        api_key: a legacy token or a personal access token.
        project_id: the project to pre-label.
        task_filter: which tasks (id range, annotated or not, predicted or not).
        dry_run_file: write the predictions here as JSON instead of uploading them.
        batch_size: tasks per upload.
        limit: predict at most this many of the chosen tasks (None: all).
        show_progress: a progress bar (None: only on a terminal).
        settings: model and media settings; the backend's (environment and ``.env``) by default.
    """

    url: str
    api_key: str
    project_id: int
    task_filter: TaskFilter = field(default_factory=TaskFilter)
    dry_run_file: Path | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    limit: int | None = None
    show_progress: bool | None = None
    settings: BackendSettings = field(default_factory=BackendSettings)


@dataclass(frozen=True)
class BulkReport:
    """What a run found and did."""

    project_id: int
    project_title: str
    model_version: str
    selection: Selection
    totals: BatchTotals
    dry_run_file: Path | None


def predict_project(options: BulkOptions) -> BulkReport:
    """Predict the chosen tasks of the project and upload the predictions (or write them, in a dry run).

    Raises:
        ConnectionProblem: Label Studio is unreachable, refuses the key, or has no such project.
        LabelConfigError: the project's config has no control the model can fill.
        WeightsError: the weights cannot be loaded.
    """
    client = connect(options.url, options.api_key)
    project = open_project(client, options.project_id)
    from label_studio_yolo.prediction.project import build_project_predictor  # torch: after the fast checks

    settings = options.settings.model_copy(
        update={"label_studio_url": options.url.rstrip("/"), "label_studio_api_key": options.api_key}
    )
    predictor = build_project_predictor(project.label_config or "", options.project_id, settings)
    selection = select_tasks(client, options.project_id, options.task_filter, predictor.model_version)
    if options.limit is not None:
        selection.keep_first(options.limit)
    logger.info(
        "Project %s (%r): %d tasks, %d to predict with model version %s",
        options.project_id,
        project.title,
        selection.listed,
        len(selection.tasks),
        predictor.model_version,
    )
    sink = _sink(options, client)
    progress = Progress(total=len(selection.tasks), show_bar=options.show_progress)
    try:
        totals = run_batches(predictor, selection.tasks, sink, options.batch_size, progress)
    finally:
        sink.close()
    return BulkReport(
        options.project_id, str(project.title or ""), predictor.model_version, selection, totals, options.dry_run_file
    )


def _sink(options: BulkOptions, client: LabelStudio) -> PredictionSink:
    if options.dry_run_file is not None:
        return JsonFileWriter(options.dry_run_file)
    return LabelStudioUploader(client, options.project_id)
