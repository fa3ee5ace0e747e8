"""The server's default weights: the trained ones without a click where they can be had, random ones otherwise.

Against the local Hub on 127.0.0.1 (tests/hub_server.py) and the real server (`streamlit run app.py`)
or the real library in a fresh process, each with a Hugging Face cache of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from explorer.nets import build_model
from explorer.nets.hub import HUB_FILENAME, HUB_REPOS, download_hub_weights
from explorer.runtime.default_weights import DefaultWeights
from tests.hub_server import HubServer
from tests.ui.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, start_app

CLOSED = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def served_file(tmp_path_factory) -> Path:
    """What the Hub serves: a released-network state dict unlike the random default (seed 11), in half precision
    (half the bytes to move; the loader uses it as float32)."""
    state = build_model("released", seed=11).state_dict()
    path = tmp_path_factory.mktemp("served") / HUB_FILENAME
    save_file({k: v.half() if v.is_floating_point() else v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture
def hub(served_file) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add(HUB_REPOS["tf_in1k"], HUB_FILENAME, served_file)
        yield server


def fresh_process(env: dict[str, str], timeout: float = 300) -> tuple[str, float]:
    """The server's default weights, resolved in a fresh Python process as the server does: (its console, seconds)."""
    code = (
        "from explorer.runtime.default_weights import DefaultWeights\n"
        "status = DefaultWeights().start().wait()\n"
        "print('STATUS', status.weights, status.phase)\n"
    )
    start = time.monotonic()
    environment = {**os.environ, **env}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, time.monotonic() - start


