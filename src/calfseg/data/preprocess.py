"""Preprocessing of one case: pure functions on arrays, from canonical volumes to 2D samples.

The paper's protocol (docs/method.md section 5): every axial slice of each chosen modality is a
one-channel sample; the label is the whole tumour (label > 0); intensities are min-max
scaled per slice to [0, 1]; slices are resized to 256 x 256 (bilinear; the mask is resized
bilinearly too and re-binarised with > 0). The functions below do each step for a whole
volume at once (one ``torch.nn.functional.interpolate`` call per case, no Python loop over
slices or pixels).

Arrays follow the reader interface (:mod:`calfseg.data.sources.base`): a volume is
``(X, Y, Z)`` with Z axial, slice ``k`` is ``volume[..., k]`` and a 2D sample is indexed
``[i, j]`` by the first two volume axes, as stored (no transposition for display).

Intensity normalisations, each giving float32 in [0, 1]:

- ``minmax-slice`` (the paper): ``(x - min) / (max - min)`` over each slice; a constant
  slice (background) becomes all zeros, never NaN.
- ``minmax-volume``: the same over the whole volume.
- ``zscore-brain``: ``z = (x - mean) / std`` over the nonzero voxels (the brain), then
  ``clip(z, -5, 5)`` mapped linearly to [0, 1] (``(z + 5) / 10``: the brain's mean lands at
  0.5, one sd is 0.1); voxels that are exactly 0 (outside the brain) stay 0. A brain of one
  value maps to 0.5.
- ``paper``: ``minmax-slice`` for every dataset and modality. (An earlier reading had the
  authors use a per-volume min-max for UPENN-GBM FLAIR; their notebook's per-volume scaling
  is undone when each slice is saved with matplotlib's ``imsave``, which rescales every
  slice to its own range: docs/method.md section 5, correction.)

Resizing: slices of any shape become ``size x size``. A non-square slice is stretched to the
square unless ``keep_aspect`` pads it first (centred, with zeros, after normalisation). The
image uses bilinear interpolation (``align_corners=False``, half-pixel centres like OpenCV's
``INTER_LINEAR``), antialiased when shrinking. The mask either follows the paper (bilinear
without antialiasing, then ``> 0``: any pixel touched by the tumour stays tumour; computed
exactly, by gathering source pixels) or uses ``nearest-exact`` sampling
(``mask_resize="nearest"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from calfseg.data.cache import IMAGE_DTYPES
from calfseg.data.files.masks import foreground
from calfseg.data.sources.base import MODALITIES, CaseError, CaseVolumes
from calfseg.errors import DataValueError, OptionError, check_choice, unknown_choice
from calfseg.options import label_list, option, positive_int
from calfseg.stats import foreground_areas

Normalisation = Literal["minmax-slice", "minmax-volume", "zscore-brain", "paper"]
MaskResize = Literal["paper", "nearest"]
ImageDtype = Literal["uint8", "float16"]

NORMALISATIONS: tuple[str, ...] = ("minmax-slice", "minmax-volume", "zscore-brain", "paper")
MASK_RESIZES: tuple[str, ...] = ("paper", "nearest")
MODALITY_PRESETS: tuple[str, ...] = ("paper", "all")
ZSCORE_CLIP = 5.0  # zscore-brain keeps z in [-5, 5] sd before mapping to [0, 1]
PREPROCESSING = "preprocessing (the paper's protocol by default)"  # calf prepare --help


def modality_list(text: str) -> str | tuple[str, ...]:
    """``--modalities``: a preset name (paper, all) or a comma-separated list."""
    if text in MODALITY_PRESETS:
        return text
    return tuple(m.strip().lower() for m in text.split(",") if m.strip())


@dataclass(frozen=True)
class PreprocessOptions:
    """Every option that changes the samples written for a case.

    Attributes:
        size: side of the square output slices (the paper: 256).
        modalities: ``"paper"`` (every available one of FLAIR, T2 and T1, with T1c instead
            of T1 for BraTS and T1c where T1 is missing), ``"all"`` (every available
            modality), or a tuple of names, each required.
        stack: one sample per slice with the modalities as channels, instead of one
            one-channel sample per modality and slice (the paper).
        labels: label values counted as tumour (default None: every label > 0).
        normalise: see the module docstring.
        mask_resize: ``"paper"`` (bilinear then > 0) or ``"nearest"``.
        keep_aspect: pad non-square slices to a square before resizing.
        drop_outside_brain: leave out slices that are constant in every modality used.
        image_dtype: ``"uint8"`` (``round(255 x)``, the paper's 0..255) or ``"float16"``.
    """

    size: int = option(
        256, "side of the square slices (default 256; --synthetic: the preset's size)",
        parse=positive_int, metavar="N", group=PREPROCESSING,
    )  # fmt: skip
    modalities: str | tuple[str, ...] = option(
        "paper",
        "paper (default: FLAIR, T2 and T1, T1c for BraTS, each available one a sample), "
        "all, or a list like flair,t1c (each required)",
        parse=modality_list, metavar="WHICH", group=PREPROCESSING,
    )  # fmt: skip
    stack: bool = option(
        False, "one sample per slice with the --modalities list as channels",
        group=PREPROCESSING,
    )  # fmt: skip
    labels: tuple[int, ...] | None = option(
        None, "label values that form the mask (default: every label > 0, whole tumour)",
        parse=label_list, metavar="L[,L...]", group=PREPROCESSING,
    )  # fmt: skip
    normalise: Normalisation = option(
        "minmax-slice",
        "intensity scaling to [0, 1]: minmax-slice (default, the paper's), minmax-volume, "
        "zscore-brain (z over nonzero voxels, [-5, 5] sd -> [0, 1]), paper (minmax-slice, "
        "per volume for UPENN-GBM FLAIR as the authors did)",
        choices=NORMALISATIONS, metavar="METHOD", aliases=("--normalize",),
        group=PREPROCESSING,
    )  # fmt: skip
    mask_resize: MaskResize = option(
        "paper", "paper: bilinear then > 0 (default); nearest: nearest-exact sampling",
        choices=MASK_RESIZES, group=PREPROCESSING,
    )  # fmt: skip
    keep_aspect: bool = option(
        False, "pad non-square slices to a square before resizing (default: stretch)",
        group=PREPROCESSING,
    )  # fmt: skip
    drop_outside_brain: bool = option(
        False, "leave out slices that are constant (background) in every modality",
        group=PREPROCESSING,
    )  # fmt: skip
    image_dtype: ImageDtype = option(
        "uint8", "images.npy type: uint8 0..255 (default) or float16 in [0, 1]",
        name="dtype", choices=IMAGE_DTYPES, group=PREPROCESSING,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.modalities, list):
            object.__setattr__(self, "modalities", tuple(self.modalities))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(sorted({int(v) for v in self.labels})))
        if not isinstance(self.size, int) or self.size < 1:
            raise OptionError(f"size must be a positive integer, got {self.size!r}")
        if isinstance(self.modalities, str):
            check_choice("modalities", self.modalities, MODALITY_PRESETS,
                         valid="presets (or give a list of names)")  # fmt: skip
        elif not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise OptionError(f"modalities must be distinct names, got {self.modalities!r}")
        if self.stack and isinstance(self.modalities, str):
            raise OptionError("--stack needs the channels in order: --modalities M1,M2,...")
        if self.labels is not None and not self.labels:
            raise OptionError("labels must name at least one value (None: every label > 0)")
        for name, value, allowed in (
            ("normalise", self.normalise, NORMALISATIONS),
            ("mask_resize", self.mask_resize, MASK_RESIZES),
            ("image_dtype", self.image_dtype, IMAGE_DTYPES),
        ):
            check_choice(name, value, allowed)

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the image channels: the modalities when stacked, else ``("image",)``."""
        if self.stack:
            assert isinstance(self.modalities, tuple)
            return self.modalities
        return ("image",)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists)."""
        data = asdict(self)
        for key in ("modalities", "labels"):
            if isinstance(data[key], tuple):
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessOptions:
        values = dict(data)
        if isinstance(values.get("modalities"), list):
            values["modalities"] = tuple(values["modalities"])
        if isinstance(values.get("labels"), list):
            values["labels"] = tuple(values["labels"])
        return cls(**values)


@dataclass
class CaseSlices:
    """The samples of one case, in the cache's layout (rows = samples)."""

    images: np.ndarray  # (R, C, size, size) uint8 or float16
    masks: np.ndarray  # (R, size, size) uint8 0/1
    modality: list[str]  # one per row: the modality, or "flair+t1c" when stacked
    slice_index: np.ndarray  # (R,) int64: k of volume[..., k]
    area: np.ndarray  # (R,) int64 foreground pixels after resizing
    pixel_spacing: tuple[float, float]  # mm per output pixel along the two slice axes

    def __len__(self) -> int:
        return int(self.images.shape[0])


