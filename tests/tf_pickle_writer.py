"""Write original TensorFlow network pickles (PGGAN, StyleGAN, StyleGAN2) without TensorFlow.

A TF-era snapshot is a pickle of ``(G, D, Gs)``: each an object of ``tfutil.Network`` (PGGAN, state
version 2) or ``dnnlib.tflib.network.Network`` (StyleGAN 3, StyleGAN2 4, StyleGAN2-ADA's TF release
5), pickled as ``NEWOBJ`` + ``BUILD`` of a plain state dict whose ``variables`` are ``(name, numpy
value)`` pairs named relative to the network's scope, and whose ``components`` (mapping, synthesis)
are networks again. Stand-in classes here pickle under those names (fake modules exist only while
pickling), and the variables are written from PyTorch state dicts by the inverse of the published
converters, so a test can compare the TF file with the same weights in the PyTorch layouts:

    state = random_pggan_state(z_dim=32, channels=[32, 32, 16])
    write_tf_pickle(tmp_path / "karras2018.pkl", pggan_network(state))
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pickle_factory import standin_modules

from sefa_core.models.pggan import PGGANGenerator
from sefa_core.models.stylegan import StyleGANGenerator

# What build_module_src holds: the network code TF's loader imports. Ours writes a marker if run.
MARKER_SOURCE = "open({marker!r}, 'w').close()\n\ndef G_main(*args, **kwargs):\n    pass\n"
INIT_RES = 4
KEPT_BUFFERS = ("lod", "blur.kernel")  # constants a trained model keeps as built
LABEL_WEIGHT = "mapping.label_weight"  # (num_classes, z_dim): TF's LabelConcat/weight, not transposed
EMBED = "mapping.embed"  # NVIDIA's class embedding (c_dim > 0): TF StyleGAN2-ADA's LabelEmbed, transposed
STATE_VERSIONS = {"pggan": 2, "stylegan": 3, "stylegan2": 4}
BUILD_FUNCS = {
    "pggan": ("G_paper", None, None),
    "stylegan": ("G_style", "G_mapping", "G_synthesis"),
    "stylegan2": ("G_main", "G_mapping", "G_synthesis_stylegan2"),
}


class Network:
    """Pickles as ``dnnlib.tflib.network.Network``: ``NEWOBJ`` then ``BUILD`` with its state."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def __getstate__(self) -> dict[str, Any]:
        return self._state


class PGGANNetwork(Network):
    """Pickles as PGGAN's ``tfutil.Network``."""


Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
PGGANNetwork.__module__, PGGANNetwork.__name__, PGGANNetwork.__qualname__ = "tfutil", "Network", "Network"


def network_state(
    *,
    version: int,
    name: str,
    build_func_name: str,
    static_kwargs: Mapping[str, Any],
    variables: Mapping[str, np.ndarray],
    components: Mapping[str, Network] | None = None,
    build_module_src: str = "",
) -> dict[str, Any]:
    """The dict ``Network.__getstate__`` returns for that state version."""
    state: dict[str, Any] = {"version": version, "name": name, "static_kwargs": dict(static_kwargs)}
    if version >= 3:
        state["components"] = dict(components or {})
    state["build_module_src"] = build_module_src
    state["build_func_name"] = build_func_name
    state["variables"] = [(key, _numpy(value)) for key, value in variables.items()]
    if version >= 5:
        state.update(input_shapes=[[None, 512]], output_shapes=[[None, 3, 4, 4]])
        state.update(input_names=["latents_in", "labels_in"], output_names=["images_out"])
    return state


def _numpy(value: torch.Tensor | np.ndarray | float) -> np.ndarray | np.generic:
    array = np.array(torch.as_tensor(value).detach().numpy(), dtype=np.float32, order="C")
    return array[()] if array.ndim == 0 else array  # 0-d values are numpy scalars in real files


def write_tf_pickle(
    path: Path,
    gs: Network,
    *,
    protocol: int = 4,
    decoys: bool = True,
) -> Path:
    """Pickle ``(G, D, Gs)`` (or ``Gs`` alone without ``decoys``) at ``path``.

    ``G`` is a decoy with negated variables, ``D`` a small critic; protocol 3 gets numpy-1 names.
    """
    content: Any = (_decoy_generator(gs), _discriminator(gs), gs) if decoys else gs
    with standin_modules((Network, PGGANNetwork)):
        data = pickle.dumps(content, protocol=protocol)
    if protocol <= 3:
        # GLOBAL opcodes carry "module\nname\n" without a length, so renaming the module is safe.
        for name in (b"scalar", b"_reconstruct"):
            data = data.replace(b"cnumpy._core.multiarray\n" + name, b"cnumpy.core.multiarray\n" + name)
    path.write_bytes(data)
    return path


