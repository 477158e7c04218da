"""Accumulate per-image results over an evaluation loop, merge them, gather them over ranks.

The state is per image, never a running mean, so any reduction can be computed at the end
and accumulators merge exactly: confusion counts (32 bytes per image, kept on the
prediction's device until :meth:`MetricAccumulator.compute`), surface distances (numpy,
CPU) and case ids. ``compute()`` equals :func:`~calfseg.metrics.results.evaluate_counts`
of everything seen, in order.

Distributed evaluation: each rank updates its own accumulator on its shard, then
``acc.all_gather().compute()`` on every rank gives the result of the whole set. The state
travels with ``torch.distributed.all_gather_object`` (pickled numpy arrays; with the nccl
backend, torch requires ``torch.cuda.set_device`` to have been called) and is joined in rank
order. Beware of ``DistributedSampler``, which pads the last shard with repeated images
(they would be counted twice): evaluate with a sampler that does not pad, or drop the
duplicates. Rank-order concatenation is not the loader order of one process, which
matters only for ``pooled_by_batch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from calfseg.errors import OptionError
from calfseg.metrics.confusion import ConfusionCounts, binarise, confusion_counts
from calfseg.metrics.policy import EmptyPolicy, check_policy
from calfseg.metrics.results import Results, evaluate_counts
from calfseg.metrics.surface import SpacingLike, SurfaceDistances, surface_distances


class MetricAccumulator:
    """Collects per-image results batch by batch; :meth:`compute` returns the results dict.

    Args:
        policy: the empty-mask policy, ``"one"`` (the paper's) or ``"exclude"``.
        threshold: foreground is ``prediction > threshold`` (0 for logits).
        surface: also compute HD95 and ASSD in mm (about 2 ms per image with both masks
            non-empty, on the CPU). Fixed for the accumulator so that every image has them.
        pooled_batch_size: also report the paper's batch-pooled mean with this batch size.

    Example::

        acc = MetricAccumulator()
        for images, masks, spacing, cases in loader:
            acc.update(model(images), masks, spacing=spacing, case_ids=cases)
        results = acc.compute()  # {"dice/per_image": ..., "hd95_mm/per_image": ..., ...}
    """

    def __init__(
        self,
        *,
        policy: EmptyPolicy = "one",
        threshold: float = 0.0,
        surface: bool = True,
        pooled_batch_size: int | None = None,
    ) -> None:
        self.policy = check_policy(policy)
        self.threshold = float(threshold)
        self.surface = bool(surface)
        self.pooled_batch_size = pooled_batch_size
        self.reset()

    def reset(self) -> None:
        """Forget every image seen."""
        self._counts: list[ConfusionCounts] = []
        self._surfaces: list[SurfaceDistances] = []
        self._case_ids: list[np.ndarray | None] = []

    def __len__(self) -> int:
        return sum(len(c) for c in self._counts)

    @torch.no_grad()
    def update(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        *,
        spacing: SpacingLike | None = None,
        case_ids: Sequence[Any] | np.ndarray | None = None,
    ) -> MetricAccumulator:
        """Add a batch.

        Args:
            prediction: ``(B, 1, H, W)`` or ``(B, H, W)`` logits (or probabilities with
                ``threshold=0.5``, or bool masks).
            target: binary masks of the same shape.
            spacing: mm per pixel ``(s_rows, s_cols)``, one number, one pair or ``(B, 2)``
                (``SliceDataset.spacing`` of the batch's rows). Required when the
                accumulator computes surface distances; pass ``1.0`` for pixel units.
            case_ids: the case of each image, to report ``dice/per_case``; give them in
                every update or in none.
        """
        pred, true = binarise(prediction, target, self.threshold)
        self._counts.append(confusion_counts(pred, true))
        if self.surface:
            if spacing is None:
                raise OptionError(
                    "spacing is needed for HD95 and ASSD in mm: pass spacing= (e.g. "
                    "dataset.spacing[rows], or 1.0 for pixel units), or make the "
                    "accumulator with surface=False"
                )
            self._surfaces.append(surface_distances(pred, true, spacing))
        if case_ids is None:
            self._case_ids.append(None)
        else:
            ids = np.asarray(case_ids).reshape(-1)
            if ids.shape[0] != pred.shape[0]:
                raise OptionError(f"case_ids has {ids.shape[0]} entries for {pred.shape[0]} images")
            self._case_ids.append(ids)
        return self

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        """Append the images of ``other`` (same settings) after this one's; returns self."""
        if self._settings() != other._settings():
            raise OptionError(
                f"cannot merge accumulators with different settings: {self._settings()} "
                f"and {other._settings()}"
            )
        self._counts.extend(other._counts)
        self._surfaces.extend(other._surfaces)
        self._case_ids.extend(other._case_ids)
        return self

    def compute(self) -> Results:
        """The results dict of every image seen (see :mod:`calfseg.metrics.results`)."""
        counts = ConfusionCounts.cat([c.to("cpu") for c in self._counts])
        known = [ids for ids in self._case_ids if ids is not None]
        if known and len(known) != len(self._case_ids):
            raise OptionError("case_ids were given in some updates but not in others")
        case_ids = np.concatenate(known) if known else None
        surface = SurfaceDistances.cat(self._surfaces) if self.surface else None
        return evaluate_counts(
            counts,
            case_ids=case_ids,
            surface=surface,
            policy=self.policy,
            pooled_batch_size=self.pooled_batch_size,
        )

    # -- state, for checkpoints and torch.distributed ---------------------------------------

    def state(self) -> dict[str, Any]:
        """The settings and per-batch results as picklable CPU objects."""
        return {
            "settings": self._settings(),
            "counts": [c.numpy() for c in self._counts],
            "surfaces": [
                {k: getattr(s, k) for k in ("hd95", "assd", "both_empty", "one_empty")}
                for s in self._surfaces
            ],
            "case_ids": list(self._case_ids),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MetricAccumulator:
        acc = cls(**state["settings"])
        acc._counts = [ConfusionCounts.from_arrays(**c) for c in state["counts"]]
        acc._surfaces = [SurfaceDistances(**s) for s in state["surfaces"]]
        acc._case_ids = list(state["case_ids"])
        return acc

    def all_gather(self, group: Any = None) -> MetricAccumulator:
        """A new accumulator with the images of every rank, in rank order (the same on all
        ranks). Without an initialised process group: a copy of this one."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return MetricAccumulator.from_state(self.state())
        states: list[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(states, self.state(), group=group)
        gathered = MetricAccumulator.from_state(states[0])
        for state in states[1:]:
            gathered.merge(MetricAccumulator.from_state(state))
        return gathered

    def _settings(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "threshold": self.threshold,
            "surface": self.surface,
            "pooled_batch_size": self.pooled_batch_size,
        }
