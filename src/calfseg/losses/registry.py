"""One registry of losses, by name, for the CLI, the benchmark and the Python API.

Every registered loss maps logits ``(B, 1, H, W)`` (any floating dtype) and a {0, 1} target of
the same shape to a float32 scalar::

    from calfseg.losses import build_loss, list_losses

    loss_fn = build_loss("dice")                       # the paper's per-image Dice
    loss_fn = build_loss("tversky", per_image=False)   # options of that loss
    loss_fn = build_loss("calf-dataset", fingerprint="cache/fingerprint.json")

The formulas, references and empty-mask behaviour are in each :class:`LossSpec`, in
:mod:`calfseg.losses.baselines`, :mod:`calfseg.losses.alternatives` and docs/baselines.md.
Library-backed losses import MONAI or segmentation_models_pytorch only when built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from calfseg.errors import (
    DataError,
    OptionError,
    UnknownChoiceError,
    did_you_mean,
    unknown_choice,
)
from calfseg.fingerprint import Fingerprint
from calfseg.losses import alternatives, baselines
from calfseg.losses.branches import BranchLoss, Numerics
from calfseg.losses.calf import CALFLoss
from calfseg.losses.region import RegionCALFLoss
from calfseg.rule import BRANCHES, Thresholds
from calfseg.stats.areas import AreaMethod
from calfseg.stats.moments import AreaMoments

# What a calf-dataset loss is fitted on: a fingerprint file (or a cache folder holding one),
# its document, a Fingerprint or bare AreaMoments; read by CALFLoss.fit (load_fingerprint).
FingerprintSource = str | Path | dict[str, Any] | AreaMoments | Fingerprint


@dataclass(frozen=True)
class LossSpec:
    """A registered loss.

    Attributes:
        name: the registry name (``calf``, ``dice``, ...).
        summary: one line: what it computes.
        reference: where the definition comes from and which implementation computes it.
        empty_masks: what the loss does on images (or batches) with an empty truth.
        factory: keyword-only options -> module; its signature lists the options.
        in_paper: one of the eight losses the paper compares.
        needs_fingerprint: built from the cache's fingerprint.json (``calf-dataset``).
    """

    name: str
    summary: str
    reference: str
    empty_masks: str
    factory: Callable[..., nn.Module]
    in_paper: bool = False
    needs_fingerprint: bool = False

    @property
    def options(self) -> tuple[str, ...]:
        """The option names the factory accepts (``fingerprint`` excluded)."""
        names = inspect.signature(self.factory).parameters
        return tuple(n for n in names if n != "fingerprint")


# -- CALF -------------------------------------------------------------------------------------


def _calf(
    *,
    area: AreaMethod = "pixels",
    numerics: Numerics = "bounded",
    thresholds: Thresholds | dict[str, float] | None = None,
    sync: bool = True,
    validate: bool = False,
) -> nn.Module:
    return CALFLoss(
        "batch",
        area=area,
        numerics=numerics,
        thresholds=thresholds,
        sync=sync,
        validate=validate,
    )


def _calf_dataset(
    *,
    fingerprint: FingerprintSource,
    area: AreaMethod = "pixels",
    numerics: Numerics = "bounded",
    thresholds: Thresholds | dict[str, float] | None = None,
    validate: bool = False,
) -> nn.Module:
    loss = CALFLoss(
        "dataset", area=area, numerics=numerics, thresholds=thresholds, validate=validate
    )
    return loss.fit(fingerprint)


def _calf_region(
    *,
    grid: int = 4,
    area: AreaMethod = "pixels",
    numerics: Numerics = "bounded",
    thresholds: Thresholds | dict[str, float] | None = None,
    sync: bool = True,
    validate: bool = False,
) -> nn.Module:
    return RegionCALFLoss(
        grid, area=area, numerics=numerics, thresholds=thresholds, sync=sync, validate=validate
    )


BRANCH_PREFIX = "branch-"
"""``branch-<name>``: CALF's branch ``<name>`` as a fixed loss, one per branch of the rule."""


