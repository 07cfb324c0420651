"""BigGAN and StyleGAN3 get the same experience as every other model: list, factorize, render.

Runs on small checkpoints the tests build (no fixtures needed), through the `sefa` command, and
checks that the hostile variants of both formats are refused without running anything.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from pickle_factory import write_network_pickle
from PIL import Image
from test_biggan import TINY_CONFIG, reference_state_dict, write_checkpoint
from test_stylegan3 import make_stylegan3_state

from sefa_core.cli import main
from sefa_core.errors import CheckpointError
from sefa_core.formats import load_checkpoint

PAD = 2  # the grid padding, px
BN_LINEARS_PER_BLOCK = 8  # bn_0..bn_3, each a scale and an offset linear that reads z
STYLEGAN3_KWARGS = {"z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 32, "img_channels": 3}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config listing a tiny BigGAN folder, a StyleGAN3-t .pkl and a StyleGAN3-r state dict."""
    root = tmp_path_factory.mktemp("models")
    checkpoints = root / "checkpoints"
    write_checkpoint(checkpoints / "biggan", TINY_CONFIG, reference_state_dict(TINY_CONFIG))
    write_network_pickle(checkpoints / "sg3t.pkl", make_stylegan3_state("t"), STYLEGAN3_KWARGS)
    torch.save(make_stylegan3_state("r"), checkpoints / "sg3r.pt")
    (root / "config.yaml").write_text(
        "version: 1\nmodels:\n"
        "  - {name: biggan, source: checkpoints/biggan}\n"
        "  - {name: sg3t, source: checkpoints/sg3t.pkl, trunc_psi: 0.7}\n"
        "  - {name: sg3r, source: checkpoints/sg3r.pt}\n"
    )
    return root / "config.yaml"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sefa_models_lists_biggan_and_stylegan3_as_available(capsys, models: Path) -> None:
    code, out, _ = _run(capsys, "--config", str(models), "models", "--verbose")
    assert code == 0
    for name, architecture in (("biggan", "biggan"), ("sg3t", "stylegan3"), ("sg3r", "stylegan3")):
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert "available" in line
        assert architecture in out


@pytest.mark.parametrize(
    ("name", "layers", "rows"),
    [
        ("biggan", "0", 1),
        ("biggan", "all", 1 + BN_LINEARS_PER_BLOCK * len(TINY_CONFIG["layers"])),
        ("sg3t", "0-2", 3),
    ],
)
def test_sefa_factorize_writes_sorted_directions_for_new_architectures(
    capsys, models: Path, tmp_path: Path, name: str, layers: str, rows: int
) -> None:
    out = tmp_path / "directions.npz"
    code, _, err = _run(capsys, "--config", str(models), "factorize", name, "-L", layers, "-o", str(out))
    assert code == 0, err
    with np.load(out, allow_pickle=False) as saved:
        values = saved["eigenvalues"]
        assert np.all(np.diff(values) <= 1e-9)
        np.testing.assert_allclose(np.linalg.norm(saved["directions"], axis=1), 1.0, atol=1e-9)
        assert len(saved["layers"]) == rows


@pytest.mark.parametrize("name", ["biggan", "sg3t", "sg3r"])
def test_sefa_render_works_on_a_small_checkpoint_of_each_new_architecture(
    capsys, models: Path, tmp_path: Path, name: str
) -> None:
    code, out, err = _run(
        capsys, "--config", str(models), "render", name, "-N", "2", "-K", "3", "--steps", "4",
        "--out", str(tmp_path), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "rendered 24 images" in out
    prefix = f"{name}_N2_K3_Lall_seed0"
    assert (tmp_path / f"{prefix}_sample_first.html").is_file()
    assert (tmp_path / f"{prefix}_semantic_first.html").is_file()
    size = 32  # both tiny models draw 32x32 images
    grid = Image.open(tmp_path / f"{prefix}_sample_000.png")
    assert grid.size == (4 * size + 5 * PAD, 3 * size + 4 * PAD)
    pixels = np.asarray(grid)
    assert pixels[PAD : PAD + size, PAD : PAD + size].std() > 0, "a real image, not a blank cell"


# ---- hostile variants of both formats --------------------------------------------------------
class _Gadget:
    """Pickles as ``os.system("touch MARKER")``: what a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_biggan_folder_whose_weights_hold_a_gadget_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "biggan"
    marker = tmp_path / "ran"
    state = reference_state_dict(TINY_CONFIG)
    write_checkpoint(folder, TINY_CONFIG, {**state, "payload": _Gadget(marker)})
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(folder, device="cpu")
    assert "'posix.system'" in str(caught.value) or "'os.system'" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not marker.exists()


def test_stylegan3_pickle_whose_module_source_would_run_code_is_loaded_without_running_it(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "module-src-ran"
    source = f"open({str(marker)!r}, 'w').close()\nraise SystemExit\n"
    path = write_network_pickle(
        tmp_path / "sg3.pkl", make_stylegan3_state("t"), STYLEGAN3_KWARGS, module_src=source
    )
    generator = load_checkpoint(path, device="cpu")
    assert generator.architecture == "stylegan3"
    assert generator.synthesize(generator.sample(1, seed=0)).shape == (1, 3, 32, 32)
    assert not marker.exists()


def test_stylegan3_pickle_with_a_gadget_beside_the_network_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    # A protocol-3 snapshot has no frames, so one more object can follow the network: the gadget,
    # then POP and STOP. The usual unpickler would call os.system on its way to the end.
    good = write_network_pickle(tmp_path / "sg3.pkl", make_stylegan3_state("t"), STYLEGAN3_KWARGS, protocol=3)
    gadget_ops = pickle.dumps(_Gadget(marker), protocol=2)[2:-1]  # without PROTO and STOP
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(good.read_bytes()[:-1] + gadget_ops + b"0.")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(hostile, device="cpu")
    assert "system'" in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()
