"""Strict JSON for reports: the conversion every fingerprint document goes through."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that strict JSON accepts: NaN/inf -> None, numpy -> Python,
    tuples -> lists, paths -> str (``json.dumps(allow_nan=False)`` refuses NaN)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def nan_if_none(value: Any) -> float:
    """Inverse of :func:`json_safe` for one number: a ``null`` read back is NaN."""
    return math.nan if value is None else float(value)
