"""``calf predict MODEL INPUT OUT``: the mask of a NIfTI volume or a PNG/TIFF image, with a
checkpoint, a run folder or an export (``calf export``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.cli.common import EXIT_OK, check_input, require_output_file
from calfseg.cli.loud_warnings import loud_warnings
from calfseg.cli.options import add_device

PROG = "calf predict"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "predict",
        help="predict the mask of a NIfTI volume or a PNG/TIFF image with a trained model",
        description=(
            "NIfTI in: a NIfTI uint8 mask out, with the input's affine, predicted per axial "
            "slice with the training cache's normalisation and size. PNG/TIFF in: a PNG mask "
            "(0/255) out. See docs/train.md."
        ),
    )
    p.set_defaults(run=run)
    p.add_argument(
        "checkpoint",
        metavar="MODEL",
        type=Path,
        help=f"a checkpoint ({files.BEST_CHECKPOINT}, ...), a run folder (its "
        f"{files.BEST_CHECKPOINT}) or an export folder",
    )
    p.add_argument("input", metavar="INPUT", type=Path, help=".nii, .nii.gz, .png, .tif(f)")
    p.add_argument("output", metavar="OUT", type=Path, help="the mask file to write")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from calfseg.train.predict import NoPreprocessingWarning, predict_file

    # What the prediction raises (a corrupt or unsafe model file, an unreadable INPUT)
    # reaches calfseg.cli.run_guarded, whose table gives its exit code.
    check_input(args.checkpoint, "MODEL")
    check_input(args.input, "INPUT", "file")
    require_output_file(
        args.output, "OUT", inputs=[(args.input, "INPUT"), (args.checkpoint, "MODEL")]
    )
    with loud_warnings(PROG, NoPreprocessingWarning):
        out = predict_file(args.checkpoint, args.input, args.output, device=args.device)
    print(f"wrote {out}")
    return EXIT_OK
