"""``calf predict MODEL INPUT OUT``: the mask of a NIfTI volume or a PNG/TIFF image, with a
checkpoint, a run folder or an export (``calf export``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from calfseg.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, error
from calfseg.cli.loud_warnings import loud_warnings

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
        help="a checkpoint (best.pt, ...), a run folder (its best.pt) or an export folder",
    )
    p.add_argument("input", metavar="INPUT", type=Path, help=".nii, .nii.gz, .png, .tif(f)")
    p.add_argument("output", metavar="OUT", type=Path, help="the mask file to write")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")


def run(args: argparse.Namespace) -> int:
    from calfseg.extras import MissingExtraError
    from calfseg.train import CheckpointError
    from calfseg.train.checkpoint import CheckpointFileError
    from calfseg.train.predict import NoPreprocessingWarning, predict_file

    if not args.input.is_file():
        return error(PROG, f"no such file: {args.input}", EXIT_USAGE)
    try:
        with loud_warnings(PROG, NoPreprocessingWarning):
            out = predict_file(args.checkpoint, args.input, args.output, device=args.device)
    except CheckpointFileError as err:  # a bad or unsafe model file
        return error(PROG, str(err), EXIT_FAILURE)
    except CheckpointError as err:  # no such model
        return error(PROG, str(err), EXIT_USAGE)
    except (ValueError, OSError, MissingExtraError) as err:
        return error(PROG, str(err), EXIT_FAILURE)
    print(f"wrote {out}")
    return EXIT_OK
