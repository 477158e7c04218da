"""train_run writes the run folder of the contract; evaluate_checkpoint reads it back, and
refuses a training cache prepared again since training."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_OK
from calfseg.data import SliceDataset
from calfseg.data.cache import cache_digest
from calfseg.train import TrainConfig, evaluate_checkpoint, train_run
from calfseg.train.cache_record import CacheChangedError
from calfseg.train.evaluate import PER_IMAGE_COLUMNS

from .crafted_files import train_tiny_run


@pytest.mark.slow
def test_train_run_writes_the_run_folder_contract(tiny_config: TrainConfig, tmp_path: Path):
    run = tmp_path / "run"
    outcome = train_run(tiny_config, run, progress=False)
    names = {p.name for p in run.iterdir()}
    expected = {"config.json", "log.csv", "log.jsonl", "best.pt", "last.pt", "eval_test.json"}
    expected |= {"per_image_test.csv", "qualitative_test.npz", "done.json"}
    assert expected <= names
    done = json.loads((run / "done.json").read_text())
    keys = {"seconds", "best_epoch", "epochs", "epochs_run", "best_val_case_dice", "provenance"}
    assert set(done) == keys | {"converged", "convergence_rule", "stop_reason"}
    assert done["epochs"] == 1 and done["convergence_rule"] == "window-gain"
    config = json.loads((run / "config.json").read_text())
    assert config["calfseg_version"] and config["loss"] == "bce"
    header = (run / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:7] == "epoch train_loss val_loss val_case_dice val_dice seconds lr".split()

    report = json.loads((run / "eval_test.json").read_text())
    assert (report["split"], report["checkpoint"]) == ("test", "best.pt")
    assert report["results"] == outcome["results"]
    assert "dice/per_image" in report["results"] and "hd95_mm/per_image" in report["results"]

    test = SliceDataset(tiny_config.cache, "test")
    with open(run / "per_image_test.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert tuple(reader.fieldnames or ()) == PER_IMAGE_COLUMNS
    assert [int(r["row"]) for r in rows] == test.rows.tolist()
    assert [int(r["area"]) for r in rows] == test.areas.tolist()
    empty = [r for r in rows if r["area"] == "0" and r["dice"] == ""]
    assert all(r["hd95_mm"] in ("",) or float(r["hd95_mm"]) >= 0 for r in empty)

    q = np.load(run / "qualitative_test.npz")
    nonempty = test.rows[test.areas > 0]
    n = min(16, nonempty.size)
    assert q["rows"].dtype == np.int64 and q["rows"].shape == (n,)
    smallest = sorted(zip(test.areas[test.areas > 0].tolist(), nonempty.tolist(), strict=True))[:n]
    assert sorted(q["rows"].tolist()) == sorted(r for _, r in smallest)
    assert q["images"].shape == (n, 1, 32, 32) and q["images"].dtype == np.uint8
    assert q["truth"].shape == q["pred"].shape == (n, 32, 32)
    assert q["truth"].dtype == q["pred"].dtype == np.uint8
    assert (q["truth"].reshape(n, -1).sum(1) > 0).all()

    again = evaluate_checkpoint(run / "best.pt", split="test", device="cpu")
    assert again["results"] == report["results"]
    assert len(again["per_image"]) == len(rows)


# -- the cache a model was trained on (issue 9, item 3) -------------------------------------


@pytest.fixture
def trained_on_copy(cache: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """``(checkpoint, cache copy, digest at training time)``: a tiny run on a copy of the
    cache, which the tests then prepare "again" by rewriting its files."""
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    digest = cache_digest(copy)
    run = train_tiny_run(copy, tmp_path / "run", val_split=None)
    return run / "best.pt", copy, digest


def _relabel(cache: Path) -> None:
    """What ``calf prepare --labels 2`` over the cache would change in its meta."""
    meta = json.loads((cache / "meta.json").read_text())
    meta["options"]["labels"] = [2]
    (cache / "meta.json").write_text(json.dumps(meta))


def _move_a_row_to_train(cache: Path) -> None:
    index = cache / "index.csv"
    index.write_text(index.read_text().replace(",test,", ",train,", 1))


def test_evaluate_refuses_a_training_cache_prepared_again(trained_on_copy, capsys):
    checkpoint, copy, before = trained_on_copy
    _relabel(copy)
    after = cache_digest(copy)
    with pytest.raises(CacheChangedError) as caught:
        evaluate_checkpoint(checkpoint, device="cpu", surface=False)
    message = str(caught.value)
    assert f"cache digest {before} -> {after}" in message
    assert "options.labels null -> [2]" in message and "--allow-changed-cache" in message
    code = main(["evaluate", str(checkpoint), "--data", str(copy), "--no-surface"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE and "options.labels" in err and str(copy) in err


def test_a_rewritten_index_is_a_change_too(trained_on_copy):
    checkpoint, copy, before = trained_on_copy
    _move_a_row_to_train(copy)
    with pytest.raises(CacheChangedError, match=f"cache digest {before} -> "):
        evaluate_checkpoint(checkpoint, copy, device="cpu", surface=False)


def test_allow_changed_cache_evaluates_warns_and_records_it(trained_on_copy, capsys, tmp_path):
    checkpoint, copy, before = trained_on_copy
    _relabel(copy)
    out = tmp_path / "eval"
    code = main(["evaluate", str(checkpoint), "--no-surface", "--allow-changed-cache",
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_OK
    assert "calf evaluate: warning:" in err and "prepared again" in err
    recorded = json.loads((out / "eval_test.json").read_text())["cache"]
    assert recorded["allow_changed_cache"] is True and recorded["changed_since_training"]
    assert recorded["training_digest"] == before and recorded["digest"] == cache_digest(copy)


def test_another_cache_on_purpose_is_evaluated_and_both_digests_recorded(
    trained_on_copy, cache: Path
):
    checkpoint, copy, before = trained_on_copy
    _relabel(copy)  # the training cache changed, but it is not the one evaluated
    report = evaluate_checkpoint(checkpoint, cache, device="cpu", surface=False)
    assert report["cache"]["digest"] == cache_digest(cache)
    assert report["cache"]["training_digest"] == before
    assert report["cache"]["same_path"] is False
    assert report["cache"]["changed_since_training"] is False
    assert report["cache"]["path"] == str(cache.resolve())
