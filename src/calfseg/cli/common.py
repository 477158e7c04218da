"""What every ``calf`` subcommand shares: argument types, the checks of input and output
paths made before any work, warnings; the exit codes and error printing are re-exported
from :mod:`calfseg.cli.errors`, the shared options are in :mod:`calfseg.cli.options`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from calfseg.atomic import same_file
from calfseg.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    OutputPathError,
    UsageError,
    describe_os_error,
    error,
)
from calfseg.options import (  # the text -> value parsers, shared with options objects
    integer,
    label_list,
    non_negative_int,
    positive_float,
    positive_int,
)

__all__ = [  # the exit codes and error helpers live in calfseg.cli.errors; kept here too
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "check_input",
    "check_output_file",
    "check_output_folder",
    "describe_os_error",
    "error",
    "integer",
    "label_list",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "require_output_file",
    "require_output_folder",
    "warn",
]


def warn(prog: str, message: str) -> None:
    """The one warning line of ``calf`` on stderr, ``PROG: warning: MESSAGE`` (as its
    ``PROG: error: ...``): the command goes on, but the user must see this."""
    print(f"{prog}: warning: {message}", file=sys.stderr)


def check_input(path: Path, what: str, kind: str = "file or folder") -> Path:
    """``path`` when it exists (as a file for ``kind="file"``, a folder for ``"folder"``);
    else :class:`InputError` (exit 1) naming ``what`` and the path, e.g. ``INPUT
    in.png: no such file``. Checked before any work."""
    exists = {"file": path.is_file, "folder": path.is_dir}.get(kind, path.exists)()
    if not exists:
        if kind in ("file", "folder") and path.exists():
            raise InputError(f"{what} {path}: not a {kind}")
        raise InputError(f"{what} {path}: no such {kind}")
    return path


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


def require_output_file(
    path: Path,
    option: str,
    suffixes: Sequence[str] | None = None,
    *,
    inputs: Sequence[tuple[Path, str]] = (),
) -> None:
    """Refuse an output file before the work: an unsupported suffix, or an output that would
    replace an input (``inputs``: (path, name) pairs; the same file, by path or link, or a
    file already inside an input folder) is a usage error (exit 2); a folder in its place
    or a parent that is a file or not writable is an :class:`OutputPathError` (exit 1)."""
    if suffixes is not None and not any(path.name.lower().endswith(s) for s in suffixes):
        listed = ", ".join(suffixes)
        raise UsageError(f"{option} {path}: unsupported file type; use one of {listed}")
    for given, name in inputs:
        inside = given.is_dir() and path.is_file() and given.resolve() in path.resolve().parents
        if same_file(path, given) or inside:
            what = f"the {name} file" if not inside else f"a file of the {name} folder"
            raise UsageError(
                f"{option} {path} is {what} {given}: writing it would replace it; choose "
                f"another {option}"
            )
    problem = check_output_file(path, option)
    if problem is not None:
        raise OutputPathError(problem)


def require_output_folder(path: Path, option: str) -> None:
    """Refuse an output folder that cannot be written, before the work (exit 1)."""
    problem = check_output_folder(path, option)
    if problem is not None:
        raise OutputPathError(problem)


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
