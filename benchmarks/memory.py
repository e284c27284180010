"""Memory (process-tree RSS and PSS: warm, peak, at start-up) and speed of ``/predict`` servers, in one run.

Each turn measures every row once; per row it prints tasks/s of one ``/predict`` of 32 tasks (median over turns), its
ratio to Label Studio's official YOLO example and to the raw loop (turn by turn), cores busy (the tree's CPU seconds
over wall seconds), the tree's RSS just before the turn (warm) and its peak (sampled every 25 ms), its peak PSS
(every 200 ms; shared pages counted once), and its peak RSS/PSS at start-up: from launch until ``/setup`` and a
warm-up (4 tasks, then each alone, twice) are answered. The tree: the gunicorn master and all its descendants.

Rows: our backend with default settings (OpenVINO; started first with no export beside the weights, then with it on
disk) and with ``INFERENCE_RUNTIME=pytorch``, ``TORCH_THREADS=--threads``; with ``--official DIR`` the official
example as its start.sh runs it (``gunicorn --workers 1 --threads 4 --timeout 0 _wsgi:app``, cwd and PYTHONPATH
``DIR``, this venv's gunicorn), as is and with ``--threads`` torch threads; the raw ultralytics loop
(``model.predict(path)`` per local photo, PyTorch, ``--threads`` threads) in a child process. Then our default
row's boxes against the official example's and the raw loop's: worst IoU of matched boxes.

The official example (``DIR``: ``label_studio_ml/examples/yolo`` in a label-studio-ml-backend checkout) needs:
- the checkout's ``label_studio_ml`` (put on PYTHONPATH here; this venv's label-studio-ml 1.0.9 lacks ``.response``)
  and ``semver``, ``torchmetrics<1.8``, ``lightning-utilities``, missing here: ``pip install --no-deps --target
  /tmp/official-deps ...`` and put that folder on PYTHONPATH (the servers inherit it);
- for plain http task URLs, no Label Studio settings: with LABEL_STUDIO_URL, LABEL_STUDIO_HOST and
  LABEL_STUDIO_API_KEY empty it makes no SDK client and fetches the URL with ``requests``, caching the file in
  ``$XDG_CACHE_HOME/label-studio`` (set to the scratch folder; later turns read the cache);
- yolov8m.pt, yolov8n.pt and yolov8n-{seg,cls,pose,obb}.pt in MODEL_ROOT, which its import loads (downloading the
  missing): same-architecture stand-ins with random weights go there, beside our weights, which the config names
  in ``model_path`` (ALLOW_CUSTOM_MODEL_PATH=true).
Its torch threads: ultralytics' select_device sets ``torch.set_num_threads(min(8, os.cpu_count() - 1))`` when the
first predictor is built (1 on 2 cores), overriding OMP_NUM_THREADS; no environment variable changes that (Python
3.11 has no PYTHON_CPU_COUNT), so its threads row sets ``ultralytics.utils.torch_utils.NUM_THREADS`` in a gunicorn
``post_worker_init`` hook (``--config``), leaving its code as it is.

Weights: ``--weights`` (also the repository's tiny test models), default ``yolov8s.yaml`` built with random weights
(80 classes named "0"-"79"; labels are the model's names). Random weights score every box about 0.0002, under the
0.25 the example predicts at: then a copy gets batch-norm statistics re-estimated on the photos and class biases set
to give about 10 candidates over 0.5 (nearly all on bus.jpg, whose class logits spread five times zidane.jpg's).

Usage:
    PYTHONPATH=/tmp/official-deps .venv/bin/python -m benchmarks.memory --weights /tmp/mem/v8s.pt \\
        --official /tmp/official/label_studio_ml/examples/yolo --repeat 3 --threads 2
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from benchmarks.bulk_predict import PHOTOS
from benchmarks.predict_speed import Row, ratios
from conftest import PROJECT_ROOT
from tests.e2e.conftest import backend_server
from tests.support.image_server import serve_files
from tests.support.processes import free_port, running_server
from tests.support.sampling import sampling

TASKS, THRESHOLD, SAMPLE_S, PSS_EVERY = 32, 0.4, 0.025, 8
OFFICIAL_DEFAULTS = ("yolov8m", "yolov8n", "yolov8n-seg", "yolov8n-cls", "yolov8n-pose", "yolov8n-obb")
CONFIG_DIR = str(PROJECT_ROOT / ".cache" / "ultralytics")
THREADS_HOOK = "def post_worker_init(worker):\n    import ultralytics.utils.torch_utils as t\n    t.NUM_THREADS = {}\n"
RAW_CHILD = """import itertools, json, sys
from pathlib import Path
from benchmarks.raw_loops import load_yolo, raw_rate
weights, threads, conf, *paths = sys.argv[1:]
model = load_yolo(Path(weights))
size, images = model.overrides.get("imgsz", 640), [Path(path) for path in paths]
for line in itertools.chain(["turn"], sys.stdin):
    if line.strip() == "turn":
        print(raw_rate(model, images, size, int(threads)), flush=True)
        continue
    found = [model.predict(str(path), imgsz=size, conf=float(conf), verbose=False)[0].boxes for path in images]
    print(json.dumps([[[model.names[int(c)], (x - w / 2) * 100, (y - h / 2) * 100, w * 100, h * 100]
                       for c, (x, y, w, h) in zip(b.cls.tolist(), b.xywhn.tolist())] for b in found]), flush=True)
