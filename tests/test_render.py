"""The renderer: traversal batches, grids, GIFs and the two HTML pages of the reference script."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sefa_core.editing import distances, traversal
from sefa_core.errors import InputError
from sefa_core.factorize import Semantics, factorize
from sefa_core.models.base import Generator
from sefa_core.render import (
    contact_sheet,
    downscale,
    gif_bytes,
    image_grid,
    render_traversals,
    sample_first_html,
    semantic_first_html,
    to_uint8,
)

STEPS = distances(-3, 3, 5)


class TinyWPlus(Generator):
    """A 4x4 W+ generator whose image reads only W+ row 0: edits of other rows must not show."""

    architecture = "tiny-w+"
    edit_space = "w+"

    def __init__(self, num_layers: int = 3, w_dim: int = 4) -> None:
        super().__init__(
            latent_dim=w_dim,
            direction_dim=w_dim,
            resolution=4,
            num_layers=num_layers,
            layer_names=[f"layer{i}" for i in range(num_layers)],
        )
        self.to_rgb = nn.Linear(w_dim, 3 * 4 * 4)
        torch.nn.init.normal_(self.to_rgb.weight, std=0.3)
        self.calls: list[dict[str, Any]] = []  # the conditioning of every synthesize call

    def layer_weight(self, index: int) -> torch.Tensor:
        return self.to_rgb.weight

    def _to_edit_space(self, z: torch.Tensor, trunc_psi: float, trunc_layers: int | None) -> torch.Tensor:
        return z[:, None].repeat(1, self.num_layers, 1)  # (N, num_layers, w_dim)

    def _synthesize(self, codes: torch.Tensor, **conditioning: Any) -> torch.Tensor:
        self.calls.append(conditioning)
        return torch.tanh(self.to_rgb(codes[:, 0])).reshape(-1, 3, 4, 4)


def _unit_semantics(dim: int, layers: tuple[int, ...]) -> Semantics:
    return Semantics(np.eye(dim), np.arange(dim, 0, -1, dtype=float), layers)


def test_traversals_show_every_sample_semantic_and_distance(default_generator) -> None:
    semantics = factorize(default_generator)
    codes = default_generator.sample(2, seed=0)
    pixels = render_traversals(default_generator, codes, semantics, [0, 3], STEPS, batch_size=4)
    assert pixels.shape == (2, 2, 5, 64, 64, 3) and pixels.dtype == np.uint8
    for n in range(2):
        for position, k in enumerate([0, 3]):
            walked = traversal(codes[n : n + 1], semantics.directions[k], STEPS, semantics.layers)
            expected = to_uint8(default_generator.synthesize(walked))
            diff = np.abs(pixels[n, position].astype(int) - expected.astype(int))
            assert diff.max() <= 1, "same images as a direct traversal, up to a rounding level"
    assert not np.array_equal(pixels[0, 0, 0], pixels[0, 0, -1]), "the walk changes the face"


def test_the_batch_size_does_not_change_the_traversal(default_generator) -> None:
    semantics = factorize(default_generator)
    codes = default_generator.sample(3, seed=1)
    small = render_traversals(default_generator, codes, semantics, [1, 2], STEPS, batch_size=7)
    large = render_traversals(default_generator, codes, semantics, [1, 2], STEPS, batch_size=64)
    assert np.abs(small.astype(int) - large.astype(int)).max() <= 1


def test_progress_reports_every_batch_up_to_the_total(default_generator) -> None:
    seen: list[tuple[int, int]] = []
    codes = default_generator.sample(2, seed=0)
    render_traversals(
        default_generator,
        codes,
        factorize(default_generator),
        [0],
        STEPS,
        batch_size=4,
        progress=lambda *a: seen.append(a),
    )
    assert seen == [(4, 10), (8, 10), (10, 10)]


def test_a_w_plus_traversal_edits_only_the_semantics_layers() -> None:
    generator = TinyWPlus().eval()
    codes = generator.sample(2, seed=0)
    untouched = render_traversals(generator, codes, _unit_semantics(4, (1, 2)), [0, 1], STEPS)
    assert all(
        np.array_equal(untouched[n, k, 0], untouched[n, k, s])
        for n in range(2)
        for k in range(2)
        for s in range(5)
    )
    moved = render_traversals(generator, codes, _unit_semantics(4, (0,)), [0, 1], STEPS)
    assert not np.array_equal(moved[0, 0, 0], moved[0, 0, -1])


def test_conditioning_reaches_the_generator() -> None:
    generator = TinyWPlus().eval()
    render_traversals(
        generator, generator.sample(1, 0), _unit_semantics(4, (0,)), [0], STEPS, conditioning={"classes": 3}
    )
    assert generator.calls and all(call == {"classes": 3} for call in generator.calls)


def test_an_image_grid_has_the_cells_in_place_and_white_padding() -> None:
    cells = np.arange(2 * 3 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 3, 4, 5, 3)
    grid = image_grid(cells, pad=2)
    assert grid.shape == (2 * 4 + 3 * 2, 3 * 5 + 4 * 2, 3)
    assert np.array_equal(grid[2:6, 2:7], cells[0, 0])
    assert np.array_equal(grid[8:12, 16:21], cells[1, 2])
    assert (grid[:2] == 255).all() and (grid[:, 7:9] == 255).all()
    assert image_grid(cells, pad=0, pad_value=0).shape == (8, 15, 3)


def test_a_contact_sheet_fills_its_last_row() -> None:
    images = np.zeros((5, 4, 4, 3), dtype=np.uint8)
    sheet = contact_sheet(images, columns=3, pad=1)
    assert sheet.shape == (2 * 4 + 3, 3 * 4 + 4, 3)
    assert (sheet[6:10, 11:15] == 255).all(), "the empty sixth cell is padding colour"


def test_downscale_shrinks_large_images_and_keeps_small_ones() -> None:
    big = np.random.RandomState(0).randint(0, 255, (2, 3, 40, 20, 3)).astype(np.uint8)
    assert downscale(big, 10).shape == (2, 3, 10, 5, 3)
    assert downscale(big, 64) is big


def _gif_frames(data: bytes) -> tuple[int, dict]:
    image = Image.open(io.BytesIO(data))
    return image.n_frames, image.info


def test_a_gif_has_one_frame_per_step_and_loops_forever() -> None:
    frames = np.stack([np.full((8, 8, 3), 40 * i, dtype=np.uint8) for i in range(5)])
    count, info = _gif_frames(gif_bytes(frames, duration_ms=50))
    assert count == 5 and info["loop"] == 0 and info["duration"] == 50
    count, _ = _gif_frames(gif_bytes(frames, pingpong=True))
    assert count == 8, "there and back: 5 frames, then 3 back without repeating the ends"


class _Table(HTMLParser):
    """Counts body rows, their header texts and their images."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.title = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "tr":
            self.rows.append({"class": attributes.get("class"), "labels": [], "images": []})
        elif tag == "img":
            self.rows[-1]["images"].append(attributes["src"])
        elif tag in ("th", "title"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "th" and self.rows:
            self.rows[-1]["labels"].append(data)
        elif self._in == "title":
            self.title += data


def _pixels(num_codes: int, num_semantics: int, steps: int) -> np.ndarray:
    return (
        np.random.RandomState(0).randint(0, 255, (num_codes, num_semantics, steps, 8, 8, 3)).astype(np.uint8)
    )


def test_the_sample_first_page_has_k_groups_of_n_plus_one_rows() -> None:
    semantics = _unit_semantics(6, (0,))
    page = sample_first_html(_pixels(3, 2, 5), semantics, [4, 1], STEPS, image_format="PNG")
    table = _Table()
    table.feed(page)
    header, body = table.rows[0], table.rows[1:]
    assert header["labels"] == [f"Distance {d:.2f}" for d in STEPS]
    assert len(body) == 2 * (3 + 1)
    assert body[0]["class"] == "group" and body[0]["labels"] == ["Semantic 004 (2.000)"]
    assert [row["labels"] for row in body[1:4]] == [["Sample 000"], ["Sample 001"], ["Sample 002"]]
    assert body[4]["labels"] == ["Semantic 001 (5.000)"]
    assert all(len(row["images"]) == 5 for row in body if row["class"] != "group")


def test_the_semantic_first_page_has_n_groups_of_k_plus_one_rows_with_the_right_images() -> None:
    pixels = _pixels(3, 2, 5)
    page = semantic_first_html(pixels, _unit_semantics(6, (0,)), [4, 1], STEPS, image_format="PNG")
    table = _Table()
    table.feed(page)
    body = table.rows[1:]
    assert len(body) == 3 * (2 + 1)
    assert body[0]["labels"] == ["Sample 000"] and body[3]["labels"] == ["Sample 001"]
    assert body[5]["labels"] == ["Semantic 001 (5.000)"]
    source = body[5]["images"][3]  # sample 1, semantic 1 (position 1), distance 3
    assert source.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
    assert np.array_equal(decoded, pixels[1, 1, 3]), "PNG cells carry the exact pixels"


def test_page_text_is_escaped_and_large_images_are_shrunk() -> None:
    pixels = np.zeros((1, 1, 2, 300, 300, 3), dtype=np.uint8)
    page = sample_first_html(
        pixels, _unit_semantics(2, (0,)), [0], [-1, 1], title="<script>x</script>", viz_size=50
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    table = _Table()
    table.feed(page)
    source = table.rows[-1]["images"][0]
    assert source.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).size == (50, 50)


def test_a_mismatched_pixel_array_is_refused() -> None:
    with pytest.raises(InputError):
        sample_first_html(_pixels(2, 3, 5), _unit_semantics(4, (0,)), [0, 1], STEPS)
