"""The paper's Table 1 (15 images, 50 samples each, A6000; DESIGN.md §1, seed 003), for the report.

SIFID there used torchvision's ImageNet InceptionV3; ours uses the FID InceptionV3 (the weights that
can be installed here), so SIFID values are comparable in rank only, never in value.
"""

from __future__ import annotations

# method -> (SIFID, LPIPS diversity, seconds per sample on an A6000, or None)
PAPER_TABLE_1 = {
    "SinGAN": (0.13, 0.27, None),
    "GPNN": (0.06, 0.29, 2.08),
    "GPDM": (0.015, 0.31, 11.49),
    "SinDDM": (0.48, 0.36, 1.25),
    "SinFusion": (0.51, 0.38, 1.99),
    "SinDiffusion": (0.31, 0.41, 12.10),
    "Ours (T=10, eta=0)": (0.29, 0.49, 3.09),
    "Ours (T=40, eta=1)": (0.21, 0.39, 12.57),
    "Ours (T=10, eta=0, k=5)": (0.38, 0.50, 0.88),
}