"""
"""The raw loop's child: loads and prints a warm-up turn's rate, then answers 'turn' (a rate) or 'boxes' (JSON)."""

Box = tuple[str, float, float, float, float]
"""A region: label, x, y, width, height (percent of the image, as Label Studio has them)."""
Tasks = list[dict[str, object]]


@dataclass
class Memory:
    rss: float = 0.0
    pss: float = 0.0


@dataclass
class Line(Row):
    """A row: rates, warm and peak memory and cores busy per turn, the tree's root pid, start-up peaks, boxes."""

    pid: int = 0
    turn: Callable[[], tuple[float, list[list[Box]]]] = lambda: (0.0, [])
    warm: list[Memory] = field(default_factory=list)
    peak: list[Memory] = field(default_factory=list)
    cores: list[float] = field(default_factory=list)
    startup: dict[str, Memory] = field(default_factory=dict)
    boxes: list[list[Box]] = field(default_factory=list)


# --- Process trees ------------------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""  # a process or thread that ended meanwhile


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").glob("*") for child in _read(f"{task}/children").split()]


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children(found[-1])
    return found


def memory(pids: list[int], pss: bool = True) -> Memory:
    """Summed RSS (statm) and, with ``pss``, PSS (smaps_rollup) of ``pids``, in MB."""
    pages = sum(int((_read(f"/proc/{pid}/statm") or "0 0").split()[1]) for pid in pids)
    rollups = [_read(f"/proc/{pid}/smaps_rollup") for pid in pids] if pss else []
    kib = sum(int(text.split("\nPss:")[1].split()[0]) for text in rollups if "\nPss:" in text)
    return Memory(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, kib / 1024)


def cpu_seconds(pids: list[int]) -> float:
    ticks = [_read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()[11:13] for pid in pids]
    return sum(int(value) for pair in ticks for value in pair) / os.sysconf("SC_CLK_TCK")


@contextmanager
def sampled(roots: Callable[[], list[int]]) -> Iterator[Memory]:
    """The peak memory of the trees under ``roots()``, sampled by a thread until the block ends."""
    peak, counts = Memory(), itertools.count()

    def sample() -> None:
        now = memory([pid for root in roots() for pid in tree(root)], pss=next(counts) % PSS_EVERY == 0)
        peak.rss, peak.pss = max(peak.rss, now.rss), max(peak.pss, now.pss)

    with sampling(sample, SAMPLE_S):
        yield peak


# --- Weights ------------------------------------------------------------------------------------------------------


def prepare_weights(source: Path | None, folder: Path) -> Path:
    """The weights in ``folder``: ``source`` copied, or yolov8s built; calibrated when they find no box."""
    from ultralytics import YOLO

    weights = folder / (source.name if source else "yolov8s.pt")
    shutil.copy2(source, weights) if source else YOLO("yolov8s.yaml").save(str(weights))
    if not any(len(YOLO(str(weights)).predict(str(photo), verbose=False)[0].boxes) for photo in PHOTOS):
        calibrate(weights)
    return weights


