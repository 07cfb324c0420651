"""Direction sets: JSON or NPZ without pickles, loaded back exactly, each direction on its own rows."""

from __future__ import annotations

import io
import json
import os
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch

from sefa_core import direction_sets, session
from sefa_core.direction_sets import DirectionSet, SavedDirection
from sefa_core.errors import AlreadySavedError, SefaError
from sefa_core.factorize import Semantics, factorize
from sefa_core.session import CodeRows, CodeSource, Settings

DIGEST = "ab" * 32


def unit(values: list[float]) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float64)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def two_directions() -> DirectionSet:
    rng = np.random.default_rng(0)
    return DirectionSet(
        "stylegan-test",
        DIGEST,
        "all",
        (
            SavedDirection("pose", unit(rng.standard_normal(8)), "0-1", 2.0, 0, 12.5),
            SavedDirection("colour", unit(rng.standard_normal(8)), "4-5", -1.5, 3, 1.25),
        ),
    )


@pytest.fixture(scope="module")
def edit_and_semantics(default_generator):
    semantics = factorize(default_generator, "all")
    state = session.new_state(
        "default", default_generator, CodeSource("seed", 5), CodeRows(), Settings("all", 6)
    )
    return state.with_alphas((3.0, 0.0, -2.0, 0.0, 0.0, 1.0)), semantics


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_a_saved_set_loads_back_exactly(tmp_path, two_directions, suffix):
    path = direction_sets.save_direction_set(tmp_path / f"faces{suffix}", two_directions)
    assert direction_sets.load_direction_set(path) == two_directions
    assert [p.name for p in tmp_path.iterdir()] == [f"faces{suffix}"]  # no temp file left behind


def test_the_sliders_you_pick_become_a_set(edit_and_semantics, default_generator):
    edit, semantics = edit_and_semantics
    chosen = direction_sets.from_sliders(edit, semantics, {0: "age", 2: " smile "})
    assert [d.name for d in chosen.directions] == ["age", "smile"]
    assert [d.alpha for d in chosen.directions] == [3.0, -2.0]
    assert [d.semantic for d in chosen.directions] == [0, 2]
    np.testing.assert_array_equal(chosen.directions[1].vector, semantics.directions[2])
    assert chosen.digest == default_generator.digest and chosen.layers == "all"
    direction_sets.check_fits(chosen, default_generator)


def test_json_is_plain_text_with_a_version(two_directions):
    data = json.loads(direction_sets.to_json(two_directions))
    assert data["version"] == direction_sets.DIRECTION_SET_VERSION
    assert data["kind"] == direction_sets.KIND
    assert len(data["directions"][0]["vector"]) == 8


def test_npz_with_a_pickled_array_is_refused(two_directions):
    buffer = io.BytesIO()
    np.savez(buffer, vectors=np.zeros((2, 8)), meta=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(SefaError, match="without pickles"):
        direction_sets.parse_direction_set(buffer.getvalue(), "evil.npz")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(kind="something"), "kind"),
        (lambda d: d.update(extra=1), "unknown key 'extra'"),
        (lambda d: d["directions"][0].update(layers="3-1"), "reversed"),
        (lambda d: d["directions"][0].update(vector=[1.0, float("nan")]), "finite"),
        (lambda d: d["directions"][1].update(vector=[1.0, 2.0]), "same length"),
        (lambda d: d["directions"][0].update(name=""), "name"),
        (lambda d: d.update(directions=[]), "1 to"),
    ],
)
def test_a_broken_json_set_is_one_line(two_directions, change, message):
    data = json.loads(direction_sets.to_json(two_directions))
    change(data)
    with pytest.raises(SefaError, match=message) as caught:
        direction_sets.parse_direction_set(json.dumps(data).encode(), "broken.json")
    assert "\n" not in str(caught.value)


def test_garbage_is_neither_npz_nor_json():
    with pytest.raises(SefaError, match="neither"):
        direction_sets.parse_direction_set(b"\x00\x01not a set", "garbage.bin")


def test_each_direction_moves_only_its_own_wplus_rows(two_directions):
    codes = torch.zeros(2, 6, 8)  # (N, num_layers, w_dim)
    moved = direction_sets.apply_direction_set(codes, two_directions, [2.0, -1.5], num_layers=6)
    pose, colour = (torch.from_numpy(d.vector.astype(np.float32)) for d in two_directions.directions)
    torch.testing.assert_close(moved[:, 0:2], (2.0 * pose).expand(2, 2, 8))
    torch.testing.assert_close(moved[:, 4:6], (-1.5 * colour).expand(2, 2, 8))
    assert torch.equal(moved[:, 2:4], torch.zeros(2, 2, 8))


def test_a_z_space_code_moves_whole_whatever_the_rows(two_directions):
    codes = torch.zeros(1, 8)
    moved = direction_sets.apply_direction_set(codes, two_directions, [1.0, 0.0], num_layers=1)
    torch.testing.assert_close(
        moved[0], torch.from_numpy(two_directions.directions[0].vector.astype(np.float32))
    )


