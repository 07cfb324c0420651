"""Sweeps: every chosen semantic x a range of seeds x several models, as shard files, on Ray or here.

A sweep is planned as shards (one model, a run of consecutive seeds); each shard is rendered
exactly as ``sefa render`` would render those seeds (``generator.sample(1, seed)``, walked along
``linspace(start, end, steps)``) and written atomically as ``DIR/<model>/seeds-<a>-<b>.npz``. A
line is appended to ``DIR/manifest.jsonl`` only once its file is complete, so a rerun with the same
arguments (recorded in ``DIR/sweep.json``) computes only what is missing or damaged.

On Ray, each worker is an actor that loads each model once (from its path, or from bytes in the
object store when it joins a cluster whose nodes may not hold the file) and factorizes it once; a
killed actor restarts and its task is retried. Ray is imported only when a sweep uses it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from sefa_core.atomic import atomic_write_bytes, atomic_write_text
from sefa_core.device import keep_freed_memory
from sefa_core.editing import distances as evenly_spaced
from sefa_core.errors import CheckpointError, SefaError
from sefa_core.factorize import Semantics, factorize
from sefa_core.formats import load_checkpoint
from sefa_core.models.base import DEFAULT_TRUNC_PSI, Generator
from sefa_core.render import DEFAULT_BATCH_SIZE, Progress, render_traversals

SWEEP_FILE = "sweep.json"  # the arguments a folder's sweep was started with
MANIFEST_FILE = "manifest.jsonl"  # one line per complete shard
SWEEP_VERSION = 1
DEFAULT_SHARD_SIZE = 8  # seeds per shard: K x S images each (880 for the default model)
MAX_SEED = 2**32 - 1  # numpy's RandomState takes seeds in [0, 2**32)
WORKER_THREADS = 1  # torch threads per Ray worker: one worker per core, not cores squared
WORKER_RESTARTS = 8  # how often a killed worker comes back
TASK_RETRIES = 8  # how often a shard lost with its worker is sent again
HASH_THREADS = 8  # files checked at once on a resume: enough to keep a disk or a shared filesystem busy
WORKER_NAME = "sefa-sweep"  # Ray actor names: sefa-sweep-<run>-<index>
_SEEDS = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


# ---- what a sweep is ------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedRange:
    """Seeds ``first`` to ``last``, both included."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.last <= MAX_SEED:
            raise SefaError(f"--seeds {self}: expected A-B with 0 <= A <= B <= {MAX_SEED}")

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.first, self.last + 1))


def parse_seeds(text: str) -> SeedRange:
    """``"0-999"`` (both ends included) or ``"7"`` -> a ``SeedRange``."""
    match = _SEEDS.fullmatch(text)
    if match is None:
        raise SefaError(f"--seeds {text!r}: expected A-B such as 0-999, or one seed")
    first = int(match.group(1))
    return SeedRange(first, int(match.group(2) or first))


@dataclass(frozen=True)
class SweepModel:
    """One model of a sweep as the driver resolved it: what workers load and ``sweep.json`` records."""

    name: str  # its shards go to DIR/<name>/
    path: str  # the checkpoint file
    digest: str  # its sha256: a worker refuses a file that changed since
    layers: str  # the layer spec as given
    layer_spec: str  # the factorizable layers it resolved to
    num_semantics: int
    trunc_psi: float
    trunc_layers: int | None
    conditioning: tuple[tuple[str, Any], ...] = ()  # Generator.synthesize keywords (class-conditional)

    def record(self) -> dict[str, Any]:
        """What must match for a rerun to reuse shards; not the path (a moved file is the same model)."""
        record = asdict(self)
        del record["path"]
        record["conditioning"] = dict(self.conditioning)
        return record


@dataclass(frozen=True)
class Shard:
    """One task: a model and a run of its seeds."""

    model: str
    seeds: SeedRange

    @property
    def file(self) -> str:
        """Where it goes, relative to the sweep's folder."""
        return f"{self.model}/seeds-{self.seeds}.npz"


