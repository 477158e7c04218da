"""The options that several ``calf`` subcommands share, declared once, and the parser that
suggests a near name ("did you mean") for a mistyped command, option or choice.

Shared options: ``--device``, ``--no-progress``, ``--json``, ``--seed``, ``--shard`` and
``--preset``. Each ``add_*`` function declares one with its type and check; the help text
says what it means to the command at hand. Python 3.11's argparse suggests nothing (3.14
adds ``suggest_on_error``), so :class:`CalfArgumentParser` adds the suggestion, found by
:func:`calfseg.errors.did_you_mean`, the one helper the library uses for names too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from calfseg.cli.common import non_negative_int
from calfseg.errors import did_you_mean
from calfseg.options import device_name, shard_value


class CalfArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors suggest the nearest valid name: an unknown subcommand
    or choice (``invalid choice: 'cosin' (did you mean 'cosine'?)``) and an unknown option
    (``unrecognized arguments: --epohcs 3 (did you mean --epochs?)``). Subparsers made with
    ``add_subparsers`` are of this class too."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's one check of a value against ``choices`` (subcommands included).
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError:
            choices = [str(c) for c in action.choices or ()]
            listed = ", ".join(choices)
            hint = did_you_mean(value, choices)
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r}{hint}; choose from {listed}"
            ) from None

    _pending: Callable[[argparse.ArgumentParser], None] | None = None

    def defer(self, populate: Callable[[argparse.ArgumentParser], None]) -> None:
        """Add this parser's arguments with ``populate(parser)`` only when it is used, so
        that ``calf --help`` and ``calf --version`` do not import what an options object
        needs (torch): the arguments of a subcommand generated from its options object."""
        self._pending = populate

    def _populate(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._populate()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._populate()
        return super().format_help()

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner = getattr(parsed, "parser", None)
            owner = owner if isinstance(owner, argparse.ArgumentParser) else self
            owner.error(f"unrecognized arguments: {' '.join(extras)}{_suggest(owner, extras)}")
        return parsed


def _suggest(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """`` (did you mean --epochs?)`` for the first unknown ``--option`` near a known one."""
    # argparse has no public list of a parser's option strings; this mapping is stable.
    known = [s for s in parser._option_string_actions if s.startswith("--")]
    for token in extras:
        if token.startswith("--"):
            hint = did_you_mean(token.split("=", 1)[0], known)
            if hint:
                return hint.replace("'", "")
    return ""


# -- shared options -------------------------------------------------------------------------


def add_device(parser: Any, *, default: str | None = "auto") -> None:
    """``--device``: where the model runs."""
    parser.add_argument(
        "--device",
        type=device_name,
        default=default,
        metavar="DEVICE",
        help="auto (default: CUDA when torch finds a GPU, else the CPU), cpu, cuda, cuda:N, mps",
    )


def add_no_progress(parser: Any) -> None:
    """``--no-progress``: progress bars are drawn only when stderr is a terminal; this
    turns them off there too."""
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (one is drawn on stderr only when it is a terminal)",
    )


def add_json(parser: Any, what: str) -> None:
    """``--json OUT``: write the command's result as a JSON file."""
    parser.add_argument("--json", type=Path, metavar="OUT", help=f"write {what} as JSON to OUT")


def add_seed(parser: Any, *, default: int | None, help: str) -> None:
    """``--seed N``: a random seed, an integer >= 0."""
    parser.add_argument("--seed", type=non_negative_int, default=default, metavar="N", help=help)


def add_shard(parser: Any, *, help: str) -> None:
    """``--shard K/N``: only the K-th of N disjoint shares of the work (1 <= K <= N)."""
    parser.add_argument("--shard", type=shard_value, metavar="K/N", help=help)


def add_preset(parser: Any, choices: Sequence[str], *, default: str | None, help: str) -> None:
    """``--preset NAME``: one of ``choices`` (a mistyped name gets a suggestion)."""
    parser.add_argument("--preset", choices=tuple(choices), default=default, help=help)
