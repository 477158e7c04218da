"""``calf train --data CACHE --model M --loss L --out RUN_DIR``: one training run, then the
evaluation of its best checkpoint on the test split (docs/train.md).

Without ``--preset`` the preset follows the device, so that a first try on a laptop does not
start a paper-scale job: ``cpu`` on the CPU, ``project`` on CUDA (both the project
protocol); one line says which was chosen, and after the first epoch one line estimates the
time of the whole run."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.cli.common import (
    EXIT_OK,
    UsageError,
    check_input,
    loss_option,
    non_negative_int,
    positive_float,
    positive_int,
)
from calfseg.cli.errors import InputError, OutputPathError
from calfseg.cli.options import add_device, add_no_progress, add_preset, add_seed

PROG = "calf train"
PRESET_CHOICES = ("project", "paper", "cpu", "tiny")
_UNSET: Any = object()  # --patience not given (None means "--patience none")


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


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        help="train a model with a loss on a slice cache, then evaluate it on the test split",
        description=(
            "Train one model with one loss on a cache written by calf prepare and evaluate "
            f"{files.BEST_CHECKPOINT} on the test split. The project protocol (presets project "
            "and tiny): the cache's patient-level split, validation every epoch, "
            f"{files.BEST_CHECKPOINT} by the "
            "validation case Dice (mean per-case Dice), early stopping after 5 validations "
            "without improvement. --preset paper: the authors' protocol (slice-level split, "
            "no validation, the last epoch kept, the authors' models and CALF numerics), "
            "a fixed 20 epochs. Under torchrun, "
            "trains with DDP. See docs/train.md."
        ),
    )
    p.set_defaults(run=run)
    p.add_argument("--data", metavar="CACHE", type=Path, required=True, help="cache folder")
    p.add_argument("--out", metavar="RUN_DIR", type=Path, required=True, help="run folder")
    p.add_argument("--model", help="unet (default), deeplabv3 or fpn")
    p.add_argument("--loss", help="a registered loss (default calf)")
    p.add_argument(
        "--loss-option",
        type=loss_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the loss (repeatable), e.g. --loss-option grid=2",
    )
    add_preset(
        p,
        PRESET_CHOICES,
        default=None,
        help="project: the project protocol (patient-level split, validation, best "
        "checkpoint) with paper-size smp models, 20 epochs, batch 32, lr 1e-5, seed 12345; "
        "paper: the authors' protocol end to end (their models, contour areas, paper "
        "numerics, per-rank CALF statistics, slice-level split, no validation, last epoch, "
        "SyncBatchNorm under DDP); cpu: the project protocol with tiny models trained to "
        "convergence on a CPU (at most 20 epochs of batch 16, lr 3e-3, warmup and cosine, "
        "early stopping); tiny: tiny models, 2 epochs, batch 8, lr 1e-3 (smoke tests). "
        "Default: cpu on the CPU, project on CUDA",
    )
    p.add_argument("--encoder", help="an smp encoder replacing the preset's")
    p.add_argument("--config", type=Path, metavar="JSON", help=f"start from this {files.CONFIG}")
    t = p.add_argument_group("optimisation (defaults: the preset's)")
    t.add_argument("--epochs", type=positive_int)
    t.add_argument("--batch-size", type=positive_int, help="images per step and per process")
    t.add_argument("--lr", type=positive_float, help="Adam's learning rate")
    t.add_argument("--weight-decay", type=float)
    t.add_argument(
        "--schedule",
        choices=("none", "cosine"),
        help="learning rate after the warmup: none (constant, every preset) or cosine (per "
        "step, down to 0 at the end of the planned epochs)",
    )
    t.add_argument(
        "--warmup-steps",
        type=non_negative_int,
        metavar="N",
        help="ramp the learning rate linearly up over the first N steps (default 0)",
    )
    t.add_argument(
        "--patience",
        type=patience_value,
        default=_UNSET,
        metavar="N",
        help="stop after N validations without the validation case Dice rising by more than "
        "--min-delta; none: never (defaults: project and tiny 5, paper none)",
    )
    t.add_argument(
        "--min-delta",
        type=min_delta_value,
        metavar="X",
        help="the rise of the validation case Dice that counts as an improvement (default 0.001)",
    )
    t.add_argument(
        "--min-epochs",
        type=non_negative_int,
        metavar="N",
        help="early stopping never ends the run before N epochs (defaults: cpu 15, others 0)",
    )
    t.add_argument("--grad-clip", type=positive_float, metavar="NORM")
    t.add_argument(
        "--amp",
        nargs="?",
        const="bf16",
        choices=("none", "bf16", "fp16"),
        help="mixed precision on CUDA (--amp alone: bf16)",
    )
    add_seed(t, default=None, help="seed of the run (default: the preset's)")
    t.add_argument("--max-steps", type=positive_int, help="steps per epoch at most (smoke runs)")
    d = p.add_argument_group("data")
    d.add_argument(
        "--filter",
        action="append",
        default=None,
        metavar="SPEC",
        help="training-split filter (repeatable): ratio=0.25, drop-empty, min-area=20, "
        "every-kth-empty=4",
    )
    d.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random flips and quarter turns of the training slices (default: the "
        "preset's; cpu: on)",
    )
    d.add_argument("--no-val", action="store_true", help="no validation: keep the last epoch")
    d.add_argument("--workers", type=non_negative_int, help="batch-reading processes")
    r = p.add_argument_group("run")
    r.add_argument("--val-every", type=positive_int, metavar="N")
    r.add_argument("--checkpoint-every", type=non_negative_int, metavar="N")
    add_device(r, default=None)  # None: auto, and the preset follows the device
    r.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    r.add_argument(
        "--overwrite", action="store_true", help="start again over a run already in RUN_DIR"
    )
    add_no_progress(r)
    r.add_argument(
        "--sync-bn", action="store_true", default=None, help="DDP on CUDA: SyncBatchNorm"
    )
    r.add_argument(
        "--freeze-bn",
        action="store_true",
        default=None,
        help="batch norm in eval mode (running statistics) while training",
    )


_OVERRIDES = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "schedule": "schedule",
    "warmup_steps": "warmup_steps",
    "min_delta": "min_delta",
    "min_epochs": "min_epochs",
    "grad_clip": "grad_clip",
    "amp": "amp",
    "seed": "seed",
    "max_steps": "max_steps",
    "filter": "filters",
    "augment": "augment",
    "workers": "workers",
    "val_every": "val_every",
    "checkpoint_every": "checkpoint_every",
    "device": "device",
    "encoder": "encoder",
    "sync_bn": "sync_bn",
    "freeze_bn": "freeze_bn",
}


def make_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """The TrainConfig of the command line (ValueError on a bad option), starting from
    ``base``, the options of ``--config`` (:func:`read_config`), when given."""
    from calfseg.train import TrainConfig

    overrides: dict[str, Any] = {
        name: getattr(args, arg)
        for arg, name in _OVERRIDES.items()
        if getattr(args, arg) is not None
    }
    for name in ("model", "loss"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.loss_option:
        overrides["loss_options"] = dict(args.loss_option)
    if args.patience is not _UNSET:  # given: a number, or None for "none"
        overrides["patience"] = args.patience
    if args.no_val:
        overrides["val_split"] = None
        if args.patience is _UNSET:  # nothing to stop on: train the whole budget
            overrides["patience"] = None
    if base is not None:
        return TrainConfig.from_dict({**base, "cache": str(args.data), **overrides})
    preset = args.preset or default_preset(args.device)
    config: Any = TrainConfig.from_preset(preset, args.data, **overrides)
    return config


def default_preset(device: str | None) -> str:
    """The preset when ``--preset`` is not given: ``cpu`` on the CPU, ``project`` on CUDA
    (``auto`` means CUDA when torch finds a GPU)."""
    import torch

    where = device or "auto"
    if where == "auto":
        return "project" if torch.cuda.is_available() else "cpu"
    return "project" if where.startswith("cuda") else "cpu"


def preset_line(args: argparse.Namespace, config: Any) -> str:
    """One line: the preset used, why, and the number of training steps planned."""
    from calfseg.data.splits.assign import LeakageWarning
    from calfseg.train.build import open_split

    if args.config is not None:
        chosen = f"the options of {args.config}"
    elif args.preset is not None:
        chosen = f"preset {args.preset}"
    else:
        device = args.device or "auto"
        chosen = (
            f"preset {default_preset(args.device)} (chosen for device {device}; "
            "pass --preset project|paper|cpu|tiny to choose)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LeakageWarning)  # the run itself warns
            n_train = len(open_split(config, "train", train=True))
    except ValueError:  # the run itself reports it, with its full message
        return f"{PROG}: {chosen}"
    steps = -(-n_train // config.batch_size)
    if config.max_steps is not None:
        steps = min(steps, config.max_steps)
    stopping = ""
    if config.patience is not None:
        stopping = (
            f", at most: early stopping after {config.patience} validations without the "
            f"validation case Dice rising by more than {config.min_delta:g}"
        )
        if config.min_epochs:
            stopping += f", not before epoch {min(config.min_epochs, config.epochs)}"
    return (
        f"{PROG}: {chosen}; {config.model} ({config.preset} size), {config.epochs} epochs x "
        f"{steps} steps of {config.batch_size} = {config.epochs * steps} steps (one process)"
        f"{stopping}; a time estimate follows the first epoch"
    )


def estimate_line(row: dict[str, Any], epochs: int) -> str:
    """After the first epoch: seconds per step and the estimated time of every epoch."""
    steps = max(int(row.get("steps") or 1), 1)
    per_step = float(row["seconds"]) / steps
    total = float(row["seconds"]) * epochs
    return (
        f"{PROG}: {per_step:.3f} s per step in epoch {row['epoch']}; about "
        f"{_duration(total)} for {epochs} epochs (validation included)"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_row(row: dict[str, Any], epochs: int) -> str:
    """One line per epoch: losses, the validation case Dice (which picks best.pt and stops
    the run) and per-image Dice, learning rate, time, the CALF branches used."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"train_loss {row['train_loss']:.4f}"]
    if row.get("val_loss") is not None:
        parts.append(f"val_loss {row['val_loss']:.4f}")
    if row.get("val_case_dice") is not None:
        parts.append(f"val case Dice {row['val_case_dice']:.4f}")
    if row.get("val_dice") is not None:
        parts.append(f"(per image {row['val_dice']:.4f})")
    if row.get("lr") is not None:
        parts.append(f"lr {row['lr']:.2e}")
    parts.append(f"{row['seconds']:.1f} s")
    shares = {k[7:]: v for k, v in row.items() if k.startswith("branch/") and v}
    if shares:
        parts.append("branches " + " ".join(f"{b} {v:.0%}" for b, v in shares.items()))
    return "  ".join(parts)