@dataclass(frozen=True)
class SweepSettings:
    """Everything that decides the output of a sweep."""

    models: tuple[SweepModel, ...]
    seeds: SeedRange
    start: float
    end: float
    steps: int
    shard_size: int = DEFAULT_SHARD_SIZE

    def __post_init__(self) -> None:
        names = [model.name for model in self.models]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise SefaError(f"two models are named {twice[0]!r}; their shards would share DIR/{twice[0]}/")
        if not self.models or self.steps < 1 or self.shard_size < 1:
            raise SefaError("a sweep needs at least one model, one step and one seed per shard")

    @property
    def alphas(self) -> list[float]:
        return evenly_spaced(self.start, self.end, self.steps)

    def model(self, name: str) -> SweepModel:
        return next(model for model in self.models if model.name == name)

    def shards(self) -> list[Shard]:
        """Model-major, ``shard_size`` consecutive seeds each (the last of a model may be short)."""
        firsts = range(self.seeds.first, self.seeds.last + 1, self.shard_size)
        return [
            Shard(model.name, SeedRange(first, min(first + self.shard_size - 1, self.seeds.last)))
            for model in self.models
            for first in firsts
        ]

    def images_per_seed(self, name: str) -> int:
        return self.model(name).num_semantics * self.steps

    def record(self) -> dict[str, Any]:
        """What ``sweep.json`` holds."""
        return {
            "version": SWEEP_VERSION,
            "seeds": str(self.seeds),
            "start": self.start,
            "end": self.end,
            "steps": self.steps,
            "shard_size": self.shard_size,
            "models": [model.record() for model in self.models],
        }


