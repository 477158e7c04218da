"""The options of one training run, as a dataclass that round-trips through JSON.

Two presets: :meth:`TrainConfig.paper` (the paper's protocol, METHOD.md section 5: Adam,
lr 1e-5, 20 epochs, batch 32, seed 12345, paper-size models) and :meth:`TrainConfig.tiny`
(tiny models, a larger learning rate and two epochs: for tests, examples and smoke runs).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from calfseg.models import MODELS, PRESETS

SCHEDULES: tuple[str, ...] = ("none", "cosine")
OPTIMIZERS: tuple[str, ...] = ("adam",)
AMP_MODES: tuple[str, ...] = ("none", "bf16", "fp16")
# Fields that may differ between a checkpoint's config and the config resuming it.
RESUMABLE_CHANGES: frozenset[str] = frozenset(
    {"epochs", "device", "workers", "checkpoint_every", "val_every", "tensorboard"}
)


@dataclass
class TrainConfig:
    """Everything that defines a training run (see docs/train.md for each option).

    Attributes:
        cache: the slice cache folder (``calf prepare``).
        model: one of :data:`calfseg.models.MODELS`.
        preset: model size, ``"tiny"`` or ``"paper"``.
        encoder: an smp encoder replacing the preset's (None: the preset's).
        loss: a name of :func:`calfseg.losses.list_losses`.
        loss_options: keyword options of that loss.
        epochs: training epochs (the paper: 20).
        batch_size: images per step and per process (the paper: 32 per GPU).
        lr: Adam's learning rate (the paper: 1e-5).
        weight_decay: Adam's L2 penalty (the paper: 0).
        optimizer: ``"adam"`` (the only one; the paper's).
        schedule: ``"none"`` (constant lr, the paper) or ``"cosine"`` (per epoch, to 0).
        grad_clip: clip the gradients' global L2 norm to this value (None: no clipping).
        amp: mixed precision on CUDA: ``"none"``, ``"bf16"`` or ``"fp16"`` (with a gradient
            scaler); ignored with a warning on the CPU.
        seed: seeds the model's initialisation, the batch order, augmentation and filters.
        filters: filter texts for :func:`calfseg.data.parse_filter` (``"ratio=0.25"``),
            applied to the training split.
        augment: random flips and quarter turns of the training slices.
        val_split: the split validated every ``val_every`` epochs to pick ``best.pt``; None
            (the paper: no validation set) keeps the last epoch as best.
        test_split: the split evaluated after training.
        val_every: validate every this many epochs (and after the last).
        checkpoint_every: also keep ``epoch_N.pt`` every this many epochs (0: never).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        workers: DataLoader worker processes reading batches.
        deterministic: ``torch.use_deterministic_algorithms`` (warn-only) and no cuDNN
            benchmarking.
        sync_bn: under DDP on CUDA, batch norm over the global batch (SyncBatchNorm).
        freeze_bn: keep batch-norm layers in eval mode (running statistics) while training.
        max_steps: stop each epoch after this many steps (None: the whole split); for
            smoke tests.
        tensorboard: also write TensorBoard events (when tensorboard is installed).
    """

    cache: str
    model: str = "unet"
    preset: str = "tiny"
    encoder: str | None = None
    loss: str = "calf"
    loss_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "none"
    grad_clip: float | None = None
    amp: str = "none"
    seed: int = 12345
    filters: list[str] = field(default_factory=list)
    augment: bool = False
    val_split: str | None = "val"
    test_split: str = "test"
    val_every: int = 1
    checkpoint_every: int = 0
    device: str = "auto"
    workers: int = 0
    deterministic: bool = True
    sync_bn: bool = False
    freeze_bn: bool = False
    max_steps: int | None = None
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.cache = os.fspath(self.cache)
        self.filters = list(self.filters)
        self.loss_options = dict(self.loss_options)
        self.validate()

    # -- presets ----------------------------------------------------------------------------

    @classmethod
    def paper(cls, cache: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """The paper's protocol (METHOD.md 5): Adam, lr 1e-5, 20 epochs, batch 32, seed
        12345, paper-size models, no augmentation, constant learning rate."""
        base = cls(cache=os.fspath(cache), preset="paper", epochs=20, batch_size=32, lr=1e-5)
        return replace(base, **overrides)

    @classmethod
    def tiny(cls, cache: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """Tiny models, 2 epochs of batch 8 at lr 1e-3: minutes on a CPU, for smoke tests."""
        base = cls(cache=os.fspath(cache), preset="tiny", epochs=2, batch_size=8, lr=1e-3)
        return replace(base, **overrides)

    # -- checks -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        _choice("model", self.model, MODELS)
        _choice("preset", self.preset, PRESETS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_MODES)
        from calfseg.losses import list_losses

        _choice("loss", self.loss, list_losses())
        for name in ("epochs", "batch_size", "val_every"):
            _positive_int(name, getattr(self, name))
        for name in ("checkpoint_every", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Read a dict written by :meth:`to_dict` (extra keys such as ``calfseg_version``
        are ignored; unknown option names are an error)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k != "calfseg_version"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig option(s): {', '.join(unknown)}")
        return cls(**values)

    def to_json(self) -> str:
        from calfseg import __version__

        return json.dumps({**self.to_dict(), "calfseg_version": __version__}, indent=2) + "\n"

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the options that differ from ``other``'s."""
        a, b = self.to_dict(), other.to_dict()
        return [name for name in a if a[name] != b[name]]


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; valid names: {', '.join(allowed)}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
