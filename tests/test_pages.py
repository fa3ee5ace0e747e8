"""Each page's logic through Streamlit's AppTest (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.model import make_config
from explorer.summary import summarize
from tests.conftest import CPU_PRECISION

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def test_network_page_shows_the_released_summary(app):
    assert not app.exception
    summary = summarize(make_config("released"))
    assert metric(app, "Parameters") == f"{summary.params / 1e6:.2f} M"
    table = app.dataframe[0].value
    assert table["component"].tolist() == [c.title for c in summary.components]
    assert table["parameters"].sum() == summary.params
    assert table.loc[table["component"] == "Mixed_5b", "output (HxWxC)"].item() == "35x35x320"


def test_network_page_follows_variant_and_repeats(app):
    app.sidebar.selectbox[0].select("paper-v2").run()
    assert not app.exception
    summary = summarize(make_config("paper-v2"))
    assert metric(app, "Parameters") == f"{summary.params / 1e6:.2f} M"
    contradictions = app.dataframe[1].value
    assert contradictions["paper says"].tolist() == [1154, 2146, 2048]
    app.sidebar.slider[0].set_value(2).run()
    titles = app.dataframe[0].value["component"].tolist()
    assert "Inception-ResNet-A x2" in titles
    fewer = summarize(make_config("paper-v2", repeats=(2, 10, 5)))
    assert metric(app, "Parameters") == f"{fewer.params / 1e6:.2f} M"


COUNTS_PAGE = str(Path(__file__).resolve().parent.parent / "explorer" / "pages" / "counts.py")


def test_counts_page_answers_with_every_convention():
    from explorer.counting import count_layers

    page = AppTest.from_file(COUNTS_PAGE, default_timeout=300).run()
    assert not page.exception
    counts = count_layers(make_config("released"))
    answer = page.dataframe[0].value
    assert answer["convention"].tolist() == [c.name for c in counts.conventions]
    assert answer["total"].tolist() == [c.total for c in counts.conventions]
    assert metric(page, "Total") == str(counts.conventions[0].total)
    page.selectbox(key="convention").select("Layers with weights (Keras 'Depth')").run()
    assert metric(page, "Total") == "449"
    figures = page.dataframe[2].value
    assert figures.loc[figures["figure"] == "164 layers deep", "reproduced"].item() == "no"
    claims = page.dataframe[3].value
    assert {"true", "false", "partly"} <= set(claims["verdict"])
    labels = [b.label for b in page.get("download_button")]
    assert labels == ["Download CSV", "Download JSON"]


def test_counts_page_follows_the_repeats_slider():
    from explorer.counting import count_layers

    page = AppTest.from_file(COUNTS_PAGE, default_timeout=300).run()
    page.sidebar.slider[0].set_value(5).run()  # ten A blocks down to five
    assert not page.exception
    counts = count_layers(make_config("released", repeats=(5, 20, 10)))
    assert page.dataframe[0].value["total"].tolist() == [c.total for c in counts.conventions]
    assert "Inception-ResNet-A x5" in page.dataframe[1].value["component"].tolist()


GRAPH_PAGE = str(Path(__file__).resolve().parent.parent / "explorer" / "pages" / "graph.py")


def test_graph_page_draws_the_overview_and_drills_into_a_block():
    page = AppTest.from_file(GRAPH_PAGE, default_timeout=300).run()
    assert not page.exception
    chart = page.get("graphviz_chart")[0].proto.spec
    assert "Block35 x 10" in chart and "17x17x1088" in chart
    page.radio(key="graph_view").set_value("One block").run()
    page.selectbox(key="graph_block").select("mixed_7a").run()
    assert not page.exception
    chart = page.get("graphviz_chart")[0].proto.spec
    assert "3x3 conv, 320, stride 2, valid" in chart
    rows = page.dataframe[0].value
    assert rows["module"].iloc[0] == "mixed_7a" and rows["params"].iloc[0] == 3_880_960
    labels = [b.label for b in page.get("download_button")]
    assert labels[0] == "Download DOT"


ACTIVATIONS_PAGE = str(Path(__file__).resolve().parent.parent / "explorer" / "pages" / "activations.py")


def test_activations_page_runs_a_sample():
    page = AppTest.from_file(ACTIVATIONS_PAGE, default_timeout=300).run()
    assert not page.exception
    assert any("Random weights" in w.value for w in page.warning)
    assert any(f"On **cpu ({CPU_PRECISION})** in" in c.value for c in page.caption)
    page.select_slider(key="block").set_value("mixed_6a").run()
    assert any(m.value == "**mixed_6a**: 17x17x1088" for m in page.markdown)
    page.toggle(key="show_cam").set_value(True).run()
    page.selectbox(key="cam_class").set_value(281).run()
    assert not page.exception
    page.toggle(key="compare").set_value(True).run()
    assert not page.exception
    assert sum(f"On **cpu ({CPU_PRECISION})** in" in c.value for c in page.caption) == 2  # two images side by side
    labels = [b.label for b in page.get("download_button")]
    assert labels.count("Map PNG") == 2 and labels.count("Result JSON") == 2


def test_weights_file_on_the_server_can_be_chosen(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from explorer.model import build_model

    save_file(build_model("released", seed=5).state_dict(), str(tmp_path / "mine.safetensors"))
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("EXPLORER_WEIGHTS_DIR", str(tmp_path))
    page = AppTest.from_file(ACTIVATIONS_PAGE, default_timeout=300).run()
    radio = page.sidebar.radio[0]
    assert radio.options == [
        "Random (seed 0)",
        "File: broken.pth",
        "File: mine.safetensors",
        "Hub: tf_in1k",
        "Hub: tf_ens_adv_in1k",
    ]
    radio.set_value("file:broken.pth").run()
    assert any("not a readable PyTorch file" in e.value for e in page.error)
    assert any("Random weights" in w.value for w in page.warning)  # the previous weights stay
    page.sidebar.radio[0].set_value("file:mine.safetensors").run()
    assert not page.exception
    assert not any("Random weights" in w.value for w in page.warning)


PAGES = Path(__file__).resolve().parent.parent / "explorer" / "pages"


def test_compare_page_highlights_differences():
    page = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=300).run()
    assert not page.exception
    table = page.dataframe[0].value
    assert list(table.columns) == ["released", "paper-v2", "paper-v1"]
    assert table.loc["parameters", "released"] == "55,843,464"
    assert table.loc["blocks A / B / C"].tolist() == ["10 / 20 / 10", "5 / 10 / 5", "5 / 10 / 5"]
    assert table.loc["Mixed_5b output"].tolist() == ["35x35x320", "none", "none"]
    assert len(page.get("graphviz_chart")) == 3
    assert page.dataframe[1].value["paper says"].tolist() == [1154, 2146, 2048]


def test_experiment_page_shows_the_scaling_effect():
    page = AppTest.from_file(str(PAGES / "experiment.py"), default_timeout=600).run()
    assert not page.exception
    summary = page.dataframe[0].value
    assert len(summary) == 4 and summary["setting"].iloc[1] == "no scaling (1.0)"
    assert summary["std at the last block"].iloc[1] > 100 * summary["std at the last block"].iloc[0]


def test_tour_walks_through_every_step():
    page = AppTest.from_file(str(PAGES / "tour.py"), default_timeout=300).run()
    assert not page.exception
    steps = page.select_slider(key="tour_step").options
    assert len(steps) == 7
    for step in steps:
        page.select_slider(key="tour_step").set_value(step).run()
        assert not page.exception, step
        assert any("**Output**" in m.value for m in page.markdown), step
    page.select_slider(key="tour_step").set_value("2. Inception-ResNet-A").run()
    assert "35x35x320" in " ".join(m.value for m in page.markdown)
    claims = page.dataframe[0].value
    assert "repeated 5, 10 and 5" in " ".join(claims["claim"]) and set(claims["verdict"]) <= {"true", "false", "partly"}


MAP_PAGE = str(Path(__file__).resolve().parent.parent / "explorer" / "pages" / "map.py")


def open_map(**params: str) -> AppTest:
    page = AppTest.from_file(MAP_PAGE, default_timeout=300)
    for key, value in params.items():
        page.query_params[key] = value
    return page.run()


def markdown_text(page: AppTest) -> str:
    return "\n".join(m.value for m in page.markdown)


def test_map_opens_the_block_in_the_link_with_its_inside():
    from explorer.graph import trace_network

    page = open_map(node="repeat_1.0", image="cat")
    assert not page.exception and not page.error
    assert "repeat_1.0 (Block17)" in [h.value for h in page.subheader]
    assert "Every output inside **repeat_1.0**" in markdown_text(page)
    opened = [b.key.removeprefix("open-") for b in page.button if b.key and b.key.startswith("open-")]
    suffixes = ["branch0", "branch1.0", "branch1.1", "branch1.2", "concat", "conv2d", "scaled_residual", "shortcut"]
    assert opened == [f"repeat_1.0.{s}" for s in [*suffixes, "output"]]  # every output inside, in forward order
    facts = page.table[0].value
    traced = trace_network(make_config("released"))
    assert facts.loc["parameters"].item() == f"{traced.params('repeat_1.0'):,}"
    assert facts.loc["output shape"].item() == "17x17x1088"
    assert page.query_params["image"] == ["cat"] or page.query_params["image"] == "cat"


def test_map_levels_and_bad_links():
    network = open_map()
    assert not network.exception and "Inception-ResNet-v2" in [h.value for h in network.subheader]
    component = open_map(node="block_b")
    assert "Inception-ResNet-B x20" in [h.value for h in component.subheader]
    unit = open_map(node="repeat_1.0.branch1.1")
    facts = unit.table[0].value
    assert facts.loc["kernel"].item() == "1x7" and facts.loc["channels in, out"].item() == "128, 160"
    assert "Every output inside **repeat_1.0.branch1.1**" in markdown_text(unit)
    bad = open_map(node="repeat_9.0", image="dog")
    errors = " ".join(e.value for e in bad.error)
    assert "unknown node 'repeat_9.0'" in errors and "No sample image called 'dog'" in errors
    assert not bad.exception and "Inception-ResNet-v2" in [h.value for h in bad.subheader]
