"""One editing session without a UI: which code is shown, where the sliders stand, what to render.

The editor (``app.py``) and its pages keep an ``EditState`` per user and call these functions; nothing
here imports Streamlit, so every rule of the editor can be tested directly:

    rows = CodeRows()                                            # no prepared codes: seeds only
    state = new_state("default", generator, first_source(rows), rows, Settings("all", 10))
    state = state.with_alphas(fit_alphas({0: 3.0}, 10))          # slider 0 at +3
    pixels = render_edit(generator, factorize(generator, state.layers), state)   # uint8 (H, W, 3)
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from sefa_core.config import MAX_NUM_SEMANTICS, ModelEntry, SliderRange
from sefa_core.editing import distances
from sefa_core.errors import require
from sefa_core.factorize import Semantics
from sefa_core.layers import parse_layers
from sefa_core.models.base import Generator
from sefa_core.recipe import Conditioning, Recipe, apply_row_edits
from sefa_core.render import render_traversals, to_uint8

MAX_SEED = 2**31 - 1  # fresh seeds stay in RandomState's range and in a 32-bit int input
CUSTOM_LAYERS = "custom…"  # the layer picker's last entry: type a spec

CodeKind = Literal["prepared", "seed", "upload"]


# ---- sliders ------------------------------------------------------------------------------------
def slider_label(index: int, eigenvalue: float, share: float | None = None, name: str = "") -> str:
    """``Semantic 003 · λ=12.18 · 4.1 %``: which direction (or the name a user gave it), how strongly
    it moves the factorized layers, and its share of their total energy."""
    shown = f"{name.strip()} (#{index})" if name.strip() else f"Semantic {index:03d}"
    return f"{shown} · λ={eigenvalue:.2f}" + ("" if share is None else f" · {share:.1%}".replace("%", " %"))


def energy_shares(semantics: Semantics) -> np.ndarray:
    """λ_k / Σλ for each direction: (K,). Σλ is the trace of the stacked Gram, so it counts every
    eigenvalue, also when only the top K were solved for."""
    total = sum(float(np.trace(gram)) for gram in semantics.layer_grams) or float(semantics.eigenvalues.sum())
    return semantics.eigenvalues / total if total > 0 else np.zeros_like(semantics.eigenvalues)


def slider_labels(
    semantics: Semantics, names: Sequence[str], count: int, rows: Sequence[str] = ()
) -> list[str]:
    """The labels of the first ``count`` sliders, with their names (``""`` where unnamed) and the
    W+ rows of those that move their own (``""`` where they move the layer set's)."""
    shares = energy_shares(semantics)
    return [
        slider_label(k, float(semantics.eigenvalues[k]), float(shares[k]), names[k] if k < len(names) else "")
        + (f" · rows {rows[k]}" if k < len(rows) and rows[k] else "")
        for k in range(count)
    ]


def has_one_layer(generator: Generator) -> bool:
    """DCGAN, PGGAN: a single factorizable layer, so there is no layer set to choose."""
    return len(generator.layer_names) == 1


def layer_set_name(semantics: Semantics) -> str:
    """How every page names the layer set SeFa factorized: ``layers 0-3,6``, ``layer 0``."""
    return f"layer{'s' if len(semantics.layers) > 1 else ''} {semantics.layer_spec}"


def edits_active(alphas: Sequence[float]) -> str:
    """``3 edits active``, ``no edits``: what the user sees above the sliders."""
    count = sum(1 for alpha in alphas if alpha != 0.0)
    return "no edits" if not count else f"{count} edit{'s' if count > 1 else ''} active"


def semantics_range(generator: Generator) -> tuple[int, int]:
    """How many sliders a user may ask for: 1 .. min(direction_dim, 64)."""
    return 1, min(generator.direction_dim, MAX_NUM_SEMANTICS)


def fit_names(names: Sequence[str] | Mapping[int, str], count: int) -> tuple[str, ...]:
    """Slider names for ``count`` sliders: kept where they exist, ``""`` where they are new."""
    values = dict(names) if isinstance(names, Mapping) else dict(enumerate(names))
    return tuple(str(values.get(index, "")) for index in range(count))


def fit_alphas(alphas: Sequence[float] | Mapping[int, float], count: int) -> tuple[float, ...]:
    """Slider values for ``count`` sliders: kept where they exist, zero where they are new."""
    values = dict(alphas) if isinstance(alphas, Mapping) else dict(enumerate(alphas))
    return tuple(float(values.get(index, 0.0)) for index in range(count))


def client_alphas(values: object, count: int, slider: SliderRange) -> tuple[float, ...] | None:
    """Slider values a browser sent, checked: ``count`` finite numbers, clamped to the range; else None."""
    if not isinstance(values, list | tuple) or len(values) != count:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None
    return tuple(min(max(float(v), slider.min), slider.max) for v in values)


def nonzero_alphas(alphas: Sequence[float]) -> dict[int, float]:
    """Semantic index -> distance, for the sliders that moved."""
    return {index: float(alpha) for index, alpha in enumerate(alphas) if alpha != 0.0}


def layer_choices(entry: ModelEntry, generator: Generator) -> dict[str, str]:
    """Preset name -> layer spec: the config's presets first, then the model's own."""
    choices = dict(entry.layer_presets)
    for name, spec in generator.layer_presets().items():
        choices.setdefault(name, spec)
    return choices


# ---- which code is shown ------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeSource:
    """Where the shown code came from: prepared code ``index``, ``seed``, or an uploaded file's row."""

    kind: CodeKind
    index: int  # the row for "prepared" and "upload", the seed for "seed"
    name: str = ""  # the uploaded file's name

    @property
    def label(self) -> str:
        if self.kind == "seed":
            return f"seed {self.index}"
        if self.kind == "upload":
            return f"{self.name} #{self.index}"
        return f"prepared code #{self.index}"


@dataclass(frozen=True)
class Truncation:
    """How seeds become codes: ``trunc_psi`` toward the average, on rows below ``trunc_layers``."""

    psi: float = 1.0
    layers: int | None = None


@dataclass(frozen=True)
class CodeRows:
    """The codes a user can step through: the model's prepared codes, or an uploaded file's."""

    rows: torch.Tensor | None = None  # (N, *code_shape), or None when there are none
    kind: CodeKind = "prepared"
    name: str = ""  # the uploaded file's name

    def __len__(self) -> int:
        return 0 if self.rows is None else len(self.rows)

    def source(self, index: int) -> CodeSource:
        return CodeSource(self.kind, index, self.name)

    def holds(self, source: CodeSource) -> bool:
        """Whether ``source`` can be shown now: a seed, or one of these rows."""
        if source.kind == "seed":
            return True
        return source.kind == self.kind and source.name == self.name and 0 <= source.index < len(self)


def first_source(rows: CodeRows) -> CodeSource:
    """The code a session starts on: the first row, else seed 0."""
    return rows.source(0) if len(rows) else CodeSource("seed", 0)


def next_source(current: CodeSource, rows: CodeRows, rng: random.Random) -> CodeSource:
    """What ``Random`` shows next: the rows in order first, then fresh seeds.

    The rows are stepped through from the one shown; after the last one, and from a seed, every
    press draws a new seed, which is shown so that the face can be found again.
    """
    if current.kind == rows.kind and current.name == rows.name and current.index + 1 < len(rows):
        return rows.source(current.index + 1)
    return CodeSource("seed", rng.randint(0, MAX_SEED))


def source_code(
    generator: Generator,
    source: CodeSource,
    rows: CodeRows,
    truncation: Truncation,
    conditioning: Mapping[str, Any] | None = None,
) -> torch.Tensor:
    """The code ``source`` names: (1, *code_shape) on the generator's device.

    A seed is sampled with ``conditioning``, what the image is synthesized with: a conditional
    StyleGAN's class changes the code itself.
    """
    if source.kind == "seed":
        return generator.sample(1, source.index, truncation.psi, truncation.layers, **(conditioning or {}))
    require(rows.rows is not None and source.kind == rows.kind, f"{source.label} is not among the rows")
    require(0 <= source.index < len(rows), f"no {source.label} here")
    return rows.rows[source.index : source.index + 1].to(generator.device)


# ---- the edit ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EditState:
    """What the editor shows; shared with the pages, and enough to export or replay the edit."""

    model: str  # the config name
    digest: str  # sha256 of the checkpoint
    layers: str  # the last layer spec that factorized
    source: CodeSource
    code: np.ndarray = field(repr=False)  # (1, *code_shape) float32, the unedited code
    alphas: tuple[float, ...] = ()
    truncation: Truncation = Truncation()
    class_index: int | None = None  # class-conditional models only
    names: tuple[str, ...] = ()  # the user's name for each slider, "" where unnamed
    rows: tuple[str, ...] = ()  # the W+ rows each slider moves (a direction set's), "" for the layer set's
    # (layer indices, alphas, names) of the other layer sets edited in this session, so that going
    # back to one brings its edits back
    put_aside: tuple[tuple[tuple[int, ...], tuple[float, ...], tuple[str, ...]], ...] = ()

    def with_alphas(self, alphas: Sequence[float]) -> EditState:
        return replace(self, alphas=tuple(float(a) for a in alphas))

    def with_names(self, names: Mapping[int, str]) -> EditState:
        """Slider ``k`` named ``names[k]`` (stripped; ``""`` takes a name away)."""
        current = dict(enumerate(self.names)) | {k: str(v).strip() for k, v in names.items()}
        return replace(self, names=fit_names(current, len(self.alphas)))

    @property
    def own_rows(self) -> dict[int, str]:
        """Semantic index -> the W+ rows it moves, for the sliders that do not move the layer set's."""
        return {index: rows for index, rows in enumerate(self.rows[: len(self.alphas)]) if rows}

    @property
    def named(self) -> dict[int, str]:
        """Semantic index -> name, for the named sliders."""
        return {index: name for index, name in enumerate(self.names) if name}

    def code_tensor(self, generator: Generator) -> torch.Tensor:
        return torch.from_numpy(self.code).to(generator.device)

    def conditioning(self) -> Conditioning | None:
        """The class and truncation a class-conditional model synthesizes with; None otherwise."""
        if self.class_index is None:
            return None
        return Conditioning(self.class_index, self.truncation.psi)

    @property
    def synthesis_kwargs(self) -> dict[str, Any]:
        """What ``Generator.sample`` and ``synthesize`` need besides the codes: the class, if any."""
        return conditioning_kwargs(self.class_index, self.truncation)


def conditioning_kwargs(class_index: int | None, truncation: Truncation) -> dict[str, Any]:
    """The keywords a class-conditional model samples and synthesizes with; {} for other models."""
    return {} if class_index is None else Conditioning(class_index, truncation.psi).kwargs()


def edited_code(generator: Generator, semantics: Semantics, state: EditState) -> torch.Tensor:
    """The shown code moved by the sliders: (1, *code_shape), exactly as ``sefa apply`` moves it."""
    rows = {k: parse_layers(spec, generator.num_layers) for k, spec in state.own_rows.items()}
    return apply_row_edits(state.code_tensor(generator), semantics, nonzero_alphas(state.alphas), rows)


def render_code(generator: Generator, code: torch.Tensor, state: EditState) -> np.ndarray:
    """One code (1, *code_shape) as this state's model draws it (its class, if any): uint8 (H, W, 3)."""
    return to_uint8(generator.synthesize(code, **state.synthesis_kwargs))[0]


def render_edit(generator: Generator, semantics: Semantics, state: EditState) -> np.ndarray:
    """The edited image, uint8 (H, W, 3)."""
    return render_code(generator, edited_code(generator, semantics, state), state)


def render_original(generator: Generator, state: EditState) -> np.ndarray:
    """The unedited image, uint8 (H, W, 3)."""
    return render_code(generator, state.code_tensor(generator), state)


def edit_recipe(state: EditState) -> Recipe:
    """The recipe that ``sefa apply`` replays to the same pixels: a seed, or the code itself."""
    common = {
        "model": state.model,
        "digest": state.digest,
        "layers": state.layers,
        "edits": tuple(nonzero_alphas(state.alphas).items()),
        "conditioning": state.conditioning(),
        "names": tuple(state.named.items()),
        "rows": tuple((k, rows) for k, rows in state.own_rows.items() if k in nonzero_alphas(state.alphas)),
    }
    if state.source.kind == "seed":
        return Recipe(
            seed=state.source.index,
            trunc_psi=state.truncation.psi,
            trunc_layers=state.truncation.layers,
            **common,
        )
    return Recipe(code=state.code[0], **common)


@dataclass(frozen=True)
class Settings:
    """What the sidebar chose besides the model: layers, how many sliders, truncation, class."""

    layers: str
    num_semantics: int
    truncation: Truncation = Truncation()
    class_index: int | None = None  # class-conditional models only


def new_state(
    model: str, generator: Generator, source: CodeSource, rows: CodeRows, settings: Settings
) -> EditState:
    """A state showing ``source`` with every slider at zero."""
    conditioning = conditioning_kwargs(settings.class_index, settings.truncation)
    code = source_code(generator, source, rows, settings.truncation, conditioning)
    return EditState(
        model=model,
        digest=generator.digest,
        layers=settings.layers,
        source=source,
        code=code.detach().cpu().numpy().astype(np.float32),
        alphas=fit_alphas((), settings.num_semantics),
        names=fit_names((), settings.num_semantics),
        truncation=settings.truncation,
        class_index=settings.class_index,
    )


def show_source(state: EditState, generator: Generator, source: CodeSource, rows: CodeRows) -> EditState:
    """Another code with the same slider values, so one edit can be tried on many faces."""
    code = source_code(generator, source, rows, state.truncation, state.synthesis_kwargs)
    return replace(state, source=source, code=code.detach().cpu().numpy().astype(np.float32))


def apply_settings(
    state: EditState, generator: Generator, rows: CodeRows, settings: Settings
) -> tuple[EditState, bool]:
    """``state`` under new sidebar settings, and whether the sliders had to move.

    A spec naming the same layers keeps the sliders. Other layers mean other directions: the
    edits of the old set are put aside (and come back when it is picked again), and the new set
    shows its own edits from before, or none. More or fewer sliders keep the values of those that
    stay; a new truncation or class samples the shown seed again (the class may change the code).
    """
    old, new = generator.resolve_layers(state.layers), generator.resolve_layers(settings.layers)
    alphas, names, put_aside = state.alphas, state.names, state.put_aside
    if new != old:
        earlier = {layers: (a, n) for layers, a, n in put_aside}
        put_aside = tuple((k, *v) for k, v in ({**earlier, old: (alphas, names)}).items() if k != new)
        alphas, names = earlier.get(new, ((), ()))
    updated = replace(
        state,
        layers=settings.layers,
        alphas=fit_alphas(alphas, settings.num_semantics),
        names=fit_names(names, settings.num_semantics),
        put_aside=put_aside,
        rows=state.rows if new == old else (),  # a direction set's rows belong to its layer set
        truncation=settings.truncation,
        class_index=settings.class_index,
    )
    resampled = settings.truncation != state.truncation or settings.class_index != state.class_index
    if resampled and state.source.kind == "seed":
        updated = show_source(updated, generator, state.source, rows)
    return updated, new != old


def traversal_frames(
    generator: Generator, semantics: Semantics, state: EditState, index: int, slider: SliderRange, steps: int
) -> np.ndarray:
    """Slider ``index`` swept across its range, the other sliders where they stand: uint8 (S, H, W, 3)."""
    require(0 <= index < len(state.alphas), f"semantic {index} has no slider")
    others = list(state.alphas)
    others[index] = 0.0
    start = edited_code(generator, semantics, state.with_alphas(others))
    sweep = distances(slider.min, slider.max, steps)
    pixels = render_traversals(
        generator, start, semantics, [index], sweep, conditioning=state.synthesis_kwargs
    )
    return pixels[0, 0]  # (N=1, K=1, S, H, W, 3) -> (S, H, W, 3)


def preview_strips(generator: Generator, semantics: Semantics, state: EditState, alpha: float) -> np.ndarray:
    """Each slider's thumbnails at -alpha and +alpha from the unedited face: uint8 (K, 2, H, W, 3).

    From the unedited code (not the other sliders' edit), so they stay valid while sliders move.
    """
    pixels = render_traversals(
        generator,
        state.code_tensor(generator),
        semantics,
        range(len(state.alphas)),
        [-alpha, alpha],
        conditioning=state.synthesis_kwargs,
    )
    return pixels[0]  # (N=1, K, 2, H, W, 3) -> (K, 2, H, W, 3)


# ---- the Explore grid -----------------------------------------------------------------------------
def grid_labels(
    semantics: Semantics, names: Sequence[str], count: int, sweep: Sequence[float]
) -> tuple[list[str], list[str], int | None]:
    """Row labels (the name or index, then λ), column labels (α), and the α = 0 column, if the
    sweep has one (within half a step). ASCII only: PIL's built-in font has no λ or α."""
    rows = [
        f"{(names[k] if k < len(names) and names[k] else f'#{k:03d}')[:24]}  {semantics.eigenvalues[k]:.1f}"
        for k in range(count)
    ]
    columns = [f"{alpha:+.1f}" if round(alpha, 1) else "0" for alpha in sweep]
    half_step = abs(sweep[-1] - sweep[0]) / max(len(sweep) - 1, 1) / 2
    nearest = int(np.argmin(np.abs(sweep)))
    return rows, columns, nearest if abs(sweep[nearest]) <= half_step else None


# ---- the shareable link ---------------------------------------------------------------------------
LINK_SEPARATOR = ","  # between "index:value" pairs in a link's slider values and names
MAX_LINK_NAME_LENGTH = 80


@dataclass(frozen=True)
class Link:
    """What a link (the page's query parameters) asks the editor to show; None where it says nothing."""

    model: str | None = None
    layers: str | None = None
    source: CodeSource | None = None  # a prepared row or a seed; uploads are private to their session
    alphas: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)


