"""StyleGAN3 (NVlabs/stylegan3, "Alias-Free Generative Adversarial Networks"), configs t and r.

The synthesis network starts from Fourier features instead of a learned constant, and every
layer resamples with designed low-pass filters around its leaky ReLU ("filtered lrelu"), so
that the image moves with the features instead of sticking to the pixel grid.

W+ rows and factorizable layers (layer index == W+ row):
- row 0 -> ``synthesis.input.affine`` (4, w_dim). Its outputs (r_c, r_s, t_x, t_y) rotate and
  translate the Fourier features: the rotation is normalised, so only their angle and the
  translation matter. NVIDIA initialises this weight to zero (training makes it non-zero; the
  reference fixture perturbs it), so row 0 contributes nothing to SeFa in an untrained model.
- row i, 1 <= i < num_ws -> ``synthesis.L{i-1}_{size}_{channels}.affine`` (in_channels, w_dim),
  the styles of synthesis layer i-1; the last row is the ToRGB layer.
The reference's mapping broadcasts w to all num_ws = num_layers + 2 rows.

Everything the forward needs is inferred from the state dict: z/w sizes and mapping depth from
``mapping.fc*``; layers, sizes and channels from the ``L{i}_{size}_{channels}`` names and
weights; convolution kernel (3 for t, 1 for r) from the weights; up/down factors from the
designed filters' lengths; separable (1-D) or radial (2-D, config r) down filters from their
shapes; paddings from all of these; the Fourier input's sampling rate from the chain of
resampling factors. The few values no tensor records come from ``init_kwargs`` when a ``.pkl``
gives them, else from NVIDIA's defaults (``DEFAULT_*`` below). The mapping network is the shared
StyleGAN2 one (NVIDIA's ``mapping.fc{i}`` / ``mapping.w_avg`` load as ``mapping.layers.{i}`` /
``w_avg``); the synthesis keys are NVIDIA's own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sefa_core.errors import require
from sefa_core.models.base import Generator, file_key_names, wplus_from_w
from sefa_core.models.stylegan2 import (
    DEMODULATE_EPS,
    EMBED_WEIGHT_KEY,
    LRELU_GAIN,
    LRELU_SLOPE,
    MAPPING_LR_MULTIPLIER,
    EqualizedLinear,
    MappingNetwork,
)

# Values no tensor records: ``init_kwargs`` overrides them when a .pkl provides it, as it does
# the mapping's learning-rate multiplier (default ``MAPPING_LR_MULTIPLIER``, as train.py leaves it).
DEFAULT_FILTER_SIZE = 6  # SynthesisLayer: filter taps per resampling factor; train.py does not expose it
DEFAULT_CONV_CLAMP = 256.0  # train.py's G_kwargs.conv_clamp (None only with --fp32)
DEFAULT_OUTPUT_SCALE = 0.25  # SynthesisNetwork's default; train.py does not expose it
# SynthesisNetwork's Fourier bandwidth, not in train.py; it matters only for a scaling ``transform``.
DEFAULT_FIRST_CUTOFF = 2.0

IMG_CHANNELS = 3
INPUT_AFFINE_FEATURES = 4  # (r_c, r_s, t_x, t_y)
FILTER_KEYS = ("up_filter", "down_filter")  # every layer but the ToRGB resamples with both
W_AVG_KEY = "mapping.w_avg"

_MAPPING_KEY = re.compile(r"^mapping\.fc(\d+)\.(weight|bias)$")
_LAYER_KEY = re.compile(r"^synthesis\.(L(\d+)_(\d+)_(\d+))\.weight$")


# ---- the architecture, as read from a state dict ------------------------------------------
@dataclass(frozen=True)
class LayerGeometry:
    """One synthesis layer: sizes, resampling factors and the paddings they imply."""

    name: str  # e.g. "L5_52_64"
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    conv_kernel: int  # 3 (config t) or 1 (config r, and every ToRGB layer)
    up_taps: int  # 1 = no up filter
    down_taps: int  # 1 = no down filter
    radial_down: bool  # a 2-D radially symmetric down filter (config r)
    up_factor: int
    down_factor: int
    is_torgb: bool

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(x0, x1, y0, y1) padding of the upsampled image, as SynthesisLayer computes it."""
        total = (self.out_size - 1) * self.down_factor + 1  # wanted size before downsampling
        total -= (self.in_size + self.conv_kernel - 1) * self.up_factor  # size after upsampling
        total += self.up_taps + self.down_taps - 2  # what the two filters trim
        low = (total + self.up_factor) // 2  # symmetric sample positions (paper, appendix C.3)
        high = total - low
        return low, high, low, high


