"""Photo inversion: a generated face comes back, the code fits the editor, broken photos are refused."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fixture_dir
from PIL import Image

from sefa_core.cli import main
from sefa_core.codes import load_codes
from sefa_core.errors import PhotoError
from sefa_core.formats import load_checkpoint
from sefa_core.invert import fit_photo, invert_image, load_photo, psnr
from sefa_core.models.dcgan import DCGANGenerator
from sefa_core.render import to_uint8

TINY_CHANNELS = [8, 16, 8, 3]  # nz=8, 16x16 images: a DCGAN small enough to invert in a second
TARGET_SEED = 123
FAST_STEPS = 100
FAST_RESTARTS = 4  # more than SURVIVORS, so the weaker starts are dropped on the way
WEIGHT_STD = 0.3  # PyTorch's default init draws near-grey images; these span 0-255
GOOD_PSNR = 40.0  # dB; measured 64-67 on the tiny model, while its random starts give 7-9
FAR_PSNR = 20.0


@pytest.fixture(scope="module")
def tiny() -> DCGANGenerator:
    torch.manual_seed(0)
    generator = DCGANGenerator(TINY_CHANNELS).eval()
    with torch.no_grad():
        for conv in generator.main[::3]:  # the transposed convs; BatchNorm and ReLU follow each
            conv.weight.normal_(0.0, WEIGHT_STD)
    return generator


def _photo(generator, seed: int) -> Image.Image:
    """A face the model generated, as the PNG a user would upload."""
    return Image.fromarray(to_uint8(generator.synthesize(generator.sample(1, seed)))[0])


def test_a_generated_face_is_found_again(tiny: DCGANGenerator) -> None:
    photo = _photo(tiny, TARGET_SEED)
    steps_seen: list[tuple[int, int]] = []
    inversion = invert_image(tiny, photo, FAST_STEPS, FAST_RESTARTS, progress=lambda *p: steps_seen.append(p))
    starts = to_uint8(tiny.synthesize(tiny.sample(FAST_RESTARTS, 0)))
    assert psnr(starts, np.asarray(photo)).max() < FAR_PSNR  # the starts are far from it
    assert inversion.psnr >= GOOD_PSNR
    found = to_uint8(tiny.synthesize(inversion.code))[0]
    assert psnr(found[None], inversion.target)[0] == pytest.approx(inversion.psnr)  # the PSNR is the code's
    assert np.array_equal(inversion.target, np.asarray(photo))  # at the model's size nothing is resampled
    assert steps_seen == [(step, FAST_STEPS) for step in range(1, FAST_STEPS + 1)]


def test_the_code_has_the_shape_of_a_sampled_code(tiny: DCGANGenerator) -> None:
    inversion = invert_image(tiny, _photo(tiny, 1), steps=2, restarts=3)
    assert inversion.code.shape == tiny.sample(1, 0).shape == (1, TINY_CHANNELS[0])
    assert inversion.steps == 2


def test_stylegan2_inversion_edits_wplus_from_the_average_face() -> None:
    generator = load_checkpoint(fixture_dir("rosinality_stylegan2_32") / "checkpoint.pt", device="cpu")
    photo = _photo(generator, TARGET_SEED)
    average = to_uint8(generator.synthesize(generator.sample(1, 0, trunc_psi=0.0)))  # w_avg on every row
    inversion = invert_image(generator, photo, steps=10, restarts=4)
    assert inversion.code.shape == generator.sample(1, 0).shape == (1, generator.num_layers, 64)
    assert inversion.psnr > psnr(average, np.asarray(photo))[0] + 1.5  # it moved toward the photo


def test_cli_writes_a_code_the_editor_loads(tiny: DCGANGenerator, tmp_path: Path, capsys) -> None:
    checkpoint = tmp_path / "tiny.pt"
    torch.save({"netG_state_dict": tiny.state_dict()}, checkpoint)
    _photo(tiny, TARGET_SEED).save(tmp_path / "face.png")
    argv = ["invert", str(checkpoint), str(tmp_path / "face.png"), "-o", str(tmp_path / "code.npy")]
    code = main([*argv, "--steps", "3", "--restarts", "2", "--target-out", str(tmp_path / "crop.png")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert re.fullmatch(r"invert: PSNR \d+\.\d\d dB after 3 steps", lines[-1])
    assert load_codes(tmp_path / "code.npy", tiny).shape == (1, TINY_CHANNELS[0])
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "crop.png")), np.asarray(Image.open(tmp_path / "face.png"))
    )


@pytest.mark.parametrize(
    "content", [b"not a picture at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40], ids=["text", "png"]
)
def test_a_non_image_exits_2_with_one_line_naming_the_file(tmp_path: Path, capsys, content: bytes) -> None:
    photo = tmp_path / "holiday photo.png"
    photo.write_bytes(content)
    code = main(["invert", "default", str(photo), "-o", str(tmp_path / "code.npy")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and str(photo) in err and "Traceback" not in err
    assert not (tmp_path / "code.npy").exists()


def test_a_truncated_photo_is_refused_naming_the_file(tmp_path: Path) -> None:
    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:-200])
    with pytest.raises(PhotoError, match=re.escape(str(cut))):
        load_photo(cut)
    with pytest.raises(PhotoError, match="^selfie.png: a damaged PNG image"):
        load_photo(cut.read_bytes(), "selfie.png")  # an upload, named as the user called it
    assert load_photo(whole).size == load_photo(whole.read_bytes()).size == (64, 64)


def _bands(width: int, height: int) -> Image.Image:
    """Red, green and blue thirds along the longer side."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    long_side = max(width, height)
    for channel in range(3):
        band = slice(channel * long_side // 3, (channel + 1) * long_side // 3)
        if width >= height:
            pixels[:, band, channel] = 255
        else:
            pixels[band, :, channel] = 255
    return Image.fromarray(pixels)


@pytest.mark.parametrize("size", [(90, 30), (30, 90)], ids=["landscape", "portrait"])
def test_a_photo_is_centre_cropped_then_resized(size: tuple[int, int]) -> None:
    fitted = fit_photo(_bands(*size), 8)  # the centre square is the green band
    assert fitted.shape == (8, 8, 3) and fitted.dtype == np.uint8
    green, others = fitted[..., 1].astype(int), fitted[..., [0, 2]].astype(int)
    assert green.min() >= 235 and others.max() <= 20  # Lanczos reads a little of the margins at the edges
    assert (green[2:-2, 2:-2] >= 253).all() and (others[2:-2, 2:-2] <= 2).all()  # and rings by a level or two


def test_grey_and_transparent_photos_become_rgb() -> None:
    grey = Image.new("L", (20, 20), 128)
    transparent = Image.new("RGBA", (20, 20), (10, 20, 30, 0))
    assert (fit_photo(grey, 4) == 128).all()
    assert (fit_photo(transparent, 4) == [10, 20, 30]).all()
