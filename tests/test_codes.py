"""Code files and the prepared codes: safe reading, and clean, varied, reproducible picks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from sefa_core.codes import (
    MEASURES,
    ScoredPool,
    artifact_measures,
    codes_to_npy_bytes,
    load_codes,
    pick_clean_codes,
    save_codes,
    select_clean_varied,
)
from sefa_core.config import load_config
from sefa_core.errors import CodeFileError

REPO_ROOT = Path(__file__).resolve().parents[1]
PREPARED = REPO_ROOT / "latent_codes" / "default.npy"
PICK_POOL, PICK_SEED = 2000, 0  # the command in latent_codes/README.md


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def test_a_pickled_object_array_is_refused_without_being_unpickled(default_generator) -> None:
    payload = _npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(CodeFileError, match="not a plain .npy array"):
        load_codes(payload, default_generator, "evil.npy")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 100), np.nan, np.float32), "NaN or Inf"),
        (np.full((1, 100), np.inf, np.float64), "NaN or Inf"),
        (np.zeros((2, 99), np.float32), r"shape \(2, 99\) does not fit this model; expected \(N, 100\)"),
        (np.zeros((2, 3, 100), np.float32), r"shape \(2, 3, 100\)"),
        (np.array(["a", "b"]), "codes must be numbers"),
        (np.zeros(2, dtype=complex), "codes must be numbers"),
    ],
)
def test_bad_code_arrays_are_refused_with_one_line(default_generator, array, message) -> None:
    with pytest.raises(CodeFileError, match=message) as caught:
        load_codes(_npy(array), default_generator, "codes.npy")
    assert "\n" not in str(caught.value)


def test_garbage_and_oversized_files_are_refused(default_generator, tmp_path, monkeypatch) -> None:
    with pytest.raises(CodeFileError, match="not a readable .npy file|not a plain .npy array"):
        load_codes(b"\x93NUMPY garbage", default_generator)
    with pytest.raises(CodeFileError, match="no such file"):
        load_codes(tmp_path / "none.npy", default_generator)
    path = tmp_path / "big.npy"
    path.write_bytes(_npy(np.zeros((4, 100), np.float32)))
    monkeypatch.setattr("sefa_core.codes.MAX_CODE_FILE_BYTES", 100)
    with pytest.raises(CodeFileError, match="over the 100 byte limit"):
        load_codes(path, default_generator)


def test_one_code_or_a_batch_of_any_numeric_type_loads(default_generator, tmp_path) -> None:
    assert load_codes(_npy(np.zeros(100, np.float64)), default_generator).shape == (1, 100)
    codes = torch.randn(3, 100)
    path = save_codes(tmp_path / "codes.npy", codes)
    assert torch.equal(load_codes(path, default_generator), codes)
    assert codes_to_npy_bytes(codes) == path.read_bytes()


def _pool(measures: list[list[float]], features: np.ndarray) -> ScoredPool:
    return ScoredPool(
        torch.arange(len(features))[:, None].float(),
        torch.tensor(measures).T,
        torch.from_numpy(features).float(),
    )


def test_measures_rank_noise_clipping_and_ghosts_worse_than_a_clean_image() -> None:
    rng = np.random.RandomState(0)
    y, x = np.mgrid[:64, :64] / 64.0
    clean = torch.from_numpy(np.stack([0.3 * np.cos(3 * (x - 0.5)) * np.cos(3 * (y - 0.5))] * 3)).float()
    pool = clean[None].repeat(8, 1, 1, 1) + 0.01 * torch.from_numpy(rng.randn(8, 3, 64, 64)).float()
    pool[1] += 0.5 * torch.from_numpy(rng.randn(3, 64, 64)).float()  # noise
    pool[2, :, :, :20] = -1.0  # a clipped black band
    pool[3] -= 0.8  # lost in the dark
    change = torch.full((8,), 0.01)
    change[4] = 0.5  # flips to another face when nudged
    measures = artifact_measures(pool, change)
    assert measures.shape == (len(MEASURES), 8)
    worst = {name: int(measures[i].argmax()) for i, name in enumerate(MEASURES)}
    assert worst["high frequency"] == 1 and worst["clipped"] == 2
    assert worst["exposure"] == 3 and worst["instability"] == 4
    assert int(measures[0].argmin()) != 1, "a noisy image is not the most typical"


def test_selection_keeps_clean_faces_and_one_per_look() -> None:
    # 12 faces in 3 looks (feature clusters); within each look, lower index = cleaner.
    looks = np.repeat(np.eye(3) * 10, 4, axis=0) + np.tile(np.arange(4)[:, None] * 0.01, (3, 3))
    measures = [[float(i % 4)] * len(MEASURES) for i in range(12)]
    picks = select_clean_varied(_pool(measures, looks), 3).tolist()
    assert sorted(picks) == [0, 4, 8], "the cleanest face of every look"
    with pytest.raises(CodeFileError, match="use a larger --pool"):
        select_clean_varied(_pool(measures, looks), 10)


def test_picking_codes_is_reproducible_and_returns_distinct_codes(default_generator) -> None:
    first = pick_clean_codes(default_generator, 4, pool=30, seed=3, batch_size=16)
    again = pick_clean_codes(default_generator, 4, pool=30, seed=3, batch_size=30)
    assert np.array_equal(first.indices, again.indices)
    assert first.codes.shape == (4, 100) and first.codes.dtype == np.float32
    assert len(set(first.indices.tolist())) == 4 and (np.diff(first.scores) >= 0).all(), "cleanest first"
    pool = default_generator.sample(30, 3).numpy()
    assert np.array_equal(first.codes, pool[first.indices]), "the codes are rows of the seeded pool"
    assert first.images.shape == (4, 64, 64, 3)


def test_the_prepared_default_codes_are_clean_rows_of_the_documented_pool(default_generator) -> None:
    codes = np.load(PREPARED, allow_pickle=False)
    assert codes.dtype == np.float32 and codes.shape == (24, 100) and np.isfinite(codes).all()
    pool = default_generator.sample(PICK_POOL, PICK_SEED).numpy()
    rows = [int(np.flatnonzero((pool == code).all(axis=1))[0]) for code in codes]
    assert len(set(rows)) == 24, "24 different faces from `sefa pick-codes default --pool 2000 --seed 0`"
    assert load_codes(PREPARED, default_generator).shape == (24, 100)


def test_the_config_points_the_default_model_at_its_prepared_codes() -> None:
    config = load_config(REPO_ROOT / "config.yaml")
    assert config.codes_path(config.entry("default")) == PREPARED
