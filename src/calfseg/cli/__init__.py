"""The ``calf`` command. Thin: it parses arguments, calls the library and formats text.

Each subcommand is a module of this package with ``add_parser(commands)``, which declares
its options, and ``run(args)``, which executes it and returns the exit code:

- 0: success;
- 1: failure: a bad or unreadable file, files skipped, no mask file found, a missing
  optional package;
- 2: usage error: bad or incompatible options, a PATH that does not exist.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from calfseg import __version__
from calfseg.cli import analyze, benchmark, evaluate, predict, prepare, report, train
from calfseg.cli.common import EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``calf`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    code: int = args.run(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calf",
        description="CALF, the conditionally adaptive loss: analyse masks, train, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    analyze.add_parser(commands)
    prepare.add_parser(commands)
    train.add_parser(commands)
    evaluate.add_parser(commands)
    predict.add_parser(commands)
    benchmark.add_parser(commands)
    report.add_parser(commands)
    return parser
