"""Latent-code files (``.npy``): prepared codes, uploads and exports.

Always read with ``allow_pickle=False``. A file may hold edit-space codes (N, *code_shape), one
code (*code_shape), or z codes (N, latent_dim) that are mapped into the edit space.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sefa_core.atomic import atomic_write_bytes
from sefa_core.errors import CodeFileError
from sefa_core.models.base import DEFAULT_TRUNC_PSI, Generator
from sefa_core.render import to_uint8

NPY_MAGIC = b"\x93NUMPY"  # every .npy file starts with these bytes
MAX_CODE_FILE_BYTES = 64 * 1024 * 1024  # 64 MiB: far more than any sensible set of codes


def read_code_array(source: str | Path | bytes, name: str = "") -> np.ndarray:
    """A float array from an ``.npy`` path or its bytes; pickles and oversize files refused."""
    label = name or (str(source) if not isinstance(source, bytes) else "upload")
    if isinstance(source, bytes):
        size, stream = len(source), io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise CodeFileError(f"{label}: no such file")
        size, stream = path.stat().st_size, path.open("rb")
    if size > MAX_CODE_FILE_BYTES:
        raise CodeFileError(f"{label}: {size} bytes is over the {MAX_CODE_FILE_BYTES} byte limit")
    try:
        with stream:
            if stream.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise CodeFileError(f"{label}: not a .npy file (it does not start with the .npy header)")
            stream.seek(0)
            array = np.load(stream, allow_pickle=False)
    except CodeFileError:
        raise
    except ValueError as error:
        raise CodeFileError(
            f"{label}: not a plain .npy array ({str(error).splitlines()[0][:120]})"
        ) from error
    except Exception as error:  # noqa: BLE001 - corrupt files of every kind become one line
        raise CodeFileError(f"{label}: not a readable .npy file ({type(error).__name__})") from error
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise CodeFileError(f"{label}: codes must be numbers, got dtype {getattr(array, 'dtype', '?')}")
    if not np.all(np.isfinite(array)):
        raise CodeFileError(f"{label}: codes contain NaN or Inf")
    return array.astype(np.float32)


def codes_for_generator(array: np.ndarray, generator: Generator, label: str = "codes") -> torch.Tensor:
    """Fit an array to ``generator``'s edit space: (N, *code_shape) on its device."""
    shape = generator.code_shape
    if tuple(array.shape) == shape:
        array = array[None]  # one code -> a batch of one
    if tuple(array.shape[1:]) == shape:
        return torch.from_numpy(np.ascontiguousarray(array)).to(generator.device)
    if array.ndim == 2 and array.shape[1] == generator.latent_dim:
        return generator.to_edit_space(torch.from_numpy(np.ascontiguousarray(array)))
    expected = f"(N, {', '.join(map(str, shape))})"
    if shape != (generator.latent_dim,):
        expected += f" or z codes (N, {generator.latent_dim})"
    raise CodeFileError(f"{label}: shape {tuple(array.shape)} does not fit this model; expected {expected}")


def load_codes(source: str | Path | bytes, generator: Generator, name: str = "") -> torch.Tensor:
    """Read and validate a code file for ``generator``."""
    label = name or (str(source) if not isinstance(source, bytes) else "upload")
    return codes_for_generator(read_code_array(source, label), generator, label)


