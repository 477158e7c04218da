"""Training and evaluation: one run of a model and a loss on a slice cache.

    config      TrainConfig (paper() and tiny() presets), to/from JSON
    build       datasets, model and loss from a config, with the start-up checks
    state       the typed run state (RunInputs, TrainingState): built, restored, checkpointed
    loop        fit(): build, restore, epochs (train, validate, log, checkpoint), finish
    case_dice   the validation metric: mean per-case Dice (val_case_dice)
    stopping    early stopping (patience, min_delta) and the converged verdict
    schedule    the learning rate of each step: warmup, then constant or cosine
    distributed torchrun process groups and batch sharding
    checkpoint  the typed Checkpoint (to_state/from_state, field checks), architecture check
    checkpoint_file atomic save, safe load (weights_only): nothing is unpickled
    rng         the RNG states of python, numpy and torch as tensors and numbers
    cache_record what a model knows of its training cache (digest, fingerprint)
    trained_model load_trained_model(): a checkpoint, run folder or export, ready to use
    export      calf export: safetensors weights + a JSON record, to share a model
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
