"""Synthetic brain-like volumes with blob lesions: the project's built-in data.

:class:`SyntheticSource` is a :class:`~calfseg.data.sources.base.SourceReader` (name
``"synthetic"``) whose cases are generated, deterministically from ``(seed, case id)``,
instead of read. Each case is one FLAIR-like volume ``(size, size, slices)`` (axial last):
a textured ellipsoidal "brain" inside a dim "skull", and one lesion that spans a run of
neighbouring slices, growing then shrinking, with an irregular outline (a star-shaped blob
with drifting boundary harmonics, plus satellite blobs), a core (label 2) inside the
outer region (label 1), and a contrast that varies between cases.

What CALF looks at, the distribution of per-slice foreground areas (empty slices count as
0), is controlled by three numbers:

- ``tumour_fraction``: the fraction of slices that contain lesion (exact: run lengths are
  rounded so that they add up to ``round(tumour_fraction * n_cases * slices)``);
- ``size_skewness`` in (-2, 2): the skewness of the lesions' peak areas across cases, which
  are drawn (stratified) from ``Beta(1, b)`` for a positive value (many small, few large)
  or ``Beta(a, 1)`` for a negative one (many large, few small), then mapped affinely so
  that the smallest case's peak is ``area_range[0]`` and the largest's ``area_range[1]``
  (fractions of the slice area);
  skew of Beta(α, β) = 2 (β - α) sqrt(α + β + 1) / ((α + β + 2) sqrt(α β));
- ``profile`` p: the lesion's radius along its run is ``(1 - |2t - 1|^p)^(1/p)``, t in
  (0, 1); p = 2 is an ellipsoid, large p a flat-topped cylinder, p = 1 a double cone.

Slice-level skewness S (what the rule sees) follows from all three: many empty slices
plus right-skewed sizes give a large positive S; few empty slices and flat-topped lesions
of similar, large sizes give S <= -1. ``SYNTHETIC_PRESETS`` lists settings for each region of the
rule; docs/data.md has their measured S, K and branch.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import numpy as np

from calfseg.data.sources.base import CaseError, CaseFiles, CaseVolumes, SourceReader
from calfseg.errors import OptionError, unknown_choice

DATASET = "synthetic"
MODALITY = "flair"
_MAX_SKEW = 2.0  # |skewness| of Beta(1, b) and Beta(a, 1) tends to 2 (exponential limit)


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that shapes a synthetic dataset (see the module docstring)."""

    n_cases: int = 24
    slices_per_case: int = 32
    size: int = 64
    tumour_fraction: float = 0.41  # fraction of slices with lesion
    size_skewness: float = 1.2  # skewness of the lesions' peak areas, in (-2, 2)
    area_range: tuple[float, float] = (0.01, 0.14)  # peak lesion area / slice area
    profile: float = 2.0  # z-profile exponent p (2: ellipsoid; large: flat-topped)
    run_jitter: float = 0.4  # relative spread of the lesions' run lengths
    irregularity: float = 0.25  # amplitude of the outline's harmonics
    satellites: int = 2  # at most this many satellite blobs per lesion
    contrast: tuple[float, float] = (0.15, 0.5)  # lesion brightness over the tissue
    noise: float = 0.03  # standard deviation of the voxel noise
    sub_regions: bool = True  # label 2 (core) inside label 1; False: labels 0/1 only

    def __post_init__(self) -> None:
        for name in ("n_cases", "slices_per_case", "size", "satellites"):
            value = getattr(self, name)
            low = 0 if name == "satellites" else (8 if name == "size" else 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise OptionError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 <= self.tumour_fraction <= 1:
            raise OptionError(f"tumour_fraction must be in [0, 1], got {self.tumour_fraction!r}")
        if not -_MAX_SKEW < self.size_skewness < _MAX_SKEW:
            raise OptionError(f"size_skewness must be in (-2, 2), got {self.size_skewness!r}")
        lo, hi = self.area_range
        if not 0 < lo <= hi <= 0.3:
            raise OptionError(f"area_range must satisfy 0 < lo <= hi <= 0.3, got {self.area_range}")
        for name in ("profile", "run_jitter", "irregularity", "noise"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "profile" and value <= 0):
                raise OptionError(f"{name} must be a finite number >= 0 (profile > 0), got {value}")
        if self.irregularity >= 0.6:
            raise OptionError(f"irregularity must be below 0.6, got {self.irregularity}")
        if not 0 <= self.contrast[0] <= self.contrast[1]:
            raise OptionError(f"contrast must be (lo, hi) with 0 <= lo <= hi, got {self.contrast}")


class Preset(NamedTuple):
    description: str
    params: SyntheticParams


_BASE = SyntheticParams()
SYNTHETIC_PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "paper-like": Preset(
            "41 % tumour slices (as the paper's pooled data), right-skewed lesion sizes: "
            "S >= 1 -> log10. Small enough to train on a CPU in minutes.",
            _BASE,
        ),
        "small-rois": Preset(
            "small lesions (0.2-2 % of the slice) on few slices (12 %): S >> 1 -> log10.",
            dataclasses.replace(
                _BASE, tumour_fraction=0.12, area_range=(0.002, 0.02), size_skewness=1.5
            ),
        ),
        "left-skewed": Preset(
            "lesions on 98 % of the slices, flat-topped, mostly large: S <= -1 -> fisher.",
            dataclasses.replace(
                _BASE, tumour_fraction=0.98, size_skewness=-1.9, profile=16.0, run_jitter=0.1
            ),
        ),
        "moderate-left": Preset(
            "lesions on 96 % of the slices, sizes left-skewed: -1 < S <= -0.5 -> logit.",
            dataclasses.replace(
                _BASE,
                tumour_fraction=0.96,
                size_skewness=-1.4,
                profile=5.0,
                run_jitter=0.1,
                satellites=0,
            ),
        ),
        "mild-left": Preset(
            "lesions on 93 % of the slices, sizes mildly left-skewed: -0.5 < S < 0 -> arcsine.",
            dataclasses.replace(_BASE, tumour_fraction=0.93, size_skewness=-1.0, profile=3.0),
        ),
        "moderate-right": Preset(
            "lesions on 68 % of the slices, uniform sizes: 0.5 <= S < 1 -> ln.",
            dataclasses.replace(_BASE, tumour_fraction=0.68, size_skewness=0.0, profile=2.5),
        ),
        "platykurtic": Preset(
            "45 % tumour slices, flat-topped lesions of nearly one size: an almost two-valued "
            "distribution, 0 < S <= 0.5 and K < 0 -> log10.",
            dataclasses.replace(
                _BASE,
                tumour_fraction=0.45,
                size_skewness=0.0,
                area_range=(0.09, 0.11),
                profile=12.0,
                run_jitter=0.1,
            ),
        ),
        "leptokurtic": Preset(
            "lesions on 92 % of the slices, most of a similar size, a few much larger: a peak "
            "with tails on both sides, 0 < S <= 0.5 and K >= 0 -> bce_dice.",
            dataclasses.replace(
                _BASE,
                tumour_fraction=0.92,
                size_skewness=1.9,
                area_range=(0.06, 0.2),
                profile=8.0,
                run_jitter=0.1,
            ),
        ),
    }
)
# The preset that lands in each row of the rule (docs/method.md section 3), for tests and docs.
BRANCH_PRESETS: Mapping[str, str] = MappingProxyType(
    {
        "fisher": "left-skewed",
        "logit": "moderate-left",
        "arcsine": "mild-left",
        "log10": "paper-like",
        "ln": "moderate-right",
        "log10 (K < 0)": "platykurtic",
        "bce_dice": "leptokurtic",
    }
)


