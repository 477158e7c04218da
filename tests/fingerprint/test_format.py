"""The one fingerprint format: it round-trips, and the one loader refuses what it cannot
read with a message naming the file and the fix."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from calfseg.fingerprint import (
    FINGERPRINT_FORMAT,
    Fingerprint,
    FingerprintError,
    fingerprint_of_areas,
    load_fingerprint,
    save_fingerprint,
)
from calfseg.rule import Thresholds
from calfseg.stats import AreaMoments

AREAS = [0.0, 0.0, 3.0, 5.0, 8.0, 13.0, 40.0, 0.0, 2.0, 100.0]


def test_a_full_fingerprint_round_trips_through_its_file(tmp_path: Path) -> None:
    fp = fingerprint_of_areas(
        AREAS, batch_size=4, batches=50, bootstrap=20, seed=3, measured={"path": "x", "n": 1}
    )
    path = save_fingerprint(fp, tmp_path / "sub" / "fp.json")  # parent created
    again = load_fingerprint(path)
    assert again == fp  # moments, thresholds, measured and the whole summary
    assert again.areas is None  # the areas are never written
    document = json.loads(path.read_text())
    assert document["format"] == FINGERPRINT_FORMAT == "calfseg.fingerprint/1"
    assert document["branch"] == fp.branch and document["count"] == len(AREAS)


def test_undefined_statistics_are_null_in_the_file_and_nan_again(tmp_path: Path) -> None:
    fp = fingerprint_of_areas([5.0] * 6, batch_size=2, batches=5, bootstrap=3)
    text = (fp.save(tmp_path / "fp.json")).read_text()
    document = json.loads(text)  # strict JSON: NaN would be refused by json.dumps first
    assert document["skewness"] is None and document["branch"] == "bce_dice"
    again = load_fingerprint(tmp_path / "fp.json")
    assert math.isnan(again.skewness) and again.summary is not None
    assert again.summary.batch is not None and math.isnan(again.summary.batch.skewness_median)


def test_custom_thresholds_are_kept() -> None:
    table = Thresholds(ln=0.25)
    fp = Fingerprint(AreaMoments.from_areas(AREAS), thresholds=table)
    assert Fingerprint.from_dict(json.loads(json.dumps(fp.to_dict()))).thresholds == table


def test_the_flat_moments_format_of_older_caches_is_converted(tmp_path: Path) -> None:
    moments = AreaMoments.from_areas(AREAS)
    path = tmp_path / "fingerprint.json"
    path.write_text(json.dumps(moments.to_dict()))  # "calfseg.area_moments/1"
    fp = load_fingerprint(tmp_path)  # a folder: its fingerprint.json
    assert fp.moments == moments and fp.summary is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "cannot read it as JSON"),
        ("[1, 2]", "a JSON object is expected"),
        ('{"count": 3}', "no 'format' key"),
        ('{"format": "calfseg.fingerprint/9", "count": 3}', "unknown format"),
        (
            '{"format": "calfseg.analysis/1", "moments": {}}',
            "calf analyze MASKS --json",  # the old report: the command that rewrites it
        ),
        ('{"format": "calfseg.fingerprint/1", "count": 3}', "lacks the field(s)"),
        (
            '{"format": "calfseg.fingerprint/1", "count": 2, "mean": 1, "m2": -1, "m3": 0, '
            '"m4": 1}',
            "must be >= 0",
        ),
    ],
)
def test_the_loader_refuses_with_the_file_name_and_the_fix(
    tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(FingerprintError) as info:
        load_fingerprint(path)
    message = str(info.value)
    assert str(path) in message and says in message


def test_a_missing_file_or_a_folder_without_one_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no fingerprint file .*nope\.json"):
        load_fingerprint(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match=r"without fingerprint\.json"):
        load_fingerprint(tmp_path)


def test_undefined_reason_names_the_case() -> None:
    assert fingerprint_of_areas(AREAS, bootstrap=0).undefined_reason is None
    empty = fingerprint_of_areas(np.zeros(4), bootstrap=0)
    assert "all 4 masks are empty" in str(empty.undefined_reason)
    bare = Fingerprint(AreaMoments.from_areas([7.0, 7.0]))  # moments only: no empty count
    assert "all 2 areas are equal" in str(bare.undefined_reason)
