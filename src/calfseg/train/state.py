"""The typed state of a training run: what it reads and what changes as it trains.

- :class:`RunInputs`: what the run reads and never changes (its datasets, the cache's
  description and record, the validation loss, the mixed-precision mode).
- :class:`TrainingState`: what changes and what a checkpoint restores (model, loss,
  optimizer, gradient scaler, the learning-rate plan, early stopping, the epochs done and
  the best epoch; the RNG states are the process's own, captured and restored with it).

:func:`start_training` builds both from a :class:`TrainConfig` in a fixed order (the seed is
set just before the model is built, so a run's initial weights depend only on the config);
:meth:`TrainingState.restore` and :meth:`TrainingState.checkpoint` move the state from and
to a :class:`calfseg.train.checkpoint.Checkpoint`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from calfseg.data import SliceDataset
from calfseg.models import set_output_prior
from calfseg.train import distributed as D
from calfseg.train.build import (
    CacheInfo,
    amp_dtype,
    cache_info,
    foreground_share,
    loss_for,
    model_for,
    open_split,
    rank_batches,
    seed_everything,
    set_determinism,
)
from calfseg.train.cache_record import cache_record
from calfseg.train.checkpoint import Checkpoint, CheckpointFieldError
from calfseg.train.config import TrainConfig
from calfseg.train.rng import rng_states, set_rng_states
from calfseg.train.schedule import SchedulePlan
from calfseg.train.stopping import EarlyStopping

_NO_VALIDATION_HINT = (
    "validation; set val_split=None and patience=None / --no-val to train without one and "
    "keep the last epoch"
)


@dataclass
class RunInputs:
    """What a run reads and does not change."""

    info: CacheInfo  # channels, slice size and preprocessing of the cache
    cache: dict[str, Any] | None  # its record, kept in every checkpoint (calf evaluate checks it)
    train_set: SliceDataset
    val_set: SliceDataset | None  # None: no validation (best.pt is the last epoch)
    val_criterion: nn.Module  # the loss without cross-rank statistics (shards differ)
    amp: torch.dtype | None  # the autocast dtype; None: float32


@dataclass
class TrainingState:
    """What changes while a run trains; a checkpoint holds all of it."""

    model: nn.Module
    criterion: nn.Module  # the training loss (CALF losses keep state: their state dict)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    plan: SchedulePlan
    stopping: EarlyStopping
    steps_per_epoch: int
    epoch: int = 0  # epochs completed
    best_epoch: int = 0  # the epoch of best.pt; 0: none yet

    @property
    def step(self) -> int:
        """The run's next optimizer step (0-based): epochs done x steps per epoch."""
        return self.epoch * self.steps_per_epoch

    def checkpoint(self, config: TrainConfig, inputs: RunInputs) -> Checkpoint:
        """This state as a checkpoint, with the process's RNG states as they are now."""
        info = inputs.info
        return Checkpoint(
            model=self.model.state_dict(),
            loss=self.criterion.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.plan.state(next_step=self.step),  # the rates follow from the plan
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            epoch=self.epoch,
            rng=rng_states(),
            config=config.to_dict(),
            best_score=self.stopping.best,
            best_epoch=self.best_epoch,
            stopping=self.stopping.state(),
            cache_options=info.options,
            cache_image_dtype=info.image_dtype,
            in_channels=info.channels,
            size=(info.height, info.width),
            cache=inputs.cache,
        )

    def restore(
        self, checkpoint: Checkpoint, config: TrainConfig, source: str | os.PathLike[str]
    ) -> None:
        """Continue from ``checkpoint`` (read from ``source``): weights, loss, optimizer and
        scaler states, RNG states, epochs and the early-stopping state under ``config``'s
        patience and min_delta (a checkpoint of an older calf-seg: from its best score).

        Raises:
            CheckpointFieldError: a state dict that does not fit the run's model, loss or
                optimizer (the field is named).
        """
        parts: list[tuple[str, Any, dict[str, Any] | None]] = [
            ("model", self.model, checkpoint.model),
            ("loss", self.criterion, checkpoint.loss),
            ("optimizer", self.optimizer, checkpoint.optimizer),
            ("scaler", self.scaler, checkpoint.scaler),
        ]
        for name, part, stored in parts:
            if stored is None:  # no scaler was in use
                continue
            try:
                part.load_state_dict(stored)
            except (RuntimeError, KeyError, ValueError, TypeError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                raise CheckpointFieldError(
                    f"{source}: its field {name!r} does not fit this run's {name} ({first})"
                ) from None
        set_rng_states(checkpoint.rng)
        self.epoch, self.best_epoch = checkpoint.epoch, checkpoint.best_epoch
        self.stopping = EarlyStopping.from_state(
            checkpoint.stopping, patience=config.patience, min_delta=config.min_delta,
            best=checkpoint.best_score,
        )  # fmt: skip


def start_training(config: TrainConfig, ctx: D.DistContext) -> tuple[RunInputs, TrainingState]:
    """Open the run's datasets and build its model, losses, optimizer and plan, checking
    what can fail (:class:`calfseg.train.build.RunSetupError`) before anything is trained."""
    set_determinism(config.deterministic)
    info = cache_info(config.cache)
    train_set = open_split(config, "train", train=True, purpose="training")
    val_set = None
    if config.val_split is not None:
        val_set = open_split(config, config.val_split, purpose=_NO_VALIDATION_HINT)
    amp = amp_dtype(config, ctx.device)
    steps_per_epoch = len(rank_batches(len(train_set), config, ctx, epoch=0))
    seed_everything(config.seed)  # the initial weights depend on the seed alone
    model = model_for(config, info)
    if config.output_prior:  # the bias only: the weights stay the seed's
        set_output_prior(model, foreground_share(train_set, info))
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(ctx.device)
    criterion = loss_for(config).to(ctx.device)
    val_criterion = loss_for(config, sync=False).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    plan = SchedulePlan(  # total_steps: the plan of the cosine schedule
        config.lr, config.schedule, config.warmup_steps, config.epochs * steps_per_epoch
    )
    state = TrainingState(
        model=model,
        criterion=criterion,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler("cuda", enabled=amp == torch.float16),
        plan=plan,
        stopping=EarlyStopping(config.patience, config.min_delta),
        steps_per_epoch=steps_per_epoch,
    )
    inputs = RunInputs(
        info=info, cache=cache_record(config.cache), train_set=train_set, val_set=val_set,
        val_criterion=val_criterion, amp=amp,
    )  # fmt: skip
    return inputs, state
