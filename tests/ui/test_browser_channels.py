"""What channels learned, in a real browser (fixtures: tests/ui/conftest.py), on the server's index of the
samples: a block's channels and their examples, the circuit back to the pixels, a class's channels and the atlas,
feature visualisation and its shared jobs."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.ui.browsing import (
    ARTIFACTS,
    BROWSER_TESTS,
    query,
    settle,
)

pytestmark = BROWSER_TESTS


def test_a_blocks_channels_show_the_indexs_examples_and_a_channel_link_opens_one(page, server):
    page.goto(f"{server}/map?node=mixed_6a&image=cat")
    settle(page)
    page.get_by_text("Every output inside mixed_6a").first.wait_for()
    page.locator("button", has_text=re.compile("^Channels$")).click()
    settle(page)
    page.get_by_text("The server's index: 6 images, the top 9 per channel.").wait_for()
    expect(page.get_by_text(re.compile(r"^ch \d+: max "))).to_have_count(24)  # a page of channels
    assert page.locator("[data-testid='stImage']").count() >= 24 + 1  # their pictures, and the image chosen
    page.screenshot(path=str(ARTIFACTS / "map-channels.png"), full_page=True)
    page.locator("[class*='st-key-channel_open_mixed_6a_'] button").first.click()
    page.wait_for_url(lambda url: "channel=" in url, timeout=60_000)
    settle(page)
    channel = query(page.url)["channel"][0]
    page.get_by_text(f"Channel {channel} of mixed_6a").first.wait_for()
    expect(page.get_by_text(re.compile(r"^#\d .*\.jpg: "))).to_have_count(6)  # its top images: all six samples
    page.get_by_text(f"channel {channel} on the current image").wait_for()

    page.goto(f"{server}/map?node=repeat.3&channel=7&image=coffee")  # a shared link opens that very channel
    settle(page)
    page.get_by_text("Channel 7 of repeat.3").first.wait_for()
    expect(page.get_by_text(re.compile(r"^#\d .*\.jpg: "))).to_have_count(6)
    page.screenshot(path=str(ARTIFACTS / "map-channel.png"), full_page=True)
    page.goto(f"{server}/map?node=repeat.3&channel=320")
    settle(page)
    page.get_by_text("repeat.3 has channels 0 to 319, not 320").first.wait_for()
    assert "channel=" not in page.url
    # A session builds one of its own, from the samples, with a progress bar; its index takes over.
    page.get_by_text("Build an index of your own").click()
    page.get_by_role("button", name="Build the index").click()
    page.get_by_text("This session's index: 6 images, the top 9 per channel.").wait_for(timeout=180_000)
    settle(page)


def measure(page) -> None:
    """Press "Measure what builds it" (a job of the server's queue) and wait for the panel's last line."""
    settle(page)
    page.get_by_role("button", name="Measure what builds it").click()
    page.get_by_text("The classes it raises most").wait_for(timeout=300_000)


def test_the_channels_page_walks_what_builds_a_channel_back_to_the_pixels(page, server):
    page.goto(f"{server}/channels?block=repeat.3&channel=7&image=coffee")
    settle(page)
    page.get_by_text("Channel 7 of repeat.3").first.wait_for()
    measure(page)
    settle(page)
    page.get_by_text("Measured on its top 6 images in the index").wait_for()
    check = page.get_by_text(
        re.compile(r"setting the top 5 driving inputs to zero lowers the response by")
    ).inner_text()
    top, random = (float(v) for v in re.findall(r"by (-?[\d.e+-]+)", check)[:2])
    assert top > random  # the check, as shown
    assert "repeat.3 7" in page.locator("[data-testid='stGraphVizChart'] svg").first.text_content()
    captions = page.get_by_text(re.compile(r"^repeat\.2 \d+: [+-]"))
    expect(captions).to_have_count(6)  # the six strongest inputs as tiles
    first = int(re.match(r"repeat\.2 (\d+):", captions.first.inner_text()).group(1))
    page.screenshot(path=str(ARTIFACTS / "channels-circuit.png"), full_page=True)
    page.locator("[class*='st-key-walk_'] button").first.click()
    page.wait_for_url(lambda url: "block=repeat.2" in url and f"channel={first}" in url, timeout=60_000)
    page.get_by_text(f"Channel {first} of repeat.2").first.wait_for(timeout=120_000)
    measure(page)
    settle(page)
    page.locator("[class*='st-key-onward_'] button").first.click()  # and forward again
    page.wait_for_url(lambda url: "block=repeat.3" in url, timeout=60_000)
    settle(page)

    page.goto(f"{server}/channels?block=conv2d_1a&channel=0")  # the stem's first unit reads the pixels
    measure(page)
    settle(page)
    expect(page.get_by_text(re.compile(r"^pixels (red|green|blue): "))).to_have_count(3)
    expect(page.locator("[class*='st-key-walk_'] button")).to_have_count(0)  # nothing before the pixels
    page.goto(f"{server}/channels?block=repeat.99&channel=0")
    settle(page)
    page.get_by_text(re.compile(r"This network has no block .repeat\.99.")).wait_for()
    assert "block=" not in page.url and "channel=" not in page.url


def test_the_classes_page_reads_a_class_s_channels_and_draws_the_atlas_of_a_block(page, server):
    page.goto(f"{server}/classes?block=repeat_1.2&class=thing")
    settle(page)
    page.get_by_text("The channels of repeat_1.2 that thing raises most (3 images)").wait_for(timeout=180_000)
    links = page.get_by_role("link", name=re.compile(r"^channel \d+$"))
    expect(links).to_have_count(6)
    channel = int(links.first.inner_text().split()[1])
    href = links.first.get_attribute("href")  # markdown links open a new tab: followed here in this one
    assert href == f"/channels?block=repeat_1.2&channel={channel}"
    page.goto(f"{server}{href}")  # a class's channel on the Channels page, which names the classes it serves
    page.get_by_text(f"The classes that raise channel {channel} most (the folder's labels)").wait_for(timeout=180_000)
    chart = page.get_by_text(f"The classes that raise channel {channel} most").locator(
        "xpath=following::div[contains(@class,'js-plotly-plot')][1]"
    )
    expect(chart.locator(".ytick text")).to_have_count(3, timeout=60_000)  # drawn once plotly has laid it out
    ticks = chart.locator(".ytick text").all_text_contents()
    assert sorted(ticks) == ["animal", "person", "thing"]  # the three classes with images, as bars
    page.goto(f"{server}/classes?block=repeat_1.2&class=zebra")
    settle(page)
    page.get_by_text(re.compile(r"The index has no class .zebra.")).wait_for()
    assert "class=" not in page.url or "class=zebra" not in page.url

    page.get_by_role("slider").first.focus()
    page.keyboard.press("Home")  # the smallest grid: 4 x 4
    page.get_by_text(re.compile(r"Drawing the atlas of repeat\.4 \(4 x 4\): about")).wait_for(timeout=60_000)
    settle(page)
    page.get_by_role("button", name="Draw the atlas").click()
    page.get_by_role("button", name="Start", exact=True).click(timeout=60_000)  # a CPU's estimate passes 30 s
    title = page.get_by_text(re.compile(r"^Activation atlas of repeat\.4\W*: \d+ cells from 24 vectors"))
    title.wait_for(timeout=420_000)
    settle(page)
    figure = title.locator("xpath=following::div[contains(@class,'js-plotly-plot')][1]")
    figure.locator(".scatterlayer .point").first.click(force=True)  # through plotly's drag layer, as a mouse does
    page.get_by_text(re.compile(r"^Cell \(\d, \d\): \d+ vectors from \d images")).wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "classes-atlas.png"), full_page=True)


SAW_PROGRESS = """() => {
  window.sawProgress = "";
  new MutationObserver(() => {
    const bar = document.querySelector("[data-testid='stProgress']");
    if (bar && bar.innerText.includes("step")) window.sawProgress = bar.innerText;
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def test_a_blocks_gallery_of_feature_visualisations_and_one_channels_image(page, server):
    page.goto(f"{server}/map?node=conv2d_2a&image=cat")
    settle(page)
    page.locator("button", has_text=re.compile("^Channels$")).click()
    settle(page)
    expect(page.get_by_text(re.compile(r"^ch \d+: max "))).to_have_count(24)
    page.evaluate(SAW_PROGRESS)  # the bar may come and go between two looks: a watcher sees it
    page.locator("button", has_text="Visualise this page").click()
    page.get_by_text(
        re.compile(r"Visualising 24 channels of conv2d_2a takes about \d+ (s|min) of this server")
    ).wait_for()
    page.locator("button", has_text="Start").click()
    page.get_by_text("Random weights: these images show the optimiser").wait_for(timeout=300_000)
    settle(page)
    assert re.search(r"step \d+ of 128", page.evaluate("window.sawProgress"))
    expect(page.get_by_text(re.compile(r"^visualised: "))).to_have_count(24)  # an image above each mosaic
    expect(page.locator("button", has_text="Visualise this page")).to_have_count(0)  # all kept now
    page.screenshot(path=str(ARTIFACTS / "map-gallery.png"), full_page=True)
    page.locator("[class*='st-key-channel_open_conv2d_2a_'] button").first.click()
    page.wait_for_url(lambda url: "channel=" in url, timeout=60_000)
    settle(page)
    page.get_by_text("what excites it most").first.wait_for()  # kept from the page's run: nothing to compute
    expect(page.locator("button", has_text="Visualise it")).to_have_count(0)


def progress_text(tab) -> str:
    bar = tab.locator("[data-testid='stProgress']").first
    bar.wait_for(timeout=120_000)
    return bar.inner_text()


def test_a_second_session_shares_the_same_job_waits_for_another_and_cancels(browser, server):
    """Two students on one server that runs one job at a time: the same request runs once for both, another
    waits in the queue and says so, and cancelling drops a session's wait, the job once nobody waits for it."""
    tabs = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        tab = context.new_page()
        tab.goto(f"{server}/map?node=mixed_5b&image=cat")
        settle(tab)
        tab.locator("button", has_text=re.compile("^Channels$")).click()
        settle(tab)
        tabs.append(tab)
    first, second = tabs
    for tab in tabs:  # 24 channels of a deep block: minutes here, so each is asked to confirm
        tab.locator("button", has_text="Visualise this page").click()
        tab.locator("button", has_text="Start").click()
        tab.get_by_text(re.compile(r"^Visualising 24 channels of mixed_5b: step \d+ of 128")).first.wait_for()
    # One job, both sessions on it.
    expect(second.get_by_text(re.compile(r"asked for by 2 sessions: one job for all"))).to_be_visible()
    expect(first.get_by_text(re.compile(r"asked for by 2 sessions: one job for all"))).to_be_visible()
    second.locator("button", has_text="Cancel").click()
    second.locator("button", has_text="Visualise this page").wait_for()  # its wait dropped...
    expect(first.get_by_text(re.compile(r"asked for by"))).to_have_count(0)  # ...the job goes on for the first
    assert re.search(r"step \d+ of 128", progress_text(first))
    # Another request waits behind it, and says so.
    second.goto(f"{server}/map?node=mixed_5b&image=cat&channel=300")
    settle(second)
    second.locator("button", has_text="Visualise it").click()
    second.get_by_text(
        re.compile(r"waiting in the server's queue, 1 job ahead of yours \(it runs 1 at a time\)")
    ).wait_for()
    second.screenshot(path=str(ARTIFACTS / "job-queued.png"), full_page=True)
    second.locator("button", has_text="Cancel").click()
    second.locator("button", has_text="Visualise it").wait_for()
    first.locator("button", has_text="Cancel").click()  # nobody waits for it now: the job stops, keeping nothing
    first.locator("button", has_text="Visualise this page").wait_for()
    expect(first.get_by_text(re.compile(r"^visualised: "))).to_have_count(0)
    for tab in tabs:
        tab.context.close()
