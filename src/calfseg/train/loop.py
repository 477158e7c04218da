"""One training run: epochs of Adam steps, validation, logs and checkpoints (:func:`fit`).

Order at the end of each epoch: the log row, then ``best.pt`` (if validation improved), then
``last.pt`` (and ``epoch_N.pt``). A run killed anywhere resumes from ``last.pt``: the logs
are cut back to its epoch and the next epoch runs exactly as it would have (same batch
order, same RNG states, same optimizer state).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calfseg.data import SliceDataset
from calfseg.metrics import MetricAccumulator
from calfseg.rule import BRANCHES
from calfseg.train import distributed as D
from calfseg.train.atomic import atomic_write_text
from calfseg.train.batches import read_batches
from calfseg.train.build import cache_info, loss_for, model_for, open_split, uses_branches
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


@dataclass
class FitResult:
    """What :func:`fit` reports: epochs done, the best epoch and score, seconds spent."""

    epochs: int
    best_epoch: int
    best_score: float | None
    seconds: float


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
            purpose="validation; set val_split=None / --no-val "
            "to train without one and keep the last epoch",
        )
    amp = _amp_mode(config, ctx.device)

    seed_everything(config.seed)
    model = model_for(config, info).to(ctx.device)
    loss_fn = loss_for(config).to(ctx.device)
    val_loss_fn = loss_for(config, sync=False).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = None
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)

    log = EpochLog(run, branches=uses_branches(config)) if ctx.is_main else None
    start_epoch, best_score, best_epoch = 0, -math.inf, 0
    last = run / "last.pt"
    if resume and last.is_file():
        state = load_checkpoint(last)  # on the CPU: RNG states must stay there
        _check_resumable(state, config, last)
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        set_rng_states(state["rng"])
        start_epoch, best_epoch = int(state["epoch"]), int(state["best_epoch"])
        best_score = -math.inf if state["best_score"] is None else float(state["best_score"])
    elif ctx.is_main:
        _clear_run(run)
    if log is not None:
        log.truncate(start_epoch)
        atomic_write_text(run / "config.json", config.to_json())

    net = _wrap(model, config, ctx)
    tb = TensorBoardLog(run, config.tensorboard) if ctx.is_main else None
    for epoch in range(start_epoch, config.epochs):
        tic = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        train_loss, steps, shares = _train_epoch(
            net, loss_fn, optimizer, scaler, train_set, config, ctx, epoch, amp, progress
        )
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lr}
        row.update(steps=steps, **{f"branch/{b}": s for b, s in shares.items()})
        validate = (epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs
        improved = val_set is None
        if val_set is not None and validate:
            row["val_loss"], row["val_dice"] = validate_epoch(
                model, val_loss_fn, val_set, config, ctx, amp
            )
            improved = row["val_dice"] is not None and row["val_dice"] > best_score
        improved = improved or best_epoch == 0  # best.pt exists once an epoch is done
        if improved:
            best_epoch = epoch + 1
            score = row.get("val_dice")
            best_score = -math.inf if score is None else float(score)
        if scheduler is not None:
            scheduler.step()
        row["seconds"] = time.perf_counter() - tic
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
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "epoch": epoch + 1,
                "rng": rng_states(),
                "config": config.to_dict(),
                "best_score": None if not math.isfinite(best_score) else best_score,
                "best_epoch": best_epoch,
                "cache_options": info.options,
                "cache_image_dtype": info.image_dtype,
                "in_channels": info.channels,
                "size": [info.height, info.width],
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
        best_score=best_score if math.isfinite(best_score) else None,
        seconds=time.perf_counter() - start_time,
    )


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
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are optional
        return None
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


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
) -> tuple[float, int, dict[str, float]]:
    """One epoch; returns the mean loss over steps and ranks, the steps and branch shares."""
    batches = D.epoch_batches(
        len(dataset), config.batch_size, seed=config.seed, epoch=epoch,
        rank=ctx.rank, world_size=ctx.world_size,
    )  # fmt: skip
    if config.max_steps is not None:
        batches = batches[: config.max_steps]
    if not batches:
        raise ValueError(
            f"the training split has {len(dataset)} slices: not one batch of at least 2 per "
            f"process (batch_size {config.batch_size}, {ctx.world_size} process(es))"
        )
    _set_train_mode(net, config.freeze_bn)
    bar = _bar(len(batches), f"epoch {epoch + 1}/{config.epochs}", progress and ctx.is_main)
    total = 0.0
    branches: dict[str, float] = dict.fromkeys(BRANCHES, 0.0)
    for _, images, masks in _read(dataset, batches, epoch, config, ctx):
        optimizer.zero_grad(set_to_none=True)
        with _autocast(ctx.device, amp):
            logits = net(images)
        loss = loss_fn(logits.float(), masks)
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
    if uses_branches(config):
        shares = {b: branches[b] / steps for b in BRANCHES}
    return D.all_mean(ctx, total / steps), steps, shares


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
) -> tuple[float, float | None]:
    """Mean validation loss (over images) and per-image Dice, over every rank's shard."""
    model.eval()
    shard = D.eval_shard(len(dataset), ctx.rank, ctx.world_size)
    acc = MetricAccumulator(surface=False)
    loss_sum, count = 0.0, 0
    for _, images, masks in _read(
        dataset, list(D.chunks(shard, config.batch_size)), 0, config, ctx
    ):
        with _autocast(ctx.device, amp):
            logits = model(images)
        logits = logits.float()
        loss_sum += float(loss_fn(logits, masks)) * images.shape[0]
        count += images.shape[0]
        acc.update(logits, masks)
    loss_sum, count_f = D.all_sum(ctx, [loss_sum, float(count)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dice = acc.all_gather().compute().get("dice/per_image")
    if not isinstance(dice, float | int) or not math.isfinite(dice):
        return loss_sum / count_f, None
    return loss_sum / count_f, float(dice)
