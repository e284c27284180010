"""Image decoding before and after it decoded once, refused oversized images from their header and bounded data:
URIs, in one run.

Prints:

- **decode time**: wall and CPU seconds (``time.process_time``) of ``old_decode_pixels`` (what the backend did
  before: Pillow's ``getexif()``, which decodes a whole PNG, then OpenCV's decode) and of
  :func:`~label_studio_yolo.media.decode.decode_pixels`, for a large PNG and a large JPEG (``bus.jpg`` scaled to a phone
  camera's 3024 x 4032) and the photo itself; turns alternate old and new, and the median of ``--repeat`` turns is
  shown, so a slow spell of the machine hits both alike;
- **peak memory** (growth of the peak resident memory, each in a fresh process) of a 12500 x 12500 PNG (zeros: a
  455 KB file), which the old way decodes and the new one refuses from its header (MEDIA_MAX_PIXELS), and of a
  percent-encoded ``data:`` URI decoded by ``urllib.request.urlopen`` (before) and by
  :func:`~label_studio_yolo.media.data_uri.decode_data_uri`.

Usage:
    .venv/bin/python -m benchmarks.decode_speed --repeat 7
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import ultralytics
from PIL import ExifTags, Image

from label_studio_yolo.media.decode import TRANSPOSED, Pixels, decode_pixels
from tests.support.peak_memory import run_probe

PHOTO = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
"""A real photo shipped inside ultralytics (810 x 1080)."""

PHONE_SIZE = (3024, 4032)
"""A 12-megapixel phone photo, portrait."""

HUGE_SIDE = 12500
"""Sides of the huge PNG (156 megapixels)."""

Decoder = Callable[[bytes], Pixels]


def old_decode_pixels(data: bytes) -> Pixels:
    """``decode_pixels`` as it was before decoding once: Pillow reads the EXIF orientation with ``getexif()``, which
    for a PNG decodes every pixel first (an eXIf chunk may follow them), then OpenCV decodes the image again."""
    with Image.open(io.BytesIO(data)) as opened:
        orientation = opened.getexif().get(ExifTags.Base.Orientation, 1)
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        pixels: Pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    turned = TRANSPOSED.get(orientation)
    return pixels if turned is None else np.ascontiguousarray(turned(pixels))


def new_decode_pixels(data: bytes) -> Pixels:
    """``decode_pixels`` now, with the default MEDIA_MAX_PIXELS."""
    return decode_pixels(data)


WAYS: dict[str, Decoder] = {"old": old_decode_pixels, "new": new_decode_pixels}


def images() -> dict[str, bytes]:
    """The images timed: name -> encoded bytes."""
    phone = Image.open(PHOTO).resize(PHONE_SIZE, Image.Resampling.BICUBIC)
    png, jpeg = io.BytesIO(), io.BytesIO()
    phone.save(png, "PNG")
    phone.save(jpeg, "JPEG", quality=90)
    return {
        f"PNG {PHONE_SIZE[0]}x{PHONE_SIZE[1]}": png.getvalue(),
        f"JPEG {PHONE_SIZE[0]}x{PHONE_SIZE[1]} q90": jpeg.getvalue(),
        "photo bus.jpg 810x1080": PHOTO.read_bytes(),
    }


def timed(decode: Decoder, data: bytes) -> tuple[float, float]:
    """Wall and CPU seconds of one decode."""
    wall, cpu = time.perf_counter(), time.process_time()
    decode(data)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_decodes(encoded: dict[str, bytes], repeat: int) -> None:
    """Print old vs new wall and CPU seconds per image: medians of ``repeat`` interleaved turns."""
    print(f"Decode time, median of {repeat} interleaved turns (old: getexif() then OpenCV; new: decode_pixels)")
    print(
        f"{'image':<26}{'size':>9}{'wall old':>11}{'wall new':>10}{'ratio':>7}{'CPU old':>10}{'CPU new':>9}{'ratio':>7}"
    )
    for name, data in encoded.items():
        same = np.array_equal(old_decode_pixels(data), new_decode_pixels(data))  # also warms both up
        walls: dict[str, list[float]] = {way: [] for way in WAYS}
        cpus: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(repeat):
            for way, decode in WAYS.items():
                wall, cpu = timed(decode, data)
                walls[way].append(wall)
                cpus[way].append(cpu)
        wall_old, wall_new = (statistics.median(walls[way]) for way in WAYS)
        cpu_old, cpu_new = (statistics.median(cpus[way]) for way in WAYS)
        print(
            f"{name:<26}{len(data) / 1e6:>7.2f}MB{wall_old:>10.3f}s{wall_new:>9.3f}s{wall_old / wall_new:>6.2f}x"
            f"{cpu_old:>9.3f}s{cpu_new:>8.3f}s{cpu_old / cpu_new:>6.2f}x" + ("" if same else "  PIXELS DIFFER")
        )


def huge_png(path: Path, side: int = HUGE_SIDE) -> Path:
    """A PNG of ``side`` x ``side`` black RGB pixels, compressed as far as zlib goes, written row by row (the
    pixels are never held at once)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    compressor = zlib.compressobj(9)
    rows = bytes(100 * (1 + side * 3))  # each row: filter type 0, then its pixels
    idat = [compressor.compress(rows) for _ in range(side // 100)]
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


HUGE_PROBE = """
import time
from benchmarks.decode_speed import WAYS, PHOTO
from label_studio_yolo.media.decode import MediaError
decode = WAYS[sys.argv[2]]
data = open(sys.argv[1], "rb").read()
decode(PHOTO.read_bytes())  # imports and first-call setup
held = reset_peak()
wall, cpu = time.perf_counter(), time.process_time()
try:
    outcome = "decoded %dx%d" % decode(data).shape[1::-1]
except MediaError as error:
    outcome = "refused: " + str(error)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"grown_mib": (peak_kib() - held) / 1024, "wall": wall, "cpu": cpu, "outcome": outcome}))
"""

URI_PROBE = """
import time, urllib.request
from urllib.parse import quote_from_bytes
from label_studio_yolo.media.data_uri import decode_data_uri
body = bytes(range(256)) * (int(sys.argv[1]) // 256)
uri = "data:application/octet-stream," + quote_from_bytes(body)
del body

def old(value):
    with urllib.request.urlopen(value) as response:
        return response.read(50 * 1024 * 1024 + 1)

decode = {"old": old, "new": lambda value: decode_data_uri(value, 50 * 1024 * 1024)}[sys.argv[2]]
decode("data:,%41")  # imports and first-call setup
held = reset_peak()
wall = time.perf_counter()
decoded = decode(uri)
print(json.dumps({"uri_mb": len(uri) / 1e6, "decoded_mb": len(decoded) / 1e6, "grown_mib": (peak_kib() - held) / 1024,
                  "wall": time.perf_counter() - wall}))
"""


def peak_memory(uri_body_bytes: int) -> None:
    """Print old vs new peak memory growth of the huge PNG and of a percent-encoded data: URI."""
    print("\nPeak memory growth, each in a fresh process (VmHWM)")
    with tempfile.TemporaryDirectory() as scratch:
        path = huge_png(Path(scratch) / "huge.png")
        print(f"{HUGE_SIDE}x{HUGE_SIDE} PNG of zeros, {path.stat().st_size / 1e3:.0f} KB:")
        for way in WAYS:
            result: Any = run_probe(HUGE_PROBE, path, way, timeout=600)
            outcome = result["outcome"][:110]
            grown, wall, cpu = result["grown_mib"], result["wall"], result["cpu"]
            print(f"  {way}: +{grown:7.1f} MiB  wall {wall:6.3f} s  CPU {cpu:6.3f} s  {outcome}")
    for way, name in (("old", "urllib.request.urlopen"), ("new", "decode_data_uri")):
        result = run_probe(URI_PROBE, uri_body_bytes, way, timeout=600)
        uri_mb, grown = result["uri_mb"], result["grown_mib"]
        print(
            f"percent-encoded data: URI of {uri_mb:.1f} MB ({result['decoded_mb']:.1f} MB decoded), {way} ({name}): "
            f"+{grown:.1f} MiB ({grown * 2**20 / 1e6 / uri_mb:.1f}x the URI)  wall {result['wall']:.3f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="interleaved turns per image (default 7)")
    parser.add_argument("--uri-mb", type=float, default=4.0, help="bytes in the data: URI, in MB (4: a 10 MB URI)")
    args = parser.parse_args()
    time_decodes(images(), args.repeat)
    peak_memory(int(args.uri_mb * 1e6))


if __name__ == "__main__":
    main()
