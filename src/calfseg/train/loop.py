"""One training run: epochs of Adam steps, validation, logs and checkpoints (:func:`fit`).

:func:`fit` runs in four stages over a typed state (:mod:`calfseg.train.state`): *build*
(:func:`calfseg.train.state.start_training`: datasets, model, losses, optimizer, plan),
*restore* (from ``last.pt``, or clear the folder for a fresh start), *epochs* (train, validate,
log, checkpoint) and *finish* (the :class:`FitResult`).

Each step's learning rate is set from the plan (warmup, then constant or cosine per step:
:mod:`calfseg.train.schedule`). Each validation measures the mean per-case Dice
(``val_case_dice``, :mod:`calfseg.train.case_dice`), which picks ``best.pt`` and drives early
stopping (:mod:`calfseg.train.stopping`): the run ends after ``patience`` validations
without an improvement by more than ``min_delta``, but not before ``min_epochs`` epochs.

Order at the end of each epoch: the log row, then ``best.pt`` (if validation improved), then
``last.pt`` (and ``epoch_N.pt``). A run killed anywhere resumes from ``last.pt``: the logs
are cut back to its epoch and the next epoch runs exactly as it would have (same batch
order, learning rates, RNG states, optimizer and early-stopping state). A run that stopped
early stays stopped when resumed. An epoch whose mean training loss is not finite or
explodes ends the run with :class:`~calfseg.train.stopping.TrainingDivergedError` after its
log row (no checkpoint of it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calfseg.atomic import atomic_write_text
from calfseg.data import SliceDataset
from calfseg.data.dataset import read_batches
from calfseg.rule import BRANCHES
from calfseg.run_files import BEST_CHECKPOINT, CONFIG, LAST_CHECKPOINT, RESULTS
from calfseg.train import distributed as D
from calfseg.train.build import rank_batches, uses_branches
from calfseg.train.case_dice import CaseCounts, ValidationScores
from calfseg.train.checkpoint import Checkpoint
from calfseg.train.config import TrainConfig
from calfseg.train.logs import EpochLog, TensorBoardLog
from calfseg.train.schedule import set_learning_rate
from calfseg.train.state import RunInputs, TrainingState, start_training
from calfseg.train.stopping import TrainingDivergedError, divergence
from calfseg.writer_lock import writing


@dataclass
class FitResult:
    """What :func:`fit` reports.

    Attributes:
        epochs: the planned epochs (``config.epochs``).
        best_epoch: the epoch kept as ``best.pt``.
        best_score: its validation case Dice (None without validation).
        seconds: time spent in this call.
        epochs_run: the epochs trained, over every call (fewer than planned when stopped).
        stop_reason: ``"patience"`` (stopped early) or ``"budget"`` (the planned epochs ran).
        converged: the validation case Dice plateaued (:mod:`calfseg.train.stopping`).
    """

    epochs: int
    best_epoch: int
    best_score: float | None
    seconds: float
    epochs_run: int = 0
    stop_reason: str = "budget"
    converged: bool = False


@dataclass
class EpochSummary:
    """One training epoch, as logged: the mean loss over steps and ranks, the mean BCE of
    the same logits for CALF losses (else None), the steps and each branch's share."""

    loss: float
    bce: float | None
    steps: int
    shares: dict[str, float]


