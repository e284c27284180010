"""Settings as a server reads them on every request: cached, yet a changed variable or ``.env`` takes effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from label_studio_yolo.settings import current_settings


def test_unchanged_environment_reuses_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SCORE_THRESHOLD", "0.3")
    assert current_settings() is current_settings()
    assert current_settings().model_score_threshold == 0.3


def test_a_changed_variable_takes_effect_on_the_next_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SCORE_THRESHOLD", "0.3")
    before = current_settings()
    monkeypatch.setenv("MODEL_SCORE_THRESHOLD", "0.7")
    assert current_settings().model_score_threshold == 0.7
    assert before.model_score_threshold == 0.3


def test_a_changed_env_file_takes_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREDICT_TIME_BUDGET", raising=False)
    (tmp_path / ".env").write_text("PREDICT_TIME_BUDGET=30\n")
    assert current_settings().predict_time_budget == 30
    (tmp_path / ".env").write_text("PREDICT_TIME_BUDGET=45.5\n")
    assert current_settings().predict_time_budget == 45.5


def test_the_request_buffer_holds_at_least_one_request_of_the_largest_size() -> None:
    from pydantic import ValidationError

    from label_studio_yolo.settings import BackendSettings

    assert BackendSettings(max_request_bytes=1000).buffer_budget == 4000
    assert BackendSettings(max_request_bytes=1000, request_buffer_bytes=1000).buffer_budget == 1000
    with pytest.raises(ValidationError, match=r"REQUEST_BUFFER_BYTES \(999\) must be at least MAX_REQUEST_BYTES"):
        BackendSettings(max_request_bytes=1000, request_buffer_bytes=999)