def _fixed_branch(branch: str) -> Callable[..., nn.Module]:
    def factory(*, numerics: Numerics = "bounded", validate: bool = False) -> nn.Module:
        return BranchLoss(branch, numerics=numerics, validate=validate)

    factory.__name__ = f"_branch_{branch}"
    return factory


_BRANCH_FORMULAS = {
    "fisher": "-[y atanh(p) + (1-y) atanh(1-p)]",
    "logit": "-[y logit(p) + (1-y) logit(1-p)]",
    "arcsine": "-[y asin(sqrt p) + (1-y) asin(sqrt(1-p))]",
    "log10": "-[y log10 p + (1-y) log10(1-p)] (= BCE / ln 10)",
    "ln": "-[y ln p + (1-y) ln(1-p)] (= BCE)",
    "bce_dice": "BCE + 1 - Dice over the batch",
}


def _branch_specs() -> tuple[LossSpec, ...]:
    return tuple(
        LossSpec(
            BRANCH_PREFIX + branch,
            f"CALF's {branch} branch at every step, mean over pixels: {_BRANCH_FORMULAS[branch]}",
            "arXiv 2504.04458 (the rule's branch, fixed); calfseg.losses.BranchLoss"
            f"({branch!r}); docs/method.md section 3",
            "as the branch inside CALF: per pixel"
            + (", plus a batch Dice near 0 on an all-empty batch" if branch == "bce_dice" else ""),
            _fixed_branch(branch),
        )
        for branch in BRANCHES
    )


_DICE_EMPTY = (
    "no smoothing in the numerator: an image with an empty truth has loss exactly 1 whatever "
    "the prediction, with zero gradient"
)
_MONAI_DICE_EMPTY = (
    "Dice term 1 - 1e-5/(sum(p) + 1e-5) on an empty truth: 0 only when the predicted mass is "
    "below ~1e-5, about 1 otherwise, with a negligible gradient"
)

