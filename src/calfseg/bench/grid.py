"""The benchmark grid: which (model x loss x seed) runs a benchmark is made of.

A :class:`BenchmarkConfig` names the data, the models, losses and seeds and the training
settings shared by every run. :func:`runs` expands it into :class:`RunSpec` s in a stable
order (model, then loss, then seed), which ``--shard K/N`` slices and which a resumed
benchmark walks again, skipping the runs whose ``done.json`` exists. docs/benchmark.md
describes the presets and their sizing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

RUNS_FOLDER = "runs"
DATA_FOLDER = "data"
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"
DEFAULT_OUT = Path("calf-benchmark")


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything a benchmark needs; one preset of :data:`PRESETS` plus overrides.

    Attributes:
        out: the results folder: runs in ``OUT/runs/NAME``, generated data in ``OUT/data``.
        data: a slice cache (``calf prepare``) to train on, or None for ``synthetic``.
        synthetic: the synthetic preset generated into ``OUT/data`` when ``data`` is None.
        size: side of the generated slices (synthetic data only).
        models: model names (:data:`calfseg.models.MODELS`).
        losses: loss names (:func:`calfseg.losses.list_losses`).
        seeds: training seeds; each (model, loss) is trained once per seed.
        preset: the training preset, ``"default"`` (tiny models) or ``"paper"``.
        epochs, batch_size, lr: shared by every run.
        model_preset: the model sizes, ``"tiny"`` or ``"paper"`` (calfseg.models.PRESETS).
        shard: ``(k, n)``: only every n-th run, starting at the k-th (1-based), or None.
    """

    out: Path = DEFAULT_OUT
    data: Path | None = None
    synthetic: str = "paper-like"
    size: int = 64
    models: tuple[str, ...] = ("unet", "deeplabv3", "fpn")
    losses: tuple[str, ...] = ("bce", "dice", "focal", "tversky", "combo", "calf", "calf-dataset")
    seeds: tuple[int, ...] = (0, 1)
    preset: str = "default"
    epochs: int = 2
    batch_size: int = 16
    lr: float = 1e-3
    model_preset: str = "tiny"
    shard: tuple[int, int] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cache(self) -> Path:
        """The cache the runs train on: ``data`` or the generated ``OUT/data``."""
        return self.data if self.data is not None else self.out / DATA_FOLDER

    def with_overrides(self, **changes: Any) -> BenchmarkConfig:
        """A copy with the non-None ``changes`` applied (CLI options left out are None)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


PRESETS: Mapping[str, BenchmarkConfig] = MappingProxyType(
    {
        # 3 models x 7 losses x 2 seeds = 42 runs on 64x64 synthetic slices (paper-like:
        # 24 cases x 32 slices, 608 training slices -> 38 steps of 16 per epoch; 2 epochs
        # -> 76 steps per run, 3,192 in all: ~1.6 min at the nominal ~0.03 s per step).
        # Measured end to end on the 2-CPU development machine, shared with other jobs:
        # 2 epochs 400 s; 3 epochs 972 s under heavier contention (idle: ~1.5-2.7 s per
        # epoch, so ~6 min). 2 epochs keeps the grid under 15 min even on a busy machine.
        "default": BenchmarkConfig(extra=MappingProxyType({"tensorboard": False})),
        # The paper's comparison (METHOD.md section 5) with the project's protocol
        # (patient-level splits, validation, best checkpoint): 256x256, 20 epochs,
        # Adam 1e-5, batch 32, the eight paper losses, the paper model sizes.
        "paper": BenchmarkConfig(
            size=256,
            losses=("calf", "calf-region", "bce", "dice", "focal", "tversky", "iou", "combo"),
            seeds=(12345, 12346, 12347),
            preset="paper",
            epochs=20,
            batch_size=32,
            lr=1e-5,
            model_preset="paper",
            extra=MappingProxyType({"tensorboard": False}),
        ),
    }
)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid."""

    model: str
    loss: str
    seed: int

    @property
    def name(self) -> str:
        """The run folder's name: ``{model}-{loss}-s{seed}``."""
        return f"{self.model}-{self.loss}-s{self.seed}"

    def folder(self, out: Path) -> Path:
        return Path(out) / RUNS_FOLDER / self.name

    def is_done(self, out: Path) -> bool:
        return (self.folder(out) / DONE_FILE).is_file()


def runs(config: BenchmarkConfig) -> list[RunSpec]:
    """The runs of ``config`` (its shard only), model-major then loss then seed."""
    grid = [
        RunSpec(m, loss, s) for m in config.models for loss in config.losses for s in config.seeds
    ]
    if config.shard is None:
        return grid
    k, n = config.shard
    return grid[k - 1 :: n]


def pending(config: BenchmarkConfig) -> list[RunSpec]:
    """The runs of :func:`runs` that have no ``done.json`` yet."""
    return [spec for spec in runs(config) if not spec.is_done(config.out)]


def check_names(models: Sequence[str], losses: Sequence[str]) -> None:
    """Raise ValueError naming the valid choices if a model or loss name is unknown."""
    from calfseg.losses.registry import list_losses
    from calfseg.models import MODELS

    bad_models = [m for m in models if m not in MODELS]
    if bad_models:
        raise ValueError(
            f"unknown model(s) {', '.join(bad_models)}; valid models: {', '.join(MODELS)}"
        )
    valid = list_losses()
    bad_losses = [loss for loss in losses if loss not in valid]
    if bad_losses:
        raise ValueError(
            f"unknown loss(es) {', '.join(bad_losses)}; valid losses: {', '.join(valid)}"
        )


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``; ValueError otherwise."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must be K/N like 1/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n
