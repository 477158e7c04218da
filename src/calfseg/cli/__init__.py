"""The ``calf`` command. Thin: it parses arguments, calls the library and formats text.

Each subcommand is a module of this package with ``add_parser(commands)``, which declares
its options (the shared ones through :mod:`calfseg.cli.options`), and ``run(args)``, which
executes it and returns the exit code. What a subcommand raises is turned into one line on
stderr and an exit code by the one table of :mod:`calfseg.cli.errors` (0 success, 1 a file
or the data cannot be used, 2 a usage error, 130 interrupted), so that no traceback
reaches a user; docs/cli.md states the contract.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import calfseg.run_files as files
from calfseg import __version__
from calfseg.cli import (
    analyze,
    benchmark,
    evaluate,
    export,
    nnunet,
    predict,
    prepare,
    report,
    study,
    train,
)
from calfseg.cli.errors import DEBUG_VARIABLE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, fail
from calfseg.cli.options import CalfArgumentParser
from calfseg.progress import stderr_is_terminal

__all__ = ["COMMANDS", "DEBUG_VARIABLE", "build_parser", "main", "run_guarded"]
# The subcommands, in the order of ``calf --help``; each module's name is its command's.
COMMANDS = (analyze, prepare, train, evaluate, predict, export, benchmark, report, study, nnunet)
# What an interrupted subcommand leaves behind and how to go on, for the line printed on Ctrl-C.
_RERUN = "rerun the same command to resume"
ON_INTERRUPT: dict[str, str] = {
    "analyze": "nothing was written (the report is written at the end); rerun the same command",
    "prepare": f"finished cases are kept in the cache's parts; {_RERUN}",
    "train": f"the last finished epoch is kept in RUN_DIR/{files.LAST_CHECKPOINT}; rerun the "
    "same command with --resume to resume",
    "evaluate": "nothing was written; rerun the same command",
    "predict": "nothing was written; rerun the same command",
    "export": "nothing was written; rerun the same command",
    "benchmark": f"finished runs are kept, the current one at its last finished epoch; {_RERUN}",
    "report": "nothing is lost (the run folders are only read); rerun the same command",
    "study": f"finished runs are kept, the current one at its last finished epoch; {_RERUN}",
}


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
    return run_guarded(args)


def run_guarded(args: argparse.Namespace) -> int:
    """``args.run(args)``, with every exception it lets through turned into one line on
    stderr and an exit code (the module docstring lists them)."""
    name = getattr(args, "command", None) or "?"
    prog = f"calf {name}"
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # a closed pipe shows up here rather than at interpreter exit
        return code
    except KeyboardInterrupt:
        after = ON_INTERRUPT.get(name, f"what was finished is kept; {_RERUN}")
        fresh_line = "\n" if stderr_is_terminal() else ""  # after the echoed ^C
        print(f"{fresh_line}{prog}: interrupted; {after}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as err:  # the last line of defence of the CLI: the exit-code table
        return fail(prog, err)


def _closed_pipe() -> int:
    """The reader of stdout went away (``calf ... | head``): stop quietly. As the Python
    docs advise, stdout is pointed at devnull so that the final flush at exit does not
    raise again. Exit 1: the output is cut off (with ``set -o pipefail`` the pipeline
    reports it; without, the shell reports ``head``'s status)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. a captured stdout)
        pass
    return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    """The ``calf`` parser with every subcommand; each subcommand's namespace holds its own
    parser as ``parser``."""
    parser = CalfArgumentParser(
        prog="calf",
        description="CALF, the conditionally adaptive loss: analyse masks, train, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for module in COMMANDS:
        module.add_parser(commands)
    for sub in commands.choices.values():
        sub.set_defaults(parser=sub)
    return parser
