"""Masks for new images with a trained model: NIfTI volumes and PNG/TIFF slices.

The model is a checkpoint, a run folder or an export (``calf export``), read by
:func:`calfseg.train.trained_model.load_trained_model`. The image goes through the cache's
preprocessing, read from the model file (the ``calf prepare`` options of the training
cache):

- NIfTI: the volume is put in the closest canonical orientation (RAS+, with
  ``nibabel.as_closest_canonical``, as the dataset readers do), so that its last axis is
  axial; it is normalised with the cache's method (``minmax-slice``; ``paper`` means
  ``minmax-slice`` here, the dataset being unknown), padded to a square when the cache
  kept the aspect ratio, resized to the cache's size (bilinear), quantised like the cache
  (uint8 caches: ``round(255 x) / 255``) and predicted slice by slice. The logits are
  resized back (bilinear), thresholded at 0, cropped, and the mask is turned back to the
  file's own orientation and written with the input's affine and header (uint8 0/1).
- PNG/TIFF: a 2-D image (colour is averaged to grey), min-max normalised, resized,
  predicted, resized back; written as a PNG with values 0 and 255.

Only one-channel models can predict from one image (the paper's setting).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calfseg.data.preprocess import normalise, pad_to_square, resize_images, to_image_dtype
from calfseg.extras import require
from calfseg.train.distributed import resolve_device
from calfseg.train.trained_model import load_trained_model

NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
# Lossless formats a 2-D mask is written in (JPEG would blur the 0/255 edges into other values).
MASK_IMAGE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}


class NoPreprocessingWarning(UserWarning):
    """The model file does not say how its training images were preprocessed."""


class Predictor:
    """A trained model (a checkpoint, a run folder or an export: :func:`load_trained_model`)
    with the preprocessing of its training cache.

    A model file with no record of that preprocessing (a hand-made export) warns
    (:class:`NoPreprocessingWarning`) and predicts with ``minmax-slice`` normalisation, no
    padding and uint8 quantisation, which may not be what the network was trained on.
    """

    def __init__(
        self, checkpoint: str | os.PathLike[str], *, device: str = "auto", batch_size: int = 32
    ) -> None:
        self.device = resolve_device(device)
        trained = load_trained_model(checkpoint, self.device)
        if trained.in_channels != 1:
            raise ValueError(
                f"{checkpoint}: the model takes {trained.in_channels} channels; predicting "
                "from one image needs a one-channel model"
            )
        if not trained.has_preprocessing:
            warnings.warn(
                NoPreprocessingWarning(
                    f"{trained.source} has no record of its training cache's preprocessing "
                    "(cache options and image dtype): predicting with minmax-slice "
                    "normalisation, no padding and uint8 quantisation; the masks may be "
                    "wrong if the model was trained otherwise"
                ),
                stacklevel=2,
            )
        self.model: nn.Module = trained.model
        self.options: dict[str, Any] = dict(trained.cache_options or {})
        self.size = int(trained.size[0])
        self.image_dtype = str(trained.image_dtype or "uint8")
        self.batch_size = batch_size

    @torch.no_grad()
    def predict_slices(self, slices: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` intensities normalised to [0, 1] -> ``(N, H, W)`` bool masks."""
        n, h, w = slices.shape
        stack = slices[:, None].astype(np.float32)
        if self.options.get("keep_aspect") and h != w:
            stack = pad_to_square(stack)
        side_h, side_w = stack.shape[-2:]
        images = to_image_dtype(resize_images(stack, self.size), self.image_dtype)
        masks = []
        for start in range(0, n, self.batch_size):
            batch = images[start : start + self.batch_size]
            x = torch.from_numpy(batch.astype(np.float32))
            if batch.dtype == np.uint8:
                x = x / 255
            logits = self.model(x.to(self.device)).float()
            logits = F.interpolate(logits, size=(side_h, side_w), mode="bilinear")
            masks.append((logits[:, 0] > 0).cpu().numpy())
        out = np.concatenate(masks) if masks else np.zeros((0, side_h, side_w), dtype=bool)
        top, left = (side_h - h) // 2, (side_w - w) // 2
        return out[:, top : top + h, left : left + w]

    def _normalise(self, volume: np.ndarray) -> np.ndarray:
        method = str(self.options.get("normalise", "minmax-slice"))
        return normalise(volume, "minmax-slice" if method == "paper" else method)

    def predict_nifti(self, source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        """Write the mask of the NIfTI volume ``source`` to ``target`` (same affine)."""
        nib = require("nibabel", "reading NIfTI files")
        try:  # a truncated or corrupt file fails in nibabel or zlib with anything
            image = nib.load(os.fspath(source))
            if len(image.shape) != 3:
                raise ValueError(f"expected a 3-D volume, got shape {image.shape}")
            canonical = nib.as_closest_canonical(image)
            volume = np.asarray(canonical.get_fdata(dtype=np.float32))
        except Exception as err:
            why = f"{type(err).__name__}: {err}"
            raise ValueError(f"{source}: cannot read the file ({why})") from err
        normalised = self._normalise(volume)  # (X, Y, Z), Z axial
        mask = self.predict_slices(np.moveaxis(normalised, -1, 0))
        mask = np.moveaxis(mask, 0, -1).astype(np.uint8)
        # Back from canonical to the file's own axis order and directions.
        orientations = nib.orientations
        back = orientations.ornt_transform(
            orientations.io_orientation(canonical.affine), orientations.io_orientation(image.affine)
        )
        mask = orientations.apply_orientation(mask, back).astype(np.uint8)
        header = image.header.copy()
        header.set_data_dtype(np.uint8)
        out = nib.Nifti1Image(mask, image.affine, header)
        out.set_qform(image.affine)
        out.set_sform(image.affine)
        nib.save(out, os.fspath(target))

    def predict_image(self, source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        """Write the mask of the 2-D image ``source`` as a PNG (0 and 255) to ``target``."""
        pil = require("PIL.Image", "reading PNG/TIFF images")
        with pil.open(os.fspath(source)) as handle:
            array = np.asarray(handle, dtype=np.float32)
        if array.ndim == 3:
            array = array[..., :3].mean(axis=-1)
        if array.ndim != 2:
            raise ValueError(f"{source}: expected a 2-D image, got shape {array.shape}")
        normalised = normalise(array[:, :, None], "minmax-slice")[:, :, 0]
        mask = self.predict_slices(normalised[None])[0]
        format_ = MASK_IMAGE_FORMATS[Path(target).suffix.lower()]  # checked by predict_file
        pil.fromarray(mask.astype(np.uint8) * 255).save(os.fspath(target), format=format_)


def predict_file(
    checkpoint: str | os.PathLike[str],
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    device: str = "auto",
) -> Path:
    """Predict the mask of ``source`` (NIfTI, PNG or TIFF) into ``target``; returns it."""
    name = Path(source).name.lower()
    out_name = Path(target).name.lower()
    wanted = NIFTI_SUFFIXES if name.endswith(NIFTI_SUFFIXES) else tuple(MASK_IMAGE_FORMATS)
    if name.endswith(NIFTI_SUFFIXES + IMAGE_SUFFIXES) and not out_name.endswith(wanted):
        raise ValueError(f"{target}: cannot write the mask as this type; use {', '.join(wanted)}")
    predictor = Predictor(checkpoint, device=device)
    if name.endswith(NIFTI_SUFFIXES):
        predictor.predict_nifti(source, target)
    elif name.endswith(IMAGE_SUFFIXES):
        predictor.predict_image(source, target)
    else:
        raise ValueError(
            f"{source}: unknown image type; expected one of "
            f"{', '.join(NIFTI_SUFFIXES + IMAGE_SUFFIXES)}"
        )
    return Path(target)