@dataclass(frozen=True)
class StyleGAN3Architecture:
    """Everything needed to rebuild a StyleGAN3 generator for inference."""

    z_dim: int
    w_dim: int
    mapping_layers: int
    mapping_lr_multiplier: float
    input_channels: int
    input_size: int
    input_sampling_rate: float
    input_bandwidth: float
    layers: tuple[LayerGeometry, ...]
    conv_clamp: float | None
    output_scale: float
    num_classes: int = 0  # c_dim: a class-conditional network's classes, read through ``mapping.embed``
    embed_features: int = 0

    @property
    def resolution(self) -> int:
        return self.layers[-1].out_size

    @property
    def num_ws(self) -> int:
        return len(self.layers) + 1  # the input layer, then one row per synthesis layer

    @property
    def config_name(self) -> str:
        """'stylegan3-t' (3x3 convs, separable filters), 'stylegan3-r' (1x1 convs, radial filters)."""
        convs = self.layers[:-1]
        if all(layer.conv_kernel == 1 for layer in convs) and any(layer.radial_down for layer in convs):
            return "stylegan3-r"
        return "stylegan3-t"


def _tensor(state_dict: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    value = state_dict.get(key)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"StyleGAN3 state dict lacks the tensor '{key}'")
    return value


def _factor(taps: int, filter_size: int, key: str) -> int:
    """Resampling factor of a filter designed with ``filter_size * factor`` taps."""
    if taps == 1:
        return 1
    if taps % filter_size:
        raise ValueError(f"'{key}' has {taps} taps, not a multiple of filter_size={filter_size}")
    return taps // filter_size


def _check_filters(state_dict: dict[str, torch.Tensor], prefix: str, is_torgb: bool) -> None:
    """NVIDIA gives every layer but the ToRGB an up and a down filter (its factors are >= 2).

    Without one the layer would be read as not resampling: a different network, loaded silently.
    """
    for part in FILTER_KEYS:
        key = f"{prefix}.{part}"
        if key not in state_dict and not is_torgb:
            raise ValueError(f"missing key '{key}': every StyleGAN3 layer but the ToRGB resamples")
        if key in state_dict and is_torgb:
            raise ValueError(f"unexpected key '{key}': the StyleGAN3 ToRGB layer does not resample")


