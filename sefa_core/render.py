"""Tensors -> pictures: uint8 images, encoded bytes, grids, HTML pages and GIFs."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from html import escape
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from sefa_core.editing import traversal
from sefa_core.errors import require
from sefa_core.factorize import Semantics
from sefa_core.models.base import Generator

LIVE_FORMAT = "JPEG"  # the live view: JPEG encodes ~60x faster than PNG at 1024 px
LIVE_QUALITY = 90
# zlib level for PNG (lossless at every level): 1 writes a grid ~4x faster than Pillow's default 6
# for a file ~10% larger; the ten grids of `sefa render` were its largest cost after start-up.
PNG_COMPRESS_LEVEL = 1
DIFFERENCE_GAIN = 4  # |edited - original| is faint; ×4 shows where an edit acts


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output (N, 3, H, W) in about [-1, 1] -> uint8 (N, H, W, 3)."""
    require(images.ndim == 4 and images.shape[1] == 3, "images must be (N, 3, H, W)")
    scaled = (images.detach().float().clamp(-1, 1) + 1) * 127.5  # [-1, 1] -> [0, 255]
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)


def encode_image(pixels: np.ndarray, image_format: str = LIVE_FORMAT, quality: int = LIVE_QUALITY) -> bytes:
    """One uint8 (H, W, 3) image -> encoded bytes (JPEG for the live view, PNG for exports)."""
    require(pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8, "pixels (H, W, 3) uint8")
    buffer = io.BytesIO()
    lossy = image_format.upper() in ("JPEG", "WEBP")
    options = {"quality": quality} if lossy else {"compress_level": PNG_COMPRESS_LEVEL}
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def difference_image(edited: np.ndarray, original: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): where and how much the edit changed the image, amplified."""
    delta = np.abs(edited.astype(np.int16) - original.astype(np.int16)) * DIFFERENCE_GAIN
    return np.clip(delta, 0, 255).astype(np.uint8)


# ---- traversals ---------------------------------------------------------------------------
DEFAULT_BATCH_SIZE = 64
DEFAULT_VIZ_SIZE = 128  # px per cell on the HTML pages; larger images are downscaled first
GRID_PAD = 2
GRID_PAD_VALUE = 255  # white lines between cells
GIF_FRAME_MS = 80

Progress = Callable[[int, int], None]  # (images done so far, images in all)


def _traversal_chunks(
    codes: torch.Tensor, semantics: Semantics, semantic_indices: Sequence[int], distances: Sequence[float]
) -> Iterator[torch.Tensor]:
    """Every code walked along every chosen semantic: chunks of (S, *code_shape), code-major."""
    for n in range(codes.shape[0]):
        for k in semantic_indices:
            yield traversal(codes[n : n + 1], semantics.directions[k], distances, semantics.layers)


def _batches(chunks: Iterator[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Regroup chunks of any length into batches of exactly ``batch_size`` (the last may be short)."""
    pending: list[torch.Tensor] = []
    count = 0
    for chunk in chunks:
        pending.append(chunk)
        count += chunk.shape[0]
        while count >= batch_size:
            merged = torch.cat(pending)
            yield merged[:batch_size]
            pending, count = [merged[batch_size:]], count - batch_size
    if count:
        yield torch.cat(pending)


