"""Inference threads default to the cores a container may really use: its CPU set, capped by its CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from label_studio_yolo.cpus import available_cpus, cgroup_cpu_quota
from label_studio_yolo.settings import BackendSettings

CORES = len(os.sched_getaffinity(0))


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "200000 100000"}, 2.0),  # cgroup v2, docker run --cpus=2
        ({"cpu.max": "150000 100000"}, 1.5),
        ({"cpu.max": "max 100000"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000"}, 0.5),  # cgroup v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, None),
        ({}, None),
    ],
)
def test_the_cpu_quota_is_read_from_cgroup_v2_or_v1(tmp_path: Path, files: dict[str, str], quota: float | None):
    assert cgroup_cpu_quota(cgroup(tmp_path, files)) == quota


def test_a_quota_caps_the_cores_and_rounds_up(tmp_path: Path) -> None:
    assert available_cpus(cgroup(tmp_path / "half", {"cpu.max": "50000 100000"})) == 1
    assert available_cpus(cgroup(tmp_path / "one-and-a-half", {"cpu.max": "150000 100000"})) == min(2, CORES)
    assert available_cpus(cgroup(tmp_path / "many", {"cpu.max": "6400000 100000"})) == CORES, "never above the set"
    assert available_cpus(cgroup(tmp_path / "none", {})) == CORES


def test_torch_threads_default_to_the_available_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCH_THREADS", raising=False)

    assert BackendSettings().torch_threads == available_cpus()
