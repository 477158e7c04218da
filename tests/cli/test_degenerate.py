"""Degenerate data is an error or a loud warning, never a silent pick: a label that never
occurs (calf prepare) and a train split without a lesion (calf train)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_OK

_PREPARE = ["prepare", "--synthetic", "paper-like", "--cases", "3", "--size", "32"]


@pytest.fixture(scope="module")
def lesion_free_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache prepared with a label the synthetic masks never hold."""
    cache = tmp_path_factory.mktemp("degenerate") / "cache"
    main([*_PREPARE, "--labels", "9", "--out", str(cache), "--no-progress"])
    return cache


def test_prepare_with_a_label_that_never_occurs_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    code = main([*_PREPARE, "--labels", "9", "--out", str(cache), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    areas = np.loadtxt(cache / "index.csv", delimiter=",", skiprows=1, usecols=_area_column(cache))
    assert areas.size > 0 and not areas.any()  # the independent count: no lesion pixel
    assert f"no slice of {cache} has a lesion" in err and "--labels 9" in err
    assert f"any of the {areas.size} slices" in err


def test_prepare_with_the_present_label_is_fine(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main([*_PREPARE, "--labels", "1", "--out", str(tmp_path / "c"), "--no-progress"])
    assert code == EXIT_OK and "lesion" not in capsys.readouterr().err


def test_training_on_a_split_without_a_lesion_fails_at_start_up(
    lesion_free_cache: Path, tmp_path: Path
) -> None:
    from calfseg.train import TrainConfig
    from calfseg.train.build import RunSetupError, open_split

    config = TrainConfig.tiny(lesion_free_cache, epochs=1, device="cpu", tensorboard=False)
    with pytest.raises(RunSetupError, match=r"train split .* has no slice with a lesion"):
        open_split(config, "train", train=True, purpose="training")


def test_calf_train_says_so_without_a_traceback(
    capsys: pytest.CaptureFixture[str], lesion_free_cache: Path, tmp_path: Path
) -> None:
    argv = ["train", "--data", str(lesion_free_cache), "--out", str(tmp_path / "run")]
    code = main([*argv, "--preset", "tiny", "--epochs", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != EXIT_OK and "has no slice with a lesion" in err and "Traceback" not in err


def _area_column(cache: Path) -> int:
    header = (cache / "index.csv").read_text().splitlines()[0].split(",")
    return header.index("area")


def test_prepare_in_python_refuses_the_same_and_warns_of_a_replaced_cache(tmp_path: Path) -> None:
    # these checks lived in calf prepare only: from Python a lesion-free cache passed
    from calfseg.data import prepare
    from calfseg.data.preparation.lesions import CacheReplacedWarning, NoLesionError

    cache = tmp_path / "cache"
    with pytest.raises(NoLesionError, match="has a lesion: --labels 9 selects no voxel") as err:
        prepare(None, cache, synthetic="paper-like", cases=3, size=32, labels=[9])
    assert err.value.report.status == "written" and (cache / "index.csv").is_file()
    with pytest.warns(CacheReplacedWarning, match=r"changed \(digest [0-9a-f]{16} -> "):
        prepare(None, cache, synthetic="paper-like", cases=3, size=32, overwrite=True)
