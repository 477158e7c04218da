"""``calf export``: safetensors + JSON that predict and evaluate read exactly like the
checkpoint; malformed exports are refused naming the file."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from scipy import stats

from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_OK
from calfseg.data.cache import cache_digest
from calfseg.rule import select_branch
from calfseg.train import evaluate_checkpoint, load_checkpoint
from calfseg.train.checkpoint import CheckpointFileError
from calfseg.train.predict import predict_file
from calfseg.train.trained_model import load_trained_model

from .crafted_files import train_tiny_run


@pytest.fixture(scope="module")
def run(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(cache, tmp_path_factory.mktemp("export_run"))


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "model"
    code = main(["export", str(run), str(out)])
    assert code == EXIT_OK
    return out


def _cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _nifti(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    volume = (rng.random((30, 26, 4)) * 500).astype(np.float32)
    volume[8:16, 10:18, :] += 800  # a bright blob, so that some pixels may be predicted
    nib.save(nib.Nifti1Image(volume, np.diag([0.9, 0.9, 3.0, 1.0])), tmp_path / "in.nii.gz")
    return tmp_path / "in.nii.gz"


@pytest.mark.slow
def test_export_then_predict_gives_exactly_the_checkpoints_masks(
    capsys, run: Path, exported: Path, tmp_path: Path
):
    source = _nifti(tmp_path)
    code, _, err = _cli(capsys, "predict", run / "best.pt", source, tmp_path / "a.nii.gz")
    assert code == EXIT_OK, err
    code, _, err = _cli(capsys, "predict", exported, source, tmp_path / "b.nii.gz")
    assert code == EXIT_OK, err
    assert "warning:" not in err
    a = np.asarray(nib.load(tmp_path / "a.nii.gz").dataobj)
    b = np.asarray(nib.load(tmp_path / "b.nii.gz").dataobj)
    assert np.array_equal(a, b)
    # And on a PNG, through the Python API, given either file of the export.
    image = (np.random.default_rng(4).random((40, 36)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    with_ckpt = predict_file(run / "best.pt", tmp_path / "in.png", tmp_path / "a.png")
    with_export = predict_file(exported / "model.json", tmp_path / "in.png", tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(with_ckpt)), np.asarray(Image.open(with_export)))


def test_the_exported_weights_are_the_checkpoints(run: Path, exported: Path):
    weights = load_file(exported / "model.safetensors")
    state = load_checkpoint(run / "best.pt")["model"]
    assert weights.keys() == state.keys()
    assert all(torch.equal(weights[k], state[k]) for k in state)
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = load_trained_model(run / "best.pt").model(x)
        b = load_trained_model(exported).model(x)
    assert torch.equal(a, b) and a.std() > 0


def test_evaluating_the_export_equals_evaluating_the_checkpoint(
    run: Path, exported: Path, cache: Path
):
    a = evaluate_checkpoint(run / "best.pt", cache, "test", device="cpu", surface=False)
    b = evaluate_checkpoint(exported, cache, "test", device="cpu", surface=False)
    assert a["results"] == b["results"]
    assert b["cache"]["digest"] == b["cache"]["training_digest"] == cache_digest(cache)


def test_the_record_describes_the_model_and_its_cache(run: Path, exported: Path, cache: Path):
    record = json.loads((exported / "model.json").read_text())
    assert record["format"] == "calfseg.model/1" and record["calfseg_version"]
    assert record["architecture"] == {
        "model": "unet", "preset": "tiny", "encoder": None, "in_channels": 1, "size": [32, 32]
    }  # fmt: skip
    assert record["loss"] == {"name": "bce", "options": {}}
    meta = json.loads((cache / "meta.json").read_text())
    assert record["preprocessing"] == {"options": meta["options"], "image_dtype": "uint8"}
    assert record["cache"]["digest"] == cache_digest(cache)
    assert record["cache"]["path"] == str(cache.resolve())
    # The fingerprint against scipy on the train split's areas from index.csv.
    with open(cache / "index.csv", newline="") as handle:
        areas = [float(r["area"]) for r in csv.DictReader(handle) if r["split"] == "train"]
    s, k = stats.skew(areas), stats.kurtosis(areas)
    fingerprint = record["cache"]["fingerprint"]
    assert fingerprint["count"] == len(areas)
    assert fingerprint["skewness"] == pytest.approx(s, rel=1e-9)
    assert fingerprint["kurtosis"] == pytest.approx(k, rel=1e-9)
    assert fingerprint["branch"] == select_branch(s, k).branch
    state = load_checkpoint(run / "best.pt")
    assert record["training"]["best_epoch"] == state["best_epoch"] == 1
    assert record["training"]["best_score"] == pytest.approx(state["best_score"])
    blob = (exported / "model.safetensors").read_bytes()
    assert record["weights"]["sha256"] == hashlib.sha256(blob).hexdigest()


def test_export_refuses_to_overwrite_and_names_the_folder(capsys, run: Path, exported: Path):
    code, _, err = _cli(capsys, "export", run, exported)
    assert code == EXIT_FAILURE and "--overwrite" in err and str(exported) in err
    code, out, err = _cli(capsys, "export", run / "best.pt", exported, "--overwrite")
    assert code == EXIT_OK, err
    assert "model.safetensors" in out and "best epoch 1" in out
    code, _, err = _cli(capsys, "export", run / "missing.pt", exported)
    assert code == EXIT_FAILURE and "missing.pt" in err


def _copy_export(exported: Path, out: Path) -> Path:
    out.mkdir()
    for name in ("model.safetensors", "model.json"):
        (out / name).write_bytes((exported / name).read_bytes())
    return out


def _reseal(folder: Path) -> None:
    """Record the weights file's current SHA-256 (a malformed file that passes the check)."""
    record = json.loads((folder / "model.json").read_text())
    record["weights"]["sha256"] = hashlib.sha256(
        (folder / "model.safetensors").read_bytes()
    ).hexdigest()
    (folder / "model.json").write_text(json.dumps(record))


