"""The ``calf`` command. Thin: it parses arguments, calls the library and formats text.

Each subcommand is a module of this package with ``add_parser(commands)``, which declares
its options, and ``run(args)``, which executes it and returns the exit code:

- 0: success;
- 1: failure: a bad or unreadable file, files skipped, no mask file found, a missing
  optional package, an output that cannot be written, degenerate data (e.g. no lesion),
  an unexpected error (a bug: one line, the traceback with ``CALF_DEBUG=1``), or output
  cut off because the reader of a pipe went away (``calf ... | head``);
- 2: usage error: bad or incompatible options, a PATH that does not exist;
- 130: interrupted (Ctrl-C): one line saying what was kept and that the same command resumes.

:func:`main` turns what a subcommand raises into these codes, so that no traceback reaches
a user (docs/analyze.md, "Exit codes of every command").
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from calfseg import __version__
from calfseg.cli import analyze, benchmark, evaluate, export, predict, prepare, report, train
from calfseg.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    describe_os_error,
    error,
)
from calfseg.progress import stderr_is_terminal

DEBUG_VARIABLE = "CALF_DEBUG"
# What an interrupted subcommand leaves behind and how to go on, for the line printed on Ctrl-C.
_RERUN = "rerun the same command to resume"
ON_INTERRUPT: dict[str, str] = {
    "analyze": "nothing was written (the report is written at the end); rerun the same command",
    "prepare": f"finished cases are kept in the cache's parts; {_RERUN}",
    "train": "the last finished epoch is kept in RUN_DIR/last.pt; rerun the same command "
    "with --resume to resume",
    "evaluate": "nothing was written; rerun the same command",
    "predict": "nothing was written; rerun the same command",
    "export": "nothing was written; rerun the same command",
    "benchmark": f"finished runs are kept, the current one at its last finished epoch; {_RERUN}",
    "report": "nothing is lost (the run folders are only read); rerun the same command",
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
    except UsageError as err:
        return error(prog, str(err), EXIT_USAGE)
    except Exception as err:  # the last line of defence of the CLI
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            traceback.print_exc()
        from calfseg.extras import MissingExtraError

        if isinstance(err, MissingExtraError):
            return error(prog, str(err), EXIT_FAILURE)
        if isinstance(err, OSError):
            return error(prog, describe_os_error(err), EXIT_FAILURE)
        hint = (
            f"this is a bug in calf; rerun with {DEBUG_VARIABLE}=1 for the traceback and "
            "report it at the project's issue tracker"
        )
        return error(prog, f"unexpected {type(err).__name__}: {err}\nhint: {hint}", EXIT_FAILURE)


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
    parser = argparse.ArgumentParser(
        prog="calf",
        description="CALF, the conditionally adaptive loss: analyse masks, train, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    analyze.add_parser(commands)
    prepare.add_parser(commands)
    train.add_parser(commands)
    evaluate.add_parser(commands)
    predict.add_parser(commands)
    export.add_parser(commands)
    benchmark.add_parser(commands)
    report.add_parser(commands)
    return parser
