"""StyleGAN (v1) as genforce/sefa builds it (``models/stylegan_generator.py``), edited in W+.

z -> pixel norm -> 8 dense layers (learning-rate multiplier 0.01) -> w, broadcast to one row per
synthesis layer and truncated toward ``w_avg``. Synthesis starts from a learned 4x4 constant; each
layer is [upsample] conv [blur] + stored noise + bias, leaky ReLU, instance norm, then AdaIN: an
affine ``style`` of its W+ row gives a per-channel scale and shift. Those affines are the layers
SeFa factorizes. Up to 64 px the upsampling is nearest-neighbour; from 128 px on it is genforce's
fused transposed conv (``fused_scale='auto'``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sefa_core.errors import require
from sefa_core.models.base import Generator, style_layer_presets, wplus_from_w
from sefa_core.models.pggan import IMAGE_CHANNELS, INIT_RES, LRELU_SLOPE, WSCALE_GAIN, pixel_norm

MAPPING_LR_MUL = 0.01  # the mapping network learns 100x slower; its stored weights are scaled up
STYLE_GAIN = 1.0  # the style affines and to-RGB use a linear gain
AUTO_FUSED_SCALE_MIN_RES = 128  # fused_scale='auto': transposed-conv upsampling from this size on
BLUR_TAPS = (1.0, 2.0, 1.0)  # the blur kernel is its normalised outer product (stored as a buffer)
INSTANCE_NORM_EPS = 1e-8


class EqualizedDense(nn.Module):
    """A mapping layer: equalized-lr dense with a learning-rate multiplier, then leaky ReLU."""

    def __init__(self, in_features: int, out_features: int, lr_mul: float = MAPPING_LR_MUL) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.wscale = WSCALE_GAIN / math.sqrt(in_features) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.wscale, self.bias * self.lr_mul)
        return F.leaky_relu(x, LRELU_SLOPE)


class MappingNetwork(nn.Module):
    """z -> pixel norm -> ``dense0 .. dense{n-1}`` -> w.

    A class-conditional one (TF ``label_size > 0``) holds ``label_weight`` (num_classes, z_dim),
    TF's plain ``LabelConcat`` matrix: z and ``one_hot @ label_weight`` are concatenated before the
    pixel norm, so ``dense0`` reads 2 * z_dim inputs.
    """

    def __init__(
        self, z_dim: int, hidden_dim: int, w_dim: int, num_layers: int, num_classes: int = 0
    ) -> None:
        super().__init__()
        require(num_layers >= 1, "the mapping network has at least one layer")
        self.num_layers = num_layers
        widths = [z_dim * (2 if num_classes else 1)] + [hidden_dim] * (num_layers - 1) + [w_dim]
        for index, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            self.add_module(f"dense{index}", EqualizedDense(c_in, c_out))
        if num_classes:
            self.label_weight = nn.Parameter(torch.zeros(num_classes, z_dim))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``labels``: (N, num_classes) one-hot rows, for a class-conditional network only."""
        if labels is not None:
            z = torch.cat([z, labels @ self.label_weight], dim=1)  # (N, 2 * z_dim)
        w = pixel_norm(z)
        for index in range(self.num_layers):
            w = getattr(self, f"dense{index}")(w)
        return w  # (N, w_dim)


class TruncationCentre(nn.Module):
    """Holds ``w_avg``, the running mean of w tracked in training, toward which codes are truncated."""

    def __init__(self, w_dim: int) -> None:
        super().__init__()
        self.register_buffer("w_avg", torch.zeros(w_dim))


class NoiseInjection(nn.Module):
    """Adds the stored per-layer noise map with learned per-channel strengths (``randomize_noise=False``)."""

    def __init__(self, resolution: int, channels: int) -> None:
        super().__init__()
        self.register_buffer("noise", torch.zeros(1, 1, resolution, resolution))
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.noise * self.weight.view(1, -1, 1, 1)


