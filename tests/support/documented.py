"""Every command the project tells a user to type, read from where it is written, and a way to run it as a user does.

A command is documented by: a line of a ``bash`` block in the README or ``docs/`` (continuation lines joined); an
inline code span there that starts with a program a user runs (``make run``, ``label-studio-yolo versions list
--project 7``); a ``.PHONY`` target of the Makefile; the Dockerfile's ``CMD`` and ``HEALTHCHECK``; the ``command``
and health check of each docker-compose service built from this repository; and the ``command``/``args`` and exec
probes of each Kubernetes container running its image.

Tests take the text they run from :func:`documented` (so a changed document changes what is tested, or fails it) and
run it with :func:`run_as_user`: through ``bash``, in a process of its own, with the environment a user's shell has
(no pytest variables, a home of its own), after replacing the document's placeholders, each of which must be there.
``tests/test_documented_commands.py`` checks that each documented command is run by a test.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.processes import wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
MARKDOWN = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
KUBERNETES = ROOT / "deploy" / "kubernetes"
IMAGE_NAME = "label-studio-yolo-backend"
"""The image this repository builds (docker-compose.yml, deploy/kubernetes/kustomization.yaml)."""

SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
PROGRAMS = (
    "make",
    "label-studio-yolo",
    "label-studio-ml",
    "python",
    "rq",
    "gunicorn",
    "docker",
    "kubectl",
    "curl",
    "bash",
    "pip",
    "vllm",
    "export",
)
"""First words that make an inline code span a command (``.venv/bin/<program>`` and ``VAR=value <program>`` too)."""

USER_SHELL_DROPS = ("PYTEST_", "YOLO_CONFIG_DIR", "VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
"""Variables of the test process that a user's shell does not have (prefixes): pytest's (``PYTEST_CURRENT_TEST``
makes ultralytics believe tests are running, which changes where it writes and what it sends), what ``make test``
exports, and a virtualenv's."""


@dataclass(frozen=True)
class DocumentedCommand:
    """A command as written, and where: ``README.md:12``, ``Dockerfile CMD``, ``docker-compose.yml worker``."""

    text: str
    where: str


def documented_commands() -> list[DocumentedCommand]:
    """Every documented command, in the order of the files above."""
    found: list[DocumentedCommand] = []
    for path in MARKDOWN:
        found += markdown_commands(path.read_text(), path.relative_to(ROOT).as_posix())
    found += _makefile_targets()
    found += _dockerfile_commands()
    found += _compose_commands()
    found += _kubernetes_commands()
    return found


def documented(text: str) -> str:
    """``text``, after checking that the documentation tells users to type exactly that command."""
    places = [command.where for command in documented_commands() if command.text == text]
    assert places, f"No document tells users to type {text!r} (any more): update the test to what the documents say"
    return text


def block_containing(text: str) -> str:
    """The whole ``bash`` block of the README or docs/ that holds the documented command ``text``, as a script."""
    documented(text)
    block = shell_block_of(text)
    assert block is not None, f"{text!r} is documented, but not in a bash block"
    return block


def shell_block_of(text: str) -> str | None:
    """The ``bash`` block of the README or docs/ with the command ``text`` among its commands, if one has it."""
    for path in MARKDOWN:
        for block in _shell_blocks(path.read_text()):
            if text in block_commands(block):
                return block
    return None


