"""The fingerprint of a set of masks: the moments of their foreground areas, S, K and the
branch CALF's rule picks, in one JSON format (``calfseg.fingerprint/1``).

Layer: above :mod:`calfseg.stats` and :mod:`calfseg.rule`, below the losses (which load a
fingerprint to fix their branch) and the data layer; it imports only stats, rule and the
bottom utilities (:mod:`calfseg.atomic`, :mod:`calfseg.extras`).

- :mod:`~calfseg.fingerprint.format`: :class:`Fingerprint` and its JSON document.
- :mod:`~calfseg.fingerprint.io`: :func:`load_fingerprint`, :func:`save_fingerprint`.
- :mod:`~calfseg.fingerprint.from_areas`: areas -> fingerprint with counts, quantiles,
  batch and bootstrap behaviour (:class:`~calfseg.fingerprint.summary.AreaSummary`).
- :mod:`~calfseg.fingerprint.text`: the printed report; :mod:`~calfseg.fingerprint.plots`:
  the area histogram (matplotlib, imported on first use).

Measuring mask files is the data layer's job (:mod:`calfseg.data.scan.masks`); the one call
that does it all is :func:`calfseg.analyze`.
"""

from calfseg.fingerprint.format import (
    FINGERPRINT_FILE,
    FINGERPRINT_FORMAT,
    Fingerprint,
    FingerprintError,
)
from calfseg.fingerprint.from_areas import NoAreasError, fingerprint_of_areas
from calfseg.fingerprint.io import load_fingerprint, save_fingerprint
from calfseg.fingerprint.summary import AreaSummary, BatchSummary, BootstrapSummary

__all__ = [
    "FINGERPRINT_FILE",
    "FINGERPRINT_FORMAT",
    "AreaSummary",
    "BatchSummary",
    "BootstrapSummary",
    "Fingerprint",
    "FingerprintError",
    "NoAreasError",
    "fingerprint_of_areas",
    "load_fingerprint",
    "save_fingerprint",
]
