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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.data.files.masks import MaskFileError, read_mask
from calfseg.data.sources.base import CaseError, CaseFiles, CaseVolumes, SourceReader
from calfseg.data.sources.naming import child_dirs, normalise_modality
from calfseg.data.sources.nifti import read_nifti
from calfseg.data.sources.volumes import CaseBuilder, Volume, raise_problems, read_failure
from calfseg.extras import require

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS: tuple[str, ...] = ("case_id", "image", "mask")
DEFAULT_MODALITY = "image"
FILE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".npy", ".png", ".tif", ".tiff")
_GREY_PHOTOMETRIC = (0, 1)  # TIFF MINISWHITE, MINISBLACK


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
        raise ValueError(f"several manifests under {root}: {names}; pass one with --manifest")
    raise ValueError(f"no {MANIFEST_NAME} in {root}; pass the manifest with --manifest FILE")


def read_manifest(path: Path) -> dict[str, list[ManifestRow]]:
    """The manifest's rows grouped by case id (in manifest order). ValueError naming the
    file and line for a missing column or an empty case id or image."""
    path = Path(path)
    rows: dict[str, list[ManifestRow]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty manifest")
        columns = [c.strip().lower() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(
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
                raise ValueError(f"{path}, line {line}: case_id and image must not be empty")
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


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in FILE_SUFFIXES if name.endswith(s)), None)


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
        if not any(_suffix(p) in (".nii", ".nii.gz") for p in files):
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
            if _suffix(path) is None:
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
        builder = CaseBuilder(case, _stack(case.case_id, mask_paths, _read_label))
        for modality, modality_rows in by_modality.items():
            paths = [row.image for row in modality_rows]
            builder.add(modality, _stack(case.case_id, paths, _read_image))
        return builder.finish()


def _stack(case_id: str, paths: Sequence[Path], read: Callable[[str, Path], Volume]) -> Volume:
    """One file as it is, or 2D slices stacked on the last axis (without geometry)."""
    if len(paths) == 1:
        volume = read(case_id, paths[0])
        if volume.array.ndim == 2:
            volume.array = volume.array[..., np.newaxis]
        return volume
    slices: list[np.ndarray] = []
    for path in paths:
        array = read(case_id, path).array
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim != 2:
            raise CaseError(
                case_id, f"a 3D volume of shape {array.shape} among the 2D slices of a case", path
            )
        if slices and array.shape != slices[0].shape:
            raise CaseError(
                case_id,
                f"slice {path.name} has shape {array.shape}, slice {paths[0].name} has "
                f"{slices[0].shape}",
                path,
            )
        slices.append(array)
    return Volume(np.stack(slices, axis=-1), paths[0])


def _read_label(case_id: str, path: Path) -> Volume:
    if _suffix(path) in (".nii", ".nii.gz"):
        return read_nifti(case_id, path, label=True)
    try:
        return Volume(np.asarray(read_mask(path)), path)
    except MaskFileError as err:
        raise CaseError(case_id, err.reason, path) from err


def _read_image(case_id: str, path: Path) -> Volume:
    suffix = _suffix(path)
    if suffix in (".nii", ".nii.gz"):
        return read_nifti(case_id, path, label=False)
    reader = {".npy": _read_npy, ".png": _read_png}.get(suffix or "", _read_tiff)
    try:
        array = reader(path)
    except MemoryError:
        raise
    except Exception as err:  # format readers raise anything on a bad file
        raise read_failure(case_id, path, err) from err
    if array.ndim not in (2, 3):
        raise CaseError(case_id, f"expected a 2D or 3D image, got shape {array.shape}", path)
    return Volume(array.astype(np.float32, copy=False), path)


def _read_npy(path: Path) -> np.ndarray:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return np.array(array, dtype=np.float32)


def _read_png(path: Path) -> np.ndarray:
    image_module: Any = require("PIL.Image", "reading PNG images")
    with image_module.open(path) as image:
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
        array = np.asarray(image)
    if array.ndim == 3:
        if mode in ("LA", "La"):
            return array[..., 0]
        return _one_channel(array[..., :3], f"PNG mode {mode}")
    return array


def _read_tiff(path: Path) -> np.ndarray:
    tifffile: Any = require("tifffile", "reading TIFF images")
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array = np.asarray(series.asarray())
        axes = str(series.axes)
        colour = int(tif.pages[0].photometric) not in _GREY_PHOTOMETRIC
    if len(axes) != array.ndim:  # unexpected metadata: the plain shape
        return array
    keep = [i for i, a in enumerate(axes) if a in "YX" or array.shape[i] != 1]
    array = array.reshape([array.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "S" in axes:
        samples = np.moveaxis(array, axes.index("S"), -1)
        array = _one_channel(samples[..., :3], "colour TIFF") if colour else samples[..., 0]
        axes = axes.replace("S", "")
    stack = [i for i, a in enumerate(axes) if a not in "YX"]
    if len(stack) > 1:
        raise ValueError(f"TIFF with axes {axes!r}: expected one page axis at most")
    return np.moveaxis(array, stack[0], -1) if stack else array


def _one_channel(rgb: np.ndarray, what: str) -> np.ndarray:
    """A grey picture saved as colour has equal channels: keep one; refuse true colour."""
    first = rgb[..., 0]
    if all(np.array_equal(first, rgb[..., c]) for c in range(1, rgb.shape[-1])):
        return first
    raise ValueError(f"{what} with differing colour channels: give one grey image per modality")
