"""The app's pages in a real browser (fixtures: tests/ui/conftest.py): every page, the counts and their
downloads, the block graph, the opening page's answers, a projector's and a phone's window, presenter mode."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Page, expect

from tests.ui.browsing import (
    ARTIFACTS,
    BROWSER_TESTS,
    choose,
    download,
    expect_metric,
    go,
    metric,
    open_at,
    press_until,
    query,
    settle,
)

pytestmark = BROWSER_TESTS


def a_blocks(url: str) -> int:
    return int(query(url).get("blocks", ["10"])[0].split(",")[0])


def test_variant_and_repeats_change_the_counts(page):
    go(page, "Layer counts")
    assert metric(page, "Total") == "176"  # the released network's longest conv/FC path
    choose(page, "Variant", "paper-v2")
    expect_metric(page, "Total", "96")
    choose(page, "Variant", "released")
    # The box shows its choice before the run it asks for has begun (a loaded machine): until the released
    # network's total is back, the slider read below may still be paper-v2's, already at five A blocks.
    expect_metric(page, "Total", "176")
    page.get_by_text("Blocks of each type").click()
    slider = page.locator("[data-testid='stSlider']").filter(has_text="Inception-ResNet-A").locator("input").first
    # Ten A blocks down to five, one key press (and one rerun) at a time. A press held back by a loaded machine
    # can land beside its repeat (two steps): each press waits for fewer blocks than the slider showed before it.
    while (shown := int(slider.input_value())) > 5:
        press_until(page, slider, "ArrowLeft", lambda url, n=shown: a_blocks(url) < n)
    assert slider.input_value() == "5" and query(page.url).get("blocks") == ["5,20,10"]
    expect_metric(page, "Total", str(176 - 5 * 4))
    rows = list(csv.DictReader(io.StringIO(download(page, "Download CSV", holding="Inception-ResNet-A x5").decode())))
    assert rows[2]["component"] == "Inception-ResNet-A x5" and rows[-1]["component"] == "Whole network"
    assert int(rows[-1]["convolutions"]) == 244 - 5 * 7
    document = json.loads(download(page, "Download JSON"))
    assert document["repeats"] == {"A": 5, "B": 20, "C": 10}
    assert {c["name"]: c["total"] for c in document["conventions"]}["Convolutions"] == 244 - 5 * 7


def test_graph_drills_into_a_block_and_downloads_svg(page):
    go(page, "Block graph")
    chart = page.locator("[data-testid='stGraphVizChart'] svg").first
    chart.wait_for()
    assert "Block35 x 10" in chart.text_content()
    page.get_by_text("One block", exact=True).click()
    settle(page)
    choose(page, "Block", "mixed_7a")
    chart = page.locator("[data-testid='stGraphVizChart'] svg").first
    expect(chart).to_contain_text("3x3 conv, 320, stride 2, valid", timeout=120_000)
    settle(page)
    svg = download(page, "Download SVG", holding="mixed_7a").decode()
    assert svg.lstrip().startswith("<?xml") and "mixed_7a" in svg and "</svg>" in svg


LEGEND_IN_SIGHT = """() => {
  const chart = [...document.querySelectorAll('.js-plotly-plot')].find(
    p => [...p.querySelectorAll('.legend .legendtext')].some(t => t.textContent.startsWith('Head (pool')));
  // What shows of the legend: its background box (a longer legend scrolls inside it, the rest out of sight).
  const shown = chart.querySelector('.legend rect.bg').getBoundingClientRect();
  const frame = chart.querySelector('svg.main-svg').getBoundingClientRect();
  return [...chart.querySelectorAll('.legend .legendtext')].map(t => {
    const box = t.getBoundingClientRect();
    const inside = box.top >= shown.top - 1 && box.bottom <= shown.bottom + 1 && box.bottom <= frame.bottom;
    return [t.textContent, inside && box.right <= frame.right];
  });
}"""


@pytest.mark.parametrize("width", [1440, 390])
def test_the_parameter_chart_legend_names_every_component_in_sight(browser, server, width):
    context = browser.new_context(viewport={"width": width, "height": 1000})
    tab = context.new_page()
    tab.goto(server)
    settle(tab)
    tab.get_by_text("Where the parameters").first.wait_for()  # the chart's title, above it
    tab.locator(".js-plotly-plot .legend").first.wait_for()
    entries = tab.evaluate(LEGEND_IN_SIGHT)
    components = tab.locator("[data-testid='stDataFrame']").first  # the Components table above it
    assert components.count() == 1
    names = [name for name, _ in entries]
    assert len(names) == 9 and "Head (pool, dropout, FC)" in names and "Inception-ResNet-C x10" in names
    assert all(visible for _, visible in entries), entries
    tab.screenshot(path=str(ARTIFACTS / f"overview-legend-{width}.png"), full_page=True)
    context.close()


def test_map_unknown_node_gets_a_message_and_the_overview(page, server):
    page.goto(f"{server}/map?node=repeat_99.0")
    settle(page)
    page.get_by_text("unknown node “repeat_99.0”").first.wait_for()
    page.get_by_text("Here is the whole network instead").first.wait_for()
    # The drawing by its own element: the first plot in the page's order may be an activation map, the
    # drawing (a large figure) being laid out after it.
    drawing = page.locator("[class*='st-key-map-released'] .js-plotly-plot")
    drawing.locator("text", has_text="Stem").first.wait_for(timeout=60_000)


# ------------------------------------------------------------------------------ a projector and a phone
SIZES = {"projector": (1280, 720), "phone": (390, 844)}


@contextmanager
def window(browser, size: str) -> Iterator[tuple[Page, list[str]]]:
    """A tab in a window of its own at one of SIZES from the start (a phone's as a phone), and the page errors it
    meets. From the start: a page drawn wider and then shrunk can keep a box at its old width (an expander of the
    Network page, seen once on a loaded machine), which no projector or phone shows."""
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab, errors
    finally:
        context.close()


ADDRESSES = {
    "Network": "",
    "Network map": "map",
    "Layer counts": "counts",
    "Block graph": "graph",
    "Activations": "activations",
    "Channels": "channels?block=repeat.3&channel=7",
    "Classes": "classes?block=mixed_6a&class=thing",
    "Compare variants": "compare",
    "Residual scaling": "experiment",
    "Guided tour": "tour",
    "New head": "transfer",
}

# What sticks out on the right of the window: the document or the main area wider than the window, or an
# element whose right edge is past the window's without a scrolling box of its own around it (a table or a
# code block scrolls inside itself: that is its design, not a cut-off page).
OVERFLOW = """() => {
  const width = window.innerWidth;
  const main = document.querySelector('[data-testid="stMain"]');
  const found = [];
  const whole = document.documentElement.scrollWidth;
  if (whole > width + 1) found.push('document ' + whole);
  if (main && main.scrollWidth > main.clientWidth + 1) found.push('main ' + main.scrollWidth);
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== main; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o !== 'visible') return true;
    }
    return false;
  };
  for (const title of document.querySelectorAll('.js-plotly-plot .gtitle')) {  // a chart's title is one SVG line
    const plot = title.closest('.js-plotly-plot').getBoundingClientRect();
    const r = title.getBoundingClientRect();
    if (r.width > 0 && (r.right > plot.right + 1 || r.left < plot.left - 1)) found.push('title ' + title.textContent);
  }
  for (const el of document.querySelectorAll('[data-testid="stMainBlockContainer"] *')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && r.right > width + 1 && !clipped(el)) {
      found.push((el.getAttribute('data-testid') || el.tagName) + ' right ' + Math.round(r.right));
      if (found.length > 8) break;
    }
  }
  return found;
}"""


def test_every_page_opens_from_the_sidebar_and_fits_a_projector(browser, server):
    """Every page as a teacher opens it from the sidebar, on a projector's window, with nothing sticking out; then
    the two pages whose links open a channel or a class, at those addresses (the sidebar opens them empty)."""
    width, height = SIZES["projector"]
    with window(browser, "projector") as (tab, errors):
        open_at(tab, server, "Network")
        for title, address in ADDRESSES.items():
            go(tab, title)
            tab.screenshot(path=str(ARTIFACTS / f"projector-{address.split('?')[0] or 'network'}.png"), full_page=True)
            sticking_out = tab.evaluate(OVERFLOW)
            assert not sticking_out, f"{title} at {width}x{height}: {sticking_out}"
        assert "random weights" in tab.locator("[data-testid='stAlert']").first.inner_text().lower()
        for title in ("Channels", "Classes"):
            open_at(tab, f"{server}/{ADDRESSES[title]}", title)
            sticking_out = tab.evaluate(OVERFLOW)
            assert not sticking_out, f"{ADDRESSES[title]} at {width}x{height}: {sticking_out}"
        assert not errors, errors


def test_every_page_at_its_address_fits_a_phone(browser, server):
    width, height = SIZES["phone"]
    with window(browser, "phone") as (tab, errors):
        for title, address in ADDRESSES.items():
            open_at(tab, f"{server}/{address}", title)
            tab.screenshot(path=str(ARTIFACTS / f"phone-{address or 'network'}.png"), full_page=True)
            assert tab.evaluate("window.innerWidth") == width
            sticking_out = tab.evaluate(OVERFLOW)
            assert not sticking_out, f"{title} at {width}x{height}: {sticking_out}"
        assert not errors, errors


def test_the_opening_page_answers_and_links_to_the_row(page, server):
    quoted = {"deep": "176", "convolutions": "244", "layers with weights": "449", "Keras layers": "782"}
    assert {label: metric(page, label) for label in quoted} == quoted
    page.get_by_text("And 164?").first.wait_for()
    # the card's own link, found by where it goes: by position, a click landed on the next card's link once, the
    # cards still being laid out
    page.get_by_role("link", name="How it is counted").and_(page.locator("[href*='weighted_layers']")).first.click()
    page.wait_for_url(lambda url: "/counts?convention=weighted_layers" in url, timeout=60_000)
    page.get_by_role("heading", name="How many layers?").first.wait_for(timeout=180_000)
    settle(page)
    assert metric(page, "Total") == "449"


def test_presenter_mode_by_link_shows_the_tour_step_on_a_phone_and_a_projector(browser, server):
    for size in SIZES:
        with window(browser, size) as (tab, _errors):
            tab.goto(f"{server}/tour?present=1&step=4")
            tab.get_by_role("heading", name="A guided tour").first.wait_for(timeout=180_000)
            expect(tab.get_by_role("heading", name="Inception-ResNet-B x20")).to_have_count(1, timeout=120_000)
            opener = tab.locator("[data-testid='stExpandSidebarButton']")
            if size == "projector":  # the presenter's style in place: no sidebar, no button to open it
                expect(tab.locator("[data-testid='stSidebar']")).to_be_hidden(timeout=60_000)
                expect(opener).to_be_hidden(timeout=60_000)
            settle(tab)
            assert tab.locator("[data-testid='stAppDeployButton']").count() == 0  # viewer toolbar: no Deploy
            tab.screenshot(path=str(ARTIFACTS / f"present-tour-{size}.png"), full_page=False)
            assert not tab.evaluate(OVERFLOW)
            if size != "projector":
                # folded away, with the page list inside it (Streamlit's place for it on a narrow screen)
                opener.click()
                tab.locator("[data-testid='stSidebarNav'] a", has_text="Network map").first.wait_for(timeout=10_000)
            # one arrow on each button: its key's (not an icon's as well, "Next: Reduction-B → →")
            for button, arrow, icon in (("Next", "→", "arrow_forward"), ("Previous", "←", "arrow_back")):
                said = tab.locator("[data-testid='stButton'] button", has_text=f"{button}:").first.inner_text()
                assert said.count(arrow) + said.count(icon) == 1, (size, said)
            if size == "projector":
                # type enlarged for the room; the arrow key moves on, and the address follows
                assert tab.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)") > 20
                tab.keyboard.press("ArrowRight")
                tab.wait_for_url(lambda url: "step=5" in url, timeout=60_000)
                expect(tab.get_by_role("heading", name="Reduction-B")).to_have_count(1, timeout=120_000)
                settle(tab)
                assert "present=1" in tab.url
