"""Latent spaces the sampler can denoise in (DESIGN.md §1, "Accelerations": latent space).

``make_codec("pca")``, ``"pca:K"`` (K x K blocks) or ``"vae:PATH"``; a ``Codec`` object passes through.
"""

from __future__ import annotations

from .codec import Codec, pad_to_multiple
from .pca import PCACodec
from .vae import VAECodec, circular_padding

LATENT_CHOICES = "pca, pca:K (K x K blocks, K in 2..16) or vae:PATH"
LATENT_PATCH_SIZE = 7  # the paper's latent patch (DESIGN.md §1): D = 16 x 7 x 7 = 784


def make_codec(latent: str | Codec | None) -> Codec | None:
    """The codec a ``latent`` setting names: None (pixel space), a Codec, "pca", "pca:K" or "vae:PATH".
    A VAE's folder and config are checked here (MissingModelError); its weights load on first use."""
    if latent is None or isinstance(latent, Codec):
        return latent
    if not isinstance(latent, str):
        raise TypeError(f"latent must be {LATENT_CHOICES}, a Codec or None; got {type(latent).__name__}")
    kind, _, argument = latent.partition(":")
    kind = kind.strip().lower()
    if kind == "pca":
        if argument and not argument.strip().isdigit():
            raise ValueError(f"latent {latent!r}: the PCA block size must be an integer, e.g. pca:4")
        return PCACodec(block=int(argument)) if argument else PCACodec()
    if kind == "vae" and argument:
        return VAECodec(argument)
    raise ValueError(f"latent must be {LATENT_CHOICES}; got {latent!r}")


__all__ = [
    "LATENT_CHOICES",
    "LATENT_PATCH_SIZE",
    "Codec",
    "PCACodec",
    "VAECodec",
    "circular_padding",
    "make_codec",
    "pad_to_multiple",
]