def cache_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def test_cached_weights_are_used_without_touching_the_network(hub, tmp_path):
    cache = tmp_path / "cache"
    download_hub_weights("tf_in1k", cache_dir=cache, endpoint=hub.endpoint)
    hub.state.requests.clear()
    out, _ = fresh_process({"EXPLORER_WEIGHTS": "auto", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": hub.endpoint})
    assert "STATUS hub:tf_in1k ready" in out, out
    assert "the default model is ready on cpu" in out and "timm/inception_resnet_v2.tf_in1k" in out, out
    assert hub.state.requests == []  # not even a HEAD


def test_offline_server_is_on_random_weights_at_the_refusal(tmp_path):
    cache = tmp_path / "cache"
    out, _ = fresh_process({"EXPLORER_WEIGHTS": "auto", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": CLOSED})
    assert "STATUS random failed" in out, out
    # decided by the refused connection itself (no retries: tests/nets/test_weights.py), after random weights served
    assert "cannot reach the Hugging Face Hub at http://127.0.0.1:9 ([Errno 111] Connection refused)" in out, out
    assert out.index("the default model is ready on cpu") < out.index("cannot reach the Hugging Face Hub"), out
    assert "irv2-explorer weights fetch tf_in1k" in out  # and what to do about it
    assert cache_files(cache) == []


def test_a_download_that_fails_half_way_leaves_random_weights_and_a_clean_cache(hub, tmp_path):
    hub.state.cut_after, hub.state.cuts_left = 1_000_000, 1000  # every transfer, resumed ones too, breaks off
    cache = tmp_path / "cache"
    out, _ = fresh_process({"EXPLORER_WEIGHTS": "auto", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": hub.endpoint})
    assert "STATUS random failed" in out, out
    assert "downloading timm/inception_resnet_v2.tf_in1k failed" in out, out
    assert [f for f in cache_files(cache) if f.endswith((HUB_FILENAME, ".incomplete")) or "/blobs/" in f] == []


def test_bad_settings_give_one_line_and_random_weights(tmp_path, monkeypatch):
    lines: list[str] = []
    for setting, says in [
        ("hub:imagenet22k", "EXPLORER_WEIGHTS=hub:imagenet22k: unknown weights 'imagenet22k'"),
        ("pretrained", "EXPLORER_WEIGHTS=pretrained: unknown weights 'pretrained'; expected auto, random"),
        ("file:../etc/passwd.pth", "give a file name inside"),
        ("file:absent.safetensors", "absent.safetensors: no such file"),
    ]:
        monkeypatch.setenv("EXPLORER_WEIGHTS_DIR", str(tmp_path))
        status = DefaultWeights(setting, log=lines.append).start().wait(timeout=120)
        assert (status.weights, status.phase) == ("random", "failed") and says in status.message, status
        assert any(says in line for line in lines) and all("\n" not in line for line in lines)


def test_a_file_that_does_not_fit_is_refused_and_a_good_one_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_WEIGHTS_DIR", str(tmp_path))
    state = build_model("released", seed=5).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "good.safetensors"))
    save_file({"classif.weight": torch.zeros(10, 1536)}, str(tmp_path / "small.safetensors"))
    status = DefaultWeights("file:small.safetensors", log=lambda _: None).start().wait(timeout=120)
    assert status.weights == "random" and "does not fit the released network" in status.message
    defaults = DefaultWeights("file:good.safetensors", log=lambda _: None).start()
    key, engine = defaults.current(timeout=120)
    assert key == "file:good.safetensors" and engine.weights.source == "file good.safetensors"


# ------------------------------------------------------------------------------ the whole server


def wait_for(log: Path, text: str, seconds: float, server: subprocess.Popen) -> float:
    """Seconds until the server's console says ``text``."""
    start = time.monotonic()
    while text not in log.read_text():
        assert server.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() - start < seconds, f"no {text!r} after {seconds} s: {log.read_text()[-2000:]}"
        time.sleep(0.2)
    return time.monotonic() - start


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed: browser test skipped")
def test_a_fresh_server_moves_every_page_to_the_downloaded_weights_without_a_click(hub, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    hub.state.hold = threading.Event()  # the download waits until the page has been seen on random weights
    log = ARTIFACTS / "default-weights-streamlit.log"
    env = {
        "EXPLORER_WEIGHTS": "auto",
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_CACHE": str(tmp_path / "cache"),
        "HF_HUB_DOWNLOAD_TIMEOUT": "120",
        "EXPLORER_WEIGHTS_DIR": str(tmp_path),
    }
    server = start_app(port := free_port(), log, env)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.goto(f"http://127.0.0.1:{port}/activations")  # an image shown on the random weights
            banner = tab.get_by_text("Random weights:")
            expect(banner).to_be_visible(timeout=120_000)
            expect(tab.get_by_text("Downloading the trained weights: 0 of 112 MB")).to_be_visible(timeout=60_000)
            expect(tab.get_by_text("the trained weights are downloading")).to_be_visible(timeout=60_000)
            expect(tab.get_by_text("Top-5 (random (seed 0))")).to_be_visible(timeout=120_000)
            bars = tab.locator("[data-testid='stProgress']").filter(has_text=re.compile(r"^[1-5]\. "))
            before = bars.all_inner_texts()
            tab.screenshot(path=str(ARTIFACTS / "default-weights-downloading.png"), full_page=True)
            hub.state.hold.set()
            expect(banner).to_have_count(0, timeout=120_000)  # no click: the page moved by itself
            # and the image already shown moved to the new weights' predictions
            expect(tab.get_by_text("tf_in1k (Hugging Face Hub)")).to_be_visible(timeout=120_000)
            expect(bars.first).not_to_have_text(before[0], timeout=60_000)
            tab.screenshot(path=str(ARTIFACTS / "default-weights-ready.png"), full_page=True)
            tab.goto(f"http://127.0.0.1:{port}/activations")  # a new session starts on the trained weights
            expect(tab.get_by_text("tf_in1k (Hugging Face Hub)")).to_be_visible(timeout=120_000)  # the top-5 says
            expect(tab.get_by_text("Random weights:")).to_have_count(0)
            browser.close()
        text = log.read_text()
        assert "the default model moved to these weights" in text and "Traceback" not in text, text[-2000:]
    finally:
        hub.state.hold.set()
        server.terminate()
        server.wait(timeout=30)


def test_a_server_with_the_hub_on_a_closed_port_serves_random_weights_and_says_why(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "default-weights-offline-streamlit.log"
    env = {"EXPLORER_WEIGHTS": "auto", "HF_ENDPOINT": CLOSED, "HF_HUB_CACHE": str(tmp_path / "cache")}
    server = start_app(port := free_port(), log, env)
    try:
        wait_for(log, "cannot reach the Hugging Face Hub", 120, server)
        text = log.read_text()
        assert "Connection refused" in text and "the default model is ready on cpu" in text, text[-2000:]
        if CHROMIUM.exists():
            sidebar_says_why_in_a_few_lines(port)
    finally:
        server.terminate()
        server.wait(timeout=30)


def sidebar_says_why_in_a_few_lines(port: int) -> None:
    """The sidebar's message on a server that is offline: the cause in a few lines, what to do one click away
    (the whole message took about 40 lines of the narrow sidebar)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        for width, height in ((1440, 900), (390, 844)):
            tab = browser.new_page(viewport={"width": width, "height": height})
            tab.goto(f"http://127.0.0.1:{port}/")
            if width < 640:  # a phone: the sidebar is folded away
                tab.locator("[data-testid='stExpandSidebarButton']").click()
            warning = tab.locator("[data-testid='stSidebar'] [data-testid='stAlert']", has_text="Random weights:")
            expect(warning).to_be_visible(timeout=120_000)
            # in place once the sidebar has slid open (on a phone it opens over the page)
            tab.wait_for_function(
                "() => { const s = document.querySelector(\"[data-testid='stSidebar']\").getBoundingClientRect();"
                " return s.left >= 0 && s.width > 200; }",
                timeout=30_000,
            )
            text = warning.inner_text()
            assert "cannot reach the Hugging Face Hub" in text and "weights fetch" not in text, text
            assert warning.bounding_box()["height"] < 200, (width, warning.bounding_box())
            tab.get_by_text("Why, and what to do").click()
            expect(tab.get_by_text("irv2-explorer weights fetch", exact=False).first).to_be_visible(timeout=30_000)
            tab.screenshot(path=str(ARTIFACTS / f"sidebar-offline-{width}.png"))
            tab.close()
        browser.close()
