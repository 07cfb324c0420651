"""The ``sefa`` command end to end on the default model, in-process."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sefa_core.cli import main
from sefa_core.codes import save_codes
from sefa_core.editing import apply_edits
from sefa_core.factorize import factorize
from sefa_core.recipe import Recipe, write_recipe
from sefa_core.render import to_uint8

REPO_ROOT = Path(__file__).resolve().parents[1]
PAD = 2  # the grid padding, px
SIZE = 64  # the default model's resolution


@pytest.fixture()
def config(tmp_path: Path) -> str:
    """A config with the default model and one whose file is absent."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "version: 1\nmodels:\n"
        "  - {name: default, source: default, num_semantics: 3}\n"
        "  - {name: absent, source: checkpoints/absent.pt}\n"
    )
    return str(path)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class _Rows(HTMLParser):
    """The body rows of a traversal page: (class, labels, number of images)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list] = []
        self._label = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([dict(attrs).get("class"), [], 0])
        elif tag == "th":
            self._label = True
        elif tag == "img":
            self.rows[-1][2] += 1

    def handle_endtag(self, tag: str) -> None:
        self._label = False

    def handle_data(self, data: str) -> None:
        if self._label and self.rows:
            self.rows[-1][1].append(data)


def _body_rows(path: Path) -> list[list]:
    parser = _Rows()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.rows[1:]  # after the "Distance" header row


def _grid_size(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of a PNG grid, as PIL reports it."""
    return cols * SIZE + (cols + 1) * PAD, rows * SIZE + (rows + 1) * PAD


