"""`calf prepare` (and `calf analyze CACHE`): options, messages, exit codes, end to end."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from calfseg.data.cache import SliceCache

from ..data.sources.fakes import brats2015_case
from ..shared_data import BRATS2015_SUBSET


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _prepare(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    return _run(capsys, "prepare", *argv, "--no-progress", "--workers", "1")


@pytest.fixture
def brats(tmp_path: Path) -> Path:
    """Three tiny BraTS 2015 cases (8 x 6 x 4 voxels, FLAIR and T1c)."""
    root = tmp_path / "brats"
    for i in range(3):
        brats2015_case(root, f"brats_2013_pat000{i + 1}_1", seed=i)
    return root


def test_prepare_writes_a_cache_and_a_rerun_does_nothing(capsys, brats: Path, tmp_path: Path):
    out = tmp_path / "cache"
    code, stdout, stderr = _prepare(capsys, brats, "--out", out, "--size", "8")
    assert code == EXIT_OK, stderr
    assert "layout: brats2015 (detected)" in stderr
    assert f"wrote {out}: 24 slices of 3 cases (3 read, 0 reused, 0 skipped)" in stdout
    assert "by case, seed 0" in stdout and "fingerprint.json" in stdout
    cache = SliceCache.open(out)
    assert cache.meta["source"]["layout"] == "brats2015"
    assert set(cache.index["modality"].tolist()) == {"flair", "t1c"}

    code, stdout, _ = _prepare(capsys, brats, "--out", out, "--size", "8")
    assert code == EXIT_OK and "is up to date" in stdout and "nothing to do" in stdout


def test_usage_errors(capsys, brats: Path, tmp_path: Path):
    out = tmp_path / "cache"
    cases = [
        ((brats,), "--out CACHE"),
        (("--out", out), "either SRC"),
        ((brats, "--out", out, "--stack"), "--stack needs the channels"),
        ((brats, "--out", out, "--val", "0.6", "--test", "0.5"), "below 1"),
        ((brats, "--out", out, "--kfold", "3"), "--fold F"),
        ((brats, "--out", out, "--fold", "1"), "--fold needs --kfold"),
        ((brats, "--out", out, "--layout", "brats2077"), "unknown layout"),
        (("--merge", out, "--size", "8"), "--merge takes the source and options"),
    ]
    for argv, message in cases:
        code, _, stderr = _prepare(capsys, *argv)
        assert code == EXIT_USAGE, (argv, stderr)
        assert message in stderr, (argv, stderr)
    code, _, stderr = _prepare(capsys, brats, "--out", out, "--shard", "3/2")
    assert code == EXIT_USAGE and "1 <= K <= N" in stderr
    code, _, stderr = _prepare(capsys, tmp_path / "nope", "--out", out)
    assert code == EXIT_FAILURE and f"{tmp_path / 'nope'}: no such folder" in stderr  # input
    unknown = tmp_path / "notes"
    unknown.mkdir()
    (unknown / "readme.txt").write_text("no scans here")
    code, _, stderr = _prepare(capsys, unknown, "--out", out)  # the files decide: exit 1
    assert code == EXIT_FAILURE and "cannot tell the layout" in stderr
    assert not out.exists()


def test_a_corrupt_file_stops_with_exit_1_naming_case_and_file(capsys, brats, tmp_path):
    bad = brats / "brats_2013_pat0002_1" / "T1c_subtrMeanDivStd.nii.gz"
    bad.write_bytes(gzip.compress(b"x" * 1000)[:40])  # truncated gzip
    code, _, stderr = _prepare(capsys, brats, "--out", tmp_path / "cache", "--size", "8")
    assert code == EXIT_FAILURE
    assert "brats_2013_pat0002_1" in stderr and "T1c_subtrMeanDivStd.nii.gz" in stderr
    assert "--on-error skip" in stderr
    assert not (tmp_path / "cache" / "meta.json").exists()

    code, stdout, stderr = _prepare(
        capsys, brats, "--out", tmp_path / "cache", "--size", "8", "--on-error", "skip"
    )
    assert code == EXIT_FAILURE
    assert "skipped 1 case(s):" in stderr and "brats_2013_pat0002_1:" in stderr
    assert "1 case(s) skipped" in stderr and "1 read, 1 reused, 1 skipped" in stdout
    cache = SliceCache.open(tmp_path / "cache")
    assert "brats_2013_pat0002_1" not in cache.index["case_id"].tolist()
    assert cache.meta["skipped"][0]["case_id"] == "brats_2013_pat0002_1"


def test_shards_then_merge(capsys, brats: Path, tmp_path: Path):
    out = tmp_path / "cache"
    code, stdout, _ = _prepare(capsys, brats, "--out", out, "--size", "8", "--shard", "1/2")
    assert code == EXIT_OK and "shard 1/2" in stdout and f"calf prepare --merge {out}" in stdout
    code, _, stderr = _prepare(capsys, "--merge", out)
    assert code == EXIT_FAILURE and "shard 2/2" in stderr
    code, _, _ = _prepare(capsys, brats, "--out", out, "--size", "8", "--shard", "2/2")
    assert code == EXIT_OK
    code, stdout, _ = _prepare(capsys, "--merge", out)
    assert code == EXIT_OK and "24 slices of 3 cases" in stdout
    assert len(SliceCache.open(out)) == 24


def test_slice_split_warns_and_kfold_records_the_fold(capsys, brats: Path, tmp_path: Path):
    code, _, stderr = _prepare(
        capsys, brats, "--out", tmp_path / "a", "--size", "8", "--split", "slice"
    )
    assert code == EXIT_OK and "warning" in stderr and "inflated" in stderr
    code, _, _ = _prepare(
        capsys, brats, "--out", tmp_path / "b", "--size", "8", "--kfold", "3", "--fold", "2"
    )
    assert code == EXIT_OK
    meta = SliceCache.open(tmp_path / "b").meta
    assert meta["splits"]["kfold"] == {"k": 3, "fold": 2, "val_fraction": 0.1}


def test_analyze_reads_a_cache(capsys, brats: Path, tmp_path: Path):
    out = tmp_path / "cache"
    assert _prepare(capsys, brats, "--out", out, "--size", "8")[0] == EXIT_OK
    report = tmp_path / "report.json"
    code, stdout, _ = _run(
        capsys, "analyze", out, "--split", "train", "--json", report, "--bootstrap", "10"
    )
    assert code == EXIT_OK
    assert "(slice cache)" in stdout and "(split train)" in stdout
    data = json.loads(report.read_text())
    measured = data["measured"]
    assert measured["source"] == "cache" and measured["unit"] == "slices"
    cache = SliceCache.open(out)
    assert data["count"] == len(cache.rows("train")) == measured["cache"]["rows"]

    code, _, stderr = _run(capsys, "analyze", out, "--label", "4")
    assert code == EXIT_USAGE and "cannot apply to a cache" in stderr
    code, _, stderr = _run(capsys, "analyze", brats, "--split", "train")
    assert code == EXIT_USAGE and "--split applies to a cache" in stderr
    (out / "meta.json").unlink()
    (out / ".parts").mkdir()
    code, _, stderr = _run(capsys, "analyze", out)
    assert code == EXIT_FAILURE and "not a finished calfseg cache" in stderr


def test_prepare_synthetic(capsys, tmp_path: Path):
    out = tmp_path / "cache"
    code, stdout, stderr = _prepare(
        capsys, "--synthetic", "paper-like", "--out", out, "--cases", "3", "--size", "16"
    )
    assert code == EXIT_OK, stderr
    cache = SliceCache.open(out)
    assert cache.meta["size"] == [16, 16] and cache.meta["n_cases"] == 3
    assert cache.meta["source"]["layout"] == "synthetic"
    code, stdout, _ = _prepare(
        capsys, "--synthetic", "paper-like", "--out", out, "--cases", "3", "--size", "16"
    )
    assert code == EXIT_OK and "up to date" in stdout
    code, _, stderr = _prepare(capsys, "--synthetic", "nope", "--out", tmp_path / "x")
    assert code == EXIT_USAGE and "unknown --synthetic preset" in stderr


def test_prepare_seed_seeds_the_synthetic_cases_as_its_help_says(capsys, tmp_path: Path):
    # --seed reached the split only: every --synthetic cache was generated with seed 0
    images = {}
    for seed in ("0", "0", "1"):
        out = tmp_path / f"cache-{seed}-{len(images)}"
        argv = ["--synthetic", "paper-like", "--cases", "3", "--size", "16", "--seed", seed]
        code, _, stderr = _prepare(capsys, *argv, "--out", out)
        assert code == EXIT_OK, stderr
        images[(seed, len(images))] = np.asarray(SliceCache.open(out).images)
    (a, b, c) = images.values()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_prepare_synthetic_slices_per_case(capsys, tmp_path: Path):
    argv = ["--synthetic", "paper-like", "--cases", "3", "--slices", "5", "--size", "16"]
    code, _, stderr = _prepare(capsys, *argv, "--out", tmp_path / "cache")
    assert code == EXIT_OK, stderr
    cache = SliceCache.open(tmp_path / "cache")
    assert len(cache) == 15 and all(c["rows"][1] - c["rows"][0] == 5 for c in cache.meta["cases"])
    code, _, stderr = _prepare(capsys, tmp_path, "--slices", "5", "--out", tmp_path / "y")
    assert code == EXIT_USAGE and "--slices applies to --synthetic" in stderr


@pytest.mark.skipif(not BRATS2015_SUBSET.is_dir(), reason="shared BraTS subset not present")
@pytest.mark.slow
def test_end_to_end_on_the_brats_subset(capsys, tmp_path: Path):
    out = tmp_path / "cache"
    code, stdout, stderr = _run(
        capsys, "prepare", BRATS2015_SUBSET, "--out", out, "--size", "64", "--workers", "2",
        "--no-progress",
    )  # fmt: skip
    assert code == EXIT_OK, stderr
    cache = SliceCache.open(out)
    index = cache.index
    assert len(cache) == 1860 and cache.images.shape == (1860, 1, 64, 64)
    assert len(set(index["case_id"].tolist())) == 6
    assert sorted(set(index["modality"].tolist())) == ["flair", "t1c"]
    owners: dict[str, set[str]] = {}
    for case, split in zip(index["case_id"].tolist(), index["split"].tolist(), strict=True):
        owners.setdefault(case, set()).add(split)
    assert all(len(splits) == 1 for splits in owners.values())  # no case in two splits
    assert set().union(*owners.values()) == {"train", "val", "test"}
    assert np.isin(cache.masks[::97], (0, 1)).all()
    assert 0.4 < index["has_tumour"].mean() < 0.6  # about 48 % of its slices hold tumour

    code, stdout, _ = _run(capsys, "analyze", out, "--bootstrap", "20")
    assert code == EXIT_OK
    assert "1860 of 1860 (every row), 6 cases" in stdout
    assert "branch     log10" in stdout


@pytest.mark.parametrize("seed", range(4))
def test_splits_keep_a_patients_time_points_together(capsys, tmp_path: Path, seed: int):
    from ..data.sources.fakes import upenn_scan

    root = tmp_path / "upenn"
    for i in range(1, 7):
        upenn_scan(root, f"UPENN-GBM-0000{i}_11", seed=i)
    upenn_scan(root, "UPENN-GBM-00001_21", seed=9)
    out = tmp_path / "cache"
    code, _, err = _prepare(
        capsys, root, "--out", out, "--size", "8", "--val", "0.3", "--test", "0.3",
        "--seed", str(seed),
    )  # fmt: skip
    assert code == EXIT_OK, err
    index = SliceCache.open(out).index
    scans = {c: set(index["split"][index["case_id"] == c]) for c in set(index["case_id"])}
    assert scans["UPENN-GBM-00001_11"] == scans["UPENN-GBM-00001_21"]
    assert len(scans["UPENN-GBM-00001_11"]) == 1
    assert set(index["patient_id"][index["case_id"] == "UPENN-GBM-00001_21"]) == {"UPENN-GBM-00001"}


def test_re_preparing_with_other_options_needs_overwrite(capsys, brats: Path, tmp_path: Path):
    out = tmp_path / "cache"
    assert _prepare(capsys, brats, "--out", out, "--size", "8")[0] == EXIT_OK
    before = (out / "index.csv").read_text()
    code, _, stderr = _prepare(capsys, brats, "--out", out, "--size", "8", "--labels", "4")
    assert code == EXIT_FAILURE
    assert "other settings (labels null -> [4])" in stderr
    assert "--overwrite" in stderr and "another --out" in stderr and "Traceback" not in stderr
    assert (out / "index.csv").read_text() == before  # the cache is untouched
    code, _, stderr = _prepare(capsys, brats, "--out", out, "--size", "8", "--seed", "3")
    assert code == EXIT_FAILURE and "seed 0 -> 3" in stderr

    argv = (brats, "--out", out, "--size", "8", "--labels", "4", "--overwrite")
    code, stdout, stderr = _prepare(capsys, *argv)
    assert code == EXIT_OK and f"wrote {out}" in stdout
    assert re.search(r"changed \(digest [0-9a-f]{16} -> [0-9a-f]{16}\)", stderr), stderr
    code, stdout, stderr = _prepare(capsys, *argv)  # the same again: nothing to do
    assert code == EXIT_OK and "is up to date" in stdout and "changed" not in stderr
