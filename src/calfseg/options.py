"""Options declared once: a field of a frozen dataclass carries its command-line form.

A command's options object (e.g. :class:`calfseg.analysis.AnalyzeOptions`) is a dataclass
whose fields are declared with :func:`option`: the default, the help text, how the text of
the command line becomes a value, and the option's group in ``--help``. The library takes
the object and checks it; :func:`add_options` generates the argparse arguments from the
fields and :func:`options_from` builds the object from the parsed namespace, so a default
or a help text is written in one place, and the Python API and ``calf`` refuse the same
values with the same messages. This is the pattern of ``HfArgumentParser`` and
``LightningCLI``, in the 60 lines this package needs (neither is a dependency here).

A message about an option names it as :func:`flag` spells it, ``--slice-axis``, whichever
way it was given: the flag is also the keyword with ``-`` for ``_``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "Flag",
    "add_options",
    "flag",
    "integer",
    "label_list",
    "non_negative_int",
    "option",
    "options_from",
    "positive_float",
    "positive_int",
]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Flag:
    """The command-line form of an option field.

    Attributes:
        help: the ``--help`` text.
        parse: text -> value (raising ValueError or ``argparse.ArgumentTypeError``); None
            keeps the text. A boolean field with default False is a switch.
        metavar: the value's name in ``--help``.
        choices: the valid values (argparse suggests the nearest on a typo).
        group: the ``--help`` section.
        name: the flag without ``--`` when it is not the field's name (``label`` for the
            field ``labels``).
        repeat: the option may be given several times; ``parse`` returns a list that is
            appended to the others (``--label 1,2 --label 4``).
    """

    help: str
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    group: str | None = None
    name: str | None = None
    repeat: bool = False


def option(default: Any, help: str, **form: Any) -> Any:
    """A dataclass field with ``default`` and its :class:`Flag` (``form``: its other
    attributes)."""
    return dataclasses.field(default=default, metadata={"flag": Flag(help=help, **form)})


def _flags(cls: type) -> list[tuple[dataclasses.Field[Any], Flag]]:
    return [(f, f.metadata["flag"]) for f in dataclasses.fields(cls) if "flag" in f.metadata]


def flag(cls: type, field_name: str) -> str:
    """``--NAME``, the flag of the field ``field_name`` of ``cls``."""
    form = {f.name: g for f, g in _flags(cls)}.get(field_name)
    name = form.name if form is not None and form.name else field_name
    return "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = ()) -> None:
    """Add an argument to ``parser`` for each option field of ``cls`` (but ``skip``), in
    argument groups named by the fields' ``group``, defaults and help from the fields."""
    groups: dict[str | None, Any] = {None: parser}
    for field, form in _flags(cls):
        if field.name in skip:
            continue
        if form.group not in groups:
            groups[form.group] = parser.add_argument_group(form.group)
        target = groups[form.group]
        names = [flag(cls, field.name)]
        if field.default is False and form.parse is None:
            target.add_argument(*names, dest=field.name, action="store_true", help=form.help)
            continue
        target.add_argument(
            *names,
            dest=field.name,
            default=field.default,
            type=form.parse,
            choices=form.choices,
            metavar=form.metavar,
            action="extend" if form.repeat else "store",
            help=form.help,
        )


def options_from(cls: type[_T], args: argparse.Namespace, **given: Any) -> _T:
    """The ``cls`` of the parsed ``args`` (its option fields), with ``given`` added."""
    values = {field.name: getattr(args, field.name) for field, _ in _flags(cls)}
    return cls(**{**values, **given})


# -- the text of an option -> its value (argparse's ``type``) ---------------------------


def label_list(text: str) -> list[int]:
    """``1,2`` -> [1, 2] (``--label``: integer label values, comma-separated)."""
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
    """An integer >= 1."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def integer(text: str) -> int:
    """An integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
