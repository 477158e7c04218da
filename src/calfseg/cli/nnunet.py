"""``calf nnunet register|unregister|train|export``: CALF inside nnU-Net (docs/nnunet.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from calfseg.cli.common import EXIT_OK, check_input

PROG = "calf nnunet"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "nnunet",
        help="CALF inside nnU-Net: register its trainers, train, export a cache",
        description=(
            "Use CALF as the loss of nnU-Net (nnunetv2 2.8, the nnunet extra): the trainers "
            "nnUNetTrainerCALF and nnUNetTrainerCALF_1epoch. See docs/nnunet.md."
        ),
    )
    p.set_defaults(run=_help(p))
    sub = p.add_subparsers(title="actions", metavar="ACTION", dest="action")

    reg = sub.add_parser(
        "register",
        help="make nnUNetv2_train find the CALF trainers (-tr nnUNetTrainerCALF)",
        description="Write one small module into nnunetv2's trainer folder that imports "
        "calf-seg's trainers. Undo it with calf nnunet unregister.",
    )
    reg.set_defaults(run=run_register)
    unreg = sub.add_parser(
        "unregister",
        help="remove the module calf nnunet register wrote",
        description="Remove the trainer module from nnunetv2's folder (only calf-seg's).",
    )
    unreg.set_defaults(run=run_unregister)

    tr = sub.add_parser(
        "train",
        help="train with a CALF trainer through nnU-Net's API, without registering",
        description="Run nnU-Net's training (as nnUNetv2_train) with a CALF trainer, found "
        "through nnUNet_extTrainer: nothing is written into nnunetv2's folder. Needs "
        "nnUNet_preprocessed and nnUNet_results set, and the dataset planned and "
        "preprocessed (nnUNetv2_plan_and_preprocess).",
    )
    tr.set_defaults(run=run_train)
    tr.add_argument("dataset", metavar="DATASET", help="dataset id or name (DatasetXXX_Name)")
    tr.add_argument("configuration", metavar="CONFIG", help="2d, 3d_fullres, 3d_lowres, ...")
    tr.add_argument("fold", metavar="FOLD", help="0..4, or all")
    tr.add_argument(
        "-tr",
        "--trainer",
        dest="trainer",
        default="nnUNetTrainerCALF",
        help="nnUNetTrainerCALF (default) or nnUNetTrainerCALF_1epoch",
    )
    tr.add_argument("-p", "--plans", dest="plans", default="nnUNetPlans", help="plans identifier")
    tr.add_argument(
        "--device",
        default="auto",
        help="auto (default: CUDA when torch finds a GPU, else the CPU, as calf train), cuda, "
        "cpu or mps, as nnUNetv2_train -device",
    )
    tr.add_argument(
        "--c",
        "--continue",
        dest="continue_training",
        action="store_true",
        help="continue from the latest checkpoint",
    )
    tr.add_argument(
        "--val",
        dest="validation_only",
        action="store_true",
        help="only run the final validation of a finished training",
    )
    tr.add_argument("--npz", action="store_true", help="also save the validation probabilities")

    ex = sub.add_parser(
        "export",
        help="write a calf-seg cache as an nnU-Net raw dataset (2D PNG)",
        description="Write the cache's slices as Dataset<ID>_<NAME> under OUT (default: "
        "$nnUNet_raw): imagesTr/labelsTr (train and val rows), imagesTs/labelsTs (test rows), "
        "dataset.json, and splits_final.json with the cache's split as fold 0.",
    )
    ex.set_defaults(run=run_export)
    ex.add_argument("cache", metavar="CACHE", type=Path, help="a cache written by calf prepare")
    ex.add_argument("--id", dest="dataset_id", type=int, required=True, help="1..999")
    ex.add_argument("--name", required=True, help="dataset name (letters, digits, _ and -)")
    ex.add_argument("--out", type=Path, help="the nnU-Net raw folder (default: $nnUNet_raw)")
    ex.add_argument("--overwrite", action="store_true", help="replace an earlier export")


def _help(parser: argparse.ArgumentParser) -> Any:
    def run(args: argparse.Namespace) -> int:
        from calfseg.cli.errors import EXIT_USAGE

        parser.print_help()
        return EXIT_USAGE

    return run


def run_register(args: argparse.Namespace) -> int:
    from calfseg.nnunet.registration import TRAINER_NAMES, register

    path = register()
    print(f"wrote {path}")
    print(
        f"  nnUNetv2_train DATASET CONFIG FOLD -tr {TRAINER_NAMES[0]} now finds "
        f"{' and '.join(TRAINER_NAMES)}; undo with: calf nnunet unregister"
    )
    return EXIT_OK


def run_unregister(args: argparse.Namespace) -> int:
    from calfseg.nnunet.registration import module_path, unregister

    removed = unregister()
    if removed is None:
        print(f"nothing to remove: {module_path()} does not exist")
    else:
        print(f"removed {removed}")
    return EXIT_OK


def run_train(args: argparse.Namespace) -> int:
    from calfseg.nnunet.training import resolve_device, train

    if args.device == "auto":
        print(
            f"calf nnunet train: device {resolve_device('auto')} (--device auto)", file=sys.stderr
        )
    train(
        args.dataset,
        args.configuration,
        args.fold,
        trainer=args.trainer,
        plans=args.plans,
        device=args.device,
        continue_training=args.continue_training,
        validation_only=args.validation_only,
        save_probabilities=args.npz,
    )
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    import os

    from calfseg.cli.errors import UsageError
    from calfseg.nnunet.export import export_cache

    check_input(args.cache, "CACHE", "folder")
    out = args.out or (Path(os.environ["nnUNet_raw"]) if os.environ.get("nnUNet_raw") else None)
    if out is None:
        raise UsageError("give --out, or set the environment variable nnUNet_raw")
    summary = export_cache(args.cache, out, args.dataset_id, args.name, overwrite=args.overwrite)
    print(f"wrote {summary.folder}")
    print(
        f"  {summary.train} train + {summary.val} val rows in imagesTr, {summary.test} test "
        f"rows in imagesTs; channels {', '.join(summary.channels)}"
        + ("; float16 images rounded to uint8 PNG" if summary.rounded else "")
    )
    if summary.val:
        print(
            "  to train on the cache's split: after nnUNetv2_plan_and_preprocess, copy "
            f"{summary.folder / 'splits_final.json'} into "
            f"$nnUNet_preprocessed/{summary.folder.name}/ and train fold 0"
        )
    return EXIT_OK
