"""DCGAN generators: z (N, nz) [+ a class] -> a chain of transposed convs -> tanh image.

The structure is the PyTorch DCGAN tutorial's, in any size: a first transposed conv that turns the
code (a 1x1 map) into a k x k map (stride 1, no padding), then 4x4 stride-2 transposed convs that
double it, each but the last followed by an optional BatchNorm and a ReLU, and a Tanh at the end.
Those activations are the tutorial's; they hold no weights, so a checkpoint cannot say otherwise.
Dropout, Identity and other parameter-free layers a variant puts between the blocks are no-ops in
eval mode, so leaving them out gives the same images.

A class-conditional DCGAN reads ``[z, c]`` at its first layer: z in the first nz inputs, then c, a
one-hot class vector or a learnt ``nn.Embedding`` row. The edit space is z alone, and SeFa's layer
is the z rows of the first layer's weight, read as the affine matrix (C*k*k, nz).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import nn

from sefa_core.errors import require
from sefa_core.models.base import Generator

FIRST_KERNEL = 4  # the tutorial's first transposed conv turns a 1x1 code into a 4x4 map
UP_KERNEL, UP_STRIDE, UP_PADDING = 4, 2, 1  # every later transposed conv doubles the map
GRAY_CHANNELS, RGB_CHANNELS = 1, 3  # the image channels a DCGAN may draw (grayscale shown as RGB)


@dataclass(frozen=True)
class UpConv:
    """One transposed conv of the chain and the BatchNorm that may follow it."""

    in_channels: int
    out_channels: int
    kernel: int = UP_KERNEL  # the first layer's sets the start size; later ones are UP_KERNEL
    bias: bool = False
    batch_norm: bool = True  # a BatchNorm2d follows (never after the last conv)
    norm_affine: bool = True  # that BatchNorm has a learnt weight and bias


@dataclass(frozen=True)
class DCGANSpec:
    """A DCGAN's structure: its convs in order, and how a class enters the first one.

    ``num_classes > 0`` makes the model conditional; the class vector is one-hot
    (``num_classes`` inputs) unless ``embedding_dim > 0``, the width of a learnt label embedding.
    """

    convs: tuple[UpConv, ...]
    num_classes: int = 0
    embedding_dim: int = 0

    @property
    def class_inputs(self) -> int:
        """Inputs of the first layer that carry the class, after the nz that carry z."""
        return self.embedding_dim or self.num_classes

    @property
    def nz(self) -> int:
        return self.convs[0].in_channels - self.class_inputs

    @property
    def resolution(self) -> int:
        return self.convs[0].kernel * UP_STRIDE ** (len(self.convs) - 1)


def tutorial_spec(channels: Sequence[int]) -> DCGANSpec:
    """The tutorial's chain: ``channels`` = [nz, 8ngf, 4ngf, ..., nc], 4x4 bias-free convs with BatchNorm."""
    require(len(channels) >= 2, "a DCGAN has at least one transposed conv: channels [nz, ..., nc]")
    kernels = [FIRST_KERNEL] + [UP_KERNEL] * (len(channels) - 2)
    return DCGANSpec(
        tuple(UpConv(*pair, kernel) for pair, kernel in zip(pairwise(channels), kernels, strict=True))
    )


class DCGANGenerator(Generator):
    """A DCGAN of any depth and width, conditional or not; see the module docstring."""

    architecture = "dcgan"
    edit_space = "z"

    def __init__(self, spec: DCGANSpec | Sequence[int], class_names: Sequence[str] = ()) -> None:
        """``spec``: the structure, or the tutorial's channel list [nz, 8ngf, ..., nc]."""
        spec = spec if isinstance(spec, DCGANSpec) else tutorial_spec(spec)
        check_spec(spec)
        super().__init__(
            latent_dim=spec.nz,
            direction_dim=spec.nz,
            resolution=spec.resolution,
            num_layers=1,
            layer_names=("main.0",),
        )
        self.spec = spec
        self.num_classes = spec.num_classes
        require(
            not class_names or len(class_names) == spec.num_classes,
            f"{len(class_names)} class names for a model with {spec.num_classes} classes",
        )
        self.class_names = tuple(class_names)
        layers: list[nn.Module] = []
        self.block_indices: list[tuple[int, int | None]] = []  # (conv, BatchNorm or None) in ``main``
        for index, conv in enumerate(spec.convs):
            first, last = index == 0, index == len(spec.convs) - 1
            stride, padding = (1, 0) if first else (UP_STRIDE, UP_PADDING)
            conv_index = len(layers)
            layers.append(
                nn.ConvTranspose2d(
                    conv.in_channels, conv.out_channels, conv.kernel, stride, padding, bias=conv.bias
                )
            )
            norm_index = None
            if not last:
                if conv.batch_norm:
                    norm_index = len(layers)
                    layers.append(nn.BatchNorm2d(conv.out_channels, affine=conv.norm_affine))
                layers.append(nn.ReLU(True))
            self.block_indices.append((conv_index, norm_index))
        layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)
        if spec.embedding_dim:
            self.label_emb = nn.Embedding(spec.num_classes, spec.embedding_dim)

    def layer_weight(self, index: int) -> torch.Tensor:
        require(index == 0, f"DCGAN has one factorizable layer, not {index}")
        weight = self.main[0].weight[: self.latent_dim]  # (nz, C, k, k): the rows z feeds
        return weight.flatten(1).T  # (C*k*k, nz): one row per output unit

    def _to_edit_space(
        self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None, **conditioning: object
    ) -> torch.Tensor:
        return z  # DCGAN is edited in z directly

    def _synthesize(
        self, codes: torch.Tensor, *, classes: object = None, truncation: float | None = None
    ) -> torch.Tensor:
        """``truncation`` is what a class picker passes every conditional model; DCGAN draws plain z."""
        inputs = codes
        if self.num_classes:
            labels = self.class_vectors(classes, codes.shape[0])  # (N, num_classes)
            if self.spec.embedding_dim:
                labels = labels @ self.label_emb.weight  # (N, embedding_dim): the rows the labels pick
            inputs = torch.cat([codes, labels], dim=1)  # (N, nz + class inputs), z first
        images = self.main(inputs[:, :, None, None])  # (N, in, 1, 1) -> (N, nc, H, W)
        return images.expand(-1, RGB_CHANNELS, -1, -1) if images.shape[1] == GRAY_CHANNELS else images


def check_spec(spec: DCGANSpec) -> None:
    """Refuse a structure this model cannot run: a broken channel chain, no z, no image."""
    require(bool(spec.convs), "a DCGAN has at least one transposed conv")
    for before, after in pairwise(spec.convs):
        require(
            after.in_channels == before.out_channels and after.kernel == UP_KERNEL,
            f"each transposed conv after the first is {UP_KERNEL}x{UP_KERNEL} and takes the channels "
            f"the one before gives ({before.out_channels})",
        )
    require(spec.nz >= 1, f"the first layer's {spec.convs[0].in_channels} inputs leave no room for z")
    require(spec.num_classes >= 0 and spec.embedding_dim >= 0, "class counts are not negative")
    require(not spec.embedding_dim or spec.num_classes, "a label embedding needs classes")
    require(
        spec.convs[-1].out_channels in (GRAY_CHANNELS, RGB_CHANNELS),
        f"the last layer draws {spec.convs[-1].out_channels} channels; an image has 1 (gray) or 3 (RGB)",
    )