def _decoy_generator(gs: Network) -> Network:
    def negated(network: Any) -> Any:
        if not isinstance(network, Network):  # what a hostile test put there stays as it is
            return network
        state = dict(network.__getstate__())
        state["variables"] = [(name, _negated(value)) for name, value in state["variables"]]
        state["components"] = {key: negated(value) for key, value in state.get("components", {}).items()}
        return type(network)(state)

    return negated(gs)


def _negated(value: Any) -> Any:
    return -value if isinstance(value, (np.ndarray, np.generic)) else value


def _discriminator(gs: Network) -> Network:
    gs_state = gs.__getstate__()
    variables = {"4x4/Dense0/weight": np.ones((16, 8), np.float32), "Output/bias": np.zeros(1, np.float32)}
    state = network_state(
        version=gs_state["version"],
        name="D",
        build_func_name="D_paper",
        static_kwargs={"num_channels": 3, "resolution": gs_state["static_kwargs"].get("resolution", 4)},
        variables=variables,
        build_module_src=gs_state["build_module_src"],
    )
    return type(gs)(state)


# ---- random generators in the PyTorch layouts ---------------------------------------------------
def _randomized(state: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    weights = torch.Generator().manual_seed(seed)
    return {
        key: value.clone() if key.endswith(KEPT_BUFFERS) else torch.randn(value.shape, generator=weights)
        for key, value in state.items()
    }


def random_pggan_state(
    z_dim: int, channels: list[int], num_classes: int = 0, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A genforce PGGAN state dict with random weights (``channels`` per resolution from 4x4)."""
    return _randomized(PGGANGenerator(z_dim, channels, num_classes=num_classes).state_dict(), seed)


def random_stylegan_state(
    z_dim: int,
    w_dim: int,
    mapping_hidden: int,
    mapping_layers: int,
    channels: list[int],
    seed: int = 0,
    num_classes: int = 0,
) -> dict[str, torch.Tensor]:
    """A genforce StyleGAN state dict with random weights (``mapping.label_weight`` if conditional)."""
    model = StyleGANGenerator(z_dim, w_dim, mapping_hidden, mapping_layers, channels, num_classes)
    return _randomized(model.state_dict(), seed)


def random_stylegan2_state(
    z_dim: int,
    w_dim: int,
    mapping_hidden: int,
    mapping_layers: int,
    channels: list[int],
    seed: int = 0,
    num_classes: int = 0,
    embed_features: int = 0,
) -> dict[str, torch.Tensor]:
    """An NVIDIA stylegan2-ada ``G_ema`` state dict (its key names and shapes) with random weights.

    A conditional one holds NVIDIA's class embedding ``mapping.embed`` (embed_features, num_classes)
    with ``embed_features``, else TF's concatenated label matrix as ``mapping.label_weight``
    (num_classes, z_dim); ``mapping.fc0`` reads z and the class input side by side.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    label_features = embed_features or (z_dim if num_classes else 0)
    widths = [z_dim + label_features] + [mapping_hidden] * (mapping_layers - 1) + [w_dim]
    if embed_features:
        shapes |= {f"{EMBED}.weight": (embed_features, num_classes), f"{EMBED}.bias": (embed_features,)}
    elif num_classes:
        shapes[LABEL_WEIGHT] = (num_classes, z_dim)
    for index in range(mapping_layers):
        shapes[f"mapping.fc{index}.weight"] = (widths[index + 1], widths[index])
        shapes[f"mapping.fc{index}.bias"] = (widths[index + 1],)
    shapes["mapping.w_avg"] = (w_dim,)
    shapes["synthesis.b4.const"] = (channels[0], INIT_RES, INIT_RES)
    for block, c_out in enumerate(channels):
        res = INIT_RES * 2**block
        c_in = channels[max(block - 1, 0)]
        layers = (
            {"conv1": (c_out, c_out)} if block == 0 else {"conv0": (c_in, c_out), "conv1": (c_out, c_out)}
        )
        for layer, (inputs, outputs) in layers.items():
            key = f"synthesis.b{res}.{layer}."
            shapes |= {key + "weight": (outputs, inputs, 3, 3), key + "bias": (outputs,)}
            shapes |= {key + "affine.weight": (inputs, w_dim), key + "affine.bias": (inputs,)}
            shapes |= {key + "noise_strength": (), key + "noise_const": (res, res)}
        key = f"synthesis.b{res}.torgb."
        shapes |= {key + "weight": (3, c_out, 1, 1), key + "bias": (3,)}
        shapes |= {key + "affine.weight": (c_out, w_dim), key + "affine.bias": (c_out,)}
    return _randomized({key: torch.zeros(shape) for key, shape in shapes.items()}, seed)


# ---- PyTorch layouts -> TF variables (the converters run backwards) -----------------------------
def _conv(weight: torch.Tensor) -> torch.Tensor:
    return weight.permute(2, 3, 1, 0)  # (out, in, kh, kw) -> [kh, kw, in, out]


def _resolutions(num_blocks: int) -> list[int]:
    return [INIT_RES * 2**block for block in range(num_blocks)]


def _blocks(state: Mapping[str, torch.Tensor], output_key: str) -> int:
    return sum(1 for key in state if key.startswith(output_key) and key.endswith(".weight"))


def _kwargs(resolution: int, label_size: int, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"num_channels": 3, "resolution": resolution, "label_size": label_size, **(extra or {})}


def pggan_network(
    state: Mapping[str, torch.Tensor],
    *,
    num_classes: int = 0,
    static_kwargs: Mapping[str, Any] | None = None,
    marker: Path | None = None,
) -> Network:
    """``Gs`` of a PGGAN snapshot (``G_paper``) holding genforce PGGAN ``state``."""
    num_blocks = _blocks(state, "output")
    resolutions = _resolutions(num_blocks)
    dense = state["layer0.weight"].flip(2, 3).permute(1, 0, 2, 3)  # (z + classes, C, 4, 4)
    variables = {
        "lod": state["lod"],
        "4x4/Dense/weight": dense.reshape(dense.shape[0], -1),
        "4x4/Dense/bias": state["layer0.bias"],
        "4x4/Conv/weight": _conv(state["layer1.weight"]),
        "4x4/Conv/bias": state["layer1.bias"],
    }
    for block, res in enumerate(resolutions):
        lod = num_blocks - 1 - block
        if block:
            for index, scope in ((2 * block, "Conv0"), (2 * block + 1, "Conv1")):
                variables[f"{res}x{res}/{scope}/weight"] = _conv(state[f"layer{index}.weight"])
                variables[f"{res}x{res}/{scope}/bias"] = state[f"layer{index}.bias"]
        variables[f"ToRGB_lod{lod}/weight"] = _conv(state[f"output{block}.weight"])
        variables[f"ToRGB_lod{lod}/bias"] = state[f"output{block}.bias"]
    gs = network_state(
        version=STATE_VERSIONS["pggan"],
        name="Gs",
        build_func_name=BUILD_FUNCS["pggan"][0],
        static_kwargs=_kwargs(resolutions[-1], num_classes, static_kwargs),
        variables=variables,
        build_module_src=_source(marker),
    )
    return PGGANNetwork(gs)


def stylegan_network(
    state: Mapping[str, torch.Tensor],
    *,
    static_kwargs: Mapping[str, Any] | None = None,
    mapping_lr_multiplier: float | None = None,
    marker: Path | None = None,
) -> Network:
    """``Gs`` of a StyleGAN snapshot (``G_style``) holding genforce StyleGAN ``state``.

    With ``mapping_lr_multiplier`` the file records that ``mapping_lrmul`` and stores the mapping
    weights as a network trained with it would (the same function as genforce's 0.01).
    """
    num_blocks = _blocks(state, "synthesis.output")
    resolutions = _resolutions(num_blocks)
    scale = 1.0 if mapping_lr_multiplier is None else 0.01 / mapping_lr_multiplier
    mapping = _label_input(state)
    for index in range(sum(1 for key in state if key.startswith("mapping.dense") and key.endswith("weight"))):
        mapping[f"Dense{index}/weight"] = state[f"mapping.dense{index}.weight"].T * scale
        mapping[f"Dense{index}/bias"] = state[f"mapping.dense{index}.bias"] * scale
    synthesis: dict[str, torch.Tensor] = {"lod": state["synthesis.lod"]}
    for index in range(2 * num_blocks):
        synthesis[f"noise{index}"] = state[f"synthesis.layer{index}.apply_noise.noise"]
    for block, res in enumerate(resolutions):
        scopes = ("Const", "Conv") if block == 0 else ("Conv0_up", "Conv1")
        for offset, scope in enumerate(scopes):
            key, prefix = f"synthesis.layer{2 * block + offset}.", f"{res}x{res}/{scope}/"
            if scope == "Const":
                synthesis[prefix + "const"] = state[key + "const"]
            else:
                synthesis[prefix + "weight"] = _conv(state[key + "weight"])
            synthesis[prefix + "Noise/weight"] = state[key + "apply_noise.weight"]
            synthesis[prefix + "bias"] = state[key + "bias"]
            synthesis[prefix + "StyleMod/weight"] = state[key + "style.weight"].T
            synthesis[prefix + "StyleMod/bias"] = state[key + "style.bias"]
        lod = num_blocks - 1 - block
        synthesis[f"ToRGB_lod{lod}/weight"] = _conv(state[f"synthesis.output{block}.weight"])
        synthesis[f"ToRGB_lod{lod}/bias"] = state[f"synthesis.output{block}.bias"]
    extra = dict(static_kwargs or {})
    if mapping_lr_multiplier is not None:
        extra["mapping_lrmul"] = mapping_lr_multiplier
    gs = {"lod": state["synthesis.lod"], "dlatent_avg": state["truncation.w_avg"]}
    version = STATE_VERSIONS["stylegan"]
    return _styled_network("stylegan", version, resolutions[-1], gs, mapping, synthesis, extra, marker)


def _label_input(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """G_mapping's class input of a conditional state, else {}: ``LabelConcat/weight`` [label_size,
    latent_size], or StyleGAN2-ADA's ``LabelEmbed`` dense layer [label_size, embed] + bias."""
    if f"{EMBED}.weight" in state:
        return {"LabelEmbed/weight": state[f"{EMBED}.weight"].T, "LabelEmbed/bias": state[f"{EMBED}.bias"]}
    return {"LabelConcat/weight": state[LABEL_WEIGHT]} if LABEL_WEIGHT in state else {}


def stylegan2_network(
    state: Mapping[str, torch.Tensor],
    *,
    static_kwargs: Mapping[str, Any] | None = None,
    version: int = STATE_VERSIONS["stylegan2"],
    marker: Path | None = None,
) -> Network:
    """``Gs`` of a StyleGAN2 snapshot (``G_main``) holding an NVIDIA ``G_ema`` ``state``; ``version``
    5 writes the StyleGAN2-ADA TF release's extra state keys."""
    resolutions = sorted({int(key.split(".")[1][1:]) for key in state if key.startswith("synthesis.b")})
    mapping = _label_input(state)
    for index in range(sum(1 for key in state if key.startswith("mapping.fc") and key.endswith("weight"))):
        mapping[f"Dense{index}/weight"] = state[f"mapping.fc{index}.weight"].T
        mapping[f"Dense{index}/bias"] = state[f"mapping.fc{index}.bias"]
    # noise inputs are numbered in layer order: 4x4 conv, then conv0 and conv1 of each resolution
    convs = ["synthesis.b4.conv1"] + [f"synthesis.b{res}.conv{i}" for res in resolutions[1:] for i in (0, 1)]
    synthesis = {f"noise{index}": state[f"{key}.noise_const"][None, None] for index, key in enumerate(convs)}
    synthesis["4x4/Const/const"] = state["synthesis.b4.const"][None]
    for res in resolutions:
        layers = {"conv1": "Conv"} if res == INIT_RES else {"conv0": "Conv0_up", "conv1": "Conv1"}
        for layer, scope in {**layers, "torgb": "ToRGB"}.items():
            key, prefix = f"synthesis.b{res}.{layer}.", f"{res}x{res}/{scope}/"
            weight = _conv(state[key + "weight"])
            synthesis[prefix + "weight"] = weight.flip(0, 1) if layer == "conv0" else weight
            synthesis[prefix + "mod_weight"] = state[key + "affine.weight"].T
            synthesis[prefix + "mod_bias"] = state[key + "affine.bias"] - 1
            if layer != "torgb":
                synthesis[prefix + "noise_strength"] = state[key + "noise_strength"]
            synthesis[prefix + "bias"] = state[key + "bias"]
    gs = {"lod": torch.zeros(()), "dlatent_avg": state["mapping.w_avg"]}
    return _styled_network(
        "stylegan2", version, resolutions[-1], gs, mapping, synthesis, static_kwargs, marker
    )


def _styled_network(
    kind: str,
    version: int,
    resolution: int,
    own: Mapping[str, torch.Tensor],
    mapping: Mapping[str, torch.Tensor],
    synthesis: Mapping[str, torch.Tensor],
    extra: Mapping[str, Any] | None,
    marker: Path | None,
) -> Network:
    main, mapping_func, synthesis_func = BUILD_FUNCS[kind]
    label = mapping.get("LabelConcat/weight", mapping.get("LabelEmbed/weight"))  # [label_size, ...]
    static = _kwargs(resolution, 0 if label is None else len(label), extra)
    source = _source(marker)

    def component(name: str, func: str | None, variables: Mapping[str, torch.Tensor]) -> Network:
        assert func is not None
        return Network(
            network_state(
                version=version,
                name=name,
                build_func_name=func,
                static_kwargs=static,
                variables=variables,
                build_module_src=source,
            )
        )

    components = {
        "mapping": component("G_mapping", mapping_func, mapping),
        "synthesis": component("G_synthesis", synthesis_func, synthesis),
    }
    state = network_state(
        version=version,
        name="Gs",
        build_func_name=main,
        static_kwargs=static,
        variables=own,
        components=components,
        build_module_src=source,
    )
    return Network(state)


def _source(marker: Path | None) -> str:
    return MARKER_SOURCE.format(marker=str(marker or "/nonexistent/sefa-marker"))
