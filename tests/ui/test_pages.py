"""Each page's logic through Streamlit's AppTest (no browser)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.analysis.claims import SOURCES
from explorer.analysis.summary import summarize
from explorer.nets import make_config
from tests.conftest import CPU_PRECISION, as_read

APP = str(Path(__file__).resolve().parents[2] / "app.py")


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


COUNTS_PAGE = str(Path(__file__).resolve().parents[2] / "explorer" / "ui" / "pages" / "counts.py")


def test_counts_page_answers_with_every_convention():
    from explorer.analysis.counting import count_layers

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
    assert set(claims["source"]) == set(SOURCES.values())
    labels = [b.label for b in page.get("download_button")]
    assert labels == ["Download CSV", "Download JSON"]


def test_counts_page_follows_the_repeats_slider():
    from explorer.analysis.counting import count_layers

    page = AppTest.from_file(COUNTS_PAGE, default_timeout=300).run()
    page.sidebar.slider[0].set_value(5).run()  # ten A blocks down to five
    assert not page.exception
    counts = count_layers(make_config("released", repeats=(5, 20, 10)))
    assert page.dataframe[0].value["total"].tolist() == [c.total for c in counts.conventions]
    assert "Inception-ResNet-A x5" in page.dataframe[1].value["component"].tolist()


def chart_specs(page: AppTest) -> list[dict]:
    import json

    return [json.loads(chart.proto.spec) for chart in page.get("plotly_chart")]


def unpacked(values: list | dict) -> np.ndarray:
    """A plotly spec's array: plotly packs numeric ones as base64 with their dtype."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def test_counts_charts_are_shared_and_no_session_changes_them():
    """The bar charts are built once for every session (explorer.ui.caches.shared_figures): a presenter's larger
    type is the presenter's own, and the bars say the chosen convention's count per component."""
    from explorer.analysis.counting import count_layers

    plain = AppTest.from_file(COUNTS_PAGE, default_timeout=300).run()
    plain.selectbox(key="convention").select("Layers with weights (Keras 'Depth')").run()
    presenting = AppTest.from_file(COUNTS_PAGE, default_timeout=300)
    presenting.session_state["present"] = True
    presenting.run().selectbox(key="convention").select("Layers with weights (Keras 'Depth')").run()
    again = AppTest.from_file(COUNTS_PAGE, default_timeout=300).run()
    again.selectbox(key="convention").select("Layers with weights (Keras 'Depth')").run()
    assert not (plain.exception or presenting.exception or again.exception)
    bars, kinds = chart_specs(plain)
    assert chart_specs(again) == [bars, kinds]
    assert chart_specs(presenting)[0]["layout"]["font"]["size"] == 20
    assert "font" not in bars["layout"] or bars["layout"]["font"].get("size") != 20
    counts = count_layers(make_config("released"))
    chosen = next(c for c in counts.conventions if c.name == "Layers with weights (Keras 'Depth')")
    assert sum(unpacked(trace["x"]).sum() for trace in bars["data"]) == chosen.total == 449
    assert sum(unpacked(t["y"]).sum() for t in kinds["data"]) == sum(sum(c.kinds.values()) for c in counts.components)
    titles = [m.value.replace("\\", "") for m in plain.markdown]  # escaped for markdown, as user text is
    assert "Layers with weights (Keras 'Depth'): 449 in all" in titles


GRAPH_PAGE = str(Path(__file__).resolve().parents[2] / "explorer" / "ui" / "pages" / "graph.py")


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


def test_graph_page_makes_the_network_as_a_pt2_file_to_download(tmp_path):
    page = AppTest.from_file(GRAPH_PAGE, default_timeout=300).run()
    page.button(key="export_pt2").click().run()
    assert not page.exception
    button = next(b for b in page.get("download_button") if b.label == "Download inception-released.pt2")
    assert button.proto.url  # the file is served from Streamlit's media store


ACTIVATIONS_PAGE = str(Path(__file__).resolve().parents[2] / "explorer" / "ui" / "pages" / "activations.py")


def image_captions(page: AppTest) -> list[str]:
    """The captions of every st.image on the page (AppTest has no accessor for them)."""
    found: list[str] = []

    def walk(node: object) -> None:
        for child in getattr(node, "children", {}).values():
            walk(child)
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "imgs"):
            found.extend(image.caption for image in proto.imgs)

    walk(page._tree)
    return found