def calibrate(weights: Path, boxes: int = 10) -> None:
    """Re-estimate batch-norm statistics on the photos, then set the class biases so that the photos have about
    ``boxes`` candidates over 0.5 together."""
    import cv2
    import torch
    from ultralytics import YOLO
    from ultralytics.data.augment import LetterBox

    model, letterbox = YOLO(str(weights)), LetterBox((640, 640), auto=True, stride=32)
    net, heads = model.model.float(), [stage[-1] for stage in model.model.model[-1].cv3]
    inputs = [torch.from_numpy(letterbox(image=cv2.imread(str(p)))[..., ::-1].copy()) for p in PHOTOS]
    for layer in net.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # a plain average over the photos
    logits: list[torch.Tensor] = []
    hooks = [head.register_forward_hook(lambda h, _, out: logits.append(out - h.bias[:, None, None])) for head in heads]
    with torch.no_grad():
        for train in (True, False):
            net.train(train)
            logits.clear()
            for image in inputs:
                net(image.permute(2, 0, 1)[None].float() / 255)
        pooled = torch.cat([each.flatten() for each in logits])
        for head in heads:
            head.bias.fill_(-float(torch.quantile(pooled, 1 - boxes / pooled.numel())))  # logit(0.5) = 0
    for hook in hooks:
        hook.remove()
    model.save(str(weights))
    print(f"{weights.name}: random weights, calibrated to find boxes (batch-norm statistics, class biases)")


def label_config(weights: Path) -> str:
    from ultralytics import YOLO

    labels = "".join(f'<Label value="{name}"/>' for name in YOLO(str(weights)).names.values())
    return (
        f'<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image" '
        f'model_score_threshold="{THRESHOLD}" model_path="{weights.name}">{labels}</RectangleLabels></View>'
    )


# --- Servers ------------------------------------------------------------------------------------------------------


@contextmanager
def ours(models: Path, logs: Path, threads: int, runtime: str = "") -> Iterator[tuple[str, int]]:
    """Our backend on the weights in ``models``, ``threads`` torch threads, ``runtime`` (empty: the default)."""
    logs.mkdir()
    weights = next(models.glob("*.pt")).name
    settings = {"TORCH_THREADS": str(threads), "INFERENCE_RUNTIME": runtime, "YOLO_CONFIG_DIR": CONFIG_DIR}
    with backend_server(models, logs, MODEL_PATH=weights, **settings) as server:  # type: ignore[arg-type]
        assert server.process
        yield server.url, server.process.pid


