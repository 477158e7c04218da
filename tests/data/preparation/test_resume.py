"""Resuming: a crash, an exception or a SIGKILL mid-run leaves finished parts and no
finished cache; the rerun reads only the unfinished cases and writes the same cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from calfseg.data.cache import CacheError, SliceCache
from calfseg.data.preparation import writer as cache_writer
from calfseg.data.preprocess import PreprocessOptions
from calfseg.writer_lock import TakenOverWarning

from .common import assert_same_cache, cache_files, run_prepare

REPO = Path(__file__).resolve().parents[3]


def test_a_crash_leaves_no_cache_and_a_rerun_resumes(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_prepare(src, out, reader={"crash_on": {"c1"}})
    assert not (out / "meta.json").exists()
    with pytest.raises(CacheError, match="interrupted"):
        SliceCache.open(out)
    assert next((out / ".parts").glob("c0-*/case.json")).is_file()

    # c0 is finished: the rerun must not read it again (reading it would crash).
    report = run_prepare(src, out, reader={"crash_on": {"c0"}})
    assert (report.processed, report.reused) == (2, 1)
    assert not (out / ".parts").exists()  # the parts are in the cache now
    clean = tmp_path / "clean"
    run_prepare(src, clean)
    assert_same_cache(out, clean)


def test_a_crash_while_assembling_leaves_no_finished_cache(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "cache"
    run_prepare(src, out)
    real_replace = os.replace

    def crash_on_masks(a: Any, b: Any) -> None:
        if str(b).endswith("masks.npy"):
            raise OSError("disk full")
        real_replace(a, b)

    monkeypatch.setattr(cache_writer.os, "replace", crash_on_masks)
    with pytest.raises(OSError, match="disk full"):
        run_prepare(src, out, options=PreprocessOptions(size=8), overwrite=True)
    with pytest.raises(CacheError, match=r"no meta\.json"):
        SliceCache.open(out)
    monkeypatch.undo()
    report = run_prepare(src, out, options=PreprocessOptions(size=8))
    assert report.status == "written" and report.reused == 3  # parts survived the crash
    assert SliceCache.open(out).meta["size"] == [8, 8]


# A prepare run in its own process that stops in the middle of case c1 (after c0 is
# finished) and says so by writing the marker file; the test then kills it with SIGKILL.
_PAUSING_RUN = """
import sys, time
from pathlib import Path
from calfseg.data.preparation.pipeline import prepare_cache
from calfseg.data.preparation.source import reader_source
from tests.data.preparation.common import OPTIONS
from tests.data.tiny_source import TinySource

class PausingSource(TinySource):
    def load(self, case):
        if case.case_id == "c1":
            Path(sys.argv[3]).write_text("in c1")
            time.sleep(600)
        return super().load(case)

prepare_cache(reader_source(PausingSource(), Path(sys.argv[1])), Path(sys.argv[2]), OPTIONS)
"""


def _wait_for(path: Path, process: subprocess.Popen[bytes], limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the prepare process ended first: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the prepare process never reached case c1")
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.slow
def test_a_run_killed_mid_case_resumes_to_the_same_bytes(src: Path, tmp_path: Path):
    out, marker = tmp_path / "cache", tmp_path / "in-c1"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    process = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_RUN, str(src), str(out), str(marker)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(marker, process)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "meta.json").exists()
    finished = sorted(p.parent.name.split("-")[0] for p in (out / ".parts").glob("*/case.json"))
    assert finished == ["c0"]  # c1 was killed mid-case: no part of it

    # c0 must not be read again (reading it would crash); c1 and c2 are. The killed run
    # left its writer lock: the rerun takes it over, and says so.
    with pytest.warns(TakenOverWarning, match="which ended without releasing it"):
        report = run_prepare(src, out, reader={"crash_on": {"c0"}})
    assert report.status == "written" and (report.processed, report.reused) == (2, 1)
    clean = tmp_path / "clean"
    run_prepare(src, clean)
    assert cache_files(out) == cache_files(clean)
