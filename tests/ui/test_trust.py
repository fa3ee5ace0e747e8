"""What the pages show follows what made it: the network, the weights, the image (AppTest, real models).

Streamlit's caches live in the process, so several AppTests in one process share them as the sessions of
one server do: a result cached for one session's network is what another session would wrongly get.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from explorer.nets import build_model, make_config
from explorer.nets.weights import load_weights_file, random_weights
from explorer.runtime import Engine
from explorer.runtime.images import load_image, sample_path
from tests.conftest import as_read

PAGES = Path(__file__).resolve().parents[2] / "explorer" / "ui" / "pages"
CAT = load_image(sample_path("cat")).image


def page_at(name: str, **params: str) -> AppTest:
    test = AppTest.from_file(str(PAGES / name), default_timeout=300)
    for key, value in params.items():
        test.query_params[key] = value
    return test.run()


def top5(page: AppTest) -> list[str]:
    """The top-5 bars' texts of the first image, as shown."""
    bars = [as_read(p.proto.text) for p in page.get("progress")]
    return [text for text in bars if text[:2] in ("1.", "2.", "3.", "4.", "5.")][:5]


def expected_top5(engine: Engine) -> list[str]:
    return [f"{rank}. {p.label}: {p.probability:.1%}" for rank, p in enumerate(engine.run(CAT).top5, start=1)]


def blocks_shown(page: AppTest) -> list[str]:
    return list(page.select_slider(key="block").options)


def param(page: AppTest, name: str) -> str | None:
    value = page.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def samples_on(page: AppTest, sample: str) -> AppTest:
    page.selectbox(key="_image_sample_0").select(sample).run()
    return page


def default_engine() -> Engine:
    """The engine the released network's pages run on: the server's default (whatever weights an earlier test
    of this process left it with), read-only."""
    from explorer.ui.engines import server_defaults

    return server_defaults().current()[1]


@pytest.fixture(scope="module")
def v4_engine() -> Engine:
    return Engine(*random_weights(make_config("inception-v4")))


def test_activations_follow_the_variant_and_the_block_counts(v4_engine):
    page = samples_on(page_at("activations.py"), "cat")
    assert not page.exception and blocks_shown(page)[-2:] == ["block8", "conv2d_7b"]
    released = top5(page)
    page.sidebar.selectbox[0].select("inception-v4").run()
    assert not page.exception
    assert blocks_shown(page) == build_model("inception-v4", device="meta").block_names()
    assert top5(page) == expected_top5(v4_engine) != released
    page.toggle(key="show_cam").set_value(True).run()  # attribution at a block this network has
    assert not page.exception and page.selectbox(key="cam_class").value == v4_engine.run(CAT).top5[0].index
    page.sidebar.selectbox[0].select("released").run()
    page.sidebar.slider[0].set_value(2).run()  # two A blocks instead of ten
    assert not page.exception and param(page, "blocks") == "2,20,10"
    shown = blocks_shown(page)
    assert [b for b in shown if b.startswith("repeat.")] == ["repeat.0", "repeat.1"]
    assert top5(page) == expected_top5(Engine(*random_weights(make_config("released", repeats=(2, 20, 10)))))


def test_two_sessions_on_different_networks_with_the_same_image_see_their_own():
    v4 = samples_on(page_at("activations.py", variant="inception-v4"), "cat")
    released = samples_on(page_at("activations.py"), "cat")
    assert blocks_shown(v4)[0] == "features.0" and blocks_shown(released)[0] == "conv2d_1a"
    assert not any("149x149x32" in m.value and "features" in m.value for m in released.markdown)


