"""The connection bounds' arithmetic and their one log line a minute; the bounds on real sockets are in
``tests/integration/test_connections.py``."""

from __future__ import annotations

import asyncio
import logging
import resource

import pytest

from label_studio_yolo.serving import connections
from label_studio_yolo.serving.connections import TIMED_OUT, TOO_LARGE, ConnectionGuard, connection_cap


def test_the_cap_leaves_each_connection_two_files_and_the_process_its_own() -> None:
    assert connection_cap(1000, 20_000) == 1000
    assert connection_cap(1000, 1024) == (1024 - connections.FILES_RESERVED) // 2 == 448
    assert connection_cap(1000, resource.RLIM_INFINITY) == 1000
    assert connection_cap(1000, 10) == 1


def test_a_flood_of_closures_is_one_line_at_once_and_one_line_with_the_rest_later(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(connections, "LOG_EVERY", 0.3)
    guard = ConnectionGuard(cap=3, header_timeout=10, header_bytes=4096)

    async def flood() -> None:
        for _ in range(1000):
            guard.note(TIMED_OUT)
        guard.note(TOO_LARGE)
        await asyncio.sleep(1.0)

    with caplog.at_level(logging.WARNING, logger=connections.__name__):
        asyncio.run(flood())
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].endswith(": 1 sent no complete headers within REQUEST_HEADER_TIMEOUT (10 s)")
    assert "999 sent no complete headers within REQUEST_HEADER_TIMEOUT (10 s); " in lines[1]
    assert lines[1].endswith("1 sent headers over MAX_HEADER_BYTES (4096 bytes, 431)")
