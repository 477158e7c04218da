"""Reading one image or mask file (PNG, TIFF, NumPy, NIfTI) into an array: the single
implementation shared by the dataset readers (``sources``), ``calf analyze`` and
``calf predict``."""
