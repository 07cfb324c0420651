"""``sefa sweep``: shards on a local Ray cluster of 2 and in this process, resume, faults, Ctrl-C."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sefa_core.cli import main
from sefa_core.errors import SefaError
from sefa_core.sweep import (
    MANIFEST_FILE,
    WORKER_NAME,
    SeedRange,
    ShardRecord,
    ShardWorker,
    SweepSettings,
    prepare_model,
    ray_engine,
    run_sweep,
)

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-lock.txt)")

REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["--seeds", "0-4", "-K", "2", "--steps", "3", "--shard-size", "2"]  # 3 shards, 30 images
SHARDS = ("seeds-0-1.npz", "seeds-2-3.npz", "seeds-4-4.npz")
# uint8 images from float renders that differ by float32 rounding (other threads, other batches)
# can round to neighbouring levels, never further.
LEVEL_TOLERANCE = 1
PAD = 2  # the grid padding of `sefa render`, px
SIZE = 64  # the default model's resolution
LAST_LINE = re.compile(
    r"sweep: (\d+) images in (\d+) shards \((\d+) new, (\d+) reused\) on (ray with \d+ workers|this process)"
    r" in \d+\.\d\d s"
)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for the module, always shut down."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text("version: 1\nmodels:\n  - {name: default, source: default}\n")
    return str(path)


@pytest.fixture(scope="module")
def ray_sweep(cluster, config, tmp_path_factory) -> tuple[Path, str]:
    """The small sweep on the cluster of 2, through the command: (its folder, its stdout)."""
    out = tmp_path_factory.mktemp("ray") / "sweep"
    code, stdout, _ = _sweep(config, out, "--workers", "2")
    assert code == 0
    return out, stdout


def _sweep(config: str, out: Path, *extra: str) -> tuple[int, str, str]:
    """``sefa sweep default`` in this process: (exit code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--config", config, "sweep", "default", *SWEEP, "--out", str(out), *extra])
    return code, stdout.getvalue(), stderr.getvalue()


def _manifest(out: Path) -> list[ShardRecord]:
    return [ShardRecord.parse(line) for line in (out / MANIFEST_FILE).read_text().splitlines()]


def _images(out: Path) -> np.ndarray:
    """Every shard's images in seed order: (seeds, K, S, H, W, 3)."""
    return np.concatenate([np.load(out / "default" / name)["images"] for name in SHARDS])


def _close(found: np.ndarray, expected: np.ndarray) -> bool:
    difference = np.abs(found.astype(np.int16) - expected.astype(np.int16))
    return found.shape == expected.shape and int(difference.max()) <= LEVEL_TOLERANCE


def test_a_sweep_on_a_ray_cluster_of_two_writes_every_shard_and_its_manifest_line(
    ray_sweep, default_generator
):
    out, stdout = ray_sweep
    last = stdout.strip().splitlines()[-1]
    assert LAST_LINE.fullmatch(last), last
    assert LAST_LINE.fullmatch(last).groups() == ("30", "3", "3", "0", "ray with 2 workers")
    records = _manifest(out)
    assert sorted(record.file for record in records) == sorted(f"default/{name}" for name in SHARDS)
    eigenvalues = prepare_model(default_generator, "default", "all", 2).semantics.eigenvalues[:2]
    for record in records:
        data = (out / record.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record.sha256
        shard = np.load(out / record.file)
        first, last_seed = record.seeds
        seeds = np.arange(first, last_seed + 1)
        assert shard["images"].dtype == np.uint8 and shard["images"].shape == (
            len(seeds),
            2,
            3,
            SIZE,
            SIZE,
            3,
        )
        assert record.count == shard["images"].shape[0] * 2 * 3 and record.layers == "0"
        assert shard["seeds"].dtype == np.int64 and shard["seeds"].tolist() == seeds.tolist()
        assert shard["alphas"].dtype == np.float32 and shard["alphas"].tolist() == [-3.0, 0.0, 3.0]
        assert shard["semantics"].dtype == np.int64 and shard["semantics"].tolist() == [0, 1]
        np.testing.assert_allclose(shard["eigenvalues"], eigenvalues, rtol=1e-6)


def test_local_images_equal_the_ray_images(ray_sweep, config, tmp_path):
    code, stdout, _ = _sweep(config, tmp_path / "local", "--local")
    assert code == 0
    last = LAST_LINE.fullmatch(stdout.strip().splitlines()[-1])
    assert last and last.groups() == ("30", "3", "3", "0", "this process")
    assert _close(_images(tmp_path / "local"), _images(ray_sweep[0]))


def test_sweep_images_are_the_ones_sefa_render_gives(ray_sweep, config, tmp_path, capsys):
    seed = 3
    argv = [
        "--config",
        config,
        "render",
        "default",
        "-N",
        "1",
        "--seed",
        str(seed),
        "-K",
        "2",
        "--steps",
        "3",
    ]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    grid = np.asarray(Image.open(next(tmp_path.glob("*_sample_000.png"))).convert("RGB"))
    cells = np.stack(
        [
            [grid[PAD + k * (SIZE + PAD) :][:SIZE, PAD + s * (SIZE + PAD) :][:, :SIZE] for s in range(3)]
            for k in range(2)
        ]
    )  # (K, S, H, W, 3)
    assert _close(_images(ray_sweep[0])[seed], cells)


def test_a_rerun_reuses_complete_shards_and_redoes_a_truncated_or_unlisted_one(config, tmp_path):
    out = tmp_path / "sweep"
    assert _sweep(config, out, "--local")[0] == 0
    first = _images(out)
    truncated = out / "default" / SHARDS[0]
    truncated.write_bytes(truncated.read_bytes()[:1000])  # a file cut short by a crash
    lines = (out / MANIFEST_FILE).read_text().splitlines()
    unlisted = next(line for line in lines if SHARDS[1] in line)
    kept = [line for line in lines if line != unlisted]
    (out / MANIFEST_FILE).write_text("\n".join(kept) + '\n{"model": "defa')  # and a torn last line

    code, stdout, _ = _sweep(config, out, "--local")
    assert code == 0
    assert LAST_LINE.fullmatch(stdout.strip().splitlines()[-1]).groups()[:4] == ("30", "3", "2", "1")
    assert sorted(record.file for record in _manifest(out)) == sorted(f"default/{name}" for name in SHARDS)
    assert np.array_equal(_images(out), first)


def test_a_rerun_with_other_arguments_is_refused_in_one_line(config, tmp_path):
    out = tmp_path / "sweep"
    assert _sweep(config, out, "--local")[0] == 0
    before = (out / MANIFEST_FILE).read_text()
    code, stdout, stderr = _sweep(config, out, "--local", "--end", "2")
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "end: 3.0 there, 2.0 now" in stderr and str(out) in stderr
    assert (out / MANIFEST_FILE).read_text() == before


def test_a_model_that_fails_to_load_stops_the_sweep_with_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint" * 64)
    out = tmp_path / "sweep"
    code = main(["sweep", str(broken), *SWEEP, "--out", str(out), "--workers", "2"])
    _, stderr = capsys.readouterr()
    assert code == 2
    assert stderr.startswith("sefa: error: ") and stderr.count("\n") == 1 and str(broken) in stderr
    assert not out.exists()


def _settings(generator, seeds: SeedRange, digest: str | None = None) -> SweepSettings:
    model = prepare_model(generator, "default", "all", 3).spec
    if digest is not None:
        model = dataclasses.replace(model, digest=digest)
    return SweepSettings((model,), seeds, -2.0, 2.0, 5, shard_size=1)


def test_a_worker_killed_mid_sweep_loses_nothing(cluster, default_generator, tmp_path):
    settings = _settings(default_generator, SeedRange(10, 15))  # 6 shards of one seed
    killed: list[tuple[str, int, int]] = []

    def kill_one_worker_after_the_first_shard(done: int, total: int) -> None:
        if done and not killed:
            name = next(
                a["name"] for a in ray.util.list_named_actors(True) if a["name"].startswith(WORKER_NAME)
            )
            ray.kill(ray.get_actor(name), no_restart=False)  # it restarts; its task is sent again
            killed.append((name, done, total))

    with ray_engine(settings, tmp_path, workers=2) as engine:
        report = run_sweep(settings, tmp_path, engine, progress=kill_one_worker_after_the_first_shard)
    assert len(killed) == 1 and killed[0][1] < killed[0][2], "the worker was killed mid-sweep"
    assert (report.shards, report.new, report.reused) == (6, 6, 0)
    records = _manifest(tmp_path)
    assert sorted(record.seeds for record in records) == [(seed, seed) for seed in range(10, 16)]
    reference = prepare_model(default_generator, "default", "all", 3)
    local = ShardWorker(settings, tmp_path / "local", loaded={"default": reference})
    for record in records:
        assert hashlib.sha256((tmp_path / record.file).read_bytes()).hexdigest() == record.sha256
        local.render(next(s for s in settings.shards() if s.file == record.file))
        expected = np.load(tmp_path / "local" / record.file)["images"]
        assert _close(np.load(tmp_path / record.file)["images"], expected)


def test_a_worker_loads_a_model_from_the_object_store_when_its_node_lacks_the_file(
    cluster, default_generator, tmp_path
):
    settings = _settings(default_generator, SeedRange(5, 5))
    shard = settings.shards()[0]
    checkpoint = [ray.put(Path(default_generator.source_path).read_bytes())]
    from_bytes = ShardWorker(settings, tmp_path / "bytes", device="cpu", sources={"default": checkpoint})
    from_path = ShardWorker(settings, tmp_path / "path", device="cpu")
    assert from_bytes.render(shard).sha256 == from_path.render(shard).sha256
    assert from_bytes.loaded["default"].generator.source_path != default_generator.source_path


def test_a_worker_whose_model_fails_to_load_stops_the_sweep_with_its_own_error(
    cluster, default_generator, tmp_path
):
    settings = _settings(default_generator, SeedRange(0, 1), digest="0" * 64)  # as if the file changed
    with (
        pytest.raises(SefaError, match="weights.tar: changed since the sweep started"),
        ray_engine(settings, tmp_path, workers=1) as engine,
    ):
        run_sweep(settings, tmp_path, engine)
    assert _manifest(tmp_path) == []


def test_ctrl_c_leaves_only_complete_shards_in_the_manifest(config, tmp_path):
    out = tmp_path / "sweep"
    argv = ["--config", config, "sweep", "default", "--seeds", "0-299", "-K", "3", "--steps", "5"]
    command = [sys.executable, "-m", "sefa_core", *argv, "--shard-size", "2", "--local", "--out", str(out)]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        manifest = out / MANIFEST_FILE
        while time.monotonic() < deadline and process.poll() is None:
            if manifest.is_file() and len(manifest.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "sefa: interrupted" in stderr and "sweep:" not in stdout
    records = _manifest(out)
    assert 2 <= len(records) < 150 and all(record is not None for record in records)
    for record in records:
        assert hashlib.sha256((out / record.file).read_bytes()).hexdigest() == record.sha256
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")], "a temp file was left"
    assert json.loads((out / "sweep.json").read_text())["seeds"] == "0-299"
    assert os.path.isdir(out / "default")
