"""BigGAN-deep as ``pytorch-pretrained-biggan`` builds it: class-conditional, z read by every layer.

The condition vector is ``cond = [z, E·y]`` (N, 2·z_dim), z in the first z_dim columns, y a one-hot
(or a mixture) over the classes. ``cond`` feeds ``generator.gen_z`` (the 4x4 start) and the ``scale`` and
``offset`` linears of every conditional BatchNorm, so SeFa may factorize the z columns of any of them.

Spectral norm is folded into plain weights by the loader (``W_orig / σ`` with σ from the stored u and v),
so this model has no power iteration and gives the same images in train and eval mode.

Truncation works in two places, as in the package: z is drawn as ``t · truncnorm(-2, 2)``, and ``t`` also
selects (or blends) the rows of the per-truncation BatchNorm statistics tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sefa_core.errors import require
from sefa_core.models.base import Generator

DEFAULT_TRUNCATION = 0.4  # the package's examples sample z and pick BN rows with 0.4
TRUNCNORM_BOUND = 2.0  # z ~ truncnorm(-2, 2) before scaling by the truncation
START_SIZE = 4  # gen_z makes a 4x4 map
BOTTLENECK = 4  # GenBlock's reduction factor: inner width = in_channels // 4
ATTENTION_KEY_DIVISOR = 8  # self-attention theta/phi width = C // 8
ATTENTION_VALUE_DIVISOR = 2  # self-attention g width = C // 2
RGB_CHANNELS = 3
CONDITIONAL_BNS = ("bn_0", "bn_1", "bn_2", "bn_3")
IMAGENET_NUM_CLASSES = 1000
IMAGENET_CLASSES_FILE = "data/imagenet_classes.txt"


@dataclass(frozen=True)
class BlockSpec:
    """One GenBlock: channels in and out, and whether it doubles the resolution."""

    up_sample: bool
    in_channels: int
    out_channels: int


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names in index order (duplicate names disambiguated)."""
    text = resources.files("sefa_core").joinpath(IMAGENET_CLASSES_FILE).read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    require(len(names) == IMAGENET_NUM_CLASSES, f"{IMAGENET_CLASSES_FILE} must hold 1000 names")
    return names


def truncated_normal_ppf(quantiles: np.ndarray, bound: float) -> np.ndarray:
    """Inverse CDF of the standard normal truncated to [-bound, bound], in float64.

    ``scipy.stats.truncnorm.rvs(-b, b, random_state=rs)`` is this function of ``rs.uniform(size)``.
    """
    q = torch.from_numpy(np.asarray(quantiles, dtype=np.float64))
    low, high = torch.special.ndtr(torch.tensor([-bound, bound], dtype=torch.float64))
    return torch.special.ndtri(low + q * (high - low)).numpy()


