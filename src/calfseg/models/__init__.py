"""Model factory: U-Net, DeepLabV3 and FPN, each mapping ``(B, in_channels, H, W)`` images to
``(B, 1, H, W)`` logits, randomly initialised (nothing is ever downloaded).

Three presets (docs/models.md has the layers, parameter counts and speeds):

- ``tiny`` and ``paper``: segmentation_models_pytorch models (:mod:`.smp_presets`), the
  project's recommended models. ``tiny`` is for tests, examples and CPU benchmarks; ``paper``
  has about the capacity of the paper's models on standard, well-tested smp encoders.
- ``authors``: the authors' hand-written models (:mod:`.authors`), plain torch, exactly
  their layers and parameter counts (U-Net 31,042,369, DeepLabV3 14,502,209, FPN
  15,514,305), for reproducing the paper.

Input sizes (:func:`input_size_rule`, :func:`check_input_size`) depend on the model and
preset; a size a model cannot take is a ValueError that names the sizes that work.

smp is an optional dependency (the ``train`` extra), imported when an smp model is built.
"""

from __future__ import annotations

from calfseg.models.counting import count_parameters, describe_model
from calfseg.models.factory import build_model, check_input_size, input_size_rule
from calfseg.models.names import MODEL_PRESETS, MODELS
from calfseg.models.output_prior import output_layer, set_output_prior
from calfseg.models.sizes import SizeRule
from calfseg.models.smp_presets import ModelPreset, get_preset

__all__ = [
    "MODELS",
    "MODEL_PRESETS",
    "ModelPreset",
    "SizeRule",
    "build_model",
    "check_input_size",
    "count_parameters",
    "describe_model",
    "get_preset",
    "input_size_rule",
    "output_layer",
    "set_output_prior",
]
