"""Reading and writing fingerprint files: the one loader and the one writer.

``load_fingerprint`` is what ``CALFLoss.fit(path)``, ``build_loss("calf-dataset",
fingerprint=path)`` and ``calf analyze FILE.json`` call; ``save_fingerprint`` (also
:meth:`Fingerprint.save`) what ``calf analyze --json`` and :func:`calfseg.analyze` users call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from calfseg.fingerprint.format import FINGERPRINT_FILE, Fingerprint, FingerprintError


def load_fingerprint(path: str | os.PathLike[str]) -> Fingerprint:
    """The fingerprint in the JSON file at ``path``, or in ``path/fingerprint.json`` when
    ``path`` is a folder (a cache written by ``calf prepare``: its train split).

    Raises:
        FileNotFoundError: no such file, or a folder without ``fingerprint.json``.
        FingerprintError: the file is not JSON, or not a fingerprint of a format this
            version reads (the message names the file and how to write a valid one).
    """
    path = Path(path)
    if path.is_dir():
        if not (path / FINGERPRINT_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is a folder without {FINGERPRINT_FILE}: give a cache folder written "
                "by calf prepare, or the path of a fingerprint JSON file"
            )
        path = path / FINGERPRINT_FILE
    elif not path.exists():
        raise FileNotFoundError(f"no fingerprint file {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FingerprintError(f"{path}: cannot read it as JSON ({err})") from err
    return Fingerprint.from_dict(data, origin=str(path))


def save_fingerprint(fingerprint: Fingerprint, path: str | os.PathLike[str]) -> Path:
    """Write ``fingerprint`` as a ``calfseg.fingerprint/1`` JSON file, atomically (parent
    folders are created); returns the path."""
    return fingerprint.save(path)
