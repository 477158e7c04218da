"""calfseg: CALF, the conditionally adaptive loss (arXiv 2504.04458), and the pipeline around it.

The front door::

    from calfseg import CALFLoss, RegionCALFLoss, build_loss, build_model, analyze

    loss = CALFLoss(statistics="batch")        # or build_loss("calf"), build_loss("dice"), ...
    model = build_model("unet", preset="tiny")
    fingerprint = analyze("masks/")            # areas -> S, K -> the branch CALF would choose

The names load lazily (PEP 562): ``import calfseg`` imports nothing but this file, and each
name imports its own part (and that part's optional dependencies) when first used. The
method is described in docs/method.md, the layers in docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# name -> the module that defines it; imported on first access by __getattr__ below.
_LAZY: dict[str, str] = {
    "CALFLoss": "calfseg.losses",
    "RegionCALFLoss": "calfseg.losses",
    "build_loss": "calfseg.losses",
    "build_model": "calfseg.models",
    "analyze": "calfseg.analysis",
}

__all__ = ["CALFLoss", "RegionCALFLoss", "analyze", "build_loss", "build_model"]

if TYPE_CHECKING:  # static checkers and IDEs see the real objects
    from calfseg.analysis import analyze
    from calfseg.losses import CALFLoss, RegionCALFLoss, build_loss
    from calfseg.models import build_model


def __getattr__(name: str) -> Any:
    """Import the part that defines ``name`` on first use and cache the object here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'calfseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
