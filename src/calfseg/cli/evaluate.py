"""``calf evaluate MODEL --data CACHE --split test``: metrics of a trained model (a checkpoint,
a run folder or an export), refused when the training cache changed since training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.atomic import atomic_write_text
from calfseg.cli.common import (
    EXIT_OK,
    check_input,
    positive_int,
    require_output_file,
    require_output_folder,
)
from calfseg.cli.loud_warnings import loud_warnings
from calfseg.cli.options import add_device, add_json, add_no_progress

PROG = "calf evaluate"
TABLE_METRICS = (
    "dice", "iou", "sensitivity", "specificity", "precision", "accuracy", "mae", "hd95_mm",
    "assd_mm",
)  # fmt: skip
TABLE_REDUCTIONS = ("per_image", "pooled", "paper_batch_pooled", "per_case")


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "evaluate",
        help="evaluate a trained model on a split of a cache",
        description=(
            "Run a checkpoint over a split of a cache and print the metrics (rows) under "
            "each reduction (columns). See docs/train.md and docs/metrics.md."
        ),
    )
    p.set_defaults(run=run)
    p.add_argument(
        "checkpoint",
        metavar="MODEL",
        type=Path,
        help=f"a checkpoint ({files.BEST_CHECKPOINT}, {files.LAST_CHECKPOINT}, ...), a run folder "
        f"(its {files.BEST_CHECKPOINT}) or an export",
    )
    p.add_argument("--data", metavar="CACHE", type=Path, help="cache (default: the training one)")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    add_json(p, "the results (split, checkpoint, cache, metrics)")
    p.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="write eval_, per_image_, per_case_ and qualitative_ files",
    )
    p.add_argument("--batch-size", type=positive_int)
    add_device(p)
    p.add_argument("--no-surface", action="store_true", help="skip HD95 and ASSD")
    add_no_progress(p)
    p.add_argument(
        "--allow-changed-cache",
        action="store_true",
        help="evaluate even if the training cache was prepared again since training (a "
        "warning on stderr; recorded in eval_<split>.json)",
    )


def format_results(results: dict[str, Any]) -> str:
    """The metrics table: one row per metric, one column per reduction ('-': not computed)."""
    width = max(len(m) for m in TABLE_METRICS)
    head = f"{'metric':<{width}}  " + "  ".join(f"{r:>15}" for r in TABLE_REDUCTIONS)
    lines = [head]
    for metric in TABLE_METRICS:
        cells = []
        for reduction in TABLE_REDUCTIONS:
            value = results.get(f"{metric}/{reduction}")
            cells.append(f"{value:>15.4f}" if isinstance(value, int | float) else f"{'-':>15}")
        if any(c.strip() != "-" for c in cells):
            lines.append(f"{metric:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from calfseg.train import evaluate_checkpoint
    from calfseg.train.cache_record import CacheChangedWarning

    # Checked before the work; what the evaluation raises (a corrupt checkpoint, a damaged
    # or changed cache) reaches calfseg.cli.run_guarded, whose table gives its exit code.
    check_input(args.checkpoint, "MODEL")
    if args.data is not None:
        check_input(args.data, "--data", "folder")
    if args.json is not None:
        inputs = [(args.checkpoint, "MODEL")] + ([(args.data, "--data")] if args.data else [])
        require_output_file(args.json, "--json", inputs=inputs)
    if args.out is not None:
        require_output_folder(args.out, "--out")
    with loud_warnings(PROG, CacheChangedWarning):
        report = evaluate_checkpoint(
            args.checkpoint,
            args.data,
            args.split,
            batch_size=args.batch_size,
            device=args.device,
            surface=not args.no_surface,
            out_dir=args.out,
            progress=not args.no_progress,
            allow_changed_cache=args.allow_changed_cache,
        )
    results = report["results"]
    print(f"{args.checkpoint} on split {args.split!r} ({results.get('n_images')} slices)")
    print(format_results(results))
    if args.json is not None:
        payload = {k: report[k] for k in ("split", "checkpoint", "cache", "results")}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")  # makes parents
    return EXIT_OK
