"""CALF inside nnU-Net (nnunetv2 2.8): trainers, their registration, training through
nnU-Net's API, and the export of a calf-seg cache as an nnU-Net raw dataset.

Importing this package imports nothing of nnunetv2: the trainers live in
:mod:`calfseg.nnunet.trainers`, which needs the ``nnunet`` extra
(``pip install "calf-seg[nnunet]"``). See docs/nnunet.md.
"""

from calfseg.nnunet.loss import NnUNetCALFLoss, one_vs_rest_logits, one_vs_rest_targets

__all__ = ["NnUNetCALFLoss", "one_vs_rest_logits", "one_vs_rest_targets"]
