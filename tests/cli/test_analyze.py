"""`calf analyze`: options, output, JSON, plot, bad input and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from calfseg import __version__
from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

from ..method_rule import method_branch
from ..shared_data import BRATS2015_SUBSET as BRATS


def _strict_json(path: Path) -> dict[str, Any]:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON constant {token}")

    data: dict[str, Any] = json.loads(path.read_text(), parse_constant=refuse)
    return data


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["analyze", *[str(a) for a in argv], "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def mask_folder(tmp_path: Path) -> Path:
    """Two 2D masks (PNG, TIFF) and a 3D NIfTI volume with known areas, plus an image.

    Label-1 areas: png 3, tif 0 (label 4 only: 2). Volume slices (last axis): 0, 4, 9
    (label 1) plus 2 pixels of label 4 in slice 2. Every value > 0: 5, 2, 0, 4, 11.
    """
    root = tmp_path / "data"
    (root / "case1").mkdir(parents=True)
    png = np.zeros((4, 4), dtype=np.uint8)
    png[0, :3] = 1
    png[3, 3] = 4
    png[2, 2] = 4
    Image.fromarray(png).save(root / "case1" / "a_seg.png")
    tif = np.zeros((3, 3), dtype=np.uint8)
    tif[1, 1:] = 4
    tifffile.imwrite(root / "case1" / "b_seg.tif", tif)
    vol = np.zeros((5, 5, 3), dtype=np.float32)
    vol[:2, :2, 1] = 1
    vol[:3, :3, 2] = 1
    vol[4, :2, 2] = 4
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(root / "case1" / "c_seg.nii.gz"))
    image = np.random.default_rng(0).normal(size=(5, 5, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(root / "case1" / "t1.nii.gz"))
    return root


STATE_KEYS = ("count", "mean", "mean_lo", "m2", "m3", "m4")


def _state(report: dict[str, Any]) -> dict[str, Any]:
    """The moments a fingerprint document holds."""
    return {key: report[key] for key in STATE_KEYS}


def _analyze_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str | Path) -> Any:
    out = tmp_path / "out" / "report.json"
    code, _, err = _run(capsys, *argv, "--json", out)
    assert code == EXIT_OK, err
    return _strict_json(out)


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == EXIT_OK
    assert __version__ in capsys.readouterr().out
    assert main([]) == EXIT_USAGE
    assert "analyze" in capsys.readouterr().err


def test_glob_picks_masks_and_areas_are_per_slice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mask_folder: Path
) -> None:
    report = _analyze_json(capsys, tmp_path, mask_folder, "--mask-glob", "*_seg*")
    assert report["measured"]["files"]["read"] == 3 and report["measured"]["files"]["skipped"] == []
    assert [f["areas"] for f in report["measured"]["files"]["per_file"]] == [1, 1, 3]
    assert report["count"] == 5 and report["summary"]["n_empty"] == 1
    assert report["summary"]["empty_fraction"] == pytest.approx(0.2)
    assert (
        report["summary"]["quantiles"]["max"] == 11 and report["summary"]["quantiles"]["min"] == 0
    )
    assert report["measured"]["unit"] == "masks and slices"


def test_label_option_repeated_or_comma_separated(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mask_folder: Path
) -> None:
    repeated = _analyze_json(
        capsys, tmp_path, mask_folder, "--mask-glob", "*_seg*", "--label", "1", "--label", "4"
    )
    comma = _analyze_json(capsys, tmp_path, mask_folder, "--mask-glob", "*_seg*", "--label", "1,4")
    assert _state(repeated) == _state(comma)
    only_one = _analyze_json(capsys, tmp_path, mask_folder, "--mask-glob", "*_seg*", "--label", "1")
    assert only_one["summary"]["quantiles"]["max"] == 9 and only_one["summary"]["n_empty"] == 2
    assert only_one["measured"]["options"]["labels"] == [1]


def test_per_volume_and_exclude_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mask_folder: Path
) -> None:
    per_volume = _analyze_json(
        capsys, tmp_path, mask_folder, "--mask-glob", "*_seg*", "--per-volume"
    )
    assert per_volume["count"] == 3 and per_volume["summary"]["quantiles"]["max"] == 15  # 4 + 11
    no_empty = _analyze_json(
        capsys, tmp_path, mask_folder, "--mask-glob", "*_seg*", "--exclude-empty"
    )
    assert (
        no_empty["count"] == 4
        and no_empty["summary"]["n_measured"] == 5
        and no_empty["summary"]["excluded_empty"]
    )


def test_json_has_the_documented_keys_and_is_strict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "same.npy", np.ones((3, 3, 4), dtype=np.uint8))  # all areas equal
    report = _analyze_json(capsys, tmp_path, tmp_path / "same.npy", "--batch-size", "2")
    for key in [
        "format",
        "calfseg_version",
        *STATE_KEYS,
        "skewness",
        "kurtosis",
        "branch",
        "condition",
        "thresholds",
        "measured",
        "summary",
    ]:
        assert key in report, key
    assert report["format"] == "calfseg.fingerprint/1"
    assert report["skewness"] is None and report["branch"] == "bce_dice"
    for key in ["n_measured", "n_empty", "empty_fraction", "quantiles", "batch", "bootstrap"]:
        assert key in report["summary"], key
    for key in ["path", "source", "unit", "files", "options"]:
        assert key in report["measured"], key


def test_batch_frequencies_sum_to_one_and_repeat_under_a_seed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    areas = np.random.default_rng(0).integers(0, 60, size=(8, 8, 200)) < 3
    np.save(tmp_path / "v.npy", areas)
    argv = (tmp_path / "v.npy", "--batch-size", "16", "--batches", "200", "--seed", "5")
    one = _analyze_json(capsys, tmp_path, *argv)
    two = _analyze_json(capsys, tmp_path, *argv)
    freqs = one["summary"]["batch"]["branch_frequencies"]
    assert set(freqs) == {"fisher", "logit", "arcsine", "log10", "ln", "bce_dice"}
    assert sum(freqs.values()) == pytest.approx(1.0)
    assert one["summary"] == two["summary"]
    without = _analyze_json(capsys, tmp_path, tmp_path / "v.npy")
    assert without["summary"]["batch"] is None


def test_text_output_reports_statistics_and_the_pick(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    areas = [0] * 80 + [10] * 15 + [30] * 5  # right-skewed: S > 1
    volume = np.zeros((6, 6, len(areas)), dtype=np.uint8)
    for i, a in enumerate(areas):
        volume.reshape(36, -1)[:a, i] = 1
    np.save(tmp_path / "skewed.npy", volume)
    code, out, _ = _run(capsys, tmp_path / "skewed.npy", "--batch-size", "10")
    assert code == EXIT_OK
    assert "100 slices" in out and "80 (80.0%)" in out
    assert "log10  (S >= 1)" in out and "1000 of 10" in out and "bootstrap" in out


def test_plot_writes_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.random.default_rng(1).integers(0, 2, size=(6, 6, 30)))
    plot = tmp_path / "figs" / "areas.png"
    code, _, err = _run(capsys, tmp_path / "v.npy", "--plot", plot)
    assert code == EXIT_OK, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_contour_area_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mask = np.zeros((6, 6), dtype=np.uint8)
    mask[1:4, 1:4] = 1
    np.save(tmp_path / "m.npy", mask)
    report = _analyze_json(capsys, tmp_path, tmp_path / "m.npy", "--area", "contour")
    assert report["summary"]["quantiles"]["max"] == 4  # polygon area of a 3x3 block
    code, _, err = _run(capsys, tmp_path / "m.npy", "--area", "contour", "--per-volume")
    assert code == EXIT_USAGE and "--area contour" in err


# -- bad input ----------------------------------------------------------------------------


def test_truncated_file_stops_with_its_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "cut.nii.gz"
    volume = np.random.default_rng(0).integers(0, 3, size=(30, 30, 20)).astype(np.uint8)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))
    path.write_bytes(path.read_bytes()[:200])
    code, out, err = _run(capsys, tmp_path)
    assert code == EXIT_FAILURE and out == ""
    assert f"{path}: cannot read the file" in err


def test_image_in_the_folder_stops_with_a_hint(
    capsys: pytest.CaptureFixture[str], mask_folder: Path
) -> None:
    code, _, err = _run(capsys, mask_folder)
    assert code == EXIT_FAILURE
    assert "t1.nii.gz: has non-integer values" in err and "--mask-glob" in err


def test_many_distinct_values_look_like_an_image(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10)).save(tmp_path / "p.png")
    code, _, err = _run(capsys, tmp_path / "p.png")
    assert code == EXIT_FAILURE and "p.png: looks like an image, not a mask" in err
    assert _run(capsys, tmp_path / "p.png", "--max-labels", "100")[0] == EXIT_OK


def test_on_error_skip_lists_skipped_files_and_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mask_folder: Path
) -> None:
    out_json = tmp_path / "r.json"
    code, out, err = _run(capsys, mask_folder, "--on-error", "skip", "--json", out_json)
    assert code == EXIT_FAILURE
    assert "5 masks and slices" in out  # the readable masks are still analysed
    assert "skipped 1 file(s):" in err and "t1.nii.gz: has non-integer values" in err
    assert "1 of 4 mask files skipped" in err
    skipped = _strict_json(out_json)["measured"]["files"]["skipped"]
    assert [Path(s["path"]).name for s in skipped] == ["t1.nii.gz"]


def test_no_mask_files_and_missing_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mask_folder: Path
) -> None:
    code, _, err = _run(capsys, mask_folder, "--mask-glob", "*label*")
    assert code == EXIT_FAILURE and f"{mask_folder}: no mask files matching '*label*'" in err
    code, _, err = _run(capsys, tmp_path / "nowhere")
    assert code == EXIT_FAILURE and "no such file or folder" in err  # a missing input: 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.ones((3, 3, 3), dtype=np.uint8))
    assert _run(capsys, tmp_path / "m.npy", "--label", "one")[0] == EXIT_USAGE
    assert _run(capsys, tmp_path / "m.npy", "--batch-size", "0")[0] == EXIT_USAGE
    code, _, err = _run(capsys, tmp_path / "m.npy", "--batch-size", "4")
    assert code == EXIT_USAGE and "larger than the number of areas (3)" in err


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("nibabel", ["v.nii.gz", "--no-progress"]),
        ("matplotlib.figure", ["v.nii.gz", "--no-progress", "--plot", "p.png"]),
        ("cv2", ["v.nii.gz", "--no-progress", "--area", "contour"]),
    ],
)
def test_missing_optional_package_names_the_extra(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    module: str,
    argv: list[str],
) -> None:
    nib.save(
        nib.Nifti1Image(np.ones((3, 3, 2), dtype=np.uint8), np.eye(4)), str(tmp_path / "v.nii.gz")
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)
    code = main(["analyze", *argv])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert "pip install 'calf-seg[" in err and "Traceback" not in err


# -- fingerprints -------------------------------------------------------------------------


def test_a_json_report_can_be_analysed_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    areas = np.random.default_rng(2).integers(0, 40, size=(7, 7, 60)) < 4
    np.save(tmp_path / "v.npy", areas)
    report = _analyze_json(capsys, tmp_path, tmp_path / "v.npy")
    fingerprint = tmp_path / "out" / "report.json"
    code, out, _ = _run(capsys, fingerprint, "--batch-size", "8")
    assert code == EXIT_OK
    assert f"{report['branch']}  ({report['condition']})" in out
    assert "--batch-size ignored" in out and "fingerprint file of masks" in out
    code, _, err = _run(capsys, fingerprint, "--exclude-empty")
    assert code == EXIT_USAGE and "--exclude-empty cannot apply to a fingerprint" in err


def test_console_entry_point_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "calfseg.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and __version__ in done.stdout


# -- the real data ------------------------------------------------------------------------


@pytest.mark.slow
def test_brats_subset_tumour_slices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if not BRATS.is_dir():
        pytest.skip(f"{BRATS} is not available")
    report = _analyze_json(
        capsys,
        tmp_path,
        BRATS,
        "--mask-glob",
        "OTMultiClass*",
        "--exclude-empty",
        "--bootstrap",
        "20",
    )
    assert report["count"] == 450 and report["summary"]["n_measured"] == 930
    assert report["skewness"] == pytest.approx(0.72, abs=0.01)
    assert report["branch"] == "ln" and report["condition"] == "0.5 <= S < 1"


# -- dataset folders: only the layout's label files -----------------------------------------


@pytest.mark.parametrize("on_error", ["stop", "skip"])
@pytest.mark.slow
def test_brats_folder_reads_only_the_label_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, on_error: str
) -> None:
    """brainmask.nii.gz and the scans beside OTMultiClass.nii.gz are never read: the same
    6 files with and without --on-error skip, and the pick stays log10."""
    if not BRATS.is_dir():
        pytest.skip(f"{BRATS} is not available")
    out = tmp_path / "a.json"
    code, text, err = _run(capsys, BRATS, "--on-error", on_error, "--bootstrap", "0", "--json", out)
    assert code == EXIT_OK, err
    report = _strict_json(out)
    read = [Path(f["path"]) for f in report["measured"]["files"]["per_file"]]
    expected = sorted(BRATS.glob("*/OTMultiClass.nii.gz"))
    assert len(expected) == 6 and read == expected
    assert (
        report["measured"]["files"]["layout"] == "brats2015"
        and report["measured"]["files"]["skipped"] == []
    )
    assert "brainmask" not in text
    for path in expected:  # few files: every one is named in the printout
        assert str(path) in text
    assert report["skewness"] == pytest.approx(1.479, abs=5e-4)
    assert report["kurtosis"] == pytest.approx(1.490, abs=5e-4)
    assert report["branch"] == "log10"


def test_layout_none_searches_every_mask_like_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    case = tmp_path / "brats_2013_pat0001_1"
    case.mkdir()
    label = np.zeros((4, 4, 2), dtype=np.uint8)
    label[0, 0, 0] = 1
    for name in ("OTMultiClass.nii.gz", "brainmask.nii.gz"):
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(case / name))
    flair = np.zeros((4, 4, 2), dtype=np.float32)
    nib.save(nib.Nifti1Image(flair, np.eye(4)), str(case / "Flair_x.nii.gz"))
    nib.save(nib.Nifti1Image(flair, np.eye(4)), str(case / "T1c_x.nii.gz"))
    code, text, _ = _run(capsys, tmp_path, "--bootstrap", "0")
    assert code == EXIT_OK and "1 read" in text and "layout brats2015" in text
    code, text, _ = _run(capsys, tmp_path, "--bootstrap", "0", "--layout", "none")
    assert code == EXIT_OK and "4 read" in text and "brainmask" in text
    code, _, err = _run(capsys, tmp_path, "--layout", "brats2015", "--mask-glob", "*")
    assert code == EXIT_USAGE and "--mask-glob" in err
    code, _, err = _run(capsys, tmp_path, "--layout", "nope")
    assert code == EXIT_USAGE and "unknown --layout 'nope'" in err and "brats2021" in err


# -- integer label maps with many labels ------------------------------------------------------


def test_label_map_with_300_labels_is_a_mask(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from scipy import stats

    rng = np.random.default_rng(7)
    seg = rng.integers(0, 300, size=(40, 40, 30), dtype=np.int16)  # labels 0..299
    blob = rng.random((40, 40, 30)) < np.linspace(0.0, 0.4, 30) ** 2  # label 7 grows
    seg[blob] = 7
    nib.save(nib.Nifti1Image(seg, np.eye(4)), str(tmp_path / "seg.nii.gz"))
    out = tmp_path / "a.json"
    code, _, err = _run(
        capsys, tmp_path / "seg.nii.gz", "--label", "7", "--bootstrap", "0", "--json", out
    )
    assert code == EXIT_OK, err
    report = _strict_json(out)
    areas = (seg == 7).sum(axis=(0, 1)).astype(np.float64)  # one per axial slice
    s, k = float(stats.skew(areas)), float(stats.kurtosis(areas))
    assert report["count"] == 30
    assert report["skewness"] == pytest.approx(s, rel=1e-9, abs=1e-12)
    assert report["kurtosis"] == pytest.approx(k, rel=1e-9, abs=1e-12)
    assert report["branch"] == method_branch(s, k)


def test_float_image_refusal_names_the_overriding_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    volume = np.arange(4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3)  # 48 whole numbers
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(tmp_path / "ct.nii.gz"))
    code, _, err = _run(capsys, tmp_path / "ct.nii.gz")
    assert code == EXIT_FAILURE and "looks like an image" in err and "--max-labels" in err
    code, _, _ = _run(capsys, tmp_path / "ct.nii.gz", "--max-labels", "64", "--bootstrap", "0")
    assert code == EXIT_OK


# -- degenerate data --------------------------------------------------------------------------


def test_exclude_empty_on_all_empty_masks_is_an_error_with_counts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "m.npy", np.zeros((4, 4, 5), dtype=np.uint8))
    code, out, err = _run(capsys, tmp_path / "m.npy", "--exclude-empty")
    assert code == EXIT_FAILURE and "branch" not in out
    assert "all 5 masks are empty" in err and "--exclude-empty" in err


def test_all_empty_masks_warn_that_the_pick_is_a_fallback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "m.npy", np.zeros((4, 4, 5), dtype=np.uint8))
    code, out, err = _run(capsys, tmp_path / "m.npy", "--label", "3")
    assert code == EXIT_OK and "bce_dice" in out
    assert "calf analyze: warning:" in err and "all 5 masks are empty" in err and "fallback" in err


def test_an_empty_split_of_a_cache_is_an_error_with_counts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    argv = ["prepare", "--synthetic", "paper-like", "--cases", "3", "--size", "32"]
    assert main([*argv, "--val", "0", "--out", str(cache), "--no-progress"]) == EXIT_OK
    capsys.readouterr()
    code, out, err = _run(capsys, cache, "--split", "val")
    assert code == EXIT_FAILURE and out == ""
    assert "split val has no rows" in err and "val 0" in err and "train " in err


def test_an_output_that_would_replace_an_input_mask_is_refused(capsys, tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(3):
        np.save(masks / f"m{i}.npy", np.eye(8, dtype=np.uint8) * (i + 1))
    before = (masks / "m1.npy").read_bytes()
    for argv in ([masks / "m1.npy", "--json", masks / "m1.npy"],  # the input itself
                 [masks, "--json", masks / "m1.npy"],  # a file of the input folder
                 [masks, "--plot", masks / "m1.npy.png"]):  # fmt: skip
        if argv[-1].suffix == ".png":
            argv[-1].write_bytes(b"not ours to replace")
        code, _, err = _run(capsys, *argv)
        assert code == 2 and "writing it would replace it" in err, err
    assert (masks / "m1.npy").read_bytes() == before
    (masks / "m1.npy.png").unlink()
    code, _, err = _run(capsys, masks, "--json", masks / "new.json")  # a new file there: fine
    assert code == 0, err