def stop_line(outcome: dict[str, Any]) -> str:
    """How the run ended: the best epoch of those run, why it stopped, converged or not."""
    planned = outcome["epochs"]
    ran = outcome.get("epochs_run", planned)
    best = f"best epoch {outcome['best_epoch']} of {ran} run"
    if outcome.get("best_val_case_dice") is not None:
        best += f" (val case Dice {outcome['best_val_case_dice']:.4f})"
    if outcome.get("stop_reason") == "patience":
        why = f"stopped early by patience after {ran} of {planned} planned epochs"
    else:
        why = f"the budget of {planned} epochs ran out"
    state = "converged" if outcome.get("converged") else "not converged"
    return f"{best}; {why}, {state}"


def read_config(path: Path) -> dict[str, Any]:
    """The options of ``--config JSON`` (a config.json of a run). A missing or malformed
    file is an input error (exit 1); its options are checked with the command line's."""
    from calfseg.train import TrainConfig

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"--config {path}: no such file") from None
    try:
        values = json.loads(text)
        return dict(TrainConfig.from_dict(values).to_dict())
    except (ValueError, TypeError, AttributeError) as err:
        raise InputError(f"--config {path}: not a calf train {files.CONFIG} ({err})") from err


def run(args: argparse.Namespace) -> int:
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in RUN_DIR, --overwrite replaces it: give one")
    check_input(args.data, "--data", "folder")  # raises: a missing cache is exit 1
    base = None if args.config is None else read_config(args.config)
    config = make_config(args, base)  # a bad option value: the library's OptionError, exit 2
    existing = [f for f in (files.LAST_CHECKPOINT, files.DONE) if (args.out / f).exists()]
    if existing and not (args.resume or args.overwrite):
        raise OutputPathError(
            f"{args.out} already holds a run ({', '.join(existing)}): pass --resume to "
            "continue it or --overwrite to start again"
        )
    print(preset_line(args, config), file=sys.stderr, flush=True)

    def on_epoch(row: dict[str, Any]) -> None:
        print(format_row(row, config.epochs), flush=True)
        if row["epoch"] == 1 and config.epochs > 1:
            print(estimate_line(row, config.epochs), file=sys.stderr, flush=True)

    from calfseg.train import train_run

    # What the run raises (a damaged cache, a bad RUN_DIR/last.pt, a split the cache lacks)
    # reaches calfseg.cli.run_guarded, whose table gives its exit code.
    outcome = train_run(
        config, args.out, resume=args.resume, progress=not args.no_progress, on_epoch=on_epoch
    )
    results = outcome.get("results")
    if results is None:  # not rank 0
        return EXIT_OK
    from calfseg.cli.evaluate import format_results

    print(
        f"{stop_line(outcome)}; test split ({results.get('n_images')} slices), "
        f"{files.BEST_CHECKPOINT}:"
    )
    print(format_results(results))
    print(f"run folder: {args.out}", file=sys.stderr)
    return EXIT_OK
