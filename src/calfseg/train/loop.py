"""One training run: epochs of Adam steps, validation, logs and checkpoints (:func:`fit`).

Each step's learning rate is set from the plan (warmup, then constant or cosine per step:
:mod:`calfseg.train.schedule`). Each validation measures the mean per-case Dice
(``val_case_dice``, :mod:`calfseg.train.case_dice`), which picks ``best.pt`` and drives early
stopping (:mod:`calfseg.train.stopping`): the run ends after ``patience`` validations
without an improvement by more than ``min_delta``.

Order at the end of each epoch: the log row, then ``best.pt`` (if validation improved), then
``last.pt`` (and ``epoch_N.pt``). A run killed anywhere resumes from ``last.pt``: the logs
are cut back to its epoch and the next epoch runs exactly as it would have (same batch
order, learning rates, RNG states, optimizer and early-stopping state). A run that stopped
early stays stopped when resumed.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calfseg.data import SliceDataset
from calfseg.rule import BRANCHES
from calfseg.train import distributed as D
from calfseg.train.atomic import atomic_write_text
from calfseg.train.batches import read_batches
from calfseg.train.build import cache_info, loss_for, model_for, open_split, uses_branches
from calfseg.train.cache_record import cache_record
from calfseg.train.case_dice import CaseCounts, ValidationScores
from calfseg.train.checkpoint import (
    CheckpointError,
    check_architecture,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from calfseg.train.config import RESUMABLE_CHANGES, TrainConfig
from calfseg.train.logs import EpochLog, TensorBoardLog
from calfseg.train.schedule import learning_rate, set_learning_rate
from calfseg.train.stopping import EarlyStopping


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


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may use it)
    torch.manual_seed(seed)


def set_determinism(enabled: bool) -> None:
    """Deterministic kernels where torch has them (warn-only elsewhere), no cuDNN autotune."""
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


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
    """
    start_time = time.perf_counter()
    ctx = ctx or D.setup(config.device)
    run = Path(run_dir)
    set_determinism(config.deterministic)
    info = cache_info(config.cache)
    train_set = open_split(config, "train", train=True, purpose="training")
    val_set = None
    if config.val_split is not None:
        val_set = open_split(
            config,
            config.val_split,
            purpose="validation; set val_split=None and patience=None / --no-val "
            "to train without one and keep the last epoch",
        )
    amp = _amp_mode(config, ctx.device)
    steps_per_epoch = len(_epoch_batches(len(train_set), config, ctx, epoch=0))
    total_steps = config.epochs * steps_per_epoch  # the plan of the cosine schedule

    seed_everything(config.seed)
    model = model_for(config, info).to(ctx.device)
    loss_fn = loss_for(config).to(ctx.device)
    val_loss_fn = loss_for(config, sync=False).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)

    log = EpochLog(run, branches=uses_branches(config)) if ctx.is_main else None
    trained_on = cache_record(config.cache)  # kept in every checkpoint (calf evaluate checks it)
    start_epoch, best_epoch = 0, 0
    stopping = EarlyStopping(config.patience, config.min_delta)
    last = run / "last.pt"
    if resume and last.is_file():
        # weights_only: a last.pt put in the folder by someone else runs nothing (issue 13);
        # on the CPU: RNG states must stay there
        state = load_checkpoint(last)
        _check_resumable(state, config, last)
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        set_rng_states(state["rng"])
        start_epoch, best_epoch = int(state["epoch"]), int(state["best_epoch"])
        score = state["best_score"]
        stopping = EarlyStopping.from_state(
            state.get("stopping"), patience=config.patience, min_delta=config.min_delta,
            best=None if score is None else float(score),
        )  # fmt: skip
    elif ctx.is_main:
        _clear_run(run)
    if log is not None:
        log.truncate(start_epoch)
        atomic_write_text(run / "config.json", config.to_json())

    def lr_at(step: int) -> float:
        return learning_rate(
            step, base_lr=config.lr, schedule=config.schedule,
            warmup_steps=config.warmup_steps, total_steps=total_steps,
        )  # fmt: skip

    net = _wrap(model, config, ctx)
    tb = TensorBoardLog(run, config.tensorboard) if ctx.is_main else None
    epochs_run = start_epoch
    for epoch in range(start_epoch, config.epochs):
        if stopping.should_stop:  # a run stopped early and resumed: nothing more to train
            break
        tic = time.perf_counter()
        first_step = epoch * steps_per_epoch
        train_loss, train_bce, steps, shares = _train_epoch(
            net, loss_fn, optimizer, scaler, train_set, config, ctx, epoch, amp, progress,
            lr_at=functools.partial(_offset, lr_at, first_step),
        )  # fmt: skip
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_bce": train_bce,
            "lr": lr_at(first_step),
        }
        row.update(steps=steps, **{f"branch/{b}": s for b, s in shares.items()})
        validate = (epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs
        improved = val_set is None
        if val_set is not None and validate:
            scores = validate_epoch(model, val_loss_fn, val_set, config, ctx, amp)
            row.update(
                val_loss=scores.loss, val_case_dice=scores.case_dice, val_dice=scores.image_dice
            )
            improved = stopping.observe(scores.case_dice)
        improved = improved or best_epoch == 0  # best.pt exists once an epoch is done
        if improved:
            best_epoch = epoch + 1
        row["seconds"] = time.perf_counter() - tic
        epochs_run = epoch + 1
        if ctx.is_main:
            assert log is not None and tb is not None
            log.append(row)
            tb.write(row)
            if on_epoch is not None:
                on_epoch(log.rows[-1])
            state = {
                "model": model.state_dict(),
                "loss": loss_fn.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": {  # the rates are a function of the step: only the plan is kept
                    "schedule": config.schedule,
                    "warmup_steps": config.warmup_steps,
                    "total_steps": total_steps,
                    "next_step": (epoch + 1) * steps_per_epoch,
                },
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "epoch": epoch + 1,
                "rng": rng_states(),
                "config": config.to_dict(),
                "best_score": stopping.best,
                "best_epoch": best_epoch,
                "stopping": stopping.state(),
                "cache_options": info.options,
                "cache_image_dtype": info.image_dtype,
                "in_channels": info.channels,
                "size": [info.height, info.width],
                "cache": trained_on,
            }
            if improved:
                save_checkpoint(run / "best.pt", state)
            save_checkpoint(last, state)
            if config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
                save_checkpoint(run / f"epoch_{epoch + 1}.pt", state)
        D.barrier(ctx)
        if stop_after is not None and epoch + 1 >= stop_after:
            break
    if tb is not None:
        tb.close()
    return FitResult(
        epochs=config.epochs,
        best_epoch=best_epoch,
        best_score=stopping.best,
        seconds=time.perf_counter() - start_time,
        epochs_run=epochs_run,
        stop_reason=stopping.stop_reason,
        converged=stopping.converged,
    )


