"""Two gloo processes: with sync every rank picks the same branch; without, each its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calfseg.losses import CALFLoss, RegionCALFLoss
from calfseg.stats import AreaMoments
from calfseg.train import distributed as D

from ..gloo import needs_gloo, on_gloo_ranks
from .area_cases import AREAS_FOR, masks_with_areas

# Rank 0 sees a right-skewed batch, rank 1 a left-skewed one.
RANK_AREAS = [AREAS_FOR["log10"], AREAS_FOR["fisher"]]


def _worker(rank: int) -> dict[str, object]:
    result: dict[str, object] = {}
    masks = masks_with_areas(RANK_AREAS[rank])
    logits = torch.randn(masks.shape, generator=torch.Generator().manual_seed(rank))
    for name, loss_fn in {
        "sync": CALFLoss(),
        "nosync": CALFLoss(sync=False),
        "running": CALFLoss("running"),
    }.items():
        loss_fn(logits, masks)
        sel = loss_fn.last_selection
        result[name] = [sel.branch, sel.skewness, sel.count]
    # Areas from the loader: every rank's part of the global batch, no communication.
    loader = CALFLoss()
    loss = loader(logits, masks, areas=[np.array(a, dtype=float) for a in RANK_AREAS])
    sel = loader.last_selection
    result["loader"] = [sel.branch, sel.skewness, sel.count]
    result["loader_equal"] = bool(torch.equal(loss, CALFLoss()(logits, masks)))
    # The training loop's helper hands a pooling loss every rank's part of the batch.
    slice_areas = np.arange(40.0) * 3
    kwargs = D.loss_areas(CALFLoss(), slice_areas, 4, seed=0, epoch=0, rank=rank, world_size=2)
    own = D.epoch_batches(40, 4, seed=0, epoch=0, rank=rank, world_size=2)[0]
    result["loop_parts"] = [part.tolist() for part in kwargs(0, own)["areas"]]
    result["loop_own"] = slice_areas[own].tolist()
    try:
        kwargs(1, own)  # not this rank's batch of step 1: the other parts are unknown
        result["loop_error"] = ""
    except RuntimeError as error:
        result["loop_error"] = str(error)
    try:
        CALFLoss(pick_on="device")(logits, masks)
        result["device_error"] = ""
    except ValueError as error:
        result["device_error"] = str(error)
    region = RegionCALFLoss(grid=2)
    region(logits, masks)
    result["region"] = [[s.branch, s.count] for s in region.last_selection]
    return result


@needs_gloo
@pytest.mark.slow
def test_two_gloo_ranks_agree_with_sync_and_differ_without(tmp_path):
    r0, r1 = on_gloo_ranks(_worker, tmp_path)
    pooled = AreaMoments.from_areas(RANK_AREAS[0] + RANK_AREAS[1])
    for key in ("sync", "running"):
        assert r0[key] == r1[key]
        assert r0[key][2] == 20
        assert r0[key][1] == pytest.approx(pooled.skewness())
    assert r0["nosync"][0] == "log10" and r1["nosync"][0] == "fisher"
    # Loader areas pool exactly what the all-gather pools: bitwise the same statistics.
    assert r0["loader"] == r0["sync"] and r1["loader"] == r1["sync"]
    assert r0["loader_equal"] and r1["loader_equal"]
    assert "cannot pool batch statistics" in r0["device_error"]
    assert r0["loop_parts"] == r1["loop_parts"] and len(r0["loop_parts"]) == 2
    assert r0["loop_parts"][0] == r0["loop_own"] and r0["loop_parts"][1] == r1["loop_own"]
    assert "is not part 0 of epoch_global_batches" in r0["loop_error"]
    assert r0["region"] == r1["region"]
    assert all(count == 20 for _, count in r0["region"])
