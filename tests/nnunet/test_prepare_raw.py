"""`calf prepare` reads the raw dataset nnU-Net trains on, by auto-detection: the same cases
benchmarked by calf-seg and trained by nnU-Net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from calfseg.cli import main
from calfseg.data.cache import SliceCache
from tests.nnunet.raw_datasets import write_v2_png


def test_calf_prepare_detects_and_reads_an_nnunet_raw_dataset(tmp_path: Path, capsys) -> None:
    root = write_v2_png(tmp_path / "raw", 990, cases=6)
    out = tmp_path / "cache"
    code = main(
        [
            "prepare",
            str(root),
            "--out",
            str(out),
            "--modalities",
            "all",
            "--size",
            "64",
            "--mask-resize",
            "nearest",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "layout: nnunet (detected)" in captured.err
    cache = SliceCache.open(out)
    assert len(cache) == 6 and set(cache.index["modality"]) == {"grey"}
    # Every label > 0 (outer and inner) is the foreground: the mask equals label > 0.
    row = int(np.flatnonzero(cache.index["case_id"] == "disc_003")[0])
    label = np.asarray(Image.open(root / "labelsTr" / "disc_003.png"))
    np.testing.assert_array_equal(cache.masks[row], (label > 0).astype(np.uint8))
