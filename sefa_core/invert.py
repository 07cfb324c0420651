"""Photo inversion: find the edit-space code whose image is closest to a user's photo.

The photo is centre-cropped and resized to the model's resolution, then the code is optimised by
Adam through ``Generator.synthesize_with_grad``. The starts are ``generator.sample(restarts, seed,
trunc_psi=floor)``: for z-space models these are ``restarts`` random z; for the StyleGAN family
full truncation makes every start ``w_avg`` on each W+ row, so identical starts are optimised once
and the restarts cost nothing there. All starts run as one batch; the one with the best PSNR wins.

The loss is an L2 + L1 pixel loss on an image pyramid (the full image, then halved down to
``MIN_PYRAMID_SIZE`` px). LPIPS is not used: its network weights would have to be downloaded,
and nothing here is downloaded at run time.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from sefa_core.errors import PhotoError, require
from sefa_core.models.base import Generator
from sefa_core.render import to_uint8
from sefa_core.validation import read_small_file

DEFAULT_STEPS = 500  # Adam steps; the default DCGAN's median PSNR has settled by then (BENCHMARKS.md)
DEFAULT_RESTARTS = 8  # random starts for z-space models, optimised together as one batch
PRUNE_AFTER = 0.2  # share of the steps after which only the SURVIVORS best starts go on
SURVIVORS = 2  # (the best start by then is the best at the end for most faces; 2.5x less work)
LEARNING_RATE = 0.1  # Adam's; annealed to 0 on a cosine over the steps
MIN_PYRAMID_SIZE = 8  # px: the smallest level of the multi-scale loss
MAX_PHOTO_BYTES = 64 * 1024 * 1024
PIXEL_RANGE = 255.0  # PSNR is measured on uint8 images
# What Pillow raises for files it cannot read: unknown or truncated data, broken headers, bombs.
_UNREADABLE = (
    OSError,
    ValueError,
    TypeError,
    SyntaxError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)


@dataclass(frozen=True)
class Inversion:
    """The code found for a photo, and how close its image came.

    ``code``: (1, *code_shape), what ``generator.sample(1, seed)`` gives, so sliders can edit it.
    ``target``: the cropped and resized photo the code was fitted to, uint8 (H, W, 3).
    """

    code: torch.Tensor
    psnr: float  # dB, of the code's image against ``target``
    steps: int
    target: np.ndarray


def load_photo(source: str | Path | bytes, name: str = "") -> Image.Image:
    """A photo from a path or an upload's bytes, read fully (a truncated file fails here, not later).

    Errors are ``PhotoError`` naming ``name``, else the path, else "upload".
    """
    label = name or (str(source) if not isinstance(source, bytes) else "upload")
    if isinstance(source, bytes):
        if len(source) > MAX_PHOTO_BYTES:
            raise PhotoError(f"{label}: larger than {MAX_PHOTO_BYTES} bytes")
        data = source
    else:
        data = read_small_file(Path(source), MAX_PHOTO_BYTES, "photo", PhotoError)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as error:
        raise PhotoError(f"{label}: not an image (no format Pillow reads)") from error
    try:
        image.load()
    except _UNREADABLE as error:
        problem = " ".join(str(error).split()) or type(error).__name__
        raise PhotoError(f"{label}: a damaged {image.format} image ({problem})") from error
    return image


def fit_photo(image: Image.Image, resolution: int) -> np.ndarray:
    """The largest centred square of ``image``, resized to ``resolution``: uint8 (R, R, 3)."""
    require(resolution > 0, f"resolution must be positive, got {resolution}")
    square = ImageOps.fit(image.convert("RGB"), (resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(square, dtype=np.uint8)


def psnr(images: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 images (N, H, W, 3) against one uint8 target (H, W, 3): (N,)."""
    error = images.astype(np.float64) - target.astype(np.float64)[None]
    mse = np.square(error).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):  # an exact match is infinitely close
        return 10.0 * np.log10(PIXEL_RANGE**2 / mse)


def pyramid_loss(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L2 + L1 distance summed over an image pyramid, one value per image: (N,).

    images (N, 3, H, W), target (1, 3, H, W). Coarse levels pull the colours and layout together
    early; the full-size level fits the details.
    """
    images = _as_uint8_sees(images, target)
    loss = images.new_zeros(images.shape[0])
    while True:
        difference = images - target
        loss = loss + difference.square().mean(dim=(1, 2, 3)) + difference.abs().mean(dim=(1, 2, 3))
        if min(images.shape[2:]) < 2 * MIN_PYRAMID_SIZE:
            return loss
        images, target = F.avg_pool2d(images, 2), F.avg_pool2d(target, 2)


def _as_uint8_sees(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Where the target is black or white, a uint8 image cannot tell how far past the range a pixel is.

    So overshooting on that side costs nothing; generators that saturate (random weights, bright
    highlights) would otherwise spend the steps pulling such pixels back to exactly -1 or 1.
    """
    darkest, brightest = images.clamp(min=-1.0), images.clamp(max=1.0)
    return torch.where(target >= 1.0, brightest, torch.where(target <= -1.0, darkest, images))


def invert_image(
    generator: Generator,
    image: Image.Image,
    steps: int = DEFAULT_STEPS,
    restarts: int = DEFAULT_RESTARTS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    conditioning: Mapping[str, Any] | None = None,
) -> Inversion:
    """Fit an edit-space code to ``image``; ``progress(done, steps)`` is called after every step.

    ``conditioning`` (a class-conditional model's class) is what the starts are sampled and the
    images synthesized with.
    """
    conditioning = dict(conditioning or {})
    require(steps >= 1, f"steps must be at least 1, got {steps}")
    require(restarts >= 1, f"restarts must be at least 1, got {restarts}")
    target_pixels = fit_photo(image, generator.resolution)  # (R, R, 3) uint8
    target = torch.tensor(target_pixels).permute(2, 0, 1)[None].float() / 127.5 - 1  # (1, 3, R, R)
    target = target.to(generator.device)

    starts = generator.sample(restarts, seed, generator.min_trunc_psi, **conditioning)  # (S, *code_shape)
    codes = torch.unique(starts, dim=0).clone().requires_grad_(True)  # identical starts run once
    alive = torch.arange(len(codes), device=codes.device)  # the starts still being optimised
    prune_step = round(steps * PRUNE_AFTER)
    optimizer = torch.optim.Adam([codes], lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    with torch.enable_grad():
        for step in range(steps):
            images = generator.synthesize_with_grad(codes[alive], **conditioning)
            losses = pyramid_loss(images, target)  # (len(alive),)
            if step == prune_step and len(alive) > SURVIVORS:
                alive = alive[torch.argsort(losses.detach())[:SURVIVORS]]  # the dropped rows' gradient is 0
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward(inputs=[codes])  # the generator's weights get no gradient
            optimizer.step()
            schedule.step()
            if progress is not None:
                progress(step + 1, steps)

    found = codes.detach()[alive]  # (len(alive), *code_shape)
    scores = psnr(to_uint8(generator.synthesize(found, **conditioning)), target_pixels)  # (len(alive),)
    best = int(np.argmax(scores))
    return Inversion(found[best : best + 1].clone(), float(scores[best]), steps, target_pixels)
