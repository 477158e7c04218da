"""How many CPU threads a training run may use, so that concurrent runs never oversubscribe.

The CPUs a process may actually use are fewer than ``os.cpu_count()`` whenever it is pinned
(``taskset``, Slurm, Kubernetes cpusets) or throttled by a cgroup CPU quota (Docker
``--cpus``, Kubernetes limits)::

    available = min(len(os.sched_getaffinity(0)), max(1, floor(quota / period)))

with the quota from cgroup v2 ``cpu.max`` (``"QUOTA PERIOD"``, ``"max"``: none) or cgroup v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (``-1``: none). A quota is rounded down: 1.5
CPUs of time cannot keep two busy threads running without throttling them.

The policy (:func:`plan_threads`), docs/scale.md:

* a run's intra-op threads are the user's ``--threads``, else ``OMP_NUM_THREADS``, else 1
  on CPU; they do not follow ``--jobs`` because on CPU the thread count changes the order
  of float reductions and so the trained weights (measured in docs/scale.md): a serial and
  a parallel benchmark must train the same way;
* a run costs ``threads + loader workers`` busy CPUs (inter-op threads are 1: eager PyTorch
  runs one operator at a time), and ``--jobs auto`` starts ``available // cost`` runs, so
  the busy threads never outnumber the cores.

This is a bottom-layer module: it imports nothing of calfseg and imports torch only inside
:func:`apply_threads`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from calfseg.errors import OptionError

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# Variables read by OpenMP, MKL and OpenBLAS when a process starts.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def affinity_cpus() -> int:
    """The CPUs this process may be scheduled on (``os.sched_getaffinity``; where that does
    not exist, ``os.cpu_count()``)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        return max(1, len(getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``quota / period``), or None when
    there is none (or no cgroup file can be read).

    cgroup v2: ``cpu.max`` of the process's own cgroup (the path in ``/proc/self/cgroup``
    after ``0::``) or, inside a container, of the mount root. cgroup v1: ``cpu.cfs_quota_us``
    and ``cpu.cfs_period_us`` under ``cpu`` or ``cpu,cpuacct``. The smallest quota found
    wins (a container's limit is at its root).
    """
    found: list[float] = []
    for folder in _v2_folders(root, proc_cgroup):
        quota = _read_v2(folder / "cpu.max")
        if quota is not None:
            found.append(quota)
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota = _read_v1(root / name)
        if quota is not None:
            found.append(quota)
    return min(found) if found else None


def available_cpus(
    *, affinity: int | None = None, quota: float | None = None, read_quota: bool = True
) -> int:
    """The CPUs this process can keep busy: ``min(affinity, floor(quota))``, at least 1.

    Args:
        affinity: the affinity CPU count (default: :func:`affinity_cpus`).
        quota: the cgroup quota in CPUs (default: :func:`cgroup_quota` when ``read_quota``).
    """
    cpus = affinity_cpus() if affinity is None else affinity
    if quota is None and read_quota:
        quota = cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


@dataclass(frozen=True)
class ThreadPlan:
    """How one run uses the CPUs, and how many runs share them.

    Attributes:
        threads: intra-op threads of each run (``torch.set_num_threads``).
        interop: inter-op threads of each run (``torch.set_num_interop_threads``).
        workers: DataLoader worker processes of each run (one busy thread each).
        jobs: concurrent runs.
        cpus: the CPUs available (:func:`available_cpus`).
        source: where ``threads`` came from: ``"--threads"``, ``"OMP_NUM_THREADS"`` or
            ``"policy"``.
    """

    threads: int
    interop: int
    workers: int
    jobs: int
    cpus: int
    source: str

    @property
    def busy(self) -> int:
        """Busy threads of all runs together: ``jobs * (threads + workers)``."""
        return self.jobs * (self.threads + self.workers)

    @property
    def oversubscribed(self) -> bool:
        return self.busy > self.cpus

    def environment(self) -> dict[str, str]:
        """The variables a run's process gets before it imports torch."""
        return {name: str(self.threads) for name in THREAD_VARIABLES}


def plan_threads(
    *,
    jobs: int | None,
    cpus: int,
    threads: int | None = None,
    workers: int = 0,
    gpus: int = 0,
    environ: Mapping[str, str] | None = None,
) -> ThreadPlan:
    """The threads of each run and the number of concurrent runs.

    Args:
        jobs: concurrent runs, or None for "auto": one per GPU with ``gpus``, else
            ``cpus // (threads + workers)``.
        cpus: the CPUs available (:func:`available_cpus`).
        threads: the user's explicit threads per run (``--threads``); wins over everything.
        workers: DataLoader workers of each run.
        gpus: GPUs to run on (0: CPU runs).
        environ: the environment (default ``os.environ``); its ``OMP_NUM_THREADS`` wins over
            the policy's default.

    Returns:
        The plan. Per-run threads on CPU do not depend on ``jobs`` (see the module's
        docstring); on GPU, where the CPU threads only feed the device, each run gets
        ``cpus // jobs - workers`` (at least 1).

    Raises:
        ValueError: ``jobs``, ``threads`` or ``OMP_NUM_THREADS`` is not a positive integer
            (the message names it and the fix), or ``workers``/``gpus`` is negative.
    """
    env = os.environ if environ is None else environ
    if jobs is not None and (isinstance(jobs, bool) or jobs < 1):
        raise OptionError(f"--jobs must be a positive number of runs or auto, got {jobs}")
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise OptionError(f"--threads must be a positive number of threads, got {threads}")
    if workers < 0 or gpus < 0:
        raise OptionError(f"workers and gpus must be >= 0, got {workers} and {gpus}")
    source = "--threads"
    if threads is None:
        threads, source = _from_environment(env)
    if gpus > 0:
        jobs = gpus if jobs is None else jobs
        if threads is None:
            threads = max(1, cpus // jobs - workers)
            source = "policy"
    if threads is None:
        threads, source = 1, "policy"
    if jobs is None:
        jobs = max(1, cpus // (threads + workers))
    return ThreadPlan(threads, 1, workers, jobs, cpus, source)


def apply_threads(plan: ThreadPlan, *, environment: bool = True) -> None:
    """Give this process the plan's threads: the thread variables (for libraries and
    child processes started later) and torch's intra- and inter-op thread counts.

    torch accepts a new inter-op count only before its first parallel work; when that has
    happened the inter-op count is left as it is (it does not change results).
    """
    if environment:
        os.environ.update(plan.environment())
    import torch

    torch.set_num_threads(plan.threads)
    try:
        if torch.get_num_interop_threads() != plan.interop:
            torch.set_num_interop_threads(plan.interop)
    except RuntimeError:  # inter-op pool already started: too late, and harmless
        pass


def _from_environment(env: Mapping[str, str]) -> tuple[int | None, str]:
    text = env.get("OMP_NUM_THREADS", "").strip()
    if not text:
        return None, "policy"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise OptionError(
            f"OMP_NUM_THREADS={text!r} is not a positive integer; unset it or set it to the "
            "threads per run (or pass --threads)"
        )
    return value, "OMP_NUM_THREADS"


def _v2_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    folders = [root]
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return folders
    for line in lines:
        if line.startswith("0::"):
            own = line[3:].strip().lstrip("/")
            if own:  # the process's cgroup and its parents up to the root
                path = root / own
                while path != root and root in path.parents:
                    folders.append(path)
                    path = path.parent
    return folders


def _read_v2(path: Path) -> float | None:
    try:
        parts = path.read_text().split()
    except OSError:
        return None
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read_v1(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text().strip())
        period = int((folder / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
