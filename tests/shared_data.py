"""Where the project's shared real data lies: ``../shared/data`` beside the checkout."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BRATS2015_SUBSET = SHARED_DATA / "brats2015_subset"
