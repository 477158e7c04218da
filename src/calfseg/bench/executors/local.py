"""``--jobs N``: the runs of a benchmark in N worker processes on this machine.

Each worker is a fresh ``spawn`` process (never ``fork``: torch's thread pools and CUDA do
not survive a fork) that gets its thread variables (``OMP_NUM_THREADS`` ...) and its GPU
(``CUDA_VISIBLE_DEVICES``) in its environment before it imports anything, sets torch's
threads (:func:`calfseg.threads.apply_threads`), then trains the runs the supervisor hands
it one at a time with :func:`.task.execute`, reporting each start, epoch and end.

A run that raises is recorded by the worker (failed.json) and the worker goes on; a worker
that dies (killed, out of memory, a crash in native code) fails its run with the exit code
and is replaced, so the other runs go on either way.

Why one pipe per worker and no shared ``multiprocessing.Queue``: a queue's writers share a
lock that its feeder thread holds while it writes. A worker that dies in that moment (the
OOM killer does not wait) leaves the lock held and, in the reader, half a message: every
other worker then blocks on its next event and the supervisor on its next read, for ever.
A worker's own pipe is written by it alone and synchronously; its death closes its end, and
the supervisor reads end-of-file there, fails that run and goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from calfseg.bench.executors.task import RunEvent, RunTask, execute, record_failure
from calfseg.threads import ThreadPlan

EventHook = Callable[[RunEvent], None]
POLL_SECONDS = 0.5


@dataclass
class _Worker:
    process: Any  # multiprocessing.context.SpawnProcess
    channel: Connection  # the supervisor's end: tasks out (None: stop), events in
    task: RunTask | None = None
    started: float = 0.0


def run_in_processes(
    tasks: Sequence[RunTask],
    plan: ThreadPlan,
    *,
    on_event: EventHook | None = None,
    gpu_ids: Sequence[str] = (),
    set_threads: bool = True,
) -> dict[str, str | None]:
    """Train ``tasks`` in ``plan.jobs`` worker processes; {run name: None or error text}.

    ``gpu_ids``: with GPUs, worker i sees only ``gpu_ids[i % len]`` (one run per GPU when
    ``plan.jobs == len(gpu_ids)``); without, the workers see no GPU. ``set_threads`` False
    leaves torch's default threads in the workers (to measure the policy). ``on_event``
    gets every :class:`RunEvent`, in the supervisor's process.
    """
    context = multiprocessing.get_context("spawn")
    pending = list(tasks)
    results: dict[str, str | None] = {}
    workers: list[_Worker] = []
    notify = on_event or (lambda event: None)

    def start(slot: int) -> _Worker:
        env = plan.environment() if set_threads else {}
        env["CUDA_VISIBLE_DEVICES"] = gpu_ids[slot % len(gpu_ids)] if gpu_ids else ""
        ours, theirs = context.Pipe(duplex=True)
        chosen = plan if set_threads else None
        process = context.Process(  # not a daemon: its DataLoader may start workers
            target=worker_loop, args=(theirs, chosen, os.getpid()), name=f"calf-run-{slot}"
        )
        with _environment(env):  # inherited by the spawned interpreter from its start
            process.start()
        theirs.close()  # the worker's end lives in the worker only: its death is our EOF
        return _Worker(process, ours)

    def replace_dead(slot: int) -> None:
        worker = workers[slot]
        assert worker.task is not None
        name = worker.task.name
        results[name] = _died(worker)
        notify(RunEvent("end", name, seconds=_since(worker.started), error=results[name]))
        worker.task = None
        worker.channel.close()
        if pending:  # a fresh worker for the runs left
            workers[slot] = start(slot)
            _hand_out(workers[slot], pending, notify)

    try:
        for slot in range(min(plan.jobs, len(pending))):
            workers.append(start(slot))
        for worker in workers:
            _hand_out(worker, pending, notify)
        while any(w.task is not None for w in workers):
            busy = {w.channel: slot for slot, w in enumerate(workers) if w.task is not None}
            ready = wait(list(busy), timeout=POLL_SECONDS)
            for channel in ready:
                slot = busy[channel]  # type: ignore[index]
                try:
                    event: RunEvent = workers[slot].channel.recv()
                except (EOFError, OSError):  # the worker is gone, perhaps mid-message
                    replace_dead(slot)
                    continue
                notify(event)
                if event.kind == "end":
                    results[event.name] = event.error
                    workers[slot].task = None
                    _hand_out(workers[slot], pending, notify)
            if not ready:  # a dead worker whose DataLoader children still hold its end
                for slot, worker in enumerate(workers):
                    if worker.task is not None and not worker.process.is_alive():
                        replace_dead(slot)
    finally:
        _stop(workers)
    return results


def worker_loop(channel: Connection, plan: ThreadPlan | None, parent: int) -> None:
    """A worker process: set the threads (unless ``plan`` is None), then train the tasks
    ``channel`` brings until None, sending back each epoch and end; ends with the process
    ``parent`` (:mod:`calfseg.orphans`: a kill -9 of the benchmark takes its workers along
    instead of leaving them training)."""
    from calfseg.orphans import end_with
    from calfseg.threads import apply_threads

    end_with(parent)
    if plan is not None:
        apply_threads(plan)
    sending = threading.Lock()  # a Connection is not thread-safe; a trainer may call back

    def send(event: RunEvent) -> None:
        with sending:
            channel.send(event)

    while True:
        try:
            task: RunTask | None = channel.recv()
        except EOFError:  # the supervisor is gone
            return
        if task is None:
            return
        tic = time.perf_counter()

        def on_epoch(row: dict[str, Any], task: RunTask = task) -> None:
            send(RunEvent("epoch", task.name, epoch=row.get("epoch"), epochs=task.epochs,
                          loss=_number(row.get("train_loss"))))  # fmt: skip

        error = execute(task, on_epoch)
        send(RunEvent("end", task.name, seconds=time.perf_counter() - tic, error=error))


def _hand_out(worker: _Worker, pending: list[RunTask], notify: EventHook) -> None:
    """Give ``worker`` the next run; its start is shown here, not by the worker: a worker
    that dies at once may never flush what it sent."""
    if pending:
        worker.task = pending.pop(0)
        worker.started = time.perf_counter()
        # a worker that died since its last run: the read that follows sees its end closed
        # and fails this run as died, with its exit code, and a fresh worker takes the rest
        with contextlib.suppress(OSError):
            worker.channel.send(worker.task)
        notify(RunEvent("start", worker.task.name, epochs=worker.task.epochs))


def _died(worker: _Worker) -> str:
    assert worker.task is not None
    worker.process.join(timeout=10)  # its end closed a moment before it is reaped
    code = worker.process.exitcode
    text = (
        f"the worker process training this run died (exit code {code}"
        + (f", killed by signal {-code}" if code is not None and code < 0 else "")
        + "): out of memory, killed, or a crash in native code"
    )
    record_failure(Path(worker.task.folder), worker.task.name, text, "", _since(worker.started))
    return text


def _stop(workers: list[_Worker]) -> None:
    """Ask idle workers to exit; terminate the ones still training (interrupted)."""
    for worker in workers:
        if worker.process.is_alive():
            if worker.task is None:
                with contextlib.suppress(OSError):  # gone since: nothing to ask
                    worker.channel.send(None)
            else:
                worker.process.terminate()
    for worker in workers:
        worker.process.join(timeout=10)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.channel.close()


@contextlib.contextmanager
def _environment(changes: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _since(tic: float) -> float:
    return time.perf_counter() - tic if tic else 0.0


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
