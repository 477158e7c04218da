"""``--executor ray``: the runs of a benchmark as Ray tasks.

Each run is one task asking for ``threads + loader workers`` CPUs and, on GPUs, one GPU
(Ray sets the task's ``CUDA_VISIBLE_DEVICES``). Without ``--ray-address`` a local Ray
instance is started with the CPUs (and GPUs) the thread policy found, no dashboard and
quiet logs; with one, the driver connects to that cluster.

Results are written by the task straight into ``OUT/runs/NAME``: OUT (and the cache) must
be on storage every node shares (NFS, a cluster file system); nothing is copied back. The
driver checks that each finished run's ``done.json`` is visible to it and fails the run
otherwise, naming the cause. A task lost with its node is retried (``max_retries``) and,
calling the same resumable :func:`.task.execute`, goes on from the run's ``last.pt``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.bench.executors.local import EventHook
from calfseg.bench.executors.task import RunEvent, RunTask, execute
from calfseg.errors import DataError
from calfseg.threads import ThreadPlan

MAX_RETRIES = 3  # retries of a task whose worker or node died
CONNECT_TIMEOUT = 5.0  # seconds to reach --ray-address before giving up
GCS_PORT = 6379  # ray start --head's default
CLIENT_PORT = 10001  # ray:// (Ray Client) default


class ExecutorError(DataError):
    """The executor cannot start (Ray not installed, an unreachable address)."""


def run_on_ray(
    tasks: Sequence[RunTask],
    plan: ThreadPlan,
    *,
    address: str | None = None,
    gpus: int | None = 0,
    on_event: EventHook | None = None,
    set_threads: bool = True,
) -> dict[str, str | None]:
    """Train ``tasks`` as Ray tasks; {run name: None or error text}.

    Args:
        plan: the per-run threads and workers (each task's CPU request) and, for a local
            instance, ``jobs`` (it gets ``jobs * (threads + workers)`` CPUs).
        address: an existing cluster (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``);
            None starts a local instance.
        gpus: GPUs of a local instance, and whether each task asks for one (> 0); None:
            one per task when the cluster has GPUs.
        set_threads: False leaves the threads Ray gives each task (to measure the policy).

    Raises:
        calfseg.extras.MissingExtraError: Ray is not installed.
        ExecutorError: the address cannot be reached, or Ray does not start.
    """
    from calfseg.extras import require

    ray = require("ray", "calf benchmark --executor ray")
    if address is not None:
        check_address(address)
    _start(ray, plan, address, gpus or 0)
    notify = on_event or (lambda event: None)
    try:
        if gpus is None:
            gpus = int(ray.cluster_resources().get("GPU", 0))
        remote = ray.remote(_ray_task).options(
            num_cpus=plan.threads + plan.workers,
            num_gpus=1 if gpus > 0 else 0,
            max_retries=MAX_RETRIES,
            retry_exceptions=False,  # a run's own error is recorded, not retried
        )
        chosen = plan if set_threads else None
        refs = {remote.remote(_restartable(task), chosen): task for task in tasks}
        results: dict[str, str | None] = {}
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            task = refs[ready[0]]
            error, seconds = _outcome(ray, ready[0], task)
            results[task.name] = error
            notify(RunEvent("end", task.name, seconds=seconds, error=error))
        return results
    finally:
        ray.shutdown()


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise :class:`ExecutorError` when ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``)
    does not accept a connection within ``timeout`` seconds; ``auto`` is left to Ray."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port_text = target.rpartition(":")
    default = CLIENT_PORT if address.startswith("ray://") else GCS_PORT
    if not host:
        host, port_text = target, str(default)
    try:
        port = int(port_text)
    except ValueError:
        raise ExecutorError(
            f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto"
        ) from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise ExecutorError(
            f"--ray-address {address}: cannot reach {host}:{port} within {timeout:.0f} s "
            f"({err}). Start the cluster there (ray start --head --port {port}), fix the "
            "address, or leave --ray-address out to start a local Ray instance"
        ) from None


def _start(ray: Any, plan: ThreadPlan, address: str | None, gpus: int) -> None:
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,  # a run's errors are in its failed.json
        "ignore_reinit_error": True,
    }
    if address is None:
        options.update(num_cpus=plan.jobs * (plan.threads + plan.workers), num_gpus=gpus)
    try:
        ray.init(address=address, **options)
    except Exception as err:  # ConnectionError, RuntimeError, ...: Ray's own message
        where = f"the cluster at --ray-address {address}" if address else "a local Ray instance"
        raise ExecutorError(f"cannot start {where}: {type(err).__name__}: {err}") from None


def _ray_task(task: RunTask, plan: ThreadPlan | None) -> tuple[str | None, float]:
    """The body of a Ray task: the run's threads (unless None), then the resumable run."""
    import time

    from calfseg.threads import apply_threads

    if plan is not None:
        apply_threads(plan)
    tic = time.perf_counter()
    return execute(task), time.perf_counter() - tic


def _restartable(task: RunTask) -> RunTask:
    """A run to retrain from scratch (``resume=False``) has its ``last.pt`` removed here
    and is sent with ``resume=True``: it starts afresh all the same, and a retry after a
    lost node resumes from the checkpoint the first attempt wrote instead of starting
    again."""
    if task.resume:
        return task
    (Path(task.folder) / files.LAST_CHECKPOINT).unlink(missing_ok=True)
    return replace(task, resume=True)


def _outcome(ray: Any, ref: Any, task: RunTask) -> tuple[str | None, float]:
    try:
        error, seconds = ray.get(ref)
    except Exception as err:  # the task died MAX_RETRIES + 1 times, or was cancelled
        return f"the Ray task failed: {type(err).__name__}: {err}", 0.0
    if error is None and not (Path(task.folder) / files.DONE).is_file():
        error = (
            f"finished on a Ray node, but {Path(task.folder) / files.DONE} is not visible "
            "here: OUT and the cache must be on storage that every node shares "
            "(docs/scale.md)"
        )
    return error, seconds