def render_traversals(
    generator: Generator,
    codes: torch.Tensor,
    semantics: Semantics,
    semantic_indices: Sequence[int],
    distances: Sequence[float],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    conditioning: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Edit-space codes (N, *code_shape) walked along K semantics at S distances -> uint8 (N, K, S, H, W, 3).

    Codes are built lazily and rendered ``batch_size`` at a time, so memory holds one batch of
    codes plus the uint8 result. ``progress(done, total)`` is called after every batch.
    ``conditioning`` is passed to ``generator.synthesize`` as is (class-conditional models).
    """
    require(batch_size >= 1, "batch_size must be at least 1")
    require(tuple(codes.shape[1:]) == generator.code_shape, "codes must be (N, *generator.code_shape)")
    require(all(0 <= k < len(semantics.directions) for k in semantic_indices), "semantic index out of range")
    num_codes, num_semantics, num_steps = codes.shape[0], len(semantic_indices), len(distances)
    total = num_codes * num_semantics * num_steps
    require(total > 0, "nothing to render: N, K and the number of distances must all be positive")
    conditioning = dict(conditioning or {})
    pixels: np.ndarray | None = None
    done = 0
    with torch.inference_mode():
        chunks = _traversal_chunks(codes.cpu(), semantics, semantic_indices, distances)
        for batch in _batches(chunks, batch_size):
            images = to_uint8(generator.synthesize(batch, **conditioning))  # (B, H, W, 3)
            if pixels is None:
                pixels = np.empty((total, *images.shape[1:]), dtype=np.uint8)
            pixels[done : done + len(images)] = images
            done += len(images)
            if progress is not None:
                progress(done, total)
    assert pixels is not None and done == total
    return pixels.reshape(num_codes, num_semantics, num_steps, *pixels.shape[1:])  # (N, K, S, H, W, 3)


# ---- grids and animations -------------------------------------------------------------------
def image_grid(pixels: np.ndarray, pad: int = GRID_PAD, pad_value: int = GRID_PAD_VALUE) -> np.ndarray:
    """uint8 (R, C, H, W, 3) -> one (R·H + (R+1)·pad, C·W + (C+1)·pad, 3) image, framed by ``pad``."""
    require(pixels.ndim == 5 and pixels.shape[4] == 3, "pixels must be (R, C, H, W, 3)")
    require(pixels.dtype == np.uint8, "pixels must be uint8")
    require(pad >= 0 and 0 <= pad_value <= 255, "pad >= 0 and pad_value in [0, 255]")
    rows, cols, height, width, _ = pixels.shape
    grid = np.full(
        (rows * height + (rows + 1) * pad, cols * width + (cols + 1) * pad, 3), pad_value, dtype=np.uint8
    )
    for r in range(rows):
        top = pad + r * (height + pad)
        for c in range(cols):
            left = pad + c * (width + pad)
            grid[top : top + height, left : left + width] = pixels[r, c]
    return grid


LABEL_HEIGHT = 14  # px a line of PIL's built-in bitmap font takes, with a margin
LABEL_CHAR_WIDTH = 6  # px per character of that font
LABEL_MARGIN = 6  # px between the row labels and the grid
LABEL_INK = (49, 51, 63)
MARK_COLOUR = (255, 75, 75)  # the α = 0 column's frame
MARK_WIDTH = 2


def labelled_grid(
    pixels: np.ndarray,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    marked_column: int | None = None,
) -> np.ndarray:
    """``image_grid`` with a label left of each row and above each column, and a frame round
    ``marked_column`` (the Explore page marks α = 0): uint8 (H', W', 3).

    Drawn with PIL's built-in bitmap font, so nothing is downloaded or read from the system.
    """
    rows, cols, height, width, _ = pixels.shape
    require(len(row_labels) == rows and len(column_labels) == cols, "one label a row and one a column")
    require(marked_column is None or 0 <= marked_column < cols, f"no column {marked_column} to mark")
    grid = image_grid(pixels)
    left = LABEL_CHAR_WIDTH * max(len(label) for label in row_labels) + LABEL_MARGIN
    canvas = Image.new("RGB", (left + grid.shape[1], LABEL_HEIGHT + grid.shape[0]), (GRID_PAD_VALUE,) * 3)
    canvas.paste(Image.fromarray(grid), (left, LABEL_HEIGHT))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for r, label in enumerate(row_labels):
        top = LABEL_HEIGHT + GRID_PAD + r * (height + GRID_PAD) + height // 2 - LABEL_HEIGHT // 2
        draw.text((2, top), label, fill=LABEL_INK, font=font)
    for c, label in enumerate(column_labels):
        centre = left + GRID_PAD + c * (width + GRID_PAD) + width // 2
        draw.text((centre - LABEL_CHAR_WIDTH * len(label) // 2, 1), label, fill=LABEL_INK, font=font)
    if marked_column is not None:
        x0 = left + marked_column * (width + GRID_PAD)
        box = (x0, LABEL_HEIGHT, x0 + width + 2 * GRID_PAD - 1, canvas.height - 1)
        draw.rectangle(box, outline=MARK_COLOUR, width=MARK_WIDTH)
    return np.asarray(canvas)


def dimmed(pixels: np.ndarray, keep: float = 0.4) -> np.ndarray:
    """uint8 (..., 3) faded toward white: an out-of-date result still shown while a new one renders."""
    return (pixels.astype(np.float32) * keep + 255 * (1 - keep)).round().astype(np.uint8)


def downscale(pixels: np.ndarray, max_size: int) -> np.ndarray:
    """uint8 (..., H, W, 3) images shrunk (Lanczos) so that neither side exceeds ``max_size``.

    Images already small enough come back unchanged (the same array), never upscaled.
    """
    require(pixels.ndim >= 3 and pixels.shape[-1] == 3 and max_size >= 1, "pixels (..., H, W, 3)")
    height, width = pixels.shape[-3:-1]
    if max(height, width) <= max_size:
        return pixels
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL wants (W, H)
    flat = pixels.reshape(-1, height, width, 3)  # (B, H, W, 3)
    small = np.stack(
        [np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS)) for image in flat]
    )
    return small.reshape(*pixels.shape[:-3], size[1], size[0], 3)


def contact_sheet(
    images: np.ndarray, columns: int, pad: int = GRID_PAD, pad_value: int = GRID_PAD_VALUE
) -> np.ndarray:
    """uint8 (N, H, W, 3) laid out ``columns`` wide; the last row is filled with ``pad_value``."""
    require(images.ndim == 4 and columns >= 1, "images (N, H, W, 3)")
    rows = -(-len(images) // columns)  # ceil
    filler = np.full((rows * columns - len(images), *images.shape[1:]), pad_value, dtype=np.uint8)
    cells = np.concatenate([images, filler]).reshape(rows, columns, *images.shape[1:])  # (R, C, H, W, 3)
    return image_grid(cells, pad, pad_value)


def gif_bytes(
    frames: np.ndarray, duration_ms: int = GIF_FRAME_MS, loop: int = 0, pingpong: bool = False
) -> bytes:
    """uint8 (T, H, W, 3) -> an animated GIF; ``loop=0`` repeats forever, ``pingpong`` plays back too."""
    require(
        frames.ndim == 4 and frames.shape[3] == 3 and frames.dtype == np.uint8, "frames (T, H, W, 3) uint8"
    )
    require(len(frames) >= 1 and duration_ms > 0 and loop >= 0, "at least one frame, positive duration")
    sequence = list(frames)
    if pingpong and len(frames) > 2:
        sequence += list(frames[-2:0:-1])  # back again, without repeating the two ends
    first, *rest = (Image.fromarray(frame) for frame in sequence)
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=rest, duration=duration_ms, loop=loop)
    return buffer.getvalue()


# ---- HTML pages -----------------------------------------------------------------------------
# The two pages of the reference script (genforce/sefa ``sefa.py``), same rows and columns:
# a header row ("", "Distance d" per step), then labelled groups of rows. Ours are self-contained
# (images as data URIs) and every label is escaped.
_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.2em; }
table { border-collapse: collapse; }
th, td { padding: 2px; text-align: center; font-size: 0.8em; }
thead th { position: sticky; top: 0; background: #fff; }
tr.group th { text-align: left; background: #fde68a; padding: 4px 8px; }
tbody th[scope=row] { white-space: nowrap; padding-right: 8px; }
img { display: block; }
"""


def _data_uri(image: np.ndarray, viz_size: int, image_format: str) -> str:
    """One cell image, downscaled to ``viz_size`` when larger, as a base64 data URI."""
    image = downscale(image, viz_size)
    mime = "jpeg" if image_format.upper() == "JPEG" else image_format.lower()
    return f"data:image/{mime};base64," + base64.b64encode(encode_image(image, image_format)).decode("ascii")


def _traversal_page(
    title: str,
    distances: Sequence[float],
    group_labels: Sequence[str],
    row_labels: Sequence[str],
    cells: np.ndarray,
    viz_size: int,
    image_format: str,
) -> str:
    """A table: a header row, then per group a highlighted row and one row of images per row label.

    cells: uint8 (groups, rows, S, H, W, 3).
    """
    require(cells.shape[:3] == (len(group_labels), len(row_labels), len(distances)), "one cell per label")
    num_columns = len(distances) + 1
    head = "".join(f"<th>Distance {d:.2f}</th>" for d in distances)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_PAGE_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<table><thead><tr><th></th>{head}</tr></thead><tbody>",
    ]
    for group_label, group in zip(group_labels, cells, strict=True):
        lines.append(f'<tr class="group"><th colspan="{num_columns}">{escape(group_label)}</th></tr>')
        for row_label, images in zip(row_labels, group, strict=True):
            row = "".join(
                f'<td><img width="{viz_size}" alt="" src="{_data_uri(image, viz_size, image_format)}"></td>'
                for image in images
            )
            lines.append(f'<tr><th scope="row">{escape(row_label)}</th>{row}</tr>')
    lines.append("</tbody></table></body></html>")
    return "\n".join(lines) + "\n"


