"""One fingerprint, three readers: CALFLoss.fit(file), build_loss("calf-dataset") and
`calf analyze --json` give the same S, K and branch for the same masks, and those are
scipy's skewness and excess kurtosis of the areas with the rule written out here
(docs/method.md, section 3)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from calfseg.cli import main
from calfseg.losses import CALFLoss, build_loss

from ..method_rule import method_branch


@pytest.fixture
def masks(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A folder of 2D masks with known areas (a right-skewed set, plus two empties)."""
    areas = [0, 0, 4, 9, 9, 16, 25, 36, 100, 196, 400]
    folder = tmp_path / "masks"
    folder.mkdir()
    for i, area in enumerate(areas):
        mask = np.zeros((24, 24), dtype=np.uint8)
        side = math.isqrt(area)  # every area is a square number
        mask[:side, :side] = 1
        np.save(folder / f"m{i:02d}.npy", mask)
    return folder, np.asarray(areas, dtype=np.float64)


def test_fit_registry_and_cli_agree_with_scipy(
    masks: tuple[Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, areas = masks
    s, k = float(sps.skew(areas)), float(sps.kurtosis(areas))
    expected = method_branch(s, k)

    out = tmp_path / "fp.json"
    assert main(["analyze", str(folder), "--json", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    document = json.loads(out.read_text())
    fitted = CALFLoss("dataset").fit(out).last_selection
    built = build_loss("calf-dataset", fingerprint=out).last_selection

    assert document["count"] == areas.size
    for skewness, kurtosis, branch in [
        (document["skewness"], document["kurtosis"], document["branch"]),
        (fitted.skewness, fitted.kurtosis, fitted.branch),
        (built.skewness, built.kurtosis, built.branch),
    ]:
        assert skewness == pytest.approx(s, rel=1e-12)
        assert kurtosis == pytest.approx(k, rel=1e-12)
        assert branch == expected