@dataclass(frozen=True)
class ShardRecord:
    """A manifest line: one complete shard file and its checksum."""

    model: str
    layers: str
    seeds: tuple[int, int]
    file: str
    sha256: str
    count: int  # images in the file

    def line(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, line: str) -> ShardRecord | None:
        """A manifest line back, or None for one torn by a crash or not written by a sweep."""
        try:
            data = json.loads(line)
            first, last = data["seeds"]
            return cls(
                str(data["model"]),
                str(data["layers"]),
                (int(first), int(last)),
                str(data["file"]),
                str(data["sha256"]),
                int(data["count"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


# ---- rendering one shard ----------------------------------------------------------------------
@dataclass(frozen=True)
class LoadedModel:
    """A model ready to render shards: loaded and factorized once."""

    spec: SweepModel
    generator: Generator
    semantics: Semantics


def prepare_model(
    generator: Generator,
    name: str,
    layers: str,
    num_semantics: int,
    trunc_psi: float = DEFAULT_TRUNC_PSI,
    trunc_layers: int | None = None,
    conditioning: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """A loaded generator as one model of a sweep: factorized, and its file named by path and digest."""
    semantics = factorize(generator, layers)
    spec = SweepModel(
        name,
        generator.source_path,
        generator.digest,
        layers,
        semantics.layer_spec,
        num_semantics,
        trunc_psi,
        trunc_layers,
        tuple(sorted((conditioning or {}).items())),
    )
    return LoadedModel(spec, generator, semantics)


def load_model(spec: SweepModel, path: str | Path, device: str) -> LoadedModel:
    """Load and factorize ``spec`` from ``path``, which must still be the file the sweep started with."""
    generator = load_checkpoint(path, device)
    if generator.digest != spec.digest:
        raise CheckpointError(spec.path, f"changed since the sweep started (sha256 {generator.digest[:16]})")
    return LoadedModel(spec, generator, factorize(generator, spec.layers))


def shard_npz(model: LoadedModel, seeds: SeedRange, alphas: Sequence[float], batch_size: int) -> bytes:
    """The ``.npz`` of one shard: each seed's code walked along each semantic, as ``sefa render`` does."""
    spec, generator = model.spec, model.generator
    conditioning = dict(spec.conditioning)  # sampled with the class the images are drawn with
    codes = torch.cat(
        [generator.sample(1, seed, spec.trunc_psi, spec.trunc_layers, **conditioning) for seed in seeds]
    )  # (n, *code_shape)
    semantic_indices = list(range(spec.num_semantics))
    images = render_traversals(
        generator,
        codes,
        model.semantics,
        semantic_indices,
        alphas,
        batch_size=batch_size,
        conditioning=conditioning,
    )  # (n, K, S, H, W, 3)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        images=images,
        seeds=np.asarray(list(seeds), dtype=np.int64),
        alphas=np.asarray(alphas, dtype=np.float32),
        semantics=np.asarray(semantic_indices, dtype=np.int64),
        eigenvalues=model.semantics.eigenvalues[: spec.num_semantics],
    )
    return buffer.getvalue()


class ShardWorker:
    """Renders shards into the sweep's folder; on Ray, one actor of this class per worker.

    ``sources`` give each model's checkpoint as a path, or as ``[ObjectRef]`` of its bytes (a list,
    so that Ray hands the reference over instead of the bytes before they are needed). Models in
    ``loaded`` are used as they are; the others are loaded on their first shard, once.
    """

    def __init__(
        self,
        settings: SweepSettings,
        out: str | Path,
        *,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        sources: Mapping[str, Any] | None = None,
        loaded: Mapping[str, LoadedModel] | None = None,
        own_process: bool = False,
    ) -> None:
        """``own_process``: this worker is its process's only work (a Ray actor), so it sets the
        process's torch threads and keeps freed memory (``device.keep_freed_memory``)."""
        if own_process:
            torch.set_num_threads(WORKER_THREADS)
            keep_freed_memory()
        self.settings, self.out, self.device, self.batch_size = settings, Path(out), device, batch_size
        self.sources = dict(sources or {})
        self.loaded = dict(loaded or {})

    def render(self, shard: Shard) -> ShardRecord:
        """Render ``shard``, write its file atomically and say what the manifest should record."""
        model = self.loaded.get(shard.model) or self._load(shard.model)
        data = shard_npz(model, shard.seeds, self.settings.alphas, self.batch_size)
        atomic_write_bytes(self.out / shard.file, data)
        return ShardRecord(
            shard.model,
            model.semantics.layer_spec,
            (shard.seeds.first, shard.seeds.last),
            shard.file,
            hashlib.sha256(data).hexdigest(),
            len(shard.seeds) * self.settings.images_per_seed(shard.model),
        )

    def _load(self, name: str) -> LoadedModel:
        spec = self.settings.model(name)
        source = self.sources.get(name, spec.path)
        if isinstance(source, (str, Path)):
            model = load_model(spec, source, self.device)
        else:  # the file's bytes, from the object store: a node of a cluster need not hold the file
            import ray

            with tempfile.TemporaryDirectory(prefix="sefa-sweep-") as folder:
                path = Path(folder) / Path(spec.path).name
                path.write_bytes(ray.get(source[0]))
                model = load_model(spec, path, self.device)
        self.loaded[name] = model
        return model


# ---- engines: where shards are rendered -------------------------------------------------------
class Engine(Protocol):
    label: str  # "this process", "ray with 2 workers": the end of the sweep's last line

    def render(self, shards: Sequence[Shard]) -> Iterator[ShardRecord]:
        """Render every shard, yielding each record as its file is complete (in any order)."""
        ...


@dataclass
class LocalEngine:
    """Shards one after another in this process (``--local``): for comparison and tiny jobs."""

    worker: ShardWorker
    label: str = "this process"

    def render(self, shards: Sequence[Shard]) -> Iterator[ShardRecord]:
        return map(self.worker.render, shards)


@dataclass
class RayEngine:
    """Shards spread over Ray actors, each given the next shard as soon as it finishes one."""

    actors: list[Any]
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = f"ray with {len(self.actors)} workers"

    def render(self, shards: Sequence[Shard]) -> Iterator[ShardRecord]:
        from ray.exceptions import RayTaskError
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        try:
            yield from pool.map_unordered(lambda actor, shard: actor.render.remote(shard), shards)
        except RayTaskError as error:  # a worker's SefaError or OSError reaches the user as its one line
            if isinstance(error.cause, (SefaError, OSError)):
                raise error.cause from error
            raise


@contextmanager
def ray_engine(
    settings: SweepSettings,
    out: str | Path,
    *,
    workers: int | None = None,
    address: str | None = None,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[RayEngine]:
    """Ray workers for ``settings``: on the cluster this process already joined, else on a new one.

    Without ``address`` Ray starts a local cluster of ``workers`` CPUs (default: all); with it
    (``auto``, ``ray://host:port``) it joins a cluster, ships each checkpoint through the object
    store, and runs one worker per GPU (else per CPU) unless ``workers`` says otherwise. ``out``
    must be a folder every node can write (a shared filesystem) on a cluster of several machines.
    """
    import ray  # ~1 s to import: only sweeps that use Ray pay for it

    owned = not ray.is_initialized()
    if owned:
        local_cpus = (workers or os.cpu_count()) if address is None else None
        try:
            ray.init(
                address=address,
                num_cpus=local_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, ValueError, RuntimeError) as error:  # no cluster there, or no client
            raise SefaError(f"--address {address}: {error}" if address else f"Ray: {error}") from error
    actors: list[Any] = []
    try:
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0) if device != "cpu" else 0.0
        count = workers or int(gpus) or int(cpus)
        # More workers than devices share them; an actor asking for a whole one would wait forever.
        cpu_share, gpu_share = min(1.0, cpus / count), min(1.0, gpus / count)
        sources: dict[str, Any] = {model.name: model.path for model in settings.models}
        if address is not None:
            sources = {model.name: [ray.put(Path(model.path).read_bytes())] for model in settings.models}
        worker, run = ray.remote(ShardWorker), secrets.token_hex(4)
        actors = [
            worker.options(
                name=f"{WORKER_NAME}-{run}-{index}",
                num_cpus=cpu_share,
                num_gpus=gpu_share,
                max_restarts=WORKER_RESTARTS,
                max_task_retries=TASK_RETRIES,
            ).remote(
                settings,
                str(Path(out).resolve()),
                device=device,
                batch_size=batch_size,
                sources=sources,
                own_process=True,
            )
            for index in range(count)
        ]
        yield RayEngine(actors)
    finally:
        if owned:
            ray.shutdown()  # our actors end with the cluster
        else:  # the caller's cluster: free the CPUs (or GPUs) our actors hold
            for actor in actors:
                ray.kill(actor, no_restart=True)


# ---- the folder: arguments, manifest, resume --------------------------------------------------
@dataclass(frozen=True)
class SweepReport:
    """What a sweep did, for its last line."""

    images: int
    shards: int
    new: int
    reused: int
    engine: str

    def line(self, seconds: float) -> str:
        return (
            f"sweep: {self.images} images in {self.shards} shards ({self.new} new, {self.reused} reused) "
            f"on {self.engine} in {seconds:.2f} s"
        )


def claim_folder(out: Path, settings: SweepSettings) -> None:
    """Record the sweep's arguments in ``out``, or refuse a folder that holds a sweep of others."""
    path = out / SWEEP_FILE
    wanted = json.loads(json.dumps(settings.record()))  # as it reads back: lists, not tuples
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise SefaError(f"{path}: not a sweep's record ({error})") from error
        difference = _first_difference(found, wanted)
        if difference:
            raise SefaError(
                f"{out} holds a sweep with other arguments ({difference}); rerun those or use another --out"
            )
        return
    atomic_write_text(path, json.dumps(wanted, indent=2) + "\n")


def _first_difference(found: Any, wanted: Any, where: str = "") -> str:
    """``"models[0].num_semantics: 10 there, 5 now"``, or "" when both are the same."""
    if isinstance(found, dict) and isinstance(wanted, dict):
        for key in [*wanted, *(key for key in found if key not in wanted)]:
            inner = _first_difference(found.get(key), wanted.get(key), f"{where}.{key}".lstrip("."))
            if inner:
                return inner
        return ""
    if isinstance(found, list) and isinstance(wanted, list) and len(found) == len(wanted):
        pairs = enumerate(zip(found, wanted, strict=True))
        return next((d for i, (f, w) in pairs if (d := _first_difference(f, w, f"{where}[{i}]"))), "")
    return "" if found == wanted else f"{where or 'record'}: {found} there, {wanted} now"


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def complete_shards(out: Path, shards: Sequence[Shard]) -> dict[str, ShardRecord]:
    """The manifest's records of ``shards`` whose files are there with their sha256 (by file).

    Files are hashed on several threads (hashlib lets go of the GIL): a resume re-reads every
    shard, terabytes for a large sweep.
    """
    path = out / MANIFEST_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    records = {record.file: record for record in map(ShardRecord.parse, lines) if record is not None}
    listed = [records[shard.file] for shard in shards if shard.file in records]

    def intact(record: ShardRecord) -> bool:
        target = out / record.file
        return target.is_file() and file_sha256(target) == record.sha256

    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        checks = pool.map(intact, listed)
        return {record.file: record for record, ok in zip(listed, checks, strict=True) if ok}


def append_record(out: Path, record: ShardRecord) -> None:
    """One manifest line, on disk before the next shard counts as done."""
    with (out / MANIFEST_FILE).open("a", encoding="utf-8") as stream:
        stream.write(record.line() + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def run_sweep(
    settings: SweepSettings, out: str | Path, engine: Engine, progress: Progress | None = None
) -> SweepReport:
    """Render the shards of ``settings`` that ``out`` lacks; ``progress(images done, images to do)``.

    The manifest is first rewritten with only the complete shards (a torn last line, a truncated or
    altered file drop out), then a line is appended as each new shard's file is complete. Ctrl-C
    (``KeyboardInterrupt``) therefore leaves only complete shards listed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_folder(out, settings)
    shards = settings.shards()
    complete = complete_shards(out, shards)
    atomic_write_text(out / MANIFEST_FILE, "".join(record.line() + "\n" for record in complete.values()))
    todo = [shard for shard in shards if shard.file not in complete]
    total = sum(len(shard.seeds) * settings.images_per_seed(shard.model) for shard in todo)
    done = 0
    if progress is not None:
        progress(done, total)
    for record in engine.render(todo):
        append_record(out, record)
        done += record.count
        if progress is not None:
            progress(done, total)
    images = sum(len(shard.seeds) * settings.images_per_seed(shard.model) for shard in shards)
    return SweepReport(images, len(shards), len(todo), len(complete), engine.label)
