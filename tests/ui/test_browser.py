"""The app in a real browser: Debian's chromium driven by Playwright, against `streamlit run app.py`.

Skipped, with the reason, where /usr/bin/chromium is missing (`apt-get install chromium`);
Playwright's own browser download is never used. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed (apt-get install chromium): browser tests skipped",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`streamlit run app.py` on a loopback port; returns once its health check answers."""
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    return process
        except OSError:
            time.sleep(0.5)
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")


LABELS = {"astronaut": "person", "cat": "animal", "brick": "thing", "camera": "thing", "coffee": "thing"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    empty_weights = tmp_path_factory.mktemp("weights")
    index = tmp_path_factory.mktemp("index") / "samples"
    labels = index.with_name("labels.csv")  # the samples as two classes, for the Classes page
    labels.write_text("".join(f"{name}.jpg,{kind}\n" for name, kind in LABELS.items()))
    made = subprocess.run(  # the samples' dataset examples, for the map's Channels view
        [
            *(
                sys.executable,
                "-m",
                "explorer",
                "index",
                "explorer/samples",
                "--out",
                str(index),
                "--weights",
                "random",
            ),
            *("--classes", str(labels)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    # One job at a time, as a 2-core server runs them, wherever the suite runs.
    env = {"EXPLORER_WEIGHTS_DIR": str(empty_weights), "EXPLORER_INDEX": str(index), "EXPLORER_JOBS": "1"}
    process = start_app(port, ARTIFACTS / "streamlit.log", env)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server, request):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1100})
    tab = context.new_page()
    problems: list[str] = []
    missing: list[str] = []
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on("response", lambda reply: missing.append(reply.url) if reply.status == 404 else None)
    tab.goto(server)
    settle(tab)
    yield tab
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    # Opened at a page's own address (/map?node=...), Streamlit's page first looks for its server under
    # that path (/map/_stcore/health), is told 404, and finds it at the root: those 404s are expected.
    probes = [url for url in missing if url.rsplit("/", 1)[-1] in ("health", "host-config") and "/_stcore/" in url]
    # A rerun replaces a picture's media file while the browser may still be asking for the old one (Streamlit
    # drops a session's files of earlier runs): one 404 and one "Image source error" each, the new picture shown.
    replaced = [url for url in missing if "/media/" in url]
    probes += replaced
    expected = ["Failed to load resource: the server responded with a status of 404 (Not Found)"] * len(probes)
    expected += [f"Client Error: Image source error - {url}" for url in replaced]
    unexplained = [p for p in problems if p not in expected] + [url for url in missing if url not in probes]
    assert not unexplained, f"errors in the browser console: {problems}, not found: {missing}"


#: True once the app is idle: its script run is over (Streamlit marks it on the app's root: "running" from
#: the moment a widget asks for a rerun), nothing is stale or spinning, and that held over two frames, so
#: that a rerun a widget asked for in the last event has shown itself.
IDLE = """async () => {
  const idle = () => {
    const app = document.querySelector("[data-testid='stApp']");
    return app && app.getAttribute("data-test-script-state") === "notRunning"
      && app.getAttribute("data-test-connection-state") === "CONNECTED"
      && !document.querySelector("[data-testid='stStatusWidget'], [data-testid='stSpinner'], [data-stale='true']");
  };
  if (!idle()) return false;
  await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  return idle();
}"""


def settle(tab, timeout: float = 180) -> None:
    """Wait until the script run is over, then fail on any exception box."""
    tab.wait_for_selector("[data-testid='stApp']", timeout=60_000)
    tab.wait_for_function(IDLE, timeout=timeout * 1000)
    exceptions = tab.locator("[data-testid='stException']")
    assert exceptions.count() == 0, exceptions.first.inner_text()


HEADINGS = {
    "Network": "Inception-ResNet-v2 Explorer",
    "Layer counts": "How many layers?",
    "Compare variants": "Compare the variants",
    "Residual scaling": "The residual-scaling experiment",
    "Guided tour": "A guided tour",
    "New head": "A new head on a frozen network",
}


def go(tab, title: str) -> None:
    """Open a page from the sidebar, as people do, and wait for its heading, then for its run to end.

    The heading first: a slow machine may not have begun the new page's run when settle() looks, and
    a page's first run (tracing, a first inference) can take longer than a locator's default wait.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    tab.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    heading = HEADINGS.get(title, title)
    try:
        tab.get_by_role("heading", name=heading).first.wait_for(timeout=180_000)
    except PlaywrightTimeout:
        shown = tab.locator("[data-testid='stApp']").inner_text()[:1500]
        log = (ARTIFACTS / "streamlit.log").read_text()[-3000:]
        pytest.fail(f"no heading {heading!r} at {tab.url} after 180 s; the page shows:\n{shown}\nserver log:\n{log}")
    settle(tab)


def choose(tab, label: str, option: str) -> None:
    """Pick an option of a selectbox by its label."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = tab.locator("[data-testid='stSelectbox']").filter(has_text=label).first
    shown = box.locator("input[role='combobox']")
    for _ in range(3):
        box.click()
        tab.keyboard.type(option)  # long lists are virtualised: filter first
        try:
            # a rerun that lands while the list is open (a fragment's, a slow page's) closes it: open it again
            tab.get_by_role("option", name=option, exact=True).click(timeout=15_000)
        except PlaywrightTimeout:
            tab.keyboard.press("Escape")
        settle(tab)
        # a click that landed as a rerun redrew the box can be lost (seen on a loaded 2-core machine): the choice
        # is made only once the box, idle, shows it
        if shown.input_value() == option:
            return
    raise AssertionError(f"{label} never showed {option!r}; it shows {shown.input_value()!r}")


def metric(tab, label: str) -> str:
    card = tab.locator("[data-testid='stMetric']").filter(has_text=label).first
    return card.locator("[data-testid='stMetricValue']").inner_text().strip()


def expect_metric(tab, label: str, value: str, timeout: float = 180) -> None:
    """Wait until a metric shows ``value`` (the run an action asked for may not have begun yet), then settle."""
    card = tab.locator("[data-testid='stMetric']").filter(has_text=label).first
    expect(card.locator("[data-testid='stMetricValue']")).to_have_text(value, timeout=timeout * 1000)
    settle(tab)


def download(tab, button: str, holding: str | None = None, attempts: int = 20) -> bytes:
    """The file a download button gives; with ``holding``, the first one that holds that text (a button drawn
    by a run before the last may still be in place for a moment, and a rerun landing during the download
    cancels it: the finished download is what the test waits on)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(attempts):
        try:
            with tab.expect_download(timeout=60_000) as info:
                tab.get_by_role("button", name=button).first.click()
            data = Path(info.value.path()).read_bytes()
        except PlaywrightTimeout:  # the click landed on a button a rerun was replacing: no download began
            settle(tab)
            continue
        except PlaywrightError as error:  # a rerun replaced the file as it came: "Download.path: canceled"
            if "canceled" not in str(error):
                raise
            settle(tab)
            continue
        if holding is None or holding.encode() in data:
            return data
        settle(tab)
    raise AssertionError(f"{button} never gave a file holding {holding!r}")


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def press_until(tab, control, key: str, arrived: Callable[[str], bool], attempts: int = 5) -> None:
    """Press a key on a control until the address says the run it asks for has begun, then settle. A press that
    lands while a rerun redraws the control is lost (seen on a loaded 2-core machine): the key is pressed again
    only when the control, once idle, still shows no change."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    before = control.input_value()
    for _ in range(attempts):
        control.focus()
        control.press(key)
        try:
            tab.wait_for_url(arrived, timeout=60_000)
            break
        except PlaywrightTimeout:
            settle(tab)
            if control.input_value() != before:  # it moved: its run is on its way
                tab.wait_for_url(arrived, timeout=180_000)
                break
    else:
        raise AssertionError(f"{key} on the control never reached the address wanted; it is at {tab.url}")
    settle(tab)


def test_every_page_renders(page):
    for title in (
        "Network",
        "Network map",
        "Layer counts",
        "Block graph",
        "Activations",
        "Channels",
        "Classes",
        "Compare variants",
        "Residual scaling",
        "Guided tour",
        "New head",
    ):
        go(page, title)
        page.screenshot(path=str(ARTIFACTS / f"page-{title.lower().replace(' ', '-')}.png"), full_page=True)
    assert "random weights" in page.locator("[data-testid='stAlert']").first.inner_text().lower()


def a_blocks(url: str) -> int:
    return int(query(url).get("blocks", ["10"])[0].split(",")[0])


def test_variant_and_repeats_change_the_counts(page):
    go(page, "Layer counts")
    assert metric(page, "Total") == "176"  # the released network's longest conv/FC path
    choose(page, "Variant", "paper-v2")
    expect_metric(page, "Total", "96")
    choose(page, "Variant", "released")
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
            tab.goto(f"{server}/activations" + ("" if variant == "released" else f"?variant={variant}"))
            tab.get_by_role("heading", name="Activations").first.wait_for(timeout=180_000)
            settle(tab)
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
    page.get_by_text(re.compile(r"Drawing the atlas of repeat_1\.\d+ \(4 x 4\): about")).wait_for(timeout=60_000)
    settle(page)
    page.get_by_role("button", name="Draw the atlas").click()
    page.get_by_role("button", name="Start", exact=True).click(timeout=60_000)  # a CPU's estimate passes 30 s
    title = page.get_by_text(re.compile(r"^Activation atlas of repeat_1\.\d+\W*: \d+ cells from 24 vectors"))
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


def test_why_did_it_say_that_shows_each_method(page):
    """The Activations page's attribution maps for a sample, side by side, each with its time."""
    go(page, "Activations")
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
    page.get_by_role("button", name="Measure faithfulness").click()
    curves = page.get_by_text("The class's probability as pixels go")
    curves.first.wait_for(timeout=300_000)
    settle(page)
    plotted = curves.first.locator("xpath=following::div[contains(@class, 'js-plotly-plot')][1]").text_content()
    assert "curve=deletion" in plotted and "curve=insertion" in plotted and "grad-cam" in plotted
    # The ranking's table (a canvas: its cells are checked by the AppTest) stands above the curves' title.
    assert curves.first.locator("xpath=preceding::div[@data-testid='stDataFrame'][1]").is_visible()


# ------------------------------------------------------------------------------ a projector and a phone
SIZES = {"projector": (1280, 720), "phone": (390, 844)}
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


@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_fits_a_projector_and_a_phone(browser, server, size):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        for title, address in ADDRESSES.items():
            tab.goto(f"{server}/{address}")
            tab.get_by_role("heading", name=HEADINGS.get(title, title)).first.wait_for(timeout=180_000)
            settle(tab)
            tab.screenshot(path=str(ARTIFACTS / f"{size}-{address or 'network'}.png"), full_page=True)
            assert tab.evaluate("window.innerWidth") == width
            sticking_out = tab.evaluate(OVERFLOW)
            assert not sticking_out, f"{title} at {width}x{height}: {sticking_out}"
        assert not errors, errors
    finally:
        context.close()


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
        width, height = SIZES[size]
        context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=size == "phone")
        tab = context.new_page()
        try:
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
        finally:
            context.close()


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
        tab.goto(f"{server}/activations")
        tab.get_by_role("heading", name="Activations").first.wait_for(timeout=180_000)
        settle(tab)
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
        tab.goto(f"{server}/transfer")
        tab.get_by_role("heading", name=HEADINGS["New head"]).first.wait_for(timeout=180_000)
        settle(tab)
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
