"""A tiny dataset layout for tests of ``calf prepare``: ``ROOT/CASE/<modality>.npy`` and
``ROOT/CASE/label.npy``, volumes ``(X, Y, Z)`` as the reader interface wants them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from calfseg.data.sources.base import CaseError, CaseFiles, CaseVolumes, SourceReader


class TinySource(SourceReader):
    """Reads the tiny layout. ``crash_on`` names cases whose loading raises RuntimeError (a
    crash, not a bad case); ``dataset`` is the dataset name given to every case."""

    name = "tiny"
    description = "CASE/<modality>.npy and CASE/label.npy"

    def __init__(self, crash_on: Iterable[str] = (), dataset: str = "tiny") -> None:
        self.crash_on = frozenset(crash_on)
        self.dataset = dataset

    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(root.glob("*/label.npy"))

    def find_cases(self, root: Path) -> list[CaseFiles]:
        cases = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            images = {p.stem: p for p in sorted(folder.glob("*.npy")) if p.stem != "label"}
            label = folder / "label.npy"
            problems = () if label.is_file() else (f"no label file {label.name}",)
            files = (*images.values(), *([label] if label.is_file() else []))
            cases.append(
                CaseFiles(
                    folder.name,
                    self.dataset,
                    images,
                    label if label.is_file() else None,
                    files,
                    problems,
                )
            )
        return cases

    def load(self, case: CaseFiles) -> CaseVolumes:
        if case.case_id in self.crash_on:
            raise RuntimeError(f"simulated crash in case {case.case_id}")
        if case.problems:
            raise CaseError(case.case_id, "; ".join(case.problems))
        assert case.label is not None
        images = {name: _read(case.case_id, path) for name, path in case.images.items()}
        label = _read(case.case_id, case.label)
        return CaseVolumes(case.case_id, case.dataset, images, label, (1.0, 1.0, 2.0))


def _read(case_id: str, path: Path) -> np.ndarray:
    try:
        return np.load(path)
    except (OSError, ValueError) as err:
        raise CaseError(case_id, f"cannot read it ({err})", path) from None


def write_case(
    root: Path,
    case_id: str,
    *,
    shape: tuple[int, int, int] = (12, 10, 6),
    modalities: Iterable[str] = ("flair", "t1c"),
    seed: int = 0,
) -> Path:
    """A case of random intensities with a box-shaped tumour (labels 1 and 4) in the
    middle slices, and a background (all-zero) first slice."""
    rng = np.random.default_rng(seed)
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    x, y, z = shape
    for name in modalities:
        volume = rng.normal(100, 20, size=shape).astype(np.float32)
        volume[..., 0] = 0
        np.save(folder / f"{name}.npy", volume)
    label = np.zeros(shape, dtype=np.int16)
    label[x // 4 : x // 2, y // 4 : y // 2, 2 : z - 1] = 1
    label[x // 2 : x // 2 + 2 + seed % 3, y // 4 : y // 2, 2 : z - 1] = 4
    np.save(folder / "label.npy", label)
    return folder
