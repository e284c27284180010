"""What a person wants to know about training: each project's versions and its jobs.

Served at ``GET /training/status[?project=N]`` and printed by ``python -m label_studio_yolo.training.status``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.scheduler import redis_jobs
from label_studio_yolo.versions import VersionInfo, VersionStore


def versions_status(store: VersionStore, project: int) -> dict[str, Any]:
    """The served version, the pinned one (a name, ``"base"`` or None) and every stored version's summary."""
    current = store.current(project)
    return {
        "current": current.name if current else None,
        "pinned": store.pinned(project),
        "versions": [_version_summary(v) for v in store.versions(project)],
    }


def _version_summary(version: VersionInfo) -> dict[str, Any]:
    """A version's lineage, task, data and the gate's verdict: every label's old and new score, the decision, why."""
    plot = version.path / "results.png"
    meta = version.meta
    return {
        "version": version.name,
        "parent": meta.get("parent"),
        "annotations": meta.get("annotations"),
        "task": meta.get("task", "detect"),
        "metric": meta.get("metric"),
        "gate": meta.get("gate"),
        "timings": meta.get("timings"),
        "plot": str(plot) if plot.exists() else None,
    }


def main() -> None:
    """CLI: print versions and jobs of one project, or of every project in MODEL_DIR."""
    parser = argparse.ArgumentParser(description="Training status of the YOLO backend")
    parser.add_argument("--project", type=int, help="project id (default: every project in MODEL_DIR)")
    args = parser.parse_args()
    settings = BackendSettings()
    store = VersionStore(settings.model_dir)
    redis = None
    if settings.redis_url:
        from redis import Redis

        redis = Redis.from_url(settings.redis_url)
    projects = [args.project] if args.project else store.projects()
    report = {
        str(project): {
            **versions_status(store, project),
            "jobs": redis_jobs(redis, project, settings.training_queue) if redis else [],
        }
        for project in projects
    }
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
