"""One run of the grid as training options: the plain TrainConfig fields of a
:class:`~calfseg.bench.grid.RunSpec` (:func:`train_options`) and the TrainConfig built from them
(:func:`make_train_config`). Shared by the runner and the executors' worker processes."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from calfseg.bench.errors import BenchmarkError
from calfseg.bench.grid import CONTROL_LOSS, CONTROL_OF, BenchmarkConfig, RunSpec


def train_options(config: BenchmarkConfig, spec: RunSpec) -> dict[str, Any]:
    """The training options of one run, as plain values (the TrainConfig fields); a run of
    a cross-validation (``spec.fold``) gets ``split="cv"`` and its fold, which config.json
    and the provenance record keep."""
    cv: dict[str, Any] = {}
    if spec.fold is not None:
        cv = {
            "split": "cv",
            "cv_folds": config.folds,
            "cv_fold": spec.fold,
            "cv_seed": config.cv_seed,
        }
    return {
        "cache": str(config.cache),
        "model": spec.model,
        "preset": config.model_preset,
        "loss": spec.loss,
        "seed": spec.seed,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        # the control arm is bce's recipe again: bce's options
        "loss_options": dict(config.loss_options.get(_recipe(spec.loss), {})),
        **cv,
        **dict(config.extra),
    }


def _recipe(loss: str) -> str:
    return CONTROL_OF if loss == CONTROL_LOSS else loss


def make_train_config(options: dict[str, Any], *, preset: str = "tiny") -> Any:
    """A ``calfseg.train.TrainConfig`` from its preset ``preset`` (``tiny``, ``project`` or
    ``paper``) with ``options`` applied (every key must be a TrainConfig field)."""
    from calfseg.train import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BenchmarkError(f"TrainConfig has no field(s) {', '.join(unknown)}")
    rest = dict(options)
    cache = rest.pop("cache")
    return TrainConfig.from_preset(preset, cache, **rest)
