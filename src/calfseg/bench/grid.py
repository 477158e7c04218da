"""The benchmark grid: which (model x loss x seed [x fold]) runs a benchmark is made of.

A :class:`BenchmarkConfig` names the data, the models, losses and seeds, the number of
cross-validation folds and the training settings shared by every run. :func:`runs` expands
it into :class:`RunSpec` s in a stable order (model, then loss, then seed, then fold), which
``--shard K/N`` slices and which a resumed benchmark walks again, skipping the runs whose
``done.json`` exists. docs/benchmark.md describes the presets and their sizing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import calfseg.run_files as files
from calfseg.errors import OptionError, check_choice, did_you_mean
from calfseg.options import (
    integer,
    margin_value,
    non_negative_int,
    option,
    positive_float,
    positive_int,
    shard_value,
)
from calfseg.shards import shard_items
from calfseg.train.config import PAPER_LOSSES

RUNS_FOLDER = "runs"
DATA_FOLDER = "data"
DEFAULT_OUT = Path("calf-benchmark")
CONTROL_LOSS = "bce-control"
"""The A/A control arm: BCE trained under other seeds (:data:`CONTROL_SEED_OFFSET` added to
each of the grid's seeds) and compared with ``bce`` like any loss. Its true difference is 0:
an interval without 0 means the benchmark's runs disagree more than its statistics allow."""
CONTROL_OF = "bce"
CONTROL_SEED_OFFSET = 1000


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything a benchmark needs; one preset of :data:`BENCHMARK_PRESETS` plus overrides.

    Attributes:
        out: the results folder: runs in ``OUT/runs/NAME``, generated data in ``OUT/data``.
        data: a slice cache (``calf prepare``) to train on, or None for ``synthetic``.
        synthetic: the synthetic preset generated into ``OUT/data`` when ``data`` is None.
        size: side of the generated slices (synthetic data only).
        synthetic_cases, synthetic_slices: cases, and axial slices per case, of the generated
            data (None: the synthetic preset's).
        models: model names (:data:`calfseg.models.MODELS`).
        losses: loss names (:func:`calfseg.losses.list_losses`).
        seeds: training seeds; each (model, loss) is trained once per seed.
        preset: the benchmark preset's name, a key of :data:`BENCHMARK_PRESETS`.
        train_preset: the :class:`~calfseg.train.TrainConfig` preset every run starts from:
            ``"tiny"`` or ``"project"`` (the project protocol) or ``"paper"`` (the authors'
            protocol, :meth:`TrainConfig.paper`).
        epochs, batch_size, lr: shared by every run.
        model_preset: the model sizes, ``"tiny"``, ``"paper"`` or ``"authors"``
            (calfseg.models.MODEL_PRESETS).
        shard: ``(k, n)``: only every n-th run, starting at the k-th (1-based), or None.
        folds: 1: no cross-validation, every run trains, validates and tests on the cache's
            own split; K >= 2: patient-level K-fold cross-validation, each (model, loss,
            seed) trained K times, run k testing fold k (TrainConfig ``split="cv"``).
        cv_seed: seeds the deal of the patients into the ``folds`` folds; one deal for the
            whole grid, so every run of a fold tests the same cases.
        loss_options: per loss name, options added to its runs' ``loss_options`` (``calf
            benchmark --loss-option``; see :func:`resolve_loss_options`).
        control: add the A/A control arm :data:`CONTROL_LOSS` when ``bce`` is in the grid.
    """

    out: Path = option(
        DEFAULT_OUT, f"results folder (default ./{DEFAULT_OUT})", parse=Path, metavar="OUT"
    )
    data: Path | None = option(
        None, "slice cache to train on (default: synthetic paper-like data made in OUT/data)",
        parse=Path, metavar="CACHE",
    )  # fmt: skip
    synthetic: str = "paper-like"
    size: int = 64
    synthetic_cases: int | None = None
    synthetic_slices: int | None = None
    models: tuple[str, ...] = option(
        ("unet", "deeplabv3", "fpn"), "models (default: the preset's)", many=True,
        metavar="NAME",
    )  # fmt: skip
    losses: tuple[str, ...] = option(
        ("bce", "dice", "focal", "tversky", "combo", "calf", "calf-dataset"),
        "losses (default: the preset's)", many=True, metavar="NAME",
    )  # fmt: skip
    seeds: tuple[int, ...] = (0, 1)
    preset: str = "default"
    train_preset: str = "tiny"
    epochs: int = option(2, "epochs per run (at most)", parse=positive_int, metavar="E")
    batch_size: int = 16
    lr: float = option(1e-3, "Adam's learning rate", parse=positive_float, metavar="LR")
    model_preset: str = "tiny"
    shard: tuple[int, int] | None = option(
        None, "only every N-th run, from the K-th", parse=shard_value, metavar="K/N"
    )
    folds: int = option(
        1,
        "K >= 2: patient-level K-fold cross-validation, every (model, loss, seed) trained K "
        "times, run k testing fold k, so every case is tested once by a model that never saw "
        "it; the folds go to OUT/folds.csv (default: the preset's; 1: no cross-validation, "
        "the cache's own split)",
        parse=integer, metavar="K",
    )  # fmt: skip
    cv_seed: int = option(
        0, "seed of the deal of the patients into the --folds folds (default 0)",
        parse=non_negative_int, metavar="N",
    )  # fmt: skip
    margin: float | None = option(  # the verdicts' equivalence margin; None: the report's
        None,
        "equivalence margin of the verdicts in per-case Dice: a loss whose 95 %% CI of the "
        "difference to bce lies within +-DICE is 'equivalent' (default 0.01; "
        "docs/benchmark.md)",
        parse=margin_value, metavar="DICE",
    )  # fmt: skip
    extra: Mapping[str, Any] = field(default_factory=dict)
    loss_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    control: bool = False

    @property
    def arms(self) -> tuple[str, ...]:
        """The losses trained: ``losses``, and the A/A control after them when ``control``
        and ``bce`` is one of them."""
        extra = self.control and CONTROL_OF in self.losses and CONTROL_LOSS not in self.losses
        return (*self.losses, CONTROL_LOSS) if extra else tuple(self.losses)

    @property
    def cache(self) -> Path:
        """The cache the runs train on: ``data`` or the generated ``OUT/data``."""
        return self.data if self.data is not None else self.out / DATA_FOLDER

    def with_overrides(self, **changes: Any) -> BenchmarkConfig:
        """A copy with the non-None ``changes`` applied (CLI options left out are None)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


BENCHMARK_PRESETS: Mapping[str, BenchmarkConfig] = MappingProxyType(
    {
        # Evidence on the CPU (docs/benchmark.md, "Sizing of default"): the synthetic
        # paper-like data as 48 cases of 16 slices at 48x48, one tiny U-Net, BCE, CALF and
        # Combo and the A/A control, four seeds, 2-fold patient-level cross-validation
        # (every one of the 48 cases tested once per seed), each run the cpu preset's
        # 22-epoch annealed schedule with augmentation: 32 runs, about 11 minutes on the
        # 2-core machine. Four seeds, not three: the control's half-width rests on the
        # run-to-run spread with 2 x (seeds - 1) degrees of freedom; with three seeds it was
        # +-0.023 on one machine state (+-0.021 at 26 epochs), above the +-0.02 the default
        # must resolve. About 11 minutes there; about 16 estimated on the slowest 2-core
        # machine seen (12 minutes for the 3-seed default).
        "default": BenchmarkConfig(
            size=48,
            synthetic_cases=48,
            synthetic_slices=16,
            models=("unet",),
            losses=("bce", "calf", "combo"),
            seeds=(0, 1, 2, 3),
            folds=2,
            control=True,
            train_preset="cpu",
            epochs=22,
            batch_size=16,
            lr=3e-3,
            extra=MappingProxyType({"tensorboard": False}),
        ),
        # The paper's comparison (docs/method.md section 5) under the PROJECT protocol
        # (patient-level splits, validation, best checkpoint, three seeds, statistics):
        # 256x256, 20 epochs, Adam 1e-5, batch 32, the eight paper losses, smp models of
        # the paper's sizes.
        "project": BenchmarkConfig(
            size=256,
            losses=PAPER_LOSSES,
            seeds=(12345, 12346, 12347),
            preset="project",
            train_preset="project",
            control=True,
            epochs=20,
            batch_size=32,
            lr=1e-5,
            model_preset="paper",
            extra=MappingProxyType({"tensorboard": False}),
        ),
        # The AUTHORS' protocol end to end (TrainConfig.paper): their models, CALF with
        # contour areas, paper numerics and per-rank statistics, the slice-level split, no
        # validation (last epoch), SyncBatchNorm under DDP, one seed 12345, 256x256, 20
        # epochs, Adam 1e-5, batch 32 per process, the eight losses.
        "paper": BenchmarkConfig(
            size=256,
            losses=PAPER_LOSSES,
            seeds=(12345,),
            preset="paper",
            train_preset="paper",
            epochs=20,
            batch_size=32,
            lr=1e-5,
            model_preset="authors",
            extra=MappingProxyType({"tensorboard": False}),
        ),
    }
)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid; ``fold`` (1..K) under cross-validation, else None."""

    model: str
    loss: str
    seed: int
    fold: int | None = None

    @property
    def name(self) -> str:
        """The run folder's name: ``{model}-{loss}-s{seed}``, with ``-f{fold}`` added under
        cross-validation."""
        base = f"{self.model}-{self.loss}-s{self.seed}"
        return base if self.fold is None else f"{base}-f{self.fold}"

    def folder(self, out: Path) -> Path:
        return Path(out) / RUNS_FOLDER / self.name

    def is_done(self, out: Path) -> bool:
        return (self.folder(out) / files.DONE).is_file()


def runs(config: BenchmarkConfig) -> list[RunSpec]:
    """The runs of ``config`` (its shard only), model-major then loss, seed and fold."""
    folds: list[int | None] = list(fold_numbers(config.folds)) or [None]
    grid = [
        RunSpec(m, loss, training_seed(loss, s), f)
        for m in config.models
        for loss in config.arms
        for s in config.seeds
        for f in folds
    ]
    return shard_items(grid, config.shard)


def training_seed(loss: str, seed: int) -> int:
    """The seed a grid seed trains ``loss`` with: itself (every loss of a seed shares its
    initial weights and batch order), or for the control arm another one."""
    return seed + CONTROL_SEED_OFFSET if loss == CONTROL_LOSS else seed


def baseline_seed(loss: str, seed: int) -> int:
    """The ``bce`` seed a run of ``loss`` under ``seed`` is paired with: the same seed, or
    for the control arm the grid seed it was shifted from (:func:`training_seed`)."""
    return seed - CONTROL_SEED_OFFSET if loss == CONTROL_LOSS else seed


def fold_numbers(folds: int) -> range:
    """The folds of a grid: 1..K for K >= 2, none for 1 (no cross-validation).

    Raises:
        ValueError: ``folds`` is not an integer >= 1 (the message names the choices).
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise OptionError(
            f"folds must be 1 (no cross-validation: the cache's split) or K >= 2 (K-fold "
            f"patient-level cross-validation), got {folds!r}"
        )
    return range(1, folds + 1) if folds >= 2 else range(0)


def pending(config: BenchmarkConfig) -> list[RunSpec]:
    """The runs of :func:`runs` that have no ``done.json`` yet."""
    return [spec for spec in runs(config) if not spec.is_done(config.out)]


def check_names(models: Sequence[str], losses: Sequence[str]) -> None:
    """Raise :class:`~calfseg.errors.UnknownChoiceError` (a ValueError) for the first
    unknown model or loss name, with "did you mean" and the valid choices."""
    from calfseg.losses.registry import list_losses
    from calfseg.models import MODELS

    for model in models:
        check_choice("model", model, MODELS, valid="valid models")
    valid = list_losses()
    for loss in losses:
        check_choice("loss", loss, valid, valid="valid losses")


def resolve_loss_options(
    losses: Sequence[str], options: Sequence[tuple[str | None, str, Any]]
) -> dict[str, dict[str, Any]]:
    """The options of each loss of the grid from ``--loss-option [LOSS:]KEY=VALUE`` items.

    ``(None, key, value)`` goes to every loss of ``losses`` that takes ``key`` (an error if
    none does); ``(loss, key, value)`` to that loss only (an error if it is not in the grid
    or does not take ``key``). Options for one loss win over options for all, whatever
    their order; among equals the last wins. Unknown names get "did you mean".

    Returns:
        ``{loss: {key: value}}`` for the losses that got options.
    """
    from calfseg.losses.registry import LOSSES

    for_all = [(key, value) for loss, key, value in options if loss is None]
    for_one = [(loss, key, value) for loss, key, value in options if loss is not None]
    out: dict[str, dict[str, Any]] = {}
    for key, value in for_all:
        takers = [loss for loss in losses if key in LOSSES[loss].options]
        if not takers:
            known = sorted({o for loss in losses for o in LOSSES[loss].options})
            raise OptionError(
                f"--loss-option {key}: no loss of the grid ({', '.join(losses)}) takes "
                f"{key!r}{_did_you_mean(key, known)}; their options: {', '.join(known)}"
            )
        for loss in takers:
            out.setdefault(loss, {})[key] = value
    for loss, key, value in for_one:
        if loss not in LOSSES:
            raise OptionError(
                f"--loss-option {loss}:{key}: unknown loss {loss!r}"
                f"{_did_you_mean(loss, list(LOSSES))}; valid losses: {', '.join(LOSSES)}"
            )
        if loss not in losses:
            raise OptionError(
                f"--loss-option {loss}:{key}: {loss!r} is not a loss of this benchmark "
                f"({', '.join(losses)}); add it with --losses"
            )
        takes = LOSSES[loss].options
        if key not in takes:
            raise OptionError(
                f"--loss-option {loss}:{key}: loss {loss!r} has no option {key!r}"
                f"{_did_you_mean(key, list(takes))}; its options: {', '.join(takes) or 'none'}"
            )
        out.setdefault(loss, {})[key] = value
    return out


def check_loss_options(options: dict[str, dict[str, Any]]) -> None:
    """Build each loss of the grid that got options once, on the CPU, so that a bad value
    (``--loss-option calf:numerics=bogus``) is a usage error before any run trains, not a
    failed run after the baseline's runs have trained. A loss that needs the cache's
    fingerprint (``calf-dataset``) is built by its runs only.

    Raises:
        OptionError: the loss refuses a value; the message names the loss.
    """
    from calfseg.losses.registry import LOSSES, build_loss

    for loss, given in options.items():
        if LOSSES[loss].needs_fingerprint:
            continue
        try:
            build_loss(loss, **given)
        except (TypeError, ValueError) as err:
            raise OptionError(f"--loss-option for {loss!r}: {err}") from None


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    return did_you_mean(name, choices)
