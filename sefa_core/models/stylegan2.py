"""StyleGAN2 (config F, skip generator): one module for genforce, rosinality and NVIDIA weights.

The three public implementations hold the same network under different key names; each format
loader renames its keys onto this module and calls ``build_stylegan2``. What they store
differently is normalised by those loaders, so that one forward pass serves all three:
- up-sampling conv weights: rosinality and NVIDIA store them flipped relative to TensorFlow's (and
  genforce's) orientation; we keep theirs, which a transposed conv uses as it is;
- style-affine biases: genforce adds the constant 1 at run time, the others store it in the bias;
- FIR filters: every layer keeps its own copy with its own gain; we keep one, summing to 1.
The one arithmetic difference left is NVIDIA's ``conv_clamp``, a constructor option.

Edit space W+, ``num_ws = 2 * log2(resolution) - 2`` rows: row ``i`` feeds the i-th modulated
conv (row 0 the 4x4 conv, then conv0 (up) and conv1 of every larger resolution), and the ToRGB
after each resolution's last conv reads the row after it, so the last row feeds only the final
ToRGB. SeFa's layer ``i`` is the style affine of the conv that reads row ``i``; the last layer is
the final ToRGB's (as genforce's ``factorize_weight`` does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sefa_core.errors import InputError, require
from sefa_core.models.base import KEY_SLOT, Generator, WeightError, style_layer_presets, wplus_from_w

INIT_RESOLUTION = 4  # the learned constant the synthesis network starts from
IMAGE_CHANNELS = 3
CONV_KERNEL_SIZE = 3
UP = 2  # every block doubles the resolution
MAPPING_LR_MULTIPLIER = 0.01  # all three implementations train the mapping MLP 100x slower
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through the leaky ReLU
NORMALIZE_EPS = 1e-8
DEMODULATE_EPS = 1e-8
DEFAULT_RESAMPLE_TAPS = (1.0, 3.0, 3.0, 1.0)  # the binomial FIR filter every public model uses
MEAN_W_SAMPLES = 4096  # rosinality's ``mean_latent(4096)``: the truncation centre when none is stored
MEAN_W_SEED = 0
LABEL_WEIGHT_KEY = "mapping.label_weight"  # the conditional mapping's LabelConcat matrix, in every layout
EMBED_WEIGHT_KEY = "mapping.embed.weight"  # StyleGAN2-ADA's class embedding, as NVIDIA names it
FILTER_ATOL = 1e-6
TAIL_CHUNK_BYTES = 512 * 2**20  # the largest map a batch renders at once; larger ones go in chunks


# ---- FIR resampling (upfirdn2d written as conv ops) ----------------------------------------------
def fir_kernel(taps: Sequence[float]) -> torch.Tensor:
    """Separable 2-D FIR filter from 1-D taps, (K, K), normalised to sum 1."""
    taps_1d = torch.as_tensor(taps, dtype=torch.float32)
    require(
        taps_1d.ndim == 1 and len(taps_1d) % 2 == 0,
        f"FIR taps must be an even number of 1-D taps, got {taps}",
    )
    kernel = torch.outer(taps_1d, taps_1d)
    return kernel / kernel.sum()


def shared_resample_filter(kernels: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The one FIR filter a checkpoint's per-layer copies hold, (K, K) summing to 1.

    Layouts store a copy per layer, with the up-sampling gain (4) folded in or not; they must agree
    once normalised. A state dict without any copy gets the standard [1, 3, 3, 1] filter.
    """
    if not kernels:
        return fir_kernel(DEFAULT_RESAMPLE_TAPS)
    normalised = {key: k.reshape(k.shape[-2:]).float() / k.sum() for key, k in kernels.items()}
    (first_key, first), *others = normalised.items()
    for key, kernel in others:
        if kernel.shape != first.shape or not torch.allclose(kernel, first, atol=FILTER_ATOL):
            raise InputError(f"FIR filters '{first_key}' and '{key}' differ; one shared filter is expected")
    require(
        first.shape[0] == first.shape[1] and first.shape[0] % 2 == 0,
        f"FIR filter '{first_key}' must be square and even-sized, got {tuple(first.shape)}",
    )
    return first


