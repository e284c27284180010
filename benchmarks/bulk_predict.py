"""Throughput of ``label-studio-yolo predict`` against the raw ultralytics loop on the same images, in one run.

Starts a throwaway Label Studio (``.venv-label-studio``, installed by ``make test``), uploads real photos as tasks
(ultralytics' own ``bus.jpg`` and ``zidane.jpg``, alternating) and prints tasks per second for:

- **raw ultralytics**: ``YOLO(weights).predict(path)`` one local file at a time, the way Label Studio's own YOLO
  example predicts, with the same torch threads;
- **bulk, dry run**: the command end to end without uploading: images downloaded from Label Studio, predicted,
  written to JSON;
- **bulk, upload**: the same, uploading the predictions to Label Studio in batches.

The rates count the prediction loop; start-up (connecting, listing the project, loading the weights) is printed
apart. The default weights are the repository's tiny test model asked at 640 px, which costs what yolo11n costs at
640 px; pass ``--weights`` for a real model.

Usage:
    .venv/bin/python -m benchmarks.bulk_predict --tasks 100 --threads 2
"""

from __future__ import annotations

import argparse
import base64
import resource
import shutil
import tempfile
import time
from pathlib import Path

import ultralytics

from benchmarks.raw_loops import load_yolo, raw_rate
from conftest import BOXES_CONFIG
from label_studio_yolo.bulk.project_run import BulkOptions, BulkReport, predict_project
from label_studio_yolo.prediction.project import build_project_predictor
from label_studio_yolo.settings import BackendSettings
from tests.support.label_studio import PROJECT_ROOT, LabelStudioServer, running_label_studio, upload_files

PHOTOS = [Path(ultralytics.__file__).parent / "assets" / name for name in ("bus.jpg", "zidane.jpg")]
"""Real photos shipped inside the ultralytics package (810x1080 and 1280x720)."""

DEFAULT_WEIGHTS = PROJECT_ROOT / "tests" / "assets" / "models" / "tiny-boxes-v1-60ep.pt"


def bulk_run(server: LabelStudioServer, project_id: int, settings: BackendSettings, dry_run: Path | None) -> BulkReport:
    options = BulkOptions(
        url=server.url,
        api_key=server.token,
        project_id=project_id,
        dry_run_file=dry_run,
        show_progress=False,
        settings=settings,
    )
    return predict_project(options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100, help="tasks in the project (default: 100)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--imgsz", type=int, default=640, help="inference size (default: 640)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="YOLO weights (default: tiny test model)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        images = [PHOTOS[index % len(PHOTOS)] for index in range(args.tasks)]
        (folder / "models").mkdir()
        weights = folder / "models" / args.weights.name  # its OpenVINO export is made beside it, not in the repo
        shutil.copy2(args.weights, weights)
        settings = BackendSettings(
            model_root=weights.parent,
            model_path=weights.name,
            model_imgsz=args.imgsz,
            torch_threads=args.threads,
            model_dir=folder / "versions",
        )
        (folder / "ls").mkdir()
        with running_label_studio(folder / "ls") as server:
            project = server.client.projects.create(title="Bulk benchmark", label_config=BOXES_CONFIG)
            upload_files(server, project.id, images)
            raw = raw_rate(load_yolo(weights), images, args.imgsz, args.threads)
            photo = "data:image/jpeg;base64," + base64.b64encode(images[0].read_bytes()).decode()
            warm_up = [{"id": n, "data": {"image": photo}} for n in range(2)]
            build_project_predictor(BOXES_CONFIG, project.id, settings).predict(warm_up)  # export, lane copies
            started = time.perf_counter()
            dry = bulk_run(server, project.id, settings, folder / "dry-run.json")
            dry_wall = time.perf_counter() - started
            started = time.perf_counter()
            upload = bulk_run(server, project.id, settings, None)
            upload_wall = time.perf_counter() - started

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.tasks} tasks, {args.weights.name} at {args.imgsz} px, {args.threads} torch threads")
    print(f"  raw ultralytics loop (local files): {raw:6.1f} tasks/s   1.00x")
    for name, report, wall in (("bulk, dry run", dry, dry_wall), ("bulk, upload", upload, upload_wall)):
        rate = report.totals.rate
        print(
            f"  {name + ':':34} {rate:6.1f} tasks/s   {rate / raw:.2f}x   "
            f"(start-up {wall - report.totals.seconds:.1f} s, {report.totals.predicted} predicted)"
        )
    print(f"  peak RSS {peak_rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
