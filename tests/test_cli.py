"""The ``label-studio-yolo`` command as installed by ``make install``: entry point, help and argument errors.

What the command does against Label Studio is tested end to end in ``tests/e2e/test_bulk_predict.py``.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
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


PROGRESS_SCRIPT = """
from label_studio_yolo.bulk.progress import Progress
progress = Progress(total=64)
for batch in range(4):
    progress.advance(done=16, failed=1 if batch == 2 else 0)
progress.close()
"""


def test_on_a_terminal_a_progress_bar_shows_tasks_per_second_and_failures():
    """Run in a real pseudo-terminal of 120 columns, as a user's shell gives it."""
    terminal, child_side = pty.openpty()
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-c", PROGRESS_SCRIPT], stdout=child_side, stderr=child_side)
    os.close(child_side)
    output = b""
    while select.select([terminal], [], [], 30)[0]:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=30) == 0
    last_frame = output.decode().replace("\r", "\n").strip().splitlines()[-1]
    assert "64/64" in last_frame and "task/s" in last_frame and "failed=1" in last_frame, last_frame


def test_a_dry_run_file_in_a_missing_folder_is_refused_before_connecting(tmp_path, capsys):
    target = tmp_path / "missing" / "predictions.json"
    args = ["predict", "--url", "http://127.0.0.1:9", "--api-key", "x", "--project", "1", "--dry-run", str(target)]
    assert main(args) == EXIT_ERROR
    assert "its folder does not exist" in capsys.readouterr().err
