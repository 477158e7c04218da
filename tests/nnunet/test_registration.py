"""register / unregister into a stand-in nnunetv2 folder; the requirement checks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from calfseg.extras import MissingExtraError
from calfseg.nnunet import registration, requirement
from calfseg.nnunet.registration import (
    MODULE_NAME,
    RegistrationError,
    is_registered,
    register,
    unregister,
)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A folder with nnunetv2's trainer folder layout."""
    root = tmp_path / "nnunetv2"
    (root / "training" / "nnUNetTrainer" / "variants").mkdir(parents=True)
    return root


def test_register_writes_a_module_that_holds_the_trainers(package: Path) -> None:
    from calfseg.nnunet import trainers

    path = register(package)
    assert path == package / "training" / "nnUNetTrainer" / "variants" / MODULE_NAME
    assert is_registered(package)
    spec = importlib.util.spec_from_file_location("written_trainers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.nnUNetTrainerCALF is trainers.nnUNetTrainerCALF
    assert module.nnUNetTrainerCALF_1epoch is trainers.nnUNetTrainerCALF_1epoch


def test_the_module_stays_importable_without_calfseg(package: Path, monkeypatch) -> None:
    path = register(package)
    monkeypatch.setitem(sys.modules, "calfseg.nnunet.trainers", None)  # import fails
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    assert "nnUNetTrainerCALF" not in namespace


def test_unregister_removes_it_and_is_idempotent(package: Path) -> None:
    path = register(package)
    assert unregister(package) == path
    assert not path.exists() and not is_registered(package)
    assert unregister(package) is None


def test_unregister_leaves_a_foreign_file_alone(package: Path) -> None:
    path = package / "training" / "nnUNetTrainer" / "variants" / MODULE_NAME
    path.write_text("class Mine: pass\n")
    with pytest.raises(RegistrationError, match="not written by calf nnunet register"):
        unregister(package)
    assert path.read_text() == "class Mine: pass\n"


def test_register_leaves_a_foreign_file_of_that_name_alone(package: Path) -> None:
    path = package / "training" / "nnUNetTrainer" / "variants" / MODULE_NAME
    path.write_text("class Mine: pass\n")
    with pytest.raises(RegistrationError, match="was not written by calf-seg"):
        register(package)
    assert path.read_text() == "class Mine: pass\n"
    path.unlink()
    register(package)
    register(package)  # its own file: rewritten, harmless
    assert is_registered(package)


def test_read_only_install_names_the_path_and_the_alternative(package: Path, monkeypatch) -> None:
    def refuse(path: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(registration, "atomic_write_text", refuse)
    with pytest.raises(RegistrationError) as caught:
        register(package)
    message = str(caught.value)
    assert str(package / "training" / "nnUNetTrainer" / "variants" / MODULE_NAME) in message
    assert "calf nnunet train" in message and "read-only" in message


def test_a_folder_that_is_not_nnunetv2_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistrationError, match="does not look like an nnunetv2 package"):
        register(tmp_path)


def test_missing_nnunetv2_gives_the_pip_command(monkeypatch) -> None:
    monkeypatch.setattr(requirement.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=r'pip install "calf-seg\[nnunet\]"'):
        registration.trainer_folder()


@pytest.mark.parametrize("found", ["2.5.1", "2.7.9", "1.7.0"])
def test_too_old_nnunetv2_names_both_versions(found: str) -> None:
    with pytest.raises(requirement.NnUNetVersionError) as caught:
        requirement.check_version(found)
    assert f"found nnunetv2 {found}" in str(caught.value) and ">= 2.8" in str(caught.value)


@pytest.mark.parametrize("found", ["2.8", "2.8.1", "2.9.0rc1", "3.0"])
def test_recent_nnunetv2_is_accepted(found: str) -> None:
    assert requirement.check_version(found) is None  # no error: the version is new enough


def test_installed_version_is_read_from_the_metadata(monkeypatch) -> None:
    pytest.importorskip("nnunetv2")
    monkeypatch.setattr(requirement.metadata, "version", lambda name: "2.6.0")
    with pytest.raises(requirement.NnUNetVersionError, match=r"found nnunetv2 2\.6\.0"):
        requirement.require_nnunet()
