"""How a user's array splits into 2-D restorations (C, H, W) and is put back together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputImageError
from ..resize import resize


@dataclass(frozen=True)
class Layout:
    """How the user's array splits into 2-D restorations (C, H, W): one gray image, one colour image (all
    channels together; an alpha channel is kept aside) or a volume's slices along axis 0."""

    kind: str  # "image", "colour" or "volume"
    shape: tuple[int, ...]
    channels: int  # restored channels per item
    alpha: bool

    @classmethod
    def of(cls, data: np.ndarray, colour: bool | None) -> Layout:
        if data.ndim == 2:
            return cls("image", data.shape, 1, False)
        if data.ndim != 3:
            raise InputImageError(f"expected (H, W), (H, W, C) or (D, H, W) data, got shape {data.shape}")
        if colour is None:
            colour = data.shape[2] in (2, 3, 4) and data.shape[0] > 4
        if colour:
            if not 1 <= data.shape[2] <= 4:
                raise InputImageError(f"a colour image has 1-4 channels, got shape {data.shape}")
            alpha = data.shape[2] in (2, 4)
            return cls("colour", data.shape, data.shape[2] - alpha, alpha)
        return cls("volume", data.shape, 1, False)

    @property
    def plane(self) -> tuple[int, int]:
        return tuple(self.shape[1:3]) if self.kind == "volume" else tuple(self.shape[:2])

    @property
    def num_items(self) -> int:
        return self.shape[0] if self.kind == "volume" else 1

    def items(self, data: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float64: the 2-D restorations' inputs."""
        data = np.asarray(data, dtype=np.float64)
        if self.kind == "image":
            return data[None, None]
        if self.kind == "volume":
            return data[:, None]
        return data[None, :, :, : self.channels].transpose(0, 3, 1, 2)

    def assemble(self, items: np.ndarray, data: np.ndarray) -> np.ndarray:
        """The inverse of ``items`` for restored items (N, C, H', W'); the alpha channel is carried over (resized)."""
        if self.kind == "image":
            return items[0, 0]
        if self.kind == "volume":
            return items[:, 0]
        out = items[0].transpose(1, 2, 0)
        if self.alpha:
            alpha = torch.from_numpy(np.asarray(data[:, :, -1:], dtype=np.float64).transpose(2, 0, 1).copy())
            alpha = resize(alpha, out.shape[:2]).numpy().transpose(1, 2, 0)
            out = np.concatenate([out, alpha], axis=2)
        return out

    def describe(self) -> str:
        return {"image": "image", "colour": "colour image", "volume": f"volume of {self.num_items} slices"}[self.kind]
