"""Early stopping on the validation case Dice: scripted validation scores stop the run at the
epoch worked out by hand; converged and stop_reason in FitResult and done.json."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from calfseg.cli.errors import EXIT_DIVERGED, exit_code
from calfseg.train import TrainConfig, fit, load_checkpoint, train_run
from calfseg.train import loop as loop_module
from calfseg.train.case_dice import ValidationScores
from calfseg.train.stopping import (
    CONVERGENCE_WINDOW,
    DIVERGED_LOSS,
    EarlyStopping,
    TrainingDivergedError,
    divergence,
)


def _script(monkeypatch: pytest.MonkeyPatch, scores: list[float]) -> None:
    """Replace validate_epoch by one that returns ``scores`` in turn as the case Dice."""
    queue: Iterator[float] = iter(scores)

    def scripted(*args: object, **kwargs: object) -> ValidationScores:
        score = next(queue)
        return ValidationScores(loss=1 - score, case_dice=score, image_dice=0.5, cases=2, images=8)

    monkeypatch.setattr(loop_module, "validate_epoch", scripted)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


# patience 3, min_delta 0.01, worked out by hand (ref: score of the last rise by > 0.01):
#   epoch 1: 0.10  ref 0.10, best        epoch 5: 0.3105  > 0.31: ref 0.3105, best
#   epoch 2: 0.30  ref 0.30, best        epoch 6: 0.3200  not > 0.3205: stale 1, best
#   epoch 3: 0.3005 stale 1, best        epoch 7: 0.2000  stale 2
#   epoch 4: 0.3050 stale 2              epoch 8: 0.3000  stale 3 = patience: stop
SCRIPT = [0.10, 0.30, 0.3005, 0.305, 0.3105, 0.32, 0.20, 0.30, 0.9, 0.9, 0.9, 0.9]


@pytest.mark.slow
def test_scripted_scores_stop_at_the_hand_computed_epoch(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _script(monkeypatch, SCRIPT)
    config = replace(tiny_config, epochs=12, max_steps=1, patience=3, min_delta=0.01)
    result = fit(config, tmp_path, progress=False)
    assert (result.epochs, result.epochs_run) == (12, 8)
    assert (result.stop_reason, result.converged) == ("patience", True)
    assert (result.best_epoch, result.best_score) == (6, 0.32)
    rows = _log(tmp_path)
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert [r["val_case_dice"] for r in rows] == SCRIPT[:8]
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 6
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 8


def test_a_budget_that_ends_while_improving_is_not_converged(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _script(monkeypatch, [0.1, 0.2, 0.3, 0.4])
    config = replace(tiny_config, epochs=4, max_steps=1, patience=2)
    result = fit(config, tmp_path, progress=False)
    assert (result.epochs_run, result.stop_reason, result.converged) == (4, "budget", False)
    assert result.best_epoch == 4


def test_without_patience_a_plateau_of_the_window_converges_and_trains_on(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plateau = [0.3, 0.5] + [0.5005] * CONVERGENCE_WINDOW  # a rise, then gains below 0.001
    _script(monkeypatch, plateau)
    config = replace(tiny_config, epochs=len(plateau), max_steps=1, patience=None)
    result = fit(config, tmp_path, progress=False)
    assert (result.epochs_run, result.stop_reason, result.converged) == (
        len(plateau), "budget", True,
    )  # fmt: skip
    assert result.best_epoch == 3  # the first of the equal best scores


def test_done_json_records_how_the_run_ended(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _script(monkeypatch, [0.3, 0.4, 0.4, 0.4, 0.9])
    config = replace(tiny_config, epochs=5, max_steps=1, patience=2)
    outcome = train_run(config, tmp_path, progress=False)
    done = json.loads((tmp_path / "done.json").read_text())
    assert done["epochs"] == 5 and done["epochs_run"] == 4
    assert (done["stop_reason"], done["converged"]) == ("patience", True)
    assert (done["best_epoch"], done["best_val_case_dice"]) == (2, 0.4)
    assert outcome["epochs_run"] == 4 and outcome["converged"] is True


def test_a_run_that_learned_nothing_after_its_first_validation_is_not_converged(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # the small cache: 0.038 at epoch 1, then nothing; patience ends it, unconverged
    _script(monkeypatch, [0.038, 0.030, 0.035, 0.038, 0.9])
    config = replace(tiny_config, epochs=5, max_steps=1, patience=3)
    result = fit(config, tmp_path, progress=False)
    assert (result.epochs_run, result.stop_reason, result.converged) == (4, "patience", False)


def test_a_run_without_validation_trains_its_budget_and_is_not_converged(
    tiny_config: TrainConfig, tmp_path: Path
):
    config = replace(tiny_config, epochs=2, max_steps=1, val_split=None, patience=None)
    result = fit(config, tmp_path, progress=False)
    assert (result.epochs_run, result.stop_reason, result.converged) == (2, "budget", False)
    assert (result.best_epoch, result.best_score) == (2, None)


def test_small_gains_that_add_up_count_as_one_improvement():
    stopping = EarlyStopping(patience=3, min_delta=0.01)
    for score in (0.5, 0.504, 0.508):  # each +0.004: no significant rise yet
        stopping.observe(score)
    assert stopping.stale == 2 and stopping.best == 0.508
    stopping.observe(0.512)  # 0.012 above the reference 0.5: an improvement
    assert (stopping.stale, stopping.reference) == (0, 0.512)
    assert not stopping.should_stop and not stopping.converged


def test_a_slow_creep_that_gains_less_than_min_delta_in_the_window_has_converged():
    # the ratchet's reference (0.898) lies below the best before the window (0.907): the
    # window's 0.913 crosses reference + 0.01 although it gains only 0.006 on the best
    scores = [0.5, 0.898, 0.905, 0.907, 0.902, 0.913, 0.913, 0.913]
    stopping = EarlyStopping(patience=None, min_delta=0.01)
    for score in scores:
        stopping.observe(score)
    assert stopping.stale == 2 and stopping.reference == 0.913  # the ratchet: "improving"
    assert stopping.window_gain() == pytest.approx(max(scores[-4:]) - max(scores[:-4]))
    assert stopping.converged


def test_a_window_that_gains_more_than_min_delta_has_not_converged():
    scores = [0.5, 0.8, 0.85, 0.86, 0.87, 0.872, 0.875, 0.88]  # +0.02 on the best before
    stopping = EarlyStopping(patience=None, min_delta=0.01)
    for score in scores:
        stopping.observe(score)
    assert stopping.window_gain() == pytest.approx(0.88 - 0.86)
    assert not stopping.converged
    stopping.observe(0.881)  # the window moves on: 0.881 - 0.87 = 0.011, still rising
    assert not stopping.converged
    stopping.observe(0.881)  # 0.881 - 0.872 = 0.009: done within min_delta
    assert stopping.converged


def test_a_window_without_a_score_before_it_cannot_judge():
    stopping = EarlyStopping(patience=None, min_delta=0.01)
    for score in (0.5, 0.7, 0.7, 0.7):  # as many validations as the window
        stopping.observe(score)
    assert stopping.window_gain() is None and not stopping.converged


def test_a_state_without_scores_falls_back_to_the_ratchet():
    state = {"best": 0.9, "reference": 0.9, "stale": 2, "validations": 8, "improvements": 2}
    stopping = EarlyStopping.from_state(state, patience=None, min_delta=0.01, best=0.9)
    assert stopping.scores == [] and not stopping.converged
    stopping.observe(0.9)
    stopping.observe(0.9)  # stale 4 = the window: converged by the ratchet's count
    assert stopping.converged


def test_an_undefined_score_is_never_an_improvement():
    stopping = EarlyStopping(patience=1, min_delta=0.0)
    assert stopping.observe(0.3) is True
    assert stopping.observe(float("nan")) is False
    assert stopping.should_stop and stopping.ended(2, 10) == "patience"
    restored = EarlyStopping.from_state(stopping.state(), patience=1, min_delta=0.0, best=None)
    assert restored == stopping


def test_validations_before_the_first_lesion_found_do_not_count(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # nothing found for 4 validations (case Dice 0): not a plateau. Counting starts at the
    # first score above 0 (epoch 5); epoch 6 rises; 7, 8, 9 do not: patience 3 stops at 9.
    script = [0.0, 0.0, 0.0, 0.0, 0.2, 0.3, 0.3, 0.3, 0.3, 0.9, 0.9]
    _script(monkeypatch, script)
    config = replace(tiny_config, epochs=11, max_steps=1, patience=3)
    result = fit(config, tmp_path, progress=False)
    assert (result.epochs_run, result.stop_reason, result.converged) == (9, "patience", True)
    assert result.best_epoch == 6


def test_a_run_that_never_finds_a_lesion_trains_its_budget_unconverged():
    stopping = EarlyStopping(patience=2, min_delta=0.001)
    for _ in range(6):
        stopping.observe(0.0)
    assert not stopping.should_stop and not stopping.converged
    assert (stopping.ended(6, 6), stopping.best) == ("budget", 0.0)


@pytest.mark.slow
def test_min_epochs_keeps_a_slow_starter_training_until_it_takes_off(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A model that finds a few lesion pixels early (0.02), stalls, and takes off at epoch 7.
    # Patience 3 alone stops it at epoch 4 with a best of 0.03; min_epochs 7 keeps it going:
    # epoch 7 (0.6) is an improvement, epochs 8-10 are not, so patience stops it at 10.
    script = [0.02, 0.03, 0.02, 0.02, 0.03, 0.02, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    _script(monkeypatch, script)
    base = replace(tiny_config, epochs=12, max_steps=1, patience=3, min_delta=0.01)
    early = fit(base, tmp_path / "without", progress=False)
    assert (early.epochs_run, early.best_score) == (4, 0.03)
    _script(monkeypatch, script)
    late = fit(replace(base, min_epochs=7), tmp_path / "with", progress=False)
    assert (late.epochs_run, late.best_epoch, late.best_score) == (10, 7, 0.6)
    assert (late.stop_reason, late.converged) == ("patience", True)


def test_min_epochs_beyond_the_budget_trains_the_budget(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _script(monkeypatch, [0.3, 0.4, 0.4, 0.4])
    config = replace(tiny_config, epochs=4, max_steps=1, patience=1, min_epochs=10)
    result = fit(config, tmp_path, progress=False)
    assert result.epochs_run == 4 and result.converged
    # patience ran out, but the budget ended the run: it was not stopped early
    assert result.stop_reason == "budget"


def test_the_stop_reason_is_patience_only_before_the_budget_ends():
    stopping = EarlyStopping(patience=1, min_delta=0.0)
    for score in (0.4, 0.4):
        stopping.observe(score)
    assert stopping.should_stop
    assert stopping.ended(epochs_run=2, planned=8) == "patience"
    assert stopping.ended(epochs_run=8, planned=8) == "budget"
    assert EarlyStopping(patience=1, min_delta=0.0).ended(epochs_run=3, planned=8) == "budget"


def test_a_run_stopped_at_min_epochs_stays_stopped_when_resumed(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _script(monkeypatch, [0.4, 0.4, 0.4, 0.4])
    config = replace(tiny_config, epochs=8, max_steps=1, patience=1, min_epochs=3)
    assert fit(config, tmp_path, progress=False).epochs_run == 3
    _script(monkeypatch, [])  # a validation now would fail the test
    resumed = fit(config, tmp_path, progress=False, resume=True)
    assert (resumed.epochs_run, resumed.stop_reason) == (3, "patience")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_min_epochs_must_be_an_integer_of_at_least_zero(tiny_config: TrainConfig, bad):
    with pytest.raises(ValueError, match="min_epochs must be an integer >= 0"):
        replace(tiny_config, min_epochs=bad)


def test_ends_run_waits_for_min_epochs():
    stopping = EarlyStopping(patience=2, min_delta=0.0)
    for score in (0.3, 0.3, 0.3):  # stale 2 = patience after the third validation
        stopping.observe(score)
    assert stopping.should_stop
    assert not stopping.ends_run(3, min_epochs=4)
    assert stopping.ends_run(4, min_epochs=4) and stopping.ends_run(3)


def test_an_exploding_loss_stops_the_run_as_diverged_with_exit_3(
    tiny_config: TrainConfig, tmp_path: Path
):
    # Adam moves every weight by about lr per step: at 1e10 the logits explode at once
    config = replace(tiny_config, epochs=4, max_steps=2, lr=1e10, warmup_steps=0)
    with pytest.raises(
        TrainingDivergedError, match=r"diverged at epoch \d: mean training loss"
    ) as err:
        fit(config, tmp_path, progress=False)
    assert exit_code(err.value) == EXIT_DIVERGED == 3
    rows = _log(tmp_path)
    last = rows[-1]
    assert not (math.isfinite(last["train_loss"]) and last["train_loss"] <= DIVERGED_LOSS)
    assert len(rows) < 4  # stopped there, not trained on
    if (tmp_path / "last.pt").exists():  # the last sound epoch, never the diverged one
        assert load_checkpoint(tmp_path / "last.pt")["epoch"] == len(rows) - 1


@pytest.mark.parametrize(
    ("loss", "diverged"),
    [
        (0.69, False),
        (DIVERGED_LOSS, False),
        (DIVERGED_LOSS * 1.01, True),
        (math.nan, True),
        (math.inf, True),
        (None, False),
    ],
)
def test_divergence_is_a_non_finite_or_exploded_mean_loss(loss, diverged) -> None:
    assert (divergence(3, loss) is not None) == diverged
