"""``--jobs N``: runs in spawned worker processes with the thread policy's threads, a
progress line per start, epoch and end, failures (raised or a dead worker) recorded while
the other runs go on, and finished runs skipped on a rerun."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from calfseg.bench import BenchmarkConfig, run_benchmark
from calfseg.bench.executors.dispatch import Execution
from calfseg.bench.executors.local import run_in_processes
from calfseg.bench.executors.task import RunEvent, RunTask
from calfseg.bench.grid import RunSpec
from calfseg.bench.runner import train_options
from calfseg.threads import ThreadPlan
from calfseg.train.provenance import run_provenance, write_provenance

from .parallel_fakes import DiesMidMessage, ParallelTrainer
from .test_runner import write_cache

pytestmark = pytest.mark.slow  # trains real runs: the full tier only

NAMES = [f"unet-{loss}-s{seed}" for loss in ("bce", "calf") for seed in (0, 1)]


def _config(out: Path) -> BenchmarkConfig:
    write_cache(out / "data")
    return BenchmarkConfig(out=out, models=("unet",), losses=("bce", "calf"), seeds=(0, 1))


def test_two_workers_train_every_run_and_a_failure_stops_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    started = RunSpec("unet", "calf", 1).folder(tmp_path)  # killed after an epoch
    started.mkdir(parents=True)
    (started / "last.pt").write_bytes(b"")
    write_provenance(started, run_provenance(train_options(config, RunSpec("unet", "calf", 1))))
    trainer = ParallelTrainer(fail=("unet-bce-s1",), die=("unet-calf-s0",))
    outcome = run_benchmark(config, train_fn=trainer, prepare=False, execution=Execution(jobs=2))
    assert (started / "resumed.txt").read_text() == "True"  # resumed from its last.pt
    assert sorted(outcome.finished) == ["unet-bce-s0", "unet-calf-s1"]
    assert outcome.failed["unet-bce-s1"] == "RuntimeError: unet-bce-s1 diverged"
    assert "died (exit code 3)" in outcome.failed["unet-calf-s0"]
    for name in ("unet-bce-s1", "unet-calf-s0"):
        record = json.loads((tmp_path / "runs" / name / "failed.json").read_text())
        assert record["run"] == name and record["error"] == outcome.failed[name]
    # each worker had one thread from the policy, in its environment from the start
    assert (tmp_path / "runs" / "unet-bce-s0" / "threads.txt").read_text() == "1"
    assert outcome.plan is not None and outcome.plan.threads.jobs == 2
    err = capsys.readouterr().err
    for name in NAMES:  # every run was shown starting and ending
        assert re.search(rf"\[\d/4\] {name}  training \.\.\.", err), err
        assert re.search(rf"\[\d/4\] {name}  (done in|FAILED after)", err), err
    assert "    unet-bce-s0  epoch 2/2  loss 0.5000" in err
    # a rerun skips the finished runs and retries the failed ones
    again = run_benchmark(
        _config(tmp_path), train_fn=ParallelTrainer(), prepare=False,
        execution=Execution(jobs=2), progress=False,
    )  # fmt: skip
    assert sorted(again.skipped) == ["unet-bce-s0", "unet-calf-s1"]
    assert sorted(again.finished) == ["unet-bce-s1", "unet-calf-s0"] and again.ok


def test_a_worker_that_dies_mid_message_fails_its_run_and_blocks_no_other(
    tmp_path: Path,
) -> None:
    # Before, the workers shared one queue, whose writers hold a lock while writing. A
    # worker that died mid-message left the lock held and half a message to read: the
    # supervisor and the other workers waited for ever (a CI run hung here 90 minutes).
    # The supervisor is kept from reading (its progress hook waits) until the worker has
    # died in the middle of its event.
    fake = DiesMidMessage(die=("dies",))
    tasks = [RunTask(name, str(tmp_path / name), {}, train_fn=fake)
             for name in ("dies", "fine", "next")]  # fmt: skip
    plan = ThreadPlan(threads=1, interop=1, workers=0, jobs=2, cpus=2, source="--threads")

    def hold_the_reader(event: RunEvent) -> None:
        if event.kind == "start" and event.name == "fine":
            deadline = time.monotonic() + 60
            while not (tmp_path / "dies" / "sending").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(2.5)  # the timer ends the worker 1 s after it began sending

    results: list[dict[str, str | None]] = []
    thread = threading.Thread(  # a hang fails this test instead of stalling the suite
        target=lambda: results.append(
            run_in_processes(tasks, plan, on_event=hold_the_reader, set_threads=False)
        ),
        daemon=True,
    )
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the supervisor hung after a worker died mid-message"
    (result,) = results
    assert result["dies"] is not None and "died (exit code 3)" in result["dies"]
    assert result["fine"] is None and result["next"] is None
