"""StyleGAN2's modulated conv in both forms: fused (per-sample weights as conv groups) and batched
(styles on the input channels, one shared-weight conv, demodulation on the outputs).

The CPU runs the batched form, in place where autograd is off; these tests pin that it draws the
same images as the fused form and as the reference fixtures, with autograd on and off.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import fixture_dir
from test_stylegan2 import _tiny_generator

from sefa_core.formats import load_checkpoint
from sefa_core.models import stylegan2
from sefa_core.models.stylegan2 import modulated_conv2d

BATCHES = (1, 5)
IMAGE_ATOL = 1e-3  # the fixtures' README: images of an independent re-implementation
# The two forms differ by float32 rounding only: a few ulps of the activations (|x| ~ 1-10).
FORMS_ATOL = 1e-4
CHANNELS_IN, CHANNELS_OUT, SIZE = 6, 5, 8


def _images(
    generator: stylegan2.StyleGAN2Generator, codes: torch.Tensor, fused: bool, monkeypatch
) -> torch.Tensor:
    monkeypatch.setattr(stylegan2, "fused_modulation", lambda x: fused)
    return generator.synthesize(codes)


def _conv_inputs(batch: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(batch * 10 + kernel)
    x = torch.randn(batch, CHANNELS_IN, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(CHANNELS_OUT, CHANNELS_IN, kernel, kernel)
    styles = torch.randn(batch, CHANNELS_IN)  # negative styles too: nothing may assume a sign
    return x, weight, styles


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("kernel", "up"), [(3, False), (3, True), (1, False)])
@pytest.mark.parametrize("demodulate", [True, False])
def test_fused_and_batched_modulated_conv_agree(batch, kernel, up, demodulate):
    x, weight, styles = _conv_inputs(batch, kernel)
    with torch.inference_mode():
        fused = modulated_conv2d(x, weight, styles, demodulate=demodulate, fused=True, up=up)
        batched = modulated_conv2d(
            x.clone(), weight, styles, demodulate=demodulate, fused=False, up=up, overwrite_input=True
        )
    assert batched.shape == fused.shape
    diff = (batched - fused).abs().max().item()
    assert diff <= FORMS_ATOL, f"max abs diff {diff:.3g}"


def test_each_sample_of_a_batch_matches_its_own_single_image_conv():
    """Batching must not mix samples: sample i of a batch is sample i convolved alone."""
    x, weight, styles = _conv_inputs(5, 3)
    with torch.inference_mode():
        batched = modulated_conv2d(x, weight, styles, demodulate=True, fused=False)
        alone = [
            modulated_conv2d(x[i : i + 1], weight, styles[i : i + 1], demodulate=True, fused=True)
            for i in range(5)
        ]
    diff = (batched - torch.cat(alone)).abs().max().item()
    assert diff <= FORMS_ATOL, f"max abs diff {diff:.3g}"


@pytest.mark.parametrize("batch", BATCHES)
def test_fused_and_batched_generators_draw_the_same_images(batch, monkeypatch):
    generator = _tiny_generator(3, conv_clamp=0.5)  # a tight clamp, so the clamp path is exercised
    codes = generator.to_edit_space(generator.sample_latents(batch, seed=7))
    fused = _images(generator, codes, True, monkeypatch)
    batched = _images(generator, codes, False, monkeypatch)
    assert fused.is_contiguous() and batched.is_contiguous(), "images leave channels-last behind"
    diff = (batched - fused).abs().max().item()
    assert diff <= FORMS_ATOL, f"max abs diff {diff:.3g}"


def test_batched_form_keeps_autograd_working_and_draws_the_same_images(monkeypatch):
    """Photo inversion back-propagates through synthesis: nothing there may run in place."""
    monkeypatch.setattr(stylegan2, "fused_modulation", lambda x: False)
    generator = _tiny_generator(4)
    codes = generator.to_edit_space(generator.sample_latents(3, seed=1))
    without_grad = generator.synthesize(codes)
    leaf = codes.clone().requires_grad_(True)
    with torch.enable_grad():
        images = generator.synthesis(leaf)
        images.square().sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0
    diff = (images.detach() - without_grad).abs().max().item()
    assert diff <= FORMS_ATOL, f"max abs diff {diff:.3g}"


def test_rendering_leaves_the_codes_untouched():
    """In-place work is on activations only: the caller's W+ codes come back unchanged."""
    generator = _tiny_generator(5)
    codes = generator.to_edit_space(generator.sample_latents(2, seed=2))
    before = codes.clone()
    generator.synthesize(codes)
    assert torch.equal(codes, before)