def link_params(state: EditState) -> dict[str, str]:
    """The query parameters that bring ``state`` back: ``?model=default&layers=all&code=p3&a=0:2.5``."""
    params = {"model": state.model, "layers": state.layers}
    if state.source.kind != "upload":
        params["code"] = f"{state.source.kind[0]}{state.source.index}"  # p3 (prepared #3), s1234 (seed)
    if edits := nonzero_alphas(state.alphas):
        params["a"] = LINK_SEPARATOR.join(f"{k}:{alpha:g}" for k, alpha in edits.items())
    if state.named:
        params["names"] = LINK_SEPARATOR.join(
            f"{k}:{name.replace(LINK_SEPARATOR, ' ')}" for k, name in state.named.items()
        )
    return params


def parse_link(params: Mapping[str, str]) -> Link:
    """A link's query parameters, read leniently: a part that cannot be read is left out, so a link
    typed by hand still opens the editor."""
    code = str(params.get("code", ""))
    source = None
    if code[:1] in ("p", "s") and code[1:].isdigit() and int(code[1:]) <= MAX_SEED:
        source = CodeSource("prepared" if code[0] == "p" else "seed", int(code[1:]))
    alphas = {k: float(v) for k, v in _pairs(params.get("a", "")).items() if _finite_number(v)}
    names = {k: v.strip()[:MAX_LINK_NAME_LENGTH] for k, v in _pairs(params.get("names", "")).items()}
    return Link(params.get("model") or None, params.get("layers") or None, source, alphas, names)


def _pairs(text: str) -> dict[int, str]:
    """``"0:2.5,3:-1"`` -> {0: "2.5", 3: "-1"}, for indices below MAX_NUM_SEMANTICS."""
    pairs = {}
    for part in str(text).split(LINK_SEPARATOR):
        index, _, value = part.partition(":")
        if index.strip().isdigit() and int(index) < MAX_NUM_SEMANTICS and value.strip():
            pairs[int(index)] = value
    return pairs


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
