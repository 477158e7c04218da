"""Warnings the user must see, printed as ``calf NAME: warning: ...`` lines on stderr.

Python's default display (``file.py:123: CacheChangedWarning: ...`` plus a source line) reads
like a crash report; the warnings a command raises on purpose (a changed cache, a model with
no preprocessing record) are instead printed as one plain line each. Other warnings are
shown as Python would have shown them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from calfseg.cli.common import warn


@contextmanager
def loud_warnings(prog: str, *categories: type[Warning]) -> Iterator[None]:
    """Within the block, warnings of ``categories`` become ``PROG: warning: message`` lines
    (:func:`calfseg.cli.common.warn`) on stderr, each printed once, when the block ends;
    others are shown unchanged."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            for category in categories:
                warnings.simplefilter("always", category)
            try:
                yield
            finally:
                caught = list(recorded)
    finally:  # outside catch_warnings, where showwarning writes to stderr again
        for item in caught:
            if issubclass(item.category, categories):
                warn(prog, str(item.message))
            else:
                warnings.showwarning(
                    item.message, item.category, item.filename, item.lineno, item.file, item.line
                )
