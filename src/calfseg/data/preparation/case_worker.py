"""Prepare cases one by one, in this process or in a pool of worker processes.

A worker reads one case (the reader's :meth:`~SourceReader.load`), hashes its files,
preprocesses it (:func:`~calfseg.data.preprocess.slice_case`) and writes its part under
``CACHE/.parts/``; only a small :class:`CaseOutcome` travels back. Workers are forked from
a ``forkserver`` that has imported this module (torch included) once, so a worker starts
in milliseconds and inherits nothing from a parent that may already run OpenMP threads
(a plain ``fork`` could deadlock there); where there is no forkserver (Windows), they are
spawned. Each worker uses ``cpu_count // workers`` torch threads. As with any process pool,
a script calling this with ``workers > 1`` needs the ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path

from calfseg.data.preparation.file_state import FileState, sha256_file
from calfseg.data.preparation.parts import CaseRecord, write_part
from calfseg.data.preparation.source import label_source, source_files
from calfseg.data.preprocess import PreprocessOptions, slice_case
from calfseg.data.sources.base import CaseError, CaseFiles, SourceReader
from calfseg.orphans import end_with
from calfseg.progress import progress_bar


@dataclass(frozen=True)
class CaseJob:
    """One case to prepare, with the state of its files taken before reading them."""

    case: CaseFiles
    files: tuple[FileState, ...]


@dataclass(frozen=True)
class CaseOutcome:
    """How one case went: ``rows`` written, or the :class:`CaseError` (as text: exceptions
    with their own constructor do not survive the trip between processes)."""

    case_id: str
    dataset: str
    rows: int = 0
    error: str | None = None  # the full message: case, file and reason
    reason: str | None = None  # the same without the case id
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class CaseTask:
    """Everything a worker needs besides the job (sent once per case; small)."""

    reader: SourceReader
    root: Path | None
    options: PreprocessOptions
    key: str
    cache: Path


def prepare_case(task: CaseTask, job: CaseJob) -> CaseOutcome:
    """Read, preprocess and write one case. A :class:`CaseError` becomes a failed outcome;
    any other exception (a bug, no memory) propagates."""
    start = time.perf_counter()
    case = job.case
    try:
        if case.problems:
            raise CaseError(case.case_id, "; ".join(case.problems))
        volumes = task.reader.load(case)
        slices = slice_case(volumes, task.options)
    except CaseError as err:
        named = err.path is None or str(err.path) in err.reason
        return CaseOutcome(
            case.case_id,
            case.dataset,
            error=str(err),
            reason=err.reason if named else f"{err.path}: {err.reason}",
            seconds=time.perf_counter() - start,
        )
    files = tuple(
        replace(state, sha256=sha256_file(path))
        for state, path in zip(job.files, source_files(case), strict=True)
    )
    record = CaseRecord(
        case_id=case.case_id,
        dataset=case.dataset,
        key=task.key,
        files=files,
        spacing=tuple(float(s) for s in volumes.spacing),
        pixel_spacing=slices.pixel_spacing,
        label_source=label_source(case, task.root),
        modality=tuple(slices.modality),
        slice_index=tuple(int(k) for k in slices.slice_index),
        area=tuple(int(a) for a in slices.area),
        patient_id=case.patient,
    )
    write_part(task.cache, record, slices)
    return CaseOutcome(
        case.case_id, case.dataset, rows=len(slices), seconds=time.perf_counter() - start
    )


def run_cases(
    task: CaseTask,
    jobs: Sequence[CaseJob],
    *,
    workers: int = 1,
    stop_on_error: bool = True,
    progress: bool = False,
) -> Iterator[CaseOutcome]:
    """Prepare every job and yield the outcomes as they finish.

    ``workers`` 1 runs in this process; more start a process pool. With ``stop_on_error``
    the first failed outcome is yielded last: cases not yet started are cancelled (the ones
    running finish and keep their parts). ``progress`` draws a tqdm bar on stderr."""
    if not jobs:
        return
    bar = progress_bar(len(jobs), "preparing", progress, unit="case")
    try:
        for outcome in _outcomes(task, jobs, workers):
            if bar is not None:
                bar.update(1)
            yield outcome
            if stop_on_error and not outcome.ok:
                return
    finally:
        if bar is not None:
            bar.close()


def _outcomes(task: CaseTask, jobs: Sequence[CaseJob], workers: int) -> Iterator[CaseOutcome]:
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        for job in jobs:
            yield prepare_case(task, job)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    with _ctrl_c_deferred():  # an interrupt mid-launch would strand half-started workers
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=_pool_context(),
            initializer=_init_worker,
            initargs=(threads, os.getpid()),
        )
        futures: list[Future[CaseOutcome]] = [pool.submit(prepare_case, task, j) for j in jobs]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        # Reached on success, on a stop after a failed case and on an exception: drop the
        # cases not started, wait for the running ones (their parts stay valid).
        pool.shutdown(wait=True, cancel_futures=True)


def _pool_context() -> BaseContext:
    if "forkserver" in get_all_start_methods():
        context = get_context("forkserver")
        context.set_forkserver_preload([__name__])
        _start_forkserver_deaf_to_ctrl_c()
        return context
    return get_context("spawn")


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) back until the block is done, then raise KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _start_forkserver_deaf_to_ctrl_c() -> None:
    """Start the forkserver with SIGINT ignored (kept across exec): a Ctrl-C while it
    imports torch would otherwise print its own traceback; this process handles Ctrl-C."""
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def _init_worker(threads: int, parent: int) -> None:
    import torch

    end_with(parent)  # a kill -9 of calf prepare takes its workers along (calfseg.orphans)

    # Ctrl-C reaches the whole process group: the parent stops the run (cancels the cases
    # not started, waits for the running ones) and prints one line; a worker interrupted
    # mid-case would only add a traceback per process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    torch.set_num_threads(threads)
