"""config.yaml: validated on load, with errors that name the key; missing models never crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from sefa_core.config import load_config
from sefa_core.errors import ConfigError
from sefa_core.registry import load_generator, model_statuses, resolve_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    (tmp_path / "latent_codes").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_shipped_config_lists_the_default_model_as_available() -> None:
    config = load_config(REPO_ROOT / "config.yaml")
    statuses = model_statuses(config)
    assert statuses[0].entry.name == "default"
    assert statuses[0].available, statuses[0].reason
    assert config.codes_path(statuses[0].entry).is_file()


def test_a_model_whose_file_is_missing_is_listed_unavailable_with_the_reason(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            "models:\n  - {name: default, source: default}\n  - {name: ffhq, source: checkpoints/ffhq.pkl}\n",
        )
    )
    default, ffhq = model_statuses(config)
    assert default.available
    assert not ffhq.available
    assert "ffhq.pkl" in ffhq.reason and "not found" in ffhq.reason


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("models: [", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("models: []\n", "models: expected a non-empty list"),
        ("colour: blue\nmodels:\n  - {name: a, source: default}\n", "unknown key 'colour'"),
        ("models:\n  - {name: a, source: default, speed: 3}\n", "unknown key 'speed'"),
        ("models:\n  - {source: default}\n", "name: required"),
        ("models:\n  - {name: a, source: default, trunc_psi: high}\n", "trunc_psi: expected a number"),
        (
            "models:\n  - {name: a, source: default, trunc_psi: 1.5}\n",
            "trunc_psi: expected a number in [0, 1]",
        ),
        ("models:\n  - {name: a, source: default, trunc_layers: -1}\n", "trunc_layers"),
        ("models:\n  - {name: a, source: default, num_semantics: 0}\n", "num_semantics"),
        ("models:\n  - {name: a, source: default, slider: {min: 3, max: -3}}\n", "slider"),
        ("models:\n  - {name: a, source: default, layer_presets: [all]}\n", "layer_presets"),
        ("models:\n  - {name: a, source: ../../etc/passwd}\n", "inside checkpoints/"),
        ("models:\n  - {name: a, source: /etc/passwd}\n", "inside checkpoints/"),
        ("models:\n  - {name: a, source: checkpoints/../../x.pt}\n", "inside checkpoints/"),
        ("models:\n  - {name: a, source: default, codes: ../secret.npy}\n", "inside latent_codes/"),
        ("models:\n  - {name: a, source: default, codes: latent_codes/x.pkl}\n", "expected a .npy"),
        ("models:\n  - {name: a, source: default}\n  - {name: a, source: default}\n", "used twice"),
        ("version: 7\nmodels:\n  - {name: a, source: default}\n", "version"),
    ],
)
def test_invalid_config_is_refused_with_one_line_naming_the_key(
    tmp_path: Path, text: str, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_symlink_out_of_checkpoints_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "models:\n  - {name: a, source: checkpoints/link/x.pt}\n")
    (tmp_path / "checkpoints" / "link").symlink_to(tmp_path.parent)
    with pytest.raises(ConfigError, match="inside checkpoints/"):
        load_config(path)


def test_models_load_by_config_name_or_by_path(tmp_path: Path) -> None:
    config = load_config(REPO_ROOT / "config.yaml")
    by_name = load_generator("default", "cpu", config)
    path, entry = resolve_model("default", config)
    by_path = load_generator(path, "cpu", config)
    assert entry is not None and entry.name == "default"
    assert by_name.digest == by_path.digest


def test_an_unknown_model_name_lists_the_configured_ones() -> None:
    config = load_config(REPO_ROOT / "config.yaml")
    with pytest.raises(ConfigError, match="no model named 'nope'.*default"):
        resolve_model("nope", config)
