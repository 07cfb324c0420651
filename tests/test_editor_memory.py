"""Memory is bounded by the model cache (issue 16): a model the cache lets go is not kept alive by
the editor (no picker closure, no session state, no fragment holds a Generator).

The editor runs under AppTest in a child process, so that the cache size (SEFA_MAX_CACHED_MODELS)
is read fresh and no other test's models are counted.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from sefa_core.models.dcgan import DCGANGenerator

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_MODELS = 5
ROUNDS = 3
CACHE_SIZE = 2
IN_USE = 1  # the model the session shows
CHILD_TIMEOUT_S = 600


def write_studio(root: Path) -> Path:
    """config.yaml with five tiny DCGANs (different weights, so five different checkpoints)."""
    (root / "checkpoints").mkdir()
    lines = ["version: 1", "models:"]
    for k in range(NUM_MODELS):
        torch.manual_seed(k)
        torch.save(
            {"netG_state_dict": DCGANGenerator([8, 16, 8, 3]).state_dict()}, root / "checkpoints" / f"m{k}.pt"
        )
        lines += [f"  - name: m{k}", f"    source: checkpoints/m{k}.pt", "    num_semantics: 3"]
    (root / "config.yaml").write_text("\n".join(lines) + "\n")
    return root / "config.yaml"


def generators_alive() -> int:
    from sefa_core.models.base import Generator

    gc.collect()
    return sum(isinstance(thing, Generator) for thing in gc.get_objects())


def switch_models(config: str) -> list[dict[str, object]]:
    """In the child: open the editor, then show every model in turn, ROUNDS times; after each switch
    (and a slider move on it) count the generators still alive."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=CHILD_TIMEOUT_S).run()
    seen = []
    for round_ in range(ROUNDS):
        for k in range(NUM_MODELS):
            app.sidebar.selectbox(key="keep.model").set_value(f"m{k}").run()
            app.session_state["edit"] = app.session_state["edit"].with_alphas((1.0, 0.0, 0.0))
            app.run()
            assert not app.exception, app.exception[0].message
            seen.append({"round": round_, "model": f"m{k}", "alive": generators_alive()})
    return seen


def test_switching_models_keeps_at_most_the_cache_and_the_model_in_use_alive(tmp_path):
    config = write_studio(tmp_path)
    env = dict(os.environ, SEFA_CONFIG=str(config), SEFA_MAX_CACHED_MODELS=str(CACHE_SIZE))
    child = subprocess.run(
        [sys.executable, __file__, str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        cwd=REPO_ROOT,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    assert len(seen) == NUM_MODELS * ROUNDS
    assert max(s["alive"] for s in seen) <= CACHE_SIZE + IN_USE, seen
    assert seen[-1]["alive"] >= 1  # the count sees the model in use


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    print(json.dumps(switch_models(sys.argv[1])))
