"""calfseg.rule: docs/method.md section 3's decision table, boundary by boundary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calfseg.rule import (
    BRANCHES,
    FALLBACK_CONDITION,
    Selection,
    Thresholds,
    decision_table,
    select_branch,
)

from .method_rule import method_branch

NAN = math.nan


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


# -- every boundary, both sides ----------------------------------------------------------------

BOUNDARIES = [
    # (S, K, branch, condition text of the row that fired)
    pytest.param(-1.0, 0.0, "fisher", "S <= -1", id="S=-1"),
    pytest.param(above(-1.0), 0.0, "logit", "-1 < S <= -0.5", id="S=-1+eps"),
    pytest.param(-0.5, 0.0, "logit", "-1 < S <= -0.5", id="S=-0.5"),
    pytest.param(above(-0.5), 0.0, "arcsine", "-0.5 < S < 0", id="S=-0.5+eps"),
    pytest.param(below(0.0), 0.0, "arcsine", "-0.5 < S < 0", id="S=0-eps"),
    pytest.param(below(0.0), -5.0, "arcsine", "-0.5 < S < 0", id="S=0-eps,K<0"),
    pytest.param(0.0, 0.0, "bce_dice", FALLBACK_CONDITION, id="S=0"),
    pytest.param(0.0, -1.0, "bce_dice", FALLBACK_CONDITION, id="S=0,K<0"),
    pytest.param(-0.0, -1.0, "bce_dice", FALLBACK_CONDITION, id="S=-0.0,K<0"),
    pytest.param(above(0.0), -1.0, "log10", "0 < S <= 0.5 and K < 0", id="S=0+eps,K<0"),
    pytest.param(above(0.0), below(0.0), "log10", "0 < S <= 0.5 and K < 0", id="S=0+eps,K=-eps"),
    pytest.param(above(0.0), 0.0, "bce_dice", FALLBACK_CONDITION, id="S=0+eps,K=0"),
    pytest.param(above(0.0), above(0.0), "bce_dice", FALLBACK_CONDITION, id="S=0+eps,K=+eps"),
    pytest.param(above(0.0), 3.0, "bce_dice", FALLBACK_CONDITION, id="S=0+eps,K>0"),
    pytest.param(0.25, -0.1, "log10", "0 < S <= 0.5 and K < 0", id="S=0.25,K<0"),
    pytest.param(0.25, 0.1, "bce_dice", FALLBACK_CONDITION, id="S=0.25,K>0"),
    # The ln row is checked before the kurtosis row: S = 0.5 is ln whatever K is.
    pytest.param(0.5, -1.0, "ln", "0.5 <= S < 1", id="S=0.5,K<0"),
    pytest.param(0.5, 1.0, "ln", "0.5 <= S < 1", id="S=0.5,K>0"),
    pytest.param(0.5, NAN, "ln", "0.5 <= S < 1", id="S=0.5,K=nan"),
    pytest.param(below(0.5), below(0.0), "log10", "0 < S <= 0.5 and K < 0", id="S=0.5-eps,K=-eps"),
    pytest.param(below(0.5), 0.0, "bce_dice", FALLBACK_CONDITION, id="S=0.5-eps,K=0"),
    pytest.param(below(1.0), -1.0, "ln", "0.5 <= S < 1", id="S=1-eps"),
    pytest.param(1.0, 0.0, "log10", "S >= 1", id="S=1"),
    pytest.param(1.0, -1.0, "log10", "S >= 1", id="S=1,K<0"),
    pytest.param(above(1.0), 0.0, "log10", "S >= 1", id="S=1+eps"),
    pytest.param(1e300, 0.0, "log10", "S >= 1", id="S=huge"),
    pytest.param(math.inf, 0.0, "log10", "S >= 1", id="S=inf"),
    pytest.param(-1e300, 0.0, "fisher", "S <= -1", id="S=-huge"),
    pytest.param(-math.inf, 0.0, "fisher", "S <= -1", id="S=-inf"),
]


@pytest.mark.parametrize(("s", "k", "branch", "condition"), BOUNDARIES)
def test_boundary_picks_the_documented_row(s, k, branch, condition) -> None:
    sel = select_branch(s, k)
    assert (sel.branch, sel.condition) == (branch, condition)
    assert sel.branch == method_branch(s, k)


@pytest.mark.parametrize(
    ("s", "k", "branch"),
    [
        pytest.param(NAN, 0.0, "bce_dice", id="S=nan"),
        pytest.param(NAN, -1.0, "bce_dice", id="S=nan,K<0"),
        pytest.param(NAN, NAN, "bce_dice", id="both-nan"),
        pytest.param(0.25, NAN, "bce_dice", id="S-in-kurtosis-band,K=nan"),
        pytest.param(above(0.0), NAN, "bce_dice", id="S=0+eps,K=nan"),
        # Outside the band K is not consulted, so a NaN K changes nothing.
        pytest.param(2.0, NAN, "log10", id="S=2,K=nan"),
        pytest.param(0.75, NAN, "ln", id="S=0.75,K=nan"),
        pytest.param(-0.25, NAN, "arcsine", id="S=-0.25,K=nan"),
        pytest.param(-0.75, NAN, "logit", id="S=-0.75,K=nan"),
        pytest.param(-2.0, NAN, "fisher", id="S=-2,K=nan"),
    ],
)
def test_nan_falls_back_to_bce_dice_only_where_it_is_consulted(s, k, branch) -> None:
    assert select_branch(s, k).branch == branch


def test_selection_carries_the_inputs_and_count() -> None:
    sel = select_branch(0.7, -0.2, count=1234)
    assert sel == Selection("ln", "0.5 <= S < 1", 0.7, -0.2, 1234)
    assert sel.to_dict() == {
        "branch": "ln",
        "condition": "0.5 <= S < 1",
        "skewness": 0.7,
        "kurtosis": -0.2,
        "count": 1234,
    }
    assert select_branch(0.7, -0.2).count is None


def test_numpy_and_integer_statistics_are_accepted() -> None:
    sel = select_branch(np.float32(-1.0), np.float64(0.0))
    assert sel.branch == "fisher"
    assert isinstance(sel.skewness, float)
    assert select_branch(1, 0).branch == "log10"


# -- condition text ----------------------------------------------------------------------------


def test_condition_texts_name_each_row() -> None:
    assert [row.condition for row in decision_table()] == [
        "S <= -1",
        "-1 < S <= -0.5",
        "-0.5 < S < 0",
        "S >= 1",
        "0.5 <= S < 1",
        "0 < S <= 0.5 and K < 0",
    ]
    assert [row.branch for row in decision_table()] == [
        "fisher",
        "logit",
        "arcsine",
        "log10",
        "ln",
        "log10",
    ]


def test_every_branch_is_reachable() -> None:
    reached = {
        select_branch(s, k).branch for s in (-2, -0.7, -0.2, 0, 0.2, 0.7, 2) for k in (-1, 1)
    }
    assert reached == set(BRANCHES)


def test_condition_text_is_exact_for_thresholds_that_g_would_round() -> None:
    t = {"centre": 0.1234567891, "ln": 0.5}
    sel = select_branch(0.1234567891, 0.0, t)
    assert sel.branch == "bce_dice"
    assert select_branch(0.2, -1.0, t).condition == "0.1234567891 < S <= 0.5 and K < 0"


# -- custom thresholds -------------------------------------------------------------------------


def test_dict_override_shifts_a_boundary() -> None:
    t = {"centre": 0.1}
    assert select_branch(0.05, -1.0).branch == "log10"
    sel = select_branch(0.05, -1.0, t)
    assert (sel.branch, sel.condition) == ("arcsine", "-0.5 < S < 0.1")
    assert select_branch(0.1, -1.0, t).branch == "bce_dice"
    assert select_branch(above(0.1), -1.0, t).condition == "0.1 < S <= 0.5 and K < 0"


def test_kurtosis_threshold_override_moves_the_platykurtic_cut() -> None:
    assert select_branch(0.25, 0.5).branch == "bce_dice"
    sel = select_branch(0.25, 0.5, {"kurtosis": 1.0})
    assert (sel.branch, sel.condition) == ("log10", "0 < S <= 0.5 and K < 1")
    assert select_branch(0.25, 1.0, {"kurtosis": 1.0}).branch == "bce_dice"


def test_thresholds_object_shifts_every_boundary() -> None:
    t = Thresholds(fisher=-2.0, logit=-1.0, centre=0.0, ln=1.0, log10=2.0, kurtosis=-0.5)
    cases = {
        (-2.0, 0.0): ("fisher", "S <= -2"),
        (-1.5, 0.0): ("logit", "-2 < S <= -1"),
        (-1.0, 0.0): ("logit", "-2 < S <= -1"),
        (-0.5, 0.0): ("arcsine", "-1 < S < 0"),
        (0.5, -1.0): ("log10", "0 < S <= 1 and K < -0.5"),
        (0.5, -0.25): ("bce_dice", FALLBACK_CONDITION),
        (1.0, 0.0): ("ln", "1 <= S < 2"),
        (2.0, 0.0): ("log10", "S >= 2"),
    }
    for (s, k), expected in cases.items():
        sel = select_branch(s, k, t)
        assert (sel.branch, sel.condition) == expected, (s, k)


def test_default_thresholds_match_method_md() -> None:
    assert Thresholds() == Thresholds(
        fisher=-1.0, logit=-0.5, centre=0.0, ln=0.5, log10=1.0, kurtosis=0.0
    )
    assert Thresholds.coerce(None) == Thresholds()
    assert Thresholds.coerce({}) == Thresholds()
    t = Thresholds(ln=0.6)
    assert Thresholds.coerce(t) is t


def test_integer_and_numpy_thresholds_are_stored_as_floats() -> None:
    t = Thresholds(fisher=-2, logit=np.float32(-0.5))
    assert isinstance(t.fisher, float) and t.fisher == -2.0
    assert isinstance(t.logit, float) and t.logit == -0.5


def test_equal_thresholds_empty_a_row() -> None:
    t = {"fisher": -0.5, "logit": -0.5}  # no logit band left
    assert select_branch(-0.5, 0.0, t).branch == "fisher"
    assert select_branch(above(-0.5), 0.0, t).branch == "arcsine"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"fisher": 0.0}, "fisher <= logit <= centre <= ln <= log10", id="fisher>logit"
        ),
        pytest.param({"ln": 2.0}, "fisher <= logit <= centre <= ln <= log10", id="ln>log10"),
        pytest.param({"centre": -0.75}, "fisher <= logit <= centre", id="centre<logit"),
        pytest.param({"ln": NAN}, "'ln' must be a finite number", id="nan"),
        pytest.param({"kurtosis": NAN}, "'kurtosis' must be a finite number", id="nan-kurtosis"),
        pytest.param({"log10": math.inf}, "'log10' must be a finite number", id="inf"),
        pytest.param({"fisher": "-1"}, "'fisher' must be a finite number", id="string"),
        pytest.param({"fisher": True}, "'fisher' must be a finite number", id="bool"),
        pytest.param({"skew": 0.3}, r"unknown threshold\(s\) \['skew'\]", id="unknown-name"),
    ],
)
def test_invalid_thresholds_raise_value_error_naming_the_problem(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        select_branch(0.0, 0.0, overrides)
    with pytest.raises(ValueError, match=message):
        decision_table(overrides)


def test_invalid_thresholds_object_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="fisher <= logit"):
        Thresholds(fisher=1.0)


def test_thresholds_of_the_wrong_kind_are_rejected() -> None:
    with pytest.raises(ValueError, match="dict of overrides"):
        select_branch(0.0, 0.0, [("ln", 0.6)])


# -- the whole table against an independent reference -----------------------------------------

S_GRID = [i / 20 for i in range(-40, 41)]  # -2 .. 2 step 0.05; i/20 hits -1, -0.5, 0.5, 1 exactly


@pytest.mark.parametrize("k", [-1.0, 0.0, 1.0, NAN], ids=["K=-1", "K=0", "K=1", "K=nan"])
@pytest.mark.parametrize("s", S_GRID, ids=[f"S={s:+.2f}" for s in S_GRID])
def test_grid_matches_hand_written_reference(s: float, k: float) -> None:
    assert select_branch(s, k).branch == method_branch(s, k)


def test_selection_with_finite_statistics_is_json_serialisable() -> None:
    text = json.dumps(select_branch(0.3, -0.2, count=5).to_dict(), allow_nan=False)
    assert json.loads(text) == {
        "branch": "log10",
        "condition": "0 < S <= 0.5 and K < 0",
        "skewness": 0.3,
        "kurtosis": -0.2,
        "count": 5,
    }
