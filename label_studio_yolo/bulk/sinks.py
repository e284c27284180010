"""Where bulk predictions go: uploaded to Label Studio, or written to a JSON file by a dry run.

Both take a batch of predictions in the body format of Label Studio's ``POST /api/projects/{id}/import/predictions``
(``task``, ``result``, ``score``, ``model_version``), so a dry run's file can be uploaded later as it is.

Example:
    >>> sink = LabelStudioUploader(client, project_id=3)          # doctest: +SKIP
    >>> sink.put([{"task": 17, "result": [...], "score": 0.91, "model_version": "yolo11n-5b3a2f0c"}])
    {}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError

logger = logging.getLogger(__name__)

UPLOAD_RETRIES = 5
"""Retries of one upload on connection errors, HTTP 429 and 5xx (the SDK backs off between them)."""

UPLOAD_TIMEOUT_S = 120
"""Seconds one batch upload may take."""


class UploadError(Exception):
    """Label Studio did not take a batch; what was uploaded before it stays stored."""


class PredictionSink(Protocol):
    """Takes batches of predictions; returns the tasks it could not store, with the reason."""

    def put(self, predictions: Sequence[dict[str, Any]]) -> dict[int, str]: ...

    def close(self) -> None: ...


class LabelStudioUploader:
    """Uploads each batch with one ``import_predictions`` call.

    Label Studio stores a batch whole or not at all. When it refuses a batch because one of its tasks is gone
    (deleted since the project was listed), the batch is sent again a task at a time, so only that task fails.
    """

    def __init__(self, client: LabelStudio, project_id: int, retries: int = UPLOAD_RETRIES) -> None:
        self.client = client
        self.project_id = project_id
        self.retries = retries

    def put(self, predictions: Sequence[dict[str, Any]]) -> dict[int, str]:
        """Store ``predictions``; returns ``{task id: reason}`` for those Label Studio refused one by one.

        Raises:
            UploadError: Label Studio cannot be reached, or refused the batch for a reason that is not one task.
        """
        if not predictions:
            return {}
        try:
            self._import(predictions)
            return {}
        except ApiError as error:
            if error.status_code != 400 or len(predictions) == 1:
                raise UploadError(_describe(error)) from error
            logger.warning("Label Studio refused a batch (%s); uploading it a task at a time", _describe(error))
        return self._one_by_one(predictions)

    def close(self) -> None:
        """Nothing to release: each batch is stored when ``put`` returns."""

    def _one_by_one(self, predictions: Sequence[dict[str, Any]]) -> dict[int, str]:
        refused: dict[int, str] = {}
        for prediction in predictions:
            try:
                self._import([prediction])
            except ApiError as error:
                if error.status_code != 400:
                    raise UploadError(_describe(error)) from error
                refused[int(prediction["task"])] = f"upload refused: {_describe(error)}"
        return refused

    def _import(self, predictions: Sequence[dict[str, Any]]) -> None:
        try:
            self.client.projects.import_predictions(
                id=self.project_id,
                request=list(predictions),  # type: ignore[arg-type]  # plain dicts are valid request bodies
                request_options={"timeout": UPLOAD_TIMEOUT_S, "max_retries": self.retries},
            )
        except ApiError:
            raise
        except Exception as error:  # httpx connection errors after the retries
            raise UploadError(f"Label Studio could not be reached: {error}") from error


class JsonFileWriter:
    """A dry run's sink: writes every prediction to one JSON array, a batch at a time, and uploads nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self._file = path.open("w", encoding="utf-8")
        self._file.write("[")

    def put(self, predictions: Sequence[dict[str, Any]]) -> dict[int, str]:
        """Append ``predictions`` to the file (flushed, so an interrupted run leaves what it predicted)."""
        for prediction in predictions:
            self._file.write(",\n" if self.written else "\n")
            json.dump(prediction, self._file)
            self.written += 1
        self._file.flush()
        return {}

    def close(self) -> None:
        """Close the JSON array."""
        if not self._file.closed:
            self._file.write("\n]\n")
            self._file.close()


def _describe(error: ApiError) -> str:
    body = error.body
    if isinstance(body, dict):
        detail = body.get("validation_errors") or body.get("detail") or body
        return f"HTTP {error.status_code}: {json.dumps(detail)[:500]}"
    return f"HTTP {error.status_code}: {str(body)[:200]}"