class SyntheticSource(SourceReader):
    """Generated cases (no files): a preset, optionally with some parameters overridden.

    Args:
        preset: a name in :data:`SYNTHETIC_PRESETS`, or a :class:`SyntheticParams`.
        n_cases, slices_per_case, size, tumour_fraction, size_skewness: override the
            preset's values.
        seed: with the case id, determines every case's volumes.
    """

    name: ClassVar[str] = "synthetic"
    description: ClassVar[str] = (
        "generated in memory, no files (presets: " + ", ".join(SYNTHETIC_PRESETS) + ")"
    )

    def __init__(
        self,
        preset: str | SyntheticParams = "paper-like",
        *,
        n_cases: int | None = None,
        slices_per_case: int | None = None,
        size: int | None = None,
        tumour_fraction: float | None = None,
        size_skewness: float | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(preset, SyntheticParams):
            params, self.preset = preset, "custom"
        elif preset in SYNTHETIC_PRESETS:
            params, self.preset = SYNTHETIC_PRESETS[preset].params, preset
        else:
            raise unknown_choice("synthetic preset", preset, SYNTHETIC_PRESETS, valid="known")
        overrides: dict[str, Any] = {
            "n_cases": n_cases,
            "slices_per_case": slices_per_case,
            "size": size,
            "tumour_fraction": tumour_fraction,
            "size_skewness": size_skewness,
        }
        self.params = dataclasses.replace(
            params, **{k: v for k, v in overrides.items() if v is not None}
        )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise OptionError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        width = max(3, len(str(self.params.n_cases - 1)))
        self.case_ids = tuple(f"synth-{i:0{width}d}" for i in range(self.params.n_cases))
        self._plan = _plan_cases(self.params, seed)

    @classmethod
    def detect(cls, root: Path) -> bool:
        return False  # nothing on disk is synthetic

    def find_cases(self, root: Path | None = None) -> list[CaseFiles]:
        """The generated cases; ``root`` is ignored (may be None)."""
        return [CaseFiles(case_id, DATASET, {}, None) for case_id in self.case_ids]

    def load(self, case: CaseFiles) -> CaseVolumes:
        if case.dataset != DATASET or case.case_id not in self._plan.position:
            raise CaseError(case.case_id, f"not a case of this synthetic source ({self.preset})")
        i = self._plan.position[case.case_id]
        rng = _case_rng(self.seed, case.case_id)
        image, label = _generate_case(
            self.params, rng, float(self._plan.peak_area[i]), int(self._plan.run_length[i])
        )
        return CaseVolumes(case.case_id, DATASET, {MODALITY: image}, label, spacing=(1.0, 1.0, 1.0))

    def __repr__(self) -> str:
        return f"SyntheticSource({self.preset!r}, seed={self.seed}, {self.params})"


def generate_cases(source: SyntheticSource) -> Iterator[CaseVolumes]:
    """Every case of ``source``, generated one at a time."""
    for case in source.find_cases(None):
        yield source.load(case)


def slice_areas(source: SyntheticSource) -> np.ndarray:
    """Foreground pixel count (label > 0) of every axial slice of every case, in case order
    (empty slices included, as 0): the areas whose moments CALF's rule reads."""
    areas = [np.count_nonzero(v.label, axis=(0, 1)) for v in generate_cases(source)]
    return np.concatenate(areas).astype(np.float64)


# -- the plan: what each case gets, drawn once for the whole dataset ----------------------


@dataclass(frozen=True)
class _Plan:
    peak_area: np.ndarray  # (n_cases,) peak lesion area in pixels
    run_length: np.ndarray  # (n_cases,) slices with lesion
    position: dict[str, int] = field(default_factory=dict)


def beta_shape_for_skewness(skewness: float) -> tuple[float, float]:
    """``(a, b)`` with one of them 1 such that Beta(a, b) has the given skewness in (-2, 2)
    (bisection on the closed form; (1, 1), the uniform, for 0)."""
    s = abs(float(skewness))
    if s >= _MAX_SKEW:
        raise OptionError(f"skewness must be in (-2, 2), got {skewness!r}")
    if s == 0:
        return 1.0, 1.0

    def skew_of(b: float) -> float:  # skewness of Beta(1, b)
        return 2 * (b - 1) * math.sqrt(b + 2) / ((b + 3) * math.sqrt(b))

    lo, hi = 0.0, 40.0  # log(b): skew_of grows monotonically from 0 (b = 1) towards 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if skew_of(math.exp(mid)) < s else (lo, mid)
    b = math.exp(0.5 * (lo + hi))
    return (1.0, b) if skewness > 0 else (b, 1.0)


def _beta_quantile(u: np.ndarray, a: float, b: float) -> np.ndarray:
    """Quantile of Beta(a, 1) (``u^(1/a)``) or Beta(1, b) (``1 - (1-u)^(1/b)``, evaluated
    as ``-expm1(log1p(-u) / b)``, which keeps its digits for the large b near skewness 2)."""
    if a == 1.0:
        return -np.expm1(np.log1p(-u) / b)
    return u ** (1.0 / a)


def _plan_cases(p: SyntheticParams, seed: int) -> _Plan:
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(b"synthetic-plan")]))
    n, z = p.n_cases, p.slices_per_case
    # Peak areas: the n quantiles at the band midpoints (i + 0.5) / n, dealt to the cases in
    # a random order, so that the sizes' distribution is the asked one even for a few dozen
    # cases and does not hinge on the luck of the smallest or largest draw.
    u = (rng.permutation(n) + 0.5) / n
    a, b = beta_shape_for_skewness(p.size_skewness)
    lo, hi = p.area_range
    x = _beta_quantile(u, a, b)
    spread = float(x.max() - x.min())
    # An affine map keeps the skewness: the smallest case gets lo, the largest hi.
    x = (x - x.min()) / spread if spread > 0 else np.full(n, 0.5)
    peak_area = (lo + (hi - lo) * x) * p.size * p.size
    # Run lengths: jittered around tumour_fraction * z, then nudged to the exact total.
    target = round(p.tumour_fraction * n * z)
    raw = p.tumour_fraction * z * (1 + p.run_jitter * (2 * rng.random(n) - 1))
    run = np.clip(np.round(raw), 0, z).astype(np.int64)
    order = rng.permutation(n)
    while run.sum() != target:
        step = 1 if run.sum() < target else -1
        room = run < z if step > 0 else run > 0
        # one slice more (or fewer) for each case with room, in a fixed random order
        for i in order[room[order]][: abs(target - int(run.sum()))]:
            run[i] += step
    width = max(3, len(str(n - 1)))
    position = {f"synth-{i:0{width}d}": i for i in range(n)}
    return _Plan(peak_area, run, position)


