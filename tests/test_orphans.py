"""Workers end with their parent (calfseg.orphans): a process that called ``end_with`` on a
parent that is then killed with SIGKILL is gone within seconds; and the pools of ``calf
prepare`` and ``calf benchmark`` start their workers that way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calfseg.orphans import is_alive

PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
print(child.pid, flush=True)
time.sleep(120)
"""
CHILD = """
import os, sys, time
from pathlib import Path
from calfseg.orphans import end_with
end_with(os.getppid(), every=0.1)
Path(sys.argv[1]).write_text("watching")
time.sleep(120)
"""


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_worker_ends_within_a_second_of_its_parent_killed(tmp_path: Path) -> None:
    marker = tmp_path / "watching"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, str(marker)], stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(parent.stdout.readline())
        assert _wait(marker.exists, 60), "the child never started watching"
        assert is_alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        # the child is now an orphan (re-parented); it must end by itself
        assert _wait(lambda: not _running(child), 10), "the orphan kept running"
    finally:
        if parent.poll() is None:
            parent.kill()


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its new parent to reap it."""
    if not is_alive(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_is_alive_tells_a_living_process_from_a_finished_one() -> None:
    assert is_alive(os.getpid())
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert not is_alive(done.pid)


def _descendants(root: int) -> set[int]:
    """Every process below ``root`` now (from /proc: each process's parent)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {root}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_kill_9_of_calf_prepare_leaves_no_worker_behind(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "calfseg.cli", "prepare", "--synthetic", "paper-like"]
    argv += ["--cases", "24", "--slices", "24", "--size", "96", "--workers", "2"]
    main = subprocess.Popen(
        [*argv, "--out", str(cache), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    below: set[int] = set()
    try:
        started = _wait(lambda: any((cache / ".parts").glob("*/case.json")), 120)
        assert started, "no case was prepared"
        below = _descendants(main.pid)
        assert len(below) >= 2  # the forkserver and its workers (and a resource tracker)
        os.kill(main.pid, signal.SIGKILL)
        main.wait()
        assert _wait(lambda: not any(_running(p) for p in below), 15), [
            p for p in below if _running(p)
        ]
    finally:  # whatever happened, leave nothing running
        for pid in [main.pid, *below]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_kill_9_of_calf_benchmark_leaves_no_worker_training(
    synthetic_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    argv = [sys.executable, "-m", "calfseg.cli", "benchmark", "--data", str(synthetic_cache)]
    argv += ["--losses", "bce", "dice", "--seeds", "1", "--no-control", "--epochs", "200"]
    main = subprocess.Popen(
        [*argv, "--jobs", "2", "--out", str(out), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    below: set[int] = set()
    try:
        logs = lambda: list((out / "runs").glob("*/log.csv"))  # noqa: E731
        assert _wait(lambda: len(logs()) >= 2, 240), "the two runs never started training"
        below = _descendants(main.pid)
        assert len(below) >= 2  # the two workers (and their helpers)
        os.kill(main.pid, signal.SIGKILL)
        main.wait()
        assert _wait(lambda: not any(_running(p) for p in below), 15), [
            p for p in below if _running(p)
        ]
        sizes = {p: p.stat().st_size for p in logs()}
        time.sleep(2)  # nothing trains on into the run folders
        assert {p: p.stat().st_size for p in logs()} == sizes
    finally:  # whatever happened, leave nothing running
        for pid in [main.pid, *below]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
