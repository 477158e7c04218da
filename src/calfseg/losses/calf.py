"""CALFLoss: measure the area distribution, apply the decision rule, train with the branch.

docs/method.md sections 1-3; arXiv 2504.04458 and the authors' training code (per-batch pick).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from calfseg.errors import DataValueError, OptionError, check_choice
from calfseg.fingerprint import Fingerprint, load_fingerprint
from calfseg.losses.branches import Numerics, branch_mean, branch_terms, check_numerics
from calfseg.losses.inputs import (
    MODES,
    REDUCTIONS,
    Mode,
    Reduction,
    autocast_off,
    prepare_pair,
)
from calfseg.losses.selection import (
    HostAreas,
    PendingSelection,
    device_moments,
    device_rule_rows,
    moments_from_host_areas,
    row_branches,
    split_parts,
)
from calfseg.rule import Selection, Thresholds, select_branch
from calfseg.stats.areas import AREA_METHODS, AreaMethod, foreground_areas
from calfseg.stats.moments import AreaMoments
from calfseg.stats.sync import all_reduce_moments

Statistics = Literal["batch", "dataset", "running"]
STATISTICS: tuple[str, ...] = ("batch", "dataset", "running")
PickOn = Literal["auto", "host", "device"]
PICK_ON: tuple[str, ...] = ("auto", "host", "device")

FitSource = (
    torch.Tensor
    | np.ndarray
    | AreaMoments
    | Fingerprint
    | Sequence[AreaMoments]
    | dict[str, Any]
    | str
    | Path
    | Iterable[torch.Tensor]
)


class DegenerateStatisticsWarning(UserWarning):
    """CALF's (S, K) are undefined for the data a loss was fitted on, so the rule falls back
    to ``bce_dice`` (docs/method.md section 2: fewer than two areas, or all areas equal)."""


def _check_fitted(moments: AreaMoments, channel: int | None, *, statistics: str) -> None:
    """Refuse a summary of 0 masks; in dataset mode warn loudly when S and K are undefined,
    saying the counts and what the rule does with them (a running seed is refined by the
    training calls, so it is not warned about)."""
    where = "" if channel is None else f" for channel {channel}"
    n = moments.count
    if n == 0:
        raise DataValueError(
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
              step, as in the authors' training code. No host synchronisation when the call
              passes the batch's ``areas`` (from the loader), or, without them, on a GPU
              (the pick is made on the device; see ``pick_on``).
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
            checked without a host synchronisation. With ``areas`` passed to the call, also
            check them against the target's areas.
        pick_on: where a batch-mode call without ``areas`` picks its branch. ``"host"``:
            areas read back to the host (one synchronisation on a GPU; free on a CPU).
            ``"device"``: moments and rule on the device and the loss chosen among the
            candidate branches with ``index_select``, no host read (every candidate is
            evaluated, so it costs several branch losses; pixel areas only, not in running
            mode, not with ``sync`` under a process group). ``"auto"`` (default):
            ``"device"`` where that applies and the target is not on the CPU, else
            ``"host"``. The picks are identical.

    Areas from the loader: ``loss(logits, target, areas=dataset.areas[positions])`` picks the
    branch on the host from host data (no device read, no communication), exactly as the
    target's own areas would. ``areas`` is ``(B,)`` or ``(B, C)`` (numpy, a CPU tensor or a
    list), measured as ``area`` says (the cache stores pixel counts). Under an initialised
    ``torch.distributed`` group with ``sync=True`` pass every rank's part of the global batch,
    in rank order (:func:`calfseg.train.distributed.global_batch_areas`): each rank pools them
    as the all-gather would. Ignored in dataset mode.

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
        pick_on: PickOn = "auto",
    ) -> None:
        super().__init__()
        check_choice("statistics", statistics, STATISTICS)
        check_choice("pick_on", pick_on, PICK_ON)
        if pick_on == "device" and (statistics != "batch" or area != "pixels"):
            raise OptionError(
                "pick_on='device' needs statistics='batch' and area='pixels' (running moments "
                "and contour areas live on the host); use pick_on='auto' or 'host'"
            )
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
        self.pick_on = pick_on
        # One summary per channel: fitted (dataset), accumulated (running), or None.
        self._moments: list[AreaMoments] | None = None
        self._selections: tuple[Selection, ...] | None = None
        self._pending: PendingSelection | None = None  # a device pick not yet read

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, source: FitSource) -> CALFLoss:
        """Fix (``"dataset"``) or seed (``"running"``) the statistics; returns ``self``.

        ``source`` is one of: masks (tensor or array, ``(N, 1, *spatial)`` / ``(N, *spatial)``
        in binary mode, ``(N, C, *spatial)`` in multilabel mode); an iterable of such mask
        batches (e.g. a DataLoader's masks); an :class:`AreaMoments` (binary) or a sequence
        of them (one per channel); a :class:`~calfseg.fingerprint.Fingerprint`, its document
        (``Fingerprint.to_dict()``, or ``{"channels": [...]}`` of them, one per channel);
        or the path of such a JSON file, or of a ``calf prepare`` cache folder (its
        ``fingerprint.json``: the train split's areas).

        Raises:
            ValueError: the source holds no mask (0 masks, e.g. an empty iterable or an
                empty split's fingerprint).
            FingerprintError: a file or dict that is not a fingerprint of a format this
                version reads (a ValueError; the message names the file and the fix).
            FileNotFoundError: no such file, or a folder without ``fingerprint.json``.

        Warns:
            DegenerateStatisticsWarning: in dataset mode, when S and K are undefined (fewer
                than two masks, or all areas equal, e.g. all masks empty): the rule then falls
                back to ``bce_dice`` for the whole training.
        """
        if self.statistics == "batch":
            raise OptionError(
                "fit() sets fixed or starting statistics: use statistics='dataset' or 'running'"
            )
        moments = self._moments_from(source)
        if self.mode == "binary" and len(moments) != 1:
            raise OptionError(f"mode='binary' takes one area summary, got {len(moments)}")
        for channel, m in enumerate(moments):
            _check_fitted(m, channel if len(moments) > 1 else None, statistics=self.statistics)
        self._set_moments(moments)
        return self

    def _moments_from(self, source: FitSource) -> list[AreaMoments]:
        if isinstance(source, AreaMoments):
            return [source.copy()]
        if isinstance(source, Fingerprint):
            return [source.moments.copy()]
        if isinstance(source, (str, Path)):  # a fingerprint file, or a cache folder's
            return [load_fingerprint(source).moments.copy()]
        if isinstance(source, dict):  # a fingerprint document; "channels": one per channel
            documents = source["channels"] if "channels" in source else [source]
            return [Fingerprint.from_dict(d, origin="fit() dict").moments for d in documents]
        if isinstance(source, (torch.Tensor, np.ndarray)):
            return self._moments_of_masks(torch.as_tensor(source), None)
        if isinstance(source, Sequence) and source and isinstance(source[0], AreaMoments):
            return [m.copy() for m in source]  # type: ignore[union-attr]
        if isinstance(source, Iterable):
            moments: list[AreaMoments] | None = None
            for batch in source:
                moments = self._moments_of_masks(torch.as_tensor(batch), moments)
            if moments is None:
                raise DataValueError(
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
            raise DataValueError(
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
        condition, S, K and n; a tuple of them, one per channel, in multilabel mode.

        After a pick on the device, reading this synchronises once (the pick itself did not).
        """
        if self._pending is not None:
            self._selections, self._pending = self._pending.resolve(), None
        if self._selections is None:
            return None
        return self._selections[0] if self.mode == "binary" else self._selections

    @property
    def takes_loader_areas(self) -> bool:
        """Whether a call uses ``areas=`` from the loader: batch or running statistics of
        pixel areas (what the cache stores). Contour areas are measured from the target."""
        return self.statistics != "dataset" and self.area == "pixels"

    @property
    def pools_ranks(self) -> bool:
        """Whether batch statistics are pooled over the ranks of an initialised process group
        (``sync=True``): then ``areas`` must hold every rank's part of the global batch."""
        return self._distributed_sync()

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
            f"numerics={self.numerics!r}, sync={self.sync}, reduction={self.reduction!r}, "
            f"pick_on={self.pick_on!r}"
        )

    # -- forward ------------------------------------------------------------------------------

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, areas: HostAreas | None = None
    ) -> torch.Tensor:
        """The loss of the picked branch(es). ``areas``: the batch's foreground areas from the
        loader (see the class docstring), for a pick without a host synchronisation."""
        z, y = prepare_pair(logits, target, mode=self.mode, validate=self.validate)
        self._pending = None
        if self.statistics == "dataset":
            if self._selections is None:
                raise RuntimeError("CALFLoss(statistics='dataset') must be fitted: call .fit()")
            if len(self._selections) != z.shape[1]:
                raise OptionError(
                    f"fitted for {len(self._selections)} channel(s), got logits with {z.shape[1]}"
                )
            selections = self._selections
        elif areas is not None:
            selections = self._select_from_areas(areas, y)
        elif self._picks_on_device(y):
            return self._device_picked_loss(z, y)
        else:
            selections = self._select_from_batch(y)
        with autocast_off(z.device):
            if len(selections) == 1:  # one channel: the whole tensor at once
                return self._reduce(selections[0].branch, z, y)
            # Several channels, each with its own branch. They have equal sizes, so the mean
            # of the per-channel means is the mean over all elements.
            parts = [self._reduce(s.branch, z[:, c], y[:, c]) for c, s in enumerate(selections)]
            return self._combine(parts)

    def _combine(self, parts: list[torch.Tensor]) -> torch.Tensor:
        if self.reduction == "mean":
            return torch.stack(parts).mean()
        return torch.stack(parts, dim=1)

    def _reduce(self, branch: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.reduction == "mean":
            return branch_mean(branch, z, y, numerics=self.numerics)
        return branch_terms(branch, z, y, numerics=self.numerics)

    # -- picking ------------------------------------------------------------------------------

    def _distributed_sync(self) -> bool:
        """Whether batch statistics are pooled over the ranks of a process group."""
        import torch.distributed as dist

        return self.sync and dist.is_available() and dist.is_initialized()

    def _picks_on_device(self, y: torch.Tensor) -> bool:
        if self.pick_on == "host":
            return False
        if self._distributed_sync():
            if self.pick_on == "device":
                raise OptionError(
                    "pick_on='device' cannot pool batch statistics over a process group "
                    "without reading them; pass the global batch's areas from the loader "
                    "(areas=...), or set sync=False or pick_on='auto'"
                )
            return False
        if self.pick_on == "device":
            return True
        return self.statistics == "batch" and self.area == "pixels" and y.device.type != "cpu"

    def _device_picked_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pick and compute with no host read: the rule's row index per channel is a device
        tensor, every candidate branch is evaluated and ``index_select`` keeps the row's one
        (no value leaves the device; the other candidates get a zero gradient)."""
        areas = foreground_areas(y, "pixels", per_channel=True)  # (B, C) on the device
        skew, kurt = device_moments(areas)
        rows = device_rule_rows(skew, kurt, self.thresholds)
        self._selections = None
        self._pending = PendingSelection(rows, skew, kurt, int(areas.shape[0]), self.thresholds)
        branches = row_branches(self.thresholds)
        with autocast_off(z.device):
            parts = []
            for c in range(z.shape[1]):
                zc, yc = (z, y) if z.shape[1] == 1 else (z[:, c], y[:, c])
                values = self._candidates(dict.fromkeys(branches), zc, yc)
                candidates = torch.stack([values[b] for b in branches])
                parts.append(candidates.index_select(0, rows[c : c + 1]).squeeze(0))
            return parts[0] if len(parts) == 1 else self._combine(parts)

    def _candidates(
        self, branches: Iterable[str], z: torch.Tensor, y: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Every candidate branch's loss; the bounded mean log10 is the ln value / ln 10, as
        its own function computes it, so one BCE serves both (the same bits)."""
        share = self.numerics == "bounded" and self.reduction == "mean"
        values: dict[str, torch.Tensor] = {}
        for b in branches:
            if share and b == "log10":
                continue
            values[b] = self._reduce(b, z, y)
        if share:
            values["log10"] = values["ln"] / math.log(10.0)
        return values

    def _select_from_areas(self, areas: HostAreas, y: torch.Tensor) -> tuple[Selection, ...]:
        """The pick from the loader's host areas (no device read, no communication)."""
        import torch.distributed as dist

        if self.area != "pixels":
            raise OptionError(
                f"areas from the loader are pixel counts, but this loss measures area="
                f"{self.area!r}; drop areas=... (the loss then measures the target itself)"
            )
        parts = split_parts(areas)
        own = 0
        if self._distributed_sync():
            world, own = dist.get_world_size(), dist.get_rank()
            if len(parts) != world:
                raise OptionError(
                    f"under a process group with sync=True, areas must hold every rank's part "
                    f"of the global batch ({world} parts, in rank order), got {len(parts)}; "
                    "see calfseg.train.distributed.global_batch_areas"
                )
        elif len(parts) != 1:
            raise OptionError(
                f"areas holds {len(parts)} per-rank parts, but the statistics are not pooled "
                "over ranks (no process group, or sync=False): pass this batch's areas only"
            )
        batch = moments_from_host_areas(parts, y.shape[1], own=own, batch_size=y.shape[0])
        if self.validate:
            measured = foreground_areas(y, self.area, per_channel=True).cpu().numpy()
            given = np.asarray(parts[own], dtype=np.float64).reshape(measured.shape)
            if not np.array_equal(measured, given):
                raise OptionError(
                    "areas do not match the target's foreground pixel counts: pass the "
                    "areas of exactly the batch's slices, in the batch's order"
                )
        return self._select(batch)

    def _select_from_batch(self, y: torch.Tensor) -> tuple[Selection, ...]:
        areas = foreground_areas(y, self.area, per_channel=True).cpu()  # host sync
        batch = [AreaMoments.from_areas(areas[:, c]) for c in range(areas.shape[1])]
        if self.sync:
            batch = all_reduce_moments(batch)
        return self._select(batch)

    def _select(self, batch: list[AreaMoments]) -> tuple[Selection, ...]:
        """Fold the batch into the running moments (running mode, training) and apply the
        rule to the statistics in force."""
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
