"""PGGAN as genforce/sefa builds it (``models/pggan_generator.py``): z -> 4x4 -> ... -> image.

Every block pixel-normalises its input, optionally doubles the size by nearest upsampling, and
applies an equalized-learning-rate conv (weights stored unit-variance, scaled by ``wscale`` at run
time). The first block is PGGAN's dense layer written as a 4x4 conv with padding 3 on a 1x1 map,
so output pixel (y, x) reads the kernel at (3 - y, 3 - x): its affine matrix is the weight flipped
on both kernel axes, which is what SeFa factorizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sefa_core.errors import require
from sefa_core.models.base import Generator

INIT_RES = 4  # the first block maps z to a 4x4 map
IMAGE_CHANNELS = 3
WSCALE_GAIN = math.sqrt(2.0)  # He gain for the leaky-ReLU convs; to-RGB uses 1
LRELU_SLOPE = 0.2
PIXEL_NORM_EPS = 1e-8


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Scale every feature vector (dim 1) to unit root-mean-square, as PGGAN and StyleGAN do."""
    return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + PIXEL_NORM_EPS)


class PGGANConv(nn.Module):
    """Pixel norm, optional 2x nearest upsampling, equalized-lr conv with bias, optional leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        upsample: bool = False,
        gain: float = WSCALE_GAIN,
        activate: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.wscale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = padding
        self.upsample = upsample
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.conv2d(x, self.weight * self.wscale, self.bias, padding=self.padding)
        return F.leaky_relu(x, LRELU_SLOPE) if self.activate else x


class PGGANGenerator(Generator):
    """genforce's PGGAN (``fused_scale=False``, no tanh), edited in pixel-normalised z.

    The state dict is flat: ``lod``, ``layer{i}.{weight,bias}`` (two convs per resolution) and
    ``output{b}.{weight,bias}`` (a to-RGB per resolution; only the last one draws at ``lod`` 0,
    the others are left over from progressive growing but are part of the file). A conditional
    PGGAN (genforce's ``label_size``) appends the one-hot class to the normalised z before the
    first layer; its edit space stays z, and SeFa reads only the z rows of that layer.
    """

    architecture = "pggan"
    edit_space = "z"

    def __init__(self, z_dim: int, channels: Sequence[int], num_classes: int = 0) -> None:
        """``channels[b]``: feature maps at resolution ``4 * 2**b``; the last entry sets the output size."""
        require(len(channels) >= 1 and all(c > 0 for c in channels), "one positive width per resolution")
        super().__init__(
            latent_dim=z_dim,
            direction_dim=z_dim,
            resolution=INIT_RES * 2 ** (len(channels) - 1),
            num_layers=1,
            layer_names=(f"layer0 (dense z -> {INIT_RES}x{INIT_RES})",),
        )
        self.num_classes = num_classes
        self.class_names = tuple(str(index) for index in range(num_classes))
        self.num_blocks = len(channels)
        self.register_buffer("lod", torch.zeros(()))  # progressive-growing level; 0 = full resolution
        for block, width in enumerate(channels):
            if block == 0:
                first = PGGANConv(z_dim + num_classes, width, kernel_size=INIT_RES, padding=INIT_RES - 1)
            else:
                first = PGGANConv(channels[block - 1], width, upsample=True)
            self.add_module(f"layer{2 * block}", first)
            self.add_module(f"layer{2 * block + 1}", PGGANConv(width, width))
            to_rgb = PGGANConv(width, IMAGE_CHANNELS, kernel_size=1, padding=0, gain=1.0, activate=False)
            self.add_module(f"output{block}", to_rgb)

    def layer_weight(self, index: int) -> torch.Tensor:
        require(index == 0, "PGGAN has one factorizable layer")
        weight = self.layer0.weight[:, : self.latent_dim]  # (C, z_dim, 4, 4); pixel (y, x) reads (3-y, 3-x)
        return weight.flip((2, 3)).permute(0, 2, 3, 1).reshape(-1, self.latent_dim)  # (C*4*4, z_dim)

    def _to_edit_space(
        self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None, **conditioning: Any
    ) -> torch.Tensor:
        return pixel_norm(z)  # sefa.py edits code = layer0.pixel_norm(z); PGGAN has no truncation

    def _synthesize(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor:
        x = pixel_norm(codes)  # G normalises its input again, with the class appended if it has one
        if self.num_classes:
            x = torch.cat([x, self.class_vectors(conditioning.get("classes"), x.shape[0])], dim=1)
        x = x[:, :, None, None]  # (N, z_dim + num_classes, 1, 1)
        for block in range(self.num_blocks):
            x = getattr(self, f"layer{2 * block}")(x)
            x = getattr(self, f"layer{2 * block + 1}")(x)
        return getattr(self, f"output{self.num_blocks - 1}")(x)  # (N, 3, R, R)
