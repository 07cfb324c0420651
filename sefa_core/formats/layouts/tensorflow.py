"""Original TensorFlow network pickles: PGGAN, StyleGAN and StyleGAN2 (also StyleGAN2-ADA's TF release).

``containers.pickles`` reads the pickle into ``TensorFlowNetwork`` records: a tuple ``(G, D, Gs)``,
of which we use ``Gs`` (the moving average every published result uses), or one generator network
alone. The architecture is read from the variable shapes (real files often hold only
``num_channels``, ``resolution`` and ``label_size`` in ``static_kwargs``); what shapes cannot tell
comes from ``static_kwargs`` when present, else the release defaults. The variables are converted,
as the published converters do, into the state dict of a layout we already build:
- PGGAN and StyleGAN -> genforce's state dict (genforce's converters and its models'
  ``pth_to_tf_var_mapping``): TF kernels ``[kh, kw, in, out]`` -> ``(out, in, kh, kw)``, dense
  ``[in, out]`` -> ``(out, in)``, the 4x4 ``Dense`` reshaped into a conv kernel and flipped;
- StyleGAN2 -> NVIDIA's ``G_ema`` state dict (stylegan2-ada-pytorch ``legacy.py``): the modulation
  bias gets its +1, up-sampling kernels are flipped, noise variables become ``noise_const``.
A class-conditional StyleGAN / StyleGAN2 (``label_size > 0``) holds ``mapping/LabelConcat/weight``,
which both targets take as ``mapping.label_weight`` (genforce's name for it); the class then enters
the mapping network only. StyleGAN2-ADA's ``mapping/LabelEmbed`` becomes NVIDIA's ``mapping.embed``.
The conversion (``Conversion``) is what the cache stores, so a second load skips all of this.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.containers.pickles import TensorFlowNetwork
from sefa_core.formats.layouts import genforce, nvidia
from sefa_core.formats.layouts.common import Conversion, Layout
from sefa_core.models.base import Generator
from sefa_core.models.pggan import INIT_RES
from sefa_core.models.stylegan import MAPPING_LR_MUL, Blur
from sefa_core.models.stylegan2 import (
    EMBED_WEIGHT_KEY,
    LABEL_WEIGHT_KEY,
    MAPPING_LR_MULTIPLIER,
    fir_kernel,
)
from sefa_core.models.stylegan3 import W_AVG_KEY

GS_INDEX = 2  # (G, D, Gs)
KIND_TITLES = {"pggan": "PGGAN", "stylegan": "StyleGAN", "stylegan2": "StyleGAN2"}
GENFORCE, NVIDIA = "genforce", "nvidia"  # the layouts a conversion is built by
# The release defaults that shapes cannot tell, as each network function declares them; a file
# whose static_kwargs ask for anything else is refused rather than drawn wrong. Options that change
# how but not what is computed (``structure``, ``fused_modconv``, ``dtype``) are not checked.
SUPPORTED_KWARGS: dict[str, dict[str, Any]] = {
    "pggan": {
        "normalize_latents": True,
        "use_wscale": True,
        "use_pixelnorm": True,
        "use_leakyrelu": True,
        "fused_scale": False,
        "num_channels": 3,
    },
    "stylegan": {
        "normalize_latents": True,
        "use_wscale": True,
        "use_noise": True,
        "use_pixel_norm": False,
        "use_instance_norm": True,
        "use_styles": True,
        "const_input_layer": True,
        "nonlinearity": "lrelu",
        "mapping_nonlinearity": "lrelu",
        "blur_filter": [1, 2, 1],
        "fused_scale": "auto",
        "num_channels": 3,
    },
    "stylegan2": {
        "architecture": "skip",
        "nonlinearity": "lrelu",
        "mapping_nonlinearity": "lrelu",
        "use_noise": True,
        "normalize_latents": True,
        "num_channels": 3,
    },
}
_SCOPE = re.compile(r"(\d+)x(\d+)/")
PGGAN_DENSE = "4x4/Dense/weight"  # PGGAN's first layer: z (and labels) -> 4x4 maps
LABEL_CONCAT = "mapping/LabelConcat/weight"  # StyleGAN / StyleGAN2 G_mapping with label_size > 0
LABEL_EMBED = "mapping/LabelEmbed/weight"  # StyleGAN2-ADA's TF release instead: a dense layer
LABEL_EMBED_BIAS = "mapping/LabelEmbed/bias"
EMBED_BIAS_KEY = "mapping.embed.bias"


# ---- recognising the file ---------------------------------------------------------------------
def generator_network(content: Any) -> tuple[TensorFlowNetwork, str] | None:
    """The generator record and how errors name it: ``Gs`` of ``(G, D, Gs)``, or the one network."""
    if isinstance(content, TensorFlowNetwork):
        return content, content.name
    is_triple = isinstance(content, tuple) and len(content) == 3
    if is_triple and all(isinstance(network, TensorFlowNetwork) for network in content):
        return content[GS_INDEX], "Gs"
    return None


def network_kind(network: TensorFlowNetwork) -> str | None:
    """pggan, stylegan or stylegan2, told by the variable names; None for anything else (a D alone)."""
    names = [name for name, _ in network.variables()]
    if any(name.endswith("/mod_weight") for name in names):
        return "stylegan2"
    if any(name.endswith("/StyleMod/weight") for name in names):
        return "stylegan"
    if "synthesis" in network.components:
        return "stylegan" if network.version == 3 else "stylegan2"
    if any(name == PGGAN_DENSE or name.startswith("ToRGB_lod") for name in names):
        return "pggan"
    return None


def _matcher(kind: str | None, alone: bool) -> Callable[[RawCheckpoint], bool]:
    def matches(raw: RawCheckpoint) -> bool:
        found = generator_network(raw.content)
        return (
            found is not None
            and isinstance(raw.content, TensorFlowNetwork) == alone
            and network_kind(found[0]) == kind
        )

    return matches


def format_name(kind: str | None, alone: bool) -> str:
    """What users see, e.g. "TensorFlow StyleGAN2 pickle (Gs)"."""
    title = f"TensorFlow {KIND_TITLES[kind]} pickle" if kind else "TensorFlow network pickle"
    return f"{title} (one network)" if alone else f"{title} (Gs)"


# ---- converting ---------------------------------------------------------------------------------
class _Variables:
    """Gs's variables by TF name, as torch tensors; a missing one is refused naming the file's name for it."""

    def __init__(self, raw: RawCheckpoint, network: TensorFlowNetwork, where: str, kind: str) -> None:
        self.raw, self.where, self.kind = raw, where, kind
        self.values = dict(network.variables())
        self.context = f"TensorFlow {KIND_TITLES[kind]} pickle"

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def refuse(self, problem: str) -> CheckpointError:
        return CheckpointError(self.raw.path, f"{self.context}: {self.where} {problem}")

    def get(self, name: str, ndim: int | None = None) -> torch.Tensor:
        if name not in self.values:
            raise self.refuse(f"has no '{name}'")
        value = torch.from_numpy(np.array(self.values[name], dtype=np.float32))
        if ndim is not None and value.ndim != ndim:
            raise self.refuse(f"has '{name}' of shape {tuple(value.shape)}; expected {ndim} dimensions")
        return value

    def conv(self, name: str) -> torch.Tensor:
        return self.get(name, 4).permute(3, 2, 0, 1).contiguous()  # [kh, kw, in, out] -> (out, in, kh, kw)

    def dense(self, name: str) -> torch.Tensor:
        return self.get(name, 2).T.contiguous()  # [in, out] -> (out, in)

    def resolutions(self, prefix: str = "") -> list[int]:
        """4, 8, ..., R: the RxR scopes, which must all be there."""
        scopes = {m.groups() for name in self.values if (m := _SCOPE.match(name.removeprefix(prefix)))}
        if odd := sorted(f"{h}x{w}" for h, w in scopes if h != w or int(h) & (int(h) - 1)):
            raise self.refuse(
                f"has '{prefix}{odd[0]}/' variables; only square power-of-two sizes are supported"
            )
        found = {int(h) for h, _ in scopes}
        if INIT_RES not in found:
            raise self.refuse(f"has no '{prefix}{INIT_RES}x{INIT_RES}/' variables")
        expected = [INIT_RES * 2**block for block in range(int(math.log2(max(found) // INIT_RES)) + 1)]
        if missing := sorted(set(expected) - found):
            raise self.refuse(f"has no '{prefix}{missing[0]}x{missing[0]}/' variables")
        return expected

    def count(self, pattern: str) -> int:
        """How many consecutive indices 0, 1, ... have a variable matching ``pattern``."""
        found = {int(m[1]) for name in self.values if (m := re.fullmatch(pattern, name))}
        count = 0
        while count in found:
            count += 1
        return count

    def check_kwargs(self, static: Mapping[str, Any]) -> None:
        for key, supported in SUPPORTED_KWARGS[self.kind].items():
            value = static.get(key, supported)
            if value is not None and _plain(value) != supported:
                raise self.refuse(f"was built with {key}={value!r}; only {supported!r} is supported")


def convert(raw: RawCheckpoint) -> Conversion:
    """The TF generator in ``raw`` as a state dict of the genforce or NVIDIA layout."""
    found = generator_network(raw.content)
    assert found is not None
    network, where = found
    kind = network_kind(network)
    if kind is None:
        raise CheckpointError(
            raw.path,
            f"TensorFlow network pickle: {where} (built by '{network.state.get('build_func_name')}') "
            "is not a PGGAN, StyleGAN or StyleGAN2 generator",
        )
    variables = _Variables(raw, network, where, kind)
    static = {**network.static_kwargs}
    for component in network.components.values():
        static = {**component.static_kwargs, **static}
    variables.check_kwargs(static)
    label_size = int(static.get("label_size") or 0)
    name = format_name(kind, isinstance(raw.content, TensorFlowNetwork))
    if kind == "pggan":
        return _pggan(variables, label_size, name)
    if kind == "stylegan":
        return _stylegan(variables, static, name)
    return _stylegan2(variables, static, name)


def _pggan(tf: _Variables, label_size: int, name: str) -> Conversion:
    resolutions = tf.resolutions()
    if any(f"{r}x{r}/Conv0_up/weight" in tf for r in resolutions):
        raise tf.refuse("uses fused up-sampling convs (Conv0_up); only fused_scale=False is supported")
    dense = tf.get(PGGAN_DENSE, 2)  # [z + labels, C * 4 * 4]
    area = INIT_RES * INIT_RES
    if dense.shape[1] % area:
        raise tf.refuse(f"has '4x4/Dense/weight' of shape {tuple(dense.shape)}; its width is not C * 16")
    # (in, C, 4, 4) as TF reshapes the dense output, then the conv that reads a 1x1 map with padding 3
    kernel = dense.reshape(dense.shape[0], -1, INIT_RES, INIT_RES).permute(1, 0, 2, 3).flip(2, 3)
    state = {
        "lod": tf.get("lod") if "lod" in tf else torch.zeros(()),
        "layer0.weight": kernel.contiguous(),
        "layer0.bias": tf.get("4x4/Dense/bias", 1),
        "layer1.weight": tf.conv("4x4/Conv/weight"),
        "layer1.bias": tf.get("4x4/Conv/bias", 1),
    }
    last = len(resolutions) - 1
    for block, res in enumerate(resolutions):
        if block:
            for index, scope in ((2 * block, "Conv0"), (2 * block + 1, "Conv1")):
                state[f"layer{index}.weight"] = tf.conv(f"{res}x{res}/{scope}/weight")
                state[f"layer{index}.bias"] = tf.get(f"{res}x{res}/{scope}/bias", 1)
        state[f"output{block}.weight"] = tf.conv(f"ToRGB_lod{last - block}/weight")
        state[f"output{block}.bias"] = tf.get(f"ToRGB_lod{last - block}/bias", 1)
    return Conversion(GENFORCE, state, {"num_classes": label_size}, name)


def _stylegan(tf: _Variables, static: Mapping[str, Any], name: str) -> Conversion:
    resolutions = tf.resolutions("synthesis/")
    state = _mapping(tf, "mapping.dense{}", static, fold_lr_multiplier=MAPPING_LR_MUL)
    num_classes = len(state[LABEL_WEIGHT_KEY]) if LABEL_WEIGHT_KEY in state else 0
    state["truncation.w_avg"] = tf.get("dlatent_avg", 1)
    lod = "synthesis/lod"
    state["synthesis.lod"] = tf.get(lod) if lod in tf else torch.zeros(())
    last = len(resolutions) - 1
    for block, res in enumerate(resolutions):
        scopes = ("Const", "Conv") if block == 0 else ("Conv0_up", "Conv1")
        for offset, scope in enumerate(scopes):
            index = 2 * block + offset
            prefix, key = f"synthesis/{res}x{res}/{scope}/", f"synthesis.layer{index}."
            if scope == "Const":
                state[key + "const"] = tf.get(prefix + "const", 4)
            else:
                state[key + "weight"] = tf.conv(prefix + "weight")
            state[key + "bias"] = tf.get(prefix + "bias", 1)
            state[key + "apply_noise.weight"] = tf.get(prefix + "Noise/weight", 1)
            state[key + "apply_noise.noise"] = tf.get(f"synthesis/noise{index}", 4)
            state[key + "style.weight"] = tf.dense(prefix + "StyleMod/weight")
            state[key + "style.bias"] = tf.get(prefix + "StyleMod/bias", 1)
            if offset == 0 and block:  # genforce keeps the blur kernel after each up-sampling conv
                state[key + "blur.kernel"] = Blur(state[key + "bias"].shape[0]).kernel
        state[f"synthesis.output{block}.weight"] = tf.conv(f"synthesis/ToRGB_lod{last - block}/weight")
        state[f"synthesis.output{block}.bias"] = tf.get(f"synthesis/ToRGB_lod{last - block}/bias", 1)
    return Conversion(GENFORCE, state, {"num_classes": num_classes}, name)


def _stylegan2(tf: _Variables, static: Mapping[str, Any], name: str) -> Conversion:
    resolutions = tf.resolutions("synthesis/")
    state = _mapping(tf, "mapping.fc{}", static, fold_lr_multiplier=None)
    state[W_AVG_KEY] = tf.get("dlatent_avg", 1)
    state["synthesis.b4.const"] = tf.get("synthesis/4x4/Const/const", 4)[0]  # (1, C, 4, 4) -> (C, 4, 4)
    for res in resolutions:
        log2 = int(math.log2(res))
        # NVIDIA layer -> (TF scope, noise index = 2 * log2(res) - offset), as legacy.py numbers them
        layers = (
            {"conv1": ("Conv", 0)} if res == INIT_RES else {"conv0": ("Conv0_up", 5), "conv1": ("Conv1", 4)}
        )
        for layer, (scope, noise_offset) in layers.items():
            prefix, key = f"synthesis/{res}x{res}/{scope}/", f"synthesis.b{res}.{layer}."
            weight = tf.get(prefix + "weight", 4)
            if layer == "conv0":
                weight = weight.flip(0, 1)  # TF's up-sampling conv kernel, as a transposed conv reads it
            state[key + "weight"] = weight.permute(3, 2, 0, 1).contiguous()
            state[key + "bias"] = tf.get(prefix + "bias", 1)
            noise = 0 if res == INIT_RES else 2 * log2 - noise_offset
            state[key + "noise_const"] = tf.get(f"synthesis/noise{noise}", 4)[0, 0]
            state[key + "noise_strength"] = tf.get(prefix + "noise_strength", 0)
            state[key + "affine.weight"] = tf.dense(prefix + "mod_weight")
            state[key + "affine.bias"] = tf.get(prefix + "mod_bias", 1) + 1  # TF adds the 1 at run time
        prefix, key = f"synthesis/{res}x{res}/ToRGB/", f"synthesis.b{res}.torgb."
        state[key + "weight"] = tf.conv(prefix + "weight")
        state[key + "bias"] = tf.get(prefix + "bias", 1)
        state[key + "affine.weight"] = tf.dense(prefix + "mod_weight")
        state[key + "affine.bias"] = tf.get(prefix + "mod_bias", 1) + 1
    if static.get("resample_kernel") is not None:
        state["synthesis.b4.resample_filter"] = fir_kernel(static["resample_kernel"])
    options = {
        "synthesis_kwargs": {"conv_clamp": static.get("conv_clamp"), "architecture": "skip"},
        "mapping_kwargs": {"lr_multiplier": float(static.get("mapping_lrmul", MAPPING_LR_MULTIPLIER))},
    }
    return Conversion(NVIDIA, state, options, name)


def _mapping(
    tf: _Variables, key: str, static: Mapping[str, Any], fold_lr_multiplier: float | None
) -> dict[str, torch.Tensor]:
    """``mapping/Dense{i}`` -> ``key.format(i)``; with ``fold_lr_multiplier`` (a model that fixes it),
    a file's other ``mapping_lrmul`` is folded into the weights, which the model scales by its own.

    A class-conditional mapping's ``LabelConcat/weight`` [label_size, z_dim] (plain, no weight
    scaling) becomes ``LABEL_WEIGHT_KEY`` as it is; the file's ``label_size`` must agree with it.
    """
    layers = tf.count(r"mapping/Dense(\d+)/weight")
    if not layers:
        raise tf.refuse("has no 'mapping/Dense0/weight'")
    state = _labels(tf, int(static.get("label_size") or 0))
    scale = 1.0
    if fold_lr_multiplier is not None:
        scale = float(static.get("mapping_lrmul", fold_lr_multiplier)) / fold_lr_multiplier
    for index in range(layers):
        state[key.format(index) + ".weight"] = tf.dense(f"mapping/Dense{index}/weight") * scale
        state[key.format(index) + ".bias"] = tf.get(f"mapping/Dense{index}/bias", 1) * scale
    return state


def _labels(tf: _Variables, label_size: int) -> dict[str, torch.Tensor]:
    """The class input of a conditional mapping network, {} for an unconditional one: the original
    releases' plain ``LabelConcat``, or StyleGAN2-ADA's ``LabelEmbed`` dense layer (NVIDIA's
    ``mapping.embed``, as legacy.py converts it)."""
    if LABEL_EMBED in tf:
        if tf.kind != "stylegan2":
            raise tf.refuse(f"has '{LABEL_EMBED}', which only StyleGAN2-ADA's mapping network reads")
        weight = tf.dense(LABEL_EMBED)  # [label_size, embed] -> (embed, label_size)
        state = {EMBED_WEIGHT_KEY: weight, EMBED_BIAS_KEY: tf.get(LABEL_EMBED_BIAS, 1)}
        found = weight.shape[1]
    elif LABEL_CONCAT in tf:
        weight = tf.get(LABEL_CONCAT, 2)  # [label_size, z_dim]: one_hot @ weight is concatenated to z
        state, found = {LABEL_WEIGHT_KEY: weight}, weight.shape[0]
    elif label_size:
        raise tf.refuse(f"is class-conditional (label_size {label_size}) but has no '{LABEL_CONCAT}'")
    else:
        return {}
    if label_size and found != label_size:
        name = LABEL_EMBED if LABEL_EMBED in tf else LABEL_CONCAT
        raise tf.refuse(f"has '{name}' for {found} classes; label_size is {label_size}")
    return state


def build_conversion(conversion: Conversion, path: Any) -> Generator:
    """A generator from a conversion (fresh, or read back from the cache)."""
    if conversion.target == GENFORCE:
        num_classes = int(conversion.options.get("num_classes", 0))
        return genforce.build_state(conversion.state, path, num_classes=num_classes)
    if conversion.target == NVIDIA:
        return nvidia.build_network(conversion.state, conversion.options)
    raise CheckpointError(path, f"a conversion for the unknown layout '{conversion.target}'")


def build(raw: RawCheckpoint) -> Generator:
    return build_conversion(convert(raw), raw.path)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


LAYOUTS = tuple(
    Layout(format_name(kind, alone), _matcher(kind, alone), build, convert)
    for alone in (False, True)
    for kind in (*KIND_TITLES, None)
)
