"""The embedded default model: the DigiFace1M face DCGAN shipped in gan-face-generate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sefa_core import apply_edits, factorize
from sefa_core.default_model import default_checkpoint_path
from sefa_core.errors import LayerSpecError


def test_default_model_is_a_64px_dcgan_with_a_100_dim_latent(default_generator) -> None:
    info = default_generator.describe()
    assert info["architecture"] == "dcgan"
    assert (info["resolution"], info["latent_dim"], info["num_layers"]) == (64, 100, 1)
    assert info["format"] == "PyTorch-tutorial DCGAN"
    assert default_checkpoint_path().name == "weights.tar"


def test_default_model_renders_faces_in_the_tanh_range(default_generator) -> None:
    images = default_generator.synthesize(default_generator.sample(4, seed=0))
    assert images.shape == (4, 3, 64, 64)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.2  # a face, not a flat image


def test_default_model_samples_are_reproducible_from_the_seed(default_generator) -> None:
    a = default_generator.synthesize(default_generator.sample(2, seed=5))
    b = default_generator.synthesize(default_generator.sample(2, seed=5))
    c = default_generator.synthesize(default_generator.sample(2, seed=6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_default_model_uses_its_first_layer_whatever_the_spec(default_generator) -> None:
    assert factorize(default_generator, "0-1").layers == (0,)
    try:
        factorize(default_generator, "1-0")
    except LayerSpecError as error:
        assert "reversed" in str(error)
    else:
        raise AssertionError("a reversed spec must be refused even for single-layer models")


def test_top_semantic_changes_the_face_more_than_a_low_one(default_generator) -> None:
    semantics = factorize(default_generator)
    codes = default_generator.sample(8, seed=1)
    base = default_generator.synthesize(codes)
    top = default_generator.synthesize(apply_edits(codes, semantics, {0: 3.0}))
    low = default_generator.synthesize(apply_edits(codes, semantics, {99: 3.0}))
    assert (top - base).abs().mean() > 2 * (low - base).abs().mean()
    assert semantics.eigenvalues[0] > 5 * semantics.eigenvalues[-1]
    assert np.isclose(np.linalg.norm(semantics.directions[0]), 1.0)


def test_an_unreadable_spec_on_a_one_layer_model_names_its_real_layer(default_generator) -> None:
    with pytest.raises(LayerSpecError, match="one factorizable layer, 0") as caught:
        default_generator.resolve_layers("abc")
    assert "999999" not in str(caught.value)
