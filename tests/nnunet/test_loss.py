"""NnUNetCALFLoss against CALF's functionals on the same tensors: the branch of each class is
picked here from scipy's skewness and kurtosis and the decision table of docs/method.md section 3
(written out below), and its value comes from calfseg.losses.branch_loss."""

from __future__ import annotations

import math

import pytest
import torch

from calfseg.losses import branch_loss
from calfseg.nnunet.loss import NnUNetCALFLoss, one_vs_rest_logits, one_vs_rest_targets

from ..method_rule import method_branch_of_areas

H = W = 16


def class_map(areas_per_class: list[list[int]]) -> torch.Tensor:
    """A (B, 1, H, W) class-index target: class c fills the next ``areas[c][b]`` pixels of
    sample b in raster order."""
    batch = len(areas_per_class[0])
    target = torch.zeros(batch, H * W)
    for b in range(batch):
        start = 0
        for c, areas in enumerate(areas_per_class, start=1):
            target[b, start : start + areas[b]] = c
            start += areas[b]
    return target.view(batch, 1, H, W)


# Class 1: one large area among small ones (S >= 1: log10); class 2: one small among large
# (S <= -1: fisher); class 3: spread evenly (S = 0: bce_dice). Three branches in one batch.
AREAS = [
    [1, 1, 1, 1, 1, 1, 2, 40],
    [30, 30, 30, 30, 30, 30, 30, 2],
    [5, 10, 15, 20, 25, 30, 35, 40],
]


def test_sigmoid_of_the_class_logit_is_the_softmax_probability() -> None:
    z = torch.randn(3, 4, 5, 5, dtype=torch.float64) * 8
    z[0, 2] += 60  # a confident voxel map: still finite and exact
    probabilities = torch.softmax(z, dim=1)[:, 1:]
    logits = one_vs_rest_logits(z)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(torch.sigmoid(logits), probabilities, rtol=0, atol=1e-12)


def test_softmax_training_is_one_calf_per_foreground_class() -> None:
    torch.manual_seed(0)
    target = class_map(AREAS)
    z = torch.randn(8, 4, H, W, dtype=torch.float64, requires_grad=True)
    loss_fn = NnUNetCALFLoss("softmax")
    loss = loss_fn(z, target)

    softmax = torch.softmax(z, dim=1)
    expected_parts, expected_branches = [], []
    for c in (1, 2, 3):
        y = (target[:, 0] == c).double()
        branch = method_branch_of_areas(y.sum(dim=(1, 2)).numpy())
        p = softmax[:, c]
        logit = torch.log(p) - torch.log1p(-p)  # sigmoid^-1 of the softmax probability
        expected_parts.append(branch_loss(branch, logit, y))
        expected_branches.append(branch)
    assert expected_branches == ["log10", "fisher", "bce_dice"]
    assert [s.branch for s in loss_fn.picks[0]] == expected_branches
    expected = torch.stack(expected_parts).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-9, atol=1e-9)
    # The gradient reaches every logit, the background's included.
    (grad,) = torch.autograd.grad(loss, z)
    (expected_grad,) = torch.autograd.grad(expected, z)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-7, atol=1e-10)
    assert grad[:, 0].abs().sum() > 0


def test_region_training_is_calf_multilabel_over_the_regions() -> None:
    torch.manual_seed(1)
    classes = class_map(AREAS[:2])[:, 0]
    # nnU-Net regions overlap: "whole" = labels 1 or 2, "core" = label 2.
    target = torch.stack([classes > 0, classes == 2], dim=1)
    z = torch.randn(8, 2, H, W, dtype=torch.float64)
    loss_fn = NnUNetCALFLoss("regions")
    loss = loss_fn(z, target)
    parts, branches = [], []
    for r in range(2):
        y = target[:, r].double()
        branch = method_branch_of_areas(y.sum(dim=(1, 2)).numpy())
        branches.append(branch)
        parts.append(branch_loss(branch, z[:, r], y))
    assert [s.branch for s in loss_fn.picks[0]] == branches
    torch.testing.assert_close(loss, torch.stack(parts).mean(), rtol=1e-9, atol=1e-9)


def test_deep_supervision_scores_each_scale_against_its_own_target() -> None:
    wrapper_module = pytest.importorskip("nnunetv2.training.loss.deep_supervision")
    torch.manual_seed(2)
    full = class_map(AREAS[:2])
    half = full[..., ::2, ::2]  # nnU-Net downsamples targets per scale; any subsampling will do
    outputs = [torch.randn(8, 3, H, W, dtype=torch.float64), torch.randn(8, 3, 8, 8).double()]
    loss_fn = NnUNetCALFLoss("softmax")
    weights = [2 / 3, 1 / 3]
    loss = wrapper_module.DeepSupervisionWrapper(loss_fn, weights)(outputs, [full, half])
    single = NnUNetCALFLoss("softmax")
    expected = sum(w * single(o, t) for w, o, t in zip(weights, outputs, [full, half], strict=True))
    torch.testing.assert_close(loss, expected)
    assert len(loss_fn.picks) == 2  # full resolution first: what the trainer logs
    full_branches = [
        method_branch_of_areas((full[:, 0] == c).sum(dim=(1, 2)).numpy()) for c in (1, 2)
    ]
    assert [s.branch for s in loss_fn.picks[0]] == full_branches


def test_targets_are_binary_per_foreground_class() -> None:
    target = torch.tensor([[[[0.0, 1.0], [2.0, 1.0]]]])
    y = one_vs_rest_targets(target, 3)
    assert y.shape == (1, 2, 2, 2)
    assert y[0, 0].tolist() == [[False, True], [False, True]]
    assert y[0, 1].tolist() == [[False, False], [True, False]]


@pytest.mark.parametrize("shape", [(2, 1, 4, 4), (2, 3)])
def test_softmax_logits_need_a_background_and_a_class(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="C >= 2"):
        one_vs_rest_logits(torch.zeros(shape))


def test_unknown_training_kind_is_named() -> None:
    with pytest.raises(ValueError, match="unknown training "):
        NnUNetCALFLoss("sigmoid")  # type: ignore[arg-type]


def test_half_precision_logits_are_scored_in_float32() -> None:
    target = class_map(AREAS[:1])
    z = torch.randn(8, 2, H, W).half()
    loss = NnUNetCALFLoss("softmax")(z, target)
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
