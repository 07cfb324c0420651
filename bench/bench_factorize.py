"""Benchmark 1: SeFa factorization, ours against the public reference's method.

The reference (genforce/sefa ``utils.factorize_weight``) concatenates the chosen layers' style
weights, scales each output unit's column to unit norm, then calls numpy's general ``eig`` on the
Gram matrix and keeps LAPACK's order; it is re-implemented here from that description. Both sides
run in this process, interleaved, and we report medians and their ratio, a check that the
directions agree up to sign once the reference is sorted, and where each side spends its time.

The layer change (issue 16): for fresh random layer subsets of StyleGAN2 FFHQ-1024 shapes, ours
is what ``factorize(generator, layers, top=K)`` does once the model's per-layer Grams are cached
(a sum of D×D Grams, or the total less those left out when that is fewer additions, and a
partial eigensolve of K+1 pairs: ARPACK's Lanczos, kept when its residuals prove it exact, else
LAPACK's MRRR); the Gram cache's one-off build per model is timed on its own. Every subset's top
K are checked against our full result's first K. It runs twice: on N(0, 1) weights (a flat
Marchenko-Pastur spectrum with leading eigenvalues 0.1-0.3 % apart, the worst case for a partial
solver, and the headline) and on weights whose spectrum decays as trained layers' do. Each subset
is solved cold (no warm start from the previous one).

Both sides run on the same OpenBLAS. On a shared 2-core machine its worker threads spin against
torch's and the other tenants' (timings swung from 60 ms to 4 s with 2 threads), so it runs on
``--blas-threads`` threads (default 1), set through ``OPENBLAS_NUM_THREADS`` before numpy starts.

    .venv/bin/python -m bench.bench_factorize [--repeats 20] [--blas-threads 1] [--subsets 16] [--top 10]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from bench.common import interleaved, load_average, machine, median, time_ms
from sefa_core import load_generator
from sefa_core.factorize import eigen_directions, factorize_matrices, layer_grams, subset_gram, sum_grams
from sefa_core.layers import format_layers

# Input widths of the 18 style affines of NVIDIA's config-f StyleGAN2 at 1024 px (w_dim 512):
# rows 0-9 feed 512-channel layers, then 256, 128, 64, 32 (two rows each; the last is ToRGB).
FFHQ_1024_AFFINE_OUT = [512] * 10 + [256] * 2 + [128] * 2 + [64] * 2 + [32] * 2
W_DIM = 512
DEGENERATE_GAP = 1e-6  # relative eigenvalue gap below which a direction is not well defined
BLAS_THREADS_ENV = "OPENBLAS_NUM_THREADS"
SUBSET_REPEATS = 5  # timed calls per side for each layer subset
DECAY_LENGTH = 48.0  # singular values e^(-j/48) of the decaying weights' shared mixing


def reference_stack(matrices: list[np.ndarray]) -> np.ndarray:
    """The reference's (D, sum_out) stack, each column (one output unit) scaled to unit norm."""
    weight = np.concatenate([m.T for m in matrices], axis=1)  # (D, sum_out)
    return weight / np.linalg.norm(weight, axis=0, keepdims=True)