def test_layer_ranges_can_be_changed_per_direction(two_directions):
    changed = two_directions.with_layers(1, " 2-3 ")
    assert [d.layers for d in changed.directions] == ["0-1", "2-3"]
    with pytest.raises(SefaError, match="cannot read"):
        two_directions.with_layers(0, "two")


def test_a_set_for_another_checkpoint_is_refused(two_directions, default_generator):
    with pytest.raises(SefaError, match="not for this checkpoint"):
        direction_sets.check_fits(two_directions, default_generator)


def test_rows_the_model_does_not_have_are_refused(edit_and_semantics, default_generator):
    edit, semantics = edit_and_semantics
    chosen = direction_sets.from_sliders(edit, semantics, {0: "age"}).with_layers(0, "0-3")
    with pytest.raises(SefaError, match="age.*out of range"):
        direction_sets.check_fits(chosen, default_generator)


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x" * 101])
def test_a_set_name_cannot_leave_the_folder(tmp_path, name):
    with pytest.raises(SefaError, match="file name"):
        direction_sets.direction_set_path(tmp_path, name, ".json")


def test_saved_sets_are_listed_newest_first(tmp_path, two_directions):
    first = direction_sets.save_direction_set(tmp_path / "a.json", two_directions)
    second = direction_sets.save_direction_set(tmp_path / "b.npz", two_directions)
    (tmp_path / "notes.txt").write_text("not a set")
    earlier = second.stat().st_mtime - 10
    os.utime(first, (earlier, earlier))
    assert direction_sets.list_direction_sets(tmp_path) == [second, first]


def test_saved_alphas_can_be_replaced(two_directions):
    assert [d.alpha for d in two_directions.with_alphas([0.5, 0.25]).directions] == [0.5, 0.25]


def test_semantics_with_rows_default_to_the_factorized_layers():
    semantics = Semantics(np.eye(4), np.array([4.0, 3.0, 2.0, 1.0]), (2, 3), DIGEST, "2-3")
    state = session.EditState(
        "m", DIGEST, "2-3", CodeSource("seed", 0), np.zeros((1, 6, 4), np.float32), (1.0,)
    )
    chosen = direction_sets.from_sliders(state, semantics, {0: "first"})
    assert chosen.directions[0].layers == "2-3"


# ---- the shared folder: who saved what, and never over someone's set silently ------------------------
@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_a_shared_set_says_who_saved_it_and_when(tmp_path, two_directions, suffix):
    before = datetime.now(UTC).replace(microsecond=0)
    path = tmp_path / f"faces{suffix}"
    stamped = direction_sets.share_direction_set(path, two_directions, "session 3fa2c1")
    loaded = direction_sets.load_direction_set(path)
    assert loaded == stamped and loaded.saved_by == "session 3fa2c1"
    saved_at = datetime.fromisoformat(loaded.saved_at)
    assert before <= saved_at <= datetime.now(UTC) + timedelta(
        seconds=1
    ) and saved_at.utcoffset() == timedelta(0)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no lock or temp file inside the folder


def test_saving_over_a_shared_set_is_refused_unless_the_user_said_so(tmp_path, two_directions):
    path = tmp_path / "faces.json"
    direction_sets.share_direction_set(path, two_directions, "session aaaaaa")
    kept = path.read_bytes()
    mine = two_directions.with_alphas([5.0, 5.0])
    with pytest.raises(
        AlreadySavedError, match=r"'faces.json' already exists \(saved by session aaaaaa at 20"
    ):
        direction_sets.share_direction_set(path, mine, "session bbbbbb")
    assert path.read_bytes() == kept
    direction_sets.share_direction_set(path, mine, "session bbbbbb", overwrite=True)
    replaced = direction_sets.load_direction_set(path)
    assert replaced.saved_by == "session bbbbbb" and [d.alpha for d in replaced.directions] == [5.0, 5.0]


def test_two_sessions_saving_one_name_at_once_one_is_kept_and_the_other_told(tmp_path, two_directions):
    path = tmp_path / "faces.json"
    start, outcomes = threading.Barrier(2), {}

    def save(who: str) -> None:
        start.wait()
        try:
            direction_sets.share_direction_set(path, two_directions, who)
            outcomes[who] = "saved"
        except AlreadySavedError:
            outcomes[who] = "told"

    threads = [threading.Thread(target=save, args=(f"session {n}",)) for n in ("aaaaaa", "bbbbbb")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["saved", "told"]
    winner = next(who for who, outcome in outcomes.items() if outcome == "saved")
    assert direction_sets.load_direction_set(path).saved_by == winner


def test_an_exported_set_carries_no_stamp_and_old_sets_still_load(tmp_path, two_directions):
    assert "saved_by" not in json.loads(direction_sets.to_json(two_directions))
    loaded = direction_sets.load_direction_set(
        direction_sets.save_direction_set(tmp_path / "a.json", two_directions)
    )
    assert (loaded.saved_by, loaded.saved_at) == ("", "")