def test_activations_page_runs_a_sample():
    # One block of each type, by the address as a shared link gives it: the page's logic is this test's point,
    # and the released network's 40 blocks would triple the cost of every map, check and curve below.
    page = AppTest.from_file(ACTIVATIONS_PAGE, default_timeout=300)
    page.query_params["blocks"] = "1,1,1"
    page.run()
    assert not page.exception
    assert any("Random weights" in w.value for w in page.warning)
    assert any(f"On **cpu ({CPU_PRECISION})** in" in c.value for c in page.caption)
    blocks = page.select_slider(key="block").options
    assert "repeat.0" in blocks and "repeat.1" not in blocks  # the network of the address
    page.select_slider(key="block").set_value("mixed_6a").run()
    assert any(m.value == "**mixed_6a**: 17x17x1088" for m in page.markdown)
    page.toggle(key="show_cam").set_value(True).run()
    page.selectbox(key="cam_class").set_value(281).run()
    assert not page.exception
    pictures = image_captions(page)
    assert any(c.startswith("grad-cam: ") and c.endswith(" s") for c in pictures)
    assert any(c.startswith("guided-grad-cam: ") for c in pictures) and any(
        c.startswith("saliency: ") for c in pictures
    )
    assert any("why “tabby”" in c.value for c in page.caption)
    page.multiselect(key="explain_methods").set_value(["grad-cam", "saliency"]).run()
    page.slider(key="faith_steps").set_value(10).run()
    next(b for b in page.button if b.label == "Measure faithfulness").click().run()
    assert not page.exception
    finished(page)  # a job of the server's queue
    ranked = page.dataframe[-1].value  # the maps shown, ranked on this image: each metric's value and its rank
    assert list(ranked.columns) == ["method", "mean rank", "deletion", "insertion", "road", "infidelity"]
    assert sorted(ranked["method"]) == ["grad-cam", "saliency"] and list(ranked["mean rank"]) == sorted(
        ranked["mean rank"]
    )
    found = {f.method: f for f in page.session_state["faithfulness"][1]}
    for row in ranked.itertuples():
        assert row.deletion == f"{found[row.method].value('deletion'):.4g} (#{row.deletion[-2]})"
    assert len(found["saliency"].curves["deletion"]) == 11  # the 10 steps asked for, and the whole image
    assert found["grad-cam"].scores["road"].keys() == {"10", "30", "50", "70", "90"}
    assert any("deletion" in str(c.proto.spec) for c in page.get("plotly_chart"))
    page.multiselect(key="explain_methods").set_value(["grad-cam"]).run()
    next(b for b in page.button if b.label == "Run the sanity check").click().run()
    assert not page.exception
    assert page.get("plotly_chart")[-1].proto.spec and "sanity" in page.session_state
    steps = page.session_state["sanity"][-1]["grad-cam"]
    assert len(steps) == 9 and steps[0].randomised_from == "Head (pool, dropout, FC)"
    pictures = image_captions(page)  # each step's map, after the original
    assert "original" in pictures and any(c.startswith("Stem (") for c in pictures)
    assert "*grad-cam*" in [m.value for m in page.markdown]
    page.toggle(key="compare").set_value(True).run()
    assert not page.exception
    assert sum(f"On **cpu ({CPU_PRECISION})** in" in c.value for c in page.caption) == 2  # two images side by side
    labels = [b.label for b in page.get("download_button")]
    assert labels.count("Map PNG") == 2 and labels.count("Result JSON") == 2


def test_weights_file_on_the_server_can_be_chosen(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from explorer.nets import build_model

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


PAGES = Path(__file__).resolve().parents[2] / "explorer" / "ui" / "pages"


def test_compare_page_states_the_papers_comparison_and_shades_by_distance():
    page = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=300).run()
    assert not page.exception
    table = page.dataframe[0].value
    assert list(table.columns) == ["released", "paper-v2", "paper-v1", "inception-v4"]
    assert table.loc["parameters", "released"] == "55.8 M"
    assert table.loc["parameters", "inception-v4"] == "42.7 M (0.76x)"
    assert table.loc["MACs per image", "inception-v4"] == "12.25 G (0.93x)"
    assert table.loc["blocks A + B + C"].tolist() == [
        "10 + 20 + 10",
        "5 + 10 + 5 (0.50x)",
        "5 + 10 + 5 (0.50x)",
        "4 + 7 + 3 (0.35x)",
    ]
    assert table.loc["Mixed_5b output"].tolist() == ["35x35x320", "none", "none", "none"]
    sentences = " ".join(m.value for m in page.markdown)
    assert "**Inception-v4**: 42.7 M parameters, 12.25 GMACs" in sentences
    assert "13.17 GMACs (1.07x)" in sentences and "about the same cost as Inception-v4" in sentences
    assert len(page.get("graphviz_chart")) == 4
    assert page.dataframe[1].value["paper says"].tolist() == [1154, 2146, 2048]


