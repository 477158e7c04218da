"""Where ``calf prepare`` reads cases from: a reader, its root folder, and an identity that
is recorded in meta.json and tells whether existing parts came from the same source."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calfseg.data.preparation.file_state import display_path
from calfseg.data.sources.base import CaseFiles, SourceReader


@dataclass(frozen=True)
class PrepareSource:
    """A :class:`SourceReader` and the ``root`` it reads (None for generated data).

    ``identity`` is JSON-ready and fully describes the source (layout, root, reader options
    or generator parameters): parts made from another identity are never reused."""

    reader: SourceReader
    root: Path | None
    identity: dict[str, Any] = field(default_factory=dict)

    def find_cases(self) -> list[CaseFiles]:
        """The reader's cases, sorted by (case id, dataset)."""
        cases = self.reader.find_cases(self.root)  # type: ignore[arg-type]
        return sorted(cases, key=lambda c: (c.case_id, c.dataset))

    def describe(self) -> str:
        if self.root is None:
            return f"{self.reader.name}"
        return f"{self.root} ({self.reader.name})"


def reader_source(
    reader: SourceReader, root: str | os.PathLike[str] | None, **options: Any
) -> PrepareSource:
    """A source from any reader instance; ``options`` are recorded in its identity."""
    resolved = None if root is None else Path(os.path.abspath(root))
    identity: dict[str, Any] = {
        "layout": reader.name,
        "root": None if resolved is None else str(resolved),
        "options": {k: _plain(v) for k, v in sorted(options.items())},
    }
    return PrepareSource(reader, resolved, identity)


def folder_source(
    root: str | os.PathLike[str], layout: str = "auto", **options: Any
) -> tuple[PrepareSource, str]:
    """The reader for a dataset folder (``layout="auto"`` detects it) and the message saying
    which layout was used. Errors of :func:`calfseg.data.sources.open_source` propagate."""
    from calfseg.data.sources import open_source

    reader, message = open_source(Path(root), layout, **options)
    return reader_source(reader, root, **options), message


def pooled_source(
    roots: list[Path], layout: str = "auto", **options: Any
) -> tuple[PrepareSource, str]:
    """Several dataset folders as one source (:mod:`calfseg.data.sources.pooled`): ``layout``
    is ``auto`` or one layout per root, comma-separated. Paths are recorded relative to the
    roots' common folder; the identity names every root and its layout."""
    from calfseg.data.sources.pooled import open_pooled

    layouts = None if layout == "auto" else [part.strip() for part in layout.split(",")]
    reader, message = open_pooled(roots, layouts, **options)
    common = os.path.commonpath([os.path.abspath(root) for root in roots])
    members = [f"{name}={os.path.abspath(root)}" for name, (_, root) in reader.members.items()]
    return reader_source(reader, common, pooled=members, **options), message


def synthetic_source(
    preset: str,
    *,
    cases: int | None = None,
    slices: int | None = None,
    seed: int = 0,
    size: int | None = None,
) -> PrepareSource:
    """Generated cases of a :mod:`calfseg.data.sources.synthetic` preset (``cases``, ``slices`` per
    case and ``size`` override the preset's)."""
    from calfseg.data.sources.synthetic import SyntheticSource

    reader = SyntheticSource(
        preset=preset, n_cases=cases, slices_per_case=slices, size=size, seed=seed
    )
    # slices enters the source record only when set, so that caches prepared before the
    # option existed keep their source record (and are not re-prepared).
    extra = {} if slices is None else {"slices": slices}
    return reader_source(reader, None, preset=preset, cases=cases, seed=seed, size=size, **extra)


def source_files(case: CaseFiles) -> tuple[Path, ...]:
    """The files a case is read from: the reader's list, else its images and label."""
    if case.files:
        return tuple(case.files)
    found = [*case.images.values(), *([case.label] if case.label is not None else [])]
    return tuple(p for p in found if isinstance(p, Path) and p.is_file())


def label_source(case: CaseFiles, root: Path | None) -> str | None:
    """What the labels are: the reader's note (e.g. "manual") or the label file's path."""
    info = getattr(case, "info", None) or {}
    if "label" in info:
        return str(info["label"])
    return None if case.label is None else display_path(case.label, root)


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.path.abspath(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
