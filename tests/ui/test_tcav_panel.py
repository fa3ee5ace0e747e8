"""TCAV on the Classes page, as a job of the server's queue: an index of stripes, dots and random images (labelled
by their folders), the page's class's images against the index's other images, on the real network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.test_pages import finished

ROOT = Path(__file__).resolve().parents[2]
CLASSES_PAGE = str(ROOT / "explorer" / "ui" / "pages" / "classes.py")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    from explorer.concepts.examples import write_examples

    folder = tmp_path_factory.mktemp("tcav") / "images"
    write_examples(folder, count=12, seed=1)
    out = folder.with_name("index")
    command = [sys.executable, "-m", "explorer", "index", str(folder), "--out", str(out)]
    made = subprocess.run(
        [*command, "--weights", "random", "--classes", "folders"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    return out


def test_the_classes_page_tests_a_concept_for_its_class_and_greys_what_is_not_significant(index, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_INDEX", str(index))
    monkeypatch.setenv("EXPLORER_WEIGHTS_DIR", str(tmp_path))  # random weights, as the index was made with
    page = AppTest.from_file(CLASSES_PAGE, default_timeout=300).run()
    assert not page.exception
    assert page.selectbox(key="classes_class").value == "dots"  # 12 images each: the first by name
    page.multiselect(key="tcav_blocks").set_value(["mixed_6a", "mixed_7a"]).run()
    page.multiselect(key="tcav_made").set_value([]).run()
    next(b for b in page.button if b.label == "Test the concepts").click().run()
    assert "choose a concept made here or upload your own" in page.error[0].value  # said at once, nothing queued
    page.multiselect(key="tcav_made").set_value(["stripes", "dots"]).run()
    page.select_slider(key="tcav_per_set").set_value(10).run()
    assert any("TCAV of 2 concepts at 2 blocks: about" in c.value for c in page.caption)
    next(b for b in page.button if b.label == "Test the concepts").click().run()
    assert not page.exception
    finished(page)
    table = page.dataframe[-1].value
    assert list(table.columns) == ["concept", "block", "score", "p", "CAV accuracy", "significant"]
    assert [(r.concept, r.block) for r in table.itertuples()] == [
        ("stripes", "mixed_6a"), ("dots", "mixed_6a"), ("stripes", "mixed_7a"), ("dots", "mixed_7a")
    ]  # fmt: skip
    assert table["score"].between(0, 1).all() and table["CAV accuracy"].between(0, 1).all()
    import json

    spec = json.loads(next(c for c in page.get("plotly_chart") if "TCAV score" in c.proto.spec).proto.spec)
    for trace in spec["data"]:  # one trace a concept, a bar a block: grey exactly where the table says not significant
        rows = table[table["concept"] == trace["name"]]
        colours = trace["marker"]["color"]
        assert [c == "#bdbdbd" for c in colours] == [not s for s in rows["significant"]]
    assert any("the index's other images (24)" in c.value for c in page.caption)
    # The result is the server's: asked again, it is shown at once, with no job.
    again = AppTest.from_file(CLASSES_PAGE, default_timeout=300)
    again.run()
    again.multiselect(key="tcav_blocks").set_value(["mixed_6a", "mixed_7a"]).run()
    again.select_slider(key="tcav_per_set").set_value(10).run()
    assert not again.exception and again.dataframe[-1].value.equals(table)
