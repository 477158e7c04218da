"""Slice filters: the paper's ratio formula, the simple filters, composition, CLI text."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calfseg.data.splits.filters import (
    DropEmpty,
    KeepEveryKthEmpty,
    MinArea,
    TumourSliceRatio,
    apply_filters,
    drop_empty,
    keep_every_kth_empty,
    min_area,
    parse_filter,
    ratio_counts,
    tumour_ratio,
)
from calfseg.errors import OptionError

# The paper pooled 589,838 image-mask pairs, 41 % with tumour (docs/method.md section 5), and
# sent about 10 % of every patient's slices to test. It does not publish the sizes of its
# filtered training sets, so the pool is derived: 90 % of the pairs, 41 % of them tumour.
N_PAIRS = 589_838
N_TRAIN = round(0.9 * N_PAIRS)  # 530,854
N_TUMOUR = round(0.41 * N_TRAIN)  # 217,650
N_EMPTY = N_TRAIN - N_TUMOUR  # 313,204

# Hand computation from the formula's text, n_seg = int(N r), n_non = int(N (1 - r)):
#   r = 0.10: n_seg = 53,085 <= 217,650; n_non = 477,768 > 313,204 -> keep all 313,204
#             non-tumour, n_seg = int(313,204 * 0.10 / 0.90) = int(34,800.4) = 34,800
#   r = 0.25: n_seg = 132,713 <= 217,650; n_non = 398,140 > 313,204 -> keep all non-tumour,
#             n_seg = int(313,204 * 0.25 / 0.75) = int(104,401.3) = 104,401
#   r = 0.60: n_seg = 318,512 > 217,650 -> keep all 217,650 tumour,
#             n_non = int(0.40 / 0.60 * 217,650) = int(145,100.0) = 145,100
#   r = 0.85: n_seg = 451,225 > 217,650 -> keep all tumour,
#             n_non = int(0.15 / 0.85 * 217,650) = int(38,408.8) = 38,408
PAPER_SIZES = {
    0.10: (34_800, 313_204),
    0.25: (104_401, 313_204),
    0.60: (217_650, 145_100),
    0.85: (217_650, 38_408),
}


def test_derived_pool_of_the_paper():
    assert (N_TRAIN, N_TUMOUR, N_EMPTY) == (530_854, 217_650, 313_204)


@pytest.mark.parametrize("r", sorted(PAPER_SIZES))
def test_ratio_counts_reproduce_the_hand_computed_training_set_sizes(r):
    n_seg, n_non = ratio_counts(N_TUMOUR, N_EMPTY, r)
    assert (n_seg, n_non) == PAPER_SIZES[r]
    # the kept set has the asked tumour fraction (up to the truncation of one count)
    assert abs(n_seg / (n_seg + n_non) - r) < 1e-5


def test_the_first_branch_keeps_n_seg_equal_to_the_tumour_count():
    # Reading n_seg there as int(N r) instead would keep int(0.4/0.6 * 318,512) = 212,341
    # non-tumour slices: a tumour fraction of 0.506, not 0.6.
    n_seg, n_non = ratio_counts(N_TUMOUR, N_EMPTY, 0.6)
    assert n_seg == N_TUMOUR and n_non != int((1 - 0.6) / 0.6 * int(N_TRAIN * 0.6))


def test_ratio_counts_without_saturation_are_the_plain_products():
    # 50 tumour / 50 empty at r = 0.3: 30 <= 50 and 70 > 50 -> second branch
    assert ratio_counts(50, 50, 0.3) == (21, 50)
    # 500 tumour / 500 empty at r = 0.5: neither branch
    assert ratio_counts(500, 500, 0.5) == (500, 500)


@settings(max_examples=300, deadline=None)
@given(
    n_tumour=st.integers(0, 10**6),
    n_empty=st.integers(0, 10**6),
    r=st.floats(0.01, 0.99),
)
def test_ratio_counts_never_exceed_what_exists_and_reach_the_ratio(n_tumour, n_empty, r):
    n_seg, n_non = ratio_counts(n_tumour, n_empty, r)
    assert 0 <= n_seg <= n_tumour and 0 <= n_non <= n_empty
    n = n_tumour + n_empty
    if n_seg < int(n * r) or n_non < int(n * (1 - r)):  # a branch fired: one class saturated
        assert n_seg == n_tumour or n_non == n_empty
    if n_seg + n_non >= 1000:
        assert abs(n_seg / (n_seg + n_non) - r) < 2e-3


def test_tumour_ratio_keeps_the_counts_and_is_seeded():
    has = np.zeros(1000, dtype=np.uint8)
    has[::3] = 1  # 334 tumour, 666 empty
    rows = tumour_ratio(has, 0.5, seed=1)
    n_seg, n_non = ratio_counts(334, 666, 0.5)
    assert rows.dtype == np.int64 and np.all(np.diff(rows) > 0)
    assert int(has[rows].sum()) == n_seg and int((has[rows] == 0).sum()) == n_non
    np.testing.assert_array_equal(rows, tumour_ratio(has, 0.5, seed=1))
    assert not np.array_equal(rows, tumour_ratio(has, 0.5, seed=2))


def test_tumour_ratio_errors():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        tumour_ratio(np.array([0, 1]), 1.0)
    with pytest.raises(ValueError, match="both tumour and non-tumour"):
        tumour_ratio(np.zeros(5), 0.5)
    with pytest.raises(ValueError, match="0/1"):
        tumour_ratio(np.array([0, 2]), 0.5)
    assert tumour_ratio(np.zeros(0), 0.5).size == 0


def test_simple_filters():
    has = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    area = np.array([0, 5, 50, 0, 0, 19, 0, 0, 0])
    np.testing.assert_array_equal(drop_empty(has), [1, 2, 5])
    np.testing.assert_array_equal(min_area(area, 20), [0, 2, 3, 4, 6, 7, 8])  # empties stay
    np.testing.assert_array_equal(keep_every_kth_empty(has, 2), [0, 1, 2, 4, 5, 7])
    np.testing.assert_array_equal(keep_every_kth_empty(has, 1), np.arange(9))
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        keep_every_kth_empty(has, 0)
    with pytest.raises(ValueError, match="minimum area must be >= 0"):
        min_area(area, -1)


def _index() -> dict[str, np.ndarray]:
    area = np.array([0, 5, 50, 0, 0, 19, 0, 30, 0, 80])
    return {"row": np.arange(10), "area": area, "has_tumour": area > 0}


def test_filters_compose_in_order_on_the_rows_they_are_given():
    index = _index()
    np.testing.assert_array_equal(apply_filters(index, []), np.arange(10))
    np.testing.assert_array_equal(apply_filters(index, [MinArea(20), DropEmpty()]), [2, 7, 9])
    np.testing.assert_array_equal(
        apply_filters(index, [KeepEveryKthEmpty(2)], rows=np.array([9, 0, 3, 4, 6])), [0, 4, 9]
    )
    kept = apply_filters(index, [MinArea(20), TumourSliceRatio(0.5, seed=0)])
    # 3 tumour (50, 30, 80) and 5 empty rows left; ratio 0.5 keeps 3 and 3
    assert kept.size == 6 and set(kept) >= {2, 7, 9}
    with pytest.raises(TypeError, match="Filter objects"):
        apply_filters(index, ["drop-empty"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ratio=0.25", TumourSliceRatio(0.25, seed=0)),
        (" drop-empty ", DropEmpty()),
        ("min-area=20", MinArea(20.0)),
        ("min_area = 2.5", MinArea(2.5)),
        ("every-kth-empty=4", KeepEveryKthEmpty(4)),
    ],
)
def test_parse_filter_reads_cli_text_and_spec_writes_it_back(text, expected):
    parsed = parse_filter(text)
    assert parsed == expected
    assert parse_filter(parsed.spec) == parsed and str(parsed) == parsed.spec


def test_parse_filter_passes_the_seed_to_the_ratio_filter():
    assert parse_filter("ratio=0.1", seed=12345) == TumourSliceRatio(0.1, seed=12345)
    assert TumourSliceRatio(0.1234567891).spec == "ratio=0.1234567891"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ratio", "needs a value"),
        ("ratio=abc", "bad filter 'ratio=abc'"),
        ("ratio=1.5", "strictly between 0 and 1"),
        ("drop-empty=1", "takes no value"),
        ("every-kth-empty=0", "k must be an integer >= 1"),
        ("every-kth-empty=2.5", "bad filter"),
        ("min-area=-3", "pixels must be >= 0"),
        ("balance=0.3", "unknown filter 'balance=0.3'; expected one of"),
    ],
)
def test_parse_filter_errors_are_clear_usage_errors(text, message):
    with pytest.raises(OptionError, match=message):  # calf: exit 2, whatever the data
        parse_filter(text)
