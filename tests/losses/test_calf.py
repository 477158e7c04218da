"""CALFLoss: where the statistics come from, what it picks, and that it computes that branch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from calfseg.fingerprint import Fingerprint
from calfseg.losses import CALFLoss, branch_loss
from calfseg.stats import AreaMoments, foreground_areas

from .area_cases import AREAS_FOR, masks_with_areas


def _logits_like(masks: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return torch.randn(masks.shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("row", list(AREAS_FOR))
def test_batch_mode_picks_the_row_of_the_batch_and_computes_that_branch(row):
    masks = masks_with_areas(AREAS_FOR[row])
    logits = _logits_like(masks)
    loss_fn = CALFLoss()
    loss = loss_fn(logits, masks)
    expected_branch = row.split()[0]
    selection = loss_fn.last_selection
    assert selection.branch == expected_branch
    assert selection.count == masks.shape[0]
    moments = AreaMoments.from_areas(AREAS_FOR[row])
    assert selection.skewness == pytest.approx(moments.skewness())
    assert selection.kurtosis == pytest.approx(moments.kurtosis())
    assert torch.equal(loss, branch_loss(expected_branch, logits, masks))


def test_batch_mode_repicks_every_call():
    loss_fn = CALFLoss()
    picks = []
    for row in ("fisher", "log10", "ln"):
        masks = masks_with_areas(AREAS_FOR[row])
        loss_fn(_logits_like(masks), masks)
        picks.append(loss_fn.last_selection.branch)
    assert picks == ["fisher", "log10", "ln"]


def test_near_symmetric_band_uses_kurtosis():
    masks = masks_with_areas([10, 45, 50, 50, 50, 50, 50, 50, 60, 100])  # S = 0.50, K = 1.8
    loss_fn = CALFLoss()
    loss_fn(_logits_like(masks), masks)
    sel = loss_fn.last_selection
    assert 0 < sel.skewness <= 0.5 and sel.kurtosis >= 0
    assert sel.branch == "bce_dice"


def test_all_empty_batch_falls_back_to_bce_dice_with_finite_loss():
    masks = torch.zeros(4, 1, 8, 8)
    loss_fn = CALFLoss()
    loss = loss_fn(_logits_like(masks), masks)
    assert loss_fn.last_selection.branch == "bce_dice"
    assert math.isnan(loss_fn.last_selection.skewness)
    assert torch.isfinite(loss)


def test_batch_of_one_has_nan_statistics_and_uses_bce_dice():
    masks = masks_with_areas([30])
    loss_fn = CALFLoss()
    assert torch.isfinite(loss_fn(_logits_like(masks), masks))
    assert loss_fn.last_selection.branch == "bce_dice"


def test_target_without_channel_axis_is_accepted_in_binary_mode():
    masks = masks_with_areas(AREAS_FOR["ln"])
    logits = _logits_like(masks)
    assert torch.equal(CALFLoss()(logits, masks[:, 0]), CALFLoss()(logits, masks))


def test_thresholds_override_changes_the_pick():
    masks = masks_with_areas(AREAS_FOR["log10"])  # S = 2.67
    loss_fn = CALFLoss(thresholds={"log10": 3.0})
    loss_fn(_logits_like(masks), masks)
    assert loss_fn.last_selection.branch == "ln"


def test_paper_numerics_are_passed_to_the_branch():
    masks = masks_with_areas(AREAS_FOR["fisher"])
    logits = _logits_like(masks) * 30
    loss = CALFLoss(numerics="paper")(logits, masks)
    assert torch.equal(loss, branch_loss("fisher", logits, masks, numerics="paper"))
    assert not torch.equal(loss, branch_loss("fisher", logits, masks))


def test_reduction_none_returns_the_map():
    masks = masks_with_areas(AREAS_FOR["ln"])
    logits = _logits_like(masks)
    out = CALFLoss(reduction="none")(logits, masks)
    assert out.shape == masks.shape
    assert out.mean().item() == pytest.approx(CALFLoss()(logits, masks).item(), rel=1e-6)


def test_3d_inputs_use_voxel_counts():
    masks2d = masks_with_areas(AREAS_FOR["fisher"], side=8)
    masks = masks2d.reshape(len(AREAS_FOR["fisher"]), 1, 4, 4, 4)
    loss_fn = CALFLoss()
    loss_fn(_logits_like(masks), masks)
    assert loss_fn.last_selection.branch == "fisher"


def test_contour_area_option_measures_polygons():
    # Squares of side 2..6: pixel counts 4..36, polygon areas (s - 1)^2 = 1..25.
    masks = torch.zeros(5, 1, 10, 10)
    for i, s in enumerate(range(2, 7)):
        masks[i, 0, :s, :s] = 1
    loss_fn = CALFLoss(area="contour")
    loss_fn(_logits_like(masks), masks)
    expected = AreaMoments.from_areas([1, 4, 9, 16, 25])
    assert loss_fn.last_selection.skewness == pytest.approx(expected.skewness())


class TestDatasetMode:
    def test_unfitted_use_is_an_error(self):
        masks = masks_with_areas(AREAS_FOR["ln"])
        with pytest.raises(RuntimeError, match="fit"):
            CALFLoss("dataset")(_logits_like(masks), masks)

    def test_fit_on_masks_fixes_the_pick_whatever_the_batch(self):
        train = masks_with_areas(AREAS_FOR["fisher"])
        loss_fn = CALFLoss("dataset").fit(train)
        batch = masks_with_areas(AREAS_FOR["log10"])
        logits = _logits_like(batch)
        assert torch.equal(loss_fn(logits, batch), branch_loss("fisher", logits, batch))
        assert loss_fn.last_selection.branch == "fisher"
        assert loss_fn.last_selection.count == 10

    @pytest.mark.parametrize(
        "source_kind", ["moments", "dict", "fingerprint", "path", "iterable", "array"]
    )
    def test_fit_sources_agree(self, source_kind, tmp_path):
        masks = masks_with_areas(AREAS_FOR["arcsine"])
        moments = AreaMoments.from_areas(foreground_areas(masks))
        if source_kind == "moments":
            source = moments
        elif source_kind == "dict":
            source = moments.to_dict()
        elif source_kind == "fingerprint":
            source = Fingerprint(moments).to_dict()
        elif source_kind == "path":
            source = tmp_path / "fingerprint.json"
            source.write_text(json.dumps(moments.to_dict()))
        elif source_kind == "iterable":
            source = iter([masks[:5], masks[5:]])
        else:
            source = masks.numpy()
        loss_fn = CALFLoss("dataset").fit(source)
        assert loss_fn.last_selection.branch == "arcsine"
        assert loss_fn.moments[0].count == masks.shape[0]

    def test_fit_in_batch_mode_is_refused(self):
        with pytest.raises(ValueError, match="statistics='dataset' or 'running'"):
            CALFLoss().fit(masks_with_areas([1, 2, 3]))

    def test_state_dict_round_trip_keeps_the_fitted_pick(self):
        fitted = CALFLoss("dataset").fit(masks_with_areas(AREAS_FOR["logit"]))
        fresh = CALFLoss("dataset")
        fresh.load_state_dict(fitted.state_dict())
        assert fresh.last_selection == fitted.last_selection

    @pytest.mark.slow
    def test_compiles_with_fullgraph(self):
        torch._dynamo.reset()
        loss_fn = CALFLoss("dataset").fit(masks_with_areas(AREAS_FOR["fisher"]))
        compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
        masks = masks_with_areas(AREAS_FOR["ln"])
        logits = _logits_like(masks).requires_grad_(True)
        loss = compiled(logits, masks)
        loss.backward()
        assert loss.item() == pytest.approx(loss_fn(logits, masks).item(), rel=1e-6)
        assert torch.isfinite(logits.grad).all()


class TestRunningMode:
    def test_moments_accumulate_over_training_calls(self):
        loss_fn = CALFLoss("running")
        first = masks_with_areas(AREAS_FOR["log10"])
        second = masks_with_areas(AREAS_FOR["fisher"])
        loss_fn(_logits_like(first), first)
        loss_fn(_logits_like(second), second)
        both = AreaMoments.from_areas(AREAS_FOR["log10"] + AREAS_FOR["fisher"])
        assert loss_fn.moments[0].count == 20
        assert loss_fn.last_selection.skewness == pytest.approx(both.skewness())

    def test_eval_mode_does_not_accumulate(self):
        loss_fn = CALFLoss("running")
        masks = masks_with_areas(AREAS_FOR["log10"])
        loss_fn(_logits_like(masks), masks)
        loss_fn.eval()
        other = masks_with_areas(AREAS_FOR["fisher"])
        loss_fn(_logits_like(other), other)
        assert loss_fn.moments[0].count == 10
        assert loss_fn.last_selection.branch == "log10"

    def test_fit_seeds_the_running_moments(self):
        loss_fn = CALFLoss("running").fit(masks_with_areas(AREAS_FOR["fisher"]))
        masks = masks_with_areas([100, 0])
        loss_fn(_logits_like(masks), masks)
        assert loss_fn.moments[0].count == 12


class TestMultilabel:
    def test_one_pick_per_channel_and_channel_mean(self):
        a = masks_with_areas([*AREAS_FOR["fisher"][:9], 0])
        b = masks_with_areas(AREAS_FOR["log10"])
        masks = torch.cat([a, b], dim=1)
        logits = _logits_like(masks)
        loss_fn = CALFLoss(mode="multilabel")
        loss = loss_fn(logits, masks)
        assert [s.branch for s in loss_fn.last_selection] == ["fisher", "log10"]
        expected = (
            branch_loss("fisher", logits[:, :1], masks[:, :1])
            + branch_loss("log10", logits[:, 1:], masks[:, 1:])
        ) / 2
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)

    def test_dataset_mode_checks_the_channel_count(self):
        masks = torch.cat([masks_with_areas(AREAS_FOR["ln"])] * 2, dim=1)
        loss_fn = CALFLoss("dataset", mode="multilabel").fit(masks)
        three = torch.cat([masks, masks[:, :1]], dim=1)
        with pytest.raises(ValueError, match="fitted for 2 channel"):
            loss_fn(_logits_like(three), three)


class TestBadInput:
    def test_binary_mode_rejects_several_channels(self):
        with pytest.raises(ValueError, match="multilabel"):
            CALFLoss()(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="does not match"):
            CALFLoss()(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))

    def test_empty_batch(self):
        with pytest.raises(ValueError, match="empty batch"):
            CALFLoss()(torch.zeros(0, 1, 4, 4), torch.zeros(0, 1, 4, 4))

    def test_target_values_checked_with_validate(self):
        target = torch.full((3, 1, 4, 4), 2.0)
        with pytest.raises(ValueError, match="0 or 1"):
            CALFLoss(validate=True)(torch.zeros(3, 1, 4, 4), target)

    def test_nan_logits_checked_with_validate(self):
        logits = torch.full((3, 1, 4, 4), math.nan)
        with pytest.raises(ValueError, match="NaN"):
            CALFLoss(validate=True)(logits, torch.zeros(3, 1, 4, 4))

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"statistics": "epoch"}, "statistics"),
            ({"mode": "multiclass"}, "mode"),
            ({"area": "voxels"}, "area"),
            ({"numerics": "off"}, "numerics"),
            ({"reduction": "sum"}, "reduction"),
        ],
    )
    def test_bad_options_name_the_argument(self, kwargs, name):
        with pytest.raises(ValueError, match=f"unknown {name} "):
            CALFLoss(**kwargs)

    def test_bad_thresholds(self):
        with pytest.raises(ValueError, match="unknown threshold"):
            CALFLoss(thresholds={"tanh": 1.0})


def test_numpy_masks_fit_equals_tensor_fit():
    masks = masks_with_areas(AREAS_FOR["ln"])
    a = CALFLoss("dataset").fit(masks).moments[0]
    b = CALFLoss("dataset").fit(np.asarray(masks)).moments[0]
    assert a == b
