"""What every ``calf`` subcommand shares: exit codes, error printing, argument types, and
the checks of output paths that several subcommands make before any work."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


class UsageError(Exception):
    """A bad option value found after parsing; ``calf`` prints it and exits 2."""


def error(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def warn(prog: str, message: str) -> None:
    """A loud warning on stderr: the command goes on, but the user must see this."""
    print(f"{prog}: WARNING: {message}", file=sys.stderr)


def describe_os_error(err: OSError) -> str:
    """One line naming the file of an OSError and saying what is wrong with it in words,
    e.g. ``cannot use results/x.json: a parent of it is a file, not a folder``."""
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


def check_output_file(path: Path, option: str, suffixes: Sequence[str] | None = None) -> str | None:
    """Why ``path`` cannot be written as the file of ``option`` (None when it can, as far as
    one can tell without writing): a wrong suffix, a folder in its place, or a parent that
    is a file or cannot be created. Checked before the work, so no result is lost."""
    if suffixes is not None and not any(path.name.lower().endswith(s) for s in suffixes):
        return f"{option} {path}: unsupported file type; use one of {', '.join(suffixes)}"
    if path.is_dir():
        return f"{option} {path}: is a folder; give a file name"
    problem = _parent_problem(path.parent)
    return None if problem is None else f"{option} {path}: {problem}"


def check_output_folder(path: Path, option: str) -> str | None:
    """Why ``path`` cannot be (or become) a writable folder for ``option``, or None."""
    if path.exists() and not path.is_dir():
        return f"{option} {path}: is a file, not a folder"
    if path.is_dir():
        return None if os.access(path, os.W_OK | os.X_OK) else f"{option} {path}: not writable"
    problem = _parent_problem(path.parent)
    return None if problem is None else f"{option} {path}: {problem}"


def _parent_problem(parent: Path) -> str | None:
    """The first existing ancestor must be a writable folder for the missing ones to be made."""
    for ancestor in (parent, *parent.parents):
        if not ancestor.exists():
            continue
        if not ancestor.is_dir():
            return f"{ancestor} is a file, not a folder"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"cannot create files in {ancestor} (permission denied)"
        return None
    return None


# -- argument types -----------------------------------------------------------------------


def label_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"labels must be integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("--label needs at least one integer")
    return values


def positive_float(text: str) -> float:
    """A number > 0 (``--lr``, ``--grad-clip``), else an argparse error naming it."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def loss_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` (``--loss-option``); VALUE is read as JSON when it parses (numbers,
    true, lists, objects), else kept as text: ``grid=2`` -> 2, ``area=contour`` -> "contour"."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def scoped_loss_option(text: str) -> tuple[str | None, str, object]:
    """``[LOSS:]KEY=VALUE`` (``calf benchmark --loss-option``): the loss it is for (None:
    every loss that takes KEY), the key and the value as :func:`loss_option` reads it. Only
    the part before the first ``=`` is searched for ``:``, so JSON values may contain one."""
    head, sep, value = text.partition("=")
    loss, colon, key = head.rpartition(":")
    if not sep or not key.strip() or (colon and not loss.strip()):
        raise argparse.ArgumentTypeError(f"expected LOSS:KEY=VALUE or KEY=VALUE, got {text!r}")
    parsed_key, parsed = loss_option(f"{key}{sep}{value}")
    return (loss.strip() if colon else None), parsed_key, parsed
