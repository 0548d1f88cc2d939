"""The space the sampler denoises in (DESIGN.md §1, "Accelerations": latent space).

A ``Codec`` maps an image (C, H, W) in [-1, 1] to a latent (c, H / f, W / f) and back. The
coarse-to-fine sampler runs unchanged on the latent (Eq. 2 over latent patches), and the result is
decoded to pixels once, at the end. ``pca.PCACodec`` is fitted in closed form to the reference
(no weights); ``vae.VAECodec`` is a diffusers AutoencoderKL (the FLUX.1 VAE) from a local folder.
"""

from __future__ import annotations

import torch

from ..resize import mirror_index, resize

Shape = tuple[int, int]


class Codec:
    """Encoder and decoder of a latent space ``factor`` times smaller per side.

    Subclasses implement ``latent_channels``, ``encode``, ``decode`` and ``describe``; a codec that
    depends on the image (PCA) returns a fitted copy from ``fit`` (the others return themselves).
    """

    name = "codec"
    factor = 1

    def latent_channels(self, image_channels: int) -> int:
        """Channels of the latent of an image with ``image_channels`` channels."""
        raise NotImplementedError

    @property
    def channels(self) -> int:
        """Channels of the latents this codec makes (a per-image codec: once fitted)."""
        raise NotImplementedError

    @property
    def fitted(self) -> bool:
        """Whether ``encode`` and ``decode`` can run (a per-image codec must be ``fit`` first)."""
        return True

    def fit(self, image: torch.Tensor) -> Codec:
        """The codec fitted to the reference ``image`` (C, H, W) where it needs one, else itself."""
        return self

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) in [-1, 1] -> (c, ceil(H / f), ceil(W / f)) float32 (``pad_to_multiple`` first)."""
        raise NotImplementedError

    def decode(self, latent: torch.Tensor, *, periodic: bool = False) -> torch.Tensor:
        """(c, h, w) -> (C, h f, w f). ``periodic``: the image wraps around (seamless tiles)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What the codec is, recorded in the output files' settings (JSON values only)."""
        return {"name": self.name, "factor": self.factor}

    def estimate_bytes(self, image_channels: int, input_shape: Shape, output_shape: Shape) -> int:
        """Peak bytes of encoding the input and decoding one output (beyond the images themselves)."""
        return 0

    def latent_shape(self, shape: Shape) -> Shape:
        """The latent's (h, w) for an image of ``shape``: each side divided by ``factor``, rounded up."""
        return (-(-shape[0] // self.factor), -(-shape[1] // self.factor))

    def decode_to(self, latent: torch.Tensor, shape: Shape, *, periodic: bool = False) -> torch.Tensor:
        """Decode and bring to ``shape`` (H, W): the centred crop of the decoded image, or for a
        periodic image a circular resize (a crop would cut the wrap-around)."""
        image = self.decode(latent, periodic=periodic)
        if tuple(image.shape[-2:]) == tuple(shape):
            return image
        if periodic:
            return resize(image, tuple(shape), circular=True)
        top, left = (image.shape[-2] - shape[0]) // 2, (image.shape[-1] - shape[1]) // 2
        return image[..., top : top + shape[0], left : left + shape[1]].contiguous()


def pad_to_multiple(image: torch.Tensor, factor: int) -> torch.Tensor:
    """``image`` (..., H, W) extended to sides that are multiples of ``factor`` by half-sample
    mirroring (the pyramid's boundary rule), centred: ``decode_to``'s centred crop undoes it."""
    return image[..., _centred_mirror(image.shape[-2], factor), :][..., _centred_mirror(image.shape[-1], factor)]


def _centred_mirror(length: int, factor: int) -> torch.Tensor:
    extra = -(-length // factor) * factor - length
    return mirror_index(torch.arange(-(extra // 2), length + extra - extra // 2), length)