# -- single steps ---------------------------------------------------------------------------


def binary_mask(label: np.ndarray, labels: Iterable[int] | None = None) -> np.ndarray:
    """Tumour mask (bool): ``label > 0``, or ``label`` in ``labels`` when given
    (:func:`calfseg.data.files.masks.foreground`: a value below 0 needs ``labels``)."""
    return foreground(label, labels)


def normalise(volume: np.ndarray, method: str) -> np.ndarray:
    """Intensities of an ``(X, Y, Z)`` volume mapped to float32 [0, 1] (module docstring).

    Raises ValueError on NaN or infinite intensities."""
    v = np.asarray(volume, dtype=np.float32)
    if not np.isfinite(v).all():
        raise DataValueError("the image holds NaN or infinite intensities")
    if method in ("minmax-slice", "paper"):
        return _minmax(v, axis=(0, 1))
    if method == "minmax-volume":
        return _minmax(v, axis=None)
    if method == "zscore-brain":
        return _zscore_brain(v)
    raise unknown_choice("normalise", method, NORMALISATIONS)


def _minmax(v: np.ndarray, axis: tuple[int, int] | None) -> np.ndarray:
    lo = v.min(axis=axis, keepdims=True)
    span = v.max(axis=axis, keepdims=True) - lo
    constant = span == 0
    out = v - lo  # a constant slice is exactly 0 here, and is divided by 1 below
    out /= np.where(constant, np.float32(1), span)
    return out


