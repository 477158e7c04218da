"""The synthetic source: the reader interface, determinism, lesion geometry, and that its
presets reach every branch of CALF's rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from calfseg.data.sources.base import CaseError, CaseFiles, SourceReader
from calfseg.data.sources.synthetic import (
    BRANCH_PRESETS,
    SYNTHETIC_PRESETS,
    SyntheticParams,
    SyntheticSource,
    beta_shape_for_skewness,
    generate_cases,
    slice_areas,
)
from calfseg.rule import select_branch
from calfseg.stats import AreaMoments, foreground_areas

SMALL = {"n_cases": 6, "slices_per_case": 16, "size": 32}


def test_implements_the_reader_interface():
    source = SyntheticSource(**SMALL)
    assert isinstance(source, SourceReader) and source.name == "synthetic"
    assert not SyntheticSource.detect(Path("."))
    cases = source.find_cases(None)
    assert [c.case_id for c in cases] == [f"synth-{i:03d}" for i in range(6)]
    assert all(c.dataset == "synthetic" and c.images == {} and c.label is None for c in cases)
    assert all(c.files == () and c.problems == () for c in cases)


def test_load_gives_flair_and_labels_in_the_canonical_layout():
    source = SyntheticSource(**SMALL)
    volumes = source.load(source.find_cases(None)[1])
    image = volumes.images["flair"]
    assert list(volumes.images) == ["flair"]
    assert image.shape == (32, 32, 16) and image.dtype == np.float32
    assert np.isfinite(image).all() and image.min() >= 0
    assert volumes.label.shape == (32, 32, 16) and volumes.label.dtype == np.uint8
    assert set(np.unique(volumes.label)) <= {0, 1, 2}
    assert volumes.spacing == (1.0, 1.0, 1.0) and volumes.affine.shape == (4, 4)
    # the lesion is brighter than the tissue around it
    lesion = volumes.label > 0
    assert image[lesion].mean() > image[~lesion & (image > 0.2)].mean()


def test_generation_is_deterministic_in_seed_and_case():
    a = list(generate_cases(SyntheticSource(seed=3, **SMALL)))
    b = list(generate_cases(SyntheticSource(seed=3, **SMALL)))
    c = list(generate_cases(SyntheticSource(seed=4, **SMALL)))
    assert len(a) == 6
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.images["flair"], y.images["flair"])
        np.testing.assert_array_equal(x.label, y.label)
    assert not np.array_equal(a[0].images["flair"], c[0].images["flair"])
    assert not np.array_equal(a[0].images["flair"], a[1].images["flair"])
    # loading one case alone gives the same as loading it in sequence
    alone = SyntheticSource(seed=3, **SMALL).load(CaseFiles("synth-004", "synthetic", {}, None))
    np.testing.assert_array_equal(alone.label, a[4].label)


@pytest.mark.parametrize("fraction", [0.0, 0.12, 0.41, 0.97, 1.0])
def test_the_fraction_of_tumour_slices_is_exact(fraction):
    source = SyntheticSource(tumour_fraction=fraction, **SMALL)
    areas = slice_areas(source)
    assert areas.size == 6 * 16
    assert int((areas > 0).sum()) == round(fraction * 6 * 16)


def test_lesions_are_one_run_of_slices_growing_then_shrinking():
    source = SyntheticSource("paper-like", n_cases=8)
    for volumes in generate_cases(source):
        area = np.count_nonzero(volumes.label, axis=(0, 1))
        slices = np.flatnonzero(area)
        if slices.size < 5:
            continue
        assert np.all(np.diff(slices) == 1)  # one contiguous run
        run = area[slices]
        middle = run[run.size // 3 : 2 * run.size // 3 + 1].max()
        assert run[0] < middle and run[-1] < middle
        # neighbouring slices overlap (3D-coherent shape)
        mask = volumes.label > 0
        for k in slices[1:-1]:
            assert np.logical_and(mask[..., k], mask[..., k + 1]).any()


def test_slice_areas_are_the_foreground_areas_of_every_slice():
    source = SyntheticSource(**SMALL)
    labels = np.concatenate([np.moveaxis(v.label, -1, 0) for v in generate_cases(source)])
    np.testing.assert_array_equal(foreground_areas(labels).numpy(), slice_areas(source))


def test_sub_regions_can_be_turned_off():
    params = dataclasses.replace(SyntheticParams(**SMALL), sub_regions=False)
    labels = np.concatenate([v.label.ravel() for v in generate_cases(SyntheticSource(params))])
    assert set(np.unique(labels)) == {0, 1}


@pytest.mark.parametrize("skewness", [-1.9, -1.0, -0.3, 0.0, 0.4, 1.2, 1.99])
def test_beta_shape_has_the_asked_skewness(skewness):
    a, b = beta_shape_for_skewness(skewness)
    assert 1.0 in (a, b)
    assert float(scipy.stats.beta.stats(a, b, moments="s")) == pytest.approx(skewness, abs=1e-9)


def test_size_skewness_sets_the_skewness_of_the_peak_areas():
    for skewness in (-1.2, 0.0, 1.2):
        source = SyntheticSource(n_cases=200, size_skewness=skewness)
        assert scipy.stats.skew(source._plan.peak_area) == pytest.approx(skewness, abs=0.1)


@pytest.mark.parametrize(("branch", "preset"), sorted(BRANCH_PRESETS.items()))
@pytest.mark.slow
def test_every_branch_of_the_rule_is_reachable(branch, preset):
    source = SyntheticSource(preset)
    labels = np.concatenate([np.moveaxis(v.label, -1, 0) for v in generate_cases(source)])
    areas = foreground_areas(labels)  # every slice, empty ones as 0
    moments = AreaMoments.from_areas(areas)
    selection = select_branch(moments.skewness(), moments.kurtosis())
    assert selection.branch == branch.split(" ")[0]
    if branch == "log10 (K < 0)":
        assert selection.condition == "0 < S <= 0.5 and K < 0"


def test_presets_are_documented_and_valid():
    assert set(BRANCH_PRESETS.values()) <= set(SYNTHETIC_PRESETS)
    for name, preset in SYNTHETIC_PRESETS.items():
        assert preset.description and isinstance(preset.params, SyntheticParams), name


def test_overrides_and_errors():
    source = SyntheticSource("small-rois", n_cases=3, size=24, slices_per_case=5, seed=1)
    assert (source.params.n_cases, source.params.size) == (3, 24)
    assert source.params.tumour_fraction == SYNTHETIC_PRESETS["small-rois"].params.tumour_fraction
    with pytest.raises(ValueError, match="unknown synthetic preset 'huge'; known: paper-like"):
        SyntheticSource("huge")
    with pytest.raises(ValueError, match="size_skewness must be in"):
        SyntheticSource(size_skewness=2.5)
    with pytest.raises(ValueError, match="tumour_fraction"):
        SyntheticSource(tumour_fraction=1.5)
    with pytest.raises(ValueError, match="n_cases must be an integer >= 1"):
        SyntheticSource(n_cases=0)
    with pytest.raises(ValueError, match="seed"):
        SyntheticSource(seed=-2)
    with pytest.raises(CaseError, match="not a case of this synthetic source"):
        source.load(CaseFiles("synth-999", "synthetic", {}, None))
    with pytest.raises(CaseError):
        source.load(CaseFiles("synth-000", "brats", {}, None))
