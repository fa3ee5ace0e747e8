"""An image through the app in a real browser (fixtures: tests/ui/conftest.py): an upload's top-5 and maps, two
sessions' networks, the map's inside of a block, a new head trained on samples, attribution, and user text that
never becomes markup."""

from __future__ import annotations

import io
import json
import re
from urllib.parse import urlparse

from playwright.sync_api import expect

from tests.ui.browsing import (
    ARTIFACTS,
    BROWSER_TESTS,
    ROOT,
    choose,
    download,
    go,
    metric,
    open_at,
    settle,
)

pytestmark = BROWSER_TESTS


def test_upload_an_image_and_get_top5_and_maps(page, tmp_path):
    from PIL import Image

    from tests.conftest import CPU_PRECISION

    go(page, "Activations")
    photo = tmp_path / "rotated-coffee.png"
    Image.open(ROOT / "explorer" / "samples" / "coffee.jpg").rotate(90, expand=True).save(photo)
    page.get_by_text("Upload", exact=True).first.click()
    settle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(photo))
    settle(page)
    page.get_by_text("what the network sees").first.wait_for()
    page.locator(".js-plotly-plot").nth(5).wait_for(timeout=120_000)  # heatmap, channels, four statistics
    settle(page)
    assert page.get_by_text(f"On cpu ({CPU_PRECISION}) in").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "activations-upload.png"), full_page=True)
    document = json.loads(download(page, "Result JSON"))
    assert len(document["top5"]) == 5 and len(document["blocks"]) == 51
    bars = page.locator("[data-testid='stProgress']")  # the top-5, as the page shows them
    assert [bars.nth(i).inner_text().split(": ")[0] for i in range(5)] == [
        f"{rank}. {p['label']}" for rank, p in enumerate(document["top5"], start=1)
    ]
    assert document["blocks"][0]["name"] == "conv2d_1a"
    shown_map = Image.open(io.BytesIO(download(page, "Map PNG")))  # the picture shown: the map over the image
    assert shown_map.size == (299, 299) and len(set(shown_map.convert("L").getdata())) > 100


def test_two_sessions_on_different_networks_uploading_the_same_photo_each_see_their_own(browser, server, tmp_path):
    """The same upload in two sessions, one on Inception-v4 (by its link), one on the released network: each
    page shows its own network's blocks (a cache keyed by the image alone gave the second the first's)."""
    from PIL import Image

    photo = tmp_path / "same.png"
    Image.open(ROOT / "explorer" / "samples" / "brick.jpg").rotate(180).save(photo)
    shown = {}
    for variant, first_block in (("inception-v4", "features.0"), ("released", "conv2d_1a")):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        try:
            link = f"{server}/activations" + ("" if variant == "released" else f"?variant={variant}")
            open_at(tab, link, "Activations")
            tab.get_by_text("Upload", exact=True).first.click()
            settle(tab)
            tab.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(photo))
            tab.get_by_text("same.png: what the network sees").first.wait_for(timeout=180_000)
            settle(tab)
            shown[variant] = json.loads(download(tab, "Result JSON"))
        finally:
            context.close()
        assert shown[variant]["blocks"][0]["name"] == first_block and shown[variant]["variant"] == variant
    assert shown["released"]["top5"] != shown["inception-v4"]["top5"]


def test_map_link_opens_a_block_and_a_click_selects_another_node(page, server):
    page.goto(f"{server}/map?node=repeat_1.0&image=cat")
    settle(page)
    page.get_by_text("Every output inside repeat_1.0").first.wait_for()
    page.get_by_text(re.compile(r"^ch \d+$")).nth(7).wait_for()  # the enlarged output's eight most active channels
    assert page.locator("[data-testid='stImage']").count() >= 9 + 8  # nine outputs inside, eight top channels
    page.screenshot(path=str(ARTIFACTS / "map-block.png"), full_page=True)
    enlarge = page.get_by_role("button", name="Enlarge")
    tops = [enlarge.nth(i).bounding_box()["y"] for i in range(enlarge.count())]
    assert len(tops) == 9 and max(tops[:6]) - min(tops[:6]) < 1, tops  # a row of six, in line
    points = page.locator(".js-plotly-plot .scatterlayer .trace").last.locator(".points path")  # one per node
    assert points.count() == 9  # four units, concat, linear 1x1, scale, +, ReLU
    box = points.nth(0).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(lambda url: "node=repeat_1.0." in url, timeout=60_000)
    settle(page)
    chosen = page.url.split("node=", 1)[1].split("&")[0]
    assert chosen != "repeat_1.0" and "image=cat" in page.url
    page.get_by_text("Every output inside").first.wait_for()


