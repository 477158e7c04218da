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
from calfseg.cli.common import EXIT_OK, UsageError, check_input, loss_option
from calfseg.cli.errors import InputError, OutputPathError
from calfseg.cli.options import add_no_progress, add_preset
from calfseg.options import add_options, given_options

PROG = "calf train"
PRESET_CHOICES = ("project", "paper", "cpu", "tiny")


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
    p.defer(_add_options)  # the options live in TrainConfig, which imports torch


def _add_options(p: argparse.ArgumentParser) -> None:
    from calfseg.train.config import DATA, RUN, TrainConfig

    p.add_argument("--data", metavar="CACHE", type=Path, required=True, help="cache folder")
    p.add_argument("--out", metavar="RUN_DIR", type=Path, required=True, help="run folder")
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
    p.add_argument("--config", type=Path, metavar="JSON", help=f"start from this {files.CONFIG}")
    # Declared once, in TrainConfig; not given: the preset's (or --config's) value.
    add_options(p, TrainConfig, unset=True)
    groups = {g.title: g for g in p._action_groups}
    groups[DATA].add_argument(
        "--no-val", action="store_true", help="no validation: keep the last epoch"
    )
    run_ = groups[RUN]
    run_.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    run_.add_argument(
        "--overwrite", action="store_true", help="start again over a run already in RUN_DIR"
    )
    add_no_progress(run_)


def make_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """The TrainConfig of the command line (OptionError on a bad option), starting from
    ``base``, the options of ``--config`` (:func:`read_config`), when given: the options
    given on the command line replace the preset's (or the file's)."""
    from calfseg.train import TrainConfig

    overrides = given_options(TrainConfig, args)
    if args.loss_option:
        overrides["loss_options"] = dict(args.loss_option)
    if args.no_val:
        overrides["val_split"] = None
        overrides.setdefault("patience", None)  # nothing to stop on: the whole budget
    if base is not None:
        return TrainConfig.from_dict({**base, "cache": str(args.data), **overrides})
    preset = args.preset or default_preset(getattr(args, "device", None))
    return TrainConfig.from_preset(preset, args.data, **overrides)


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
        device = getattr(args, "device", None) or "auto"
        chosen = (
            f"preset {default_preset(device)} (chosen for device {device}; "
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
