"""How many CPU cores this process may really use: its CPU set, capped by a container's CPU quota.

``os.sched_getaffinity`` sees the CPU set only. A container limited by quota (``docker run --cpus=2``, Kubernetes
``resources.limits.cpu: 2``) still sees every core of its host, and running one inference thread per host core
there makes the kernel throttle them all. The quota is read from the cgroup files directly: the standard library
has no call for it (``os.process_cpu_count`` of Python 3.13 reads the CPU set too).

Example:
    >>> available_cpus()          # doctest: +SKIP
    2
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where Linux mounts the cgroup file system (v2 unified, or v1 with a ``cpu`` controller folder)."""


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """Cores of this process's CPU set, capped by its cgroup CPU quota (rounded up), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup may use per period (``2.0`` for ``--cpus=2``), or None without a quota."""
    v2 = _read(cgroup_root / "cpu.max")  # "max 100000" or "200000 100000"
    if v2:
        quota, _, period = v2.partition(" ")
        return _ratio(quota, period)
    for folder in ("cpu", "cpu,cpuacct"):
        quota = _read(cgroup_root / folder / "cpu.cfs_quota_us")  # -1 without a quota
        if quota:
            return _ratio(quota, _read(cgroup_root / folder / "cpu.cfs_period_us"))
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _ratio(quota: str, period: str) -> float | None:
    try:
        value, per = float(quota), float(period)
    except ValueError:  # "max": no quota
        return None
    return value / per if value > 0 and per > 0 else None
