"""Memory of decoding several huge images at once, with and without the decode budget (``MEDIA_DECODE_BYTES``).

Each row runs in a fresh process: ``--copies`` threads each decode the same image (a solid ``--side`` x ``--side``
PNG or AVIF, a few KB that hold ~100 Mpx, what an attacker sends) through the backend's loader at once. Prints the
process's peak memory above its start, what it still holds once the pixels are dropped, and wall and CPU seconds.

Usage:
    .venv/bin/python -m benchmarks.decode_memory --side 9999 --copies 4
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from PIL import Image


def image_uri(fmt: str, side: int) -> str:
    """A solid ``side`` x ``side`` image in ``fmt`` as a ``data:`` URI."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def measure(uri: str, copies: int, budget: int | None) -> dict[str, float]:
    """Decode ``uri`` in ``copies`` threads at once in this process; memory in MiB, time in seconds."""
    from label_studio_yolo.errors import MediaError
    from label_studio_yolo.media.loader import ImageLoader, MediaSettings

    loader = ImageLoader(MediaSettings(max_pixels=10**8, max_bytes=10**9, decode_bytes=budget))
    start = psutil.Process().memory_info().rss
    started, cpu = time.perf_counter(), time.process_time()

    def decode(_: int) -> int:
        try:
            return int(loader.load_pixels(uri).nbytes > 0)
        except MediaError:
            return 0

    with ThreadPoolExecutor(copies) as pool:
        decoded = sum(pool.map(decode, range(copies)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    held = psutil.Process().memory_info().rss
    return {
        "decoded": decoded,
        "peak": (peak - start) / 2**20,
        "held": (held - start) / 2**20,
        "wall": wall,
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=9999, help="width and height of the image (default: 9999)")
    parser.add_argument("--copies", type=int, default=4, help="images decoded at once (default: 4)")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # a row run in a process of its own: FILE:BUDGET
    parser.add_argument("--make", help=argparse.SUPPRESS)  # FORMAT:FILE, made in a process of its own
    args = parser.parse_args()
    if args.make:
        fmt, path = args.make.split(":", 1)
        Path(path).write_text(image_uri(fmt, args.side))
        return
    if args.row:
        path, budget = args.row.rsplit(":", 1)
        print(json.dumps(measure(Path(path).read_text(), args.copies, int(budget) or None)))
        return
    from label_studio_yolo.settings import DEFAULT_DECODE_BYTES as default

    print(f"{args.copies} decodes at once of a solid {args.side}x{args.side} image, each row in a fresh process")
    with tempfile.TemporaryDirectory() as folder:
        for fmt in ("PNG", "AVIF"):
            uri = Path(folder) / f"image.{fmt.lower()}.txt"
            # Made in a process of its own: a child's peak memory starts from its parent's at the fork.
            run_self(["--side", str(args.side), "--make", f"{fmt}:{uri}"])
            for name, budget in (("no budget", 0), (f"default budget ({default / 2**20:,.0f} MiB)", default)):
                row = json.loads(
                    run_self(["--side", str(args.side), "--copies", str(args.copies), "--row", f"{uri}:{budget}"])
                )
                print_row(fmt, name, row, args.copies)


def run_self(arguments: list[str]) -> str:
    """This benchmark in a new process with ``arguments``; its output."""
    command = [sys.executable, "-m", "benchmarks.decode_memory", *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603 (this module)


def print_row(fmt: str, name: str, row: dict[str, float], copies: int) -> None:
    print(
        f"  {fmt:4} {name:26} decoded {row['decoded']:.0f}/{copies}   peak +{row['peak']:6,.0f} MiB   "
        f"held after +{row['held']:6,.0f} MiB   {row['wall']:5.1f} s wall, {row['cpu']:5.1f} CPU-s"
    )


if __name__ == "__main__":
    main()
