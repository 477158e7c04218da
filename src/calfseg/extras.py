"""Optional dependencies: import them on demand, and say which pip extra provides them."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

# module name -> (pip extra of calf-seg, PyPI distribution)
_PROVIDERS: dict[str, tuple[str, str]] = {
    "cv2": ("contour", "opencv-python-headless"),
    "nibabel": ("io", "nibabel"),
    "PIL": ("io", "pillow"),
    "tifffile": ("io", "tifffile"),
    "tqdm": ("io", "tqdm"),
    "matplotlib": ("plot", "matplotlib"),
    "segmentation_models_pytorch": ("train", "segmentation-models-pytorch"),
    "monai": ("train", "monai"),
    "torchvision": ("train", "torchvision"),
    "scipy": ("train", "scipy"),
    "safetensors": ("train", "safetensors"),
    "ray": ("ray", "ray"),
}


# Import-time deprecation notices of a dependency's own code that a user can do nothing about
# (timm, imported by segmentation_models_pytorch, calls torch.jit.interface, deprecated in
# torch 2.14): (message regex, category). Only these are hidden, only during the import.
_IMPORT_NOISE: tuple[tuple[str, type[Warning]], ...] = (
    (r"`torch\.jit\.interface` is deprecated", FutureWarning),
)


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the pip command."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        with warnings.catch_warnings():
            for message, category in _IMPORT_NOISE:
                warnings.filterwarnings("ignore", message=message, category=category)
            return importlib.import_module(module)
    except ImportError as err:
        extra, dist = _PROVIDERS.get(module.split(".")[0], ("all", module))
        raise MissingExtraError(
            f"{purpose} needs the package {dist!r}, which is not installed. "
            f"Install it with: pip install 'calf-seg[{extra}]'"
        ) from err
