"""Optional dependencies: import them on demand, and say which pip extra provides them."""

from __future__ import annotations

import importlib
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


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the pip command."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra, dist = _PROVIDERS.get(module.split(".")[0], ("all", module))
        raise MissingExtraError(
            f"{purpose} needs the package {dist!r}, which is not installed. "
            f"Install it with: pip install 'calf-seg[{extra}]'"
        ) from err