def test_new_head_from_two_classes_of_samples(page):
    """The study card's transfer learning: two classes from the samples, train, classify a sample."""
    go(page, "New head")
    for index, (name, samples) in enumerate((("warm", ["cat", "coffee"]), ("sky", ["rocket", "astronaut"]))):
        box = page.locator("[data-testid='stTextInput']").nth(index).locator("input")
        box.fill(name)
        box.press("Enter")
        settle(page)
        for sample in samples:
            page.locator("[data-testid='stMultiSelect']").nth(index).click()
            page.get_by_role("option", name=sample, exact=True).click()
            settle(page)
            page.keyboard.press("Escape")
    page.get_by_role("button", name="Train the new head").click()
    page.locator("[data-testid='stMetric']").filter(has_text="Leave-one-out accuracy").first.wait_for(timeout=300_000)
    settle(page)
    assert metric(page, "Trainable parameters (the new Dense layer)") == "3,074"
    assert metric(page, "Leave-one-out accuracy").endswith("%")
    said = page.locator("[data-testid='stMarkdown']").filter(has_text="the new head says").first
    assert said.inner_text().replace("*", "").startswith("brick: the new head says ")  # not a training image
    choose(page, "Sample", "cat")
    said = page.locator("[data-testid='stMarkdown']").filter(has_text="the new head says").first
    expect(said).to_have_text(re.compile(r"^cat: the new head says warm"), timeout=120_000)
    # Kept on the server for this session only: its Weights box lists it, another session's does not.
    page.get_by_role("button", name="Make the checkpoint").click()
    page.get_by_text(re.compile(r"Also kept on the server as new-head-2-classes-\w+\.safetensors")).wait_for(
        timeout=300_000
    )
    settle(page)
    page.get_by_role("button", name="Download new-head.safetensors").wait_for()
    go(page, "Layer counts")  # the sidebar's Weights box, drawn again with the new file
    page.locator("[data-testid='stSidebar']").get_by_text(re.compile(r"^Made here: new-head-2-classes-")).wait_for()
    other = page.context.browser.new_context().new_page()
    other.goto(page.url)
    settle(other)
    other.locator("[data-testid='stSidebar']").get_by_text("Random (seed 0)").wait_for()
    expect(other.get_by_text(re.compile(r"^Made here: "))).to_have_count(0)
    other.context.close()


def test_why_did_it_say_that_shows_each_method(page, server):
    """The Activations page's attribution maps for a sample, side by side, each with its time."""
    # A link to one block of each type: the maps, checks and curves in the page are the point here, and the
    # released network's 40 blocks would triple the cost of each (the AppTest runs them the same way).
    open_at(page, f"{server}/activations?blocks=1,1,1", "Activations")
    page.get_by_text("Explain the prediction (attribution maps, by Captum)").click()
    captions = page.locator("[data-testid='stImageCaption']")
    for method in ("grad-cam", "guided-grad-cam", "saliency"):
        captions.filter(has_text=re.compile(rf"^{method}: \d+\.\d\d s$")).first.wait_for(timeout=300_000)
    settle(page)
    # The check on Grad-CAM alone (nine randomisations; the AppTest and test_attribution check the others):
    # the last two methods taken out of the picker, as a person does with the backspace key.
    page.locator("[data-testid='stMultiSelect']").filter(has_text="saliency").locator("input").click()
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.press("Escape")
    settle(page)
    page.get_by_role("button", name="Run the sanity check").click()
    # The chart's title sits above it, as markdown (explorer.ui.present.chart); the chart follows it.
    title = page.get_by_text("How much each map still resembles the original")
    title.first.wait_for(timeout=300_000)
    settle(page)
    chart = title.first.locator("xpath=following::div[contains(@class, 'js-plotly-plot')][1]")
    assert title.count() == 1 and "grad-cam" in chart.text_content() and "saliency" not in chart.text_content()
    # Faithfulness of the map shown: its row in the ranking, and both curves in the chart under their title.
    steps = page.get_by_role("slider", name="Steps of the curves")
    steps.focus()
    page.keyboard.press("Home")  # the fewest steps (10): the curves' point, not their resolution, is checked here
    expect(steps).to_have_value("10")
    settle(page)
    page.get_by_role("button", name="Measure faithfulness").click()
    curves = page.get_by_text("The class's probability as pixels go")
    curves.first.wait_for(timeout=300_000)
    settle(page)
    plotted = curves.first.locator("xpath=following::div[contains(@class, 'js-plotly-plot')][1]").text_content()
    assert "curve=deletion" in plotted and "curve=insertion" in plotted and "grad-cam" in plotted
    # The ranking's table (a canvas: its cells are checked by the AppTest) stands above the curves' title.
    assert curves.first.locator("xpath=preceding::div[@data-testid='stDataFrame'][1]").is_visible()


