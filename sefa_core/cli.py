"""The ``sefa`` command: list models, factorize, render traversal pages, replay recipes, pick codes.

    sefa models [--verbose]
    sefa factorize MODEL -L 0-1 -o directions.npz [--method pca] [--samples 10000]
    sefa render MODEL -L 0-1 -N 5 -K 5 --start -3 --end 3 --steps 11 --out results/ [--gif]
    sefa apply recipe.yaml -o out.png [--codes-out code.npy]
    sefa pick-codes MODEL -n 24 -o latent_codes/default.npy [--pool 2000] [--seed 0]
    sefa invert MODEL photo.jpg -o code.npy [--steps 500] [--restarts 8]
    sefa serve --replicas 4 --port 8501 [--host 127.0.0.1]
    sefa convert IN.pkl OUT.safetensors
    sefa sweep MODEL [MODEL ...] --seeds 0-999 --out sweeps/ [--workers 4 | --address auto | --local]

MODEL is a name from config.yaml or a checkpoint path. Every error is one line on stderr and
exit code 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sefa_core.atomic import atomic_write_bytes, atomic_write_text
from sefa_core.codes import load_codes, pick_clean_codes, save_codes
from sefa_core.config import AppConfig, ModelEntry, load_config
from sefa_core.device import DEVICE_CHOICES, keep_freed_memory, resolve_device
from sefa_core.editing import distances as evenly_spaced
from sefa_core.errors import SefaError
from sefa_core.factorize import DEFAULT_PCA_SAMPLES, METHODS, Semantics, factorize
from sefa_core.formats import convert_file, load_checkpoint
from sefa_core.invert import DEFAULT_RESTARTS, invert_image, load_photo
from sefa_core.invert import DEFAULT_STEPS as DEFAULT_INVERT_STEPS
from sefa_core.models.base import DEFAULT_TRUNC_PSI, Generator
from sefa_core.recipe import Conditioning, read_recipe, recipe_codes
from sefa_core.registry import model_statuses, resolve_model
from sefa_core.render import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_VIZ_SIZE,
    contact_sheet,
    downscale,
    encode_image,
    gif_bytes,
    image_grid,
    render_traversals,
    sample_first_html,
    semantic_first_html,
    to_uint8,
)
from sefa_core.serve import LOOPBACK, ServeOptions, serve
from sefa_core.sweep import (
    DEFAULT_SHARD_SIZE,
    MANIFEST_FILE,
    Engine,
    LocalEngine,
    ShardWorker,
    SweepSettings,
    claim_folder,
    parse_seeds,
    prepare_model,
    ray_engine,
    run_sweep,
)

log = logging.getLogger("sefa_core.cli")

USAGE_ERROR = 2  # what argparse uses; a user's input (name, file, spec) could not be used
UNEXPECTED_ERROR = 1
INTERRUPTED = 130  # what shells report for Ctrl-C
# The reference script's defaults (genforce/sefa sefa.py).
DEFAULT_NUM_SAMPLES = 5
DEFAULT_NUM_SEMANTICS = 5  # for checkpoint paths; configured models use their num_semantics
DEFAULT_START, DEFAULT_END, DEFAULT_STEPS = -3.0, 3.0, 11
DEFAULT_GRID_CELL = 256  # px: larger images are downscaled in PNG grids and GIFs
DEFAULT_PICK_COUNT = 24
DEFAULT_PICK_POOL = 2000
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


# ---- shared helpers -----------------------------------------------------------------------
def _load(model: str, device: str, config: AppConfig) -> tuple[Generator, ModelEntry | None, str]:
    """A model by name or path -> (generator, its config entry or None, a short name for files)."""
    choice = resolve_device(device)
    if choice.notice:
        print(f"note: {choice.notice}", file=sys.stderr)
    path, entry = resolve_model(model, config)
    generator = load_checkpoint(path, device, classes=entry.classes if entry else None)
    return generator, entry, entry.name if entry else Path(model).stem


def _slug(text: str) -> str:
    """Text safe inside a file name: ``"2, 4-6"`` -> ``"2_4-6"``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "x"


def _progress_bar(total: int | None, desc: str) -> tqdm:
    return tqdm(
        total=total, desc=desc, unit="img", file=sys.stderr, leave=False, dynamic_ncols=True, delay=0.5
    )