_SPECS = (
    LossSpec(
        "calf",
        "CALF re-picked every batch from the batch's area skewness/kurtosis (the paper)",
        "arXiv 2504.04458 and the authors' code; calfseg.losses.CALFLoss('batch')",
        "an all-empty batch has undefined S, K and uses bce_dice: BCE + 1 - batch Dice "
        "(Dice ~0 unless the prediction is empty too); empty images count with area 0",
        _calf,
        in_paper=True,
    ),
    LossSpec(
        "calf-dataset",
        "CALF with the branch fixed once from the training split's fingerprint",
        "calfseg.losses.CALFLoss('dataset').fit(fingerprint.json)",
        "the fixed branch's per-pixel formula applies to empty images like to any other",
        _calf_dataset,
        needs_fingerprint=True,
    ),
    LossSpec(
        "calf-region",
        "region-specific CALF: the rule per tile of a 4x4 grid, tiles weighted by 1 + FP + FN",
        "docs/method.md section 4 (authors' code); calfseg.losses.RegionCALFLoss(4)",
        "a tile empty over the whole batch has undefined S, K and uses bce_dice (BCE + 1 - "
        "the tile's Dice); its weight 1 + FP + FN counts its false positives",
        _calf_region,
        in_paper=True,
    ),
    LossSpec(
        "bce",
        "binary cross-entropy with logits, mean over pixels",
        "paper (docs/method.md 5); torch.nn.BCEWithLogitsLoss()",
        "per pixel: penalises every false positive of an empty image",
        baselines.bce_baseline,
        in_paper=True,
    ),
    LossSpec(
        "dice",
        "1 - 2 sum(py) / (sum(p) + sum(y) + 1e-5) per image, averaged",
        "paper (docs/method.md 5); monai.losses.DiceLoss(sigmoid=True, smooth_nr=0, "
        "smooth_dr=1e-5, batch=False)",
        _DICE_EMPTY,
        baselines.dice_baseline,
        in_paper=True,
    ),
    LossSpec(
        "focal",
        "focal loss on p clamped to [1e-6, 1 - 1e-6], alpha 0.25 on positives, gamma 2, "
        "mean over pixels",
        "paper (docs/method.md 5, the authors' FocalLoss), Lin et al. 2017; "
        "calfseg.losses.baselines.clamped_focal_loss; eps=None: no clamp, "
        "monai.losses.FocalLoss(alpha=0.25, gamma=2, use_softmax=False)",
        "per pixel: penalises false positives of an empty image (weight 0.75); the clamp "
        "zeroes the gradient of pixels with |z| > 13.8",
        baselines.focal_baseline,
        in_paper=True,
    ),
    LossSpec(
        "tversky",
        "1 - TP / (TP + 0.7 FP + 0.3 FN + 1e-5) per image, averaged",
        "paper (docs/method.md 5, the authors' TverskyLoss); monai.losses.TverskyLoss("
        "sigmoid=True, alpha=0.7 (FP), beta=0.3 (FN), smooth_nr=0, smooth_dr=1e-5, "
        "batch=False); per_image=False: one index over the batch (batch=True)",
        _DICE_EMPTY
        + "; with per_image=False empty images add their false positives to the batch's FP "
        "and get a gradient",
        baselines.tversky_baseline,
        in_paper=True,
    ),
    LossSpec(
        "iou",
        "1 - sum(py) / (sum(p) + sum(y) - sum(py) + 1e-5) per image, averaged (soft Jaccard)",
        "paper (docs/method.md 5; constant as for Dice); monai.losses.DiceLoss(jaccard=True, "
        "sigmoid=True, smooth_nr=0, smooth_dr=2e-5, batch=False)",
        _DICE_EMPTY,
        baselines.iou_baseline,
        in_paper=True,
    ),
    LossSpec(
        "combo",
        "bce + dice (the paper's Dice)",
        "paper (docs/method.md 5); monai.losses.DiceCELoss(sigmoid=True, smooth_nr=0, "
        "smooth_dr=1e-5, batch=False)",
        "BCE penalises false positives; the Dice term is a constant 1 on an empty image",
        baselines.combo_baseline,
        in_paper=True,
    ),
    LossSpec(
        "dice-ce",
        "BCE + Dice smoothed 1e-5 in numerator and denominator, per image",
        "monai.losses.DiceCELoss(sigmoid=True) with MONAI's defaults",
        _MONAI_DICE_EMPTY,
        alternatives.dice_ce_loss,
    ),
    LossSpec(
        "dice-focal",
        "Dice (as dice-ce) + focal loss (gamma 2, no alpha), per image",
        "monai.losses.DiceFocalLoss(sigmoid=True) with MONAI's defaults",
        _MONAI_DICE_EMPTY + "; the focal term penalises false positives",
        alternatives.dice_focal_loss,
    ),
    LossSpec(
        "focal-tversky",
        "(1 - TI)^(3/4), TI = (TP + 1) / (TP + 0.7 FN + 0.3 FP + 1) over the batch",
        "Abraham & Khan 2019 (arXiv 1810.07842); TI from monai.losses.TverskyLoss(alpha=0.3, "
        "beta=0.7, smooth 1, batch=True), power written here",
        "an all-empty batch has TI = 1 / (0.3 FP + 1): the loss drives false positives down "
        "and is 0 for an empty prediction",
        alternatives.focal_tversky_loss,
    ),
    LossSpec(
        "generalized-dice",
        "generalized Dice (weights 1/sum(y)^2), per image",
        "Sudre et al. 2017; monai.losses.GeneralizedDiceLoss(sigmoid=True)",
        "an image with an empty truth gets weight 0: loss exactly 0, zero gradient",
        alternatives.generalized_dice_loss,
    ),
    LossSpec(
        "lovasz",
        "Lovasz hinge on the logits, one Jaccard extension over the batch",
        "Berman et al. 2018; segmentation_models_pytorch.losses.LovaszLoss('binary', "
        "per_image=False)",
        "an all-empty batch reduces to relu(1 + max logit): only the largest logit is pushed down",
        alternatives.lovasz_loss,
    ),
    LossSpec(
        "bce-control",
        "bce itself, as the benchmark's A/A control arm (trained under other seeds)",
        "calf benchmark's control (docs/benchmark.md); torch.nn.BCEWithLogitsLoss()",
        "as bce",
        baselines.bce_baseline,
    ),
    *_branch_specs(),
)

