"""Make YOLO models whose behaviour does not depend on how the process was started: :func:`load_yolo`.

ultralytics reads state of the whole process and acts on it: the name the process was started as, its settings file,
environment variables. The same call then behaves differently in the server, the rq worker, the bulk command, the
tests and a user's shell. :func:`pin_ultralytics` fixes what matters once per process, in memory (ultralytics'
settings file is not written); every YOLO model of the backend is made by :func:`load_yolo`, which pins first.
docs/architecture.md lists what is pinned and why.

Example:
    >>> model = load_yolo(Path("models/yolo11n.pt"))            # doctest: +SKIP
    >>> model.predict(image, verbose=False)[0].boxes            # never None, never saved to runs/
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ultralytics import YOLO

NOT_ULTRALYTICS_CLI = ("label-studio-yolo-backend",)
"""The argument vector ultralytics' ``Model.predict`` sees. It takes a process whose ``argv[0]`` ends in ``yolo`` and
whose arguments hold ``predict`` or ``track`` (``label-studio-yolo predict``) for its own command line: it then saves
every result under ``runs/`` and returns ``None``."""

_pinned = False
_pin_lock = threading.Lock()


def pin_ultralytics() -> None:
    """Pin ultralytics' process-wide behaviour, once per process (later calls return at once).

    - ``Model.predict`` and ``Model.track`` never run as ultralytics' command line, whatever ``sys.argv`` is;
    - no integration callbacks on any predictor, validator, exporter or trainer: no usage analytics, no Ultralytics
      Platform streaming (even with ``ULTRALYTICS_API_KEY`` set), no experiment trackers, whatever the settings file
      or ``PYTEST_CURRENT_TEST`` say;
    - a missing requirement is never pip-installed into the running environment (``YOLO_AUTOINSTALL``): it fails;
    - OpenVINO's converter sends no usage events: it reported each export to Google Analytics from forked copies of
      the exporting process (three copies of a 540 MB process), whose memory counts against a pod's limit.
    """
    global _pinned
    with _pin_lock:
        if _pinned:
            return
        # Module globals rebound by hand: ultralytics offers no switch for any of the three (8.4.190).
        import ultralytics.engine.model as engine_model
        import ultralytics.utils.callbacks as callbacks
        import ultralytics.utils.checks as checks

        # openvino's converter falls back to its own no-op stub when openvino_telemetry cannot be imported; this
        # holds if openvino is imported after this point (nothing of the backend imports it before a model loads).
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
        engine_model.ARGV = list(NOT_ULTRALYTICS_CLI)
        callbacks.add_integration_callbacks = _no_integration_callbacks
        checks.AUTOINSTALL = False
        _pinned = True


def load_yolo(source: Path | str, task: str | None = None) -> YOLO:
    """A YOLO model read from ``source`` (a weight file or an export folder), in a pinned process.

    Args:
        source: the ``.pt`` file, or an export folder such as ``yolo11n_openvino_model/``.
        task: the model's task, for exports that do not say (``detect``, ``segment``, ...).

    Returns:
        ultralytics' ``YOLO`` model.
    """
    pin_ultralytics()
    from ultralytics import YOLO

    return YOLO(str(source), task=task)


def _no_integration_callbacks(instance: Any) -> None:
    """Stands in for ultralytics' ``add_integration_callbacks``: the instance keeps only its default callbacks."""
    del instance


@contextmanager
def ultralytics_quiet_unless(debug: bool) -> Iterator[None]:
    """ultralytics' own log at WARNING inside the block, unless ``debug``: its progress bars (drawn only while its
    logger is at INFO), model tables, argument dumps and per-layer "Freezing layer" lines are left out."""
    from ultralytics.utils import LOGGER

    before = LOGGER.level
    LOGGER.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(before)
