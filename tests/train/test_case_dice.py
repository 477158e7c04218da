"""The validation metric ``val_case_dice`` (mean per-case Dice) against an independent numpy
computation: on the synthetic cache, on hand-made cases (empty truth with and without a
prediction), and with the validation split sharded over two processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from calfseg.data import SliceDataset
from calfseg.train import TrainConfig
from calfseg.train.case_dice import case_dice
from calfseg.train.distributed import DistContext
from calfseg.train.loop import validate_epoch

from ..gloo import needs_gloo, on_gloo_ranks

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def numpy_scores(case_ids, logits: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """(mean per-case Dice, mean per-image Dice), written out from the contract: counts of
    logit > 0 against the mask summed over each case's slices; 2TP / (2TP + FP + FN), 1 when
    truth and prediction are both empty."""
    pred, true = logits.reshape(len(logits), -1) > 0, masks.reshape(len(masks), -1) > 0.5
    per_case = []
    for case in sorted(set(case_ids)):
        rows = np.array([c == case for c in case_ids])
        p, t = pred[rows], true[rows]
        tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
        per_case.append(1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    per_image = []
    for p, t in zip(pred, true, strict=True):
        tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
        per_image.append(1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(per_case)), float(np.mean(per_image))


def threshold_model(level: float) -> nn.Module:
    """logit = image - level on the first channel (foreground: brighter than ``level``)."""
    conv = nn.Conv2d(1, 1, kernel_size=1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-level)
    return conv


class BceLoss(nn.Module):
    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(logits, masks)


def test_case_dice_of_summed_counts():
    got = case_dice(np.array([3, 0, 0, 0]), np.array([1, 0, 4, 0]), np.array([2, 0, 0, 5]))
    assert got.tolist() == [6 / 9, 1.0, 0.0, 0.0]  # hit, both empty, false alarm, missed


def test_val_case_dice_equals_numpy_on_the_tiny_cache(cache: Path):
    dataset = SliceDataset(cache, ["val", "test"])
    config = TrainConfig.tiny(cache, batch_size=5, device="cpu")  # batches straddle cases
    model = threshold_model(0.35)
    scores = validate_epoch(model, BceLoss(), dataset, config, CPU, None)

    images, masks = dataset.read_batch(np.arange(len(dataset)))
    logits = (images - 0.35).numpy()
    case_ids = dataset.case_ids.tolist()
    want_case, want_image = numpy_scores(case_ids, logits, masks.numpy())
    assert 0 < want_case < 1 and want_case != pytest.approx(want_image)  # not a trivial case
    assert scores.case_dice == pytest.approx(want_case, abs=1e-12)
    assert scores.image_dice == pytest.approx(want_image, abs=1e-12)
    assert (scores.cases, scores.images) == (len(set(case_ids)), len(dataset))
    bce = nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), masks, reduction="none"
    )
    assert scores.loss == pytest.approx(float(bce.mean(dim=(1, 2, 3)).mean()), rel=1e-6)


class CraftedSlices:
    """A stand-in for SliceDataset: 2x2 slices whose 'image' is the logit itself."""

    def __init__(self, case_ids: list[str], logits: np.ndarray, masks: np.ndarray) -> None:
        self.case_ids = np.array(case_ids)
        self.logits, self.masks = logits.astype(np.float32), masks.astype(np.float32)

    def __len__(self) -> int:
        return len(self.case_ids)

    def read_raw_batch(self, positions: np.ndarray, epoch: int | None = None):
        """What the batch reader calls: float images pass through as they are, masks
        ``(B, H, W)``."""
        return (
            torch.from_numpy(self.logits[positions]),
            torch.from_numpy(self.masks[positions][:, 0]),
        )


def test_empty_cases_count_one_when_nothing_is_predicted_and_zero_otherwise(cache: Path):
    on, off = 1.0, -1.0
    logits = np.full((6, 1, 2, 2), off)
    masks = np.zeros((6, 1, 2, 2))
    masks[0, 0, 0, :] = 1  # case a: 2 lesion pixels over two slices, one found
    logits[0, 0, 0, 0] = on
    logits[1, 0, 1, 1] = on  # ... and one false positive on its empty slice
    logits[3, 0, 0, 0] = on  # case c: empty truth, one pixel predicted -> 0
    masks[4, 0, 1, 0] = 1  # case d: a lesion missed -> 0
    ids = ["a", "a", "b", "c", "d", "b"]  # case b: empty truth, nothing predicted -> 1
    dataset = CraftedSlices(ids, logits, masks)
    config = TrainConfig.tiny(cache, batch_size=4, device="cpu")
    scores = validate_epoch(nn.Identity(), BceLoss(), dataset, config, CPU, None)  # type: ignore[arg-type]
    # a: TP 1, FP 1, FN 1 -> 2/4; b: 1; c: 0; d: 0
    assert scores.case_dice == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    want_case, want_image = numpy_scores(ids, logits, masks)
    assert scores.case_dice == pytest.approx(want_case)
    assert scores.image_dice == pytest.approx(want_image)


def test_nan_logits_are_an_error_not_background(cache: Path):
    logits = np.full((2, 1, 2, 2), -1.0)
    logits[1, 0, 0, 0] = np.nan
    dataset = CraftedSlices(["a", "a"], logits, np.zeros((2, 1, 2, 2)))
    config = TrainConfig.tiny(cache, batch_size=2, device="cpu")
    with pytest.raises(ValueError, match=r"1 NaN logits.*grad-clip"):
        validate_epoch(nn.Identity(), BceLoss(), dataset, config, CPU, None)  # type: ignore[arg-type]


def _validate_on_rank(rank: int, cache: str) -> dict[str, object]:
    """One of two gloo ranks: validate its shard; the scores after joining the shards."""
    ctx = DistContext(rank=rank, world_size=2, local_rank=rank, device=torch.device("cpu"))
    dataset = SliceDataset(cache, ["val", "test"])
    config = TrainConfig.tiny(cache, batch_size=5, device="cpu")
    scores = validate_epoch(threshold_model(0.35), BceLoss(), dataset, config, ctx, None)
    return dict(scores.__dict__)


@needs_gloo
@pytest.mark.slow
def test_two_ranks_gather_their_shards_before_the_mean(cache: Path, tmp_path: Path):
    ranks = on_gloo_ranks(_validate_on_rank, tmp_path, str(cache))
    dataset = SliceDataset(cache, ["val", "test"])
    config = TrainConfig.tiny(cache, batch_size=5, device="cpu")
    one = validate_epoch(threshold_model(0.35), BceLoss(), dataset, config, CPU, None)
    for got in ranks:
        assert got["case_dice"] == pytest.approx(one.case_dice, abs=1e-12)
        assert got["image_dice"] == pytest.approx(one.image_dice, abs=1e-12)
        assert (got["cases"], got["images"]) == (one.cases, one.images)
        assert got["loss"] == pytest.approx(one.loss, rel=1e-6)