def _json_not_json(folder: Path) -> str:
    (folder / "model.json").write_text("{not json")
    return "model.json is not readable JSON"


def _json_without_architecture(folder: Path) -> str:
    record = json.loads((folder / "model.json").read_text())
    del record["architecture"]
    (folder / "model.json").write_text(json.dumps(record))
    return "model.json is a malformed model record: architecture"


def _weights_truncated(folder: Path) -> str:
    blob = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(blob[:100])
    _reseal(folder)
    return "model.safetensors is not a readable safetensors file"


def _weights_replaced(folder: Path) -> str:
    save_file({"w": torch.zeros(2)}, folder / "model.safetensors")
    return "model.safetensors does not match"


def _weights_of_another_network(folder: Path) -> str:
    save_file({"w": torch.zeros(2)}, folder / "model.safetensors")
    _reseal(folder)
    return "its weights do not fit a unet"


def _json_size_edited(folder: Path) -> str:
    record = json.loads((folder / "model.json").read_text())
    record["architecture"]["size"] = [64, 64]
    (folder / "model.json").write_text(json.dumps(record))
    return "model.json was edited after export: architecture: "


def _json_dtype_edited(folder: Path) -> str:
    record = json.loads((folder / "model.json").read_text())
    record["preprocessing"]["image_dtype"] = "float16"
    (folder / "model.json").write_text(json.dumps(record))
    return "model.json was edited after export: preprocessing: "


MALFORMED = {
    "json-size-edited": _json_size_edited,
    "json-dtype-edited": _json_dtype_edited,
    "json-not-json": _json_not_json,
    "json-without-architecture": _json_without_architecture,
    "weights-truncated": _weights_truncated,
    "weights-replaced": _weights_replaced,
    "weights-of-another-network": _weights_of_another_network,
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_export_is_refused_naming_the_file(
    capsys, exported: Path, tmp_path: Path, case: str
):
    folder = _copy_export(exported, tmp_path / "bad")
    message = MALFORMED[case](folder)
    with pytest.raises(CheckpointFileError, match=message):
        load_trained_model(folder)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "in.png")
    code, _, err = _cli(capsys, "predict", folder, tmp_path / "in.png", tmp_path / "m.png")
    assert code == EXIT_FAILURE and str(folder) in err and message in err
    assert not (tmp_path / "m.png").exists()


def test_an_export_without_its_weights_is_missing(capsys, exported: Path, tmp_path: Path):
    folder = _copy_export(exported, tmp_path / "half")
    (folder / "model.safetensors").unlink()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "in.png")
    code, _, err = _cli(capsys, "predict", folder, tmp_path / "in.png", tmp_path / "m.png")
    assert code == EXIT_FAILURE and "model.safetensors not found" in err


def test_predict_warns_when_the_model_has_no_preprocessing_record(
    capsys, exported: Path, tmp_path: Path
):
    folder = _copy_export(exported, tmp_path / "bare")
    record = json.loads((folder / "model.json").read_text())
    record["preprocessing"] = {"options": None, "image_dtype": None}
    (folder / "model.json").write_text(json.dumps(record))
    # an export of a calf-seg that recorded no preprocessing bound nothing in its weights
    save_file(load_file(folder / "model.safetensors"), folder / "model.safetensors")
    _reseal(folder)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "in.png")
    code, _, err = _cli(capsys, "predict", folder, tmp_path / "in.png", tmp_path / "m.png")
    assert code == EXIT_OK
    assert "calf predict: warning:" in err and "no record of its training cache's" in err
