"""Choose how the runs train (serially here, in worker processes, or on Ray), with how
many threads each, and train them.

:class:`Execution` holds the user's choices (``--jobs``, ``--threads``, ``--executor``,
``--ray-address``, ``--gpus``); :func:`plan_execution` turns them into a
:class:`~calfseg.threads.ThreadPlan` for the CPUs and GPUs this process has, and
:func:`train_tasks` trains the tasks with it (docs/scale.md).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from calfseg.bench.executors.task import RunTask, execute
from calfseg.bench.progress import RunBoard, run_line, start_line
from calfseg.errors import OptionError
from calfseg.options import jobs_value, non_negative_int, option, positive_int
from calfseg.threads import ThreadPlan, available_cpus, plan_threads

EXECUTORS = ("local", "ray")


EXECUTION = "execution (docs/scale.md)"  # the group of calf benchmark --help


class ExecutionError(OptionError):
    """The execution options do not fit this machine (the message names the option)."""


@dataclass(frozen=True)
class Execution:
    """How to train the runs.

    Attributes:
        jobs: runs at once; None: auto (one per GPU, else as many as the CPUs hold at
            ``threads`` each, :func:`calfseg.threads.plan_threads`).
        executor: ``"local"`` (this machine) or ``"ray"`` (Ray tasks).
        ray_address: the Ray cluster to use; None starts a local Ray instance.
        threads: intra-op threads per run; None: ``OMP_NUM_THREADS``, else the policy.
        thread_policy: False leaves torch's default threads in every run (each run then
            uses every core: only to measure what the policy gains).
        gpus: GPUs to use; None: every visible one (0 on a machine without CUDA).
    """

    jobs: int | None = option(
        1,
        "runs trained at once, each in a worker process (calf benchmark's default auto: one "
        "per GPU, else as many as the available CPUs hold at --threads each; 1: one after "
        "another in this process). Results are identical whatever N",
        parse=jobs_value, metavar="N|auto", group=EXECUTION,
    )  # fmt: skip
    executor: str = option(
        "local",
        "local: this machine; ray: every run a Ray task (needs the ray extra), on a local "
        "Ray instance or the cluster of --ray-address",
        choices=("local", "ray"), group=EXECUTION,
    )  # fmt: skip
    ray_address: str | None = option(
        None,
        "the Ray cluster to run on (HOST:PORT, ray://HOST:PORT or auto; default: start a "
        "local Ray instance); OUT and the cache must be on storage every node shares",
        metavar="ADDR", group=EXECUTION,
    )  # fmt: skip
    threads: int | None = option(
        None,
        "intra-op threads of each run (default: OMP_NUM_THREADS, else 1 on the CPU; on the "
        "CPU the thread count changes the trained weights in the last bits)",
        parse=positive_int, metavar="T", group=EXECUTION,
    )  # fmt: skip
    thread_policy: bool = option(
        True,
        "--no-thread-policy leaves torch's default threads (every core) in every run: only "
        "to measure what the thread policy gains (benchmarks/bench_grid.py)",
        negatable=True, group=EXECUTION,
    )  # fmt: skip
    gpus: int | None = option(
        None,
        "GPUs to use, one run on each at a time (default: every visible GPU; 0: the CPU)",
        parse=non_negative_int, metavar="N", group=EXECUTION,
    )  # fmt: skip


@dataclass
class ExecutionPlan:
    """What :func:`plan_execution` decided: the threads, the GPUs and notes for the user."""

    threads: ThreadPlan
    gpu_ids: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def gpus(self) -> int:
        return len(self.gpu_ids)


def plan_execution(
    execution: Execution, *, runs: int, workers: int = 0, visible_gpus: int | None = None
) -> ExecutionPlan:
    """The plan for ``runs`` runs of ``workers`` loader workers each.

    Raises:
        ExecutionError: an unknown executor, ``--jobs``/``--threads`` below 1, ``--gpus``
            more than the machine has, or an invalid ``OMP_NUM_THREADS``.
    """
    if execution.executor not in EXECUTORS:
        raise ExecutionError(
            f"--executor {execution.executor!r}: valid executors: {', '.join(EXECUTORS)}"
        )
    if execution.executor != "ray" and execution.ray_address is not None:
        raise ExecutionError("--ray-address needs --executor ray")
    on_cluster = execution.executor == "ray" and execution.ray_address is not None
    gpu_ids: tuple[str, ...] = ()
    if not on_cluster:  # a cluster's GPUs are the cluster's business
        have = count_gpus() if visible_gpus is None else visible_gpus
        want = have if execution.gpus is None else execution.gpus
        if want < 0 or want > have:
            raise ExecutionError(
                f"--gpus {execution.gpus}: this machine has {have} CUDA GPU(s) visible; "
                f"pass --gpus 0..{have}, or leave --gpus out to use every visible GPU"
            )
        gpu_ids = _gpu_ids(want)
    try:
        threads = plan_threads(
            jobs=execution.jobs,
            cpus=available_cpus(),
            threads=execution.threads,
            workers=workers,
            gpus=len(gpu_ids),
        )
    except ValueError as err:
        raise ExecutionError(str(err)) from None
    if threads.jobs > runs >= 1:
        threads = replace(threads, jobs=runs)  # no idle workers
    plan = ExecutionPlan(threads, gpu_ids)
    if threads.oversubscribed and execution.thread_policy and not on_cluster:
        plan.notes.append(
            f"{threads.jobs} runs at once x ({threads.threads} thread(s) + {threads.workers} "
            f"loader worker(s)) = {threads.busy} busy threads on {threads.cpus} CPU(s): the "
            "runs will slow each other down; lower --jobs or --threads"
        )
    return plan


def train_tasks(
    tasks: Sequence[RunTask],
    execution: Execution,
    plan: ExecutionPlan,
    *,
    out: os.PathLike[str] | str,
    progress: bool,
) -> dict[str, str | None]:
    """Train ``tasks`` as planned; {run name: None (finished) or its error text}."""
    threads = plan.threads
    if not tasks:
        return {}
    if execution.executor == "ray" or threads.jobs > 1:
        # the board shows every run; bars of their own from several processes would clash
        tasks = [replace(task, progress=False) for task in tasks]
    board = RunBoard(len(tasks), Path(out), parallel=threads.jobs, enabled=progress)
    if execution.executor == "ray":
        from calfseg.bench.executors.ray_tasks import run_on_ray

        gpus = None if execution.ray_address is not None and execution.gpus is None else plan.gpus
        return run_on_ray(
            tasks, threads, address=execution.ray_address, gpus=gpus, on_event=board,
            set_threads=execution.thread_policy,
        )  # fmt: skip
    if threads.jobs > 1:
        from calfseg.bench.executors.local import run_in_processes

        return run_in_processes(
            tasks, threads, on_event=board, gpu_ids=plan.gpu_ids,
            set_threads=execution.thread_policy,
        )  # fmt: skip
    return _serially(tasks, threads if execution.thread_policy else None, progress)


def count_gpus() -> int:
    """CUDA GPUs visible to this process (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _serially(
    tasks: Sequence[RunTask], threads: ThreadPlan | None, progress: bool
) -> dict[str, str | None]:
    """One run after another in this process, at the plan's threads (restored after)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads.threads)
    results: dict[str, str | None] = {}
    durations: list[float] = []
    start = time.perf_counter()
    try:
        for i, task in enumerate(tasks, 1):
            if progress:
                print(start_line(i, len(tasks), task.name), file=sys.stderr, flush=True)
            tic = time.perf_counter()
            results[task.name] = execute(task)
            durations.append(time.perf_counter() - tic)
            if progress:
                line = run_line(
                    i, len(tasks), task.name, durations[-1], time.perf_counter() - start,
                    durations, folder=Path(task.folder), error=results[task.name],
                )  # fmt: skip
                print(line, file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(before)
    return results


def _gpu_ids(n: int) -> tuple[str, ...]:
    """The first ``n`` GPUs as ``CUDA_VISIBLE_DEVICES`` names this process sees them by."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return tuple(str(i) for i in range(n))
    return tuple(part.strip() for part in visible.split(",") if part.strip())[:n]
