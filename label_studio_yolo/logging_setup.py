"""The backend's own log lines (loggers under ``label_studio_yolo``) in every process that runs its code.

- A web server owns its process's logging: :func:`configure_root_logging` puts the backend's format and
  ``LOG_LEVEL`` on the root logger.
- An rq worker configures only rq's own loggers, so :func:`configure_package_logging` gives the
  ``label_studio_yolo`` logger a handler of its own, to stderr, unless a handler above it already takes its lines
  (no line is printed twice). rq's forked work horse inherits it; a spawned training process calls it itself.
- Every handler either sets up, and those of the server's and rq's own loggers, carry :class:`HideSecrets`: no line
  or traceback, whoever wrote it, shows a URL's password or a presigned URL's signature.

This module imports nothing but the standard library (and :mod:`label_studio_yolo.logsafe`), so a worker does not
load Flask for it.

Example:
    >>> configure_package_logging("INFO", date_format="%H:%M:%S")             # doctest: +SKIP
    >>> logging.getLogger("label_studio_yolo.training.job").info("published=True")
    [12:00:01] [INFO] [label_studio_yolo.training.job] published=True
"""

from __future__ import annotations

import logging
import sys

from label_studio_yolo.logsafe import without_secrets

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"
"""Every log line of the backend: time, level, logger and message."""

PACKAGE_LOGGER = "label_studio_yolo"
"""The logger above every logger of the backend."""


SERVER_LOGGERS = ("gunicorn.error", "gunicorn.access", "rq.worker", "rq.job", "rq.queue")
"""Loggers of the servers the backend runs in, whose own handlers also get :class:`HideSecrets`."""


class HideSecrets(logging.Filter):
    """A handler filter that hides URL passwords and credential query values in a record's message and traceback
    (:func:`label_studio_yolo.logsafe.without_secrets`): the message is formatted here, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = without_secrets(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = without_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = without_secrets(record.stack_info)
        return True


def hide_secrets_in(*loggers: logging.Logger) -> None:
    """Give every handler of ``loggers`` (and of :data:`SERVER_LOGGERS`) a :class:`HideSecrets` filter, once."""
    for logger in [*loggers, *map(logging.getLogger, SERVER_LOGGERS)]:
        for handler in logger.handlers:
            if not any(isinstance(each, HideSecrets) for each in handler.filters):
                handler.addFilter(HideSecrets())


def configure_root_logging(level: str, *own_level: str) -> None:
    """A server's logging, set up once: :data:`LOG_FORMAT` at ``level`` on the root logger, secrets hidden.

    ``own_level`` names loggers that get ``level`` of their own too, not only through the root's (OpenVINO's
    converter sets the root level to ERROR while it runs).
    """
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for name in own_level:
        logging.getLogger(name).setLevel(level.upper())
    hide_secrets_in(logging.getLogger())


def configure_package_logging(level: str, date_format: str | None = None) -> None:
    """The backend's lines at ``level`` to stderr in a process whose logging is not the backend's (an rq worker).

    Adds a handler to the ``label_studio_yolo`` logger only if none takes its lines yet (its own from an earlier
    call, or the root's), and then stops them going up too, as rq does for its own loggers, so a handler added to
    the root later does not print them twice.
    """
    package = logging.getLogger(PACKAGE_LOGGER)
    package.setLevel(level.upper())
    if not _has_handler(package):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, date_format))
        package.addHandler(handler)
        package.propagate = False
    hide_secrets_in(package, logging.getLogger())


def _has_handler(logger: logging.Logger) -> bool:
    """Whether a handler of ``logger`` or of a logger above it (as far as records go up) takes its records."""
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            return True
        current = current.parent if current.propagate else None
    return False
