"""Progress bars only where someone watches them.

tqdm redraws its bar with carriage returns; written into a log file or a pipe, that is one
long line of junk per bar. :func:`progress_bar` therefore returns a tqdm bar on stderr only
when stderr is a terminal (and the bar is wanted, and tqdm is installed), and None
otherwise: callers write ``if bar is not None: bar.update(1)``. Every bar of the package
(training epochs, evaluation, ``calf prepare``, ``calf analyze``) goes through it.
"""

from __future__ import annotations

import sys
from typing import Any


def stderr_is_terminal() -> bool:
    """True when stderr is an interactive terminal (not a file, a pipe or a captured stream)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def progress_bar(total: int, desc: str, enabled: bool = True, *, unit: str = "it") -> Any:
    """A tqdm bar of ``total`` steps on stderr, or None: when not ``enabled``, when stderr
    is not a terminal, or when tqdm (the ``io`` extra) is not installed (the bar is a
    convenience, never a reason to fail)."""
    if not enabled or not stderr_is_terminal():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
