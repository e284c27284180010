"""The ``label-studio-yolo`` command (also ``python -m label_studio_yolo``).

``label-studio-yolo predict`` pre-labels a whole project from the command line, with the same model, settings and
regions as the backend, and uploads the results as predictions (see :mod:`label_studio_yolo.bulk`).
``label-studio-yolo versions list|pin|unpin`` shows and chooses the version a project serves, in ``MODEL_DIR``
(the shared volume): every backend process serves the choice on its next request.

Example:
    $ export LABEL_STUDIO_API_KEY=...        # legacy token or personal access token
    $ label-studio-yolo predict --url http://localhost:8080 --project 3 --dry-run predictions.json
    $ label-studio-yolo predict --url http://localhost:8080 --project 3
    $ label-studio-yolo versions pin --project 3 --version base
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from label_studio_yolo.bulk.connection import ConnectionProblem
from label_studio_yolo.bulk.project_run import DEFAULT_BATCH_SIZE, BulkOptions, predict_project
from label_studio_yolo.bulk.report import format_report
from label_studio_yolo.bulk.selection import TaskFilter
from label_studio_yolo.errors import LabelConfigError, WeightsError
from label_studio_yolo.logging_setup import hide_secrets_in
from label_studio_yolo.projects import project_id
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.versions import BASE, VersionNotFound, VersionStore

EXIT_OK = 0
"""Every chosen task was predicted (or there was nothing to do)."""

EXIT_TASKS_FAILED = 1
"""The run finished, but some tasks got no prediction (the summary lists why)."""

EXIT_ERROR = 2
"""Nothing was done, or the run stopped: Label Studio, the key, the project, the config or the weights."""

EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C; what was predicted before is stored."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="label-studio-yolo", description="Ultralytics YOLO for Label Studio.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="pre-label a project's tasks and upload the predictions",
        description="Predict the tasks of a Label Studio project with the backend's model and settings (MODEL_PATH, "
        "MODEL_ROOT, MODEL_DIR, ... from the environment or .env) and upload them as predictions. Tasks a person "
        "annotated are skipped, and so are tasks that already hold a prediction of the same model version: "
        "running it again continues an interrupted run.",
    )
    predict.add_argument("--url", help="Label Studio's base URL (default: LABEL_STUDIO_URL)")
    predict.add_argument(
        "--api-key", help="legacy token or personal access token (default: LABEL_STUDIO_API_KEY; prefer the variable)"
    )
    predict.add_argument(
        "--project", type=_positive, required=True, help="project id (the number in the project's URL)"
    )
    predict.add_argument("--from-task", type=_positive, metavar="ID", help="first task id to predict (inclusive)")
    predict.add_argument("--to-task", type=_positive, metavar="ID", help="last task id to predict (inclusive)")
    predict.add_argument(
        "--include-annotated", action="store_true", help="also predict tasks a person annotated or skipped"
    )
    predict.add_argument(
        "--unpredicted-only",
        action="store_true",
        help="skip tasks with any prediction (default: only those with one of the current model version)",
    )
    predict.add_argument("--limit", type=_positive, metavar="N", help="predict at most N tasks")
    predict.add_argument(
        "--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, metavar="N", help="tasks per upload (default: 32)"
    )
    predict.add_argument(
        "--dry-run", type=Path, metavar="FILE", help="write the predictions to FILE (JSON) and upload nothing"
    )
    predict.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: only on a terminal; otherwise a log line per batch)",
    )
    predict.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    predict.set_defaults(handler=predict_command)
    _add_versions_parser(commands)
    return parser


def _add_versions_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``versions list``, ``versions pin`` and ``versions unpin``."""
    versions = commands.add_parser(
        "versions",
        help="list a project's trained versions, pin one (or the base weights) or unpin",
        description="The trained versions of a project in MODEL_DIR (from the environment or .env). A pinned version "
        "is served and kept: training still stores new versions but does not publish them until unpin. Every "
        "backend process serves the change on its next request.",
    )
    actions = versions.add_subparsers(dest="action", required=True, metavar="{list,pin,unpin}")
    listing = actions.add_parser("list", help="the project's versions, oldest first, with the served and pinned one")
    pin = actions.add_parser("pin", help="serve VERSION (or 'base': MODEL_PATH) and keep it until unpin")
    unpin = actions.add_parser(
        "unpin", help="let training publish again and serve the newest version it published (else the base weights)"
    )
    for action, handler in ((listing, versions_list), (pin, versions_pin), (unpin, versions_unpin)):
        action.add_argument("--project", type=_positive, required=True, help="project id")
        action.set_defaults(handler=handler)
    pin.add_argument("--version", required=True, metavar="NAME", help=f"a version name from `list`, or '{BASE}'")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    hide_secrets_in(logging.getLogger())
    return int(args.handler(args))


