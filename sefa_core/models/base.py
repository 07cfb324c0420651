"""The one ``Generator`` interface every architecture implements.

Nothing upstream of ``sefa_core.models`` knows which architecture it holds: the factorization,
the editor, the renderer, the CLI and the app only use what is declared here.

Two edit spaces exist:
- ``"z"``  (DCGAN, PGGAN, BigGAN): codes are (N, latent_dim); an edit moves the whole code.
- ``"w+"`` (StyleGAN family): codes are (N, num_layers, w_dim); an edit moves the chosen rows only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sefa_core.errors import LayerSpecError, require
from sefa_core.layers import layer_ranges, parse_layers

EditSpace = Literal["z", "w+"]
DEFAULT_TRUNC_PSI = 1.0
DEFAULT_CLASS = 0  # what class-conditional models draw when no class is given
_SYNTAX_ONLY_LAYERS = 1_000_000


class Generator(nn.Module, ABC):
    """A pretrained generator seen through SeFa: factorizable affine layers, codes, images.

    Subclasses set ``architecture`` and ``edit_space`` and implement ``layer_weight``,
    ``_to_edit_space`` and ``_synthesize``. Hyperparameters are inferred from checkpoint
    tensors by the format loaders, never typed in by a user.
    """

    architecture: ClassVar[str]
    edit_space: ClassVar[EditSpace]
    min_trunc_psi: ClassVar[float] = 0.0  # the smallest truncation the model accepts

    def __init__(
        self,
        *,
        latent_dim: int,
        direction_dim: int,
        resolution: int,
        num_layers: int,
        layer_names: Sequence[str],
    ) -> None:
        super().__init__()
        require(latent_dim > 0 and direction_dim > 0 and resolution > 0, "sizes must be positive")
        require(num_layers >= 1 and len(layer_names) >= 1, "a generator has at least one layer")
        if self.edit_space == "z":
            require(num_layers == 1, "z-space generators have a single edit-space row")
        self.latent_dim = latent_dim  # size of z, what sampling draws
        self.direction_dim = direction_dim  # size of one edit-space row: z for "z", w for "w+"
        self.resolution = resolution
        self.num_layers = num_layers  # W+ rows, or 1
        self.layer_names = tuple(layer_names)  # the factorizable layers, in index order
        self.num_classes = 0  # > 0 for class-conditional models (BigGAN, conditional PGGAN / StyleGAN)
        self.class_names: tuple[str, ...] = ()
        self.digest = ""  # sha256 of the checkpoint file; set by the loader
        self.source_format = ""  # e.g. "genforce .pth"; set by the loader
        self.source_path = ""
        self.factorization_cache: dict[tuple, Any] = {}  # (digest, layers, normalize) -> Semantics

    # ---- what SeFa factorizes -------------------------------------------------------------
    @abstractmethod
    def layer_weight(self, index: int) -> torch.Tensor:
        """The affine matrix A of factorizable layer ``index``: (out_features, direction_dim).

        Rows are output units; SeFa normalises them, so a per-layer scalar gain does not matter.
        """

    def resolve_layers(self, spec: str) -> tuple[int, ...]:
        """Layer spec -> factorizable layer indices.

        A model with one factorizable layer (DCGAN, PGGAN) uses it whatever the spec, as the
        reference does, but the spec's syntax is still checked.
        """
        if len(self.layer_names) == 1:
            try:
                layer_ranges(spec, _SYNTAX_ONLY_LAYERS)  # syntax errors still reach the user
            except LayerSpecError as error:
                problem = str(error).split("; valid layers")[0]
                raise LayerSpecError(
                    f"{problem}; this model has one factorizable layer, 0, which every well-formed spec uses"
                ) from None
            return (0,)
        return parse_layers(spec, len(self.layer_names))

    def layer_presets(self) -> dict[str, str]:
        """Named layer specs for pickers; models may override with architecture-aware ones."""
        return {"all": "all"}

    # ---- codes ----------------------------------------------------------------------------
    @property
    def code_shape(self) -> tuple[int, ...]:
        """Shape of one edit-space code (without the batch axis)."""
        if self.edit_space == "z":
            return (self.direction_dim,)
        return (self.num_layers, self.direction_dim)

    def sample_latents(self, n: int, seed: int) -> torch.Tensor:
        """Seeded z, (n, latent_dim): ``RandomState(seed).randn`` as the reference scripts do."""
        z = np.random.RandomState(seed).randn(n, self.latent_dim).astype(np.float32)
        return torch.from_numpy(z)

    def sample(
        self,
        n: int,
        seed: int,
        trunc_psi: float = DEFAULT_TRUNC_PSI,
        trunc_layers: int | None = None,
        **conditioning: Any,
    ) -> torch.Tensor:
        """``n`` seeded edit-space codes, truncated as the model's reference does.

        ``conditioning`` is what ``synthesize`` gets too (e.g. ``classes=``): a model whose class
        enters the mapping network (conditional StyleGAN) draws its codes for that class.
        """
        return self.to_edit_space(self.sample_latents(n, seed), trunc_psi, trunc_layers, **conditioning)

    @torch.inference_mode()
    def to_edit_space(
        self,
        z: torch.Tensor,
        trunc_psi: float = DEFAULT_TRUNC_PSI,
        trunc_layers: int | None = None,
        **conditioning: Any,
    ) -> torch.Tensor:
        """z (N, latent_dim) -> edit-space codes, (N, *code_shape), on the model's device.

        ``trunc_layers=None`` truncates every W+ row; ignored by models without truncation.
        ``conditioning`` as for ``synthesize``; models whose codes do not depend on it ignore it.
        """
        z = torch.as_tensor(z, dtype=torch.float32)
        require(
            z.ndim == 2 and z.shape[1] == self.latent_dim,
            f"z must be (N, {self.latent_dim}), got {tuple(z.shape)}",
        )
        codes = self._to_edit_space(z.to(self.device), float(trunc_psi), trunc_layers, **conditioning)
        require(tuple(codes.shape[1:]) == self.code_shape, "edit-space codes have the wrong shape")
        return codes

    @torch.inference_mode()
    def synthesize(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor:
        """Edit-space codes (N, *code_shape) -> images (N, 3, H, W), roughly in [-1, 1].

        The raw output, neither clamped nor post-processed. Class-conditional models read
        ``conditioning`` (e.g. ``classes=``, ``truncation=``); others ignore it.
        """
        return self.synthesize_with_grad(codes, **conditioning)

    def synthesize_with_grad(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor:
        """``synthesize`` keeping autograd's graph, so that a loss on the images can move the codes.

        What photo inversion optimises through; everything else uses ``synthesize``.
        """
        codes = torch.as_tensor(codes, dtype=torch.float32)
        require(
            tuple(codes.shape[1:]) == self.code_shape,
            f"codes must be (N, {', '.join(map(str, self.code_shape))}), got {tuple(codes.shape)}",
        )
        images = self._synthesize(codes.to(self.device), **conditioning)
        require(images.ndim == 4 and images.shape[1] == 3, "images must be (N, 3, H, W)")
        return images

    def class_vectors(self, classes: object, n: int) -> torch.Tensor:
        """Class indices (an int, or (N,)) or one-hot / mixture rows (N, num_classes) -> (N, num_classes)."""
        if classes is None:
            classes = DEFAULT_CLASS
        labels = torch.as_tensor(classes, device=self.device)
        if labels.ndim == 2:
            require(
                labels.shape == (n, self.num_classes),
                f"class vectors must be ({n}, {self.num_classes}), got {tuple(labels.shape)}",
            )
            return labels.float()
        require(not labels.is_floating_point(), "class indices must be integers")
        indices = labels.expand(n) if labels.ndim == 0 else labels
        require(indices.shape == (n,), f"class indices must be ({n},), got {tuple(indices.shape)}")
        require(
            bool(((indices >= 0) & (indices < self.num_classes)).all()),
            f"class indices must be in [0, {self.num_classes})",
        )
        return F.one_hot(indices.long(), self.num_classes).float()

    def mapping_labels(self, n: int, conditioning: Mapping[str, Any]) -> torch.Tensor | None:
        """One-hot rows (n, num_classes) of ``conditioning["classes"]`` (``DEFAULT_CLASS`` when absent),
        for models whose class enters the mapping network; None for unconditional ones."""
        return self.class_vectors(conditioning.get("classes"), n) if self.num_classes else None

    @abstractmethod
    def _to_edit_space(
        self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None, **conditioning: Any
    ) -> torch.Tensor: ...

    @abstractmethod
    def _synthesize(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor: ...

    # ---- bookkeeping ----------------------------------------------------------------------
    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        """Strict load naming the first missing, damaged, mis-shaped or unexpected key.

        Raises ``WeightError`` (a ValueError) under the model's key names; a loader that renamed the
        file's keys wraps this call in ``file_key_names`` so that the user reads the file's names.
        """
        expected = self.state_dict()
        missing = [key for key in expected if key not in state]
        if missing:
            raise WeightError(missing[0], f"missing key {KEY_SLOT}{_and_more(missing)}")
        for key, wanted in expected.items():
            check_weight_values(key, state[key], wanted.is_floating_point())
        misshaped = [key for key in expected if tuple(state[key].shape) != tuple(expected[key].shape)]
        if misshaped:
            key = misshaped[0]
            found, wanted = tuple(state[key].shape), tuple(expected[key].shape)
            raise WeightError(key, f"{KEY_SLOT} has shape {found}, expected {wanted}{_and_more(misshaped)}")
        unexpected = [key for key in state if key not in expected]
        if unexpected:
            raise WeightError(unexpected[0], f"unexpected key {KEY_SLOT}{_and_more(unexpected)}")
        self.load_state_dict(dict(state), strict=True)

    @property
    def device(self) -> torch.device:
        tensor = next(self.parameters(), None)
        if tensor is None:
            tensor = next(self.buffers())
        return tensor.device

    def describe(self) -> dict[str, Any]:
        """The inferred architecture, for ``sefa models`` and the Models page."""
        return {
            "architecture": self.architecture,
            "format": self.source_format,
            "resolution": self.resolution,
            "latent_dim": self.latent_dim,
            "direction_dim": self.direction_dim,
            "edit_space": self.edit_space,
            "num_layers": self.num_layers,
            "factorizable_layers": len(self.layer_names),
            "num_classes": self.num_classes,
            "parameters": sum(p.numel() for p in self.parameters()),
            "digest": self.digest[:16],
        }


def _and_more(keys: list[str]) -> str:
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""


KEY_SLOT = "{key}"  # where a WeightError's message names its key
INTEGER_BUFFERS = ("num_batches_tracked",)  # BatchNorm's step counter: the one integer a generator stores


class WeightError(ValueError):
    """A tensor that does not fit the model, named by its key: one line for the user.

    The message is kept as a template so that a loader that renamed the file's keys can name the
    key as the file spells it (``renamed``, ``file_key_names``).
    """

    def __init__(self, key: str, problem: str) -> None:
        """``problem`` holds ``KEY_SLOT`` where the quoted key goes."""
        super().__init__(problem.replace(KEY_SLOT, f"'{key}'"))
        self.key = key
        self.problem = problem

    def renamed(self, file_key: Callable[[str], str]) -> WeightError:
        return WeightError(file_key(self.key), self.problem)


@contextmanager
def file_key_names(file_key: Callable[[str], str]) -> Iterator[None]:
    """Inside, a ``WeightError`` about a model key names ``file_key(key)``: what the user's file holds.

    ``file_key`` is a layout's inverse naming (model key -> the file key it is read from); it must
    name keys the file lacks too, so that a missing key is reported as the file should spell it.
    """
    try:
        yield
    except WeightError as error:
        raise error.renamed(file_key) from error


def check_file_tensors(state: Mapping[str, object]) -> None:
    """Check a file's state dict as stored, before a loader converts it.

    A cast (``.float()``) or an added offset would hide an integer tensor, and a folded one (spectral
    norm) would blame NaN on the wrong key. Only ``INTEGER_BUFFERS`` may be integer.
    """
    for key, value in state.items():
        check_weight_values(key, value, floating=not key.endswith(INTEGER_BUFFERS))


def check_weight_values(key: str, found: object, floating: bool) -> None:
    """Refuse what no trained generator holds, naming ``key``.

    Non-tensors, sparse or meta tensors, NaN and Inf always; integers where ``floating``. A damaged
    file would otherwise load and draw black or noisy images with no word of why.
    """
    if not isinstance(found, torch.Tensor):
        raise WeightError(key, f"{KEY_SLOT} is a {type(found).__name__}, not a tensor")
    if found.is_meta or found.layout != torch.strided:
        kind = "meta" if found.is_meta else str(found.layout).removeprefix("torch.")
        raise WeightError(key, f"{KEY_SLOT} is a {kind} tensor; a checkpoint holds dense weights")
    if floating and not found.is_floating_point():
        raise WeightError(key, f"{KEY_SLOT} has dtype {found.dtype}, expected floating-point weights")
    if not found.is_floating_point():
        return
    # A finite sum proves that no entry is NaN or infinite, 50x faster than an elementwise pass;
    # only a sum that overflowed or met a bad entry needs the full count below.
    if bool(torch.isfinite(found.sum())) or bool(torch.isfinite(found).all()):
        return
    counts = [(int(torch.isnan(found).sum()), "NaN"), (int(torch.isinf(found).sum()), "infinite")]
    bad = " and ".join(f"{count:,} {kind}" for count, kind in counts if count)
    raise WeightError(key, f"{KEY_SLOT} holds {bad} (of {found.numel():,} values); the checkpoint is damaged")


COARSE_LAYERS = (0, 1)  # W+ rows that set pose and shape, in the StyleGAN paper's reading
MIDDLE_LAYERS = (2, 5)
FINE_FIRST_LAYER = 6


def style_layer_presets(num_layers: int) -> dict[str, str]:
    """Named W+ row ranges (coarse / middle / fine, as in the StyleGAN paper) that exist in the model."""
    last = num_layers - 1
    presets = {"all": "all", f"coarse {COARSE_LAYERS[0]}-{COARSE_LAYERS[1]}": "0-1"}
    if last >= MIDDLE_LAYERS[0]:
        middle = f"{MIDDLE_LAYERS[0]}-{min(MIDDLE_LAYERS[1], last)}"
        presets[f"middle {middle}"] = middle
    if last >= FINE_FIRST_LAYER:
        fine = f"{FINE_FIRST_LAYER}-{last}"
        presets[f"fine {fine}"] = fine
    return presets


def wplus_from_w(
    w: torch.Tensor, num_layers: int, w_avg: torch.Tensor, trunc_psi: float, trunc_layers: int | None
) -> torch.Tensor:
    """The StyleGAN family's edit space: w (N, w_dim) repeated per layer, then truncated."""
    wp = w[:, None, :].repeat(1, num_layers, 1)  # (N, num_layers, w_dim)
    return truncate_wplus(wp, w_avg, trunc_psi, trunc_layers)


def truncate_wplus(
    wp: torch.Tensor, w_avg: torch.Tensor, trunc_psi: float, trunc_layers: int | None
) -> torch.Tensor:
    """StyleGAN truncation: rows ``i < trunc_layers`` move toward ``w_avg`` by ``trunc_psi``.

    wp: (N, num_layers, w_dim); w_avg: (w_dim,). ``trunc_layers=None`` means every row.
    """
    require(wp.ndim == 3 and w_avg.shape == (wp.shape[2],), "wp (N, L, w_dim), w_avg (w_dim,)")
    if trunc_psi == 1.0:
        return wp
    cutoff = wp.shape[1] if trunc_layers is None else min(int(trunc_layers), wp.shape[1])
    truncated = wp.clone()
    truncated[:, :cutoff] = w_avg + (wp[:, :cutoff] - w_avg) * trunc_psi
    return truncated