# ------------------------------------------------------------------------------ user text is text

#: A link, an image from another host, HTML, emphasis, a bare URL, a right-to-left override, and length.
PAYLOAD = (
    "[click me](https://evil.example/x) ![x](https://evil.example/x.png) <img src=https://evil.example/y.png> "
    "**bold** https://evil.example/bare \u202eevil " + "A" * 10_000
)
#: Every query parameter a page reads, on a page that reads it.
PARAMETERS = [
    ("map", "node"),
    ("map", "image"),
    ("tour", "step"),
    ("counts", "convention"),
    ("activations", "present"),
    ("graph", "variant"),
    ("compare", "blocks"),
]
FOREIGN = "[href*='evil'], [src*='evil'], [*|href*='evil']"


def no_markup_from(tab, marker: str = "bold") -> None:
    """No link or image to the payload's host, no emphasis made from it, no override, nothing 10,000 long."""
    assert tab.locator(FOREIGN).count() == 0, tab.locator(FOREIGN).first.evaluate("e => e.outerHTML")
    assert tab.locator("strong, b", has_text=marker).count() == 0
    text = tab.locator("[data-testid='stApp']").inner_text()
    assert "\u202e" not in text and "A" * 100 not in text and "Traceback" not in text


def test_user_text_from_links_uploads_and_text_boxes_is_never_markup(browser, server):
    from urllib.parse import quote

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    fetched: list[str] = []
    tab.on("request", lambda r: fetched.append(r.url) if "evil" in (urlparse(r.url).hostname or "") else None)
    try:
        for path, name in PARAMETERS:
            tab.goto(f"{server}/{path}?{name}={quote(PAYLOAD)}")
            message = tab.locator("[data-testid='stAlert']", has_text="click me").first
            message.wait_for(timeout=180_000)
            settle(tab)
            # the characters as given (explorer.text.usertext's invisible word joiners aside)
            assert "[click me](https://evil" in message.inner_text().replace("\u2060", ""), (path, name)
            no_markup_from(tab)
        # an upload's name
        open_at(tab, f"{server}/activations", "Activations")
        tab.get_by_text("Upload", exact=True).first.click()
        settle(tab)
        upload = {
            "name": "[x](https:evil.example) **bold** \u202e![y](https:evil.example).jpg",
            "mimeType": "image/jpeg",
            "buffer": (ROOT / "explorer" / "samples" / "cat.jpg").read_bytes(),
        }
        tab.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(upload)
        tab.get_by_text("what the network sees").first.wait_for(timeout=180_000)
        settle(tab)
        assert "[x](https:evil.example)" in tab.locator("[data-testid='stApp']").inner_text().replace("\u2060", "")
        no_markup_from(tab)
        # a text box: a class name
        open_at(tab, f"{server}/transfer", "New head")
        box = tab.locator("[data-testid='stTextInput']").first.locator("input")
        box.fill(PAYLOAD[:200])
        box.press("Enter")
        settle(tab)
        tab.locator("[data-testid='stMultiSelect']").nth(1).click()
        tab.get_by_role("option", name="cat", exact=True).click()
        tab.keyboard.press("Escape")
        settle(tab)
        tab.get_by_role("button", name="Train the new head").click()
        tab.locator("[data-testid='stAlert']", has_text="has no images yet").first.wait_for(timeout=60_000)
        settle(tab)
        no_markup_from(tab)
    finally:
        tab.screenshot(path=str(ARTIFACTS / "user-text.png"), full_page=True)
        context.close()
    assert fetched == []