@contextmanager
def official(folder: Path, models: Path, scratch: Path, threads: int | None) -> Iterator[tuple[str, int]]:
    """The official example as its start.sh runs it (on loopback); ``threads`` sets its torch threads."""
    port, gunicorn = free_port(), str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4", "--timeout", "0"]
    if threads:
        (scratch / "threads.conf.py").write_text(THREADS_HOOK.format(threads))
        command += ["--config", str(scratch / "threads.conf.py")]
    path = os.pathsep.join(filter(None, [str(folder), str(folder.parents[2]), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": path, "MODEL_ROOT": str(models), "ALLOW_CUSTOM_MODEL_PATH": "true", "YOLO_OFFLINE": "1"}
    env |= {"YOLO_CONFIG_DIR": CONFIG_DIR, "XDG_CACHE_HOME": str(scratch / "cache"), "LABEL_STUDIO_API_KEY": ""}
    env |= {"LABEL_STUDIO_URL": "", "LABEL_STUDIO_HOST": ""}
    log, url = scratch / f"official-{port}.log", f"http://127.0.0.1:{port}"
    with running_server([*command, "_wsgi:app"], f"{url}/health", log, env, folder, 300) as process:
        yield url, process.pid


def official_root(weights: Path, folder: Path) -> Path:
    """MODEL_ROOT of the official example: our weights and stand-ins for the models its import loads."""
    from ultralytics import YOLO

    folder.mkdir()
    shutil.copy2(weights, folder / weights.name)
    for name in OFFICIAL_DEFAULTS:
        YOLO(f"{name}.yaml", verbose=False).save(str(folder / f"{name}.pt"))
    return folder


@contextmanager
def raw_child(weights: Path, threads: int) -> Iterator[tuple[subprocess.Popen[str], int]]:
    images = [str(PHOTOS[index % len(PHOTOS)]) for index in range(TASKS)]
    args = [sys.executable, "-c", RAW_CHILD, str(weights), str(threads), str(THRESHOLD), *images]
    pipe = subprocess.PIPE
    process = subprocess.Popen(args, stdin=pipe, stdout=pipe, text=True, cwd=PROJECT_ROOT)  # noqa: S603 (this module)
    try:
        yield process, process.pid
    finally:
        process.kill()
        process.wait()


def ask(process: subprocess.Popen[str], command: str | None) -> str:
    """Send ``command`` (if any) to the raw loop's child; its answer line."""
    assert process.stdin and process.stdout
    if command:
        process.stdin.write(command + "\n")
        process.stdin.flush()
    answer = process.stdout.readline()
    assert answer, "the raw loop's child ended"
    return answer


def predict(url: str, tasks: Tasks, config: str) -> list[list[Box]]:
    """The boxes of one ``/predict`` of ``tasks``, per task."""
    body = {"project": "1.1", "label_config": config, "tasks": tasks}
    results = requests.post(f"{url}/predict", json=body, timeout=600).json().get("results") or []
    assert len(results) == len(tasks), f"{url}: {len(results)} results for {len(tasks)} tasks: {str(results)[:300]}"
    values = [[region["value"] for region in result["result"]] for result in results]
    return [[(v["rectanglelabels"][0], v["x"], v["y"], v["width"], v["height"]) for v in task] for task in values]


def warm_up(url: str, tasks: Tasks, config: str) -> None:
    """/setup, then 4 tasks and those 4 one by one, twice (as benchmarks.predict_speed.warm_up)."""
    requests.post(f"{url}/setup", json={"project": "1.1", "schema": config}, timeout=300)
    for _ in range(2):
        for batch in (tasks[:4], *([task] for task in tasks[:4])):
            predict(url, batch, config)


def timed(url: str, tasks: Tasks, config: str) -> tuple[float, list[list[Box]]]:
    started = time.perf_counter()
    boxes = predict(url, tasks, config)
    assert any(boxes), f"{url} found no boxes"
    return len(tasks) / (time.perf_counter() - started), boxes


def launch(
    stack: ExitStack, row: Line, stage: str, start: AbstractContextManager[Any], warm: Callable[[Any], object]
) -> Any:
    """Start a server (or the raw loop) inside ``stack`` and warm it up, sampling the new process tree's peak."""
    before = set(children(os.getpid()))
    with sampled(lambda: [pid for pid in children(os.getpid()) if pid not in before]) as peak:
        started = stack.enter_context(start)
        warm(started[0])
    row.pid, row.startup[stage] = started[1], peak
    print(f"  {row.name}, {stage}: peak RSS {peak.rss:.0f} MB, PSS {peak.pss:.0f} MB", flush=True)
    return started[0]


def start_rows(stack: ExitStack, args: argparse.Namespace, scratch: Path, tasks: Tasks) -> list[Line]:
    """Every row, started and warmed up (our default twice: without and with the OpenVINO export on disk)."""
    weights = prepare_weights(args.weights, scratch)
    config, models = label_config(weights), scratch / "ours"
    models.mkdir()
    shutil.copy2(weights, models / weights.name)
    rows = [Line("our backend, default (OpenVINO)"), Line("our backend, INFERENCE_RUNTIME=pytorch")]
    servers: list[tuple[Line, str, AbstractContextManager[tuple[str, int]]]] = [
        (rows[0], "first start", ours(models, scratch / "ours-0", args.threads)),
        (rows[0], "second start", ours(models, scratch / "ours-1", args.threads)),
        (rows[1], "start", ours(models, scratch / "ours-2", args.threads, runtime="pytorch")),
    ]
    if args.official:
        root = official_root(weights, scratch / "official")
        for threads in (None, args.threads):
            rows.append(Line("official example" + (f", {threads} torch threads" if threads else "")))
            servers.append((rows[-1], "start", official(args.official, root, scratch, threads)))
    for row, stage, start in servers:
        for export in models.glob("*_openvino_model") if stage == "first start" else []:
            shutil.rmtree(export)
        with ExitStack() as first:
            url = launch(
                first if stage == "first start" else stack, row, stage, start, lambda u: warm_up(u, tasks, config)
            )
        row.turn = functools.partial(timed, url, tasks, config)
    rows.append(Line(f"raw ultralytics loop, PyTorch, {args.threads} threads"))
    process = launch(stack, rows[-1], "start", raw_child(weights, args.threads), lambda p: ask(p, None))
    rows[-1].turn = lambda: (float(ask(process, "turn")), [])
    rows[-1].boxes = [[(str(b[0]), *b[1:]) for b in boxes] for boxes in json.loads(ask(process, "boxes"))]
    return rows


def measure(row: Line) -> None:
    """One turn of ``row``: its rate, cores busy, warm memory and peak memory."""
    pids = tree(row.pid)
    row.warm.append(memory(pids))
    cpu, started = cpu_seconds(pids), time.perf_counter()
    with sampled(lambda: [row.pid]) as peak:
        rate, boxes = row.turn()
    row.cores.append((cpu_seconds(tree(row.pid)) - cpu) / (time.perf_counter() - started))
    row.rates.append(rate)
    row.peak.append(peak)
    row.boxes = row.boxes or boxes


# --- Report -------------------------------------------------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    width = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    height = min(a[2] + a[4], b[2] + b[4]) - max(a[2], b[2])
    inter = max(width, 0.0) * max(height, 0.0)
    return inter / (a[3] * a[4] + b[3] * b[4] - inter) if inter else 0.0


def agreement(ours: list[list[Box]], theirs: list[list[Box]]) -> str:
    """Worst IoU of our boxes matched to theirs (same label, best IoU at least 0.5) and the boxes left unmatched."""
    matched, lone = [], [0, 0]
    for side, (boxes, others) in enumerate(((ours, theirs), (theirs, ours))):
        for mine, other in zip(boxes, others, strict=True):
            for box in mine:
                best = max((iou(box, each) for each in other if each[0] == box[0]), default=0.0)
                matched += [best] if best >= 0.5 and side == 0 else []
                lone[side] += best < 0.5
    worst = f"{min(matched):.6f}" if matched else "-"
    return f"worst IoU {worst} over {len(matched)} matched of our {sum(map(len, ours))}; unmatched {lone[0]}/{lone[1]}"


def report(args: argparse.Namespace, rows: list[Line]) -> None:
    named = {row.name: row for row in rows}
    bases = [named.get("official example"), named.get("official example, 2 torch threads"), rows[-1]]
    print(f"\n{TASKS} tasks (bus.jpg, zidane.jpg), {args.weights or 'yolov8s.yaml'}, --threads {args.threads}, median")
    print(f"of {args.repeat} turn(s); MB of each process tree (warm: median, peak: max over turns)")
    print(f"{'':41} tasks/s x official x off. 2t  x raw cores warm RSS peak RSS peak PSS  start-up peak RSS/PSS")
    for row in rows:
        versus = [f"{statistics.median(ratios(row, base)):.2f}x" if base else "-" for base in bases]
        warm, peak = (
            statistics.median(m.rss for m in row.warm),
            Memory(max(m.rss for m in row.peak), max(m.pss for m in row.peak)),
        )
        start = ", ".join(f"{stage} {m.rss:.0f}/{m.pss:.0f}" for stage, m in row.startup.items())
        numbers = (
            f"{statistics.median(row.rates):7.2f} {versus[0]:>10} {versus[1]:>9} {versus[2]:>6} "
            f"{statistics.median(row.cores):5.2f}"
        )
        print(f"{row.name:41} {numbers} {warm:8.0f} {peak.rss:8.0f} {peak.pss:8.0f}  {start}")
    for base in filter(None, [bases[0], bases[2]]):
        print(f"boxes of our default against {base.name}: {agreement(rows[0].boxes, base.boxes)} (ours/theirs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="YOLO weights (default: yolov8s.yaml, random weights)")
    parser.add_argument(
        "--official", type=Path, help="label_studio_ml/examples/yolo in a label-studio-ml-backend checkout"
    )
    parser.add_argument("--repeat", type=int, default=3, help="turns; medians are shown (default: 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    args = parser.parse_args()
    if args.official and not (args.official.resolve().parents[2] / "label_studio_ml" / "response.py").exists():
        parser.error(f"{args.official} is not label_studio_ml/examples/yolo in a checkout of label-studio-ml-backend")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, serve_files() as storage, ExitStack() as stack:
        photos = [PHOTOS[index % len(PHOTOS)] for index in range(TASKS)]
        tasks: Tasks = [
            {"id": n, "data": {"image": storage.add(f"/{n}-{photo.name}", photo.read_bytes())}}
            for n, photo in enumerate(photos)
        ]
        rows = start_rows(stack, args, Path(folder), tasks)
        for _ in range(args.repeat):
            for row in rows:
                measure(row)
    report(args, rows)
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
