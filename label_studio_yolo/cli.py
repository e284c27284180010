"""The ``label-studio-yolo`` command (also ``python -m label_studio_yolo``).

``label-studio-yolo predict`` pre-labels a whole project from the command line, with the same model, settings and
regions as the backend, and uploads the results as predictions (see :mod:`label_studio_yolo.bulk`).

Example:
    $ export LABEL_STUDIO_API_KEY=...        # legacy token or personal access token
    $ label-studio-yolo predict --url http://localhost:8080 --project 3 --dry-run predictions.json
    $ label-studio-yolo predict --url http://localhost:8080 --project 3
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from label_studio_yolo.bulk.connection import ConnectionProblem
from label_studio_yolo.bulk.project_run import DEFAULT_BATCH_SIZE, BulkOptions, predict_project
from label_studio_yolo.bulk.report import format_report
from label_studio_yolo.bulk.selection import TaskFilter
from label_studio_yolo.label_config import LabelConfigError
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.weights import WeightsError

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
    predict.add_argument("--project", type=int, required=True, help="project id (the number in the project's URL)")
    predict.add_argument("--from-task", type=int, metavar="ID", help="first task id to predict (inclusive)")
    predict.add_argument("--to-task", type=int, metavar="ID", help="last task id to predict (inclusive)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    return predict_command(args)


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


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