def infer_architecture(
    state_dict: dict[str, torch.Tensor], init_kwargs: dict[str, Any] | None = None
) -> StyleGAN3Architecture:
    """Read the architecture from tensor names and shapes; ``init_kwargs`` fills what they lack."""
    kwargs = dict(init_kwargs or {})
    embed = state_dict.get(EMBED_WEIGHT_KEY)  # (embed_features, c_dim) in a class-conditional network
    if embed is None and kwargs.get("c_dim", 0):
        raise ValueError(f"init_kwargs say c_dim={kwargs['c_dim']} but there is no '{EMBED_WEIGHT_KEY}'")
    embed_features, num_classes = (
        (0, 0) if embed is None else tuple(_tensor(state_dict, EMBED_WEIGHT_KEY).shape)
    )

    fc_indices = sorted({int(m.group(1)) for key in state_dict if (m := _MAPPING_KEY.match(key))})
    if not fc_indices or fc_indices != list(range(len(fc_indices))):
        raise ValueError("StyleGAN3 state dict needs consecutive mapping.fc0.weight, mapping.fc1.weight, ...")
    _tensor(state_dict, W_AVG_KEY)
    z_dim = _tensor(state_dict, "mapping.fc0.weight").shape[1] - embed_features  # fc0 reads [z, embedding]
    w_dim = _tensor(state_dict, f"mapping.fc{fc_indices[-1]}.weight").shape[0]
    mapping_kwargs = dict(kwargs.get("mapping_kwargs") or {})

    named = {int(m.group(2)): m for key in state_dict if (m := _LAYER_KEY.match(key))}
    if not named or sorted(named) != list(range(len(named))):
        raise ValueError("StyleGAN3 state dict needs consecutive synthesis.L0_*, L1_*, ... layers")
    filter_size = int(kwargs.get("filter_size", DEFAULT_FILTER_SIZE))
    input_channels = _tensor(state_dict, "synthesis.input.weight").shape[0]
    layers: list[LayerGeometry] = []
    for index in range(len(named)):
        name, _, size, channels = named[index].groups()
        prefix = f"synthesis.{name}"
        weight = _tensor(state_dict, f"{prefix}.weight")  # (out, in, k, k)
        previous = layers[-1] if layers else None
        in_channels = previous.out_channels if previous else input_channels
        if weight.ndim != 4 or weight.shape[0] != int(channels) or weight.shape[1] != in_channels:
            raise ValueError(
                f"'{prefix}.weight' has shape {tuple(weight.shape)}, "
                f"expected ({channels}, {in_channels}, k, k)"
            )
        is_torgb = index == len(named) - 1
        _check_filters(state_dict, prefix, is_torgb)
        up_filter = state_dict.get(f"{prefix}.up_filter")
        down_filter = state_dict.get(f"{prefix}.down_filter")
        up_taps = 1 if up_filter is None else up_filter.shape[-1]
        down_taps = 1 if down_filter is None else down_filter.shape[-1]
        layers.append(
            LayerGeometry(
                name=name,
                in_channels=in_channels,
                out_channels=int(channels),
                in_size=previous.out_size if previous else int(size),  # L0 keeps the input's size
                out_size=int(size),
                conv_kernel=weight.shape[-1],
                up_taps=up_taps,
                down_taps=down_taps,
                radial_down=down_filter is not None and down_filter.ndim == 2,
                up_factor=_factor(up_taps, filter_size, f"{prefix}.up_filter"),
                down_factor=_factor(down_taps, filter_size, f"{prefix}.down_filter"),
                is_torgb=is_torgb,
            )
        )
    if layers[-1].out_channels != IMG_CHANNELS or layers[-1].conv_kernel != 1:
        raise ValueError(f"the last layer {layers[-1].name} must be a 1x1 ToRGB with {IMG_CHANNELS} outputs")
    resolution = layers[-1].out_size

    # The last layers sample at the smallest power of two >= the resolution; each layer
    # multiplies its input rate by up/down, so walking back gives the Fourier features' rate.
    rate = Fraction(2 ** math.ceil(math.log2(resolution)))
    for layer in layers:
        rate *= Fraction(layer.down_factor, layer.up_factor)

    for key, inferred in (("z_dim", z_dim), ("w_dim", w_dim), ("img_resolution", resolution)):
        if key in kwargs and int(kwargs[key]) != inferred:
            raise ValueError(f"init_kwargs say {key}={kwargs[key]} but the tensors give {inferred}")
    conv_clamp = kwargs.get("conv_clamp", DEFAULT_CONV_CLAMP)
    return StyleGAN3Architecture(
        z_dim=z_dim,
        w_dim=w_dim,
        mapping_layers=len(fc_indices),
        mapping_lr_multiplier=float(mapping_kwargs.get("lr_multiplier", MAPPING_LR_MULTIPLIER)),
        input_channels=input_channels,
        input_size=layers[0].in_size,
        input_sampling_rate=float(rate),
        input_bandwidth=float(kwargs.get("first_cutoff", DEFAULT_FIRST_CUTOFF)),
        layers=tuple(layers),
        conv_clamp=None if conv_clamp is None else float(conv_clamp),
        output_scale=float(kwargs.get("output_scale", DEFAULT_OUTPUT_SCALE)),
        num_classes=num_classes,
        embed_features=embed_features,
    )