class StyleModulation(nn.Module):
    """AdaIN's affine: a W+ row -> per-channel (scale, shift); the 2C x w_dim weight is what SeFa reads."""

    def __init__(self, w_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.zeros(2 * channels, w_dim))
        self.bias = nn.Parameter(torch.zeros(2 * channels))
        self.wscale = STYLE_GAIN / math.sqrt(w_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = F.linear(w, self.weight * self.wscale, self.bias)  # (N, 2C): scales, then shifts
        style = style.view(-1, 2, self.channels, 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]


class Blur(nn.Module):
    """Depthwise 3x3 binomial blur after upsampling convs; the kernel is a stored buffer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor(BLUR_TAPS)
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum()).expand(channels, 1, -1, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel, padding=1, groups=x.shape[1])


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit root-mean-square per sample and channel, over the spatial axes."""
    x = x - torch.mean(x, dim=(2, 3), keepdim=True)
    return x / torch.sqrt(torch.mean(x**2, dim=(2, 3), keepdim=True) + INSTANCE_NORM_EPS)


class StyledLayer(nn.Module):
    """What every synthesis layer ends with: noise, bias, leaky ReLU, instance norm, AdaIN."""

    def __init__(self, out_channels: int, resolution: int, w_dim: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.apply_noise = NoiseInjection(resolution, out_channels)
        self.style = StyleModulation(w_dim, out_channels)

    def stylize(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.apply_noise(x) + self.bias.view(1, -1, 1, 1)
        return self.style(instance_norm(F.leaky_relu(x, LRELU_SLOPE)), w)


class ConstLayer(StyledLayer):
    """Layer 0: the learned 4x4 constant, styled by W+ row 0."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__(channels, INIT_RES, w_dim)
        self.const = nn.Parameter(torch.zeros(1, channels, INIT_RES, INIT_RES))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.stylize(self.const.repeat(w.shape[0], 1, 1, 1), w)


class ConvLayer(StyledLayer):
    """A 3x3 equalized-lr conv, optionally doubling the size first (nearest or fused), then styled."""

    def __init__(
        self, in_channels: int, out_channels: int, resolution: int, w_dim: int, upsample: str | None
    ) -> None:
        """``upsample``: None, ``"nearest"`` (upsample then conv) or ``"fused"`` (one transposed conv)."""
        require(upsample in (None, "nearest", "fused"), f"unknown upsampling {upsample!r}")
        super().__init__(out_channels, resolution, w_dim)
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, 3, 3))
        self.wscale = WSCALE_GAIN / math.sqrt(in_channels * 3 * 3)
        self.upsample = upsample
        if upsample is not None:
            self.blur = Blur(out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.wscale  # (out, in, 3, 3)
        if self.upsample == "fused":
            # genforce's fused upscale: sum the kernel over a 2x2 window, (out, in, 4, 4), then a
            # stride-2 transposed conv, which takes (in, out, 4, 4).
            weight = F.pad(weight, (1, 1, 1, 1))
            weight = (
                weight[:, :, 1:, 1:] + weight[:, :, :-1, 1:] + weight[:, :, 1:, :-1] + weight[:, :, :-1, :-1]
            )
            x = F.conv_transpose2d(x, weight.permute(1, 0, 2, 3), stride=2, padding=1)
        else:
            if self.upsample == "nearest":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv2d(x, weight, padding=1)
        if self.upsample is not None:
            x = self.blur(x)
        return self.stylize(x, w)


class ToRGB(nn.Module):
    """1x1 equalized-lr conv to the image, linear."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(IMAGE_CHANNELS, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(IMAGE_CHANNELS))
        self.wscale = STYLE_GAIN / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.wscale) + self.bias.view(1, -1, 1, 1)


class SynthesisNetwork(nn.Module):
    """W+ (N, 2 * num_blocks, w_dim) -> image; two styled layers and one to-RGB per resolution.

    Only the last ``output{b}`` draws at ``lod`` 0; the others are left over from progressive
    growing but are part of the file.
    """

    def __init__(self, channels: Sequence[int], w_dim: int) -> None:
        super().__init__()
        self.num_blocks = len(channels)
        self.num_layers = 2 * self.num_blocks
        self.register_buffer("lod", torch.zeros(()))  # progressive-growing level; 0 = full resolution
        for block, width in enumerate(channels):
            resolution = INIT_RES * 2**block
            if block == 0:
                first: nn.Module = ConstLayer(width, w_dim)
            else:
                fused = resolution >= AUTO_FUSED_SCALE_MIN_RES
                upsample = "fused" if fused else "nearest"
                first = ConvLayer(channels[block - 1], width, resolution, w_dim, upsample)
            self.add_module(f"layer{2 * block}", first)
            self.add_module(f"layer{2 * block + 1}", ConvLayer(width, width, resolution, w_dim, None))
            self.add_module(f"output{block}", ToRGB(width))

    def forward(self, wp: torch.Tensor) -> torch.Tensor:
        require(wp.ndim == 3 and wp.shape[1] == self.num_layers, "wp must be (N, num_layers, w_dim)")
        x = self.layer0(wp[:, 0])
        x = self.layer1(x, wp[:, 1])
        for layer in range(2, self.num_layers):
            x = getattr(self, f"layer{layer}")(x, wp[:, layer])
        return getattr(self, f"output{self.num_blocks - 1}")(x)  # (N, 3, R, R)


class StyleGANGenerator(Generator):
    """genforce's StyleGAN v1 (const input, repeated w, no tanh), edited in W+.

    With ``num_classes`` the class enters the mapping network only: it changes the codes
    (``sample(..., classes=k)``), and synthesis draws whatever W+ code it is given.
    """

    architecture = "stylegan"
    edit_space = "w+"

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        mapping_hidden: int,
        mapping_layers: int,
        channels: Sequence[int],
        num_classes: int = 0,
    ) -> None:
        """``channels[b]``: feature maps at resolution ``4 * 2**b``; the last entry sets the output size."""
        require(len(channels) >= 1 and all(c > 0 for c in channels), "one positive width per resolution")
        names = []
        for layer in range(2 * len(channels)):
            size = INIT_RES * 2 ** (layer // 2)
            if layer == 0:
                kind = "const input"
            elif layer % 2 == 0:
                kind = "fused upsample conv" if size >= AUTO_FUSED_SCALE_MIN_RES else "upsample conv"
            else:
                kind = "conv"
            names.append(f"layer{layer} ({size}x{size} {kind})")
        super().__init__(
            latent_dim=z_dim,
            direction_dim=w_dim,
            resolution=INIT_RES * 2 ** (len(channels) - 1),
            num_layers=2 * len(channels),
            layer_names=names,
        )
        self.mapping = MappingNetwork(z_dim, mapping_hidden, w_dim, mapping_layers, num_classes)
        self.num_classes = num_classes
        self.class_names = tuple(str(index) for index in range(num_classes))
        self.truncation = TruncationCentre(w_dim)
        self.synthesis = SynthesisNetwork(channels, w_dim)

    def layer_weight(self, index: int) -> torch.Tensor:
        require(0 <= index < self.num_layers, f"layer {index} is out of range")
        # (2C, w_dim): scale rows then shift rows; genforce factorizes both, as we do.
        return getattr(self.synthesis, f"layer{index}").style.weight

    def layer_presets(self) -> dict[str, str]:
        return style_layer_presets(self.num_layers)

    def _to_edit_space(
        self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None, **conditioning: Any
    ) -> torch.Tensor:
        w = self.mapping(z, self.mapping_labels(z.shape[0], conditioning))  # (N, w_dim)
        return wplus_from_w(w, self.num_layers, self.truncation.w_avg, trunc_psi, trunc_layers)

    def _synthesize(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor:
        return self.synthesis(codes)