def _case_rng(seed: int, case_id: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(case_id.encode())]))


# -- one case -------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Gaussian noise low-pass filtered in Fourier space (correlation length ~``scale``
    voxels), normalised to unit standard deviation; float32."""
    white = rng.standard_normal(shape).astype(np.float32)
    spectrum = np.fft.rfftn(white)
    freqs = np.meshgrid(
        *[np.fft.fftfreq(s) for s in shape[:-1]], np.fft.rfftfreq(shape[-1]), indexing="ij"
    )
    k2 = sum(f * f for f in freqs)
    low_pass = np.exp(-2 * (math.pi * scale) ** 2 * k2)
    smooth = np.fft.irfftn(spectrum * low_pass, s=shape, axes=tuple(range(len(shape))))
    smooth -= smooth.mean()
    return (smooth / (smooth.std() + 1e-12)).astype(np.float32)


def _generate_case(
    p: SyntheticParams, rng: np.random.Generator, peak_area: float, run_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(image float32, label uint8)``, both ``(size, size, slices)``."""
    n, z = p.size, p.slices_per_case
    yy, xx = np.meshgrid(
        np.arange(n, dtype=np.float32), np.arange(n, dtype=np.float32), indexing="ij"
    )
    texture = _smooth_noise(rng, (n, n, z), scale=n / 16)
    # Brain: an ellipsoid whose axial cross-section shrinks towards both ends of the volume.
    depth = (np.arange(z, dtype=np.float32) + 0.5) / z * 2 - 1
    shrink = np.sqrt(1 - 0.7 * depth**2)
    ay, ax = 0.42 * n * shrink, 0.35 * n * shrink
    centre = (n - 1) / 2
    rho = np.sqrt(((yy[..., None] - centre) / ay) ** 2 + ((xx[..., None] - centre) / ax) ** 2)
    brain = np.clip((1 - rho) * n / 3, 0, 1)  # soft edge over ~3 voxels
    skull = np.clip(1 - np.abs(rho - 1.1) * 10, 0, 1)
    image = brain * (0.35 + 0.06 * texture) + 0.18 * skull
    label = np.zeros((n, n, z), dtype=np.uint8)
    if run_length > 0:
        start = int(rng.integers(0, z - run_length + 1))
        weight, outer, core = _lesion(p, rng, peak_area, run_length, yy, xx, shrink[start:])
        contrast = rng.uniform(*p.contrast)
        lesion_texture = 0.85 + 0.15 * texture[..., start : start + run_length]
        brightness = contrast * lesion_texture * np.where(core, 0.6, 1.0)
        image[..., start : start + run_length] += weight * brightness
        label[..., start : start + run_length] = np.where(core, 2 if p.sub_regions else 1, outer)
    image += p.noise * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image, 0, None).astype(np.float32), label


