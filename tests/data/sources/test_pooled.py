"""Pooling several dataset folders into one cache, as the paper pools its four datasets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from calfseg.cli import main
from calfseg.cli.common import EXIT_OK, EXIT_USAGE
from calfseg.data.cache import SliceCache
from calfseg.data.preparation.pipeline import prepare_cache
from calfseg.data.preparation.source import pooled_source
from calfseg.data.preprocess import PreprocessOptions
from calfseg.data.sources import CaseError
from calfseg.data.sources.pooled import open_pooled
from calfseg.data.splits.options import SplitOptions

from .fakes import (
    SHAPE,
    brats2021_case,
    image_data,
    label_data,
    lgg_1p19q_slices,
    upenn_scan,
    write_nifti,
)

LGG_SLICES = 5


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """Two BraTS 2021 cases (flair, t1, t1c, t2; 4 axial slices) and three LGG-1p19q
    patients (T2 slices only, 5 each)."""
    brats, lgg = tmp_path / "BraTS2021", tmp_path / "LGG"
    for i in range(2):
        brats2021_case(brats, f"BraTS2021_0000{i}", seed=i)
    for patient in ("LGG-104", "LGG-203", "LGG-210"):
        lgg_1p19q_slices(lgg, patient, slices=LGG_SLICES)
    return brats, lgg


def _rows_expected() -> dict[str, int]:
    # paper modalities: BraTS gives FLAIR, T2 and T1c (3 samples per slice); LGG gives T2.
    return {"brats2021": 2 * SHAPE[2] * 3, "lgg-1p19q": 3 * LGG_SLICES}


def _check_pooled_cache(cache: SliceCache) -> None:
    index = cache.index
    datasets, counts = np.unique(index["dataset"], return_counts=True)
    assert dict(zip(datasets.tolist(), counts.tolist(), strict=True)) == _rows_expected()
    ids = sorted(set(index["case_id"].tolist()))
    assert ids == [
        "brats2021/BraTS2021_00000",
        "brats2021/BraTS2021_00001",
        "lgg-1p19q/LGG-104",
        "lgg-1p19q/LGG-203",
        "lgg-1p19q/LGG-210",
    ]
    # Each id belongs to one dataset, and its prefix names it.
    for case_id, dataset in zip(index["case_id"], index["dataset"], strict=True):
        assert case_id.startswith(f"{dataset}/")
    # A case-level split: every patient's rows in one part.
    parts: dict[str, set[str]] = defaultdict(set)
    for case_id, split in zip(index["case_id"], index["split"], strict=True):
        parts[case_id].add(split)
    assert all(len(p) == 1 for p in parts.values()), parts


def test_two_layouts_pool_into_one_cache(tmp_path: Path, roots: tuple[Path, Path]):
    source, message = pooled_source(list(roots))
    assert "-> brats2021 (detected)" in message and "-> lgg-1p19q (detected)" in message
    options = PreprocessOptions(size=8)
    splits = SplitOptions(val=0.0, test=0.4, seed=3)
    report = prepare_cache(source, tmp_path / "pooled", options, splits)
    assert report.processed == 5 and not report.skipped
    cache = SliceCache.open(tmp_path / "pooled")
    _check_pooled_cache(cache)
    # Stratified by dataset: 0.6/0.4 of 2 BraTS cases and of 3 LGG cases, each on its own.
    rows = zip(cache.index["case_id"], cache.index["split"], strict=True)
    test_cases = {c for c, s in rows if s == "test"}
    by_dataset = [sum(c.startswith(d) for c in test_cases) for d in ("brats2021", "lgg-1p19q")]
    assert by_dataset == [1, 1]
    assert cache.meta["source"]["layout"] == "pooled"
    members = cache.meta["source"]["options"]["pooled"]
    assert [m.split("=")[0] for m in members] == ["brats2021", "lgg-1p19q"]


def test_calf_prepare_takes_several_folders(capsys, tmp_path: Path, roots: tuple[Path, Path]):
    out = tmp_path / "pooled"
    argv = ["prepare", *map(str, roots), "--out", str(out), "--size", "8"]
    code = main([*argv, "--no-progress", "--workers", "1"])
    _, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert "pooling 2 datasets" in err
    _check_pooled_cache(SliceCache.open(out))

    code = main(
        ["prepare", *map(str, roots), "--out", str(tmp_path / "x"), "--layout", "brats2021"]
    )
    _, err = capsys.readouterr()
    assert code == EXIT_USAGE and "--layout lists 1 layout(s) for 2 folders" in err


def test_same_case_id_in_two_datasets_stays_two_cases(tmp_path: Path):
    lgg_1p19q_slices(tmp_path / "lgg", "LGG-104", slices=2)
    other = tmp_path / "other"
    write_nifti(other / "img.nii.gz", image_data(1))
    write_nifti(other / "seg.nii.gz", label_data())
    (other / "manifest.csv").write_text("case_id,image,mask\nLGG-104,img.nii.gz,seg.nii.gz\n")
    pool, _ = open_pooled([tmp_path / "lgg", other])
    cases = pool.find_cases()
    assert [(c.dataset, c.case_id) for c in cases] == [
        ("folder", "folder/LGG-104"),
        ("lgg-1p19q", "lgg-1p19q/LGG-104"),
    ]
    volumes = pool.load(cases[0])
    assert volumes.case_id == "folder/LGG-104" and volumes.images["image"].shape == SHAPE


def test_patients_with_several_scans_keep_one_pooled_patient_id(tmp_path: Path):
    for scan in ("UPENN-GBM-00001_11", "UPENN-GBM-00001_21"):
        upenn_scan(tmp_path / "upenn", scan)
    lgg_1p19q_slices(tmp_path / "lgg", "LGG-104", slices=2)
    pool, _ = open_pooled([tmp_path / "upenn", tmp_path / "lgg"], labels="automated")
    patients = {c.case_id: c.patient for c in pool.find_cases()}
    assert patients == {
        "lgg-1p19q/LGG-104": "lgg-1p19q/LGG-104",
        "upenn-gbm/UPENN-GBM-00001_11": "upenn-gbm/UPENN-GBM-00001",
        "upenn-gbm/UPENN-GBM-00001_21": "upenn-gbm/UPENN-GBM-00001",
    }


def test_a_failing_case_is_named_as_the_pool_names_it(tmp_path: Path):
    lgg_1p19q_slices(tmp_path / "lgg", "LGG-104", slices=2)
    (tmp_path / "lgg" / "LGG-104" / "T2" / "t2_slice_02.png").write_bytes(b"not a png")
    brats2021_case(tmp_path / "brats", "BraTS2021_00000")
    pool, _ = open_pooled([tmp_path / "brats", tmp_path / "lgg"])
    lgg = next(c for c in pool.find_cases() if c.dataset == "lgg-1p19q")
    with pytest.raises(CaseError, match=r"^case lgg-1p19q/LGG-104 \(.*t2_slice_02.png\)"):
        pool.load(lgg)


def test_pooling_errors_say_what_to_do(tmp_path: Path, roots: tuple[Path, Path]):
    brats, lgg = roots
    with pytest.raises(ValueError, match="at least two dataset folders, got 1"):
        open_pooled([brats])
    second = tmp_path / "more"
    brats2021_case(second, "BraTS2021_00009")
    with pytest.raises(ValueError, match="several folders have the layout brats2021"):
        open_pooled([brats, second])
    with pytest.raises(ValueError, match=r"no pooled layout takes the option\(s\) manifest"):
        open_pooled([brats, lgg], manifest=tmp_path / "m.csv")
    with pytest.raises(ValueError, match="unknown layout 'brats'"):
        open_pooled([brats, lgg], ["brats", "auto"])
