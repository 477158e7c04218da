"""BranchTally: counts per class and epoch, the log line, the JSON beside the checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calfseg.nnunet.branch_log import BRANCH_LOG, BranchTally
from calfseg.rule import Selection


def pick(branch: str) -> Selection:
    return Selection(branch, "test", 0.0, 0.0)  # type: ignore[arg-type]


def test_counts_per_class_and_epoch_and_the_json(tmp_path: Path) -> None:
    tally = BranchTally(["outer", "inner"], trainer="T", training="softmax")
    tally.start_epoch(0)
    for branches in [("log10", "fisher"), ("log10", "bce_dice"), ("ln", "fisher")]:
        tally.add([pick(b) for b in branches])
    line = tally.end_epoch()
    assert line.endswith("3 steps): outer: log10 2, ln 1; inner: fisher 2, bce_dice 1")
    tally.start_epoch(1)
    tally.add([pick("ln"), pick("ln")])
    tally.end_epoch()
    data = json.loads(tally.write(tmp_path).read_text())
    assert [e["steps"] for e in data["epochs"]] == [3, 1]
    assert data["total"] == {
        "outer": {"log10": 2, "ln": 2},
        "inner": {"fisher": 2, "bce_dice": 1, "ln": 1},
    }
    assert not list(tmp_path.glob("*.partial"))


def test_resume_keeps_earlier_epochs_and_redoes_the_rest(tmp_path: Path) -> None:
    first = BranchTally(["a"], trainer="T", training="regions")
    for epoch in range(3):
        first.start_epoch(epoch)
        first.add([pick("ln")])
        first.end_epoch()
    first.write(tmp_path)
    second = BranchTally(["a"], trainer="T", training="regions")
    second.resume(tmp_path)
    second.start_epoch(2)  # the checkpoint was taken after epoch 1
    assert [e["epoch"] for e in second.epochs] == [0, 1]


def test_resume_refuses_a_log_of_other_classes(tmp_path: Path) -> None:
    (tmp_path / BRANCH_LOG).write_text(json.dumps({"classes": ["x"], "epochs": []}))
    with pytest.raises(ValueError, match=r"counts the classes \['x'\]"):
        BranchTally(["a"], trainer="T", training="softmax").resume(tmp_path)


def test_a_step_needs_one_pick_per_class() -> None:
    tally = BranchTally(["a", "b"], trainer="T", training="softmax")
    tally.start_epoch(0)
    with pytest.raises(ValueError, match="1 picks for 2 classes"):
        tally.add([pick("ln")])