def _zscore_brain(v: np.ndarray) -> np.ndarray:
    brain = v != 0
    out = np.zeros_like(v)
    if not brain.any():
        return out
    inside = v[brain].astype(np.float64)
    mean, std = float(inside.mean()), float(inside.std())
    if std > 0:
        z = (inside - mean) / std
        mapped = (np.clip(z, -ZSCORE_CLIP, ZSCORE_CLIP) + ZSCORE_CLIP) / (2 * ZSCORE_CLIP)
    else:
        mapped = np.full(inside.shape, 0.5)
    out[brain] = mapped
    return out


def outside_brain(volumes: Sequence[np.ndarray]) -> np.ndarray:
    """Per slice of ``(X, Y, Z)`` volumes: True where the slice is constant (all background)
    in every volume."""
    outside = np.ones(volumes[0].shape[-1], dtype=bool)
    for v in volumes:
        outside &= v.min(axis=(0, 1)) == v.max(axis=(0, 1))
    return outside


def pad_to_square(stack: np.ndarray) -> np.ndarray:
    """Pad the last two axes with zeros, centred, to a square of the longer side."""
    h, w = stack.shape[-2:]
    side = max(h, w)
    if h == w:
        return stack
    before_h, before_w = (side - h) // 2, (side - w) // 2
    pad = [(0, 0)] * (stack.ndim - 2)
    pad += [(before_h, side - h - before_h), (before_w, side - w - before_w)]
    return np.pad(stack, pad)