def _truncation(args: argparse.Namespace, entry: ModelEntry | None) -> tuple[float, int | None]:
    """``--trunc-psi``/``--trunc-layers``, else the model's config entry, else no truncation."""
    psi = entry.trunc_psi if entry else DEFAULT_TRUNC_PSI
    layers = entry.trunc_layers if entry else None
    return (
        psi if args.trunc_psi is None else args.trunc_psi,
        layers if args.trunc_layers is None else args.trunc_layers,
    )


def _conditioning(args: argparse.Namespace, generator: Generator, trunc_psi: float) -> dict[str, Any]:
    """``--class-index`` for class-conditional models, synthesized at the codes' truncation."""
    if not generator.num_classes:
        if args.class_index is not None:
            raise SefaError("--class-index: this model is not class-conditional")
        return {}
    class_index = args.class_index or 0
    if not 0 <= class_index < generator.num_classes:
        raise SefaError(f"--class-index {class_index}: the model has classes 0-{generator.num_classes - 1}")
    return Conditioning(class_index, trunc_psi).kwargs()


def _num_semantics(args: argparse.Namespace, entry: ModelEntry | None, semantics: Semantics) -> int:
    """``-K``, else the model's config entry, else the reference's 5; never more than there are."""
    num_semantics = args.num_semantics or (entry.num_semantics if entry else DEFAULT_NUM_SEMANTICS)
    if num_semantics > len(semantics.directions):
        raise SefaError(f"-K {num_semantics}: this model has only {len(semantics.directions)} directions")
    return num_semantics


