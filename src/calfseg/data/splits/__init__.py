"""Which slices train, validate and test: patient-level splits, k-fold cross-validation, the
paper's slice-level split, and the slice filters (``DropEmpty``, ``MinArea``, ...)."""
