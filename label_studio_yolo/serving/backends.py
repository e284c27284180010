"""One model per Label Studio project, built from that project's config and serving that project's version.

Label Studio sends every request with its project (``"<id>.<epoch>"``) and labelling config; two projects with
different configs must not get each other's labels. A project's model is rebuilt when its config, its Label Studio
access, the settings, its published version or a weight file it uses changes. At most
:data:`MAX_CACHED_PROJECTS` models are kept (the least recently used is dropped), so memory does not grow with
every project string a client invents; the weights themselves are shared by all projects.

Example:
    >>> models = ProjectBackends(YOLOBackend)
    >>> models.setup("3.1700000000", config, "http://ls:8080", "token").model_version      # doctest: +SKIP
    'yolo11n-5b3a2f0c'
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.credentials import AccessBook, LabelStudioAccess
from label_studio_yolo.inference.weights import file_stamps
from label_studio_yolo.logsafe import printable
from label_studio_yolo.projects import project_id
from label_studio_yolo.settings import current_settings
from label_studio_yolo.versions import VersionStore
from label_studio_yolo.vlm.client import vlm_config

logger = logging.getLogger(__name__)

MAX_CACHED_PROJECTS = 64
"""Project models kept per process; a dropped one is rebuilt cheaply on its next request (weights stay cached)."""


@dataclass(frozen=True)
class _Cached:
    key: tuple[Any, ...]
    model: Any
    stamps: tuple[Any, ...]


class ProjectBackends:
    """The project models of one app (thread-safe); ``model_class`` is a ``LabelStudioMLBase`` subclass."""

    def __init__(self, model_class: type[Any], max_projects: int | None = None) -> None:
        self.model_class = model_class
        self.access = AccessBook()
        self._models: OrderedDict[str, _Cached] = OrderedDict()
        self._max_projects = max_projects or MAX_CACHED_PROJECTS
        self._lock = threading.Lock()

    def setup(self, project: str, label_config: str, hostname: object, access_token: object) -> Any:
        """Take a ``/setup`` call: record where the project's images come from, and return its model.

        Raises:
            SetupRefused: the hostname is not the one the project was set up from (see
                :mod:`label_studio_yolo.credentials`).
        """
        self.access.record_setup(project, hostname, access_token, current_settings())
        return self.get(project, label_config)

    def get(self, project: str, label_config: str) -> Any:
        """The project's model for ``label_config``, built on first use or after a change.

        A change is cheap to see: the published version's pointer and every weight file in use are only ``stat``-ed.
        """
        settings = current_settings()
        access = self.access.access_for(project, settings)
        number = project_id(project)
        with self._lock:
            published = VersionStore(settings.model_dir).current_stamp(number) if number is not None else None
            # The dump masks secrets: the VLM endpoint (its key with it) is compared whole, as its client is built.
            key = (label_config, access, settings.model_dump_json(), vlm_config(settings), published)
            cached = self._models.get(project)
            if cached is not None and cached.key == key and cached.stamps == file_stamps(cached.model.weight_files):
                self._models.move_to_end(project)
                return cached.model
            model = self._build(project, number, label_config, access)
            self._models[project] = _Cached(key, model, file_stamps(model.weight_files))
            self._models.move_to_end(project)
            while len(self._models) > self._max_projects:
                self._models.popitem(last=False)
            return model

    def label_config_of(self, project: str) -> str | None:
        """The config the project's model was last built from, if it is still cached."""
        with self._lock:
            cached = self._models.get(project)
        return cached.key[0] if cached else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def _build(self, project: str, number: int | None, label_config: str, access: LabelStudioAccess) -> Any:
        model = self.model_class(
            label_config=label_config, hostname=access.url, access_token=access.api_key, project_id=number
        )
        logger.info("Project %s: serving model version %s", printable(project), model.model_version)
        return model
