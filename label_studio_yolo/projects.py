"""Label Studio project ids as requests carry them, read strictly.

Label Studio names a project by its id: ``"<id>.<created_at epoch>"`` in ``/setup`` and ``/predict``, a number or a
``{"id": ...}`` object in webhooks. Only those forms are projects: a positive integer in ASCII digits (not ``-4``,
``1.9`` as a JSON number, ``True`` or ``"٣"``), so that nothing else names a training queue, a Redis key or a folder.

Example:
    >>> project_id("3.1700000000"), project_id({"id": 3}), project_id("-4"), project_id(1.9)
    (3, 3, None, None)
"""

from __future__ import annotations

import re
from typing import Any

PROJECT_PATTERN = re.compile(r"([1-9][0-9]{0,17})(\.[0-9]{1,20})?", re.ASCII)
"""``<id>`` or ``<id>.<epoch>``: what Label Studio sends, with the id below 10**18 (it is a 64-bit key there)."""


def project_id(value: object) -> int | None:
    """The project id ``value`` names, or None when it is not one of the forms Label Studio sends."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 10**18 else None
    if isinstance(value, str) and (match := PROJECT_PATTERN.fullmatch(value)):
        return int(match.group(1))
    return None


def project_id_of(data: dict[str, Any]) -> int | None:
    """The project id in a request body's ``project`` (see :func:`project_id`)."""
    return project_id(data.get("project"))
