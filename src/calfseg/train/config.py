"""The options of one training run, as a dataclass that round-trips through JSON.

Three presets (docs/train.md):

- :meth:`TrainConfig.project`: the **project protocol** at the paper's sizes: patient-level
  splits from the cache, validation every epoch, the best checkpoint by the validation case
  Dice (mean per-case Dice), early stopping after 5 validations without improvement, smp
  models of the paper's sizes (model preset ``"paper"``), Adam lr 1e-5, 20 epochs, batch 32,
  seed 12345.
- :meth:`TrainConfig.paper`: the **authors' protocol** end to end (docs/method.md section 5):
  the authors' models (model preset ``"authors"``), CALF with contour areas, the paper's
  numerics and per-rank statistics, the slice-level split re-dealt from the cache at run time
  (``split="paper-slices"``), no validation (the last epoch is kept), SyncBatchNorm under
  DDP, seed 12345, Adam lr 1e-5, 20 epochs, batch 32 per process, constant lr, no
  augmentation.
- :meth:`TrainConfig.tiny`: the project protocol with tiny models, a larger learning rate
  and two epochs: for tests, examples and CPU runs.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from calfseg.errors import OptionError, did_you_mean, unknown_choice
from calfseg.models import MODEL_PRESETS, MODELS
from calfseg.options import (
    device_name,
    non_negative_int,
    option,
    positive_float,
    positive_int,
)

SCHEDULES: tuple[str, ...] = ("none", "cosine")
OPTIMIZERS: tuple[str, ...] = ("adam",)
AMP_MODES: tuple[str, ...] = ("none", "bf16", "fp16")
SPLIT_SOURCES: tuple[str, ...] = ("cache", "paper-slices", "cv")
"""Where a run's train/val/test rows come from: ``"cache"`` (index.csv's split column, as
``calf prepare`` wrote it), ``"paper-slices"`` (re-dealt the paper's way at run time,
:func:`calfseg.data.splits.assign.paper_slice_splits`, seeded by the run's seed) or ``"cv"`` (fold
``cv_fold`` of ``cv_folds``-fold patient-level cross-validation dealt by ``cv_seed``,
:func:`calfseg.data.splits.assign.cv_splits`)."""
TRAIN_PRESETS: tuple[str, ...] = ("project", "paper", "cpu", "tiny")
"""``project``: the project protocol, paper sizes; ``paper``: the authors' protocol;
``tiny``: the project protocol, tiny models."""
PAPER_LOSSES: tuple[str, ...] = (
    "calf", "calf-region", "bce", "dice", "focal", "tversky", "iou", "combo",
)  # fmt: skip
"""The eight losses the paper compares (docs/method.md section 5)."""
PAPER_CALF_OPTIONS: dict[str, Any] = {"area": "contour", "numerics": "paper", "sync": False}
"""What the authors' CALF computes: areas of the contours, their float32 code's clamps, and
statistics of each process's own batch (no all-gather across ranks)."""
# The groups of calf train --help; its options are the fields declared with option().
OPTIMISATION, DATA, RUN = "optimisation (defaults: the preset's)", "data", "run"


def patience_value(text: str) -> int | None:
    """``--patience``: a positive integer, or ``none`` (never stop early)."""
    if text.strip().lower() == "none":
        return None
    return positive_int(text)