class StandingBatchNorm(nn.Module):
    """BatchNorm with precomputed statistics: row k of the tables belongs to truncation k / (n_stats - 1)."""

    def __init__(self, num_features: int, n_stats: int, eps: float) -> None:
        super().__init__()
        require(n_stats >= 2, "a statistics table needs at least two truncation rows")
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))

    def statistics(self, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var), each (C,), for ``truncation``, exactly as the reference looks them up.

        The reference weights row ``start`` by ``coef`` and row ``start + 1`` by ``1 - coef``: the
        reverse of a linear interpolation, kept because the released tables were used that way.
        """
        n_stats = self.running_means.shape[0]
        step = 1.0 / (n_stats - 1)
        coef, start = math.modf(truncation / step)
        start = int(start)
        if coef == 0.0 or start + 1 >= n_stats:  # the second case: t = 1 landing just above the last row
            return self.running_means[min(start, n_stats - 1)], self.running_vars[min(start, n_stats - 1)]
        mean = self.running_means[start] * coef + self.running_means[start + 1] * (1 - coef)
        var = self.running_vars[start] * coef + self.running_vars[start + 1] * (1 - coef)
        return mean, var


class ConditionalBatchNorm(StandingBatchNorm):
    """Standing BN whose gain ``1 + scale(cond)`` and bias ``offset(cond)`` come from the condition vector."""

    def __init__(self, num_features: int, cond_dim: int, n_stats: int, eps: float) -> None:
        super().__init__(num_features, n_stats, eps)
        self.scale = nn.Linear(cond_dim, num_features, bias=False)
        self.offset = nn.Linear(cond_dim, num_features, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        mean, var = self.statistics(truncation)
        mean = mean[None, :, None, None]  # (1, C, 1, 1)
        var = var[None, :, None, None]
        gain = 1 + self.scale(cond)[:, :, None, None]  # (N, C, 1, 1)
        bias = self.offset(cond)[:, :, None, None]
        return (x - mean) / torch.sqrt(var + self.eps) * gain + bias


class OutputBatchNorm(StandingBatchNorm):
    """The last, unconditional BN before ``conv_to_rgb``: a learnt affine on standing statistics."""

    def __init__(self, num_features: int, n_stats: int, eps: float) -> None:
        super().__init__(num_features, n_stats, eps)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, truncation: float) -> torch.Tensor:
        mean, var = self.statistics(truncation)
        return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)


class GenBlock(nn.Module):
    """Bottleneck residual block: 1x1 down to in/4, two 3x3, 1x1 out; each conv after a CBN and ReLU.

    The skip path keeps the first ``out`` channels of x (the reference only halves), so out = in or in/2.
    """

    def __init__(self, spec: BlockSpec, cond_dim: int, n_stats: int, eps: float) -> None:
        super().__init__()
        c_in, c_out = spec.in_channels, spec.out_channels
        require(c_out in (c_in, c_in // 2), "a GenBlock keeps or halves its channels")
        mid = c_in // BOTTLENECK
        self.up_sample = spec.up_sample
        self.bn_0 = ConditionalBatchNorm(c_in, cond_dim, n_stats, eps)
        self.conv_0 = nn.Conv2d(c_in, mid, 1)
        self.bn_1 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_1 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn_2 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn_3 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_3 = nn.Conv2d(mid, c_out, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        h = self.conv_0(F.relu(self.bn_0(x, cond, truncation)))
        h = F.relu(self.bn_1(h, cond, truncation))
        if self.up_sample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv_1(h)
        h = self.conv_2(F.relu(self.bn_2(h, cond, truncation)))
        h = self.conv_3(F.relu(self.bn_3(h, cond, truncation)))
        skip = x[:, : h.shape[1]]
        if self.up_sample:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip


class SelfAttention(nn.Module):
    """SAGAN self-attention; keys and values are max-pooled 2x2, ``gamma`` scales the residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        key_dim = channels // ATTENTION_KEY_DIVISOR
        value_dim = channels // ATTENTION_VALUE_DIVISOR
        self.snconv1x1_theta = nn.Conv2d(channels, key_dim, 1, bias=False)
        self.snconv1x1_phi = nn.Conv2d(channels, key_dim, 1, bias=False)
        self.snconv1x1_g = nn.Conv2d(channels, value_dim, 1, bias=False)
        self.snconv1x1_o_conv = nn.Conv2d(value_dim, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        theta = self.snconv1x1_theta(x).flatten(2)  # (N, C/8, HW)
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2).flatten(2)  # (N, C/8, HW/4)
        attention = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (N, HW, HW/4)
        g = F.max_pool2d(self.snconv1x1_g(x), 2).flatten(2)  # (N, C/2, HW/4)
        attended = torch.bmm(g, attention.transpose(1, 2)).view(n, -1, h, w)  # (N, C/2, H, W)
        return x + self.gamma * self.snconv1x1_o_conv(attended)


class BigGANNetwork(nn.Module):
    """The package's ``generator`` submodule: condition vector (N, 2·z_dim) -> image (N, 3, H, W)."""

    def __init__(
        self,
        blocks: Sequence[BlockSpec],
        attention_position: int | None,
        cond_dim: int,
        n_stats: int,
        eps: float,
    ) -> None:
        super().__init__()
        self.start_channels = blocks[0].in_channels
        self.gen_z = nn.Linear(cond_dim, START_SIZE * START_SIZE * self.start_channels)
        layers: list[nn.Module] = []
        for index, spec in enumerate(blocks):
            if index == attention_position:
                layers.append(SelfAttention(spec.in_channels))
            layers.append(GenBlock(spec, cond_dim, n_stats, eps))
        self.layers = nn.ModuleList(layers)
        width = blocks[-1].out_channels
        self.bn = OutputBatchNorm(width, n_stats, eps)
        self.conv_to_rgb = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        h = self.gen_z(cond).view(-1, START_SIZE, START_SIZE, self.start_channels)  # (N, 4, 4, C): TF order
        h = h.permute(0, 3, 1, 2).contiguous()  # (N, C, 4, 4), NCHW memory as the reference
        for layer in self.layers:
            h = layer(h, cond, truncation) if isinstance(layer, GenBlock) else layer(h)
        h = self.conv_to_rgb(F.relu(self.bn(h, truncation)))
        return torch.tanh(h[:, :RGB_CHANNELS])  # the conv has ``width`` outputs; RGB are the first three


