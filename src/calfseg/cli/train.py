"""``calf train --data CACHE --model M --loss L --out RUN_DIR``: one training run, then the
evaluation of its best checkpoint on the test split (docs/train.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from calfseg.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    error,
    non_negative_int,
    positive_int,
)

PROG = "calf train"
_RUN_FILES = ("last.pt", "done.json")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def loss_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is read as JSON when it parses (numbers, true, lists), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        help="train a model with a loss on a slice cache, then evaluate it on the test split",
        description=(
            "Train one model with one loss on a cache written by calf prepare, validating "
            "every epoch; keep best.pt (by validation Dice) and last.pt; evaluate best.pt on "
            "the test split. Under torchrun, trains with DDP. See docs/train.md."
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
    p.add_argument(
        "--preset",
        choices=("paper", "tiny"),
        default="paper",
        help="paper (default: the paper's protocol and model sizes: 20 epochs, batch 32, "
        "lr 1e-5) or tiny (tiny models, 2 epochs, batch 8, lr 1e-3)",
    )
    p.add_argument("--encoder", help="an smp encoder replacing the preset's")
    p.add_argument("--config", type=Path, metavar="JSON", help="start from this config.json")
    t = p.add_argument_group("optimisation (defaults: the preset's)")
    t.add_argument("--epochs", type=positive_int)
    t.add_argument("--batch-size", type=positive_int, help="images per step and per process")
    t.add_argument("--lr", type=positive_float, help="Adam's learning rate")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--schedule", choices=("none", "cosine"))
    t.add_argument("--grad-clip", type=positive_float, metavar="NORM")
    t.add_argument(
        "--amp",
        nargs="?",
        const="bf16",
        choices=("none", "bf16", "fp16"),
        help="mixed precision on CUDA (--amp alone: bf16)",
    )
    t.add_argument("--seed", type=int)
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
    d.add_argument("--augment", action="store_true", default=None, help="flips/quarter turns")
    d.add_argument("--no-val", action="store_true", help="no validation: keep the last epoch")
    d.add_argument("--workers", type=non_negative_int, help="batch-reading processes")
    r = p.add_argument_group("run")
    r.add_argument("--val-every", type=positive_int, metavar="N")
    r.add_argument("--checkpoint-every", type=non_negative_int, metavar="N")
    r.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    r.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    r.add_argument(
        "--overwrite", action="store_true", help="start again over a run already in RUN_DIR"
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
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


def make_config(args: argparse.Namespace) -> Any:
    """The TrainConfig of the command line (ValueError on a bad option)."""
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
    if args.no_val:
        overrides["val_split"] = None
    if args.config is not None:
        base = TrainConfig.from_json(args.config).to_dict()
        return TrainConfig.from_dict({**base, "cache": str(args.data), **overrides})
    preset = TrainConfig.paper if args.preset == "paper" else TrainConfig.tiny
    config: Any = preset(args.data, **overrides)
    return config


def format_row(row: dict[str, Any], epochs: int) -> str:
    """One line per epoch: losses, validation Dice, time, the CALF branches used."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"train_loss {row['train_loss']:.4f}"]
    if row.get("val_loss") is not None:
        parts.append(f"val_loss {row['val_loss']:.4f}")
    if row.get("val_dice") is not None:
        parts.append(f"val_dice {row['val_dice']:.4f}")
    parts.append(f"{row['seconds']:.1f} s")
    shares = {k[7:]: v for k, v in row.items() if k.startswith("branch/") and v}
    if shares:
        parts.append("branches " + " ".join(f"{b} {v:.0%}" for b, v in shares.items()))
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    from calfseg.data import CacheError
    from calfseg.extras import MissingExtraError
    from calfseg.train import CheckpointError, train_run
    from calfseg.train.build import RunSetupError

    try:
        config = make_config(args)
    except (ValueError, OSError) as err:
        return error(PROG, str(err), EXIT_USAGE)
    existing = [f for f in _RUN_FILES if (args.out / f).exists()]
    if existing and not (args.resume or args.overwrite):
        return error(
            PROG,
            f"{args.out} already holds a run ({', '.join(existing)}): pass --resume to "
            "continue it or --overwrite to start again",
            EXIT_USAGE,
        )
    try:
        outcome = train_run(
            config,
            args.out,
            resume=args.resume,
            progress=not args.no_progress,
            on_epoch=lambda row: print(format_row(row, config.epochs), flush=True),
        )
    except (RunSetupError, CheckpointError, CacheError) as err:
        return error(PROG, str(err), EXIT_USAGE)
    except (ValueError, MissingExtraError) as err:
        return error(PROG, str(err), EXIT_FAILURE)
    results = outcome.get("results")
    if results is None:  # not rank 0
        return EXIT_OK
    from calfseg.cli.evaluate import format_results

    print(
        f"best epoch {outcome['best_epoch']} of {outcome['epochs']}; test split "
        f"({results.get('n_images')} slices), best.pt:"
    )
    print(format_results(results))
    print(f"run folder: {args.out}", file=sys.stderr)
    return EXIT_OK
