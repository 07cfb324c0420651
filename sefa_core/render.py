"""Tensors -> pictures: uint8 images, encoded bytes, grids, HTML pages and GIFs."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

LIVE_FORMAT = "JPEG"  # the live view: JPEG encodes ~60x faster than PNG at 1024 px
LIVE_QUALITY = 90


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output (N, 3, H, W) in about [-1, 1] -> uint8 (N, H, W, 3)."""
    assert images.ndim == 4 and images.shape[1] == 3, "images must be (N, 3, H, W)"
    scaled = (images.detach().float().clamp(-1, 1) + 1) * 127.5  # [-1, 1] -> [0, 255]
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)


def encode_image(pixels: np.ndarray, image_format: str = LIVE_FORMAT, quality: int = LIVE_QUALITY) -> bytes:
    """One uint8 (H, W, 3) image -> encoded bytes (JPEG for the live view, PNG for exports)."""
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8, "pixels (H, W, 3) uint8"
    buffer = io.BytesIO()
    options = {"quality": quality} if image_format.upper() in ("JPEG", "WEBP") else {}
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()
