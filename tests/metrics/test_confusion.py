"""Per-image confusion counts: hand-counted cases, binarisation, layouts, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from calfseg.metrics import ConfusionCounts, confusion_counts

# One 2x3 image: prediction logits and truth, counted by hand.
LOGITS = torch.tensor([[[2.0, -1.0, 0.5], [0.0, -3.0, 1.0]]])  # logit 0 is background
TRUTH = torch.tensor([[[1, 1, 0], [0, 0, 1]]])
# pred > 0:       [[1, 0, 1], [0, 0, 1]]
# tp = (0,0),(1,2) = 2; fp = (0,2) = 1; fn = (0,1) = 1; tn = (1,0),(1,1) = 2
HAND = {"tp": [2], "fp": [1], "fn": [1], "tn": [2]}


def as_lists(c: ConfusionCounts) -> dict[str, list[int]]:
    return {k: v.tolist() for k, v in c.numpy().items()}


def test_counts_match_a_hand_count_and_logit_zero_is_background() -> None:
    c = confusion_counts(LOGITS, TRUTH)
    assert as_lists(c) == HAND
    assert all(t.dtype == torch.int64 for t in (c.tp, c.fp, c.fn, c.tn))


@pytest.mark.parametrize(
    ("pred", "target"),
    [
        (LOGITS[:, None], TRUTH[:, None]),  # (B, 1, H, W) both
        (LOGITS[:, None], TRUTH),  # prediction with channel, raw cache mask without
        (LOGITS, TRUTH[:, None].float()),
        (LOGITS, TRUTH.bool()),
    ],
)
def test_layouts_with_and_without_channel_axis_agree(pred, target) -> None:
    assert as_lists(confusion_counts(pred, target)) == HAND


def test_probabilities_use_threshold_one_half_and_bool_predictions_are_taken_as_is() -> None:
    probs = torch.sigmoid(LOGITS)
    assert as_lists(confusion_counts(probs, TRUTH, threshold=0.5)) == HAND
    assert as_lists(confusion_counts(LOGITS > 0, TRUTH, threshold=123.0)) == HAND


def test_each_image_is_counted_on_its_own() -> None:
    pred = torch.stack([LOGITS[0], -torch.ones(2, 3), torch.ones(2, 3)])
    truth = torch.stack([TRUTH[0], torch.zeros(2, 3), torch.zeros(2, 3)])
    c = confusion_counts(pred, truth)
    assert as_lists(c) == {"tp": [2, 0, 0], "fp": [1, 0, 6], "fn": [1, 0, 0], "tn": [2, 6, 0]}
    assert c.pixels.tolist() == [6, 6, 6]
    assert c.true_area.tolist() == [3, 0, 0]
    assert c.predicted_area.tolist() == [3, 0, 6]


def test_cat_select_and_total() -> None:
    a = ConfusionCounts.from_arrays([1, 2], [0, 1], [3, 0], [4, 5])
    b = ConfusionCounts.from_arrays([7], [0], [0], [1])
    joined = ConfusionCounts.cat([a, b])
    assert as_lists(joined) == {"tp": [1, 2, 7], "fp": [0, 1, 0], "fn": [3, 0, 0], "tn": [4, 5, 1]}
    assert len(joined) == 3
    assert as_lists(joined[-1]) == as_lists(b)
    assert as_lists(joined[1]) == {"tp": [2], "fp": [1], "fn": [0], "tn": [5]}
    assert as_lists(joined[np.array([True, False, True])])["tp"] == [1, 7]
    assert as_lists(joined.total()) == {"tp": [10], "fp": [1], "fn": [3], "tn": [10]}
    assert len(ConfusionCounts.cat([])) == 0


def test_counts_reject_negative_and_mismatched_fields() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ConfusionCounts.from_arrays([1], [-1], [0], [0])
    with pytest.raises(ValueError, match="one shape"):
        ConfusionCounts.from_arrays([1, 2], [0], [0], [0])
    with pytest.raises(TypeError, match="int64"):
        z = torch.zeros(1)
        ConfusionCounts(z, z, z, z)


@pytest.mark.parametrize(
    ("pred_shape", "target_shape", "message"),
    [
        ((2, 4, 4), (2, 4, 5), "same batch and spatial shape"),
        ((2, 4, 4), (3, 4, 4), "same batch and spatial shape"),
        ((2, 3, 4, 4), (2, 3, 4, 4), "one-channel 2D"),
        ((4, 4), (4, 4), "one-channel 2D"),
        ((2, 1, 4, 4, 4), (2, 1, 4, 4, 4), "one-channel 2D"),
        ((2, 0, 4), (2, 0, 4), "without pixels"),
    ],
)
def test_shape_errors_name_the_shapes(pred_shape, target_shape, message) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_counts(torch.zeros(pred_shape), torch.zeros(target_shape))


@pytest.mark.parametrize("bad", [2.0, 0.5, -1.0, 255.0])
def test_non_binary_target_is_an_error(bad) -> None:
    target = TRUTH.float().clone()
    target[0, 0, 0] = bad
    with pytest.raises(ValueError, match="binary"):
        confusion_counts(LOGITS, target)


def test_nan_prediction_is_an_error() -> None:
    pred = LOGITS.clone()
    pred[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        confusion_counts(pred, TRUTH)


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
        elements=st.floats(-3, 3, width=32),
    ),
    st.data(),
)
def test_counts_equal_a_numpy_reference(logits, data) -> None:
    truth = data.draw(arrays(np.uint8, logits.shape, elements=st.integers(0, 1)))
    c = confusion_counts(torch.from_numpy(logits), torch.from_numpy(truth)).numpy()
    p, t = logits > 0, truth == 1
    axes = (1, 2)
    np.testing.assert_array_equal(c["tp"], (p & t).sum(axes))
    np.testing.assert_array_equal(c["fp"], (p & ~t).sum(axes))
    np.testing.assert_array_equal(c["fn"], (~p & t).sum(axes))
    np.testing.assert_array_equal(c["tn"], (~p & ~t).sum(axes))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_counts_on_cuda_stay_on_cuda_and_equal_cpu() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 1, 32, 32, generator=gen)
    truth = (torch.rand(8, 1, 32, 32, generator=gen) > 0.6).float()
    gpu = confusion_counts(logits.cuda(), truth.cuda())
    assert gpu.tp.device.type == "cuda"
    assert as_lists(gpu) == as_lists(confusion_counts(logits, truth))
    joined = ConfusionCounts.cat([gpu, confusion_counts(logits, truth)])
    assert joined.tp.device.type == "cuda" and len(joined) == 16


def test_integer_index_out_of_range_is_an_error() -> None:
    with pytest.raises(IndexError, match="out of range"):
        ConfusionCounts.from_arrays([1], [0], [0], [0])[1]