def fir_filter(x: torch.Tensor, resample_filter: torch.Tensor, gain: float, padding: int) -> torch.Tensor:
    """Convolve every channel with the FIR filter (upfirdn2d with up = down = 1), as a depthwise conv."""
    channels = x.shape[1]
    taps = resample_filter.shape[0]
    kernel = (resample_filter.flip(0, 1) * gain).to(x.dtype).expand(channels, 1, taps, taps)
    return F.conv2d(x, kernel, padding=padding, groups=channels)


def upsample_2x(x: torch.Tensor, resample_filter: torch.Tensor) -> torch.Tensor:
    """FIR up-sampling by 2 (upfirdn2d with up=2, pads ((K+1)//2, (K-2)//2)) as one transposed conv.

    Zero-stuffing, padding and filtering collapse into a depthwise stride-2 transposed conv with the
    filter itself (not flipped), which is what makes this cheap at 1024 px.
    """
    batch, channels, height, width = x.shape
    taps = resample_filter.shape[0]
    kernel = (resample_filter * UP**2).to(x.dtype).expand(channels, 1, taps, taps)
    padding = taps - 1 - (taps + 1) // 2
    out = F.conv_transpose2d(x, kernel, stride=UP, padding=padding, groups=channels)
    assert out.shape == (batch, channels, UP * height, UP * width), "FIR up-sampling doubles H and W"
    return out


def may_overwrite() -> bool:
    """Whether ops may overwrite activations that autograd could have saved for the backward pass.

    Working in place spares a full-size temporary per op and the page faults of allocating it
    (much of a batched forward's time at 256 px); photo inversion back-propagates, so not then.
    """
    return not torch.is_grad_enabled()


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor,
    *,
    lrelu: bool,
    clamp: float | None,
    scale: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x * scale + bias + noise``, then the gain-corrected leaky ReLU (if asked), then ``conv_clamp``.

    ``bias`` (C,) per channel; ``scale`` (N, C) per sample and channel (the demodulation the batched
    modulated conv leaves to this pass); ``noise`` (H, W), the same for every channel. The leaky
    ReLU's gain is folded into these factors, as lrelu(g y) = g lrelu(y) for g > 0, so a large map
    takes three passes rather than five. Overwrites ``x`` where ``may_overwrite()``: every caller
    hands over a fresh layer output.
    """
    gain = LRELU_GAIN if lrelu else 1.0
    broadcast = [1] * (x.ndim - 2)
    bias = (bias * gain).reshape(1, -1, *broadcast)
    overwrite = may_overwrite()
    if scale is None and not lrelu:
        x = x.add_(bias) if overwrite else x + bias
    else:
        factor = x.new_tensor(gain) if scale is None else (scale * gain).reshape(*scale.shape, *broadcast)
        x = torch.addcmul(bias, x, factor, out=x) if overwrite else torch.addcmul(bias, x, factor)
    # In place from here on, the output being fresh; the clamp only without autograd, since the leaky
    # ReLU's backward reads its output.
    if noise is not None:
        x = x.add_(noise * gain)
    if lrelu:
        x = F.leaky_relu(x, LRELU_SLOPE, inplace=True)
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if may_overwrite() else x.clamp(-clamp, clamp)
    return x


# ---- building blocks ---------------------------------------------------------------------------
class EqualizedLinear(nn.Module):
    """A dense layer with equalized learning rate: stored weights are scaled at run time.

    Checkpoints keep the raw weight; ``weight_gain = lr_multiplier / sqrt(in_features)`` is applied
    here, so SeFa reads the stored matrix (only its row directions matter).
    """

    def __init__(
        self, in_features: int, out_features: int, *, lr_multiplier: float = 1.0, lrelu: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        bias = self.bias * self.bias_gain
        if not self.lrelu:
            return F.linear(x, weight, bias)
        return bias_act(F.linear(x, weight), bias, lrelu=True, clamp=None)


def normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit root-mean-square, (N, C): what the mapping network does to its inputs."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + NORMALIZE_EPS)


class MappingNetwork(nn.Module):
    """z -> w: normalise z's second moment, then leaky-ReLU dense layers at a reduced learning rate.

    A class-conditional one reads the class in one of two ways:
    - ``label_weight`` (num_classes, z_dim), TF's plain ``LabelConcat`` matrix (original StyleGAN2,
      genforce): z and ``one_hot @ label_weight`` are concatenated, then normalised together;
    - ``embed`` (``embed_features`` > 0), StyleGAN2-ADA's dense layer (NVIDIA ``mapping.embed``, TF
      ``LabelEmbed``): z and ``embed(one_hot)`` are normalised each on its own, then concatenated.
    """

    def __init__(
        self, widths: Sequence[int], lr_multiplier: float, num_classes: int = 0, embed_features: int = 0
    ) -> None:
        """``widths``: [z_dim, hidden..., w_dim]; one dense layer per consecutive pair."""
        super().__init__()
        require(len(widths) >= 2, "the mapping network has at least one layer")
        require(num_classes > 0 or not embed_features, "a class embedding needs classes")
        z_dim = widths[0]
        label_features = embed_features or (z_dim if num_classes else 0)
        self.layers = nn.ModuleList(
            EqualizedLinear(a, b, lr_multiplier=lr_multiplier, lrelu=True)
            for a, b in pairwise([z_dim + label_features, *widths[1:]])
        )
        self.embeds = embed_features > 0
        if self.embeds:
            self.embed = EqualizedLinear(num_classes, embed_features)  # NVIDIA's lr_multiplier 1, linear
        elif num_classes:
            self.label_weight = nn.Parameter(torch.zeros(num_classes, z_dim))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``labels``: (N, num_classes) one-hot rows, for a class-conditional network only."""
        if labels is not None and self.embeds:
            x = torch.cat([normalize_2nd_moment(z), normalize_2nd_moment(self.embed(labels))], dim=1)
        else:
            if labels is not None:
                z = torch.cat([z, labels @ self.label_weight], dim=1)  # (N, 2 * z_dim)
            x = normalize_2nd_moment(z)
        for layer in self.layers:
            x = layer(x)
        return x  # (N, w_dim)


