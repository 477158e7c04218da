"""The core (stats, rule, losses) imports with torch and numpy alone; extras load on demand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from calfseg.extras import MissingExtraError, require

HEAVY = ["cv2", "nibabel", "PIL", "tifffile", "tqdm", "matplotlib", "scipy"]


@pytest.mark.slow
def test_core_does_not_import_optional_packages():
    # torch may pull some of these in itself (tqdm, when installed); only what the core
    # adds on top of torch and numpy counts.
    code = (
        "import sys\n"
        "import numpy, torch\n"
        f"before = {{m for m in {HEAVY!r} if m in sys.modules}}\n"
        "import calfseg.stats, calfseg.rule, calfseg.losses\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules and m not in before]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_missing_extra_names_the_pip_command():
    with pytest.raises(MissingExtraError, match=r"pip install 'calf-seg\[plot\]'"):
        require("matplotlib.definitely_missing_module", "plotting")