# ---- resampling ops (the math of NVIDIA's reference upfirdn2d / filtered_lrelu) -----------
def upfirdn2d(
    x: torch.Tensor,
    fir: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), convolve with ``fir``, keep every ``down``-th.

    ``fir``: (taps,) applied separably, (taps, taps) non-separable, or None (identity).
    ``gain`` scales the whole 2-D response.
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])  # up-1 zeros after every pixel
        x = x.reshape(batch, channels, height * up, width * up)
    x0, x1, y0, y1 = padding
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]

    if fir is None:
        fir = torch.ones(1, 1, device=x.device)
    kernel = fir.flip(list(range(fir.ndim))) * gain ** (fir.ndim / 2)  # convolution, not correlation
    if fir.ndim == 1:
        x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), stride=(1, down), groups=channels)
        x = F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), stride=(down, 1), groups=channels)
        return x
    return F.conv2d(x, kernel[None, None].repeat(channels, 1, 1, 1), stride=down, groups=channels)


def filtered_lrelu(
    x: torch.Tensor,
    up_filter: torch.Tensor | None,
    down_filter: torch.Tensor | None,
    bias: torch.Tensor,
    geometry: LayerGeometry,
    gain: float,
    slope: float,
    clamp: float | None,
) -> torch.Tensor:
    """Bias, upsample, leaky ReLU (times ``gain``, clamped), downsample: aliasing stays out of band."""
    x = x + bias[None, :, None, None]
    x = upfirdn2d(x, up_filter, up=geometry.up_factor, padding=geometry.padding, gain=geometry.up_factor**2)
    x = F.leaky_relu(x, slope) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return upfirdn2d(x, down_filter, down=geometry.down_factor)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool,
    input_gain: torch.Tensor,
    padding: int,
) -> torch.Tensor:
    """Per-sample conv whose input channels are scaled by ``styles`` and ``input_gain``.

    x: (N, I, H, W); weight: (O, I, k, k); styles: (N, I); input_gain: a scalar.
    """
    batch, in_channels = styles.shape
    out_channels, _, kh, kw = weight.shape
    require(
        x.shape[:2] == (batch, in_channels), f"x must be ({batch}, {in_channels}, H, W), got {tuple(x.shape)}"
    )
    if demodulate:  # pre-normalise for float16 headroom, as the reference does (styles over the batch)
        weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = weight[None] * styles[:, None, :, None, None]  # (N, O, I, k, k)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + DEMODULATE_EPS).rsqrt()
    w = w * input_gain
    x = x.reshape(1, batch * in_channels, *x.shape[2:])  # one grouped conv for the whole batch
    x = F.conv2d(x, w.reshape(batch * out_channels, in_channels, kh, kw), padding=padding, groups=batch)
    return x.reshape(batch, out_channels, *x.shape[2:])  # (N, O, H + k - 1, W + k - 1)