@pytest.mark.fixtures
@pytest.mark.parametrize("fused", [True, False])
def test_both_forms_match_the_nvidia_reference_images(fused, monkeypatch):
    folder = fixture_dir("nvidia_stylegan2ada_32")
    generator = load_checkpoint(folder / "nvidia_state.pt", device="cpu")
    codes = torch.from_numpy(np.load(folder / "wp.npy"))  # (8, num_ws, w_dim): a batch of 8
    images = _images(generator, codes, fused, monkeypatch)
    diff = float(np.abs(images.numpy().astype(np.float64) - np.load(folder / "img.npy")).max())
    assert diff <= IMAGE_ATOL, f"max abs diff {diff:.3g} > {IMAGE_ATOL:g}"


@pytest.mark.parametrize("fused", [True, False])
def test_a_batch_whose_large_maps_go_in_chunks_draws_the_same_images(fused, monkeypatch):
    """Past ``TAIL_CHUNK_BYTES`` the high-resolution layers run a few samples at a time."""
    monkeypatch.setattr(stylegan2, "fused_modulation", lambda x: fused)
    generator = _tiny_generator(4)  # 16 px
    codes = generator.to_edit_space(generator.sample_latents(5, seed=3))
    whole = generator.synthesize(codes)
    largest = max(stylegan2.map_numel(conv) for conv in generator.synthesis.convs)
    monkeypatch.setattr(stylegan2, "TAIL_CHUNK_BYTES", 2 * largest * 4)  # two samples of the largest map
    assert generator.synthesis.chunk_size(torch.float32) == 2
    calls: list[int] = []
    last = generator.synthesis.convs[-1]
    monkeypatch.setattr(last, "forward", lambda x, *args, f=last.forward: calls.append(len(x)) or f(x, *args))
    chunked = generator.synthesize(codes)
    assert calls == [2, 2, 1], "the last layer ran in chunks of two samples"
    diff = (chunked - whole).abs().max().item()
    assert diff <= FORMS_ATOL, f"max abs diff {diff:.3g}"


def test_new_weights_loaded_in_place_draw_their_own_images_not_the_kept_ones(monkeypatch):
    """The batched form keeps what it derives from each weight (``ModulatedConv2d.terms``); loading
    other weights into the same modules must draw what a model built with those weights draws."""
    generator, other = _tiny_generator(3), _tiny_generator(4)
    codes = generator.to_edit_space(generator.sample_latents(2, seed=7))
    before = _images(generator, codes, False, monkeypatch)  # derives and keeps the terms
    generator.load_state_dict(other.state_dict())  # copies in place: same tensors, new values
    after = _images(generator, codes, False, monkeypatch)
    expected = _images(other, codes, False, monkeypatch)
    assert (after - before).abs().max().item() > 0.1, "the new weights changed nothing"
    diff = (after - expected).abs().max().item()
    assert diff <= FORMS_ATOL, f"max abs diff {diff:.3g} from a model built with the new weights"


def test_photo_inversion_can_backpropagate_through_terms_a_render_kept(monkeypatch):
    """A render keeps the terms under inference mode; inversion's autograd pass must accept them."""
    generator = _tiny_generator(3).requires_grad_(False)
    codes = generator.to_edit_space(generator.sample_latents(2, seed=7))
    _images(generator, codes, False, monkeypatch)  # terms kept while inference mode is on
    codes = codes.clone().requires_grad_(True)
    generator.synthesize_with_grad(codes).square().mean().backward()
    assert codes.grad is not None and codes.grad.abs().max().item() > 0