def test_render_writes_both_pages_grids_and_gifs(capsys, config, tmp_path) -> None:
    out = tmp_path / "results"
    code, stdout, _ = _run(
        capsys, "--config", config, "render", "default", "-L", "0-1", "-N", "5", "-K", "5", "--start", "-3",
        "--end", "3", "--steps", "11", "--seed", "0", "--out", str(out), "--gif", "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    prefix = "default_N5_K5_L0-1_seed0"
    sample_first = _body_rows(out / f"{prefix}_sample_first.html")
    semantic_first = _body_rows(out / f"{prefix}_semantic_first.html")
    assert len(sample_first) == 5 * (5 + 1) and len(semantic_first) == 5 * (5 + 1)
    assert sample_first[0][1][0].startswith("Semantic 000 (") and sample_first[1][1] == ["Sample 000"]
    assert semantic_first[0][1] == ["Sample 000"] and semantic_first[1][1][0].startswith("Semantic 000 (")
    assert all(images == 11 for kind, _, images in sample_first if kind != "group")
    for n in range(5):
        assert Image.open(out / f"{prefix}_sample_{n:03d}.png").size == _grid_size(5, 11)
    for k in range(5):
        assert Image.open(out / f"{prefix}_semantic_{k:03d}.png").size == _grid_size(5, 11)
        gif = Image.open(out / f"{prefix}_semantic_{k:03d}.gif")
        assert gif.size == _grid_size(1, 5) and gif.n_frames == 11 + 9  # there and back
    assert "rendered 275 images" in stdout and " s\n" in stdout


def test_render_groups_rows_as_the_reference_pages_do(capsys, config, tmp_path) -> None:
    code, _, _ = _run(
        capsys,
        "--config",
        config,
        "render",
        "default",
        "-N",
        "2",
        "-K",
        "3",
        "--steps",
        "3",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    prefix = "default_N2_K3_Lall_seed0"
    assert len(_body_rows(tmp_path / f"{prefix}_sample_first.html")) == 3 * (2 + 1)
    assert len(_body_rows(tmp_path / f"{prefix}_semantic_first.html")) == 2 * (3 + 1)
    assert not list(tmp_path.glob("*.gif")), "GIFs only when asked"


def test_render_takes_k_from_the_config_and_codes_from_a_file(
    capsys, config, tmp_path, default_generator
) -> None:
    codes = save_codes(tmp_path / "mine.npy", default_generator.sample(4, seed=9))
    code, stdout, _ = _run(
        capsys,
        "--config",
        config,
        "render",
        "default",
        "--codes",
        str(codes),
        "--steps",
        "2",
        "--out",
        str(tmp_path),
    )
    assert code == 0 and "4 samples x 3 semantics x 2 steps" in stdout
    assert (tmp_path / "default_N4_K3_Lall_codes-mine_sample_first.html").is_file()


def test_factorize_saves_plain_arrays(capsys, config, tmp_path, default_generator) -> None:
    target = tmp_path / "directions.npz"
    code, stdout, _ = _run(capsys, "--config", config, "factorize", "default", "-L", "all", "-o", str(target))
    assert code == 0 and str(target) in stdout
    semantics = factorize(default_generator)
    with np.load(target, allow_pickle=False) as saved:
        keys = {"directions", "eigenvalues", "layers", "method", "layer_energy", "digest", "spec", "model"}
        assert set(saved.files) == keys
        assert all(saved[key].dtype != object for key in saved.files)
        assert np.array_equal(saved["directions"], semantics.directions)
        assert np.array_equal(saved["eigenvalues"], semantics.eigenvalues)
        assert saved["layers"].tolist() == [0] and str(saved["spec"]) == "all"
        assert str(saved["digest"]) == default_generator.digest and str(saved["model"]) == "default"


def test_models_lists_what_can_be_loaded_and_why_not(capsys, config) -> None:
    code, stdout, _ = _run(capsys, "--config", config, "models")
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "REASON"]
    assert lines[1].split()[:2] == ["default", "available"]
    assert lines[2].split()[:2] == ["absent", "missing"] and "absent.pt" in lines[2]
    code, stdout, _ = _run(capsys, "--config", config, "models", "--verbose")
    assert code == 0 and "architecture" in stdout and "dcgan" in stdout and "latent_dim" in stdout


def test_apply_reproduces_the_exact_pixels_of_an_exported_recipe(
    capsys, config, tmp_path, default_generator
) -> None:
    base = default_generator.sample(1, seed=21)
    alphas = {0: 2.5, 3: -1.75}
    recipe = Recipe("default", default_generator.digest, "all", tuple(alphas.items()), code=base)
    path = write_recipe(tmp_path / "edit.yaml", recipe)
    edited = apply_edits(base, factorize(default_generator), alphas)
    expected = to_uint8(default_generator.synthesize(edited))[0]
    image, codes_out = tmp_path / "out.png", tmp_path / "code.npy"
    code, _, _ = _run(
        capsys, "--config", config, "apply", str(path), "-o", str(image), "--codes-out", str(codes_out)
    )
    assert code == 0
    assert np.array_equal(np.asarray(Image.open(image).convert("RGB")), expected)
    assert np.array_equal(np.load(codes_out, allow_pickle=False), edited.numpy())


def test_apply_refuses_a_recipe_made_for_another_checkpoint(capsys, config, tmp_path) -> None:
    path = write_recipe(tmp_path / "edit.yaml", Recipe("default", "cd" * 32, "all", [(0, 1.0)], seed=0))
    code, _, stderr = _run(capsys, "--config", config, "apply", str(path), "-o", str(tmp_path / "x.png"))
    assert code == 2 and stderr.count("\n") == 1 and "sha256 cdcdcdcdcdcd" in stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["render", "nosuch"], "no model named 'nosuch'"),
        (["render", "default", "-L", "5-2"], "layer range '5-2' is reversed"),
        (["render", "default", "-K", "101"], "-K 101: this model has only 100 directions"),
        (["render", "default", "--codes", "missing.npy"], "missing.npy: no such file"),
        (["factorize", "default", "-L", "x", "-o", "d.npz"], "cannot read 'x'"),
        (["apply", "missing.yaml", "-o", "x.png"], "missing.yaml: no such recipe file"),
        (["pick-codes", "default", "-n", "30", "--pool", "10", "-o", "c.npy"], "cannot pick 30 codes"),
    ],
)
def test_user_errors_are_one_line_and_exit_code_2(
    capsys, config, tmp_path, monkeypatch, argv, message
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _run(capsys, "--config", config, *argv)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("sefa: error: ") and message in stderr
    assert "Traceback" not in stderr


def test_debug_shows_the_traceback(capsys, config) -> None:
    code, _, stderr = _run(capsys, "--config", config, "render", "nosuch", "--debug")
    assert code == 2 and "Traceback" in stderr and "ConfigError" in stderr
    code, _, stderr = _run(capsys, "--config", config, "render", "nosuch")
    assert "Traceback" not in stderr, "the debug log is switched off again after the command"


def test_usage_errors_exit_2_and_help_exits_0(capsys) -> None:
    assert main(["render"]) == 2
    assert "MODEL" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "pick-codes" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sefa_core", "render", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0 and "--steps" in result.stdout
