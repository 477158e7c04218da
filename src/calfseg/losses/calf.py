"""CALFLoss: measure the area distribution, apply the decision rule, train with the branch.

METHOD.md sections 1-3; arXiv 2504.04458 and the authors' training code (per-batch pick).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from calfseg.losses.branches import Numerics, branch_mean, branch_terms, check_numerics
from calfseg.losses.inputs import MODES, REDUCTIONS, Mode, Reduction, check_choice, prepare_pair
from calfseg.rule import Selection, Thresholds, select_branch
from calfseg.stats.areas import AREA_METHODS, AreaMethod, foreground_areas
from calfseg.stats.moments import AreaMoments
from calfseg.stats.sync import all_reduce_moments

Statistics = Literal["batch", "dataset", "running"]
STATISTICS: tuple[str, ...] = ("batch", "dataset", "running")

FitSource = (
    torch.Tensor
    | np.ndarray
    | AreaMoments
    | Sequence[AreaMoments]
    | dict[str, Any]
    | str
    | Path
    | Iterable[torch.Tensor]
)


class DegenerateStatisticsWarning(UserWarning):
    """CALF's (S, K) are undefined for the data a loss was fitted on, so the rule falls back
    to ``bce_dice`` (METHOD.md section 2: fewer than two areas, or all areas equal)."""


def _check_fitted(moments: AreaMoments, channel: int | None, *, statistics: str) -> None:
    """Refuse a summary of 0 masks; in dataset mode warn loudly when S and K are undefined,
    saying the counts and what the rule does with them (a running seed is refined by the
    training calls, so it is not warned about)."""
    where = "" if channel is None else f" for channel {channel}"
    n = moments.count
    if n == 0:
        raise ValueError(
            f"fit() found 0 masks{where}: there are no areas to measure. Pass the training "
            "masks (a tensor, an array or an iterable of mask batches) or the fingerprint of a "
            "non-empty split"
        )
    if statistics != "dataset" or not math.isnan(moments.skewness()):
        return
    # Undefined S and K means every area equals the mean (or n = 1): all empty or none.
    empty = n if moments.mean == 0 else 0
    why = "fewer than 2 masks" if n < 2 else f"all {n} areas are equal ({moments.mean:g})"
    warnings.warn(
        f"CALF statistics{where} are undefined: fitted on {n} mask(s), {empty} of them "
        f"empty ({why}), so skewness and kurtosis are NaN and the rule falls back to "
        "bce_dice for the whole training. Fit on the training split's masks including "
        "lesion slices, or pick a branch yourself (calfseg.losses.branch_loss)",
        DegenerateStatisticsWarning,
        stacklevel=3,
    )


class CALFLoss(nn.Module):
    """Conditionally adaptive loss (CALF): pick a branch loss from the skewness S and excess
    kurtosis K of the foreground-area distribution, then apply it.

    Flow: target masks -> :func:`~calfseg.stats.foreground_areas` -> :class:`AreaMoments`
    (S, K) -> :func:`~calfseg.rule.select_branch` -> branch loss of
    :mod:`calfseg.losses.branches` (formulas and numerics documented there).

    Args:
        statistics: where (S, K) come from.

            * ``"batch"`` (default): from the areas of each call's target, re-picked at every
              step, as in the authors' training code. Costs one host synchronisation per call.
            * ``"dataset"``: fixed by :meth:`fit` (masks, an :class:`AreaMoments`, a
              fingerprint dict or its JSON file). Using it unfitted is an error. The forward
              has no host synchronisation and no data-dependent Python branch, so
              ``torch.compile(fullgraph=True)`` works.
            * ``"running"``: the moments accumulate over the calls made in training mode
              (optionally seeded by :meth:`fit`); each pick uses everything seen so far. In
              eval mode nothing accumulates.
        mode: ``"binary"``, logits ``(B, 1, *spatial)``; or ``"multilabel"``, logits
            ``(B, C, *spatial)`` with one selection per channel and the loss averaged over
            channels. 2D and 3D inputs; a 3D sample's area is its voxel count.
        area: ``"pixels"`` (count of foreground elements) or ``"contour"`` (the authors'
            OpenCV polygon area; 2D only, slow, needs the ``contour`` extra).
        numerics: ``"bounded"`` (default: the paper's functions and their bound, evaluated
            exactly; float64 logits are computed in float64) or ``"paper"`` (the authors'
            literal code), see :mod:`calfseg.losses.branches`.
        thresholds: overrides of the rule's cut points (:class:`~calfseg.rule.Thresholds` or
            a dict such as ``{"log10": 1.5}``).
        sync: under an initialised ``torch.distributed`` group, combine batch statistics
            across ranks (default) so that every rank picks the same branch; ``False`` keeps
            the authors' independent per-rank pick. No effect on ``"dataset"``.
        reduction: ``"mean"`` over all elements, or ``"none"`` for the per-element map.
        validate: reject NaN/inf logits and target values outside {0, 1} (synchronises).
            Without it, target values outside [0, 1] (a 0/255 mask) are still an error,
            checked without a host synchronisation.

    Empty targets: an all-empty batch has sigma = 0, so S and K are NaN and the rule falls to
    ``bce_dice`` (whose Dice is then close to 0 unless the prediction is empty as well). A
    batch of one sample likewise gives NaN statistics and ``bce_dice``.

    Example::

        loss_fn = CALFLoss()                       # the paper: re-picked every batch
        loss = loss_fn(model(images), masks)
        loss_fn.last_selection.branch              # e.g. 'log10'

        loss_fn = CALFLoss("dataset").fit(train_masks)   # fixed pick, compile-friendly
    """

    def __init__(
        self,
        statistics: Statistics = "batch",
        *,
        mode: Mode = "binary",
        area: AreaMethod = "pixels",
        numerics: Numerics = "bounded",
        thresholds: Thresholds | dict[str, float] | None = None,
        sync: bool = True,
        reduction: Reduction = "mean",
        validate: bool = False,
    ) -> None:
        super().__init__()
        check_choice("statistics", statistics, STATISTICS)
        check_choice("mode", mode, MODES)
        check_choice("area", area, AREA_METHODS)
        check_numerics(numerics)
        check_choice("reduction", reduction, REDUCTIONS)
        self.statistics = statistics
        self.mode = mode
        self.area = area
        self.numerics = numerics
        self.thresholds = Thresholds.coerce(thresholds)
        self.sync = sync
        self.reduction = reduction
        self.validate = validate
        # One summary per channel: fitted (dataset), accumulated (running), or None.
        self._moments: list[AreaMoments] | None = None
        self._selections: tuple[Selection, ...] | None = None

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, source: FitSource) -> CALFLoss:
        """Fix (``"dataset"``) or seed (``"running"``) the statistics; returns ``self``.

        ``source`` is one of: masks (tensor or array, ``(N, 1, *spatial)`` / ``(N, *spatial)``
        in binary mode, ``(N, C, *spatial)`` in multilabel mode); an iterable of such mask
        batches (e.g. a DataLoader's masks); an :class:`AreaMoments` (binary) or a sequence
        of them (one per channel); a fingerprint dict (``AreaMoments.to_dict()``, a
        ``calf analyze --json`` output with its ``"moments"`` key, or ``{"channels": [...]}``);
        or the path of such a JSON file, or of a ``calf prepare`` cache folder (its
        ``fingerprint.json``: the train split's areas).

        Raises:
            ValueError: the source holds no mask (0 masks, e.g. an empty iterable or an
                empty split's fingerprint).

        Warns:
            DegenerateStatisticsWarning: in dataset mode, when S and K are undefined (fewer
                than two masks, or all areas equal, e.g. all masks empty): the rule then falls
                back to ``bce_dice`` for the whole training.
        """
        if self.statistics == "batch":
            raise ValueError(
                "fit() sets fixed or starting statistics: use statistics='dataset' or 'running'"
            )
        moments = self._moments_from(source)
        if self.mode == "binary" and len(moments) != 1:
            raise ValueError(f"mode='binary' takes one area summary, got {len(moments)}")
        for channel, m in enumerate(moments):
            _check_fitted(m, channel if len(moments) > 1 else None, statistics=self.statistics)
        self._set_moments(moments)
        return self

    def _moments_from(self, source: FitSource) -> list[AreaMoments]:
        if isinstance(source, AreaMoments):
            return [source.copy()]
        if isinstance(source, (str, Path)):
            path = Path(source)
            if path.is_dir():  # a cache folder of calf prepare: its train-split fingerprint
                path = path / "fingerprint.json"
                if not path.is_file():
                    raise FileNotFoundError(
                        f"{source} is a folder without fingerprint.json: give a cache folder "
                        "written by calf prepare, or the path of a fingerprint JSON file"
                    )
            return self._moments_from(json.loads(path.read_text()))
        if isinstance(source, dict):
            if "channels" in source:
                return [AreaMoments.from_dict(d) for d in source["channels"]]
            return [AreaMoments.from_dict(source.get("moments", source))]
        if isinstance(source, (torch.Tensor, np.ndarray)):
            return self._moments_of_masks(torch.as_tensor(source), None)
        if isinstance(source, Sequence) and source and isinstance(source[0], AreaMoments):
            return [m.copy() for m in source]  # type: ignore[union-attr]
        if isinstance(source, Iterable):
            moments: list[AreaMoments] | None = None
            for batch in source:
                moments = self._moments_of_masks(torch.as_tensor(batch), moments)
            if moments is None:
                raise ValueError(
                    "fit() found 0 masks: the iterable of mask batches was empty; pass the "
                    "training masks (or a loader over them), or a fingerprint of a non-empty "
                    "split"
                )
            return moments
        raise TypeError(f"cannot fit CALFLoss from {type(source).__name__}")

    def _moments_of_masks(
        self, masks: torch.Tensor, into: list[AreaMoments] | None
    ) -> list[AreaMoments]:
        if self.mode == "binary" and masks.ndim >= 3 and (masks.ndim == 3 or masks.shape[1] != 1):
            masks = masks.unsqueeze(1)  # (N, *spatial) -> (N, 1, *spatial)
        areas = foreground_areas(masks, self.area, per_channel=True).cpu()
        into = into if into is not None else [AreaMoments() for _ in range(areas.shape[1])]
        if len(into) != areas.shape[1]:
            raise ValueError(
                f"mask batches disagree on the channel count: {len(into)} vs {areas.shape[1]}"
            )
        for c, m in enumerate(into):
            m.update(areas[:, c])
        return into

    def _set_moments(self, moments: list[AreaMoments]) -> None:
        self._moments = moments
        self._selections = tuple(
            select_branch(m.skewness(), m.kurtosis(), self.thresholds, count=m.count)
            for m in moments
        )

    # -- state --------------------------------------------------------------------------------

    @property
    def moments(self) -> list[AreaMoments] | None:
        """The fitted or accumulated summaries, one per channel (None in batch mode)."""
        return self._moments

    @property
    def last_selection(self) -> Selection | tuple[Selection, ...] | None:
        """The latest pick (fitted pick in dataset mode): a :class:`Selection` with branch,
        condition, S, K and n; a tuple of them, one per channel, in multilabel mode."""
        if self._selections is None:
            return None
        return self._selections[0] if self.mode == "binary" else self._selections

    def get_extra_state(self) -> dict[str, Any]:
        moments = None if self._moments is None else [m.to_dict() for m in self._moments]
        return {"moments": moments}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("moments") is None:
            self._moments, self._selections = None, None
        else:
            self._set_moments([AreaMoments.from_dict(d) for d in state["moments"]])

    def extra_repr(self) -> str:
        return (
            f"statistics={self.statistics!r}, mode={self.mode!r}, area={self.area!r}, "
            f"numerics={self.numerics!r}, sync={self.sync}, reduction={self.reduction!r}"
        )

    # -- forward ------------------------------------------------------------------------------

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z, y = prepare_pair(logits, target, mode=self.mode, validate=self.validate)
        if self.statistics == "dataset":
            if self._selections is None:
                raise RuntimeError("CALFLoss(statistics='dataset') must be fitted: call .fit()")
            if len(self._selections) != z.shape[1]:
                raise ValueError(
                    f"fitted for {len(self._selections)} channel(s), got logits with {z.shape[1]}"
                )
            selections = self._selections
        else:
            selections = self._select_from_batch(y)
        with torch.autocast(z.device.type, enabled=False):
            if len(selections) == 1:  # one channel: the whole tensor at once
                return self._reduce(selections[0].branch, z, y)
            # Several channels, each with its own branch. They have equal sizes, so the mean
            # of the per-channel means is the mean over all elements.
            parts = [self._reduce(s.branch, z[:, c], y[:, c]) for c, s in enumerate(selections)]
            if self.reduction == "mean":
                return torch.stack(parts).mean()
            return torch.stack(parts, dim=1)

    def _reduce(self, branch: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.reduction == "mean":
            return branch_mean(branch, z, y, numerics=self.numerics)
        return branch_terms(branch, z, y, numerics=self.numerics)

    def _select_from_batch(self, y: torch.Tensor) -> tuple[Selection, ...]:
        areas = foreground_areas(y, self.area, per_channel=True).cpu()  # host sync
        batch = [AreaMoments.from_areas(areas[:, c]) for c in range(areas.shape[1])]
        if self.sync:
            batch = all_reduce_moments(batch)
        if self.statistics == "running":
            if self.training:
                if self._moments is None or len(self._moments) != len(batch):
                    self._moments = [AreaMoments() for _ in batch]
                for total, m in zip(self._moments, batch, strict=True):
                    total.merge(m)
            if self._moments is not None:
                batch = self._moments
        selections = tuple(
            select_branch(m.skewness(), m.kurtosis(), self.thresholds, count=m.count) for m in batch
        )
        self._selections = selections
        return selections
