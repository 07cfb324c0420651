"""Regressions the editor once had, each replayed exactly as the browser sends it.

A Reset clicked while a slider's request was still on its way: the late request (values from before
the Reset) must not put the slider back.

A model switch merged with a slider release (bb07ec1): a slider's last ("final") request that
Streamlit folds into the full rerun of a sidebar change must leave that rerun whole. Before the fix
the slider callback asked for a fragment-only rerun, which replaced the full one: the picker showed
the new model, the page the old one.
"""

from __future__ import annotations

import json

import test_app
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates
from streamlit.testing.v1 import AppTest
from test_app import edit, no_errors

# test_app.py's studio and fixtures, shared by name
studio, app, generator, downloads = test_app.studio, test_app.app, test_app.generator, test_app.downloads
SLIDER_BANK_KEY = "sliders"


def slider_release(app: AppTest, alphas: list[float], revision: int | None = None) -> WidgetState:
    """The state the slider bank sends when a slider is let go: the new values, a new seq, final,
    and the revision of the values it started from (the one shown, unless given)."""
    bank = next(e for e in app.get("bidi_component") if e.proto.id.endswith(f"-{SLIDER_BANK_KEY}"))
    data = test_app.component_data(app, SLIDER_BANK_KEY)
    live = {"alphas": alphas, "seq": data["ack"] + 1, "final": True, "revision": revision or data["revision"]}
    state = WidgetState(id=bank.proto.id)
    state.json_value = json.dumps({"live": live})
    return state


def run_merged(app: AppTest, extra: WidgetState) -> AppTest:
    """One full rerun carrying every widget's state (the sidebar change among them) and ``extra``."""
    states = app._tree.get_widget_states()
    merged = WidgetStates()
    merged.widgets.extend([w for w in states.widgets if w.id != extra.id] + [extra])
    return app._run(merged)


def test_a_model_switch_merged_with_a_slider_release_shows_the_new_model(app):
    release = slider_release(app, [0.0, 3.0, 0.0, 0.0, 0.0, 0.0])
    app.sidebar.selectbox(key="keep.model").set_value("tiny")
    run_merged(app, release)
    no_errors(app)
    assert edit(app).model == "tiny"  # the switch was carried out
    assert app.title[0].value == "tiny" and len(test_app.component_data(app, SLIDER_BANK_KEY)["labels"]) == 4


def test_a_slider_release_alone_still_refreshes_the_exports(app, downloads):
    release = slider_release(app, [0.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    run_merged(app, release)
    no_errors(app)
    assert edit(app).alphas[1] == 2.0


def test_a_reset_merged_with_a_slider_release_from_before_it_wins(app):
    test_app.set_sliders(app, (0.0, 0.0, 4.0, 0.0, 0.0, 0.0))
    before = test_app.component_data(app, SLIDER_BANK_KEY)["revision"]
    app.button(key="reset").click().run()
    assert edit(app).alphas == (0.0,) * 6
    run_merged(app, slider_release(app, [0.0, 0.0, 4.0, 0.0, 0.0, 0.0], revision=before))  # arrives late
    no_errors(app)
    assert edit(app).alphas == (0.0,) * 6
