"""The issue's "done when", on CPU: a tiny 2D dataset in nnU-Net's raw layout is planned and
preprocessed by nnU-Net's own command, ``calf nnunet register`` makes the CALF trainers
findable, ``nnUNetv2_train ID 2d 0 -tr nnUNetTrainerCALF_1epoch -device cpu`` runs to the end
(250 training iterations, 50 validation iterations, the final sliding-window validation) and
leaves nnU-Net's final checkpoint and the CALF branch log; ``calf nnunet unregister`` removes
the module again.

Registration writes into a copy of the installed nnunetv2 (first on PYTHONPATH of the
subprocesses), never into the environment's own package. The network nnU-Net plans is
shrunk in the plans file (tests/nnunet/tiny_plans.py) so that the epoch takes seconds; the
batch is 8 so that the per-batch statistics are defined (two areas always give S = 0).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nnunet.raw_datasets import write_v2_png
from tests.nnunet.tiny_plans import shrink_2d_plans

pytestmark = pytest.mark.slow  # trains real runs: the full tier only

nnunetv2 = pytest.importorskip("nnunetv2", reason="the nnunet extra is not installed")

DATASET_ID = 990
BIN = Path(sys.executable).parent


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_register_plan_train_one_epoch_unregister(tmp_path: Path) -> None:
    raw, preprocessed, results = tmp_path / "raw", tmp_path / "pre", tmp_path / "results"
    for folder in (raw, preprocessed, results):
        folder.mkdir()
    write_v2_png(raw, DATASET_ID, cases=10)
    package_copy = tmp_path / "site"
    shutil.copytree(
        Path(nnunetv2.__file__).parent,
        package_copy / "nnunetv2",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(package_copy), os.environ.get("PYTHONPATH", "")]),
        "nnUNet_raw": str(raw),
        "nnUNet_preprocessed": str(preprocessed),
        "nnUNet_results": str(results),
        "nnUNet_n_proc_DA": "1",  # the planner needs >= 1
        "nnUNet_def_n_proc": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.pop("nnUNet_extTrainer", None)

    _run(
        [str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "2d", "-np", "1"],
        env,
        tmp_path,
    )
    dataset_name = f"Dataset{DATASET_ID:03d}_Discs"
    shrink_2d_plans(preprocessed / dataset_name, batch_size=8)

    registered = package_copy / "nnunetv2/training/nnUNetTrainer/variants/calfseg_trainers.py"
    done = _run([str(BIN / "calf"), "nnunet", "register"], env, tmp_path)
    assert registered.is_file() and str(registered) in done.stdout
    try:
        train_env = {**env, "nnUNet_n_proc_DA": "0"}  # augmentation in the main process
        _run(
            [
                str(BIN / "nnUNetv2_train"),
                str(DATASET_ID),
                "2d",
                "0",
                "-tr",
                "nnUNetTrainerCALF_1epoch",
                "-device",
                "cpu",
            ],
            train_env,
            tmp_path,
        )
    finally:
        _run([str(BIN / "calf"), "nnunet", "unregister"], env, tmp_path)
    assert not registered.exists()

    fold = results / dataset_name / "nnUNetTrainerCALF_1epoch__nnUNetPlans__2d" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    assert (fold / "validation" / "summary.json").is_file()  # the final validation ran

    log = json.loads((fold / "calf_branches.json").read_text())
    assert log["trainer"] == "nnUNetTrainerCALF_1epoch"
    assert log["training"] == "softmax"
    assert log["classes"] == ["outer", "inner"]
    (epoch,) = log["epochs"]
    assert epoch["epoch"] == 0 and epoch["steps"] == 250
    for name in ("outer", "inner"):
        assert sum(epoch["branches"][name].values()) == 250
    (training_log,) = fold.glob("training_log_*.txt")
    assert "CALF branches (full-resolution output" in training_log.read_text()
