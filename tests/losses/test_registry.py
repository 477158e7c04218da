"""The loss registry: every name builds, keeps the contract, and computes its definition.

The reference formulas below are written straight from METHOD.md section 5 (and, for the
extra losses, from their papers), in float64, independently of MONAI and smp.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from calfseg.losses import LOSSES, PAPER_LOSSES, CALFLoss, build_loss, list_losses
from calfseg.stats import AreaMoments

from .area_cases import AREAS_FOR, masks_with_areas

NAMES = list_losses()


@pytest.fixture(scope="module")
def fingerprint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cache") / "fingerprint.json"
    AreaMoments.from_areas(AREAS_FOR["log10"]).save(path)
    return str(path)


def _build(name: str, fingerprint: str) -> torch.nn.Module:
    return build_loss(name, fingerprint=fingerprint)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four 8x8 images: random; empty truth; empty prediction; both empty."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(4, 1, 8, 8, generator=g) > 0.6).double()
    z = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64) * 2
    y[1] = 0
    y[2, 0, 2:5, 3:7] = 1
    z[2] = -40.0  # p ~ 4e-18: an empty prediction
    y[3] = 0
    z[3] = -40.0
    return z, y


# -- reference formulas (float64) ------------------------------------------------------------


def _sums(p: torch.Tensor, y: torch.Tensor, per_image: bool):
    dims = (1, 2, 3) if per_image else (0, 1, 2, 3)
    tp = (p * y).sum(dims)
    return tp, p.sum(dims), y.sum(dims)


def ref_bce(z, y):
    p = torch.sigmoid(z)
    return (-(y * torch.log(p) + (1 - y) * torch.log1p(-p))).mean()


def ref_dice(z, y, smooth_nr=0.0, smooth_dr=1e-5):
    tp, sp, sy = _sums(torch.sigmoid(z), y, per_image=True)
    return (1 - (2 * tp + smooth_nr) / (sp + sy + smooth_dr)).mean()


def ref_focal(z, y, alpha=0.25, gamma=2.0):
    p = torch.sigmoid(z)
    p_t = torch.where(y == 1, p, 1 - p)
    a_t = torch.where(y == 1, alpha, 1 - alpha) if alpha is not None else 1.0
    return (a_t * (1 - p_t) ** gamma * F.binary_cross_entropy(p, y, reduction="none")).mean()


def ref_tversky(z, y, per_image=False):
    p = torch.sigmoid(z)
    dims = (1, 2, 3) if per_image else (0, 1, 2, 3)
    tp = (p * y).sum(dims)
    fp = (p * (1 - y)).sum(dims)
    fn = ((1 - p) * y).sum(dims)
    return (1 - tp / (tp + 0.7 * fp + 0.3 * fn + 1e-5)).mean()


def ref_iou(z, y):
    tp, sp, sy = _sums(torch.sigmoid(z), y, per_image=True)
    return (1 - tp / (sp + sy - tp + 1e-5)).mean()


def ref_combo(z, y):
    return ref_bce(z, y) + ref_dice(z, y)


def ref_focal_tversky(z, y):
    p = torch.sigmoid(z)
    tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
    ti = (tp + 1) / (tp + 0.7 * fn + 0.3 * fp + 1)
    return (1 - ti) ** 0.75


def ref_generalized_dice(z, y):
    tp, sp, sy = _sums(torch.sigmoid(z), y, per_image=True)
    w = torch.where(sy > 0, 1 / sy.clamp_min(1) ** 2, 0.0)
    return (1 - (2 * w * tp + 1e-5) / (w * (sp + sy) + 1e-5)).mean()


REFERENCES = {
    "bce": ref_bce,
    "dice": ref_dice,
    "focal": ref_focal,
    "tversky": ref_tversky,
    "iou": ref_iou,
    "combo": ref_combo,
    "dice-ce": lambda z, y: ref_bce(z, y) + ref_dice(z, y, 1e-5, 1e-5),
    "dice-focal": lambda z, y: ref_dice(z, y, 1e-5, 1e-5) + ref_focal(z, y, alpha=None),
    "focal-tversky": ref_focal_tversky,
    "generalized-dice": ref_generalized_dice,
}


# -- the registry ----------------------------------------------------------------------------


def test_registry_holds_the_paper_losses_and_the_extras():
    assert set(NAMES) == {
        "calf", "calf-dataset", "calf-region", "bce", "dice", "focal", "tversky", "iou",
        "combo", "dice-ce", "dice-focal", "focal-tversky", "generalized-dice", "lovasz",
    }  # fmt: skip
    assert set(PAPER_LOSSES) == {
        "calf",
        "calf-region",
        "bce",
        "dice",
        "focal",
        "tversky",
        "iou",
        "combo",
    }
    for spec in LOSSES.values():
        assert spec.summary and spec.reference and spec.empty_masks


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown loss 'dise'") as err:
        build_loss("dise")
    for name in NAMES:
        assert name in str(err.value)


def test_unknown_option_names_the_options():
    with pytest.raises(ValueError, match=r"does not take the option\(s\) alpha.*per_image"):
        build_loss("dice", alpha=0.3)


def test_calf_dataset_without_fingerprint_says_it_needs_one():
    with pytest.raises(ValueError, match=r"needs the cache's fingerprint\.json"):
        build_loss("calf-dataset")


def test_calf_dataset_uses_the_fingerprint_file(fingerprint):
    loss_fn = build_loss("calf-dataset", fingerprint=fingerprint)
    assert isinstance(loss_fn, CALFLoss) and loss_fn.statistics == "dataset"
    assert loss_fn.last_selection.branch == "log10"
    masks = masks_with_areas(AREAS_FOR["fisher"])  # the batch's own pick would be fisher
    logits = torch.randn(masks.shape, generator=torch.Generator().manual_seed(1))
    expected = CALFLoss("dataset").fit(AreaMoments.load(fingerprint))(logits, masks)
    assert torch.equal(loss_fn(logits, masks), expected)
    assert loss_fn.last_selection.branch == "log10"


def test_other_losses_ignore_a_fingerprint(fingerprint):
    assert type(build_loss("calf", fingerprint=fingerprint)) is CALFLoss


# -- the contract, for every name ------------------------------------------------------------


def _check_scalar_with_gradient(loss_fn, z, y):
    z = z.detach().requires_grad_(True)
    value = loss_fn(z, y)
    assert value.shape == () and value.dtype == torch.float32
    assert torch.isfinite(value)
    value.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    return value


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_gives_a_finite_float32_scalar_with_gradient(name, fingerprint):
    loss_fn = _build(name, fingerprint)
    z, y = _batch()
    assert _check_scalar_with_gradient(loss_fn, z.float(), y.float()).requires_grad


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_is_finite_on_an_all_empty_batch(name, fingerprint):
    loss_fn = _build(name, fingerprint)
    y = torch.zeros(4, 1, 8, 8)
    _check_scalar_with_gradient(loss_fn, torch.randn(4, 1, 8, 8), y)
    _check_scalar_with_gradient(loss_fn, torch.full((4, 1, 8, 8), -1e4), y)


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_is_finite_for_huge_logits(name, fingerprint):
    loss_fn = _build(name, fingerprint)
    z, y = _batch(3)
    signs = torch.where(
        torch.rand(z.shape, generator=torch.Generator().manual_seed(4)) > 0.5, 1, -1
    )
    _check_scalar_with_gradient(loss_fn, (1e4 * signs).float(), y.float())
    _check_scalar_with_gradient(loss_fn, (1e4 * (2 * y - 1)).float(), y.float())  # perfect


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_loss_computes_half_inputs_in_float32(name, dtype, fingerprint):
    loss_fn = _build(name, fingerprint)
    z, y = _batch(5)
    low = loss_fn(z.to(dtype), y.to(dtype))
    full = loss_fn(z.to(dtype).float(), y.float())
    assert low.dtype == torch.float32
    assert torch.equal(low, full)


# -- the definitions -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_equals_its_reference_formula(name, seed):
    z, y = _batch(seed)
    got = build_loss(name)(z.float(), y.float())
    want = REFERENCES[name](z, y)
    assert got.item() == pytest.approx(want.item(), rel=2e-6, abs=1e-6)


def test_paper_baselines_all_have_a_reference():
    assert {n for n in PAPER_LOSSES if not n.startswith("calf")} <= set(REFERENCES)


def test_dice_and_iou_are_one_with_zero_gradient_on_an_empty_truth():
    z = torch.randn(1, 1, 8, 8, requires_grad=True)
    y = torch.zeros(1, 1, 8, 8)
    for name in ("dice", "iou"):
        value = build_loss(name)(z, y)
        (grad,) = torch.autograd.grad(value, z)
        assert value.item() == 1.0 and torch.count_nonzero(grad) == 0


def test_tversky_weights_false_positives_by_0_7():
    y = torch.zeros(1, 1, 4, 4)
    y[..., :2, :] = 1  # 8 positives
    only_fp = torch.where(torch.ones_like(y) > 0, 30.0, 0.0)  # all predicted: FP = 8, FN = 0
    only_fn = torch.full_like(y, -30.0)
    only_fn[..., 0, :] = 30.0  # TP = 4, FN = 4, FP = 0
    tversky = build_loss("tversky")
    assert tversky(only_fp, y).item() == pytest.approx(1 - 8 / (8 + 0.7 * 8), rel=1e-5)
    assert tversky(only_fn, y).item() == pytest.approx(1 - 4 / (4 + 0.3 * 4), rel=1e-5)


def test_tversky_sums_over_the_batch_unless_per_image():
    z, y = _batch(2)
    batch = build_loss("tversky")(z.float(), y.float())
    per_image = build_loss("tversky", per_image=True)(z.float(), y.float())
    assert batch.item() == pytest.approx(ref_tversky(z, y).item(), rel=2e-6)
    assert per_image.item() == pytest.approx(ref_tversky(z, y, per_image=True).item(), rel=2e-6)
    assert batch.item() != pytest.approx(per_image.item())


def test_lovasz_is_zero_when_every_margin_exceeds_one():
    y = torch.zeros(2, 1, 4, 4)
    y[0, 0, 1:3, 1:3] = 1
    assert build_loss("lovasz")(3.0 * (2 * y - 1), y).item() == 0.0
    assert build_loss("lovasz")(torch.zeros_like(y), y).item() > 0


def test_building_a_loss_registry_does_not_import_the_training_stack():
    code = (
        "import sys\n"
        "import calfseg.losses\n"
        "heavy = ['monai', 'segmentation_models_pytorch', 'torchvision', 'timm']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
