"""Progress of the running training job, kept in its rq ``meta`` (and logged) so status views can show it.

Progress is for people to read: when Redis cannot be reached for a moment, the job logs that and trains on.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def report_progress(**fields: Any) -> None:
    """Merge ``fields`` (stage, epoch, epochs, metrics, ...) into the current rq job's meta, if any."""
    logger.info("Training progress: %s", fields)
    from redis.exceptions import ConnectionError, TimeoutError
    from rq import get_current_job

    try:
        job = get_current_job()
        if job is None:
            return
        job.meta.update(fields)
        job.save_meta()  # type: ignore[no-untyped-call]
    except (ConnectionError, TimeoutError) as error:
        logger.warning("Training progress not saved (Redis unreachable): %s", error)
