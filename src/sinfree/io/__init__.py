"""Reading and writing images (``images``: PNG, JPEG, TIFF as arrays and tensors) and scans (``scans``: DICOM,
NIfTI, 16-bit and float images in physical units, with their metadata)."""
