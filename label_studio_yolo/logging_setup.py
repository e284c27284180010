"""The backend's own log lines (loggers under ``label_studio_yolo``) in every process that runs its code.

- A web server owns its process's logging: :func:`configure_root_logging` puts the backend's format and
  ``LOG_LEVEL`` on the root logger.
- An rq worker configures only rq's own loggers, so :func:`configure_package_logging` gives the
  ``label_studio_yolo`` logger a handler of its own, to stderr, unless a handler above it already takes its lines
  (no line is printed twice). rq's forked work horse inherits it; a spawned training process calls it itself.

This module imports nothing but the standard library, so a worker does not load Flask for it.

Example:
    >>> configure_package_logging("INFO", date_format="%H:%M:%S")             # doctest: +SKIP
    >>> logging.getLogger("label_studio_yolo.training.job").info("published=True")
    [12:00:01] [INFO] [label_studio_yolo.training.job] published=True
"""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"
"""Every log line of the backend: time, level, logger and message."""

PACKAGE_LOGGER = "label_studio_yolo"
"""The logger above every logger of the backend."""


def configure_root_logging(level: str, *own_level: str) -> None:
    """A server's logging, set up once: :data:`LOG_FORMAT` at ``level`` on the root logger.

    ``own_level`` names loggers that get ``level`` of their own too, not only through the root's (OpenVINO's
    converter sets the root level to ERROR while it runs).
    """
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for name in own_level:
        logging.getLogger(name).setLevel(level.upper())


def configure_package_logging(level: str, date_format: str | None = None) -> None:
    """The backend's lines at ``level`` to stderr in a process whose logging is not the backend's (an rq worker).

    Adds a handler to the ``label_studio_yolo`` logger only if none takes its lines yet (its own from an earlier
    call, or the root's), and then stops them going up too, as rq does for its own loggers, so a handler added to
    the root later does not print them twice.
    """
    package = logging.getLogger(PACKAGE_LOGGER)
    package.setLevel(level.upper())
    if _has_handler(package):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, date_format))
    package.addHandler(handler)
    package.propagate = False


def _has_handler(logger: logging.Logger) -> bool:
    """Whether a handler of ``logger`` or of a logger above it (as far as records go up) takes its records."""
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            return True
        current = current.parent if current.propagate else None
    return False
