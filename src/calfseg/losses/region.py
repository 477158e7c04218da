"""Region-specific CALF: the rule applied tile by tile, tiles weighted by their errors.

docs/method.md section 4, from the authors' code: split each H x W map into a g x g grid
(g = 4). For every tile, the tile's foreground areas over the batch give (S, K), the rule
picks a branch, and the branch loss ``L_t`` is the mean over the tile. Each tile is weighted
by ``w_t = 1 + FP_t + FN_t``, the false-positive and false-negative pixel counts of
``round(sigmoid(z))`` (i.e. ``z > 0``) against the target within the tile over the whole
batch, with no gradient through ``w``. The loss is ``sum_t(w_t L_t) / sum_t(w_t)``.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from calfseg.errors import OptionError, check_choice
from calfseg.losses.branches import Numerics, branch_mean, check_numerics
from calfseg.losses.inputs import autocast_off, prepare_pair
from calfseg.rule import Selection, Thresholds, select_branch
from calfseg.stats.areas import AREA_METHODS, AreaMethod, foreground_areas
from calfseg.stats.moments import AreaMoments
from calfseg.stats.sync import all_reduce_moments


def tile_bounds(size: int, grid: int) -> list[tuple[int, int]]:
    """Split ``size`` pixels into ``grid`` contiguous tiles whose sizes differ by at most one:
    tile ``i`` spans ``[floor(i * size / grid), floor((i + 1) * size / grid))``."""
    if grid > size:
        raise OptionError(f"a grid of {grid} tiles does not fit a side of {size} pixels")
    edges = [i * size // grid for i in range(grid + 1)]
    return list(itertools.pairwise(edges))


class RegionCALFLoss(nn.Module):
    """CALF applied per tile of a ``grid x grid`` partition, tiles weighted by 1 + FP + FN.

    Args:
        grid: tiles per side (the authors: 4). When ``grid`` does not divide H or W, tiles
            differ in size by at most one pixel (see :func:`tile_bounds`); each tile's loss is
            still the mean over its own pixels, so smaller tiles are not down-weighted.
        area: ``"pixels"`` or ``"contour"`` (2D only), as in :class:`CALFLoss`.
        numerics: ``"bounded"`` (default, as in :class:`CALFLoss`) or ``"paper"``. With
            ``"paper"`` p is clamped to [1e-7, 1 - 1e-7] before every branch, ``bce_dice``
            included, as the authors' region variant does (the plain CALF leaves
            ``bce_dice`` unclamped).
        thresholds: overrides of the rule's cut points.
        sync: combine each tile's batch statistics across torch.distributed ranks (default).
        validate: reject NaN/inf logits and target values outside {0, 1} (synchronises);
            targets outside [0, 1] are an error in any case.

    Inputs are binary: logits ``(B, 1, H, W)`` or ``(B, 1, D, H, W)`` (tiles split the last
    two axes; depth stays whole). The statistics are per batch (one host synchronisation per
    call). The result is a scalar, float64 for float64 logits and float32 otherwise. An empty
    tile over the whole batch has NaN statistics and uses ``bce_dice``, like an empty batch
    in :class:`CALFLoss`.
    """

    def __init__(
        self,
        grid: int = 4,
        *,
        area: AreaMethod = "pixels",
        numerics: Numerics = "bounded",
        thresholds: Thresholds | dict[str, float] | None = None,
        sync: bool = True,
        validate: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(grid, int) or grid < 1:
            raise OptionError(f"grid must be a positive integer, got {grid!r}")
        check_choice("area", area, AREA_METHODS)
        check_numerics(numerics)
        self.grid = grid
        self.area = area
        self.numerics = numerics
        self.thresholds = Thresholds.coerce(thresholds)
        self.sync = sync
        self.validate = validate
        self._selections: tuple[Selection, ...] | None = None

    @property
    def last_selection(self) -> tuple[Selection, ...] | None:
        """The latest pick of every tile, row-major (tile (i, j) at ``i * grid + j``)."""
        return self._selections

    def extra_repr(self) -> str:
        return f"grid={self.grid}, area={self.area!r}, numerics={self.numerics!r}, sync={self.sync}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z, y = prepare_pair(logits, target, mode="binary", validate=self.validate)
        if z.ndim not in (4, 5):
            raise OptionError(
                f"RegionCALFLoss expects (B, 1, H, W) or (B, 1, D, H, W), got {tuple(z.shape)}"
            )
        tiles = [
            (slice(h0, h1), slice(w0, w1))
            for h0, h1 in tile_bounds(z.shape[-2], self.grid)
            for w0, w1 in tile_bounds(z.shape[-1], self.grid)
        ]
        selections = self._select(y, tiles)

        with torch.no_grad():
            predicted = z > 0  # round(sigmoid(z)): sigmoid(0) = 0.5 rounds to 0
            wrong = predicted != (y > 0.5)  # FP or FN
            weights = torch.stack([1.0 + wrong[..., sh, sw].sum(dtype=z.dtype) for sh, sw in tiles])

        with autocast_off(z.device):
            losses = torch.stack(
                [
                    branch_mean(
                        s.branch,
                        z[..., sh, sw],
                        y[..., sh, sw],
                        numerics=self.numerics,
                        clamp_probability=self.numerics == "paper",
                    )
                    for s, (sh, sw) in zip(selections, tiles, strict=True)
                ]
            )
            return (weights * losses).sum() / weights.sum()

    def _select(self, y: torch.Tensor, tiles: list[tuple[slice, slice]]) -> tuple[Selection, ...]:
        areas = torch.stack(
            [foreground_areas(y[..., sh, sw], self.area) for sh, sw in tiles], dim=1
        ).cpu()  # (B, tiles), one host sync
        moments = [AreaMoments.from_areas(areas[:, t]) for t in range(areas.shape[1])]
        if self.sync:
            moments = all_reduce_moments(moments)
        self._selections = tuple(
            select_branch(m.skewness(), m.kurtosis(), self.thresholds, count=m.count)
            for m in moments
        )
        return self._selections
