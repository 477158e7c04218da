"""Any other data, described by a CSV manifest::

    case_id,image,mask,modality
    p01,p01/flair.nii.gz,p01/seg.nii.gz,flair
    p01,p01/t2.nii.gz,p01/seg.nii.gz,t2
    p02,slices/p02_000.png,slices/p02_000_mask.png,
    p02,slices/p02_001.png,slices/p02_001_mask.png,

Columns ``case_id``, ``image``, ``mask`` are required (header names ignore case and
spaces; other columns are ignored); ``modality`` is optional (default ``image``; the usual
spellings such as ``T1GD`` or ``t2w`` are normalised). Paths are relative to the CSV's
folder, or absolute. Formats: NIfTI (``.nii``, ``.nii.gz``; reoriented to RAS+ like every
NIfTI source), PNG, TIFF and NPY, 2D or 3D.

Rows with one ``case_id`` make one case. For each modality, its rows in manifest order
give either one 3D volume or 2D slices stacked along the last axis; each modality's rows
must name the same masks in the same order, and the masks are stacked likewise. Geometry
(affine, spacing) comes from NIfTI files; PNG, TIFF and NPY have none, so their cases get
spacing (1, 1, 1) and ``info["spacing"] = "unknown"``, and stacked slices are indexed
[row, column, slice].

``root`` (for ``find_cases`` and detection) is the CSV file itself, or a folder holding
``manifest.csv`` (directly or in exactly one of its sub-folders); a manifest given to the
constructor (``FolderSource(manifest=...)``) takes precedence over the root.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from calfseg.data.sources.base import CaseError, CaseFiles, CaseVolumes, SourceReader
from calfseg.data.sources.files import (
    FILE_SUFFIXES,
    file_suffix,
    read_image_volume,
    read_label_volume,
    stack_files,
)
from calfseg.data.sources.naming import child_dirs, normalise_modality
from calfseg.data.sources.volumes import CaseBuilder, raise_problems
from calfseg.errors import DataValueError

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS: tuple[str, ...] = ("case_id", "image", "mask")
DEFAULT_MODALITY = "image"


@dataclass(frozen=True)
class ManifestRow:
    line: int  # line number in the CSV, for messages
    case_id: str
    modality: str
    image: Path
    mask: Path | None


def find_manifest(root: Path) -> Path:
    """The manifest a root stands for: the CSV itself, ``root/manifest.csv``, or the one
    ``manifest.csv`` in a sub-folder. ValueError when there is none or several."""
    root = Path(root)
    if root.is_file():
        return root
    if (root / MANIFEST_NAME).is_file():
        return root / MANIFEST_NAME
    found = [d / MANIFEST_NAME for d in child_dirs(root) if (d / MANIFEST_NAME).is_file()]
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(str(p) for p in found)
        raise DataValueError(f"several manifests under {root}: {names}; pass one with --manifest")
    raise DataValueError(f"no {MANIFEST_NAME} in {root}; pass the manifest with --manifest FILE")


def read_manifest(path: Path) -> dict[str, list[ManifestRow]]:
    """The manifest's rows grouped by case id (in manifest order). ValueError naming the
    file and line for a missing column or an empty case id or image."""
    path = Path(path)
    rows: dict[str, list[ManifestRow]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataValueError(f"{path}: empty manifest")
        columns = [c.strip().lower() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataValueError(
                f"{path}: the manifest lacks the column(s) {', '.join(missing)} "
                f"(expected {','.join(REQUIRED_COLUMNS)}[,modality])"
            )
        where = {
            name: columns.index(name) for name in (*REQUIRED_COLUMNS, "modality") if name in columns
        }
        for line, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            cell = {
                name: (values[i].strip() if i < len(values) else "") for name, i in where.items()
            }
            if not cell["case_id"] or not cell["image"]:
                raise DataValueError(f"{path}, line {line}: case_id and image must not be empty")
            rows.setdefault(cell["case_id"], []).append(
                ManifestRow(
                    line=line,
                    case_id=cell["case_id"],
                    modality=normalise_modality(cell.get("modality") or DEFAULT_MODALITY),
                    image=path.parent / cell["image"],
                    mask=path.parent / cell["mask"] if cell["mask"] else None,
                )
            )
    return rows


class FolderSource(SourceReader):
    name = "folder"
    description = "a CSV manifest: case_id,image,mask[,modality] (NIfTI, PNG, TIFF, NPY)"

    def __init__(
        self,
        *,
        manifest: str | Path | None = None,
        modalities: Iterable[str] | None = None,
    ) -> None:
        self.manifest = None if manifest is None else Path(manifest)
        if modalities is None:
            self.modalities: tuple[str, ...] | None = None
        else:
            names = [modalities] if isinstance(modalities, str) else list(modalities)
            self.modalities = tuple(dict.fromkeys(normalise_modality(m) for m in names))
        self._rows: dict[Path, dict[str, list[ManifestRow]]] = {}

    @classmethod
    def detect(cls, root: Path) -> bool:
        root = Path(root)
        if root.is_file():
            return root.suffix.lower() == ".csv"
        if (root / MANIFEST_NAME).is_file():
            return True
        return any((d / MANIFEST_NAME).is_file() for d in child_dirs(root))

    def _manifest_rows(self, path: Path) -> dict[str, list[ManifestRow]]:
        path = path.resolve()
        if path not in self._rows:
            self._rows[path] = read_manifest(path)
        return self._rows[path]

    def find_cases(self, root: Path) -> list[CaseFiles]:
        manifest = self.manifest if self.manifest is not None else find_manifest(Path(root))
        rows = self._manifest_rows(manifest)
        return [self._case(case_id, rows[case_id], manifest) for case_id in sorted(rows)]

    def _by_modality(
        self, rows: Sequence[ManifestRow], problems: list[str]
    ) -> dict[str, list[ManifestRow]]:
        by_modality: dict[str, list[ManifestRow]] = {}
        for row in rows:
            by_modality.setdefault(row.modality, []).append(row)
        if self.modalities is None:
            return by_modality
        for modality in self.modalities:
            if modality not in by_modality:
                found = ", ".join(by_modality)
                problems.append(f"no {modality} image in the manifest (it has: {found})")
        return {m: by_modality[m] for m in self.modalities if m in by_modality}

    def _case(self, case_id: str, rows: Sequence[ManifestRow], manifest: Path) -> CaseFiles:
        problems: list[str] = []
        by_modality = self._by_modality(rows, problems)
        files: dict[Path, None] = {}
        for modality_rows in by_modality.values():
            for row in modality_rows:
                problems.extend(self._row_problems(row))
                files[row.image] = None
        reference = next(iter(by_modality.values()), [])
        masks = [row.mask for row in reference]
        for modality, modality_rows in by_modality.items():
            if [row.mask for row in modality_rows] != masks:
                first = next(iter(by_modality))
                problems.append(
                    f"the rows of modality {modality} name other masks than those of {first} "
                    f"(manifest line {modality_rows[0].line})"
                )
        for mask in masks:
            if mask is not None:
                files[mask] = None
        info = {"manifest": str(manifest)}
        if not any(file_suffix(p) in (".nii", ".nii.gz") for p in files):
            info["spacing"] = "unknown"
        return CaseFiles(
            case_id=case_id,
            dataset=self.name,
            images={m: r[0].image for m, r in by_modality.items()},
            label=masks[0] if masks else None,
            files=tuple(files),
            problems=tuple(dict.fromkeys(problems)),
            info=info,
        )

    @staticmethod
    def _row_problems(row: ManifestRow) -> list[str]:
        problems = []
        if row.mask is None:
            problems.append(f"no mask file given for {row.image.name} (manifest line {row.line})")
        for kind, path in (("image", row.image), ("mask", row.mask)):
            if path is None:
                continue
            if file_suffix(path) is None:
                problems.append(
                    f"unsupported {kind} file {path.name} (supported: {', '.join(FILE_SUFFIXES)})"
                )
            elif not path.is_file():
                problems.append(f"{kind} file not found: {path} (manifest line {row.line})")
        return problems

    def load(self, case: CaseFiles) -> CaseVolumes:
        raise_problems(case)
        manifest = self.manifest or Path(case.info.get("manifest", ""))
        rows = self._manifest_rows(manifest).get(case.case_id) if manifest.is_file() else None
        if not rows:
            raise CaseError(case.case_id, f"not in the manifest {manifest}")
        problems: list[str] = []
        by_modality = self._by_modality(rows, problems)
        if problems or not by_modality:
            raise CaseError(case.case_id, "; ".join(problems) or "no image rows")
        masks = [row.mask for row in next(iter(by_modality.values()))]
        mask_paths = [m for m in masks if m is not None]
        if len(mask_paths) != len(masks):
            raise CaseError(case.case_id, "a row has no mask file")
        builder = CaseBuilder(case, stack_files(case.case_id, mask_paths, read_label_volume))
        for modality, modality_rows in by_modality.items():
            paths = [row.image for row in modality_rows]
            builder.add(modality, stack_files(case.case_id, paths, read_image_volume))
        return builder.finish()