def test_compare_shading_marks_only_cells_far_from_the_released_network():
    from explorer.analysis.comparison import comparison_rows
    from explorer.analysis.counting import count_layers
    from explorer.nets import VARIANTS

    rows = comparison_rows({v: count_layers(c) for v, c in VARIANTS.items()})
    macs = rows["MACs per image"]
    assert macs["released"].distance == 0 and macs["inception-v4"].distance == 0  # 0.93x: within 10%
    assert 0.4 < macs["paper-v2"].distance < 0.6  # 0.70x
    assert rows["blocks A + B + C"]["paper-v2"].distance == 1.0  # half
    assert rows["C blocks output"]["inception-v4"].distance > 0 and rows["C blocks output"]["released"].distance == 0


def test_experiment_page_shows_the_scaling_effect():
    page = AppTest.from_file(str(PAGES / "experiment.py"), default_timeout=600).run()
    assert not page.exception
    summary = page.dataframe[0].value
    assert len(summary) == 5 and summary["setting"].iloc[1] == "no scaling (1.0)"
    assert summary["setting"].iloc[4] == "no shortcuts, unscaled (plain Inception)"
    assert summary["std at the last block"].iloc[1] > 100 * summary["std at the last block"].iloc[0]
    assert any("cannot show" in m.value for m in page.markdown)


def test_tour_walks_through_every_step():
    page = AppTest.from_file(str(PAGES / "tour.py"), default_timeout=300).run()
    assert not page.exception
    steps = page.select_slider(key="tour_step").options
    assert len(steps) == 7
    for step in steps:
        page.select_slider(key="tour_step").set_value(step).run()
        assert not page.exception, step
        assert any("**Output**" in m.value for m in page.markdown), step
    page.select_slider(key="tour_step").set_value("1. Stem").run()
    stem = page.get("graphviz_chart")[0].proto.spec
    assert all(unit in stem for unit in ("conv2d_1a", "conv2d_2b", "conv2d_4a", "maxpool_5a"))  # the whole stem
    assert len(page.get("graphviz_chart")) == 2  # and Mixed_5b below it
    page.select_slider(key="tour_step").set_value("2. Inception-ResNet-A").run()
    assert "35x35x320" in " ".join(m.value for m in page.markdown)
    assert any("One of the 10 identical blocks" in c.value for c in page.caption)
    claims = page.dataframe[0].value
    assert "repeated 5, 10 and 5" in " ".join(claims["claim"]) and set(claims["verdict"]) <= {"true", "false", "partly"}
    assert set(claims["source"]) <= set(SOURCES.values())  # what each text is, not its file's number ("000")


MAP_PAGE = str(Path(__file__).resolve().parents[2] / "explorer" / "ui" / "pages" / "map.py")


def open_map(**params: str) -> AppTest:
    page = AppTest.from_file(MAP_PAGE, default_timeout=300)
    for key, value in params.items():
        page.query_params[key] = value
    return page.run()


def markdown_text(page: AppTest) -> str:
    return "\n".join(m.value for m in page.markdown)


def test_map_opens_the_block_in_the_link_with_its_inside():
    from explorer.drawing.graph import trace_network

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
    page.toggle(key="map_explain").set_value(True).run()
    assert not page.exception
    pictures = image_captions(page)
    assert any(c.startswith("grad-cam: why '") for c in pictures)
    assert any(c.startswith("guided-grad-cam: why '") for c in pictures)
    page.multiselect(key="map_explain_methods").set_value(["grad-cam", "saliency"]).run()
    assert not page.exception
    pictures = image_captions(page)
    assert any(c.startswith("saliency: why '") for c in pictures)
    assert not any(c.startswith("guided-grad-cam: why '") for c in pictures)


def test_map_of_inception_v4_opens_its_components():
    page = AppTest.from_file(MAP_PAGE, default_timeout=300)
    page.session_state["variant"] = "inception-v4"
    page.query_params["node"] = "block_c"
    page.run()
    assert not page.exception
    assert "The output of **features.21**" in markdown_text(page)


