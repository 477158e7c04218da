"""The learning rate of each training step: a linear warmup, then constant or cosine.

The rate is a pure function of the step number and the plan (:func:`learning_rate`), set on
the optimizer before every step, so a resumed run gets exactly the rates it would have had
(nothing to store but the step count, which is ``epoch x steps per epoch``).

With ``W`` warmup steps, ``T`` planned steps (epochs x steps per epoch), base rate ``lr`` and
the step ``s`` counted from 0::

    s < W:            lr * (s + 1) / W                                   (linear warmup)
    s >= W, "none":   lr
    s >= W, "cosine": lr * (1 + cos(pi * (s - W) / (T - W))) / 2          (to 0 at s = T)

The warmup starts at ``lr / W`` rather than 0 so that no step is wasted; the cosine is the
half-period annealing of SGDR (Loshchilov and Hutter, ICLR 2017) without restarts, taken
per step rather than per epoch. Steps past the plan (``s >= T``) keep the rate 0 of its end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from calfseg.errors import unknown_choice


def learning_rate(
    step: int, *, base_lr: float, schedule: str, warmup_steps: int, total_steps: int
) -> float:
    """The rate of step ``step`` (0-based) of a plan of ``total_steps`` steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "none":
        return base_lr
    if schedule != "cosine":
        raise unknown_choice("schedule", schedule, ("none", "cosine"))
    span = total_steps - warmup_steps
    if span <= 0:  # a warmup as long as the plan: nothing left to anneal
        return base_lr
    progress = min(step - warmup_steps, span) / span
    return base_lr * (1.0 + math.cos(math.pi * progress)) / 2.0


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group of ``optimizer`` the rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


@dataclass(frozen=True)
class SchedulePlan:
    """A run's learning-rate plan: :func:`learning_rate` with its arguments fixed.

    ``total_steps`` is the config's epochs x steps per epoch. A checkpoint keeps the plan
    and the next step (:meth:`state`): the rates themselves need nothing else."""

    base_lr: float
    schedule: str
    warmup_steps: int
    total_steps: int

    def rate(self, step: int) -> float:
        """The learning rate of the run's step ``step`` (0-based)."""
        return learning_rate(
            step, base_lr=self.base_lr, schedule=self.schedule,
            warmup_steps=self.warmup_steps, total_steps=self.total_steps,
        )  # fmt: skip

    def state(self, next_step: int) -> dict[str, Any]:
        """The checkpoint's ``scheduler`` entry: the plan and the step that comes next."""
        return {
            "schedule": self.schedule,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "next_step": next_step,
        }
