"""A per-image linear latent space: PCA of the reference's k x k pixel blocks, in closed form.

Training-free and offline: the codec is fitted to the one reference image (the mean block and the
leading eigenvectors of the blocks' covariance, ``torch.linalg.eigh`` in float64). A latent pixel is
the coefficients of one k x k block on those eigenvectors, times one global constant. The map is
affine with orthonormal rows, so distances between latent patches are the distances between the
projected pixel blocks times that constant: Eq. 2 in this latent space is Eq. 2 on the projected
pixel blocks (with noise levels measured in latent units).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..threads import one_thread
from .codec import Codec, Shape, pad_to_multiple

DEFAULT_BLOCK = 8
DEFAULT_COMPONENTS = 16  # as the FLUX.1 VAE's 16 channels
BAND_BLOCKS = 1 << 14  # blocks per band of fit, encode and decode (float64: 25 MB at 8 x 8 x 3)


@dataclass(frozen=True, eq=False)
class PCACodec(Codec):
    """PCA of the reference's non-overlapping ``block`` x ``block`` pixel blocks (factor = block),
    keeping ``components`` principal directions (at most block^2 C).

    ``scale`` (set by ``fit``) makes the latent's RMS equal to the centred pixels' RMS, so the
    noise schedule meets data of the same spread as in pixel space (unit-order values, like pixels
    in [-1, 1]); one constant for every channel keeps the map an isometry up to scale.
    """

    block: int = DEFAULT_BLOCK
    components: int = DEFAULT_COMPONENTS
    mean: torch.Tensor | None = None  # (D,) float64, D = C block^2, channel-major like the patches
    basis: torch.Tensor | None = None  # (D, c) float64, orthonormal columns
    scale: float = 1.0
    explained: float = 1.0  # share of the blocks' variance the kept directions hold
    name = "pca"

    def __post_init__(self):
        if not 2 <= self.block <= 16:
            raise ValueError(f"the PCA block size must be in 2..16, got {self.block}")
        if self.components < 1:
            raise ValueError(f"the PCA codec needs at least 1 component, got {self.components}")

    @property
    def factor(self) -> int:
        return self.block

    @property
    def fitted(self) -> bool:
        return self.basis is not None

    def latent_channels(self, image_channels: int) -> int:
        return min(self.components, image_channels * self.block**2)

    @property
    def channels(self) -> int:
        return self.basis.shape[1] if self.fitted else self.components

    def fit(self, image: torch.Tensor) -> PCACodec:
        """The codec of ``image`` (C, H, W): mean block, top eigenvectors of the blocks' covariance
        (float64, sign fixed so the largest entry is positive), and the RMS-matching scale.
        The covariance is summed in float64 over bands of blocks (BAND_BLOCKS at a time), so no
        float64 copy of the whole image exists (1.6 GB for an 8192^2 RGB image)."""
        bands = (blocks for _, blocks in _block_bands(image, self.block))
        return self.fit_blocks(bands, image.shape[0], image.device)

    def fit_blocks(self, bands, channels: int, device: torch.device | str = "cpu") -> PCACodec:
        """The codec of an image of ``channels`` channels given as bands of its blocks (float64 (N, C B^2)
        tensors, every block once): ``fit``'s sums and eigendecomposition, for images read band by band."""
        dim = channels * self.block**2
        total_sum = torch.zeros(dim, dtype=torch.float64, device=device)
        count, gram = 0, torch.zeros(dim, dim, dtype=torch.float64, device=device)
        for blocks in bands:
            count += len(blocks)
            total_sum += blocks.sum(dim=0)
            gram.addmm_(blocks.T, blocks)
        mean = total_sum / count
        covariance = gram / count - torch.outer(mean, mean)
        covariance = (covariance + covariance.T) / 2
        with one_thread():  # a D x D problem (D <= 1024): threads only contend
            values, vectors = torch.linalg.eigh(covariance)  # ascending
        keep = self.latent_channels(channels)
        values, vectors = values.flip(0)[:keep].clamp_min(0.0), vectors.flip(1)[:, :keep]
        signs = torch.sign(vectors.gather(0, vectors.abs().argmax(dim=0, keepdim=True)))
        vectors = vectors * signs
        total = covariance.diagonal().sum().clamp_min(0.0).item()  # trace of the covariance
        kept = values.sum().item()
        pixel_rms, latent_rms = math.sqrt(total / dim), math.sqrt(kept / keep)
        scale = pixel_rms / latent_rms if latent_rms > 0 else 1.0
        return dataclasses.replace(self, mean=mean, basis=vectors, scale=scale, explained=kept / total if total > 0 else 1.0)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        if image.shape[0] * self.block**2 != len(self.mean):
            raise ValueError(
                f"this PCA codec was fitted to {len(self.mean) // self.block**2}-channel images, got {image.shape[0]} channels"
            )
        height, width = self.latent_shape(tuple(image.shape[-2:]))
        latent = torch.empty(self.basis.shape[1], height, width, dtype=torch.float32, device=image.device)
        projection, mean = (self.basis * self.scale).to(image.device), self.mean.to(image.device)  # the image's device
        for rows, blocks in _block_bands(image, self.block):  # float64 per band of block rows
            latent[:, rows] = ((blocks - mean) @ projection).T.reshape(-1, rows.stop - rows.start, width).to(torch.float32)
        return latent

    def decode(self, latent: torch.Tensor, *, periodic: bool = False) -> torch.Tensor:
        """Linear reconstruction, block by block (float64 per band of block rows). The blocks do not
        overlap, so every decoding is periodic already: ``periodic`` changes nothing."""
        self._check_fitted()
        channels, height, width = latent.shape
        image = torch.empty(
            len(self.mean) // self.block**2, height * self.block, width * self.block, dtype=torch.float32, device=latent.device
        )
        reconstruction, mean = (self.basis.T / self.scale).to(latent.device), self.mean.to(latent.device)
        band = max(1, BAND_BLOCKS // width)
        for start in range(0, height, band):
            stop = min(height, start + band)
            coefficients = latent[:, start:stop].to(torch.float64).reshape(channels, -1).T
            blocks = torch.addmm(mean, coefficients, reconstruction)
            image[:, start * self.block : stop * self.block] = from_blocks(blocks, stop - start, width, self.block)
        return image

    def describe(self) -> dict:
        described = {"name": self.name, "factor": self.factor, "block": self.block, "components": self.components}
        if self.fitted:
            described |= {
                "channels": self.basis.shape[1],
                "scale": round(self.scale, 6),
                "explained_variance": round(self.explained, 6),
            }
        return described

    def estimate_bytes(self, image_channels: int, input_shape: Shape, output_shape: Shape) -> int:
        """A padded float32 copy of the input (fit, encode) and three float64 bands of blocks."""
        pixels = max(input_shape[0] * input_shape[1], output_shape[0] * output_shape[1])
        band = min(BAND_BLOCKS, -(-pixels // self.block**2) + max(input_shape[1], output_shape[1]))  # + one row of blocks
        return 4 * image_channels * pixels + 3 * 8 * band * image_channels * self.block**2

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ValueError("the PCA codec is not fitted: call fit(reference) first")


def _block_bands(image: torch.Tensor, block: int):
    """(rows, blocks) over bands of about BAND_BLOCKS blocks of ``image`` (C, H, W) padded to
    multiples of ``block``: ``rows`` the band's block rows (a slice), ``blocks`` (n, C block^2) float64."""
    if image.shape[-2] % block or image.shape[-1] % block:
        image = pad_to_multiple(image, block)
    block_rows, block_cols = image.shape[-2] // block, image.shape[-1] // block
    band = max(1, BAND_BLOCKS // block_cols)
    for start in range(0, block_rows, band):
        stop = min(block_rows, start + band)
        yield slice(start, stop), to_blocks(image[:, start * block : stop * block].to(torch.float64), block)


def to_blocks(image: torch.Tensor, block: int) -> torch.Tensor:
    """(C, H, W), sides multiples of ``block`` -> (H/block * W/block, C block^2), rows in raster order,
    each block flattened channel-major (as ``all_patches``)."""
    channels, height, width = image.shape
    grid = image.reshape(channels, height // block, block, width // block, block)
    return grid.permute(1, 3, 0, 2, 4).reshape(-1, channels * block * block)


def from_blocks(blocks: torch.Tensor, height: int, width: int, block: int) -> torch.Tensor:
    """Inverse of ``to_blocks`` for a grid of ``height`` x ``width`` blocks -> (C, height block, width block)."""
    channels = blocks.shape[1] // (block * block)
    grid = blocks.reshape(height, width, channels, block, block)
    return grid.permute(2, 0, 3, 1, 4).reshape(channels, height * block, width * block)
