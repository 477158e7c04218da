"""The trainers' pieces that need no training: class names from dataset.json, the ignore
label refusal, and `calf nnunet train` finding the trainer through nnUNet_extTrainer."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

pytest.importorskip("nnunetv2", reason="the nnunet extra is not installed")

from nnunetv2.utilities.label_handling.label_handling import LabelManager

from calfseg.cli import main
from calfseg.nnunet import training
from calfseg.nnunet.trainers import (
    IgnoreLabelError,
    class_names,
    nnUNetTrainerCALF,
    nnUNetTrainerCALF_1epoch,
)


def test_softmax_class_names_follow_the_output_channels() -> None:
    labels = {"background": 0, "edema": 2, "necrosis": 1}
    manager = LabelManager(labels, regions_class_order=None)
    assert class_names({"labels": labels}, manager) == ["necrosis", "edema"]


def test_region_names_are_the_regions_in_dataset_json_order() -> None:
    labels = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing": 3}
    manager = LabelManager(labels, regions_class_order=[1, 2, 3])
    assert manager.has_regions
    assert class_names({"labels": labels}, manager) == ["whole tumor", "tumor core", "enhancing"]


def test_an_ignore_label_is_refused_with_the_alternative() -> None:
    fake = SimpleNamespace(label_manager=SimpleNamespace(has_ignore_label=True, ignore_label=3))
    with pytest.raises(
        IgnoreLabelError, match=r"'ignore': 3.*Train this dataset with nnUNetTrainer"
    ):
        nnUNetTrainerCALF._build_loss(fake)  # type: ignore[arg-type]


def test_train_finds_the_trainer_through_ext_trainer(monkeypatch, tmp_path) -> None:
    """`calf nnunet train` hands nnU-Net's run_training a trainer name that nnU-Net's own
    lookup resolves to our class, without any module in nnunetv2's folder."""
    from nnunetv2.run import run_training as run_module
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    found = {}

    def fake_run_training(dataset, configuration, fold, trainer_class_name, **kwargs):
        found["class"] = recursive_find_trainer_class_by_name(trainer_class_name)
        found["args"] = (dataset, configuration, fold, kwargs["device"].type)

    monkeypatch.setattr(run_module, "run_training", fake_run_training)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    (tmp_path / "Dataset990_Tiny").mkdir()
    (tmp_path / "Dataset990_Tiny" / "nnUNetPlans.json").write_text("{}")
    training.train("990", "2d", "0", trainer="nnUNetTrainerCALF_1epoch", device="cpu")
    assert found["class"] is nnUNetTrainerCALF_1epoch
    assert found["args"] == ("990", "2d", "0", "cpu")
    assert "nnUNet_extTrainer" not in os.environ  # restored
    training.train("Dataset990_Tiny", "2d", "0")  # the default device is the one present
    import torch

    assert found["args"][3] == ("cuda" if torch.cuda.is_available() else "cpu")  # Linux: no MPS


def test_an_unplanned_dataset_is_named_with_the_command_to_plan_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    assert main(["nnunet", "train", "991", "2d", "0", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "dataset 991 is not in nnUNet_preprocessed" in err
    assert "nnUNetv2_plan_and_preprocess -d 991" in err
    (tmp_path / "Dataset991_Other").mkdir()  # a folder without plans (another -p, or none)
    assert main(["nnunet", "train", "Dataset991_Other", "2d", "0", "--device", "cpu"]) == 1
    assert "has no nnUNetPlans.json" in capsys.readouterr().err


def test_train_names_unset_folders_and_bad_choices(monkeypatch, capsys) -> None:
    monkeypatch.delenv("nnUNet_results", raising=False)
    monkeypatch.setenv("nnUNet_preprocessed", "/somewhere")
    assert main(["nnunet", "train", "990", "2d", "0", "--device", "cpu"]) == 1
    assert "nnUNet_results are not set" in capsys.readouterr().err
    assert main(["nnunet", "train", "990", "2d", "0", "-tr", "nnUNetTrainer"]) == 2
    assert "unknown trainer 'nnUNetTrainer'" in capsys.readouterr().err
    assert main(["nnunet", "train", "990", "2d", "0", "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_trainer_module_imports_losses_and_nnunetv2_only() -> None:
    """nnU-Net imports the trainer module while it searches for trainers: it must not pull in
    calf-seg's command line, benchmark, training or data layers."""
    code = (
        "import sys\n"
        "import calfseg.nnunet.trainers\n"
        "layers = ('calfseg.cli', 'calfseg.bench', 'calfseg.train', 'calfseg.data')\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(layers))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