LOSSES: dict[str, LossSpec] = {spec.name: spec for spec in _SPECS}
PAPER_LOSSES: tuple[str, ...] = tuple(s.name for s in _SPECS if s.in_paper)


def list_losses() -> tuple[str, ...]:
    """The registered names, in registry order (CALF first, then the paper's baselines)."""
    return tuple(LOSSES)


def markdown_table() -> str:
    """The registry as a Markdown table (name, formula, reference, empty masks, options), the
    one docs/baselines.md holds verbatim (a test checks it). Regenerate with
    ``python -c "from calfseg.losses.registry import markdown_table; print(markdown_table())"``.
    """

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| name | formula | reference and implementation | empty masks | options |",
        "|---|---|---|---|---|",
    ]
    for name, spec in LOSSES.items():
        paper = " (paper)" if spec.in_paper else ""
        options = ", ".join(f"`{option}`" for option in spec.options)
        cells = (f"`{name}`{paper}", spec.summary, spec.reference, spec.empty_masks, options)
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines)


def build_loss(
    name: str, *, fingerprint: FingerprintSource | None = None, **options: Any
) -> nn.Module:
    """Build the registered loss ``name`` with ``options`` (see :attr:`LossSpec.options`).

    Args:
        name: one of :func:`list_losses`.
        fingerprint: the cache's ``fingerprint.json`` or any fingerprint file (a path, a
            cache folder, its dict, a :class:`~calfseg.fingerprint.Fingerprint` or an
            :class:`AreaMoments`), read by :func:`~calfseg.fingerprint.load_fingerprint`;
            required by ``calf-dataset`` and ignored by the others, so a caller may always
            pass the cache's.
        options: keyword options of that loss, e.g. ``per_image=True`` for ``tversky``.

    Raises:
        ValueError: an unknown name (the message lists the valid ones), an option the loss
            does not take, or ``calf-dataset`` without a fingerprint.
    """
    spec = LOSSES.get(name)
    if spec is None:
        raise unknown_choice("loss", name, LOSSES)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise OptionError(
            f"loss {name!r} does not take the option(s) {', '.join(unknown)}"
            f"{did_you_mean(unknown[0], spec.options)}; "
            f"its options: {', '.join(spec.options) or 'none'}"
        )
    _check_option_types(spec, options)
    if spec.needs_fingerprint and fingerprint is None:
        raise OptionError(
            f"loss {name!r} needs the cache's fingerprint.json (pass fingerprint=PATH, a "
            "dict or an AreaMoments): it fixes CALF's branch from the training split's "
            "area statistics; use 'calf' to re-pick per batch instead"
        )
    extra = {"fingerprint": fingerprint} if spec.needs_fingerprint else {}
    try:
        return spec.factory(**extra, **options)
    except (DataError, UnknownChoiceError):  # the fingerprint's fault, or named already
        raise
    except (TypeError, ValueError) as err:  # a value the loss refuses: the call is wrong
        if spec.needs_fingerprint and not options:
            raise  # nothing of the caller's to blame but the fingerprint
        raise OptionError(f"loss {name!r}: {err}") from None


def _check_option_types(spec: LossSpec, options: dict[str, Any]) -> None:
    """Each option's value of the type of the factory's default (a flag takes true or false,
    a number a number, a name a string; options whose default is None take anything the
    loss accepts): ``per_image="maybe"`` would otherwise be taken as true."""
    parameters = inspect.signature(spec.factory).parameters
    for key, value in options.items():
        default = parameters[key].default
        if value is None or default is None or default is inspect.Parameter.empty:
            continue  # None: the loss says whether it takes it (focal's eps=None does)
        if isinstance(default, bool):
            ok, wanted = isinstance(value, bool), "true or false"
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            wanted = "a number"
        elif isinstance(default, str):
            ok, wanted = isinstance(value, str), "a name"
        else:
            continue
        if not ok:
            raise OptionError(f"loss {spec.name!r}: option {key} takes {wanted}, got {value!r}")
