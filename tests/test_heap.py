"""glibc's heap in a serving process: the arena limit holds for threads that allocate at once."""

from __future__ import annotations

from pathlib import Path

from tests.support.peak_memory import run_probe

ARENAS = """
import ctypes, threading
from label_studio_yolo.heap import limit_arenas
if sys.argv[1] == "limited":
    limit_arenas(2)
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
start = threading.Barrier(8)

def allocate():
    start.wait()
    blocks = [libc.malloc(4096) for _ in range(2000)]  # threads allocating at once: each may get an arena
    start.wait()
    for block in blocks:
        libc.free(block)

threads = [threading.Thread(target=allocate) for _ in range(8)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
report = sys.argv[2]
handle = libc.fopen(report.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(handle))
libc.fclose(ctypes.c_void_p(handle))
print(json.dumps({"arenas": open(report).read().count("<heap nr=")}))
"""


def test_a_serving_process_keeps_to_two_malloc_arenas(tmp_path: Path) -> None:
    """Each arena keeps what a burst of requests freed in it: a warm YOLOv8s worker held 126 MB more on PyTorch."""
    unlimited = run_probe(ARENAS, "unlimited", tmp_path / "unlimited.xml")["arenas"]
    limited = run_probe(ARENAS, "limited", tmp_path / "limited.xml")["arenas"]

    assert limited <= 2 < unlimited
