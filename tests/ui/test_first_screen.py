"""The question answered on the opening page, the links into Layer counts, the tour's step and presenter mode
in the address (AppTest; the browser tests look at both screen sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.analysis.counting import count_layers
from explorer.nets import make_config

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES = ROOT / "explorer" / "ui" / "pages"


def param(page: AppTest, name: str) -> str | None:
    value = page.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def opened(page: str, **params: str) -> AppTest:
    """A page run as a link with these query parameters opens it."""
    test = AppTest.from_file(str(PAGES / page), default_timeout=300)
    for name, value in params.items():
        test.query_params[name] = value
    return test.run()


def metrics(page: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in page.metric}


@pytest.mark.parametrize("variant", ["released", "paper-v2", "inception-v4"])
def test_opening_page_answers_with_the_quoted_figures_of_the_variant(variant):
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["variant"] = variant
    app.run()
    assert not app.exception and not app.error
    counts = count_layers(make_config(variant))
    shown = metrics(app)
    for key, label in [
        ("longest_conv_fc_path", "deep"),
        ("conv_layers", "convolutions"),
        ("weighted_layers", "layers with weights"),
        ("keras_layers", "Keras layers"),
    ]:
        assert shown[label] == str(counts.convention(key).total), (variant, key)
    network = make_config(variant).network
    assert f"How many layers does {network} have?" in [h.value for h in app.subheader]
    # each figure links to its row of the Layer counts page
    links = [(link.proto.page, link.proto.query_string) for link in app.get("page_link")]
    keys = ["longest_conv_fc_path", "conv_layers", "weighted_layers", "keras_layers"]
    assert [q for page, q in links if "convention=" in q] == [f"convention={k}" for k in keys]
    assert all(page.endswith("counts") for page, q in links if "convention=" in q), links
    if variant == "paper-v2":  # never published trained: the Weights box says which networks were
        said = " ".join(c.value for c in app.sidebar.caption)
        assert "Real weights exist for released (10/20/10 blocks) and inception-v4 (4/7/3 blocks)" in said
    why = " ".join(i.value for i in app.info)
    assert "And 164?" in why and "176" in why  # the figure nobody can reproduce, and why not


def test_opening_page_figures_follow_the_released_blocks_and_name_what_they_reproduce():
    app = AppTest.from_file(APP, default_timeout=300).run()
    captions = " ".join(c.value for c in app.caption)
    assert "Published as **Depth 449 (Keras applications table)**" in captions
    assert "Published as **about 780 layers (len(model.layers) in Keras)**" in captions
    app.sidebar.slider[0].set_value(5).run()  # 5 Inception-ResNet-A blocks: a network nobody published
    counts = count_layers(make_config("released", repeats=(5, 20, 10)))
    assert metrics(app)["layers with weights"] == str(counts.convention("weighted_layers").total)
    assert "Published as" not in " ".join(c.value for c in app.caption)


def test_counts_page_opens_on_the_convention_in_the_link():
    page = opened("counts.py", convention="weighted_layers")
    assert not page.exception and not page.error
    assert page.selectbox(key="convention").value == "Layers with weights (Keras 'Depth')"
    assert any("449" in str(m.value) for m in page.metric)
    page.selectbox(key="convention").set_value("Convolutions").run()
    assert param(page, "convention") == "conv_layers"  # the pick goes back into the address
    bad = opened("counts.py", convention="floors")
    assert not bad.exception and "No convention called “floors”" in bad.error[0].value
    assert "convention" not in bad.query_params  # said once, then gone from the address


def test_tour_step_is_in_the_address_and_the_buttons_move_it():
    page = opened("tour.py", step="3")
    assert not page.exception and not page.error
    assert page.select_slider(key="tour_step").value == "3. Reduction-A"
    assert "Reduction-A" in [h.value for h in page.subheader]
    page.button(key="step_next").click().run()
    assert param(page, "step") == "4" and page.select_slider(key="tour_step").value == "4. Inception-ResNet-B"
    page.button(key="step_previous").click().run()
    page.button(key="step_previous").click().run()
    assert param(page, "step") == "2" and "Inception-ResNet-A x10" in [h.value for h in page.subheader]
    page.select_slider(key="tour_step").set_value(page.select_slider(key="tour_step").options[-1]).run()
    assert param(page, "step") == "7" and page.button(key="step_next").disabled
    for bad in ("0", "8", "two"):
        wrong = opened("tour.py", step=bad)
        assert not wrong.exception and f"?step={bad} is not a step of the tour" in wrong.error[0].value


def test_presenter_mode_by_address_and_by_toggle():
    app = AppTest.from_file(APP, default_timeout=300)
    app.query_params["present"] = "1"
    app.run()
    assert not app.exception
    assert app.session_state["present"] and param(app, "present") == "1"
    assert any("stSidebar" in h.proto.body for h in app.get("html"))  # the sidebar hidden, type enlarged
    app.button(key="leave_present").click().run()
    assert not app.session_state["present"] and param(app, "present") is None
    assert not any("stSidebar" in h.proto.body for h in app.get("html"))
    app.sidebar.toggle(key="present_toggle").set_value(True).run()
    assert app.session_state["present"] and param(app, "present") == "1"
    wrong = AppTest.from_file(APP, default_timeout=300)
    wrong.query_params["present"] = "maybe"
    wrong.run()
    assert not wrong.exception and "?present=maybe is not understood" in wrong.error[0].value


def test_presenter_steps_through_the_map():
    from explorer.drawing.netmap import presentation_path
    from explorer.nets import build_model

    page = AppTest.from_file(str(PAGES / "map.py"), default_timeout=300)
    page.session_state["present"] = True
    page.run()
    assert not page.exception
    path = presentation_path(build_model("released"))
    assert path[:5] == ["", "stem", "mixed_5b", "block_a", "repeat.0"] and path[-1] == "head"
    for expected in path[1:4]:
        page.button(key="step_next").click().run()
        assert not page.exception and param(page, "node") == expected
    page.query_params["node"] = "repeat_1.7.branch1.1"  # deep inside: the step is its block's run
    page.run()
    assert "Step 8 of 13" in " ".join(m.value for m in page.markdown)
    page.button(key="step_next").click().run()
    assert param(page, "node") == "mixed_7a"