class BigGANGenerator(Generator):
    """BigGAN-deep edited in z; ``synthesize`` takes ``classes=`` and ``truncation=``.

    Factorizable layer 0 is ``generator.gen_z``; then, block by block, the ``scale`` and ``offset``
    linears of ``bn_0`` .. ``bn_3``; each restricted to its z columns.

    The default preset is ``"all"``: z does not only seed the first layer, it re-enters every
    conditional BN, so a direction found on ``gen_z`` alone ignores most of what moving z does (the
    SeFa paper factorizes BigGAN by concatenating every layer that reads the code, as for StyleGAN).
    ``"gen_z"`` (layer 0 alone, the PGGAN-like reading) is kept for comparison.
    """

    architecture = "biggan"
    edit_space = "z"
    min_trunc_psi = 0.05  # the package asserts 0 < truncation <= 1

    def __init__(
        self,
        *,
        z_dim: int,
        num_classes: int,
        blocks: Sequence[BlockSpec],
        attention_position: int | None,
        n_stats: int,
        eps: float,
    ) -> None:
        require(blocks, "BigGAN has at least one GenBlock")
        require(
            attention_position is None or 0 <= attention_position < len(blocks),
            "attention sits before one of the blocks",
        )
        block_indices = [
            i + int(attention_position is not None and i >= attention_position) for i in range(len(blocks))
        ]
        layer_names = ["generator.gen_z"] + [
            f"generator.layers.{index}.{bn}.{linear}"
            for index in block_indices
            for bn in CONDITIONAL_BNS
            for linear in ("scale", "offset")
        ]
        super().__init__(
            latent_dim=z_dim,
            direction_dim=z_dim,
            resolution=START_SIZE * 2 ** sum(spec.up_sample for spec in blocks),
            num_layers=1,
            layer_names=layer_names,
        )
        self.num_classes = num_classes
        if num_classes == IMAGENET_NUM_CLASSES:
            self.class_names = imagenet_class_names()
        self.embeddings = nn.Linear(num_classes, z_dim, bias=False)  # class embedding; no spectral norm
        self.generator = BigGANNetwork(blocks, attention_position, 2 * z_dim, n_stats, eps)

    # ---- SeFa -----------------------------------------------------------------------------
    def layer_weight(self, index: int) -> torch.Tensor:
        linear = self.get_submodule(self.layer_names[index])
        return linear.weight[:, : self.latent_dim]  # (out, z_dim): the z columns of cond = [z, embedding]

    def layer_presets(self) -> dict[str, str]:
        return {"all": "all", "gen_z": "0"}

    # ---- codes ----------------------------------------------------------------------------
    def sample_latents(self, n: int, seed: int) -> torch.Tensor:
        """Seeded ``truncnorm(-2, 2)`` draws, (n, z_dim), as ``truncated_noise_sample`` before scaling."""
        uniform = np.random.RandomState(seed).uniform(size=(n, self.latent_dim))
        return torch.from_numpy(truncated_normal_ppf(uniform, TRUNCNORM_BOUND).astype(np.float32))

    def sample(
        self,
        n: int,
        seed: int,
        trunc_psi: float = DEFAULT_TRUNCATION,
        trunc_layers: int | None = None,
        **conditioning: object,
    ) -> torch.Tensor:
        """``truncated_noise_sample(n, z_dim, trunc_psi, seed)``; the default agrees with ``synthesize``'s."""
        return super().sample(n, seed, trunc_psi, trunc_layers, **conditioning)

    def _to_edit_space(
        self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None, **conditioning: object
    ) -> torch.Tensor:
        """The class enters at synthesis (``cond = [z, embedding]``), so the code ignores ``conditioning``."""
        require(0.0 < trunc_psi <= 1.0, f"BigGAN truncation must be in (0, 1], got {trunc_psi}")
        return z * trunc_psi

    # ---- images ---------------------------------------------------------------------------
    def _synthesize(
        self, codes: torch.Tensor, *, classes: object = None, truncation: float | None = None
    ) -> torch.Tensor:
        """``truncation`` should be the one the codes were sampled with (default 0.4, as ``sample``)."""
        truncation = DEFAULT_TRUNCATION if truncation is None else float(truncation)
        require(0.0 < truncation <= 1.0, f"BigGAN truncation must be in (0, 1], got {truncation}")
        labels = self.class_vectors(classes, codes.shape[0])  # (N, num_classes)
        cond = torch.cat([codes, self.embeddings(labels)], dim=1)  # (N, 2·z_dim), z first
        return self.generator(cond, truncation)