def min_delta_value(text: str) -> float:
    """``--min-delta``: a Dice difference in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (a Dice difference), got {text!r}")
    return value


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
        schedule: ``"none"`` (constant lr, the paper) or ``"cosine"``: per step, from ``lr``
            after the warmup down to 0 at the end of the planned steps (``epochs`` x steps
            per epoch), :func:`calfseg.train.schedule.learning_rate`.
        warmup_steps: the first this many steps ramp the lr linearly up to ``lr`` (0: none).
        patience: stop after this many validations in a row without an improvement of the
            validation case Dice by more than ``min_delta`` (None: never stop early; needs a
            validation split).
        min_delta: the smallest rise of the validation case Dice that counts as an
            improvement for ``patience`` and ``converged``.
        min_epochs: early stopping never ends a run before this many epochs (0: no minimum;
            more than ``epochs``: the whole budget), as Lightning's ``min_epochs``. Under
            heavy imbalance a model can predict almost nothing for its first epochs; without
            a minimum, patience stops such a run as if it had plateaued (docs/train.md).
        grad_clip: clip the gradients' global L2 norm to this value (None: no clipping).
        output_prior: start the output layer's bias at the training split's foreground
            share, ``log(pi / (1 - pi))`` (Lin et al. 2017), instead of 0 (p = 0.5 for every
            pixel); :mod:`calfseg.models.output_prior`. The authors' protocol: False.
        channels_last: train in PyTorch's channels-last memory format (the same function,
            faster convolutions on CPUs and GPUs; the results differ in the last bits).
        amp: mixed precision on CUDA: ``"none"``, ``"bf16"`` or ``"fp16"`` (with a gradient
            scaler); ignored with a warning on the CPU.
        seed: seeds the model's initialisation, the batch order, augmentation, filters and
            the ``paper-slices`` split.
        split: where the train/val/test rows come from (:data:`SPLIT_SOURCES`): ``"cache"``
            (the cache's patient-level split), ``"paper-slices"`` (the paper's leaky
            slice-level split, re-dealt at run time; needs ``val_split=None``) or ``"cv"``
            (cross-validation: the cache's split column is ignored; needs ``cv_folds`` and
            ``cv_fold``).
        cv_folds: with ``split="cv"``, the number of folds K (>= 2, at most the cache's
            patients); None otherwise.
        cv_fold: with ``split="cv"``, the fold tested, 1..K; None otherwise.
        cv_seed: with ``split="cv"``, seeds the deal of the patients into folds (the same
            for every run of a cross-validation, whatever its training ``seed``).
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
    model: str = option("unet", "unet (default), deeplabv3 or fpn")
    preset: str = "tiny"
    encoder: str | None = option(None, "an smp encoder replacing the preset's")
    loss: str = option("calf", "a registered loss (default calf)")
    loss_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = option(20, "", parse=positive_int, group=OPTIMISATION)
    batch_size: int = option(
        32, "images per step and per process", parse=positive_int, group=OPTIMISATION
    )
    lr: float = option(1e-5, "Adam's learning rate", parse=positive_float, group=OPTIMISATION)
    weight_decay: float = option(0.0, "", parse=float, group=OPTIMISATION)
    optimizer: str = "adam"
    schedule: str = option(
        "none",
        "learning rate after the warmup: none (constant, every preset) or cosine (per step, "
        "down to 0 at the end of the planned epochs)",
        choices=SCHEDULES, group=OPTIMISATION,
    )  # fmt: skip
    warmup_steps: int = option(
        0, "ramp the learning rate linearly up over the first N steps (default 0)",
        parse=non_negative_int, metavar="N", group=OPTIMISATION,
    )  # fmt: skip
    patience: int | None = option(
        None,
        "stop after N validations without the validation case Dice rising by more than "
        "--min-delta; none: never (defaults: project and tiny 5, paper none)",
        parse=patience_value, metavar="N", group=OPTIMISATION,
    )  # fmt: skip
    min_delta: float = option(
        0.001,
        "the rise of the validation case Dice that counts as an improvement (default 0.001)",
        parse=min_delta_value, metavar="X", group=OPTIMISATION,
    )  # fmt: skip
    min_epochs: int = option(
        0, "early stopping never ends the run before N epochs (defaults: cpu 15, others 0)",
        parse=non_negative_int, metavar="N", group=OPTIMISATION,
    )  # fmt: skip
    grad_clip: float | None = option(
        None, "", parse=positive_float, metavar="NORM", group=OPTIMISATION
    )
    output_prior: bool = True
    channels_last: bool = True
    amp: str = option(
        "none", "mixed precision on CUDA (--amp alone: bf16)",
        choices=AMP_MODES, bare="bf16", group=OPTIMISATION,
    )  # fmt: skip
    seed: int = option(
        12345, "seed of the run (default: the preset's)",
        parse=non_negative_int, metavar="N", group=OPTIMISATION,
    )  # fmt: skip
    split: str = "cache"
    cv_folds: int | None = None
    cv_fold: int | None = None
    cv_seed: int = 0
    filters: list[str] = option(
        help="training-split filter (repeatable): ratio=0.25, drop-empty, min-area=20, "
        "every-kth-empty=4",
        default_factory=list, name="filter", repeat=True, metavar="SPEC", group=DATA,
    )  # fmt: skip
    augment: bool = option(
        False,
        "random flips and quarter turns of the training slices (default: the preset's; "
        "cpu: on)",
        negatable=True, group=DATA,
    )  # fmt: skip
    val_split: str | None = "val"
    test_split: str = "test"
    val_every: int = option(1, "", parse=positive_int, metavar="N", group=RUN)
    checkpoint_every: int = option(0, "", parse=non_negative_int, metavar="N", group=RUN)
    device: str = option(
        "auto",
        "auto (default: CUDA when torch finds a GPU, else the CPU), cpu, cuda, cuda:N, mps",
        parse=device_name, metavar="DEVICE", group=RUN,
    )  # fmt: skip
    workers: int = option(0, "batch-reading processes", parse=non_negative_int, group=DATA)
    deterministic: bool = True
    sync_bn: bool = option(False, "DDP on CUDA: SyncBatchNorm", group=RUN)
    freeze_bn: bool = option(
        False, "batch norm in eval mode (running statistics) while training", group=RUN
    )
    max_steps: int | None = option(
        None, "steps per epoch at most (smoke runs)", parse=positive_int, group=OPTIMISATION
    )
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.cache = os.fspath(self.cache)
        self.filters = list(self.filters)
        self.loss_options = dict(self.loss_options)
        self.validate()

    # -- presets ----------------------------------------------------------------------------

    @classmethod
    def project(cls, cache: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """The project protocol at the paper's sizes: the cache's patient-level split,
        validation and the best checkpoint, smp models of the paper's sizes; Adam lr 1e-5,
        20 epochs, batch 32, seed 12345, constant lr, no augmentation; early stopping with
        patience :data:`PRESET_PATIENCE` on the validation case Dice (None when validation is
        off)."""
        base = cls(cache=os.fspath(cache), preset="paper", epochs=20, batch_size=32, lr=1e-5)
        return replace(base, **_with_patience(overrides))

    @classmethod
    def paper(cls, cache: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """The authors' protocol (docs/method.md section 5), every item of it: the authors'
        models, CALF variants with :data:`PAPER_CALF_OPTIONS`, the slice-level split
        (``"paper-slices"``), no validation so the last epoch is kept, SyncBatchNorm under
        DDP, seed 12345, Adam lr 1e-5, 20 epochs, batch 32 per process, constant lr, no
        augmentation. ``loss_options`` given in ``overrides`` are added to (and override)
        the paper's options of the loss."""
        changes = dict(overrides)
        loss = changes.pop("loss", "calf")
        options = {**paper_loss_options(loss), **changes.pop("loss_options", {})}
        base = cls(
            cache=os.fspath(cache),
            preset="authors",
            loss=loss,
            loss_options=options,
            epochs=20,
            batch_size=32,
            lr=1e-5,
            weight_decay=0.0,
            optimizer="adam",
            schedule="none",
            seed=12345,
            split="paper-slices",
            augment=False,
            val_split=None,
            sync_bn=True,
            output_prior=False,
        )
        return replace(base, **changes)

    @classmethod
    def tiny(cls, cache: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """Tiny models, 2 epochs of batch 8 at lr 1e-3: minutes on a CPU, for smoke tests;
        patience :data:`PRESET_PATIENCE` as the project preset."""
        base = cls(cache=os.fspath(cache), preset="tiny", epochs=2, batch_size=8, lr=1e-3)
        return replace(base, **_with_patience(overrides))

    @classmethod
    def cpu(cls, cache: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """The project protocol sized for a CPU: tiny models, a fixed annealed budget. Adam
        lr 3e-3 with 50 warmup steps, then a per-step cosine down to 0 at the end of 22
        epochs of batch 16; random flips and quarter turns; no early stopping (the run keeps
        the best validation epoch of the whole schedule); converged when the last
        :data:`~calfseg.train.stopping.CONVERGENCE_WINDOW` validations gained no more than
        0.01 (the verdicts' equivalence margin). On the default benchmark's data this
        recipe gave runs that agree with each other to about 0.01 per-case Dice, where early
        stopping at a still-high learning rate left them 0.06 apart (docs/train.md, *The CPU
        recipe*). ``calf train`` uses it on a CPU."""
        base = cls(
            cache=os.fspath(cache),
            preset="tiny",
            epochs=22,
            batch_size=16,
            lr=3e-3,
            schedule="cosine",
            warmup_steps=50,
            patience=None,
            min_delta=0.01,
            augment=True,
        )
        return replace(base, **overrides)

    @classmethod
    def from_preset(cls, name: str, cache: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """The preset ``name`` of :data:`TRAIN_PRESETS` with ``overrides`` applied."""
        _choice("preset", name, TRAIN_PRESETS)
        builders = {"project": cls.project, "paper": cls.paper, "cpu": cls.cpu, "tiny": cls.tiny}
        builder = builders[name]
        return builder(cache, **overrides)

    # -- checks -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        _choice("model", self.model, MODELS)
        _choice("preset", self.preset, MODEL_PRESETS)
        if self.preset == "authors" and self.encoder is not None:
            raise OptionError(
                f"encoder={self.encoder!r} does not apply to preset 'authors': the authors' "
                "models are hand-written, with no smp encoder (unset encoder, or choose an "
                "encoder with preset 'tiny' or 'paper')"
            )
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_MODES)
        _choice("split", self.split, SPLIT_SOURCES)
        if self.split == "paper-slices" and self.val_split is not None:
            raise OptionError(
                f"split='paper-slices' has no validation rows (the paper kept the last epoch): "
                f"set val_split=None (--no-val), not {self.val_split!r}"
            )
        _check_cv(self.split, self.cv_folds, self.cv_fold, self.cv_seed)
        from calfseg.losses import list_losses

        _choice("loss", self.loss, list_losses())
        for name in ("epochs", "batch_size", "val_every"):
            _positive_int(name, getattr(self, name))
        for name in ("checkpoint_every", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OptionError(f"{name} must be an integer >= 0, got {value!r}")
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        self._validate_stopping()
        if not self.lr > 0:
            raise OptionError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise OptionError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise OptionError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")

    def _validate_stopping(self) -> None:
        """Early stopping and warmup: patience a positive integer or None (and then a
        validation split to watch), min_delta a number in [0, 1), warmup_steps and
        min_epochs integers >= 0."""
        if self.patience is not None:
            _positive_int("patience", self.patience)
            if self.val_split is None:
                raise OptionError(
                    f"patience={self.patience} stops on the validation case Dice, but "
                    "val_split is None (no validation): set patience=None (--patience none) "
                    "or give a validation split"
                )
        delta = self.min_delta
        if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 <= delta < 1:
            raise OptionError(f"min_delta must be a number in [0, 1), got {delta!r}")
        for name in ("warmup_steps", "min_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OptionError(f"{name} must be an integer >= 0, got {value!r}")

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
            raise OptionError(
                f"unknown TrainConfig option(s): {', '.join(unknown)}"
                f"{did_you_mean(unknown[0], sorted(known))}"
            )
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


def paper_loss_options(loss: str) -> dict[str, Any]:
    """The options the authors' protocol gives ``loss``: :data:`PAPER_CALF_OPTIONS`, those
    the loss takes, for the CALF variants; nothing for the baselines (whose defaults are
    the authors' definitions)."""
    from calfseg.losses.registry import LOSSES

    spec = LOSSES.get(loss)
    if spec is None or not loss.startswith("calf"):
        return {}
    return {k: v for k, v in PAPER_CALF_OPTIONS.items() if k in spec.options}


PRESET_PATIENCE = 5
"""The patience of the ``project`` and ``tiny`` presets (validations without improvement)."""


def _with_patience(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with the project protocol's patience, unless they set one or turn
    validation off (no validation, nothing to stop on: the whole budget is trained)."""
    if "patience" in overrides or overrides.get("val_split", "val") is None:
        return dict(overrides)
    return {**overrides, "patience": PRESET_PATIENCE}


def _check_cv(split: str, folds: Any, fold: Any, seed: Any) -> None:
    """split="cv" needs K >= 2 folds and a fold in 1..K; other splits take neither. (Whether
    the cache has K patients is checked when the split is opened.)"""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise OptionError(f"cv_seed must be an integer >= 0, got {seed!r}")
    if split != "cv":
        if folds is not None or fold is not None:
            raise OptionError(
                f"cv_folds and cv_fold apply to split='cv' only, not split={split!r} "
                f"(got cv_folds={folds!r}, cv_fold={fold!r})"
            )
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise OptionError(f"split='cv' needs cv_folds, an integer >= 2, got {folds!r}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= folds:
        raise OptionError(f"split='cv' needs cv_fold, an integer in 1..{folds}, got {fold!r}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise unknown_choice(name, value, allowed)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{name} must be a positive integer, got {value!r}")
