"""Training and evaluation: one run of a model and a loss on a slice cache.

    config      TrainConfig (paper() and tiny() presets), to/from JSON
    build       datasets, model and loss from a config, with the start-up checks
    loop        fit(): epochs, validation, logs, checkpoints, resumption
    distributed torchrun process groups and batch sharding
    checkpoint  atomic save/load, RNG states, architecture check
    logs        log.csv / log.jsonl (and TensorBoard when installed)
    evaluate    evaluate_checkpoint(): metrics, per-image table, qualitative examples
    predict     masks for NIfTI volumes and PNG/TIFF images
    run         train_run(): fit, evaluate best.pt on the test split, done.json

docs/train.md describes the run folder, the options and the CLI.
"""

from calfseg.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from calfseg.train.config import TrainConfig
from calfseg.train.evaluate import evaluate_checkpoint
from calfseg.train.loop import FitResult, fit
from calfseg.train.run import train_run

__all__ = [
    "CheckpointError",
    "FitResult",
    "TrainConfig",
    "evaluate_checkpoint",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_run",
]
