"""Masks for new images with a trained model: NIfTI volumes and PNG/TIFF slices.

The model is a checkpoint, a run folder or an export (``calf export``), read by
:func:`calfseg.train.trained_model.load_trained_model`. The image is read and preprocessed
by the very code ``calf prepare`` uses for training, with the ``calf prepare`` options of
the training cache read from the model file (as nnU-Net reuses its preprocessor at
inference):

- reading: NIfTI with :func:`calfseg.data.sources.nifti.read_nifti` (float32, put in the
  closest canonical orientation, RAS+, so that the last axis is axial); PNG and TIFF with
  :func:`calfseg.data.files.images.read_image` (a grey picture stored as colour gives one
  channel, true colour is refused, as in training);
- preprocessing: :func:`calfseg.data.preprocess.preprocess_images` (the cache's
  normalisation, padding to a square when the cache kept the aspect ratio, resizing to
  the cache's size, quantisation to its dtype), then the same conversion to float32 that
  the training batches get (:func:`calfseg.data.dataset.to_unit_float`).

Each slice is predicted; the logits are resized back (bilinear), thresholded at 0 and
cropped. A NIfTI mask is turned back to the file's own orientation and written with the
input's affine and header (uint8 0/1); a 2-D mask is written as a PNG or TIFF with values 0
and 255.

Only one-channel models can predict from one image (the paper's setting).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calfseg.atomic import atomic_write, atomic_write_bytes, same_file
from calfseg.data.dataset import to_unit_float
from calfseg.data.files.images import ImageFileError, read_image
from calfseg.data.preprocess import PreprocessOptions, preprocess_images
from calfseg.data.sources.base import CaseError
from calfseg.data.sources.nifti import read_nifti
from calfseg.errors import DataValueError, OptionError
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
            raise DataValueError(
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
        self.size = int(trained.size[0])
        self.image_dtype = str(trained.image_dtype or "uint8")
        self.preprocessing = training_preprocessing(
            trained.cache_options, self.size, self.image_dtype
        )
        self.batch_size = batch_size

    @torch.no_grad()
    def predict_volume(self, volume: np.ndarray) -> np.ndarray:
        """``(X, Y, Z)`` raw intensities (as read) -> ``(X, Y, Z)`` bool mask, slice by
        slice along the last axis, preprocessed exactly as ``calf prepare`` does."""
        h, w, n = volume.shape
        images, (side_h, side_w) = preprocess_images([volume], self.preprocessing)
        masks = []
        for start in range(0, n, self.batch_size):
            x = to_unit_float(images[start : start + self.batch_size])
            logits = self.model(x.to(self.device)).float()
            logits = F.interpolate(logits, size=(side_h, side_w), mode="bilinear")
            masks.append((logits[:, 0] > 0).cpu().numpy())
        out = np.concatenate(masks) if masks else np.zeros((0, side_h, side_w), dtype=bool)
        top, left = (side_h - h) // 2, (side_w - w) // 2
        return np.moveaxis(out[:, top : top + h, left : left + w], 0, -1)

    def predict_nifti(self, source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        """Write the mask of the NIfTI volume ``source`` to ``target`` (same affine)."""
        nib = require("nibabel", "reading NIfTI files")
        try:  # the training reader: canonical (RAS+) float32
            canonical = read_nifti(Path(source).name, Path(source), label=False)
        except CaseError as err:
            raise DataValueError(f"{source}: cannot read the file ({err.reason})") from err
        image = nib.load(os.fspath(source))  # its header and own orientation, for the output
        mask = self.predict_volume(canonical.array).astype(np.uint8)
        # Back from canonical to the file's own axis order and directions.
        orientations = nib.orientations
        back = orientations.ornt_transform(
            orientations.io_orientation(canonical.affine), orientations.io_orientation(image.affine)
        )
        mask = orientations.apply_orientation(mask, back).astype(np.uint8)
        mask = mask.reshape(image.shape)  # a 2-D or (X, Y, Z, 1) file keeps its shape
        header = image.header.copy()
        header.set_data_dtype(np.uint8)
        out = nib.Nifti1Image(mask, image.affine, header)
        out.set_qform(image.affine)
        out.set_sform(image.affine)
        data = out.to_bytes()
        if os.fspath(target).lower().endswith(".gz"):
            data = gzip.compress(data, compresslevel=6)
        atomic_write_bytes(target, data)  # a crash leaves no torn mask

    def predict_image(self, source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        """Write the mask of the 2-D image ``source`` as a PNG (0 and 255) to ``target``."""
        pil = require("PIL.Image", "writing PNG/TIFF masks")
        try:
            array = read_image(source)  # the training reader
        except ImageFileError as err:
            raise DataValueError(str(err)) from err
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim != 2:
            raise DataValueError(f"{source}: expected a 2-D image, got shape {array.shape}")
        mask = self.predict_volume(array[:, :, np.newaxis])[..., 0]
        format_ = MASK_IMAGE_FORMATS[Path(target).suffix.lower()]  # checked by predict_file
        picture = pil.fromarray(mask.astype(np.uint8) * 255)
        atomic_write(target, lambda handle: picture.save(handle, format=format_))


def training_preprocessing(
    cache_options: dict[str, Any] | None, size: int, image_dtype: str
) -> PreprocessOptions:
    """The ``calf prepare`` options of the training cache, as recorded in the model file,
    with the model's input size and image dtype (defaults where nothing is recorded)."""
    known = {f.name for f in dataclasses.fields(PreprocessOptions)}
    recorded = {k: v for k, v in (cache_options or {}).items() if k in known}
    return PreprocessOptions.from_dict({**recorded, "size": size, "image_dtype": image_dtype})


def predict_file(
    checkpoint: str | os.PathLike[str],
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    device: str = "auto",
) -> Path:
    """Predict the mask of ``source`` (NIfTI, PNG or TIFF) into ``target``; returns it.

    Raises :class:`~calfseg.errors.OptionError` when ``target`` is ``source`` or the model
    file (the same path, or the same file through a link): the mask would replace it."""
    for given, role in ((source, "INPUT"), (checkpoint, "MODEL")):
        if same_file(target, given):
            raise OptionError(
                f"OUT {target} is the {role} file {given}: writing the mask would replace it; "
                "choose another OUT"
            )
    name = Path(source).name.lower()
    out_name = Path(target).name.lower()
    wanted = NIFTI_SUFFIXES if name.endswith(NIFTI_SUFFIXES) else tuple(MASK_IMAGE_FORMATS)
    if name.endswith(NIFTI_SUFFIXES + IMAGE_SUFFIXES) and not out_name.endswith(wanted):
        raise OptionError(f"{target}: cannot write the mask as this type; use {', '.join(wanted)}")
    predictor = Predictor(checkpoint, device=device)
    if name.endswith(NIFTI_SUFFIXES):
        predictor.predict_nifti(source, target)
    elif name.endswith(IMAGE_SUFFIXES):
        predictor.predict_image(source, target)
    else:
        raise OptionError(
            f"{source}: unknown image type; expected one of "
            f"{', '.join(NIFTI_SUFFIXES + IMAGE_SUFFIXES)}"
        )
    return Path(target)