# ---- modules ------------------------------------------------------------------------------
class SynthesisInput(nn.Module):
    """Fourier features, rotated and translated by an affine of w, then mixed by a learned matrix."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.size = size
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth
        self.weight = nn.Parameter(torch.zeros(channels, channels))
        self.affine = EqualizedLinear(w_dim, INPUT_AFFINE_FEATURES)
        self.register_buffer("transform", torch.eye(3))  # user-set inverse transform of the image
        self.register_buffer("freqs", torch.zeros(channels, 2))  # (C, xy)
        self.register_buffer("phases", torch.zeros(channels))  # (C,)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        batch = w.shape[0]
        t = self.affine(w)  # (N, 4): (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # a pure rotation
        rotation = torch.eye(3, device=w.device).repeat(batch, 1, 1)  # inverse rotation of the image
        rotation[:, 0, 0] = t[:, 0]
        rotation[:, 0, 1] = -t[:, 1]
        rotation[:, 1, 0] = t[:, 1]
        rotation[:, 1, 1] = t[:, 0]
        translation = torch.eye(3, device=w.device).repeat(batch, 1, 1)  # inverse translation
        translation[:, 0, 2] = -t[:, 2]
        translation[:, 1, 2] = -t[:, 3]
        transforms = rotation @ translation @ self.transform  # (N, 3, 3)

        phases = self.phases + (self.freqs @ transforms[:, :2, 2:]).squeeze(2)  # (N, C)
        freqs = self.freqs @ transforms[:, :2, :2]  # (N, C, 2)
        # Dampen frequencies a user transform pushed out of band (1 for rotations/translations).
        half_rate = self.sampling_rate / 2
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (half_rate - self.bandwidth)).clamp(0, 1)

        # Pixel centres in units of the sampling period, centred on the image (affine_grid's grid).
        coords = (
            torch.arange(self.size, device=w.device, dtype=w.dtype) + 0.5 - self.size / 2
        ) / self.sampling_rate
        x = coords[None, None, :, None] * freqs[:, None, None, :, 0]  # (N, 1, W, C)
        x = x + coords[None, :, None, None] * freqs[:, None, None, :, 1]  # (N, H, W, C)
        x = torch.sin((x + phases[:, None, None, :]) * (2 * math.pi)) * amplitudes[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.weight.shape[0])).t()  # (N, H, W, C)
        return x.permute(0, 3, 1, 2)  # (N, C, H, W)


class SynthesisLayer(nn.Module):
    """Modulated conv, then filtered lrelu; the ToRGB layer is a 1x1 conv, modulated but not demodulated."""

    def __init__(self, w_dim: int, geometry: LayerGeometry, conv_clamp: float | None) -> None:
        super().__init__()
        g = geometry
        self.geometry = g
        self.conv_clamp = conv_clamp
        self.affine = EqualizedLinear(w_dim, g.in_channels)
        self.weight = nn.Parameter(torch.zeros(g.out_channels, g.in_channels, g.conv_kernel, g.conv_kernel))
        self.bias = nn.Parameter(torch.zeros(g.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))  # mean square of the input in training
        # Designed low-pass filters; None (identity, not in the state dict) for the ToRGB layer.
        down_shape = (g.down_taps, g.down_taps) if g.radial_down else (g.down_taps,)
        self.register_buffer("up_filter", torch.zeros(g.up_taps) if g.up_taps > 1 else None)
        self.register_buffer("down_filter", torch.zeros(down_shape) if g.down_taps > 1 else None)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        assert x.shape[1:] == (g.in_channels, g.in_size, g.in_size), f"{g.name}: unexpected input"
        styles = self.affine(w)  # (N, in_channels)
        if g.is_torgb:
            styles = styles / math.sqrt(g.in_channels * g.conv_kernel**2)
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            demodulate=not g.is_torgb,
            input_gain=self.magnitude_ema.rsqrt(),
            padding=g.conv_kernel - 1,
        )
        gain, slope = (1.0, 1.0) if g.is_torgb else (LRELU_GAIN, LRELU_SLOPE)
        x = filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, g, gain, slope, self.conv_clamp)
        assert x.shape[1:] == (g.out_channels, g.out_size, g.out_size), f"{g.name}: unexpected output"
        return x


class SynthesisNetwork(nn.Module):
    """W+ (N, num_ws, w_dim) -> image: Fourier input, then the named layers ``L{i}_{size}_{channels}``."""

    def __init__(self, arch: StyleGAN3Architecture) -> None:
        super().__init__()
        self.num_ws = arch.num_ws
        self.output_scale = arch.output_scale
        self.input = SynthesisInput(
            arch.w_dim, arch.input_channels, arch.input_size, arch.input_sampling_rate, arch.input_bandwidth
        )
        self.layer_names = [layer.name for layer in arch.layers]
        for geometry in arch.layers:
            setattr(self, geometry.name, SynthesisLayer(arch.w_dim, geometry, arch.conv_clamp))

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        require(ws.ndim == 3 and ws.shape[1] == self.num_ws, "ws must be (N, num_ws, w_dim)")
        x = self.input(ws[:, 0])
        for row, name in enumerate(self.layer_names, start=1):
            x = getattr(self, name)(x, ws[:, row])
        return x * self.output_scale


class StyleGAN3Generator(Generator):
    """NVIDIA's StyleGAN3 generator (configs t and r), edited in W+ with num_ws rows."""

    architecture = "stylegan3"
    edit_space = "w+"

    def __init__(self, arch: StyleGAN3Architecture) -> None:
        super().__init__(
            latent_dim=arch.z_dim,
            direction_dim=arch.w_dim,
            resolution=arch.resolution,
            num_layers=arch.num_ws,
            layer_names=["synthesis.input.affine"]
            + [f"synthesis.{layer.name}.affine" for layer in arch.layers],
        )
        self.arch = arch
        widths = [arch.z_dim] + [arch.w_dim] * arch.mapping_layers
        self.mapping = MappingNetwork(
            widths, arch.mapping_lr_multiplier, arch.num_classes, arch.embed_features
        )
        self.num_classes = arch.num_classes
        self.class_names = tuple(str(index) for index in range(arch.num_classes))
        self.register_buffer("w_avg", torch.zeros(arch.w_dim))  # the truncation centre
        self.synthesis = SynthesisNetwork(arch)

    def layer_weight(self, index: int) -> torch.Tensor:
        """Row ``index`` of W+ feeds this affine: the input's (4, w_dim), else layer index-1's."""
        if index == 0:
            return self.synthesis.input.affine.weight
        return getattr(self.synthesis, self.arch.layers[index - 1].name).affine.weight

    def layer_presets(self) -> dict[str, str]:
        """The input transform alone, and the synthesis rows split in thirds, coarse to fine."""
        presets = {"all": "all", "input transform (rotation, translation)": "0"}
        thirds = np.array_split(np.arange(1, self.num_layers), 3)
        for label, rows in zip(("coarse", "middle", "fine (incl. ToRGB)"), thirds, strict=True):
            if len(rows):
                presets[label] = f"{rows[0]}-{rows[-1]}"
        return presets

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "config": self.arch.config_name}

    def _to_edit_space(
        self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None, **conditioning: Any
    ) -> torch.Tensor:
        w = self.mapping(z, self.mapping_labels(z.shape[0], conditioning))  # (N, w_dim)
        return wplus_from_w(w, self.num_layers, self.w_avg, trunc_psi, trunc_layers)

    def _synthesize(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor:
        return self.synthesis(codes)


def build_stylegan3(
    state_dict: dict[str, torch.Tensor], init_kwargs: dict[str, Any] | None = None
) -> StyleGAN3Generator:
    """A StyleGAN3 ``G_ema`` state dict (+ its constructor kwargs from a .pkl, if any) -> Generator.

    ``init_kwargs`` is the Generator's ``_init_kwargs`` (``nvidia_init_kwargs.json['init_kwargs']``).
    """
    generator = StyleGAN3Generator(infer_architecture(state_dict, init_kwargs))
    with file_key_names(nvidia_key):
        generator.load_weights(module_state(state_dict))
    return generator.eval()


def module_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """NVIDIA's keys -> this module's: the shared StyleGAN2 mapping network's names, the rest as is."""
    state = {}
    for key, value in state_dict.items():
        if match := _MAPPING_KEY.match(key):
            key = f"mapping.layers.{match[1]}.{match[2]}"
        elif key == W_AVG_KEY:
            key = "w_avg"
        state[key] = value
    return state


def nvidia_key(module_key: str) -> str:
    """The NVIDIA key ``module_state`` reads ``module_key`` from: errors name what the file holds."""
    match module_key.split("."):
        case ["mapping", "layers", index, part]:
            return f"mapping.fc{index}.{part}"
        case ["w_avg"]:
            return W_AVG_KEY
    return module_key