def predict_command(args: argparse.Namespace) -> int:
    """``label-studio-yolo predict``: print the summary, return the exit code."""
    settings = BackendSettings()
    url = args.url or settings.label_studio_url
    if not url:
        return _fail("No Label Studio URL: pass --url or set LABEL_STUDIO_URL")
    if args.dry_run is not None and not args.dry_run.parent.is_dir():
        return _fail(f"Cannot write the dry run's file {args.dry_run}: its folder does not exist")
    options = BulkOptions(
        url=url,
        api_key=args.api_key or settings.label_studio_api_key or "",
        project_id=args.project,
        task_filter=TaskFilter(args.from_task, args.to_task, args.include_annotated, args.unpredicted_only),
        dry_run_file=args.dry_run,
        batch_size=args.batch_size,
        limit=args.limit,
        show_progress=args.progress,
        settings=settings,
    )
    try:
        with logging_redirect_tqdm():
            report = predict_project(options)
    except (ConnectionProblem, LabelConfigError, WeightsError) as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        print("Interrupted before any prediction was made.", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_report(report))
    if report.totals.upload_error:
        return EXIT_ERROR
    if report.totals.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_TASKS_FAILED if report.totals.failed else EXIT_OK


def versions_list(args: argparse.Namespace) -> int:
    """``label-studio-yolo versions list``: one line per version, oldest first, ``base`` first; marks what is
    served and pinned."""
    settings = BackendSettings()
    store = VersionStore(settings.model_dir)
    current, pinned = store.current(args.project), store.pinned(args.project)
    served = current.name if current else BASE
    names = [BASE, *(version.name for version in store.versions(args.project))]
    for name in names:
        marks = [mark for mark, chosen in (("served", served), ("pinned", pinned)) if chosen == name]
        described = f"{name} (MODEL_PATH {settings.model_path})" if name == BASE else name
        print(f"{described}  [{', '.join(marks)}]" if marks else described)
    return EXIT_OK


def versions_pin(args: argparse.Namespace) -> int:
    """``label-studio-yolo versions pin``: serve the version (or the base weights) and keep it."""
    try:
        VersionStore(BackendSettings().model_dir).pin(args.project, args.version)
    except VersionNotFound as error:
        return _fail(str(error))
    served = "the base weights (MODEL_PATH)" if args.version == BASE else args.version
    print(
        f"Project {args.project} now serves {served} and is pinned to it: training stores new versions without "
        f"publishing them until `label-studio-yolo versions unpin --project {args.project}`."
    )
    return EXIT_OK


def versions_unpin(args: argparse.Namespace) -> int:
    """``label-studio-yolo versions unpin``: training may publish again; the newest version it published is served."""
    store = VersionStore(BackendSettings().model_dir)
    removed = store.unpin(args.project)
    current = store.current(args.project)
    served = current.name if current else BASE
    state = f"was pinned to {removed}" if removed else "was not pinned"
    print(f"Project {args.project} {state}; it serves {served} until training publishes a new version.")
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _positive(text: str) -> int:
    """A positive whole number in ASCII digits below 10**18 (ids are 64-bit keys in Label Studio): not ``٣``,
    ``1_000`` or ``+3``, which ``int()`` takes, nor 300 digits, which end in an OSError as a folder name."""
    number = project_id(text) if re.fullmatch(r"[0-9]+", text, re.ASCII) else None
    if number is None:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10**18 - 1 in digits 0-9, not {text!r}")
    return number
