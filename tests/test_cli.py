"""The ``label-studio-yolo`` command as installed by ``make install``: entry point, help and argument errors, and
``versions list|pin|unpin`` on a real MODEL_DIR.

What ``predict`` does against Label Studio is tested end to end in ``tests/e2e/test_bulk_predict.py``; that a
running backend serves what ``versions pin`` chose, in ``tests/integration/test_version_pinning.py``.
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

from label_studio_yolo.cli import EXIT_ERROR, EXIT_OK, main
from label_studio_yolo.versions import META_FILE, VersionStore
from tests.support.documented import block_containing, documented, fill_in, run_as_user, user_env

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


@pytest.fixture
def versions_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VersionStore:
    """MODEL_DIR with project 7's versions project7-v001 and project7-v002, the newer published."""
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "model-versions"))
    monkeypatch.setenv("MODEL_PATH", "boxes.pt")
    store = VersionStore(tmp_path / "model-versions")
    for name in ("project7-v001", "project7-v002"):
        with store.new_version(7, name) as folder:
            (folder / META_FILE).write_text("{}")
    store.publish(7, "project7-v002")
    return store


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["versions", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_versions_list_marks_the_served_and_the_pinned_version(versions_store, capsys):
    code, out, _ = run(capsys, "list", "--project", "7")
    assert code == EXIT_OK
    assert out.splitlines() == ["base (MODEL_PATH boxes.pt)", "project7-v001", "project7-v002  [served]"]
    versions_store.pin(7, "project7-v001")
    assert run(capsys, "list", "--project", "7")[1].splitlines()[1:] == [
        "project7-v001  [served, pinned]",
        "project7-v002",
    ]


def test_versions_pin_and_unpin_change_what_is_served_and_what_training_may_publish(versions_store, capsys):
    code, out, _ = run(capsys, "pin", "--project", "7", "--version", "project7-v001")
    assert code == EXIT_OK
    assert "Project 7 now serves project7-v001 and is pinned to it" in out
    assert "label-studio-yolo versions unpin --project 7" in out
    assert (versions_store.current(7).name, versions_store.pinned(7)) == ("project7-v001", "project7-v001")

    code, out, _ = run(capsys, "unpin", "--project", "7")
    assert code == EXIT_OK
    assert out.strip() == (
        "Project 7 was pinned to project7-v001; it serves project7-v002 until training publishes a new version."
    ), "unpin serves the newest version training published"
    assert (versions_store.current(7).name, versions_store.pinned(7)) == ("project7-v002", None)
    assert run(capsys, "unpin", "--project", "7")[1].startswith("Project 7 was not pinned; it serves project7-v002")


def test_versions_pin_base_serves_model_path(versions_store, capsys):
    code, out, _ = run(capsys, "pin", "--project", "7", "--version", "base")
    assert code == EXIT_OK and "now serves the base weights (MODEL_PATH)" in out
    assert (versions_store.current(7), versions_store.pinned(7)) == (None, "base")
    assert run(capsys, "list", "--project", "7")[1].splitlines()[0] == "base (MODEL_PATH boxes.pt)  [served, pinned]"


@pytest.mark.parametrize("name", ["project7-v009", "../7/project7-v001", ""])
def test_versions_pin_of_an_unknown_version_is_an_error_listing_the_stored_ones(versions_store, capsys, name):
    code, out, err = run(capsys, "pin", "--project", "7", "--version", name)
    assert code == EXIT_ERROR and out == ""
    assert "error: Project 7 has no version" in err and "Stored versions: project7-v001, project7-v002" in err
    assert (versions_store.current(7).name, versions_store.pinned(7)) == ("project7-v002", None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: {list,pin,unpin}"),
        (["list"], "the following arguments are required: --project"),
        (["pin", "--project", "7"], "the following arguments are required: --version"),
        (["unpin", "--project", "0"], "must be a whole number from 1 to 10**18 - 1 in digits 0-9, not '0'"),
        (["list", "--project", "٣"], "in digits 0-9, not '٣'"),
        (["list", "--project", "1_000"], "in digits 0-9, not '1_000'"),
        (["list", "--project", "9" * 300], "must be a whole number from 1 to 10**18 - 1"),
        (["drop", "--project", "7"], "invalid choice: 'drop'"),
    ],
)
def test_versions_usage_errors_exit_2(versions_store, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["versions", *args])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "label-studio-yolo versions" in error and message in error


def test_the_installed_command_shows_the_versions_actions():
    result = subprocess.run([str(ENTRY_POINT), "versions", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert all(action in result.stdout for action in ("list", "pin", "unpin"))


VERSIONS_BLOCK = "label-studio-yolo versions list --project 7"
README_PIN = "label-studio-yolo versions pin --project 7 --version ..."


def test_the_documented_versions_commands_as_typed_in_an_activated_virtualenv(versions_store, tmp_path):
    """docs/training.md's block (list, pin a version, unpin), then the README's pin with a version of the list."""
    env = user_env(tmp_path / "home", ENTRY_POINT.parent, MODEL_DIR=str(tmp_path / "model-versions"))
    block = fill_in(block_containing(VERSIONS_BLOCK), {"project7-v001-1a2b3c4d": "project7-v001"})

    listed = run_as_user(block, tmp_path, env, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[2] == "project7-v002  [served]", "list, before the pin"
    assert "Project 7 now serves project7-v001 and is pinned to it" in listed.stdout
    assert "Project 7 was pinned to project7-v001; it serves project7-v002" in listed.stdout
    assert (versions_store.current(7).name, versions_store.pinned(7)) == ("project7-v002", None)

    pinned = run_as_user(fill_in(documented(README_PIN), {"...": "project7-v002"}), tmp_path, env, timeout=300)
    assert pinned.returncode == 0, pinned.stderr
    assert (versions_store.current(7).name, versions_store.pinned(7)) == ("project7-v002", "project7-v002")
