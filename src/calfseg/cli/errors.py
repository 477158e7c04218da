"""The exit codes of ``calf`` and the one table that maps an exception to its code.

The contract (docs/cli.md), the same for every subcommand:

- 0: success;
- 1: failure: a file or the data cannot be used (a missing input, a damaged cache, a
  corrupt or unsafe checkpoint, degenerate data, an output in the way or unwritable), a
  missing optional package, runs or files that failed or were skipped, an unexpected error
  (a bug: one line, the traceback with ``CALF_DEBUG=1``), output cut off by a closed pipe;
- 2: usage error: the command line is wrong by itself, whatever the files hold: an unknown
  command, option or name, a bad option value, options that cannot go together;
- 3: training diverged (its loss became non-finite or exploded; ``TrainingDivergedError``);
- 130: interrupted (Ctrl-C).

The library says which kind an error is by its class (:mod:`calfseg.errors`): an
:class:`~calfseg.errors.OptionError` is a usage error, a :class:`~calfseg.errors.DataError`
a failure; no message is ever parsed.
"""

from __future__ import annotations

import os
import traceback

from calfseg.errors import DataError, OptionError, TrainingDivergedError
from calfseg.extras import MissingExtraError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C

DEBUG_VARIABLE = "CALF_DEBUG"


class UsageError(OptionError):
    """A bad option value or combination found by a subcommand after parsing (exit 2)."""


class InputError(DataError):
    """An input file or folder named on the command line is missing or unreadable (exit 1)."""


class OutputPathError(DataError):
    """An output path that cannot be written: a parent that is a file, no permission, or
    a file, folder or earlier result in the way (exit 1)."""


# The table: the first class that matches decides. Specific kinds first, then the broad
# classes that the libraries calf-seg uses raise (calf-seg itself raises only its own).
# KeyboardInterrupt (130) and a closed pipe (1, quietly) are handled before it, in
# calfseg.cli.run_guarded.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (OptionError, EXIT_USAGE),  # UsageError, an unknown name, a bad option of the library
    (TrainingDivergedError, EXIT_DIVERGED),  # before DataError, of which it is one
    (DataError, EXIT_FAILURE),  # cache, checkpoint, mask and case errors, missing inputs
    (MissingExtraError, EXIT_FAILURE),  # an optional package, named with its pip command
    (OSError, EXIT_FAILURE),  # a file that cannot be read or written, named
    (ValueError, EXIT_FAILURE),  # raised by a library calf uses (numpy, nibabel) on the data
)


def exit_code(err: BaseException) -> int:
    """The exit code of ``err`` by :data:`EXIT_CODES`; 1 for anything else (a bug)."""
    for kind, code in EXIT_CODES:
        if isinstance(err, kind):
            return code
    return EXIT_FAILURE


def is_expected(err: BaseException) -> bool:
    """True when ``err`` is one of the table's kinds; False for a bug."""
    return any(isinstance(err, kind) for kind, _ in EXIT_CODES)


def error(prog: str, message: str, code: int) -> int:
    """Print ``PROG: error: MESSAGE`` on stderr and return ``code``."""
    import sys

    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def fail(prog: str, err: BaseException, hint: str | None = None) -> int:
    """Print ``err`` as one ``PROG: error: ...`` line (plus ``hint: ...``) and return its
    exit code by the table. A bug gets its type, the advice to rerun with ``CALF_DEBUG=1``
    and, when that is set, the traceback."""
    if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
        traceback.print_exception(err)
    if not is_expected(err):
        hint = (
            f"this is a bug in calf; rerun with {DEBUG_VARIABLE}=1 for the traceback and "
            "report it at the project's issue tracker"
        )
        message = f"unexpected {type(err).__name__}: {err}"
    elif isinstance(err, OSError) and not isinstance(err, DataError):
        message = describe_os_error(err)
    else:
        message = str(err)
    if hint:
        message = f"{message}\nhint: {hint}"
    return error(prog, message, exit_code(err))


def describe_os_error(err: OSError) -> str:
    """One line naming the file of an OSError and saying what is wrong with it in words,
    e.g. ``cannot use results/x.json: a parent of it is a file, not a folder``."""
    import errno

    path = err.filename if err.filename is not None else None
    reason = err.strerror or str(err)
    if err.errno == errno.ENOTDIR or isinstance(err, NotADirectoryError):
        reason = "a parent of it is a file, not a folder"
    elif err.errno == errno.EEXIST or isinstance(err, FileExistsError):
        reason = "a file of that name is in the way (a folder is needed there)"
    elif isinstance(err, PermissionError):
        reason = "permission denied"
    elif isinstance(err, IsADirectoryError):
        reason = "it is a folder, a file is needed"
    elif isinstance(err, FileNotFoundError):
        reason = "no such file or folder (or a parent of it cannot be created)"
    elif err.errno == errno.ENOSPC:
        reason = "no space left on the device"
    elif err.errno == errno.EROFS:
        reason = "read-only file system"
    if path is None:
        return f"{type(err).__name__}: {reason}"
    return f"cannot use {os.fsdecode(path)}: {reason}"
