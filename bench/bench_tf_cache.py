"""Benchmark: loading an original TensorFlow StyleGAN2 pickle, first (converted) and again (from the cache).

A random-weight ``(G, D, Gs)`` pickle is written with the sizes of the official config-f release
(z = w = 512, 8 mapping layers of 512, channels 512 up to 64x64, then halving) at ``--resolution``;
the first ``load_checkpoint`` scans, unpickles and converts it and writes the safetensors entry,
the next ones build from that entry (the file is hashed each time: the entry is keyed by its sha256).
Then each stage is timed on its own: what the cache saves is the TensorFlow part (scan, unpickle,
convert); building the generator from a state dict is the same work as for any PyTorch checkpoint.

    .venv/bin/python -m bench.bench_tf_cache [--resolution 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.common import machine, median, use_test_helpers
from sefa_core.formats import cache, load_checkpoint
from sefa_core.formats.containers import file_digest, read_checkpoint
from sefa_core.formats.layouts import build_conversion, tensorflow

CONFIG_F_WIDTH = 512  # channels up to 64x64 in stylegan2 config-f (fmap_base 16384, fmap_max 512)
CONFIG_F_BASE = 32768
T = TypeVar("T")


def config_f_channels(resolution: int) -> list[int]:
    sizes = [4 * 2**block for block in range(resolution.bit_length() - 3)]
    return [min(CONFIG_F_BASE // size, CONFIG_F_WIDTH) for size in sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="cached loads to time")
    args = parser.parse_args()
    use_test_helpers()
    from tf_pickle_writer import random_stylegan2_state, stylegan2_network, write_tf_pickle

    with tempfile.TemporaryDirectory() as folder:
        os.environ[cache.CACHE_DIR_ENV] = str(Path(folder) / "cache")
        state = random_stylegan2_state(
            z_dim=512,
            w_dim=512,
            mapping_hidden=512,
            mapping_layers=8,
            channels=config_f_channels(args.resolution),
        )
        path = write_tf_pickle(Path(folder) / "stylegan2-config-f.pkl", stylegan2_network(state), protocol=3)
        del state
        print(machine())
        print(f"pickle: {path.stat().st_size / 2**20:.0f} MiB, {args.resolution} px")
        start = time.perf_counter()
        generator = load_checkpoint(path, device="cpu")
        first = time.perf_counter() - start
        entry = cache.cache_entry(generator.digest)
        del generator
        print(f"first load (scan, unpickle, convert, write the cache): {first * 1000:.0f} ms")
        print(f"cache entry: {entry.stat().st_size / 2**20:.0f} MiB")
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            load_checkpoint(path, device="cpu")
            times.append(time.perf_counter() - start)
        print(
            f"cached load (hash the file, read the entry, build): median {median(times) * 1000:.0f} ms "
            f"of {args.repeats} ({', '.join(f'{t * 1000:.0f}' for t in times)})"
        )
        stage(path)
        print(machine())


def stage(path: Path) -> None:
    """Each stage of both loads on its own, in ms."""

    def timed(label: str, function: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = function()
        print(f"  {label:<44} {(time.perf_counter() - start) * 1000:7.0f} ms")
        return result

    print("stages:")
    digest = timed("sha256 of the pickle (both loads)", lambda: file_digest(path))
    raw = timed("scan + unpickle + structure checks (first)", lambda: read_checkpoint(path, digest))
    conversion = timed("convert the variables (first)", lambda: tensorflow.convert(raw))
    timed("build the generator (both)", lambda: build_conversion(conversion, path))
    timed("write the cache entry (first)", lambda: cache.store_conversion(digest, conversion))
    cached = timed("read the cache entry (cached)", lambda: cache.cached_conversion(digest))
    timed("build from the entry (cached)", lambda: build_conversion(cached, path))


if __name__ == "__main__":
    main()