@dataclass(frozen=True)
class WeightTerms:
    """What the batched modulated conv derives from its weight alone, whatever the styles.

    Why kept: inference never changes a weight, and at batch 1 re-deriving these on every call
    (the norms of every 512 x 512 x 3 x 3 weight, a contiguous copy for each transposed conv) cost
    ~6 % of a 256 px image (BENCHMARKS.md, 8e).
    """

    key: tuple[int, int, torch.dtype, torch.device]  # the weight's (_version, data_ptr, dtype, device)
    squared_norms: torch.Tensor  # (out, in): the sum over the k x k taps of weight^2
    transposed: torch.Tensor | None  # (in, out, k, k), contiguous: conv_transpose2d's weight, for ``up``


def weight_terms(weight: torch.Tensor, *, up: bool) -> WeightTerms:
    """``WeightTerms`` of ``weight`` (out, in, k, k), keyed so that any change to it shows."""
    key = (weight._version, weight.data_ptr(), weight.dtype, weight.device)
    squared_norms = torch.linalg.vector_norm(weight, dim=(2, 3)).square()  # (out, in)
    transposed = weight.transpose(0, 1).contiguous() if up else None  # (in, out, k, k)
    return WeightTerms(key, squared_norms, transposed)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool,
    fused: bool,
    up: bool = False,
    overwrite_input: bool = False,
    terms: WeightTerms | None = None,
) -> torch.Tensor:
    """Modulated conv of ``x`` (N, in, H, W) with ``weight`` (out, in, k, k) and ``styles`` (N, in).

    Two equivalent forms (NVIDIA's ``fused_modconv``): fused modulates the weights per sample and
    runs the batch as conv groups; non-fused scales the input channels (in place if
    ``overwrite_input``), runs one shared-weight conv for the whole batch (one large GEMM), then
    demodulates the outputs. A 1x1 conv is a per-sample matmul in either form. With ``up`` it is
    the stride-2 transposed conv before the FIR filter: out (N, out, 2H + k - 2, 2W + k - 2).
    ``terms``: ``weight_terms(weight, up=up)``, kept by the caller; derived here when not given.
    """
    batch, in_channels, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    if kernel == 1 and not up:
        return _modulated_1x1(x, weight, styles, demodulate=demodulate)
    if not fused:
        terms = weight_terms(weight, up=up) if terms is None else terms
        scale = styles[:, :, None, None]  # (N, in, 1, 1)
        x = x.mul_(scale) if overwrite_input else x * scale
        if up:
            x = F.conv_transpose2d(x, terms.transposed, stride=UP)
        else:
            x = F.conv2d(x, weight, padding=kernel // 2)
        if not demodulate:
            return x
        return x.mul_(demodulation_scale(terms.squared_norms, styles)[:, :, None, None])  # autograd-safe
    weight = _modulated_weight(weight, styles, demodulate=demodulate)  # (N, out, in, k, k)
    x = x.reshape(1, batch * in_channels, height, width)  # the batch becomes conv groups
    x = x if batch > 1 else x.contiguous(memory_format=torch.channels_last)  # reshape dropped the format
    if not up:
        weight = weight.reshape(batch * out_channels, in_channels, kernel, kernel)
        x = F.conv2d(x, weight, padding=kernel // 2, groups=batch)
        return x.reshape(batch, out_channels, height, width)
    weight = weight.transpose(1, 2).reshape(batch * in_channels, out_channels, kernel, kernel)
    x = F.conv_transpose2d(x, weight, stride=UP, groups=batch)  # (1, N*out, 2H+k-2, 2W+k-2)
    return x.reshape(batch, out_channels, *x.shape[2:])


def demodulation_scale(squared_norms: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """What the batched form multiplies its outputs by, (N, out): 1 / the norm of each modulated filter.

    The sum over (in, k, k) of (weight * style)^2, as one (N, in) @ (in, out) product of the styles'
    squares with ``squared_norms`` (out, in), the weight's per-tap-summed squares.
    """
    power = styles.square() @ squared_norms.T  # (N, out)
    return torch.rsqrt(power + DEMODULATE_EPS)


def _modulated_weight(weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool) -> torch.Tensor:
    """Per-sample weights (N, out, in, k, k): scaled by the styles, then demodulated if asked."""
    weight = weight * styles[:, None, :, None, None]
    if not demodulate:
        return weight
    norm = torch.linalg.vector_norm(weight, dim=(2, 3, 4), keepdim=True)  # (N, out, 1, 1, 1)
    scale = torch.rsqrt(norm.square() + DEMODULATE_EPS)
    return weight.mul_(scale) if may_overwrite() else weight * scale  # the norm's backward reads weight


def _modulated_1x1(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool
) -> torch.Tensor:
    """A modulated 1x1 conv as one batched matmul over the pixels: no temporary the size of ``x``.

    Channels-last ``x`` is already (N, H, W, in) in memory; the result comes back channels last.
    """
    batch, in_channels, height, width = x.shape
    weight = _modulated_weight(weight, styles, demodulate=demodulate)[..., 0, 0]  # (N, out, in)
    pixels = x.permute(0, 2, 3, 1).reshape(batch, height * width, in_channels)  # (N, HW, in)
    out = torch.bmm(pixels, weight.transpose(1, 2))  # (N, HW, out)
    return out.reshape(batch, height, width, -1).permute(0, 3, 1, 2)  # (N, out, H, W)


def fused_modulation(x: torch.Tensor) -> bool:
    """Whether the modulated convs on ``x`` run the fused (grouped) form rather than the batched one.

    On the CPU the batched form won at every layer of config-f at 256 px, at batch 1 as at 8, with
    autograd on or off (``bench/bench_render_speed.py``; BENCHMARKS.md). On CUDA we keep NVIDIA's
    choice for inference, the fused form; no GPU was at hand to measure it.
    """
    return x.device.type == "cuda"


class ModulatedConv2d(nn.Module):
    """A conv whose input channels are scaled per sample by a style (an affine map of w).

    With demodulation each output channel is rescaled to unit expected variance. No Python loop
    over samples: the CPU runs the batched form, CUDA the fused one (``fused_modulation``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        *,
        demodulate: bool,
        up: bool,
    ) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels)  # its bias holds the +1: styles start at 1
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.up = up
        self._terms: WeightTerms | None = None  # ``terms()``'s; not state: re-derived from the weight

    def terms(self) -> WeightTerms:
        """``weight_terms`` of the weight, derived again only once the weight has changed.

        Kept outside autograd and inference mode, so that photo inversion (autograd on, weights
        frozen) can use what a render kept; a weight that trains gets fresh terms on every call.
        """
        if self.weight.requires_grad and torch.is_grad_enabled():
            return weight_terms(self.weight, up=self.up)
        key = (self.weight._version, self.weight.data_ptr(), self.weight.dtype, self.weight.device)
        if self._terms is None or self._terms.key != key:
            with torch.inference_mode(False), torch.no_grad():
                self._terms = weight_terms(self.weight, up=self.up)
        return self._terms

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        resample_filter: torch.Tensor | None = None,
        *,
        overwrite_input: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output, and the demodulation (N, out) still to apply to it, or None if none is left.

        The batched form leaves its demodulation to the caller's bias pass (``bias_act``): it is a
        per-channel scale, so it commutes with the FIR filter, and a pass over a large map is saved.
        ``overwrite_input``: ``x`` is not needed afterwards, so the batched form may scale it in place.
        """
        height, width = x.shape[2:]
        styles = self.affine(w) * self.weight_gain  # (N, in); the gain moves to the far smaller factor
        fused = fused_modulation(x)
        terms = None if fused else self.terms()
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            demodulate=self.demodulate and fused,
            fused=fused,
            up=self.up,
            overwrite_input=overwrite_input and may_overwrite(),
            terms=terms,
        )
        scale = (
            None if terms is None or not self.demodulate else demodulation_scale(terms.squared_norms, styles)
        )
        if not self.up:
            return x, scale
        require(resample_filter is not None, "an up-sampling modulated conv needs the FIR filter")
        taps, kernel = resample_filter.shape[0], self.weight.shape[-1]
        padding = (taps - UP - kernel + 1) // 2 + 1  # symmetric for even taps; crops back to 2H
        x = fir_filter(x, resample_filter, gain=UP**2, padding=padding)
        assert x.shape[2:] == (UP * height, UP * width), "the up-sampling conv doubles H and W"
        return x, scale


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally up-sampling), stored noise, bias, leaky ReLU, optional clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        up: bool,
        conv_clamp: float | None,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels, out_channels, CONV_KERNEL_SIZE, w_dim, demodulate=True, up=up
        )
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, resample_filter: torch.Tensor) -> torch.Tensor:
        """Consumes ``x``: the synthesis network hands over each activation after its ToRGB read it."""
        x, scale = self.conv(x, w, resample_filter, overwrite_input=True)
        noise = self.noise_const * self.noise_strength  # the stored noise: images are deterministic
        return bias_act(x, self.bias, lrelu=True, clamp=self.conv_clamp, scale=scale, noise=noise)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation, plus bias and optional clamp."""

    def __init__(self, in_channels: int, w_dim: int, *, conv_clamp: float | None) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, IMAGE_CHANNELS, 1, w_dim, demodulate=False, up=False)
        self.bias = nn.Parameter(torch.zeros(IMAGE_CHANNELS))
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x, scale = self.conv(x, w)
        return bias_act(x, self.bias, lrelu=False, clamp=self.conv_clamp, scale=scale)


class SynthesisNetwork(nn.Module):
    """W+ -> image: a learned 4x4 constant, two styled convs per resolution, summed skip ToRGBs."""

    def __init__(
        self,
        w_dim: int,
        channels: Sequence[int],
        *,
        conv_clamp: float | None,
        resample_taps: Sequence[float],
    ) -> None:
        """``channels``: feature maps at 4x4, 8x8, ..., resolution x resolution."""
        super().__init__()
        require(len(channels) >= 2, "at least 8x8 output")
        self.const = nn.Parameter(torch.randn(channels[0], INIT_RESOLUTION, INIT_RESOLUTION))
        self.register_buffer("resample_filter", fir_kernel(resample_taps))
        convs = [
            StyledConv(channels[0], channels[0], w_dim, INIT_RESOLUTION, up=False, conv_clamp=conv_clamp)
        ]
        to_rgbs = [ToRGB(channels[0], w_dim, conv_clamp=conv_clamp)]
        for block, (c_in, c_out) in enumerate(pairwise(channels), start=1):
            resolution = INIT_RESOLUTION * UP**block
            convs.append(StyledConv(c_in, c_out, w_dim, resolution, up=True, conv_clamp=conv_clamp))
            convs.append(StyledConv(c_out, c_out, w_dim, resolution, up=False, conv_clamp=conv_clamp))
            to_rgbs.append(ToRGB(c_out, w_dim, conv_clamp=conv_clamp))
        self.convs = nn.ModuleList(convs)  # conv i reads W+ row i
        self.to_rgbs = nn.ModuleList(to_rgbs)  # ToRGB k reads row 2k + 1
        self.num_ws = len(convs) + 1

    def row_affines(self) -> list[EqualizedLinear]:
        """The style affine of the layer that consumes each W+ row (the last row: the final ToRGB)."""
        return [conv.conv.affine for conv in self.convs] + [self.to_rgbs[-1].conv.affine]

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        require(ws.ndim == 3 and ws.shape[1] == self.num_ws, "ws must be (N, num_ws, w_dim)")
        # (N, C, 4, 4), channels last: oneDNN's convs and the FIR filters run fastest in it
        x = self.const.expand(ws.shape[0], -1, -1, -1).clone(memory_format=torch.channels_last)
        return self._layers(x, None, ws, start=0).contiguous()

    def chunk_size(self, dtype: torch.dtype) -> int:
        """How many samples the layers whose maps outgrow ``TAIL_CHUNK_BYTES`` run at once (>= 1).

        Why: a batch of 8 at 1024 px frees over 2 GiB at the top of the heap between passes, which
        glibc hands back to the kernel even when told to keep freed memory (its trim threshold stops
        at 2^31 - 1), and the next pass faults every page in again; in chunks, each map reuses the
        blocks the chunk before freed. The low-resolution layers, where a batch pays off, stay whole.
        """
        largest = max(map_numel(conv) for conv in self.convs)
        return max(1, TAIL_CHUNK_BYTES // (largest * dtype.itemsize))

    def _layers(
        self, x: torch.Tensor, image: torch.Tensor | None, ws: torch.Tensor, start: int
    ) -> torch.Tensor:
        """Rows ``start`` onward on ``x`` (N, C, H, W), summing the skip ToRGBs into ``image``."""
        chunk = self.chunk_size(x.dtype)
        for row in range(start, len(self.convs)):
            conv = self.convs[row]
            map_bytes = x.shape[0] * map_numel(conv) * x.element_size()
            if image is not None and x.shape[0] > chunk and map_bytes > TAIL_CHUNK_BYTES:
                parts = zip(x.split(chunk), image.split(chunk), ws.split(chunk), strict=True)
                return torch.cat([self._layers(*part, start=row) for part in parts])
            x = conv(x, ws[:, row], self.resample_filter)
            if row % 2 == 0:  # the last conv at this resolution; its ToRGB reads the next row
                rgb = self.to_rgbs[row // 2](x, ws[:, row + 1])
                image = rgb if image is None else upsample_2x(image, self.resample_filter).add_(rgb)
        require(image is not None, "the synthesis network has no ToRGB")
        return image


def map_numel(conv: nn.Module) -> int:
    """C * H * W of the map one sample's ``conv`` writes: its bias is (C,), its stored noise (H, W)."""
    return conv.noise_const.numel() * conv.bias.numel()


