"""A Linux memory cgroup of a test's own, with a limit, for running a server the way a container runtime limits it.

Kubernetes puts a container in a memory cgroup whose limit is the container's ``resources.limits.memory`` and swap
off; the kernel's OOM killer kills a process of the cgroup when its memory cannot be brought back under the limit.
:func:`memory_cgroup` makes such a cgroup (cgroup v1's memory controller, or cgroup v2 with ``memory`` enabled),
under this process's own cgroup where that is allowed, else at the top of the hierarchy; :meth:`MemoryCgroup.command`
starts a command inside it, so that its children (gunicorn's worker, an export's child process) are in it too.

Needs root on Linux; without a writable memory cgroup :func:`memory_cgroup` raises :class:`CgroupUnavailable`.

Example:
    >>> with memory_cgroup("server", 3 * 1024**3) as cgroup, cgroup.watching() as peak:    # doctest: +SKIP
    ...     subprocess.run(cgroup.command(["python", "-c", "x = bytearray(10**8)"]))
    >>> cgroup.oom_kills(), peak.anon_bytes                                                 # doctest: +SKIP
    (0, 104857600)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.sampling import sampling

FIX = (
    "run the tests as root on Linux with a memory cgroup: cgroup v1's memory controller, or cgroup v2 with the memory "
    "controller enabled (a container needs a writable /sys/fs/cgroup, e.g. docker run --privileged)"
)

QUANTITY_SUFFIXES = {
    "": 1,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "P": 1000**5,
    "E": 1000**6,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "Ei": 1024**6,
}
"""Kubernetes quantity suffixes (resource.Quantity) and their factors."""


class CgroupUnavailable(RuntimeError):
    """No memory cgroup could be made here; the message says why and names the fix."""


def kubernetes_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``3Gi``, ``1536Mi``, ``2G``, ``1.5Gi``, ``3221225472``) in bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", quantity.strip())
    if match is None or match[2] not in QUANTITY_SUFFIXES:
        raise ValueError(f"not a Kubernetes memory quantity: {quantity!r}")
    number = match[1]
    whole, _, fraction = number.partition(".")
    factor = QUANTITY_SUFFIXES[match[2]]
    return int(whole) * factor + (int(fraction) * factor) // 10 ** len(fraction) if fraction else int(whole) * factor


def mib(size: int | None) -> str:
    """``size`` bytes as MiB for messages (``-`` when unknown)."""
    return "-" if size is None else f"{size / 1024**2:,.0f} MiB"


@dataclass
class Peak:
    """The largest anonymous memory (bytes) the cgroup held at any of the samples so far, and how many were taken."""

    anon_bytes: int = 0
    samples: int = 0


@dataclass(frozen=True)
class MemoryCgroup:
    """One memory cgroup: its folder and cgroup version (1 or 2)."""

    path: Path
    version: int
    limit_bytes: int

    def command(self, command: Sequence[str]) -> list[str]:
        """``command`` wrapped so that it runs in this cgroup: ``sh`` moves itself in, then ``exec``s the command
        (so the command keeps ``sh``'s process id, and signals sent to it reach the command itself)."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *command]

    def pids(self) -> list[int]:
        """Processes in the cgroup now."""
        return [int(line) for line in self._read("cgroup.procs").split()]

    def oom_kills(self) -> int:
        """Processes of the cgroup the OOM killer has killed."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        return self._field(name, "oom_kill") or 0

    def limit_hits(self) -> int | None:
        """How often the cgroup's usage reached its limit (v1 ``memory.failcnt``; v2 ``max`` of ``memory.events``):
        the kernel then reclaimed memory (page cache first), which is not a failure by itself."""
        if self.version == 1:
            names = ("memory.failcnt", "memory.memsw.failcnt")  # the memory+swap limit is hit first without swap
            return max(int(self._read(name)) for name in names if (self.path / name).exists())
        return self._field("memory.events", "max")

    def peak_usage(self) -> int | None:
        """The largest memory charged to the cgroup so far (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``):
        anonymous memory, page cache (files read and written, libraries mapped) and kernel memory."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        with contextlib.suppress(FileNotFoundError):  # memory.peak is new in Linux 5.19
            return int(self._read(name))
        return None

    def anon_bytes(self) -> int:
        """Anonymous memory charged to the cgroup now (v1 ``total_rss``, v2 ``anon`` of ``memory.stat``): what its
        processes allocated, which cannot be reclaimed without swap, unlike page cache."""
        return self._field("memory.stat", "total_rss" if self.version == 1 else "anon") or 0

    @contextmanager
    def watching(self, interval: float = 0.05) -> Iterator[Peak]:
        """Sample :meth:`anon_bytes` every ``interval`` seconds in a thread while the block runs; the yielded
        :class:`Peak` holds the largest sample (a peak between two samples can be missed)."""
        peak = Peak()

        def sample() -> None:
            with contextlib.suppress(OSError):  # the cgroup is being removed
                peak.anon_bytes = max(peak.anon_bytes, self.anon_bytes())
                peak.samples += 1

        with sampling(sample, interval, name=f"memory-{self.path.name}"):
            yield peak

    def kill_all(self, timeout: float = 30.0) -> None:
        """SIGKILL every process in the cgroup until none is left (``timeout`` seconds at most)."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def _read(self, name: str) -> str:
        return (self.path / name).read_text()

    def _field(self, name: str, key: str) -> int | None:
        for line in self._read(name).splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == key:
                return int(words[1])
        return None


@dataclass(frozen=True)
class _Hierarchy:
    """A mounted cgroup hierarchy with the memory controller: version, mount point, the cgroup its mount point shows
    (``/`` unless a container bind-mounted a part of it) and this process's cgroup in it."""

    version: int
    mount: Path
    mount_root: str
    own: str

    def parents(self) -> list[Path]:
        """Where a new cgroup may go, best first: under this process's own cgroup (its limits and accounting still
        apply to the tests' servers), then at the top of the mount."""
        found = []
        relative = os.path.relpath(self.own, self.mount_root) if self.own.startswith(self.mount_root) else None
        if relative is not None and not relative.startswith(".."):
            own = (self.mount / relative).resolve()
            if own.is_dir() and own != self.mount:
                found.append(own)
        return [*found, self.mount]


def _memory_hierarchy() -> _Hierarchy:
    """The mounted hierarchy that has the memory controller, with this process's cgroup in it."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        cgroups = Path("/proc/self/cgroup").read_text()
    except OSError as error:
        raise CgroupUnavailable(f"no /proc cgroup information ({error}): {FIX}") from error
    own_v1 = own_v2 = None
    for line in cgroups.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            own_v2 = path
        elif "memory" in controllers.split(","):
            own_v1 = path
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, (fstype, _source, options) = before.split(), after.split()[:3]
        mount_root, mount = fields[3], Path(fields[4].replace("\\040", " "))
        if fstype == "cgroup" and "memory" in options.split(",") and own_v1 is not None:
            return _Hierarchy(1, mount, mount_root, own_v1)
        if fstype == "cgroup2" and own_v2 is not None:
            with contextlib.suppress(OSError):
                if "memory" in (mount / "cgroup.controllers").read_text().split():
                    return _Hierarchy(2, mount, mount_root, own_v2)
    raise CgroupUnavailable(f"no cgroup hierarchy with the memory controller is mounted: {FIX}")


def _make(parent: Path, name: str, version: int) -> Path:
    """A new cgroup ``name`` under ``parent`` whose memory can be limited (v2: enabling ``memory`` for the children
    of ``parent`` if needed)."""
    path = parent / name
    path.mkdir()
    try:
        if version == 2 and not (path / "memory.max").exists():
            (parent / "cgroup.subtree_control").write_text("+memory")  # fails where parent holds processes
            if not (path / "memory.max").exists():
                raise OSError(f"memory is not enabled in {parent / 'cgroup.subtree_control'}")
    except OSError:
        path.rmdir()
        raise
    return path


def _limit(path: Path, version: int, limit_bytes: int) -> None:
    """Limit the cgroup's memory to ``limit_bytes``, with no swap (as Kubernetes runs pods)."""
    if version == 1:
        (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        if (path / "memory.memsw.limit_in_bytes").exists():  # memory + swap: the same limit, so no swap
            (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        if (path / "memory.swappiness").exists():
            (path / "memory.swappiness").write_text("0")
    else:
        (path / "memory.max").write_text(str(limit_bytes))
        if (path / "memory.swap.max").exists():
            (path / "memory.swap.max").write_text("0")


def _remove(path: Path, timeout: float = 30.0) -> None:
    """Remove an empty cgroup (the kernel may still be releasing its last processes for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def memory_cgroup(name: str, limit_bytes: int) -> Iterator[MemoryCgroup]:
    """A new memory cgroup limited to ``limit_bytes`` (no swap) for the block; afterwards every process still in it
    is killed and it is removed.

    Raises:
        CgroupUnavailable: no memory cgroup can be made here (not Linux, not root, no memory controller).
    """
    hierarchy = _memory_hierarchy()
    unique = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    problems = []
    for parent in hierarchy.parents():
        try:
            path = _make(parent, unique, hierarchy.version)
        except OSError as error:
            problems.append(f"{parent}: {error}")
            continue
        break
    else:
        raise CgroupUnavailable(f"no memory cgroup can be made here ({'; '.join(problems)}): {FIX}")
    cgroup = MemoryCgroup(path, hierarchy.version, limit_bytes)
    try:
        _limit(path, hierarchy.version, limit_bytes)
        yield cgroup
    finally:
        cgroup.kill_all()
        _remove(path)