def codes_to_npy_bytes(codes: torch.Tensor) -> bytes:
    """Codes as ``.npy`` bytes (float32, no pickle), for downloads."""
    buffer = io.BytesIO()
    np.save(buffer, codes.detach().cpu().numpy().astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def save_codes(path: str | Path, codes: torch.Tensor) -> Path:
    """Write codes atomically as ``.npy``."""
    return atomic_write_bytes(path, codes_to_npy_bytes(codes))


# ---- prepared codes: clean, varied faces from a seeded pool ---------------------------------
# The procedure is documented in latent_codes/README.md. Images are measured as 64x64
# thumbnails against the rest of their pool, so it needs only the Generator interface and
# works the same at every resolution.
SCORE_SIZE = 64  # px: images are measured as 64x64 thumbnails
STRUCTURE_SIZE = 32  # px: the grey structure compared with the pool's typical face
STRUCTURE_BLUR = 5  # px: box blur removed from the grey image to keep its structure only
FEATURE_SIZE = 8  # px: faces are compared for variety as 8x8 colour thumbnails
SATURATED = 0.98  # |pixel| above this counts as clipped
NUDGE_SIGMA = 0.3  # z is nudged by this much noise to test how stable a face is
NUDGE_REPEATS = 2
NUDGE_STREAM = 1  # the nudges' RandomState is seeded with [seed, NUDGE_STREAM], apart from the pool's
MEASURES = ("atypical structure", "high frequency", "clipped", "exposure", "instability")
MEASURE_WEIGHTS = (2.0, 1.0, 1.0, 1.0, 1.0)  # the structure measure is the best single judge of a face
WORST_ALLOWED = 0.75  # a face in the worst quarter of the pool on any measure is never kept
CLEAN_FRACTION = 1 / 3  # keep (at most) the cleanest third of the pool
KMEANS_ITERATIONS = 25


def artifact_measures(thumbs: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """The ``MEASURES`` of every image in a pool, larger = worse: (5, N).

    thumbs: (N, 3, S, S) raw outputs; change: (N,) mean absolute change of each thumbnail when
    its z is nudged. Atypical structure: 1 - cosine between the image's high-passed grey
    structure and the pool's mean structure (the typical face: eyes, nose, mouth in place);
    high-frequency energy (Laplacian: noise, seams, collage edges); the share of clipped pixels;
    exposure (the centre's mean grey away from mid-grey: faces lost in the dark or washed out);
    instability (``change`` relative to the image's contrast: ghosts between two faces).
    """
    assert thumbs.ndim == 4 and change.shape == (thumbs.shape[0],), "thumbs (N, 3, S, S), change (N,)"
    clipped = (thumbs.abs() > SATURATED).float().mean((1, 2, 3))
    images = thumbs.clamp(-1, 1)
    grey = images.mean(1, keepdim=True)  # (N, 1, S, S)

    small = F.adaptive_avg_pool2d(grey, STRUCTURE_SIZE)
    blur = F.avg_pool2d(small, STRUCTURE_BLUR, 1, STRUCTURE_BLUR // 2, count_include_pad=False)
    structure = (small - blur).flatten(1)  # (N, STRUCTURE_SIZE**2)
    structure = F.normalize(structure - structure.mean(1, keepdim=True), dim=1)
    typical = F.normalize(structure.mean(0), dim=0)
    atypical = 1 - structure @ typical

    laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    high_frequency = F.conv2d(grey, laplacian.to(grey)).pow(2).mean((1, 2, 3))
    quarter = grey.shape[-1] // 4
    exposure = grey[:, 0, quarter:-quarter, quarter:-quarter].mean((1, 2)).abs()
    instability = change / images.flatten(1).std(1).clamp_min(1e-3)
    return torch.stack([atypical, high_frequency, clipped, exposure, instability])


def _percentiles(values: torch.Tensor) -> torch.Tensor:
    """Each value's rank within its row, scaled to [0, 1]: (M, N) -> (M, N)."""
    ranks = values.argsort(dim=1).argsort(dim=1).float()
    return ranks / max(values.shape[1] - 1, 1)


@dataclass(frozen=True)
class ScoredPool:
    """A seeded pool of z codes, with the artifact measures and thumbnails of their images."""

    z: torch.Tensor  # (pool, latent_dim)
    measures: torch.Tensor  # (5, pool), see artifact_measures
    features: torch.Tensor  # (pool, 3 * FEATURE_SIZE**2): colour thumbnails, for variety

    @property
    def percentiles(self) -> torch.Tensor:
        """(5, pool): each measure's percentile within the pool, 0 = cleanest."""
        return _percentiles(self.measures)

    @property
    def scores(self) -> torch.Tensor:
        """(pool,): weighted mean percentile, 0 = cleanest."""
        weights = torch.tensor(MEASURE_WEIGHTS)[:, None]
        return (self.percentiles * weights).sum(0) / weights.sum()

    @property
    def eligible(self) -> torch.Tensor:
        """(pool,) bool: no measure in the worst ``1 - WORST_ALLOWED`` of the pool."""
        return self.percentiles.max(0).values <= WORST_ALLOWED


def score_pool(
    generator: Generator,
    pool: int,
    seed: int,
    trunc_psi: float = DEFAULT_TRUNC_PSI,
    trunc_layers: int | None = None,
    *,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    conditioning: Mapping[str, Any] | None = None,
) -> ScoredPool:
    """Sample ``pool`` seeded codes, render them and nudged copies in batches, and measure them."""
    conditioning = dict(conditioning or {})
    z = generator.sample_latents(pool, seed)  # (pool, latent_dim), as generator.sample draws it
    nudges = np.random.RandomState([seed, NUDGE_STREAM]).randn(NUDGE_REPEATS, pool, generator.latent_dim)
    nudges = torch.from_numpy(NUDGE_SIGMA * nudges.astype(np.float32))  # (repeats, pool, latent_dim)

    def thumbnails(batch: torch.Tensor) -> torch.Tensor:
        codes = generator.to_edit_space(batch, trunc_psi, trunc_layers, **conditioning)
        images = generator.synthesize(codes, **conditioning)
        return F.adaptive_avg_pool2d(images.float(), SCORE_SIZE).cpu()  # (B, 3, SCORE_SIZE, SCORE_SIZE)

    total, done = pool * (1 + NUDGE_REPEATS), 0
    thumbs, changes = [], []
    with torch.inference_mode():
        for start in range(0, pool, batch_size):
            batch = z[start : start + batch_size]
            thumbs.append(thumbnails(batch))
            change = torch.zeros(len(batch))
            for nudge in nudges[:, start : start + batch_size]:
                moved = thumbnails(batch + nudge)
                change += (moved.clamp(-1, 1) - thumbs[-1].clamp(-1, 1)).abs().mean((1, 2, 3)) / NUDGE_REPEATS
            changes.append(change)
            done += len(batch) * (1 + NUDGE_REPEATS)
            if progress is not None:
                progress(done, total)
    thumb = torch.cat(thumbs)  # (pool, 3, SCORE_SIZE, SCORE_SIZE)
    features = F.adaptive_avg_pool2d(thumb.clamp(-1, 1), FEATURE_SIZE).flatten(1)
    return ScoredPool(z, artifact_measures(thumb, torch.cat(changes)), features)


def _farthest_points(features: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows, each the farthest from those before it, starting at row 0."""
    chosen = [0]
    distance = (features - features[0]).norm(dim=1)
    for _ in range(count - 1):
        chosen.append(int(distance.argmax()))
        distance = torch.minimum(distance, (features - features[chosen[-1]]).norm(dim=1))
    return torch.tensor(chosen)


def _clusters(features: torch.Tensor, count: int) -> torch.Tensor:
    """k-means (Lloyd) from farthest-point starts, so deterministic: each row's cluster, (N,)."""
    centres = features[_farthest_points(features, count)].clone()
    for _ in range(KMEANS_ITERATIONS):
        assignment = torch.cdist(features, centres).argmin(dim=1)
        for cluster in range(count):
            members = assignment == cluster
            if members.any():
                centres[cluster] = features[members].mean(0)
    return torch.cdist(features, centres).argmin(dim=1)


def select_clean_varied(scored: ScoredPool, count: int) -> torch.Tensor:
    """Pool indices of ``count`` clean, varied faces, cleanest first.

    Keep the eligible faces (see ``ScoredPool.eligible``), at most the cleanest third of the
    pool; cluster their colour thumbnails into ``count`` groups and take each group's cleanest.
    """
    scores = scored.scores
    pool = len(scores)
    ranked = [int(i) for i in scores.argsort() if scored.eligible[i]]  # cleanest first
    kept = torch.tensor(ranked[: math.ceil(pool * CLEAN_FRACTION)], dtype=torch.long)
    if len(kept) < count:
        raise CodeFileError(f"only {len(kept)} of {pool} faces pass the checks; use a larger --pool")
    groups = _clusters(scored.features[kept], count)
    picks = [int(kept[groups == g][0]) for g in range(count) if (groups == g).any()]
    picks += [int(i) for i in kept if int(i) not in picks][: count - len(picks)]  # if a group emptied
    return torch.tensor(sorted(picks, key=lambda i: float(scores[i])))


@dataclass(frozen=True)
class PickedCodes:
    """Codes picked by ``pick_clean_codes``, cleanest first."""

    codes: np.ndarray  # (n, *code_shape) float32 edit-space codes
    indices: np.ndarray  # (n,) their rows in the seeded pool
    scores: np.ndarray  # (n,) weighted mean percentile of the measures, 0 = cleanest
    images: np.ndarray  # (n, H, W, 3) uint8, full resolution, for a contact sheet


def pick_clean_codes(
    generator: Generator,
    count: int,
    *,
    pool: int = 2000,
    seed: int = 0,
    trunc_psi: float = DEFAULT_TRUNC_PSI,
    trunc_layers: int | None = None,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    conditioning: Mapping[str, Any] | None = None,
) -> PickedCodes:
    """``count`` clean, varied edit-space codes from ``pool`` seeded samples (``score_pool``,
    then ``select_clean_varied``); the same arguments always give the same codes."""
    if not 1 <= count <= pool:
        raise CodeFileError(f"cannot pick {count} codes from a pool of {pool}")
    scored = score_pool(
        generator,
        pool,
        seed,
        trunc_psi,
        trunc_layers,
        batch_size=batch_size,
        progress=progress,
        conditioning=conditioning,
    )
    picks = select_clean_varied(scored, count)
    conditioning = dict(conditioning or {})
    with torch.inference_mode():
        codes = generator.to_edit_space(scored.z[picks], trunc_psi, trunc_layers, **conditioning)
        images = to_uint8(generator.synthesize(codes, **conditioning))
    return PickedCodes(
        codes=codes.cpu().numpy().astype(np.float32),
        indices=picks.numpy(),
        scores=scored.scores[picks].numpy(),
        images=images,
    )
