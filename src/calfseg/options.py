"""Options declared once: a field of a frozen dataclass carries its command-line form.

A command's options object (e.g. :class:`calfseg.analysis.AnalyzeOptions`) is a dataclass
whose fields are declared with :func:`option`: the default, the help text, how the text of
the command line becomes a value, and the option's group in ``--help``. The library takes
the object and checks it; :func:`add_options` generates the argparse arguments from the
fields and :func:`options_from` builds the object from the parsed namespace, so a default
or a help text is written in one place, and the Python API and ``calf`` refuse the same
values with the same messages. This is the pattern of ``HfArgumentParser`` and
``LightningCLI``, in the hundred lines this package needs (neither is a dependency here).

A message about an option names it as :func:`flag` spells it, ``--slice-axis``, whichever
way it was given: the flag is also the keyword with ``-`` for ``_``.

Where the defaults are not the fields' but a preset's (``calf train --preset cpu``), the
arguments are added with ``unset=True``: an option not given stays out of the namespace,
and :func:`given_options` returns only what the command line set.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from calfseg.errors import did_you_mean

__all__ = [
    "Flag",
    "add_options",
    "device_name",
    "flag",
    "given_options",
    "integer",
    "jobs_value",
    "label_list",
    "margin_value",
    "non_negative_int",
    "option",
    "options_from",
    "positive_float",
    "positive_int",
    "shard_value",
]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Flag:
    """The command-line form of an option field.

    Attributes:
        help: the ``--help`` text.
        parse: text -> value (raising ValueError or ``argparse.ArgumentTypeError``); None
            keeps the text, and makes a ``bool`` field a switch (``store_true``).
        metavar: the value's name in ``--help``.
        choices: the valid values (argparse suggests the nearest on a typo).
        group: the ``--help`` section.
        name: the flag without ``--`` when it is not the field's name (``label`` for the
            field ``labels``).
        repeat: the option may be given several times; ``parse`` returns a list that is
            appended to the others (``--label 1,2 --label 4``); without ``parse``, each
            value is appended as it is.
        bare: the value of the flag given alone (``--amp`` means ``bf16``); None: a value
            is required.
        negatable: a boolean with ``--NAME`` and ``--no-NAME``.
        aliases: other spellings of the flag (``--normalize`` for ``--normalise``).
        many: one or more values after the flag (``--losses bce calf``), each read by
            ``parse``, given as a tuple.
    """

    help: str
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    group: str | None = None
    name: str | None = None
    repeat: bool = False
    bare: Any = None
    negatable: bool = False
    aliases: tuple[str, ...] = ()
    many: bool = False


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    **form: Any,
) -> Any:
    """A dataclass field with ``default`` (or ``default_factory``) and its :class:`Flag`
    (``form``: its other attributes)."""
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"flag": Flag(help, **form)}
    )


def _flags(cls: type) -> list[tuple[dataclasses.Field[Any], Flag]]:
    return [(f, f.metadata["flag"]) for f in dataclasses.fields(cls) if "flag" in f.metadata]


def flag(cls: type, field_name: str) -> str:
    """``--NAME``, the flag of the field ``field_name`` of ``cls``."""
    form = {f.name: g for f, g in _flags(cls)}.get(field_name)
    name = form.name if form is not None and form.name else field_name
    return "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls: type, *, unset: bool = False) -> None:
    """Add an argument to ``parser`` for each option field of ``cls``, in argument groups
    named by the fields' ``group``, help from the fields; defaults from the fields, or with
    ``unset`` none (an option not given is not in the namespace)."""
    groups: dict[str | None, Any] = {None: parser}
    for field, form in _flags(cls):
        if form.group not in groups:
            groups[form.group] = parser.add_argument_group(form.group)
        target = groups[form.group]
        names = [flag(cls, field.name), *form.aliases]
        common: dict[str, Any] = {"dest": field.name, "help": form.help}
        if unset:
            common["default"] = argparse.SUPPRESS
        elif field.default is not dataclasses.MISSING:
            common["default"] = field.default
        if form.negatable:
            target.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
        elif field.type in (bool, "bool") and form.parse is None:
            target.add_argument(*names, action="store_true", **common)
        else:
            extra: dict[str, Any] = {"nargs": "?", "const": form.bare} if form.bare else {}
            if form.many:
                extra["nargs"] = "+"
            action = ("extend" if form.parse else "append") if form.repeat else "store"
            target.add_argument(
                *names, type=form.parse, choices=form.choices, metavar=form.metavar,
                action=action, **extra, **common,
            )  # fmt: skip


def given_options(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The option fields of ``cls`` that ``args`` holds (all, or with ``unset`` only those
    given on the command line), by field name."""
    given = {f.name: getattr(args, f.name) for f, _ in _flags(cls) if hasattr(args, f.name)}
    many = {f.name for f, form in _flags(cls) if form.many}
    return {k: tuple(v) if k in many and v is not None else v for k, v in given.items()}


def options_from(cls: type[_T], args: argparse.Namespace, **given: Any) -> _T:
    """The ``cls`` of the parsed ``args`` (its option fields), with ``given`` added."""
    return cls(**{**given_options(cls, args), **given})


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


DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
_CUDA_INDEX = re.compile(r"cuda:\d+")


def device_name(text: str) -> str:
    """``--device``: auto, cpu, cuda, cuda:N or mps (checked by form here; whether the
    device exists is checked when it is used)."""
    value = text.strip().lower()
    if value in DEVICE_NAMES or _CUDA_INDEX.fullmatch(value):
        return value
    hint = did_you_mean(value, DEVICE_NAMES)
    raise argparse.ArgumentTypeError(
        f"unknown device {text!r}{hint}; use auto, cpu, cuda, cuda:N (N a GPU number) or mps"
    )


def margin_value(text: str) -> float:
    """``--margin``: a finite number >= 0 (per-case Dice)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number: {text!r} (a per-case Dice >= 0, e.g. 0.01)"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def shard_value(text: str) -> tuple[int, int]:
    """``--shard K/N``: ``(K, N)`` by :func:`calfseg.shards.parse_shard`."""
    from calfseg.shards import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def jobs_value(text: str) -> int | None:
    """``--jobs``: ``auto`` -> None, else a positive number of runs."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number of runs or auto, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be a positive number of runs (1: one after another) or auto, got {text!r}"
        )
    return value