def _advance(bar: tqdm) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that moves ``bar``."""

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return advance


def _image_format(path: Path) -> str:
    image_format = IMAGE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise SefaError(f"{path}: unknown image type; use one of {', '.join(IMAGE_FORMATS)}")
    return image_format


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


# ---- sefa models --------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace, config: AppConfig) -> int:
    statuses = model_statuses(config)
    rows = [("NAME", "STATUS", "REASON")]
    described: dict[str, dict] = {}
    for status in statuses:
        state, reason = ("available", "") if status.available else ("missing", status.reason)
        if args.verbose and status.available and status.path is not None:
            try:
                loaded = load_checkpoint(status.path, args.device, status.entry.classes)
                described[status.entry.name] = loaded.describe()
            except SefaError as error:
                state, reason = "error", str(error)
        rows.append((status.entry.name, state, reason))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, state, reason in rows:
        print(f"{name:<{widths[0]}}  {state:<{widths[1]}}  {reason}".rstrip())
        for key, value in described.get(name, {}).items():
            print(f"    {key:<20} {value}")
    return 0


# ---- sefa convert -------------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace, config: AppConfig) -> int:
    with _progress_bar(None, "converting"):
        conversion = convert_file(args.input, args.output)
    tensors = f"{len(conversion.state)} tensors under {conversion.target} names"
    print(f"{args.output}: {conversion.source_format}, {tensors}")
    return 0


# ---- sefa factorize -----------------------------------------------------------------------
def cmd_factorize(args: argparse.Namespace, config: AppConfig) -> int:
    started = time.perf_counter()
    generator, _, name = _load(args.model, args.device, config)
    with _progress_bar(None, "sampling codes") as bar:  # PCA only; SeFa is closed-form
        semantics = factorize(
            generator, args.layers, method=args.method, samples=args.samples, progress=_advance(bar)
        )
    buffer = io.BytesIO()
    np.savez(
        buffer,
        directions=semantics.directions.astype(np.float64),  # (D, direction_dim), one unit row each
        eigenvalues=semantics.eigenvalues.astype(np.float64),  # for PCA the variances
        layers=np.asarray(semantics.layers, dtype=np.int64),
        method=np.str_(semantics.method),
        layer_energy=semantics.layer_energy.astype(np.float64),  # (D, len(layers)): ‖Â_l n‖² per layer
        digest=np.str_(semantics.digest),
        spec=np.str_(semantics.spec),
        model=np.str_(name),
    )
    out = atomic_write_bytes(args.output, buffer.getvalue())
    top = ", ".join(f"{v:.3f}" for v in semantics.eigenvalues[:5])
    count = len(semantics.eigenvalues)
    what = "variances" if semantics.method == "pca" else "eigenvalues"
    print(f"{name}: {semantics.method}, layers {semantics.layer_spec}, {count} directions; top {what} {top}")
    print(f"wrote {out} in {time.perf_counter() - started:.2f} s")
    return 0


# ---- sefa render --------------------------------------------------------------------------
def cmd_render(args: argparse.Namespace, config: AppConfig) -> int:
    started = time.perf_counter()
    generator, entry, name = _load(args.model, args.device, config)
    semantics = factorize(generator, args.layers)
    num_semantics = _num_semantics(args, entry, semantics)
    semantic_indices = list(range(num_semantics))
    trunc_psi, trunc_layers = _truncation(args, entry)
    conditioning = _conditioning(args, generator, trunc_psi)  # the codes are sampled with it too
    if args.codes:
        codes = load_codes(args.codes, generator)[: args.num_samples]
        origin = f"codes-{_slug(Path(args.codes).stem)}"
    else:
        num_samples = args.num_samples or DEFAULT_NUM_SAMPLES
        codes = generator.sample(num_samples, args.seed, trunc_psi, trunc_layers, **conditioning)
        origin = f"seed{args.seed}"
    steps = evenly_spaced(args.start, args.end, args.steps)

    total = len(codes) * num_semantics * len(steps)
    with _progress_bar(total, "render") as bar:
        pixels = render_traversals(
            generator,
            codes,
            semantics,
            semantic_indices,
            steps,
            batch_size=args.batch_size,
            progress=_advance(bar),
            conditioning=conditioning,
        )  # (N, K, S, H, W, 3)

    out = Path(args.out)
    prefix = f"{_slug(name)}_N{len(codes)}_K{num_semantics}_L{_slug(args.layers)}_{origin}"
    title = f"{name} · layers {semantics.layer_spec} · {origin} · trunc_psi {trunc_psi}"
    pages = {"sample_first": sample_first_html, "semantic_first": semantic_first_html}
    for kind, page in pages.items():
        html = page(pixels, semantics, semantic_indices, steps, title=title, viz_size=args.viz_size)
        print(f"wrote {atomic_write_text(out / f'{prefix}_{kind}.html', html)}")
    cells = downscale(pixels, args.grid_cell)  # (N, K, S, h, w, 3)
    for n in range(len(codes)):  # one sample: K rows (semantics) x S columns (distances)
        atomic_write_bytes(out / f"{prefix}_sample_{n:03d}.png", encode_image(image_grid(cells[n]), "PNG"))
    for position, k in enumerate(semantic_indices):  # one semantic: N rows (samples) x S columns
        grid = encode_image(image_grid(cells[:, position]), "PNG")
        atomic_write_bytes(out / f"{prefix}_semantic_{k:03d}.png", grid)
        if args.gif:  # every sample side by side, one frame a distance, there and back
            frames = np.stack([image_grid(cells[None, :, position, s]) for s in range(len(steps))])
            gif = gif_bytes(frames, args.gif_ms, pingpong=True)
            atomic_write_bytes(out / f"{prefix}_semantic_{k:03d}.gif", gif)
    gifs = f" and {num_semantics} GIFs" if args.gif else ""
    print(f"wrote {len(codes) + num_semantics} PNG grids{gifs} as {out / prefix}_*")
    print(
        f"rendered {total} images ({len(codes)} samples x {num_semantics} semantics x {len(steps)} steps) "
        f"on {generator.device} in {time.perf_counter() - started:.2f} s"
    )
    return 0


# ---- sefa apply ---------------------------------------------------------------------------
def cmd_apply(args: argparse.Namespace, config: AppConfig) -> int:
    started = time.perf_counter()
    recipe = read_recipe(args.recipe)
    output = Path(args.output)
    image_format = _image_format(output)
    generator, _, _ = _load(args.model or recipe.model, args.device, config)
    codes = recipe_codes(recipe, generator)
    images = to_uint8(generator.synthesize(codes, **recipe.synthesis_kwargs))  # (N, H, W, 3)
    picture = images[0] if len(images) == 1 else image_grid(images[None])
    print(f"wrote {atomic_write_bytes(output, encode_image(picture, image_format, quality=95))}")
    if args.codes_out:
        print(f"wrote {save_codes(args.codes_out, codes)}")
    print(f"replayed {len(images)} image(s) in {time.perf_counter() - started:.2f} s")
    return 0


# ---- sefa pick-codes ----------------------------------------------------------------------
def cmd_pick_codes(args: argparse.Namespace, config: AppConfig) -> int:
    started = time.perf_counter()
    generator, entry, name = _load(args.model, args.device, config)
    trunc_psi, trunc_layers = _truncation(args, entry)
    with _progress_bar(None, "score") as bar:
        picked = pick_clean_codes(
            generator,
            args.count,
            pool=args.pool,
            seed=args.seed,
            trunc_psi=trunc_psi,
            trunc_layers=trunc_layers,
            batch_size=args.batch_size,
            progress=_advance(bar),
            conditioning=_conditioning(args, generator, trunc_psi),
        )
    print(f"wrote {save_codes(args.output, torch.from_numpy(picked.codes))} ({picked.codes.shape})")
    if args.sheet:
        sheet = contact_sheet(picked.images, args.columns)
        print(f"wrote {atomic_write_bytes(args.sheet, encode_image(sheet, 'PNG'))}")
    print(f"{name}: picked {args.count} of {args.pool} codes in {time.perf_counter() - started:.2f} s")
    return 0


# ---- sefa invert --------------------------------------------------------------------------
def cmd_invert(args: argparse.Namespace, config: AppConfig) -> int:
    started = time.perf_counter()
    photo = load_photo(args.image)  # a broken file fails before the model loads
    generator, _, name = _load(args.model, args.device, config)
    with _progress_bar(args.steps, "invert") as bar:
        bar.unit = "step"
        inversion = invert_image(generator, photo, args.steps, args.restarts, args.seed, _advance(bar))
    print(f"wrote {save_codes(args.output, inversion.code)} ({tuple(inversion.code.shape)})")
    if args.target_out:
        print(f"wrote {atomic_write_bytes(args.target_out, encode_image(inversion.target, 'PNG'))}")
    print(f"{name}: inverted {args.image} in {time.perf_counter() - started:.2f} s")
    print(f"invert: PSNR {inversion.psnr:.2f} dB after {inversion.steps} steps")
    return 0


# ---- sefa serve ---------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, config: AppConfig) -> int:
    """Replicas of the editor behind nginx until SIGTERM or Ctrl-C (see ``sefa_core.serve``)."""
    config_file = Path(args.config) if args.config else None
    return serve(ServeOptions(args.replicas, args.port, args.host, config_file))


# ---- sefa sweep ---------------------------------------------------------------------------
def cmd_sweep(args: argparse.Namespace, config: AppConfig) -> int:
    """Shards of (seeds x semantics x steps) per model, on Ray or here (see ``sefa_core.sweep``)."""
    started = time.perf_counter()
    seeds, out = parse_seeds(args.seeds), Path(args.out)
    models = []
    for model in args.model:  # loaded here first, so that a model that fails stops the sweep at once
        generator, entry, name = _load(model, args.device if args.local else "cpu", config)
        num_semantics = _num_semantics(args, entry, factorize(generator, args.layers))
        truncation = _truncation(args, entry)
        conditioning = _conditioning(args, generator, truncation[0])
        models.append(
            prepare_model(generator, _slug(name), args.layers, num_semantics, *truncation, conditioning)
        )
    settings = SweepSettings(
        tuple(model.spec for model in models), seeds, args.start, args.end, args.steps, args.shard_size
    )
    claim_folder(out, settings)  # refuse a folder of another sweep before Ray starts
    if args.local:
        loaded = {model.spec.name: model for model in models}
        worker = ShardWorker(settings, out, batch_size=args.batch_size, loaded=loaded)
        engine: AbstractContextManager[Engine] = nullcontext(LocalEngine(worker))
    else:
        engine = ray_engine(
            settings,
            out,
            workers=args.workers,
            address=args.address,
            device=args.device,
            batch_size=args.batch_size,
        )
    try:
        with engine as chosen, _progress_bar(None, "sweep") as bar:
            report = run_sweep(settings, out, chosen, progress=_advance(bar))
    except KeyboardInterrupt:
        print(f"sweep: stopped; {out / MANIFEST_FILE} lists the shards that are complete", file=sys.stderr)
        raise
    print(report.line(time.perf_counter() - started))
    return 0


# ---- the parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sefa", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="config.yaml to read (default: $SEFA_CONFIG or ./config.yaml)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    # --debug also works after the command; SUPPRESS keeps a sub-parser from resetting it.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=[debug])
        sub.add_argument(
            "--device", choices=DEVICE_CHOICES, default="auto", help="where to run (default: auto)"
        )
        return sub

    def model_options(sub: argparse.ArgumentParser, nargs: str | None = None) -> None:
        sub.add_argument(
            "model", metavar="MODEL", nargs=nargs, help="a name from config.yaml or a checkpoint path"
        )
        sub.add_argument(
            "--trunc-psi", type=float, help="truncation psi (default: the model's config, else 1)"
        )
        sub.add_argument(
            "--trunc-layers", type=int, help="W+ rows to truncate (default: the config's, else all)"
        )
        sub.add_argument("--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, help="images per batch")
        sub.add_argument("--class-index", type=int, help="class of a class-conditional model (default: 0)")

    models = command("models", "list the configured models and whether they can be loaded")
    models.add_argument("-v", "--verbose", action="store_true", help="load each model and describe it")
    models.set_defaults(run=cmd_models)

    fact = command("factorize", "run SeFa and save the directions as .npz")
    fact.add_argument("model", metavar="MODEL", help="a name from config.yaml or a checkpoint path")
    fact.add_argument("-L", "--layers", default="all", help="layer spec such as 'all', '0-1', '2,4,6-8'")
    fact.add_argument("-o", "--output", required=True, help="the .npz to write")
    fact.add_argument("--method", choices=METHODS, default="sefa", help="sefa, or GANSpace's PCA baseline")
    fact.add_argument(
        "--samples", type=_positive, default=DEFAULT_PCA_SAMPLES, help="codes PCA samples (default: 10000)"
    )
    fact.set_defaults(run=cmd_factorize)

    def traversal_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-L", "--layers", default="all", help="layer spec such as 'all', '0-1', '2,4,6-8'")
        sub.add_argument(
            "-K", "--num-semantics", type=_positive, help="semantics (default: the model's config)"
        )
        sub.add_argument("--start", type=float, default=DEFAULT_START, help="first distance (default: -3)")
        sub.add_argument("--end", type=float, default=DEFAULT_END, help="last distance (default: 3)")
        sub.add_argument("--steps", type=_positive, default=DEFAULT_STEPS, help="distances (default: 11)")

    render = command("render", "render traversals: the two HTML pages of the reference, PNG grids, GIFs")
    model_options(render)
    traversal_options(render)
    render.add_argument("-N", "--num-samples", type=_positive, help="samples (default: 5, or all of --codes)")
    render.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    render.add_argument("--codes", help="a .npy of codes to start from instead of sampling")
    render.add_argument("--out", default="results", help="output folder (default: results)")
    render.add_argument("--gif", action="store_true", help="also write one animated GIF per semantic")
    render.add_argument("--gif-ms", type=_positive, default=80, help="milliseconds per GIF frame")
    render.add_argument("--viz-size", type=_positive, default=DEFAULT_VIZ_SIZE, help="px per HTML cell")
    render.add_argument("--grid-cell", type=_positive, default=DEFAULT_GRID_CELL, help="max px per grid cell")
    render.set_defaults(run=cmd_render)

    apply = command("apply", "replay an edit recipe (.yaml) into an image")
    apply.add_argument("recipe", help="the recipe .yaml")
    apply.add_argument("-o", "--output", required=True, help="the image to write (.png, .jpg, .webp)")
    apply.add_argument("--codes-out", help="also save the edited codes as .npy")
    apply.add_argument("--model", help="load this name or path instead of the recipe's model")
    apply.set_defaults(run=cmd_apply)

    pick = command("pick-codes", "pick clean, diverse prepared codes (see latent_codes/README.md)")
    model_options(pick)
    pick.add_argument("-n", "--count", type=_positive, default=DEFAULT_PICK_COUNT, help="codes to keep")
    pick.add_argument("-o", "--output", required=True, help="the .npy to write")
    pick.add_argument("--pool", type=_positive, default=DEFAULT_PICK_POOL, help="codes to sample and score")
    pick.add_argument("--seed", type=int, default=0, help="seed of the pool (default: 0)")
    pick.add_argument("--sheet", help="also write a contact sheet PNG of the picked faces")
    pick.add_argument("--columns", type=_positive, default=6, help="columns of the contact sheet")
    pick.set_defaults(run=cmd_pick_codes)

    invert = command("invert", "find the code of a photo, so that the sliders can edit it")
    invert.add_argument("model", metavar="MODEL", help="a name from config.yaml or a checkpoint path")
    invert.add_argument("image", metavar="IMAGE", help="the photo (centre-cropped to a square)")
    invert.add_argument("-o", "--output", required=True, help="the .npy code to write, (1, *code_shape)")
    invert.add_argument(
        "--steps", type=_positive, default=DEFAULT_INVERT_STEPS, help="optimiser steps (default: 500)"
    )
    invert.add_argument(
        "--restarts", type=_positive, default=DEFAULT_RESTARTS, help="random starts of z codes (default: 8)"
    )
    invert.add_argument("--seed", type=int, default=0, help="seed of the starts (default: 0)")
    invert.add_argument("--target-out", help="also write the cropped photo the code was fitted to (.png)")
    invert.set_defaults(run=cmd_invert)

    sweep = command("sweep", "render every semantic x a range of seeds x several models as shards, on Ray")
    model_options(sweep, nargs="+")
    traversal_options(sweep)
    sweep.add_argument("--seeds", required=True, help="seeds A-B, both included, e.g. 0-999")
    sweep.add_argument("--out", required=True, help="output folder; a rerun into it resumes")
    sweep.add_argument(
        "--shard-size", type=_positive, default=DEFAULT_SHARD_SIZE, help="seeds per shard file (default: 8)"
    )
    sweep.add_argument("--workers", type=_positive, help="Ray workers (default: the CPU or GPU count)")
    engine = sweep.add_mutually_exclusive_group()
    engine.add_argument("--address", help="join this Ray cluster ('auto', 'ray://host:port')")
    engine.add_argument("--local", action="store_true", help="run in this process, without Ray")
    sweep.set_defaults(run=cmd_sweep)

    convert = command("convert", "convert a TensorFlow pickle once, into a .safetensors for other tools")
    convert.add_argument("input", metavar="IN", help="the TensorFlow .pkl (PGGAN, StyleGAN, StyleGAN2)")
    convert.add_argument("output", metavar="OUT", help="the .safetensors to write")
    convert.set_defaults(run=cmd_convert)

    serve_help = "run N replicas of the editor behind nginx (stop with Ctrl-C or SIGTERM)"
    serving = commands.add_parser("serve", help=serve_help, description=serve_help, parents=[debug])
    serving.add_argument("--replicas", type=_positive, default=2, help="Streamlit replicas (default: 2)")
    serving.add_argument("--port", type=_positive, default=8501, help="nginx's public port (default: 8501)")
    serving.add_argument("--host", default=LOOPBACK, help="nginx's address (default: 127.0.0.1)")
    serving.set_defaults(run=cmd_serve)
    return parser


def console() -> None:
    """The installed ``sefa`` command: a process of its own that renders in batches, so it keeps
    freed memory for the next batch (``device.keep_freed_memory``), then runs ``main``."""
    keep_freed_memory()
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sefa`` command; returns the exit code (0, 1 unexpected, 2 a user's error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own usage error (code 2)
        return int(exit_.code or 0)
    with _debug_log(args.debug):
        try:
            return args.run(args, load_config(args.config))
        except (SefaError, OSError) as error:
            log.debug("sefa %s failed", args.command, exc_info=True)
            print(f"sefa: error: {' '.join(str(error).split())}", file=sys.stderr)
            return USAGE_ERROR
        except KeyboardInterrupt:
            print("sefa: interrupted", file=sys.stderr)
            return INTERRUPTED
        except Exception as error:  # noqa: BLE001 - one line for users; the traceback with --debug
            log.debug("sefa %s failed unexpectedly", args.command, exc_info=True)
            problem = " ".join(f"{type(error).__name__}: {error}".split())
            print(f"sefa: unexpected error: {problem} (rerun with --debug)", file=sys.stderr)
            return UNEXPECTED_ERROR


@contextmanager
def _debug_log(enabled: bool) -> Iterator[None]:
    """With ``--debug``, sefa_core's debug log (tracebacks included) goes to stderr while the command runs."""
    if not enabled:
        yield
        return
    package = logging.getLogger("sefa_core")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    previous = package.level
    package.addHandler(handler)
    package.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(previous)


if __name__ == "__main__":
    console()
