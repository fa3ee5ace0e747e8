"""Each page's logic through Streamlit's AppTest (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.model import make_config
from explorer.summary import summarize

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
