"""Peak memory of a piece of code, measured in a fresh Python process.

The probe runs with ``json`` and ``sys`` imported and two functions defined, and prints one JSON object, which is
returned:

- ``peak_kib()``: the process's peak resident memory (KiB) so far, from ``VmHWM`` in ``/proc/self/status``. Not
  ``resource.getrusage().ru_maxrss``: Linux starts a child's ``ru_maxrss`` at its parent's peak (the test runner's,
  hundreds of MiB), which would hide what the probe takes.
- ``reset_peak()``: lowers that peak to the memory held now (``/proc/self/clear_refs``), so that what the probe
  built before (its input) does not hide what it measures; returns it.

Example:
    >>> probe = "held = reset_peak(); x = bytearray(10**8); print(json.dumps({'grown': peak_kib() - held}))"
    >>> run_probe(probe)                                                                  # doctest: +SKIP
    {'grown': 97664}
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PRELUDE = """\
import json, sys

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass
    return peak_kib()

"""

ROOT = Path(__file__).parents[2]


def run_probe(code: str, *args: object, timeout: float = 120) -> Any:
    """Run ``code`` (after :data:`PRELUDE`) in a new interpreter from the repository root with ``args`` as
    ``sys.argv[1:]``; return the JSON it printed last."""
    run = subprocess.run(
        [sys.executable, "-c", PRELUDE + code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])