def row_names(num_resolutions: int) -> list[str]:
    """Readable names of the W+ rows, e.g. ``"row 3: 16x16 conv0 (up)"``."""
    names = [f"{INIT_RESOLUTION}x{INIT_RESOLUTION} conv"]
    for block in range(1, num_resolutions):
        size = INIT_RESOLUTION * UP**block
        names += [f"{size}x{size} conv0 (up)", f"{size}x{size} conv1"]
    final = INIT_RESOLUTION * UP ** (num_resolutions - 1)
    names.append(f"{final}x{final} toRGB")
    return [f"row {row}: {name}" for row, name in enumerate(names)]


# ---- the generator -----------------------------------------------------------------------------
class StyleGAN2Generator(Generator):
    """StyleGAN2 config F with the skip generator, edited in W+ (N, num_ws, w_dim)."""

    architecture = "stylegan2"
    edit_space = "w+"

    def __init__(
        self,
        *,
        mapping_widths: Sequence[int],
        channels: Sequence[int],
        mapping_lr_multiplier: float = MAPPING_LR_MULTIPLIER,
        conv_clamp: float | None = None,
        resample_taps: Sequence[float] = DEFAULT_RESAMPLE_TAPS,
        num_classes: int = 0,
        embed_features: int = 0,
    ) -> None:
        """``mapping_widths``: [z_dim, hidden..., w_dim]; ``channels``: feature maps per resolution
        from 4x4 up; ``conv_clamp``: NVIDIA's activation clamp (None in genforce and rosinality);
        ``num_classes``: a class-conditional mapping network's classes (they change w only), read
        through an ``embed_features``-wide embedding (StyleGAN2-ADA) or, with 0, a concat."""
        w_dim = mapping_widths[-1]
        super().__init__(
            latent_dim=mapping_widths[0],
            direction_dim=w_dim,
            resolution=INIT_RESOLUTION * UP ** (len(channels) - 1),
            num_layers=2 * len(channels),
            layer_names=row_names(len(channels)),
        )
        self.mapping = MappingNetwork(mapping_widths, mapping_lr_multiplier, num_classes, embed_features)
        self.num_classes = num_classes
        self.class_names = tuple(str(index) for index in range(num_classes))
        self.synthesis = SynthesisNetwork(w_dim, channels, conv_clamp=conv_clamp, resample_taps=resample_taps)
        self.register_buffer("w_avg", torch.zeros(w_dim))  # the truncation centre
        assert self.synthesis.num_ws == self.num_layers

    def layer_weight(self, index: int) -> torch.Tensor:
        return self.synthesis.row_affines()[index].weight  # (in_channels of that layer, w_dim)

    def layer_presets(self) -> dict[str, str]:
        return style_layer_presets(self.num_layers)

    @torch.inference_mode()
    def mean_w(self, num_samples: int, seed: int) -> torch.Tensor:
        """Mean mapping output over ``num_samples`` seeded z, (w_dim,): what training tracks as w_avg."""
        z = self.sample_latents(num_samples, seed).to(self.device)
        return self.mapping(z, self.mapping_labels(num_samples, {})).mean(dim=0)

    def _to_edit_space(
        self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None, **conditioning: Any
    ) -> torch.Tensor:
        w = self.mapping(z, self.mapping_labels(z.shape[0], conditioning))  # (N, w_dim)
        return wplus_from_w(w, self.num_layers, self.w_avg, trunc_psi, trunc_layers)

    def _synthesize(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor:
        return self.synthesis(codes)


def build_stylegan2(
    state: Mapping[str, torch.Tensor],
    *,
    conv_clamp: float | None = None,
    mapping_lr_multiplier: float = MAPPING_LR_MULTIPLIER,
) -> StyleGAN2Generator:
    """A generator from a state dict in this module's key names; every size is read from tensors.

    Without ``w_avg`` (rosinality's train.py files) the truncation centre is the mean mapping output
    over ``MEAN_W_SAMPLES`` z drawn with seed ``MEAN_W_SEED``, as rosinality's ``mean_latent(4096)``
    does with unseeded z.
    """
    label_weight = state.get(LABEL_WEIGHT_KEY)  # (num_classes, z_dim): a concat-conditional network
    embed = state.get(EMBED_WEIGHT_KEY)  # (embed_features, num_classes): an embedding-conditional one
    mapping_keys = sorted(
        (key for key in state if re.fullmatch(r"mapping\.layers\.\d+\.weight", key)),
        key=lambda key: int(key.split(".")[2]),
    )
    num_resolutions = sum(1 for key in state if re.fullmatch(r"synthesis\.to_rgbs\.\d+\.conv\.weight", key))
    if not mapping_keys or num_resolutions < 2:
        raise ValueError("no mapping layers or fewer than two ToRGB layers: not a StyleGAN2 generator")
    to_rgb_keys = [f"synthesis.to_rgbs.{k}.conv.weight" for k in range(num_resolutions)]
    for key in to_rgb_keys:
        if key not in state:  # the indices counted above have a gap
            raise WeightError(key, f"missing key {KEY_SLOT}")
    to_rgb_weights = [state[key] for key in to_rgb_keys]
    if to_rgb_weights[0].shape[0] != IMAGE_CHANNELS:
        raise ValueError(f"the generator makes {to_rgb_weights[0].shape[0]}-channel images, not RGB")
    first_inputs = state[mapping_keys[0]].shape[1]
    if embed is not None:
        num_classes, embed_features, z_dim = embed.shape[1], embed.shape[0], first_inputs - embed.shape[0]
    elif label_weight is not None:
        num_classes, embed_features, z_dim = label_weight.shape[0], 0, label_weight.shape[1]
    else:
        num_classes, embed_features, z_dim = 0, 0, first_inputs
    generator = StyleGAN2Generator(
        mapping_widths=[z_dim] + [state[key].shape[0] for key in mapping_keys],
        channels=[weight.shape[1] for weight in to_rgb_weights],  # (3, C, 1, 1)
        mapping_lr_multiplier=mapping_lr_multiplier,
        conv_clamp=conv_clamp,
        num_classes=num_classes,
        embed_features=embed_features,
    )
    has_w_avg = "w_avg" in state
    generator.load_weights(state if has_w_avg else {**state, "w_avg": generator.w_avg})
    if not has_w_avg:
        generator.w_avg.copy_(generator.mean_w(MEAN_W_SAMPLES, MEAN_W_SEED))
    return generator