def block_commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\s*\\\n\s*", " ", block)
    lines = (re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def fill_in(text: str, placeholders: Mapping[str, str]) -> str:
    """``text`` with each placeholder the document uses (an address, a project id, ``...``) replaced by the value a
    user would type; every placeholder must occur."""
    for placeholder, value in placeholders.items():
        assert placeholder in text, f"{placeholder!r} is no longer in {text!r}: update the test"
        text = text.replace(placeholder, value)
    return text


def user_env(home: Path, path_first: Path | None = None, **variables: str) -> dict[str, str]:
    """The environment of a user's shell on this machine: this process's without what pytest and the tests add, a
    ``HOME`` of its own, ``path_first`` (an activated virtualenv's ``bin``) first on ``PATH``, and ``variables``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(USER_SHELL_DROPS)}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env.pop("XDG_CONFIG_HOME", None)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **variables}


def run_as_user(script: str, cwd: Path, env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (one command or a whole block) with ``bash -e``, as typed into a terminal; output captured."""
    return subprocess.run(  # documented commands, run on purpose
        ["bash", "-e", "-c", script], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def running_as_user(script: str, cwd: Path, env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a documented command that keeps running (a server, a worker) until the block ends, its output in ``log``;
    then stop its whole process group as Ctrl-C in the terminal does (killed if it is still there after 30 s)."""
    with log.open("wb") as output:
        process = subprocess.Popen(  # documented commands, run on purpose
            ["bash", "-e", "-c", script],
            cwd=cwd,
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        _interrupt(process)


@contextmanager
def serving_as_user(
    script: str, health_url: str, cwd: Path, env: Mapping[str, str], log: Path, timeout: float = 180.0
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`running_as_user` for a command that serves: the block starts once ``health_url`` answers 200."""
    with running_as_user(script, cwd, env, log) as process:
        wait_until_healthy(health_url, process, log, timeout)
        yield process


@contextmanager
def no_new_runs_folder(*folders: Path) -> Iterator[None]:
    """Fail if the block leaves a new ``runs/`` (or new files in an existing one) in any of ``folders``: ultralytics
    writes its results there when it takes a process for its own command line."""
    before = {folder: _files(folder / "runs") for folder in folders}
    yield
    for folder, files in before.items():
        added = _files(folder / "runs") - files
        assert not added, f"{len(added)} files written under {folder / 'runs'}, e.g. {sorted(added)[:3]}"


def _files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()} if folder.is_dir() else set()


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def markdown_commands(text: str, name: str) -> list[DocumentedCommand]:
    """The commands of a Markdown page ``name``: every command of its ``bash`` blocks, then its inline commands."""
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if match.group(1) in SHELL_BLOCKS:
            line = text.count("\n", 0, match.start()) + 1
            found += [DocumentedCommand(command, f"{name}:{line}") for command in block_commands(match.group(2))]
    prose = re.sub(r"^```.*?^```", lambda block: "\n" * block.group(0).count("\n"), text, flags=re.S | re.M)
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        span = " ".join(match.group(1).split())
        if _is_command(span):
            found.append(DocumentedCommand(span, f"{name}:{prose.count(chr(10), 0, match.start()) + 1}"))
    return found


def _shell_blocks(text: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M) if m.group(1) in SHELL_BLOCKS]


def _is_command(span: str) -> bool:
    try:
        words = shlex.split(span)
    except ValueError:  # an unclosed quote: prose, not a command
        return False
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0], re.S):
        words = words[1:]  # VAR=value before the program
    if len(words) < 2:
        return False  # a program's name alone (`gunicorn`, `pip`) is a name, not a command
    program = words[0].removeprefix(".venv/bin/")
    return program in PROGRAMS


def _makefile_targets() -> list[DocumentedCommand]:
    text = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M)
    assert phony, "the Makefile declares its targets in .PHONY"
    return [DocumentedCommand(f"make {target}", "Makefile .PHONY") for target in phony.group(1).split()]


def _dockerfile_commands() -> list[DocumentedCommand]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        instruction = line.strip()
        if instruction.startswith("CMD "):
            found.append(DocumentedCommand(_exec_form(instruction.removeprefix("CMD ")), "Dockerfile CMD"))
        elif instruction.startswith("HEALTHCHECK "):
            command = instruction.split(" CMD ", 1)[1]
            found.append(DocumentedCommand(_exec_form(command), "Dockerfile HEALTHCHECK"))
    return found


def _exec_form(command: str) -> str:
    """A Dockerfile command in exec form (a JSON list) or shell form, as one command line."""
    command = command.strip()
    return shlex.join(yaml.safe_load(command)) if command.startswith("[") else command


def _compose_commands() -> list[DocumentedCommand]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    found = []
    for name, service in compose["services"].items():
        if "build" not in service:
            continue  # another project's image (Redis)
        if "command" in service:
            command = service["command"]
            text = command if isinstance(command, str) else shlex.join(command)
            found.append(DocumentedCommand(text, f"docker-compose.yml {name}"))
        test = service.get("healthcheck", {}).get("test")
        if test and test[0] in ("CMD", "CMD-SHELL"):
            text = test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])
            found.append(DocumentedCommand(text, f"docker-compose.yml {name} healthcheck"))
    return found


def _kubernetes_commands() -> list[DocumentedCommand]:
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            for container in _containers(document):
                if IMAGE_NAME not in container.get("image", ""):
                    continue
                where = f"{path.relative_to(ROOT).as_posix()} {container['name']}"
                command = [*container.get("command", []), *container.get("args", [])]
                if command:
                    found.append(DocumentedCommand(shlex.join(command), where))
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    exec_command = container.get(probe, {}).get("exec", {}).get("command")
                    if exec_command:
                        found.append(DocumentedCommand(shlex.join(exec_command), f"{where} {probe}"))
    return found


def _containers(document: object) -> list[dict[str, object]]:
    if not isinstance(document, dict):
        return []
    spec = document.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]