def test_a_weights_file_is_followed_and_so_is_its_replacement(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_WEIGHTS_DIR", str(tmp_path))
    path = tmp_path / "mine.safetensors"
    save_file(build_model("released", seed=5).state_dict(), str(path))
    page = samples_on(page_at("activations.py"), "cat")
    page.sidebar.radio[0].set_value("file:mine.safetensors").run()
    assert not page.exception and top5(page) == expected_top5(Engine(*load_weights_file(path, make_config())))
    first = top5(page)
    save_file(build_model("released", seed=6).state_dict(), str(path))  # the same name, other weights
    page.run()
    assert top5(page) == expected_top5(Engine(*load_weights_file(path, make_config()))) != first


def test_the_class_picked_for_one_image_does_not_carry_over_to_the_next():
    page = samples_on(page_at("activations.py"), "cat")
    page.toggle(key="show_cam").set_value(True).run()
    page.selectbox(key="cam_class").set_value(3).run()
    page.multiselect(key="explain_methods").set_value(["grad-cam"]).run()
    samples_on(page, "rocket")
    engine = default_engine()
    top = engine.run(load_image(sample_path("rocket")).image).top5[0]
    assert page.selectbox(key="cam_class").value == top.index
    assert any(f"why “{top.label}”" in as_read(c.value) for c in page.caption)


def plotly_array(value: object) -> np.ndarray:
    """An array from a figure's JSON: a list, or plotly's typed array (base64 bytes, dtype, shape)."""
    if isinstance(value, dict):
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return data.reshape([int(n) for n in str(value.get("shape", len(data))).split(",")]).astype(np.float32)
    return np.asarray(value, dtype=np.float32)


def test_the_most_active_channels_are_labelled_with_their_own_maps():
    page = samples_on(page_at("activations.py"), "cat")
    page.select_slider(key="block").set_value("mixed_6a").run()
    assert any("highest mean" in m.value for m in page.markdown)  # the chart's title, above it (explorer.ui.present)
    chart = next(c for c in page.get("plotly_chart") if '"text": "channel ' in c.proto.spec.replace('":"', '": "'))
    spec = json.loads(chart.proto.spec)
    block = default_engine().run(CAT).block("mixed_6a")
    traces = {(t["xaxis"], t["yaxis"]): plotly_array(t["z"]) for t in spec["data"]}
    layout = spec["layout"]
    labels = [a for a in layout["annotations"] if a["text"].startswith("channel ")]
    assert len(labels) == len(block.top_channels)
    for label in labels:  # the subplot under each title, found by position, holds that channel's map
        axes = next(
            (x, y)
            for x, y in traces
            if layout[f"xaxis{x[1:]}"]["domain"][0] <= label["x"] <= layout[f"xaxis{x[1:]}"]["domain"][1]
            and abs(layout[f"yaxis{y[1:]}"]["domain"][1] - label["y"]) < 1e-6
        )
        rank = block.top_channels.index(int(label["text"].removeprefix("channel ")))
        np.testing.assert_allclose(traces[axes], block.top_maps[rank], rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------------------ the network map


def test_switching_the_network_with_a_unit_open_moves_to_what_the_new_one_has():
    page = page_at("map.py", node="repeat_1.0.branch1.1", image="cat")
    assert not page.exception and not page.error
    page.sidebar.selectbox[0].select("inception-v4").run()
    assert not page.exception and not page.error  # a normal action: no error box
    assert any("has no “repeat_1.0.branch1.1”" in as_read(i.value) for i in page.info)
    node = param(page, "node")
    assert node == "block_b" and param(page, "variant") == "inception-v4"
    assert "Inception-B x7" in [h.value for h in page.subheader]
    page.run()  # and on every later rerun, no message either
    assert not page.error and not page.info


def test_the_maps_link_drops_the_sample_when_the_image_is_no_sample():
    page = page_at("map.py", node="repeat.0", image="astronaut")
    assert param(page, "image") == "astronaut"
    page.radio(key="_image_source_0").set_value("Camera").run()
    assert not page.exception and param(page, "image") is None


def test_a_link_opens_its_network_and_bad_ones_are_said():
    page = page_at("map.py", variant="inception-v4", node="features.6", blocks="4,7,3")
    assert not page.exception and not page.error
    assert page.sidebar.selectbox[0].value == "inception-v4" and "features.6 (InceptionA)" in page.subheader[0].value
    bad = page_at("activations.py", variant="resnet50", blocks="1,2")
    errors = as_read(" ".join(e.value for e in bad.error))
    assert "No variant called “resnet50”" in errors and "?blocks=1,2 is not understood" in errors
    assert bad.sidebar.selectbox[0].value == "released"


def test_inception_v4_components_are_described_by_their_own_blocks():
    from explorer.nets import InceptionA

    page = page_at("map.py", variant="inception-v4", node="block_a")
    text = "\n".join(m.value for m in page.markdown)
    assert (InceptionA.__doc__ or "").split("\n")[0].strip() in text
    assert "Convolution (no bias), batch norm, ReLU" not in text


# ------------------------------------------------------------------------------ every node from its own module


@pytest.mark.parametrize("variant", ["released", "paper-v2", "paper-v1", "inception-v4"])
def test_the_parts_a_node_may_name_are_the_parts_each_block_has(variant):
    import torch

    from explorer.drawing.netmap import resolve
    from explorer.runtime.inside import block_inputs, inside_tensors, part_names

    model = build_model(variant, device="meta")
    inputs = block_inputs(model, torch.empty(1, 3, 299, 299, device="meta"))
    for block, x in inputs.items():
        module = model.get_submodule(block)
        made = {p.name.removeprefix(block + ".") for p in inside_tensors(module, x, block)}
        own = {name for name in made if not name or _is_module(module, name)}
        assert set(part_names(module)) == made - own, block
        for part in ("concat", "scaled_residual", "shortcut", "output"):
            if part in part_names(module):
                assert resolve(model, f"{block}.{part}").kind == part
            else:
                with pytest.raises(ValueError, match="has no"):
                    resolve(model, f"{block}.{part}")


def _is_module(module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def test_reduction_a_has_no_residual_to_open():
    from explorer.drawing.netmap import resolve

    with pytest.raises(ValueError, match="mixed_6a has no “scaled_residual”"):
        resolve(build_model("released", device="meta"), "mixed_6a.scaled_residual")


def test_inception_v4_runs_of_blocks_are_counted_as_one_run_in_the_drawing():
    from explorer.drawing.graph import network_graph, trace_network

    source = network_graph(trace_network(make_config("inception-v4")), "overview").source
    assert "InceptionA x 4" in source and "InceptionB x 7" in source and "InceptionC x 3" in source
    assert "1 + 1" not in source
    released = network_graph(trace_network(make_config("released")), "overview").source
    assert "Block8 x 9 + 1" in released  # the last C block is held apart (no ReLU, scale 1): said so


def test_an_address_the_session_wrote_earlier_does_not_undo_a_later_choice():
    """A rerun can come with the address as it was before the last run rewrote it (a second move before the
    browser took in the first one's address, on a busy server): that address is the session's own, not a link."""
    page = page_at("counts.py")
    for blocks in (9, 8):
        page.slider(key="_repeats_released_A").set_value(blocks).run()
        assert param(page, "blocks") == f"{blocks},20,10"
    page.query_params["blocks"] = "9,20,10"  # the browser had not yet taken in the last run's address
    page.slider(key="_repeats_released_A").set_value(7).run()
    assert page.slider(key="_repeats_released_A").value == 7 and param(page, "blocks") == "7,20,10"
    page.sidebar.selectbox(key="_variant").select("paper-v2").run()
    assert param(page, "variant") == "paper-v2"
    page.sidebar.selectbox(key="_variant").select("released").run()
    page.query_params["variant"] = "paper-v2"  # likewise
    page.run()
    assert page.sidebar.selectbox(key="_variant").value == "released" and param(page, "variant") == "released"
