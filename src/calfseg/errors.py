"""The two kinds of error calf-seg raises on purpose, and the one check of a name against its
valid choices (with a "did you mean" suggestion).

- :class:`OptionError`: an argument or option with a bad value, an unknown name, or options
  that cannot go together. The call itself is wrong, whatever the files say; changing it
  fixes it. The ``calf`` command exits 2 on it.
- :class:`DataError`: a file or the data cannot be used: missing, unreadable, damaged,
  unsafe to load, degenerate (no lesion), not fit for the request (a split the cache lacks),
  or in the way of an output. The ``calf`` command exits 1 on it; on one kind of it, a
  training that diverged (:class:`TrainingDivergedError`), 3. Its kind
  :class:`DataValueError` is a ValueError too.

The library raises no bare ValueError: its own error classes derive from one of the two
(e.g. ``CacheError`` and ``CheckpointError`` are DataErrors), so the command line maps them
to an exit code by kind, never by reading messages (docs/cli.md). This module imports
nothing from calfseg.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TypeVar

_T = TypeVar("_T")

__all__ = [
    "CalfSegError",
    "DataError",
    "DataValueError",
    "OptionError",
    "TrainingDivergedError",
    "UnknownChoiceError",
    "check_choice",
    "did_you_mean",
    "unknown_choice",
]


class CalfSegError(Exception):
    """Base of the errors calf-seg raises on purpose."""


class OptionError(CalfSegError, ValueError):
    """A bad argument or option value, or options that cannot go together (``calf``: exit 2).
    A ValueError, so that callers catching ValueError for bad arguments keep working."""


class UnknownChoiceError(OptionError):
    """A name that is not one of the valid choices; ``value`` and ``choices`` say which."""

    def __init__(self, message: str, value: object, choices: tuple[str, ...]) -> None:
        super().__init__(message)
        self.value = value
        self.choices = choices


class DataError(CalfSegError):
    """A file or data that cannot be used: missing, unreadable, damaged, unsafe, degenerate,
    or in the way of an output (``calf``: exit 1)."""


class DataValueError(DataError, ValueError):
    """Data whose values cannot be used: a count, a shape or a column that the data lacks,
    non-finite numbers, a record of the wrong format (``calf``: exit 1). A ValueError too,
    so that callers catching ValueError keep working."""


class TrainingDivergedError(DataError):
    """A training's loss became non-finite or exploded
    (:func:`calfseg.train.stopping.divergence`); ``calf`` exits 3 (docs/cli.md)."""


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'calf'?)`` when a choice is close to ``value``, else ``""``.

    Closeness is difflib's ratio 2M/T (M matching characters, T the characters of both
    strings) of at least 0.6, the default of :func:`difflib.get_close_matches`."""
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_choice(
    what: str, value: object, choices: Iterable[str], *, valid: str = "valid names"
) -> UnknownChoiceError:
    """The error for ``value`` not among ``choices``, e.g. ``unknown loss 'dise' (did you
    mean 'dice'?); valid names: bce, dice, ...``; ``what`` names the thing (``loss``,
    ``--layout``), ``valid`` the list (``valid names``, ``known layouts``)."""
    listed = tuple(choices)
    message = f"unknown {what} {value!r}{did_you_mean(value, listed)}; {valid}: {', '.join(listed)}"
    return UnknownChoiceError(message, value, listed)


def check_choice(what: str, value: _T, choices: Iterable[str], *, valid: str = "valid names") -> _T:
    """``value`` when it is one of ``choices``; :func:`unknown_choice`'s error otherwise.
    The one check of a name against its choices, for the library and the command line."""
    listed = tuple(choices)
    if value not in listed:
        raise unknown_choice(what, value, listed, valid=valid)
    return value
