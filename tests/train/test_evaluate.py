"""train_run writes the run folder of the contract; evaluate_checkpoint reads it back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from calfseg.data import SliceDataset
from calfseg.train import TrainConfig, evaluate_checkpoint, train_run
from calfseg.train.evaluate import PER_IMAGE_COLUMNS


def test_train_run_writes_the_run_folder_contract(tiny_config: TrainConfig, tmp_path: Path):
    run = tmp_path / "run"
    outcome = train_run(tiny_config, run, progress=False)
    names = {p.name for p in run.iterdir()}
    expected = {"config.json", "log.csv", "log.jsonl", "best.pt", "last.pt", "eval_test.json"}
    expected |= {"per_image_test.csv", "qualitative_test.npz", "done.json"}
    assert expected <= names
    done = json.loads((run / "done.json").read_text())
    assert set(done) == {"seconds", "best_epoch", "epochs"} and done["epochs"] == 1
    config = json.loads((run / "config.json").read_text())
    assert config["calfseg_version"] and config["loss"] == "bce"
    header = (run / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["epoch", "train_loss", "val_loss", "val_dice", "seconds", "lr"]

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
    smallest = sorted(zip(test.areas[test.areas > 0].tolist(), nonempty.tolist()))[:n]
    assert sorted(q["rows"].tolist()) == sorted(r for _, r in smallest)
    assert q["images"].shape == (n, 1, 32, 32) and q["images"].dtype == np.uint8
    assert q["truth"].shape == q["pred"].shape == (n, 32, 32)
    assert q["truth"].dtype == q["pred"].dtype == np.uint8
    assert (q["truth"].reshape(n, -1).sum(1) > 0).all()

    again = evaluate_checkpoint(run / "best.pt", split="test", device="cpu")
    assert again["results"] == report["results"]
    assert len(again["per_image"]) == len(rows)
