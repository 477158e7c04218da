"""The public surface: ``from calfseg import ...`` gives the front door, lazily; the
subpackages' ``__all__`` list only what users call."""

from __future__ import annotations

import subprocess
import sys

import pytest

import calfseg
import calfseg.losses
import calfseg.models

FRONT_DOOR = {"CALFLoss", "RegionCALFLoss", "analyze", "build_loss", "build_model"}

LOSSES_API = {
    "BRANCH_LOSSES",
    "BranchLoss",
    "LOSSES",
    "PAPER_LOSSES",
    "CALFLoss",
    "DegenerateStatisticsWarning",
    "LossSpec",
    "RegionCALFLoss",
    "branch_loss",
    "build_loss",
    "list_losses",
}

# Optional dependencies that `import calfseg` must not pull in (they load on use only).
OPTIONAL = ["torch", "numpy", "segmentation_models_pytorch", "monai", "matplotlib", "scipy"]


def _loaded_after(statement: str, modules: list[str]) -> list[str]:
    """The modules of ``modules`` present in sys.modules after ``statement``, in a fresh
    interpreter (this one has imported everything already)."""
    code = f"import sys\n{statement}\nprint(','.join(m for m in {modules!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_all_is_exactly_the_front_door():
    assert set(calfseg.__all__) == FRONT_DOOR
    assert len(calfseg.__all__) == len(FRONT_DOOR)


def test_each_front_door_name_is_the_object_its_module_defines():
    from calfseg import CALFLoss, RegionCALFLoss, analyze, build_loss, build_model
    from calfseg.analysis import analyze as analysis_analyze
    from calfseg.losses.calf import CALFLoss as calf_CALFLoss
    from calfseg.losses.region import RegionCALFLoss as region_RegionCALFLoss
    from calfseg.losses.registry import build_loss as registry_build_loss
    from calfseg.models.factory import build_model as factory_build_model

    assert CALFLoss is calf_CALFLoss
    assert RegionCALFLoss is region_RegionCALFLoss
    assert build_loss is registry_build_loss
    assert build_model is factory_build_model
    assert analyze is analysis_analyze
    assert callable(analyze)


def test_the_front_door_builds_what_it_names():
    assert isinstance(calfseg.build_loss("calf"), calfseg.CALFLoss)
    model = calfseg.build_model("unet", preset="tiny")
    assert sum(p.numel() for p in model.parameters()) > 0


def test_dir_shows_the_front_door():
    assert FRONT_DOOR <= set(dir(calfseg))
    assert "__version__" in dir(calfseg)


def test_an_unknown_name_is_an_attribute_error_that_names_it():
    with pytest.raises(AttributeError, match="'no_such_thing'"):
        _ = calfseg.no_such_thing  # type: ignore[attr-defined]


def test_import_calfseg_loads_no_dependency_and_no_part():
    assert _loaded_after("import calfseg", OPTIONAL) == []
    code_parts = ["calfseg.losses", "calfseg.models", "calfseg.data", "calfseg.train"]
    assert _loaded_after("import calfseg", code_parts) == []


@pytest.mark.slow
def test_the_loss_loads_torch_but_not_the_optional_model_and_plot_libraries():
    loaded = _loaded_after("from calfseg import CALFLoss", OPTIONAL)
    assert "torch" in loaded
    assert not {"segmentation_models_pytorch", "monai", "matplotlib"} & set(loaded)


def test_losses_all_lists_only_what_users_call():
    assert set(calfseg.losses.__all__) == LOSSES_API
    assert len(calfseg.losses.__all__) == len(LOSSES_API)
    for name in calfseg.losses.__all__:
        assert getattr(calfseg.losses, name) is not None
    # the dead listing for a `calf losses` command that never existed is gone
    assert not hasattr(calfseg.losses, "format_losses")
    assert not hasattr(calfseg.losses.registry, "format_losses")


@pytest.mark.parametrize(
    "package", ["calfseg.losses", "calfseg.models", "calfseg.metrics", "calfseg.stats"]
)
def test_every_name_in_all_is_importable(package):
    module = __import__(package, fromlist=["__all__"])
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_preset_tables_have_names_that_say_what_they_hold():
    # three tables once shared the name PRESETS
    from calfseg.bench import BENCHMARK_PRESETS
    from calfseg.data.sources.synthetic import SYNTHETIC_PRESETS
    from calfseg.models import MODEL_PRESETS

    assert set(MODEL_PRESETS) == {"tiny", "paper", "authors"}
    assert "paper" in BENCHMARK_PRESETS
    assert "small-rois" in SYNTHETIC_PRESETS
    for package in (calfseg.models, calfseg.losses):
        assert not hasattr(package, "PRESETS")
