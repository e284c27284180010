"""The summary a bulk run prints: predicted, skipped and failed tasks (with reasons), and the speed.

Example:
    >>> print(format_report(report))                                   # doctest: +SKIP
    Project 3 'Street photos', model version yolo11n-5b3a2f0c: 500 tasks
      predicted: 410 (uploaded to Label Studio), 12 of them with no region
      skipped:   37 annotated, 51 already predicted
      failed:    2
        task 17: media not loaded: HTTP 404 for http://...
    412 tasks in 29.1 s: 14.2 tasks/s
"""

from __future__ import annotations

from label_studio_yolo.bulk.project_run import BulkReport
from label_studio_yolo.logsafe import printable

FAILURES_LISTED = 20
"""Failed tasks listed one per line; the rest are counted."""

REASON_CHARS = 200
"""A failure reason longer than this is cut in the summary (the log has it whole)."""


def format_report(report: BulkReport) -> str:
    """The summary as lines of text."""
    totals = report.totals
    where = f"written to {report.dry_run_file}, nothing uploaded" if report.dry_run_file else "uploaded"
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(report.selection.skipped.items())) or "none"
    lines = [
        f"Project {report.project_id} {report.project_title!r}, model version {report.model_version}: "
        f"{report.selection.listed} tasks",
        f"  predicted: {totals.predicted} ({totals.without_regions} with no region), {where}",
        f"  skipped:   {skipped}",
        f"  failed:    {len(totals.failed)}",
    ]
    for task_id, reason in sorted(totals.failed.items())[:FAILURES_LISTED]:
        lines.append(f"    task {task_id}: {printable(reason, REASON_CHARS)}")
    if len(totals.failed) > FAILURES_LISTED:
        lines.append(f"    ... and {len(totals.failed) - FAILURES_LISTED} more (see the log)")
    handled = totals.predicted + len(totals.failed)
    if handled:
        lines.append(f"{handled} tasks in {totals.seconds:.1f} s: {totals.rate:.1f} tasks/s")
    elif not totals.interrupted:
        lines.append("Nothing to predict: every chosen task is skipped (see above).")
    if totals.upload_error:
        lines.append(f"Stopped, predictions not stored: {totals.upload_error}")
        lines.append("Run the same command again to continue once Label Studio takes predictions again.")
    elif totals.interrupted:
        lines.append("Interrupted: run the same command again to predict the remaining tasks.")
    elif totals.failed:
        lines.append("Run the same command again to retry the failed tasks.")
    return "\n".join(lines)