def fit(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
    ctx: D.DistContext | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``config`` into ``run_dir`` (``config.json``, logs, checkpoints).

    Args:
        resume: continue from ``run_dir/last.pt`` when it exists (else start afresh).
        progress: tqdm bars on stderr (rank 0 only).
        stop_after: return after this epoch as if killed (tests of resumption).
        ctx: the distributed context (default: :func:`distributed.setup`).
        on_epoch: called on rank 0 with each epoch's log row (the CLI prints it).

    Raises:
        FolderBusyError: another process is writing into ``run_dir`` (rank 0 holds its
            writer lock while it trains, :mod:`calfseg.writer_lock`).
    """
    ctx = ctx or D.setup(config.device)
    with writing(run_dir, "a training run") if ctx.is_main else contextlib.nullcontext():
        return _fit(config, Path(run_dir), resume, progress, stop_after, ctx, on_epoch)


def _fit(
    config: TrainConfig,
    run: Path,
    resume: bool,
    progress: bool,
    stop_after: int | None,
    ctx: D.DistContext,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> FitResult:
    start_time = time.perf_counter()
    inputs, state = start_training(config, ctx)  # build
    _restore(state, run, config, ctx, resume=resume)  # a fresh start clears the folder first
    log = EpochLog(run, branches=uses_branches(config)) if ctx.is_main else None
    if log is not None:
        log.truncate(state.epoch)
        atomic_write_text(run / CONFIG, config.to_json())
    net = _wrap(state.model, config, ctx)
    outputs = None
    if log is not None:
        outputs = _Outputs(run, log, TensorBoardLog(run, config.tensorboard), on_epoch)
    while state.epoch < config.epochs and not state.stopping.ends_run(
        state.epoch, config.min_epochs
    ):
        # (a run stopped early and resumed has nothing more to train)
        row, improved = _run_epoch(state, net, inputs, config, ctx, progress)
        diverged = divergence(state.epoch, row["train_loss"])
        if diverged is not None:  # every rank sees the same mean loss: all stop here
            if outputs is not None:
                outputs.record_divergence(row)
            raise TrainingDivergedError(f"{run}: {diverged}")
        if outputs is not None:
            outputs.record(row, improved, state, inputs, config)
        D.barrier(ctx)
        if stop_after is not None and state.epoch >= stop_after:
            break
    if outputs is not None:
        outputs.close()
    return _finish(state, config, time.perf_counter() - start_time)


# -- restore and finish ------------------------------------------------------------------------


def _restore(
    state: TrainingState, run: Path, config: TrainConfig, ctx: D.DistContext, *, resume: bool
) -> None:
    """Continue from ``run/last.pt`` when ``resume`` and it exists, else clear ``run`` of an
    earlier run's files (rank 0). The checkpoint is read with torch's safe loader, on the
    CPU (its RNG states must stay there): a ``last.pt`` put in the folder by someone else
    runs nothing."""
    last = run / LAST_CHECKPOINT
    if resume and last.is_file():
        checkpoint = Checkpoint.load(last)
        checkpoint.check_resumable(config, last)
        state.restore(checkpoint, config, last)
    elif ctx.is_main:
        _clear_run(run)


def _clear_run(run: Path) -> None:
    """Remove the checkpoints and results of an earlier run in this folder (fresh start)."""
    if not run.is_dir():
        return
    for pattern in RESULTS:
        for path in run.glob(pattern):
            path.unlink()


def _finish(state: TrainingState, config: TrainConfig, seconds: float) -> FitResult:
    return FitResult(
        epochs=config.epochs,
        best_epoch=state.best_epoch,
        best_score=state.stopping.best,
        seconds=seconds,
        epochs_run=state.epoch,
        stop_reason=state.stopping.ended(state.epoch, config.epochs),
        converged=state.stopping.converged,
    )


@dataclass
class _Outputs:
    """Rank 0's writers: the epoch log, TensorBoard, the checkpoints and the callback."""

    run: Path
    log: EpochLog
    tensorboard: TensorBoardLog
    on_epoch: Callable[[dict[str, Any]], None] | None

    def record(
        self,
        row: dict[str, Any],
        improved: bool,
        state: TrainingState,
        inputs: RunInputs,
        config: TrainConfig,
    ) -> None:
        """The log row, then ``best.pt`` (if ``improved``), ``last.pt`` and ``epoch_N.pt``
        (the RNG states are taken after the log and the callback, as the next epoch sees
        them)."""
        self.log.append(row)
        self.tensorboard.write(row)
        if self.on_epoch is not None:
            self.on_epoch(self.log.rows[-1])
        checkpoint = state.checkpoint(config, inputs)
        if improved:
            checkpoint.save(self.run / BEST_CHECKPOINT)
        checkpoint.save(self.run / LAST_CHECKPOINT)
        if config.checkpoint_every and state.epoch % config.checkpoint_every == 0:
            checkpoint.save(self.run / f"epoch_{state.epoch}.pt")

    def record_divergence(self, row: dict[str, Any]) -> None:
        """The log row of the epoch that diverged, and no checkpoint: ``last.pt`` stays at
        the last sound epoch."""
        self.log.append(row)
        if self.on_epoch is not None:
            self.on_epoch(self.log.rows[-1])
        self.close()

    def close(self) -> None:
        self.tensorboard.close()


# -- one epoch ---------------------------------------------------------------------------------


def _run_epoch(
    state: TrainingState,
    net: nn.Module,
    inputs: RunInputs,
    config: TrainConfig,
    ctx: D.DistContext,
    progress: bool,
) -> tuple[dict[str, Any], bool]:
    """Train and (when due) validate the epoch after ``state.epoch``, advance the state by
    it; returns its log row and whether it is the new ``best.pt``."""
    tic = time.perf_counter()
    epoch, first_step = state.epoch, state.step
    summary = _train_epoch(state, net, inputs.train_set, config, ctx, inputs.amp, progress)
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "train_loss": summary.loss,
        "train_bce": summary.bce,
        "lr": state.plan.rate(first_step),
    }
    row.update(steps=summary.steps, **{f"branch/{b}": s for b, s in summary.shares.items()})
    improved = inputs.val_set is None
    validate = (epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs
    if inputs.val_set is not None and validate:
        scores = validate_epoch(
            state.model, inputs.val_criterion, inputs.val_set, config, ctx, inputs.amp
        )
        row.update(val_loss=scores.loss, val_case_dice=scores.case_dice, val_dice=scores.image_dice)
        improved = state.stopping.observe(scores.case_dice)
    improved = improved or state.best_epoch == 0  # best.pt exists once an epoch is done
    if improved:
        state.best_epoch = epoch + 1
    row["seconds"] = time.perf_counter() - tic
    state.epoch = epoch + 1
    return row, improved


def _train_epoch(
    state: TrainingState,
    net: nn.Module,
    dataset: SliceDataset,
    config: TrainConfig,
    ctx: D.DistContext,
    amp: torch.dtype | None,
    progress: bool,
) -> EpochSummary:
    """The epoch after ``state.epoch``: one optimizer step per batch, each at the plan's
    rate of its step.

    Why the BCE: per-batch CALF changes its formula from step to step (log10 is ln / 2.303),
    so its ``train_loss`` jumps when the pick flips and is not comparable across steps or
    runs; the BCE of the same logits, summed on the device (no extra host sync), is."""
    epoch, first_step, criterion = state.epoch, state.step, state.criterion
    batches = rank_batches(len(dataset), config, ctx, epoch=epoch)
    _set_train_mode(net, config.freeze_bn)
    bar = _bar(len(batches), f"epoch {epoch + 1}/{config.epochs}", progress and ctx.is_main)
    sums = _EpochSums(uses_branches(config), ctx.device)
    areas_of = D.loss_areas(criterion, dataset.areas, config.batch_size, seed=config.seed,
                            epoch=epoch, rank=ctx.rank, world_size=ctx.world_size)  # fmt: skip
    for step, (positions, images, masks) in enumerate(_read(dataset, batches, epoch, config, ctx)):
        set_learning_rate(state.optimizer, state.plan.rate(first_step + step))
        state.optimizer.zero_grad(set_to_none=True)
        with _autocast(ctx.device, amp):
            logits = net(images)
        logits = logits.float()  # the losses run in float32
        loss = criterion(logits, masks, **areas_of(step, positions))  # host areas: no sync
        sums.add_bce(logits, masks)
        _optimizer_step(state, net, loss, config.grad_clip)
        value = sums.add_loss(loss, criterion)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
    if bar is not None:
        bar.close()
    return sums.summary(ctx, len(batches))


def _optimizer_step(
    state: TrainingState, net: nn.Module, loss: torch.Tensor, grad_clip: float | None
) -> None:
    """Backward through the (scaled) loss, clip the gradients' norm, step the optimizer."""
    state.scaler.scale(loss).backward()
    if grad_clip is not None:
        state.scaler.unscale_(state.optimizer)
        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()


class _EpochSums:
    """Running sums of one epoch: the loss on the host, the BCE of CALF runs on the device,
    the branch picks."""

    def __init__(self, comparable: bool, device: torch.device) -> None:
        self.comparable = comparable
        self.loss = 0.0
        self.bce = torch.zeros((), dtype=torch.float64, device=device)
        self.branches: dict[str, float] = dict.fromkeys(BRANCHES, 0.0)

    def add_bce(self, logits: torch.Tensor, masks: torch.Tensor) -> None:
        if self.comparable:
            with torch.no_grad():
                bce = F.binary_cross_entropy_with_logits(logits, masks.float())
                self.bce += bce.double()

    def add_loss(self, loss: torch.Tensor, criterion: nn.Module) -> float:
        """Add the step's loss and branch pick(s); returns the loss as a float."""
        value = float(loss.detach())  # one host sync per step, shared by the sum and the bar
        self.loss += value
        _count_branches(criterion, self.branches)
        return value

    def summary(self, ctx: D.DistContext, steps: int) -> EpochSummary:
        shares: dict[str, float] = {}
        bce = None
        if self.comparable:
            shares = {b: self.branches[b] / steps for b in BRANCHES}
            bce = D.all_mean(ctx, float(self.bce) / steps)
        return EpochSummary(D.all_mean(ctx, self.loss / steps), bce, steps, shares)


def _count_branches(loss_fn: nn.Module, counts: dict[str, float]) -> None:
    """Add this step's branch pick(s) (a tuple for region CALF: each tile a share)."""
    selection = getattr(loss_fn, "last_selection", None)
    if selection is None:
        return
    picks = selection if isinstance(selection, tuple) else (selection,)
    for pick in picks:
        counts[pick.branch] = counts.get(pick.branch, 0.0) + 1 / len(picks)


@torch.no_grad()
def validate_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    dataset: SliceDataset,
    config: TrainConfig,
    ctx: D.DistContext,
    amp: torch.dtype | None,
) -> ValidationScores:
    """The validation loss (mean over images), the mean per-case Dice ``val_case_dice``
    and the per-image Dice ``val_dice`` (:mod:`calfseg.train.case_dice`) over every rank's
    shard: each rank sums its per-case counts on the device, one all-reduce joins them, and
    one copy brings the totals to the host."""
    model.eval()
    shard = D.eval_shard(len(dataset), ctx.rank, ctx.world_size)
    counts = CaseCounts(dataset.case_ids, ctx.device)
    for positions, images, masks in _read(
        dataset, list(D.chunks(shard, config.batch_size)), 0, config, ctx
    ):
        with _autocast(ctx.device, amp):
            logits = model(images)
        logits = logits.float()
        counts.update(positions, logits, masks, loss_fn(logits, masks))
    return counts.result(distributed=ctx.enabled)


# -- helpers -------------------------------------------------------------------------------------


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _wrap(model: nn.Module, config: TrainConfig, ctx: D.DistContext) -> nn.Module:
    if not ctx.enabled:
        return model
    if config.sync_bn and ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _set_train_mode(net: nn.Module, freeze_bn: bool) -> None:
    net.train()
    if freeze_bn:
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from calfseg.progress import progress_bar  # None unless stderr is a terminal

    return progress_bar(total, desc, enabled, unit="batch")


def _read(
    dataset: SliceDataset,
    batches: list[np.ndarray],
    epoch: int,
    config: TrainConfig,
    ctx: D.DistContext,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    return read_batches(dataset, batches, epoch=epoch, workers=config.workers, device=ctx.device)