def _lesion(
    p: SyntheticParams,
    rng: np.random.Generator,
    peak_area: float,
    length: int,
    yy: np.ndarray,
    xx: np.ndarray,
    shrink: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One lesion over ``length`` slices: a soft image weight, the outer and core masks,
    each ``(size, size, length)``."""
    n = p.size
    t = (np.arange(length, dtype=np.float32) + 0.5) / length
    profile = (1 - np.abs(2 * t - 1) ** p.profile) ** (1 / p.profile)  # radius along z
    n_sat = int(rng.integers(0, p.satellites + 1))
    sat_scale = rng.uniform(0.3, 0.5, n_sat)
    # Share the area between the main blob and its satellites (overlap ignored).
    radius = math.sqrt(peak_area / math.pi / (1 + float(np.sum(sat_scale**2)) * 0.6))
    # Keep the lesion inside the smallest brain cross-section it spans.
    room = max(0.0, 0.3 * n * float(shrink[:length].min()) - radius)
    cy, cx = (n - 1) / 2 + rng.uniform(-room, room, 2)
    drift = rng.uniform(-0.15, 0.15, 2) * radius  # centre moves a little along the run
    cy_z = cy + drift[0] * (2 * t - 1)
    cx_z = cx + drift[1] * (2 * t - 1)
    dy = yy[..., None] - cy_z
    dx = xx[..., None] - cx_z
    dist = np.sqrt(dy * dy + dx * dx)
    # Outline: harmonics 2..5, sin(h angle + phase), whose phases drift slowly with depth
    # (coherent shapes); computed as Im(e^{i h angle} e^{i phase}) with the unit phasor
    # e^{i angle} = (dx + i dy) / dist, cheaper than arctan2 and sin.
    phasor = (dx + 1j * dy).astype(np.complex64) / np.maximum(dist, 1e-6)
    power = phasor
    wobble = np.ones_like(dist)
    for h in range(2, 6):
        power = power * phasor
        amp = p.irregularity * rng.uniform(0.3, 1.0) / h**0.5
        phase = rng.uniform(0, 2 * math.pi) + rng.uniform(-1, 1) * math.pi * t
        wobble += amp * (power * np.exp(1j * phase).astype(np.complex64)).imag
    # A radius floor of 0.75 voxel keeps at least the nearest voxel in every lesion slice.
    edge = np.maximum(radius * profile * np.maximum(wobble, 0.2), 0.75)
    inside = edge - dist  # > 0 inside
    core_edge = 0.45 * edge
    core = dist < core_edge
    for j in range(n_sat):
        theta = rng.uniform(0, 2 * math.pi)
        offset = rng.uniform(0.7, 1.1) * radius
        sy = dy - offset * math.sin(theta)
        sx = dx - offset * math.cos(theta)
        s_edge = np.maximum(sat_scale[j] * radius * profile, 0.5)
        inside = np.maximum(inside, s_edge - np.sqrt(sy * sy + sx * sx))
    outer = (inside > 0).astype(np.uint8)
    weight = np.clip(inside + 0.5, 0, 1)  # soft edge, one voxel wide
    return weight, outer, core & (outer > 0)
