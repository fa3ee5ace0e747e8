"""What the real-browser tests share: the app started as `streamlit run app.py`, Debian's chromium driven by
Playwright (its own browser download is never used), and the waits a page needs (a script run's end, a heading,
a metric, a download). The fixtures are in tests/ui/conftest.py; screenshots and logs go to test-artifacts/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
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

# An assertion on a page waits for what it asserts: a rerun that draws 24 channels may take seconds longer than
# Playwright's 5 s default when the suite's other workers share the cores, as they do on a 2-core CI machine.
expect.set_options(timeout=90_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: A browser test file's marks: ``pytestmark = BROWSER_TESTS``.
BROWSER_TESTS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed (apt-get install chromium): browser tests skipped",
    ),
]

#: Each app's log by its port, for a test's failure message.
LOGS: dict[int, Path] = {}


def start_app(port: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`streamlit run app.py` on a loopback port; returns once its health check answers."""
    LOGS[port] = log
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
    tab.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    _arrive(tab, title)


def open_at(tab, url: str, title: str) -> None:
    """Open a page by its address, as a shared link does, and wait for its heading, then for its run to end."""
    tab.goto(url)
    _arrive(tab, title)


def _arrive(tab, title: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    heading = HEADINGS.get(title, title)
    try:
        tab.get_by_role("heading", name=heading).first.wait_for(timeout=180_000)
    except PlaywrightTimeout:
        shown = tab.locator("[data-testid='stApp']").inner_text()[:1500]
        log = LOGS[urlparse(tab.url).port].read_text()[-3000:]
        pytest.fail(f"no heading {heading!r} at {tab.url} after 180 s; the page shows:\n{shown}\nserver log:\n{log}")
    settle(tab)


def choose(tab, label: str, option: str) -> None:
    """Pick an option of a selectbox by its label. It returns once the box shows the option, which may be before
    the run the choice asks for has begun: a caller waits on what that run changes before reading the page."""
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
