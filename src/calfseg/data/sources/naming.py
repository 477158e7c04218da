"""Names in dataset trees: modality aliases, case folders recognised by name, and the
``<prefix><token>.nii.gz`` file names most layouts use. Names only: nothing here opens a
file, so detection stays cheap."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from calfseg.data.sources.base import MODALITIES
from calfseg.errors import OptionError

# Spellings of the four modalities across datasets (lower case) -> the normalised name.
MODALITY_ALIASES: dict[str, str] = {
    "flair": "flair",
    "t2f": "flair",
    "t2flair": "flair",
    "t2-flair": "flair",
    "t1": "t1",
    "t1n": "t1",
    "t1w": "t1",
    "t1c": "t1c",
    "t1ce": "t1c",
    "t1gd": "t1c",
    "t1-gd": "t1c",
    "t1post": "t1c",
    "t2": "t2",
    "t2w": "t2",
}
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
# Detection looks at this many folders at most, so that it stays quick on a huge tree.
_DETECT_BUDGET = 256


def normalise_modality(name: str) -> str:
    """The normalised modality name (``T1GD`` -> ``t1c``); unknown names lower-cased."""
    key = name.strip().lower()
    return MODALITY_ALIASES.get(key, key)


def select_modalities(
    names: Iterable[str], layout: str, available: Iterable[str] = MODALITIES
) -> tuple[str, ...]:
    """Validate a ``modalities=`` option: normalised, known to the layout, no repeats."""
    offered = tuple(available)
    chosen: list[str] = []
    for name in [names] if isinstance(names, str) else names:
        modality = normalise_modality(name)
        if modality not in offered:
            raise OptionError(
                f"layout {layout!r} has no modality {name!r}; it has: {', '.join(offered)}"
            )
        if modality not in chosen:
            chosen.append(modality)
    if not chosen:
        raise OptionError("modalities must name at least one modality")
    return tuple(chosen)


def nifti_stem(name: str) -> str | None:
    """The file name without ``.nii.gz`` / ``.nii`` (any case), or None for other files."""
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def child_dirs(folder: Path) -> list[Path]:
    """The sub-folders of ``folder``, sorted, without hidden ones (``.name``)."""
    try:
        with os.scandir(folder) as entries:
            found = [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]
    except OSError:
        return []
    return sorted(found)


def file_names(folder: Path) -> list[str]:
    """The names of the plain files in ``folder``, sorted, without hidden ones."""
    try:
        with os.scandir(folder) as entries:
            found = [e.name for e in entries if not e.name.startswith(".") and e.is_file()]
    except OSError:
        return []
    return sorted(found)


def find_case_dirs(root: Path, is_case: Callable[[Path], bool]) -> list[Path]:
    """Case folders: the children of ``root`` that ``is_case`` accepts or, when none does,
    its grandchildren (one wrapper level such as ``kaggle_3m/``, ``HGG/`` + ``LGG/`` or a
    ``..._TrainingData/`` folder)."""
    children = child_dirs(root)
    found = [d for d in children if is_case(d)]
    if found:
        return found
    return [d for child in children for d in child_dirs(child) if is_case(d)]


def has_case_dir(root: Path, is_case: Callable[[Path], bool]) -> bool:
    """Whether :func:`find_case_dirs` would find anything, looking at a bounded number of
    folders (detection must stay quick on a large tree of another layout)."""
    budget = _DETECT_BUDGET
    children = child_dirs(root)
    for folder in children[:budget]:
        if is_case(folder):
            return True
    budget -= min(len(children), budget)
    for child in children:
        for folder in child_dirs(child):
            if budget <= 0:
                return False
            budget -= 1
            if is_case(folder):
                return True
    return False


def name_matcher(pattern: re.Pattern[str]) -> Callable[[Path], bool]:
    """A case-folder test on the folder name alone."""
    return lambda folder: pattern.fullmatch(folder.name) is not None


def token_files(
    names: Iterable[str], prefix: re.Pattern[str], tokens: Mapping[str, str]
) -> dict[str, list[str]]:
    """Files named ``<prefix><token>.nii[.gz]``, grouped by the role their token maps to.

    ``prefix`` must match the start of the name up to the token; ``tokens`` maps a token
    (matched ignoring case) to a role such as ``"t1c"`` or ``"label"``. Other files (other
    maps, ``_bias`` variants, licences) are left out.
    """
    lowered = {token.lower(): role for token, role in tokens.items()}
    found: dict[str, list[str]] = {}
    for name in names:
        stem = nifti_stem(name)
        if stem is None:
            continue
        head = prefix.match(stem)
        if head is None:
            continue
        role = lowered.get(stem[head.end() :].lower())
        if role is not None:
            found.setdefault(role, []).append(name)
    return found
