"""DCGAN, the PyTorch-tutorial generator: z (N, nz) -> transposed convs -> tanh image.

SeFa's layer is the first transposed conv, which maps z (as a 1x1 map) to a 4x4 feature map,
so its affine matrix is the weight (nz, C, 4, 4) read as (C*4*4, nz).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
from torch import nn

from sefa_core.models.base import Generator

FIRST_KERNEL = 4  # the first transposed conv turns a 1x1 code into a 4x4 map


class DCGANGenerator(Generator):
    """The tutorial DCGAN: ConvT(nz, 8ngf, 4) then stride-2 ConvT blocks down to nc channels."""

    architecture = "dcgan"
    edit_space = "z"

    def __init__(self, channels: list[int]) -> None:
        """``channels``: [nz, 8ngf, 4ngf, ..., nc]; one transposed conv per consecutive pair."""
        assert len(channels) >= 3 and channels[-1] == 3, "channels run from nz down to 3 (RGB)"
        num_convs = len(channels) - 1
        super().__init__(
            latent_dim=channels[0],
            direction_dim=channels[0],
            resolution=FIRST_KERNEL * 2 ** (num_convs - 1),
            num_layers=1,
            layer_names=("main.0",),
        )
        layers: list[nn.Module] = []
        for index, (c_in, c_out) in enumerate(pairwise(channels)):
            first = index == 0
            stride, padding = (1, 0) if first else (2, 1)
            layers.append(nn.ConvTranspose2d(c_in, c_out, FIRST_KERNEL, stride, padding, bias=False))
            if index < num_convs - 1:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    def layer_weight(self, index: int) -> torch.Tensor:
        assert index == 0, "DCGAN has one factorizable layer"
        weight = self.main[0].weight  # (nz, C, 4, 4)
        return weight.flatten(1).T  # (C*4*4, nz): one row per output unit

    def _to_edit_space(self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None) -> torch.Tensor:
        return z  # DCGAN is edited in z directly

    def _synthesize(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor:
        return self.main(codes[:, :, None, None])  # (N, nz) -> (N, nz, 1, 1) -> (N, 3, H, W)
