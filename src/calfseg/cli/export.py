"""``calf export RUN_OR_CHECKPOINT OUT``: a trained model as safetensors + JSON, to share."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.cli.common import EXIT_OK, check_input

PROG = "calf export"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "export",
        help="write a trained model as safetensors weights + a JSON record, to share",
        description=(
            "Write the folder OUT holding model.safetensors (the network's weights; no "
            "pickle, so loading it runs no code) and model.json (architecture, input size "
            "and channels, the cache's preprocessing, digest and fingerprint, the loss, the "
            "best epoch and validation score, the calf-seg version). calf predict and calf "
            "evaluate accept OUT. See docs/train.md and docs/security.md."
        ),
    )
    p.set_defaults(run=run)
    p.add_argument(
        "source",
        metavar="RUN_OR_CHECKPOINT",
        type=Path,
        help=f"a run folder (its {files.BEST_CHECKPOINT} is exported) or a checkpoint .pt file",
    )
    p.add_argument("out", metavar="OUT", type=Path, help="the folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an export already in OUT")


def run(args: argparse.Namespace) -> int:
    from calfseg.train.export import export_model, read_record

    # What the export raises (a corrupt or unsafe checkpoint, an export already in OUT)
    # reaches calfseg.cli.run_guarded, whose table gives its exit code.
    check_input(args.source, "RUN_OR_CHECKPOINT")
    weights, record_path = export_model(args.source, args.out, overwrite=args.overwrite)
    record = read_record(record_path)
    arch, training = record["architecture"], record["training"]
    score = training.get("best_score")
    shown = "no validation score" if score is None else f"validation case Dice {score:.4f}"
    print(f"wrote {weights} and {record_path}")
    print(
        f"  {arch['model']} ({arch['preset']}, encoder {arch['encoder']}), "
        f"{arch['in_channels']}x{arch['size'][0]}x{arch['size'][1]} input; epoch "
        f"{training.get('epoch')}, best epoch {training.get('best_epoch')}, {shown}"
    )
    return EXIT_OK