def reference_factorize(matrices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The public reference: general eig of the column-normalised (D, out) stack, unsorted."""
    weight = reference_stack(matrices)
    values, vectors = np.linalg.eig(weight.dot(weight.T))
    return values, vectors.T  # rows are directions, in LAPACK's order


def our_stack(matrices: list[np.ndarray]) -> np.ndarray:
    """Our (sum_out, D) float64 stack with unit rows, as ``factorize_matrices`` builds it."""
    weight = np.concatenate([np.asarray(m, dtype=np.float64) for m in matrices], axis=0)
    norms = np.linalg.norm(weight, axis=1, keepdims=True)
    return weight / np.where(norms > 0, norms, 1.0)


def compare(name: str, matrices: list[np.ndarray], repeats: int) -> None:
    times = interleaved(
        {"ours": lambda: factorize_matrices(matrices), "reference": lambda: reference_factorize(matrices)},
        repeats,
    )
    ours, reference = median(times["ours"]), median(times["reference"])
    values, directions = factorize_matrices(matrices)
    ref_values, ref_directions = reference_factorize(matrices)
    order = np.argsort(-ref_values.real)
    cosines = np.abs(np.sum(directions * ref_directions.real[order], axis=1))
    gaps = np.diff(values) / values[0]
    distinct = np.ones(len(values), bool)
    distinct[:-1] &= np.abs(gaps) > DEGENERATE_GAP
    distinct[1:] &= np.abs(gaps) > DEGENERATE_GAP
    print(
        f"{name}: stacked {sum(len(m) for m in matrices)}x{matrices[0].shape[1]} | "
        f"ours {ours:.1f} ms, reference {reference:.1f} ms (medians of {repeats}, interleaved) | "
        f"speed-up {reference / ours:.2f}x | "
        f"min |cos| vs sorted reference {cosines[distinct].min():.6f} over {distinct.sum()} "
        f"non-degenerate directions | eigenvalue max rel diff "
        f"{np.max(np.abs(values - ref_values.real[order]) / values[0]):.1e}"
    )
    split(matrices, repeats)


def split(matrices: list[np.ndarray], repeats: int) -> None:
    """Where each side's time goes: stacking and normalising, the Gram product, the eigensolver."""
    ours_weight, ref_weight = our_stack(matrices), reference_stack(matrices)
    gram = ours_weight.T @ ours_weight  # (D, D)
    steps = {
        "ours: stack + normalise": lambda: our_stack(matrices),
        "ours: Gram W^T W": lambda: ours_weight.T @ ours_weight,
        "ours: symmetric eigh": lambda: np.linalg.eigh(gram),
        "reference: stack + normalise": lambda: reference_stack(matrices),
        "reference: Gram W W^T": lambda: ref_weight.dot(ref_weight.T),
        "reference: general eig": lambda: np.linalg.eig(gram),
    }
    times = interleaved(steps, repeats)
    shares = " | ".join(f"{step} {median(values):.1f} ms" for step, values in times.items())
    print(f"  where the time goes (medians): {shares}")


def decaying_weights(rng: np.random.Generator) -> list[np.ndarray]:
    """FFHQ-1024 shapes whose spectrum decays as trained layers' do: N(0, 1) rows through one shared
    mixing with singular values e^(-j/48), so the layers agree on their leading directions."""
    rotation, _ = np.linalg.qr(rng.normal(size=(W_DIM, W_DIM)))
    mix = (rotation * np.exp(-np.arange(W_DIM) / DECAY_LENGTH)) @ rotation.T  # (W_DIM, W_DIM)
    return [rng.normal(size=(out, W_DIM)) @ mix for out in FFHQ_1024_AFFINE_OUT]


def layer_changes(
    label: str, matrices: list[np.ndarray], subsets: int, top: int, repeats: int, seed: int = 1
) -> None:
    """A new layer set: ours from the cached per-layer Grams, ``top`` directions, against the reference."""
    print(f"layer change on {label}:")
    build = median(time_ms(lambda: sum_grams(layer_grams(matrices)), repeats=3))
    grams = layer_grams(matrices)
    total = sum_grams(grams)
    print(
        f"per-layer Gram cache and their total, built once per model: {build:.1f} ms "
        f"({len(grams) + 1} x {W_DIM}x{W_DIM} float64, {(len(grams) + 1) * total.nbytes / 2**20:.0f} MiB)"
    )
    rng = np.random.default_rng(seed)
    ratios = []
    for number in range(subsets):
        chosen = sorted(rng.choice(len(matrices), size=rng.integers(1, len(matrices) + 1), replace=False))
        picked = [matrices[i] for i in chosen]
        times = interleaved(
            {
                "ours": lambda chosen=chosen: eigen_directions(subset_gram(grams, chosen, total), top),
                "reference": lambda picked=picked: reference_factorize(picked),
            },
            repeats,
        )
        ours, reference = median(times["ours"]), median(times["reference"])
        ratios.append(reference / ours)
        values, directions = eigen_directions(subset_gram(grams, chosen, total), top)
        full_values, full_directions = factorize_matrices(picked)
        ref_values, ref_directions = reference_factorize(picked)
        order = np.argsort(-ref_values.real)[:top]
        cosines = np.abs(np.sum(directions * ref_directions.real[order], axis=1))
        print(
            f"  subset {number + 1:2d}: {len(chosen):2d} layers {format_layers(chosen):<28} | "
            f"ours {ours:6.2f} ms, reference {reference:6.1f} ms | {reference / ours:5.1f}x | "
            f"top {top} vs our full: max |diff| {np.max(np.abs(directions - full_directions[:top])):.0e}, "
            f"min |cos| vs reference {cosines.min():.6f}, "
            f"eigenvalue rel diff {np.max(np.abs(values - full_values[:top]) / full_values[0]):.0e}"
        )
    print(
        f"layer change on {label}, top {top}: "
        f"median speed-up {median(ratios):.1f}x over {subsets} fresh subsets "
        f"(min {min(ratios):.1f}x, max {max(ratios):.1f}x; medians of {repeats} interleaved calls each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--blas-threads", type=int, default=1, help="OpenBLAS threads (numpy's eig, eigh, @)")
    parser.add_argument(
        "--subsets", type=int, default=16, help="fresh random layer subsets for the layer change"
    )
    parser.add_argument("--top", type=int, default=10, help="directions the app asks for (num_semantics)")
    args = parser.parse_args()
    if os.environ.get(BLAS_THREADS_ENV) != str(args.blas_threads):  # OpenBLAS reads it once, at load
        environment = {**os.environ, BLAS_THREADS_ENV: str(args.blas_threads)}
        os.execve(sys.executable, [sys.executable, "-m", "bench.bench_factorize", *sys.argv[1:]], environment)
    print(f"machine: {machine()}")
    print(f"OpenBLAS threads: {args.blas_threads}")
    generator = load_generator("default", "cpu")
    dcgan = [generator.layer_weight(0).detach().double().numpy()]
    compare("default DCGAN first layer", dcgan, args.repeats)
    rng = np.random.default_rng(0)
    stylegan2 = [rng.normal(size=(out, W_DIM)) for out in FFHQ_1024_AFFINE_OUT]
    compare("StyleGAN2 FFHQ-1024 shapes, all 18 layers", stylegan2, args.repeats)
    layer_changes(
        "N(0, 1) weights (flat spectrum, the worst case)", stylegan2, args.subsets, args.top, SUBSET_REPEATS
    )
    layer_changes(
        "decaying weights (a spectrum like trained layers')",
        decaying_weights(rng),
        args.subsets,
        args.top,
        SUBSET_REPEATS,
    )
    print(f"after the run: {load_average()}")


if __name__ == "__main__":
    main()
