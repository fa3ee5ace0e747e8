"""The real-browser tests' fixtures: an index of the samples (once a process), the app on it (once a test file:
files run in pytest-xdist's workers side by side, each with its own server) and Debian's chromium."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, settle, start_app

#: The samples as three classes, for the Classes page.
LABELS = {"astronaut": "person", "cat": "animal", "brick": "thing", "camera": "thing", "coffee": "thing"}


@pytest.fixture(scope="session")
def samples_index(tmp_path_factory) -> Path:
    """The samples' dataset examples, for the map's Channels view and the Classes page, as the CLI makes them."""
    index = tmp_path_factory.mktemp("index") / "samples"
    labels = index.with_name("labels.csv")
    labels.write_text("".join(f"{name}.jpg,{kind}\n" for name, kind in LABELS.items()))
    command = [sys.executable, "-m", "explorer", "index", "explorer/samples", "--out", str(index)]
    # Atlas vectors of an early block (a cell's feature visualisation runs the network up to it: repeat.4 costs
    # about half of the default middle block's) and of the last, as the default keeps.
    command += ["--weights", "random", "--classes", str(labels), "--atlas", "repeat.4", "conv2d_7b"]
    made = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    return index


@pytest.fixture(scope="module")
def server(request, tmp_path_factory, samples_index) -> Iterator[str]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    empty_weights = tmp_path_factory.mktemp("weights")
    # One job at a time, as a 2-core server runs them, wherever the suite runs.
    env = {"EXPLORER_WEIGHTS_DIR": str(empty_weights), "EXPLORER_INDEX": str(samples_index), "EXPLORER_JOBS": "1"}
    process = start_app(port, ARTIFACTS / f"streamlit-{request.module.__name__.rsplit('.', 1)[-1]}.log", env)
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
    context.set_default_timeout(90_000)  # waits and clicks wait for their element, on cores the suite shares
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
