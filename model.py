"""The label-studio-ml model class: YOLO predictions for a Label Studio project.

The server creates one instance per project and labelling config (see ``label_studio_yolo.serving.app``), with the
Label Studio URL and key it decided for the project as ``hostname`` and ``access_token``. Creating one is cheap
after the first: the weights are read once per process and shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from label_studio_ml.model import LabelStudioMLBase

from label_studio_yolo.credentials import LabelStudioAccess
from label_studio_yolo.prediction.project import build_project_predictor
from label_studio_yolo.prediction.tasks import TaskPrediction
from label_studio_yolo.settings import current_settings
from label_studio_yolo.training.factory import scheduler_for


class YOLOBackend(LabelStudioMLBase):  # type: ignore[misc]  # label-studio-ml ships no type hints
    """Pre-labels Label Studio tasks with an Ultralytics YOLO model.

    Example:
        >>> backend = YOLOBackend(label_config=config, hostname="http://localhost:8080", access_token="...")
        >>> backend.model_version                                      # doctest: +SKIP
        'yolo11n-5b3a2f0c'
        >>> backend.predict([{"id": 1, "data": {"image": "/data/upload/1/a.jpg"}}])   # doctest: +SKIP
    """

    _parsed: dict[str, Any] | None = None

    def __init__(
        self, label_config: str | None = None, train_output: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        # The config is parsed once, by setup(): label-studio-ml's own parse (and its bare 500 on broken XML) is
        # skipped, and parsed_label_config is made only if something asks for it.
        super().__init__(label_config=None, train_output=train_output, **kwargs)
        self.label_config = label_config
        self.project_id: int | None = kwargs.get("project_id")
        self.settings = current_settings()
        self.setup()

    def setup(self) -> None:
        """Load the project's published version, else the base weights, and map the config onto their classes.

        Raises:
            WeightsError: the weight file is missing and cannot be downloaded, or is not a YOLO model.
            LabelConfigError: the config has no control this backend can fill.
        """
        self.predictor = build_project_predictor(
            self.label_config or "",
            self.project_id,
            self.settings,
            self._label_studio_access(),
            background_export=True,
        )
        self.model_version = self.predictor.model_version

    def _label_studio_access(self) -> LabelStudioAccess | None:
        """The Label Studio URL and key the server decided for this project (``hostname`` and ``access_token`` as
        label-studio-ml names them; see ``label_studio_yolo.credentials``); None: the settings' own."""
        if not (self.hostname or self.access_token):
            return None
        from_setup = not self.settings.label_studio_url  # then the server took the URL from /setup
        return LabelStudioAccess(self.hostname or None, self.access_token or None, from_setup=from_setup)

    @property
    def parsed_label_config(self) -> dict[str, Any]:
        """label-studio-ml's parse of the config (its base class's attribute; nothing in this backend reads it)."""
        from label_studio_tools.core.label_config import parse_config

        if self._parsed is None:
            self._parsed = parse_config(self.label_config) if self.label_config else {}
        return self._parsed

    @parsed_label_config.setter
    def parsed_label_config(self, value: dict[str, Any]) -> None:
        self._parsed = value or None

    @property
    def weight_files(self) -> list[Path]:
        """Every weight file this model's controls use (the server watches them for changes)."""
        return sorted({control.weights.path for control in self.predictor.controls})

    def predict(self, tasks: list[dict[str, Any]], **kwargs: Any) -> list[TaskPrediction]:
        """One prediction per task, in order; a task whose image fails gets ``[]`` and a logged reason, and so do
        the tasks left when ``PREDICT_TIME_BUDGET`` is spent."""
        return self.predictor.predict(tasks, time_budget=self.settings.predict_time_budget or None)

    def fit(self, event: Any, data: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Hand a Label Studio event (``START_TRAINING``, ``ANNOTATION_CREATED``, ...) to the training scheduler.

        Returns at once; training runs in an rq worker (or a local background process without ``REDIS_URL``).
        """
        return scheduler_for(self.settings).on_event(str(event), data or {})
