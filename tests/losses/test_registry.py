"""The loss registry: every name builds, keeps the contract, and computes its definition.

The reference formulas below are written straight from docs/method.md section 5 (and, for the
extra losses, from their papers), in float64, independently of MONAI and smp.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from calfseg.errors import OptionError
from calfseg.fingerprint import Fingerprint, load_fingerprint
from calfseg.losses import LOSSES, PAPER_LOSSES, CALFLoss, build_loss, list_losses
from calfseg.losses.registry import markdown_table
from calfseg.stats import AreaMoments

from .area_cases import AREAS_FOR, masks_with_areas

NAMES = list_losses()


@pytest.fixture(scope="module")
def fingerprint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cache") / "fingerprint.json"
    Fingerprint(AreaMoments.from_areas(AREAS_FOR["log10"])).save(path)
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
    """-(y log p + (1 - y) log(1 - p)) in the form that stays exact for any z:
    max(z, 0) - y z + log(1 + exp(-|z|))."""
    return (z.clamp_min(0) - y * z + torch.log1p(torch.exp(-z.abs()))).mean()


def ref_dice(z, y, smooth_nr=0.0, smooth_dr=1e-5):
    tp, sp, sy = _sums(torch.sigmoid(z), y, per_image=True)
    return (1 - (2 * tp + smooth_nr) / (sp + sy + smooth_dr)).mean()


def ref_focal(z, y, alpha=0.25, gamma=2.0, eps=1e-6):
    """docs/method.md 5: p = sigmoid(z) clamped to [1e-6, 1 - 1e-6]; per-pixel BCE of that p times
    (y(1 - p) + (1 - y)p)^2, times 0.25 on positives and 0.75 on negatives; mean."""
    p = torch.sigmoid(z)
    if eps is not None:
        p = torch.clamp(p, eps, 1 - eps)
    p_t = torch.where(y == 1, p, 1 - p)
    a_t = torch.where(y == 1, alpha, 1 - alpha) if alpha is not None else 1.0
    return (a_t * (1 - p_t) ** gamma * F.binary_cross_entropy(p, y, reduction="none")).mean()


def ref_focal_unclamped(z, y, alpha=0.25, gamma=2.0):
    """Lin et al. 2017 without a clamp, in log-space: -log p_t = softplus(-z) or softplus(z)."""
    p = torch.sigmoid(z)
    p_t = torch.where(y == 1, p, 1 - p)
    minus_log_p_t = torch.where(y == 1, F.softplus(-z), F.softplus(z))
    a_t = torch.where(y == 1, alpha, 1 - alpha)
    return (a_t * (1 - p_t) ** gamma * minus_log_p_t).mean()


def ref_tversky(z, y, per_image=True):
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
    "bce-control": ref_bce,  # the benchmark's A/A arm: BCE itself, under other seeds
    "dice": ref_dice,
    "focal": ref_focal,
    "tversky": ref_tversky,
    "iou": ref_iou,
    "combo": ref_combo,
    "dice-ce": lambda z, y: ref_bce(z, y) + ref_dice(z, y, 1e-5, 1e-5),
    "dice-focal": lambda z, y: ref_dice(z, y, 1e-5, 1e-5) + ref_focal(z, y, alpha=None, eps=None),
    "focal-tversky": ref_focal_tversky,
    "generalized-dice": ref_generalized_dice,
}


# -- the registry ----------------------------------------------------------------------------


def test_registry_holds_the_paper_losses_and_the_extras():
    assert set(NAMES) == {
        "calf", "calf-dataset", "calf-region", "bce", "dice", "focal", "tversky", "iou",
        "combo", "dice-ce", "dice-focal", "focal-tversky", "generalized-dice", "lovasz",
        "bce-control", "branch-fisher", "branch-logit", "branch-arcsine", "branch-log10",
        "branch-ln", "branch-bce_dice",
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


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"per_image": "maybe"}, "option per_image takes true or false, got 'maybe'"),
        ({"smooth": "abc"}, "option smooth takes a number, got 'abc'"),
        ({"fp_weight": True}, "option fp_weight takes a number, got True"),
        ({"fp_weight": -1.0}, "loss 'tversky': fp_weight and fn_weight must be >= 0"),
    ],
)
def test_option_values_of_the_wrong_kind_or_range_are_option_errors(options, message):
    # an OptionError is what calf turns into exit 2 (a usage error), before any training
    with pytest.raises(OptionError, match=re.escape(message)):
        build_loss("tversky", **options)
    assert isinstance(build_loss("tversky", per_image=True, smooth=1), torch.nn.Module)
    assert isinstance(build_loss("focal", eps=None), torch.nn.Module)  # None where taken


def test_calf_dataset_without_fingerprint_says_it_needs_one():
    with pytest.raises(ValueError, match=r"needs the cache's fingerprint\.json"):
        build_loss("calf-dataset")


def test_calf_dataset_uses_the_fingerprint_file(fingerprint):
    loss_fn = build_loss("calf-dataset", fingerprint=fingerprint)
    assert isinstance(loss_fn, CALFLoss) and loss_fn.statistics == "dataset"
    assert loss_fn.last_selection.branch == "log10"
    masks = masks_with_areas(AREAS_FOR["fisher"])  # the batch's own pick would be fisher
    logits = torch.randn(masks.shape, generator=torch.Generator().manual_seed(1))
    expected = CALFLoss("dataset").fit(load_fingerprint(fingerprint))(logits, masks)
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


PAPER_BASELINES = ("bce", "dice", "focal", "tversky", "iou", "combo")


@pytest.mark.parametrize("name", PAPER_BASELINES)
@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_paper_baseline_equals_the_authors_formula_in_float64(name, scale):
    """Random logits of scale 1 and 20 (where the focal clamp is active), float64 in: the value
    equals the formula of docs/method.md section 5 computed in float64."""
    g = torch.Generator().manual_seed(7)
    z = scale * torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64)
    y = (torch.rand(4, 1, 16, 16, generator=g) > 0.8).double()
    y[1] = 0  # an empty truth
    got = build_loss(name)(z, y)
    assert got.item() == pytest.approx(REFERENCES[name](z, y).item(), rel=1e-6)


def test_focal_is_the_authors_clamped_one_and_eps_none_the_unclamped_one():
    g = torch.Generator().manual_seed(0)
    z = 20.0 * torch.randn(8, 1, 64, 64, generator=g, dtype=torch.float64)
    y = (torch.rand(8, 1, 64, 64, generator=g) < 0.2).double()
    clamped = build_loss("focal")(z, y).item()
    unclamped = build_loss("focal", eps=None)(z, y).item()
    assert clamped == pytest.approx(ref_focal(z, y).item(), rel=1e-6)
    assert unclamped == pytest.approx(ref_focal_unclamped(z, y).item(), rel=1e-5)
    # At logit scale 20 the clamp bounds each pixel's BCE by -ln(1e-6) = 13.8: far apart.
    assert unclamped - clamped > 1.0
    # Within |z| < 13 the clamp is inactive and the two agree.
    small = z.clamp(-13, 13)
    assert build_loss("focal")(small, y).item() == pytest.approx(
        build_loss("focal", eps=None)(small, y).item(), rel=1e-5
    )


def test_focal_gradient_is_zero_where_the_clamp_is_active():
    z = torch.tensor([-20.0, -5.0, 5.0, 20.0], dtype=torch.float64).reshape(1, 1, 2, 2)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64).reshape(1, 1, 2, 2)
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(build_loss("focal")(z, y), z)
    flat = grad.flatten()
    assert flat[0] == 0 and flat[3] == 0  # confidently wrong beyond |z| = 13.8: no gradient
    assert flat[1] != 0 and flat[2] != 0


def test_focal_float32_follows_the_authors_float32_arithmetic():
    g = torch.Generator().manual_seed(3)
    z = 20.0 * torch.randn(4, 1, 16, 16, generator=g)
    y = (torch.rand(4, 1, 16, 16, generator=g) > 0.5).float()
    got = build_loss("focal")(z, y)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref_focal(z, y).item(), rel=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.5, -1e-6])
def test_focal_eps_out_of_range_is_named(eps):
    with pytest.raises(ValueError, match=r"eps must be in \(0, 0\.5\).*or None"):
        build_loss("focal", eps=eps)


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


def test_tversky_is_per_image_unless_per_image_is_false():
    z, y = _batch(2)
    per_image = build_loss("tversky")(z.float(), y.float())
    batch = build_loss("tversky", per_image=False)(z.float(), y.float())
    assert per_image.item() == pytest.approx(ref_tversky(z, y).item(), rel=2e-6)
    assert batch.item() == pytest.approx(ref_tversky(z, y, per_image=False).item(), rel=2e-6)
    assert batch.item() != pytest.approx(per_image.item())


def test_tversky_gives_an_empty_image_zero_gradient_per_image_only():
    """Per image (the authors'): TP = 0 on an empty truth, so TI = 0 and the image's loss is
    1 with zero gradient whatever the prediction. Summed over the batch, that image's false
    positives enter FP and get a gradient."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    y[0, 0, 2:6, 2:6] = 1  # image 1 is empty
    (per_image,) = torch.autograd.grad(build_loss("tversky")(z, y), z)
    assert torch.count_nonzero(per_image[1]) == 0
    assert torch.count_nonzero(per_image[0]) > 0
    (batch,) = torch.autograd.grad(build_loss("tversky", per_image=False)(z, y), z)
    assert (batch[1] > 0).all()  # raising an empty image's logits raises the loss
    alone = build_loss("tversky")(z[1:], y[1:])
    assert alone.item() == 1.0


def test_lovasz_is_zero_when_every_margin_exceeds_one():
    y = torch.zeros(2, 1, 4, 4)
    y[0, 0, 1:3, 1:3] = 1
    assert build_loss("lovasz")(3.0 * (2 * y - 1), y).item() == 0.0
    assert build_loss("lovasz")(torch.zeros_like(y), y).item() > 0


@pytest.mark.slow
def test_building_a_loss_registry_does_not_import_the_training_stack():
    code = (
        "import sys\n"
        "import calfseg.losses\n"
        "heavy = ['monai', 'segmentation_models_pytorch', 'torchvision', 'timm']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_docs_hold_the_registry_table_verbatim():
    """docs/baselines.md is generated from the registry: every LossSpec's summary, reference,
    empty-mask text and options are in it, exactly as the registry says them."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "baselines.md").read_text()
    table = markdown_table()
    assert table in doc, (
        "docs/baselines.md is out of date with the registry; regenerate its table with: "
        'python -c "from calfseg.losses.registry import markdown_table; '
        'print(markdown_table())"'
    )
    rows = table.splitlines()[2:]
    assert len(rows) == len(LOSSES)
    for row, spec in zip(rows, LOSSES.values(), strict=True):
        assert row.startswith(f"| `{spec.name}`")
        for text in (spec.summary, spec.reference, spec.empty_masks):
            assert text.replace("|", "\\|") in row
        assert all(f"`{option}`" in row for option in spec.options)
