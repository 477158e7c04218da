"""calfseg.extras.require: optional dependencies on demand, without their import noise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from calfseg.extras import MissingExtraError, require


def test_a_missing_package_names_the_extra_to_install() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'calf-seg\[ray\]'"):
        require("ray.no_such_module_here", "the test")


@pytest.mark.slow
def test_importing_smp_shows_no_deprecation_notice_from_its_dependencies() -> None:
    # timm (under smp) calls the deprecated torch.jit.interface at import time; a fresh
    # process is needed because the test session may have imported smp already.
    code = (
        "import warnings; warnings.simplefilter('error', FutureWarning)\n"
        "from calfseg.extras import require\n"
        "require('segmentation_models_pytorch', 'the test')\n"
        "print('imported')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"
    assert "FutureWarning" not in done.stderr
