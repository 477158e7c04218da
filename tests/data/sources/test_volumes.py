"""CaseBuilder: the checks every layout shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calfseg.data.sources.base import CaseError, CaseFiles
from calfseg.data.sources.volumes import CaseBuilder, Volume, compact_labels

CASE = CaseFiles("c1", "test", {}, None)


def _label(shape=(4, 4, 2)) -> Volume:
    return Volume(np.zeros(shape, np.int16), Path("seg.nii.gz"), np.eye(4), (1.0, 1.0, 1.0))


def test_nan_image_is_refused():
    image = np.ones((4, 4, 2), np.float32)
    image[0, 0, 0] = np.nan
    with pytest.raises(CaseError, match=r"case c1 \(flair\.nii\.gz\).*NaN"):
        CaseBuilder(CASE, _label()).add("flair", Volume(image, Path("flair.nii.gz")))


def test_images_without_geometry_take_the_label_geometry():
    builder = CaseBuilder(CASE, _label())
    builder.add("image", Volume(np.ones((4, 4, 2)), Path("a.png")))
    result = builder.finish()
    assert result.images["image"].dtype == np.float32
    assert result.label.dtype == np.uint8
    np.testing.assert_array_equal(result.affine, np.eye(4))


def test_case_without_images_is_refused():
    with pytest.raises(CaseError, match="no image"):
        CaseBuilder(CASE, _label()).finish()


def test_compact_labels_keeps_large_or_negative_labels_in_int32():
    assert compact_labels(np.array([0, 4], np.int64)).dtype == np.uint8
    assert compact_labels(np.array([0, 300], np.int64)).dtype == np.int32
    assert compact_labels(np.array([-1, 2], np.int16)).dtype == np.int32