def test_map_levels_and_bad_links():
    network = open_map()
    assert not network.exception and "Inception-ResNet-v2 (released)" in [h.value for h in network.subheader]
    component = open_map(node="block_b")
    assert "Inception-ResNet-B x20" in [h.value for h in component.subheader]
    unit = open_map(node="repeat_1.0.branch1.1")
    facts = unit.table[0].value
    assert facts.loc["kernel"].item() == "1x7" and facts.loc["channels in, out"].item() == "128, 160"
    assert "Every output inside **repeat_1.0.branch1.1**" in markdown_text(unit)
    bad = open_map(node="repeat_9.0", image="dog")
    errors = as_read(" ".join(e.value for e in bad.error))
    assert "unknown node “repeat_9.0”" in errors and "No sample image called “dog”" in errors
    assert not bad.exception and "Inception-ResNet-v2 (released)" in [h.value for h in bad.subheader]


def test_tour_of_inception_v4_names_its_own_blocks():
    page = AppTest.from_file(str(PAGES / "tour.py"), default_timeout=300)
    page.session_state["variant"] = "inception-v4"
    page.run()
    assert not page.exception
    steps = page.select_slider(key="tour_step_v4").options
    assert steps[1] == "2. Inception-A" and steps[5] == "6. Inception-C"
    page.select_slider(key="tour_step_v4").set_value("6. Inception-C").run()
    assert not page.exception
    assert "split pair" in " ".join(m.value for m in page.markdown)
    assert "branch1_1a" in page.get("graphviz_chart")[0].proto.spec


def finished(page: AppTest) -> None:
    """The page again once the server's queue has done every job (as a browser's page redraws itself)."""
    from explorer.ui.jobs import server_jobs

    assert server_jobs().idle(300)
    page.run()
    assert not page.exception


def test_new_head_page_trains_on_two_classes_and_classifies():
    page = AppTest.from_file(str(PAGES / "transfer.py"), default_timeout=300).run()
    assert not page.exception
    page.button[0].click().run()  # no images yet: a message, no traceback
    assert not page.exception and "has no images yet" in page.error[0].value
    page.text_input(key="transfer_name_0").input("warm").run()
    page.text_input(key="transfer_name_1").input("sky").run()
    page.multiselect(key="transfer_samples_0").set_value(["cat", "coffee"]).run()
    page.multiselect(key="transfer_samples_1").set_value(["rocket", "astronaut"]).run()
    page.button[0].click().run()
    assert not page.exception and not page.error
    finished(page)
    shapes = page.dataframe[0].value["shape (HxWxC), per image"].tolist()
    assert shapes == ["299x299x3", "8x8x1536", "1536", "2"]
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Trainable parameters (the new Dense layer)"] == "3,074"  # 1536 x 2 + 2
    assert metrics["Frozen parameters (base.trainable = False)"] == f"{55_843_464 - 1_537_000:,}"
    assert "Leave-one-out accuracy" in metrics
    assert page.selectbox(key="transfer_query_sample").value == "brick"  # the first sample it was not trained on
    assert not any("one of the training images" in c.value for c in page.caption)
    page.selectbox(key="transfer_query_sample").set_value("cat").run()
    assert not page.exception
    assert "the new head says **warm**" in " ".join(m.value for m in page.markdown)  # it has seen the cat
    assert any("one of the training images: the head has seen it" in c.value for c in page.caption)


def test_new_head_refuses_one_class_duplicate_names_and_an_image_in_two_classes():
    from explorer.lessons.transfer import TransferError, check_classes

    with pytest.raises(TransferError, match="2 to 5"):
        check_classes({"only": [1]})
    page = AppTest.from_file(str(PAGES / "transfer.py"), default_timeout=300).run()
    page.text_input(key="transfer_name_1").input("class 1").run()
    page.multiselect(key="transfer_samples_0").set_value(["cat"]).run()
    page.button[0].click().run()
    assert not page.exception and "same name" in page.error[0].value
    page.text_input(key="transfer_name_1").input("sky").run()
    page.multiselect(key="transfer_samples_1").set_value(["cat", "rocket"]).run()
    page.button[0].click().run()
    assert not page.exception and "the same image is in class “class 1” and in class “sky”" in page.error[0].value


def test_a_channel_in_the_address_is_ascii_digits_written_back_as_links_write_it():
    odd = open_map(node="repeat.3", channel="+7")
    assert not odd.exception and not odd.error
    assert "**Channel 7 of repeat.3**" in markdown_text(odd)
    assert odd.query_params["channel"] in (["7"], "7")  # the canonical spelling, as a link would have it
    for asked in ("\u0663", "1_0", "\u00b2", "<script>"):
        bad = open_map(node="repeat.3", channel=asked)
        errors = as_read(" ".join(e.value for e in bad.error))
        assert f"“{asked}” is not a channel number. Here are all the channels instead." in errors, (asked, errors)
        assert not bad.exception and "channel" not in bad.query_params
