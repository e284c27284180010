"""The ``label-studio-yolo`` command as installed by ``make install``: entry point, help and argument errors.

What the command does against Label Studio is tested end to end in ``tests/e2e/test_bulk_predict.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from label_studio_yolo.cli import EXIT_ERROR, main

ENTRY_POINT = Path(sys.executable).parent / "label-studio-yolo"


def test_the_installed_command_shows_the_predict_options():
    assert ENTRY_POINT.exists(), "make install installs the package (pip install -e .) with its console script"
    result = subprocess.run([str(ENTRY_POINT), "predict", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--url", "--api-key", "--project", "--from-task", "--include-annotated", "--dry-run", "--limit"):
        assert option in result.stdout


def test_python_dash_m_runs_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "label_studio_yolo", "predict", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--dry-run" in result.stdout


def test_a_missing_url_is_an_error_before_anything_else(monkeypatch, capsys):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    assert main(["predict", "--project", "1", "--api-key", "x"]) == EXIT_ERROR
    assert "No Label Studio URL: pass --url or set LABEL_STUDIO_URL" in capsys.readouterr().err


def test_a_missing_key_is_an_error(monkeypatch, capsys):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert main(["predict", "--url", "http://127.0.0.1:9", "--project", "1"]) == EXIT_ERROR
    assert "No API key: pass --api-key or set LABEL_STUDIO_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--limit", "-3"], ["--project", "abc"]])
def test_bad_numbers_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--url", "http://127.0.0.1:9", "--project", "1", *args])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