def _offset(rate: Callable[[int], float], first: int, step: int) -> float:
    """The rate of the epoch's step ``step``, the run's step ``first + step``."""
    return rate(first + step)


def _clear_run(run: Path) -> None:
    """Remove the checkpoints and results of an earlier run in this folder (fresh start)."""
    if not run.is_dir():
        return
    for pattern in ("*.pt", "eval_*.json", "per_image_*.csv", "qualitative_*.npz", "done.json"):
        for path in run.glob(pattern):
            path.unlink()
    for name in ("log.csv", "log.jsonl"):
        (run / name).unlink(missing_ok=True)


def _check_resumable(state: dict[str, Any], config: TrainConfig, path: Path) -> None:
    check_architecture(state, config, path)
    stored = TrainConfig.from_dict(state["config"])
    changed = [n for n in config.differences(stored) if n not in RESUMABLE_CHANGES]
    if changed:
        raise CheckpointError(
            f"{path} was trained with other options ({', '.join(changed)}); resuming would "
            "not continue the same run: use another run folder, or resume=False / no "
            "--resume to start again"
        )


def _amp_mode(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.amp == "none":
        return None
    if device.type != "cuda":
        warnings.warn(
            f"amp={config.amp!r} needs CUDA; training in float32 on {device}", stacklevel=3
        )
        return None
    return torch.bfloat16 if config.amp == "bf16" else torch.float16


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


def _train_epoch(
    net: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    dataset: SliceDataset,
    config: TrainConfig,
    ctx: D.DistContext,
    epoch: int,
    amp: torch.dtype | None,
    progress: bool,
    lr_at: Callable[[int], float],
) -> tuple[float, float | None, int, dict[str, float]]:
    """One epoch; ``lr_at(i)`` is the learning rate of its step ``i``. Returns the mean
    loss over steps and ranks, the mean BCE of the same logits for CALF losses (else
    None), the steps and branch shares.

    Why the BCE: per-batch CALF changes its formula from step to step (log10 is ln / 2.303),
    so its ``train_loss`` jumps when the pick flips and is not comparable across steps or
    runs; the BCE of the same logits, summed on the device (no extra host sync), is."""
    batches = _epoch_batches(len(dataset), config, ctx, epoch=epoch)
    _set_train_mode(net, config.freeze_bn)
    bar = _bar(len(batches), f"epoch {epoch + 1}/{config.epochs}", progress and ctx.is_main)
    total = 0.0
    branches: dict[str, float] = dict.fromkeys(BRANCHES, 0.0)
    comparable = uses_branches(config)
    bce_total = torch.zeros((), dtype=torch.float64, device=ctx.device)
    for step, (_, images, masks) in enumerate(_read(dataset, batches, epoch, config, ctx)):
        set_learning_rate(optimizer, lr_at(step))
        optimizer.zero_grad(set_to_none=True)
        with _autocast(ctx.device, amp):
            logits = net(images)
        loss = loss_fn(logits.float(), masks)
        if comparable:
            with torch.no_grad():
                bce = F.binary_cross_entropy_with_logits(logits.float(), masks.float())
                bce_total += bce.double()
        scaler.scale(loss).backward()
        if config.grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        value = float(loss.detach())  # one host sync per step, shared by the sum and the bar
        total += value
        _count_branches(loss_fn, branches)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
    if bar is not None:
        bar.close()
    steps = len(batches)
    shares = {}
    train_bce = None
    if comparable:
        shares = {b: branches[b] / steps for b in BRANCHES}
        train_bce = D.all_mean(ctx, float(bce_total) / steps)
    return D.all_mean(ctx, total / steps), train_bce, steps, shares


def _epoch_batches(
    n: int, config: TrainConfig, ctx: D.DistContext, *, epoch: int
) -> list[np.ndarray]:
    """This rank's batches of ``epoch`` (at most ``max_steps``); the same count every epoch."""
    batches = D.epoch_batches(
        n, config.batch_size, seed=config.seed, epoch=epoch, rank=ctx.rank,
        world_size=ctx.world_size,
    )  # fmt: skip
    if config.max_steps is not None:
        batches = batches[: config.max_steps]
    if not batches:
        raise ValueError(
            f"the training split has {n} slices: not one batch of at least 2 per "
            f"process (batch_size {config.batch_size}, {ctx.world_size} process(es))"
        )
    return batches


def _read(
    dataset: SliceDataset,
    batches: list[np.ndarray],
    epoch: int,
    config: TrainConfig,
    ctx: D.DistContext,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    return read_batches(dataset, batches, epoch=epoch, workers=config.workers, device=ctx.device)


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
