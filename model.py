"""The label-studio-ml model class: YOLO predictions for a Label Studio project.

label-studio-ml creates one instance per project and labelling config (see ``label_studio_yolo.server``). Creating
one is cheap after the first: the weights are read once per process and shared.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from label_studio_ml.model import LabelStudioMLBase

from label_studio_yolo.controls import ControlPredictor, control_for, supported_controls
from label_studio_yolo.label_config import (
    ControlSpec,
    LabelConfigError,
    parse_label_config,
    with_own_labels,
)
from label_studio_yolo.media import ImageLoader, MediaSettings
from label_studio_yolo.predictor import TaskPrediction, TaskPredictor
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.factory import scheduler_for
from label_studio_yolo.versions import VersionStore
from label_studio_yolo.weights import LoadedWeights, load_weights, load_weights_file

logger = logging.getLogger(__name__)


class YOLOBackend(LabelStudioMLBase):  # type: ignore[misc]  # label-studio-ml ships no type hints
    """Pre-labels Label Studio tasks with an Ultralytics YOLO model.

    Example:
        >>> backend = YOLOBackend(label_config=config, hostname="http://localhost:8080", access_token="...")
        >>> backend.model_version                                      # doctest: +SKIP
        'yolo11n-5b3a2f0c'
        >>> backend.predict([{"id": 1, "data": {"image": "/data/upload/1/a.jpg"}}])   # doctest: +SKIP
    """

    def __init__(
        self, label_config: str | None = None, train_output: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(label_config=label_config, train_output=train_output, **kwargs)
        self.project_id: int | None = kwargs.get("project_id")
        self.settings = BackendSettings()
        self.setup()

    def setup(self) -> None:
        """Load the project's published version, else the base weights, and map the config onto their classes.

        Weights are cached per process. A version trained here has the project's labels as its classes.

        Raises:
            WeightsError: the weight file is missing and cannot be downloaded, or is not a YOLO model.
            LabelConfigError: the config has no control this backend can fill.
        """
        settings = self.settings
        version = VersionStore(settings.model_dir).current(self.project_id) if self.project_id is not None else None
        if version is not None:
            self.weights = load_weights_file(version.weights, settings.device, version=version.name)
        else:
            self.weights = load_weights(settings.model_root, settings.model_path, settings.device)
        all_specs = parse_label_config(self.label_config or "", settings.model_score_threshold, supported_controls())
        if version is not None:
            all_specs = [with_own_labels(spec) if spec.model_path is None else spec for spec in all_specs]
        controls = [control_for(spec, self._weights_for(spec)) for spec in all_specs]
        controls = _usable(controls)
        self.model_version = "+".join(dict.fromkeys(control.weights.version for control in controls))
        self.predictor = TaskPredictor(
            model_version=self.model_version,
            controls=controls,
            loader=ImageLoader(self._media_settings()),
            imgsz=settings.model_imgsz,
            threads=settings.torch_threads,
        )

    @property
    def weight_files(self) -> list[Path]:
        """Every weight file this model's controls use (the server watches them for changes)."""
        return sorted({control.weights.path for control in self.predictor.controls})

    def _weights_for(self, spec: ControlSpec) -> LoadedWeights:
        """The tag's own ``model_path`` weights (inside MODEL_ROOT), else the project's weights."""
        if spec.model_path is None:
            return self.weights
        return load_weights(self.settings.model_root, spec.model_path, self.settings.device)

    def _media_settings(self) -> MediaSettings:
        """Where images come from: the settings first, else what Label Studio sent to /setup."""
        settings = self.settings
        return MediaSettings(
            label_studio_url=settings.label_studio_url or self.hostname or None,
            api_key=settings.label_studio_api_key or self.access_token or None,
            document_root=settings.local_files_document_root,
            timeout=settings.media_timeout,
            max_bytes=settings.media_max_bytes,
        )

    def predict(self, tasks: list[dict[str, Any]], **kwargs: Any) -> list[TaskPrediction]:
        """One prediction per task, in order; a task whose image fails gets ``[]`` and a logged reason."""
        return self.predictor.predict(tasks)

    def fit(self, event: Any, data: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Hand a Label Studio event (``START_TRAINING``, ``ANNOTATION_CREATED``, ...) to the training scheduler.

        Returns at once; training runs in an rq worker (or a local background process without ``REDIS_URL``).
        """
        return scheduler_for(self.settings).on_event(str(event), data or {})


def _usable(controls: list[ControlPredictor]) -> list[ControlPredictor]:
    """The controls their weights can fill; the others are skipped with a logged reason.

    Raises:
        LabelConfigError: no control can be filled (the message gives each reason, with XML that would work).
    """
    problems = [(control, control.unusable_reason()) for control in controls]
    for control, problem in problems:
        if problem:
            logger.warning("Skipping <%s name=%r>: %s", control.spec.control_type, control.spec.from_name, problem)
    usable = [control for control, problem in problems if not problem]
    if not usable:
        raise LabelConfigError("No control of the config can be filled. " + " ".join(str(p) for _, p in problems))
    return usable