def semantic_label(index: int, eigenvalue: float) -> str:
    """How a semantic is named on pages and grids: its index and its eigenvalue."""
    return f"Semantic {index:03d} ({eigenvalue:.3f})"


def _labels(pixels: np.ndarray, semantics: Semantics, semantic_indices: Sequence[int]) -> tuple[list, list]:
    """Row labels of the samples and of the semantics of traversal pixels (N, K, S, H, W, 3)."""
    num_codes, num_semantics = pixels.shape[:2]
    require(pixels.ndim == 6 and num_semantics == len(semantic_indices), "pixels (N, K, S, H, W, 3)")
    samples = [f"Sample {n:03d}" for n in range(num_codes)]
    names = [semantic_label(k, float(semantics.eigenvalues[k])) for k in semantic_indices]
    return samples, names


def sample_first_html(
    pixels: np.ndarray,
    semantics: Semantics,
    semantic_indices: Sequence[int],
    distances: Sequence[float],
    *,
    title: str = "SeFa",
    viz_size: int = DEFAULT_VIZ_SIZE,
    image_format: str = LIVE_FORMAT,
) -> str:
    """The reference's ``*_sample_first.html``: K×(N+1) rows, per semantic its row then every sample's."""
    samples, names = _labels(pixels, semantics, semantic_indices)
    cells = pixels.swapaxes(0, 1)  # (K, N, S, H, W, 3)
    return _traversal_page(title, distances, names, samples, cells, viz_size, image_format)


def semantic_first_html(
    pixels: np.ndarray,
    semantics: Semantics,
    semantic_indices: Sequence[int],
    distances: Sequence[float],
    *,
    title: str = "SeFa",
    viz_size: int = DEFAULT_VIZ_SIZE,
    image_format: str = LIVE_FORMAT,
) -> str:
    """The reference's ``*_semantic_first.html``: N×(K+1) rows, per sample its row then every semantic's."""
    samples, names = _labels(pixels, semantics, semantic_indices)
    return _traversal_page(title, distances, samples, names, pixels, viz_size, image_format)
