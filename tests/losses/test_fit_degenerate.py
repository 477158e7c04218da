"""CALFLoss.fit on degenerate data: nothing to fit is an error, undefined (S, K) a loud warning
(docs/method.md section 2: fewer than two areas, or all areas equal, give NaN and bce_dice)."""

from __future__ import annotations

import warnings

import pytest
import torch

from calfseg.losses import CALFLoss, DegenerateStatisticsWarning
from calfseg.stats import AreaMoments

from .area_cases import AREAS_FOR, masks_with_areas


@pytest.mark.parametrize(
    "source",
    [iter([]), [], torch.zeros(0, 1, 8, 8), AreaMoments(), AreaMoments().to_dict()],
    ids=["empty iterator", "empty list", "no masks", "empty moments", "empty fingerprint"],
)
@pytest.mark.parametrize("statistics", ["dataset", "running"])
def test_fit_on_nothing_is_an_error_that_says_what_was_found(source, statistics):
    with pytest.raises(ValueError, match="found 0 masks") as info:
        CALFLoss(statistics).fit(source)
    assert "training masks" in str(info.value)  # what to do


def test_all_empty_masks_warn_with_the_counts_and_the_fallback():
    with pytest.warns(DegenerateStatisticsWarning) as record:
        loss_fn = CALFLoss("dataset").fit(torch.zeros(12, 1, 8, 8))
    message = str(record[0].message)
    assert "12 mask(s), 12 of them empty" in message
    assert "bce_dice" in message and "Fit on" in message
    assert loss_fn.last_selection.branch == "bce_dice"  # the rule's own fallback, now loud


def test_all_equal_nonempty_areas_warn_with_zero_empty():
    masks = masks_with_areas([20] * 5, side=8)
    with pytest.warns(DegenerateStatisticsWarning, match=r"5 mask\(s\), 0 of them empty"):
        CALFLoss("dataset").fit(masks)


def test_a_single_mask_warns():
    with pytest.warns(DegenerateStatisticsWarning, match="fewer than 2 masks"):
        CALFLoss("dataset").fit(masks_with_areas([30], side=8))


def test_fingerprint_of_an_all_empty_split_warns():
    with pytest.warns(DegenerateStatisticsWarning, match="7 of them empty"):
        CALFLoss("dataset").fit(AreaMoments.from_areas([0] * 7).to_dict())


def test_multilabel_names_the_channel():
    masks = torch.cat([masks_with_areas(AREAS_FOR["ln"]), torch.zeros(8, 1, 12, 12)], dim=1)
    with pytest.warns(DegenerateStatisticsWarning, match="for channel 1"):
        CALFLoss("dataset", mode="multilabel").fit(masks)


def test_a_sound_fit_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss_fn = CALFLoss("dataset").fit(masks_with_areas(AREAS_FOR["fisher"]))
    assert loss_fn.last_selection.branch == "fisher"


def test_running_seed_and_all_empty_batches_stay_silent():
    # A running seed is refined by training; a per-batch all-empty batch is the method's own
    # behaviour (bce_dice), not a fitting mistake.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CALFLoss("running").fit(torch.zeros(4, 1, 8, 8))
        loss_fn = CALFLoss()
        loss_fn(torch.randn(4, 1, 8, 8), torch.zeros(4, 1, 8, 8))
    assert loss_fn.last_selection.branch == "bce_dice"
