"""One writer per results folder: a second writer is refused naming the first; a killed
writer's lock is taken over; the lock is re-entrant in one process; shards share a folder.
The holder is a real second process (flock is per open file, and its release at a process's
death is the point)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from calfseg.cli import main
from calfseg.writer_lock import FolderBusyError, TakenOverWarning, lock_file, writing

HOLD = """
import sys, time
from pathlib import Path
from calfseg.writer_lock import writing
shard = tuple(int(x) for x in sys.argv[4].split("/")) if len(sys.argv) > 4 else None
with writing(sys.argv[1], sys.argv[2], shard=shard):
    Path(sys.argv[3]).write_text("held")
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[callable]:
    """Start a process that holds ``folder``'s lock as ``command``; yields a starter that
    returns the process once the lock is held. Killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(folder: Path, command: str, shard: str | None = None) -> subprocess.Popen[bytes]:
        marker = tmp_path / f"held-{len(started)}"
        argv = [sys.executable, "-c", HOLD, str(folder), command, str(marker)]
        process = subprocess.Popen([*argv, *([shard] if shard else [])])
        started.append(process)
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, "the holder died"
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.05)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_second_writer_is_refused_naming_the_first(holder, tmp_path: Path):
    out = tmp_path / "out"
    process = holder(out, "calf benchmark")
    with pytest.raises(FolderBusyError) as caught:
        with writing(out, "calf report"):
            pytest.fail("entered a folder another process is writing")
    message = str(caught.value)
    assert str(out) in message and "calf benchmark" in message
    assert f"process {process.pid}" in message


def test_a_killed_writer_releases_the_folder_and_is_named_when_taken_over(holder, tmp_path):
    out = tmp_path / "out"
    process = holder(out, "calf benchmark")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with pytest.warns(TakenOverWarning, match=f"process {process.pid}"):
        with writing(out, "calf benchmark"):
            pass
    with writing(out, "calf benchmark"):  # released cleanly: nothing to take over now
        pass
    assert lock_file(out).read_text() == ""


def test_the_lock_is_reentrant_in_one_process_and_released_after(holder, tmp_path: Path):
    out = tmp_path / "out"
    with writing(out, "calf benchmark"), writing(out, "calf report"):
        pass
    holder(out, "calf report")  # another process can take it now


def test_shards_of_one_grid_write_side_by_side(holder, tmp_path: Path):
    out = tmp_path / "out"
    holder(out, "calf benchmark", "1/2")
    with writing(out, "calf benchmark", shard=(2, 2)):
        pass
    with pytest.raises(FolderBusyError):
        with writing(out, "calf benchmark", shard=(1, 2)):
            pass


@pytest.mark.slow
def test_the_commands_refuse_a_folder_being_written(holder, tmp_path: Path, capsys):
    out = tmp_path / "bench"
    holder(out, "calf benchmark")
    code = main(["benchmark", "--out", str(out), "--epochs", "1", "--seeds", "1",
                 "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "is being written by calf benchmark" in err
    assert sorted(p.name for p in out.iterdir()) == [".calf-writer.lock"]  # nothing else
    (out / "runs").mkdir()
    code = main(["report", str(out)])
    assert code == 1 and "is being written by calf benchmark" in capsys.readouterr().err


@pytest.mark.slow
def test_calf_train_refuses_a_run_folder_being_trained(holder, synthetic_cache, tmp_path, capsys):
    run = tmp_path / "run"
    holder(run, "a training run")
    argv = ["train", "--data", str(synthetic_cache), "--out", str(run), "--preset", "tiny"]
    code = main([*argv, "--epochs", "1", "--max-steps", "1", "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and f"{run} is being written by a training run" in err
    assert sorted(p.name for p in run.iterdir()) == [".calf-writer.lock"]


def test_calf_prepare_refuses_a_cache_being_prepared_and_takes_a_free_one(holder, tmp_path, capsys):
    cache = tmp_path / "cache"
    argv = ["prepare", "--synthetic", "paper-like", "--cases", "3", "--slices", "4"]
    argv += ["--size", "16", "--out", str(cache), "--no-progress"]
    first = holder(cache, "calf prepare")
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and f"{cache} is being written by calf prepare" in err
    assert sorted(p.name for p in cache.iterdir()) == [".calf-writer.lock"]  # nothing else
    first.kill()
    first.wait()
    holder(cache, "calf prepare", "1/2")  # a shard's lock leaves the whole-cache one free
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    assert (
        f"warning: {cache}: took over the writer lock of calf prepare (process {first.pid}" in err
    )
    assert (cache / "meta.json").is_file()