def resize_images(stack: np.ndarray, size: int) -> np.ndarray:
    """``(N, C, H, W)`` float -> ``(N, C, size, size)`` float32, bilinear
    (``align_corners=False``), antialiased where an axis shrinks. One interpolate call."""
    n, _, h, w = stack.shape
    if (h, w) == (size, size) or n == 0:
        return np.ascontiguousarray(stack, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    shrink = h > size or w > size
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return y.numpy()


def resize_masks(masks: np.ndarray, size: int, mode: str = "paper") -> np.ndarray:
    """``(N, H, W)`` bool -> ``(N, size, size)`` bool.

    ``"paper"``: what bilinear interpolation (no antialiasing, as OpenCV's ``INTER_LINEAR``)
    followed by ``> 0`` gives, computed exactly: an output pixel is set when any source pixel
    with a positive interpolation weight is set. ``"nearest"``: ``nearest-exact`` sampling
    (source pixel ``floor((i + 0.5) * H / size)``). Both gather rows, then columns, with
    integer index arithmetic (no float rounding at pixel borders) and no interpolation."""
    n, h, w = masks.shape
    check_choice("mask_resize", mode, MASK_RESIZES)
    masks = np.asarray(masks, dtype=bool)
    if (h, w) == (size, size) or n == 0:
        return masks
    pixels = _linear_sources if mode == "paper" else _nearest_sources
    rows, cols = pixels(h, size), pixels(w, size)
    by_rows = _gather_or(masks, rows, axis=1)  # (N, size, W)
    # Gathering along the last axis is slow; gather the columns of the transposed array.
    by_cols = _gather_or(np.ascontiguousarray(by_rows.transpose(0, 2, 1)), cols, axis=1)
    return np.ascontiguousarray(by_cols.transpose(0, 2, 1))


def _linear_sources(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The source pixels with a positive weight in a half-pixel-centred linear resize from
    ``n_in`` to ``n_out`` pixels: output ``i`` samples source coordinate
    ``((2 i + 1) n_in - n_out) / (2 n_out)`` (clamped at 0, as torch and OpenCV do); it uses
    the pixel below and, unless the coordinate is a whole number, the one above (else the
    pixel below again)."""
    twice = np.maximum((2 * np.arange(n_out) + 1) * n_in - n_out, 0)
    lower = twice // (2 * n_out)
    between = twice % (2 * n_out) != 0
    upper = np.where(between, np.minimum(lower + 1, n_in - 1), lower)
    return lower, upper


def _nearest_sources(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    nearest = np.minimum((2 * np.arange(n_out) + 1) * n_in // (2 * n_out), n_in - 1)
    return nearest, nearest


def _gather_or(masks: np.ndarray, pair: tuple[np.ndarray, np.ndarray], axis: int) -> np.ndarray:
    first = np.take(masks, pair[0], axis=axis)
    if np.array_equal(pair[0], pair[1]):
        return first
    first |= np.take(masks, pair[1], axis=axis)
    return first


def to_image_dtype(images: np.ndarray, dtype: str) -> np.ndarray:
    """[0, 1] floats -> ``uint8`` (``round(255 x)``) or ``float16``, clipping to the range."""
    if dtype == "uint8":
        scaled = np.multiply(images, np.float32(255), dtype=np.float32)
        scaled += np.float32(0.5)
        np.clip(scaled, 0, 255, out=scaled)
        return scaled.astype(np.uint8)  # truncating 255 x + 0.5 rounds 255 x
    if dtype == "float16":
        return np.clip(images, 0, 1).astype(np.float16)
    raise unknown_choice("image_dtype", dtype, IMAGE_DTYPES)


def choose_modalities(
    available: Iterable[str], request: str | Sequence[str], dataset: str = ""
) -> tuple[str, ...]:
    """The modalities a case contributes, in the order of ``MODALITIES``.

    ``"paper"``: FLAIR, T2 and one T1 (T1c for BraTS datasets, as the authors did, else T1;
    whichever of the two exists otherwise); a case with none of them (a CT scan, an nnU-Net
    channel named ``MRI``) contributes every channel: the paper's choice is about brain MRI
    and says nothing of other images. ``"all"``: every available one; a list: exactly those,
    in the given order. Raises ValueError when a listed modality is missing or the choice is
    empty."""
    have = set(available)
    if isinstance(request, str):
        every = [m for m in MODALITIES if m in have] + sorted(have - set(MODALITIES))
        if request == "all":
            chosen = every
        elif request == "paper":
            t1_order = ("t1c", "t1") if "brats" in dataset.lower() else ("t1", "t1c")
            t1 = next((m for m in t1_order if m in have), None)
            chosen = [m for m in MODALITIES if m in have and m in ("flair", "t2", t1)] or every
        else:
            raise OptionError(f"modalities must be one of {MODALITY_PRESETS} or a list")
        if not chosen:
            raise DataValueError(f"none of the modalities wanted ({request}) is available")
        return tuple(chosen)
    missing = [m for m in request if m not in have]
    if missing:
        has = ", ".join(sorted(have)) or "none"
        raise DataValueError(f"no {', '.join(missing)} image (the case has: {has})")
    return tuple(request)


def preprocess_images(
    volumes: Sequence[np.ndarray],
    options: PreprocessOptions,
    slices: slice | np.ndarray = slice(None),
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """The image half of :func:`slice_case`, shared with ``calf predict`` so that a file is
    preprocessed for prediction exactly as ``calf prepare`` stores it for training.

    ``volumes``: one ``(X, Y, Z)`` array per channel; ``slices``: which of the Z slices.
    Each volume is normalised (``options.normalise``), its slices are moved first, padded to
    a square (``keep_aspect``), resized to ``options.size`` and quantised to
    ``options.image_dtype``. Returns ``(K, C, size, size)`` images and the side of the
    (padded) slices before resizing. ValueError (prefixed with the channel's name from
    ``names``) for NaN or infinite intensities."""
    labels = list(names) if names is not None else [f"channel {c}" for c in range(len(volumes))]
    first = np.asarray(volumes[0])
    count = len(range(first.shape[-1])[slices]) if isinstance(slices, slice) else len(slices)
    stack = np.empty((count, len(volumes), *first.shape[:2]), dtype=np.float32)
    for c, (name, image) in enumerate(zip(labels, volumes, strict=True)):
        try:
            normalised = normalise(image, options.normalise)
        except ValueError as err:
            raise DataValueError(f"{name}: {err}") from None
        stack[:, c] = np.moveaxis(normalised[..., slices], -1, 0)
    if options.keep_aspect:
        stack = pad_to_square(stack)
    side_x, side_y = stack.shape[-2:]
    images = to_image_dtype(resize_images(stack, options.size), options.image_dtype)
    return images, (int(side_x), int(side_y))


# -- one case -------------------------------------------------------------------------------


def slice_case(volumes: CaseVolumes, options: PreprocessOptions) -> CaseSlices:
    """Turn one loaded case into its cache rows (see :class:`CaseSlices`).

    Rows are ordered modality by modality, slice by slice (stacked: slice by slice).
    Raises :class:`CaseError` for a missing modality, inconsistent shapes or non-finite
    intensities."""
    case_id = volumes.case_id
    try:
        chosen = choose_modalities(volumes.images, options.modalities, volumes.dataset)
    except ValueError as err:
        raise CaseError(case_id, str(err)) from None
    label = np.asarray(volumes.label)
    if label.ndim != 3:
        raise CaseError(case_id, f"the label volume has shape {label.shape}, expected 3 axes")
    raw = [np.asarray(volumes.images[m]) for m in chosen]
    for name, image in zip(chosen, raw, strict=True):
        if image.shape != label.shape:
            raise CaseError(
                case_id, f"the {name} image has shape {image.shape}, the label {label.shape}"
            )

    keep = np.arange(label.shape[-1])
    if options.drop_outside_brain:
        keep = keep[~outside_brain(raw)]
    # Every slice kept: a plain view instead of a copy by fancy indexing.
    chosen_slices: slice | np.ndarray = slice(None) if len(keep) == label.shape[-1] else keep
    try:
        images, (side_x, side_y) = preprocess_images(raw, options, chosen_slices, chosen)
    except ValueError as err:
        raise CaseError(case_id, str(err)) from None
    try:
        masks = np.moveaxis(binary_mask(label, options.labels)[..., chosen_slices], -1, 0)
    except ValueError as err:
        raise CaseError(case_id, str(err)) from None
    if options.keep_aspect:
        masks = pad_to_square(masks)
    out_masks = resize_masks(masks, options.size, options.mask_resize).view(np.uint8)

    if options.stack:
        modality = ["+".join(chosen)] * len(keep)
        slice_index = keep.astype(np.int64)
    else:  # (K, M, S, S) -> (M * K, 1, S, S): every modality of a slice is its own sample
        m = len(chosen)
        images = images.transpose(1, 0, 2, 3).reshape(m * len(keep), 1, *images.shape[-2:])
        out_masks = np.tile(out_masks, (m, 1, 1))
        modality = [name for name in chosen for _ in keep]
        slice_index = np.tile(keep, m).astype(np.int64)
    spacing = volumes.spacing
    return CaseSlices(
        images=np.ascontiguousarray(images),
        masks=np.ascontiguousarray(out_masks),
        modality=modality,
        slice_index=slice_index,
        area=foreground_areas(out_masks).numpy().astype(np.int64),
        pixel_spacing=(
            float(spacing[0]) * side_x / options.size,
            float(spacing[1]) * side_y / options.size,
        ),
    )
