"""What one server needs for a class: time per page, time per image and memory per replica.

    python -m benchmarks.serving [--visits 2]

Starts `streamlit run app.py` on a loopback port (random weights: the same arithmetic and memory as the
trained ones) and waits for the default model. Then, in Debian's chromium, opens every page by its
address in a fresh session, ``--visits`` times: the first visit finds the server's caches cold for
that page, later ones warm. Reports the seconds from navigation to the page having settled (the
server's script run and the browser's drawing; the browser shares the cores), the engine's time per
image in this process (the six samples, three rounds, median), and the server's memory: resident
after start-up, after the visits, and its peak. Then three sessions on the Activations page each slide
a block slider through ``--sliders`` settings (30 networks in all, each an engine of its own) and the
server's peak memory is reported again: the engine pool's budget (explorer.runtime.engine_pool) bounds it.
Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from explorer.runtime import Engine

PAGES = {"Network": "", "Network map": "map", "Layer counts": "counts", "Block graph": "graph",
         "Activations": "activations", "Compare variants": "compare", "Residual scaling": "experiment",
         "Guided tour": "tour"}  # fmt: skip


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def per_image_ms(engine: Engine, rounds: int = 3) -> float:
    """``engine.run`` on each sample photograph, ``rounds`` times: the median in milliseconds."""
    from explorer.runtime.images import load_image, sample_paths

    images = [load_image(p).image for p in sample_paths()]
    engine.run(images[0])  # warm
    times = []
    for _ in range(rounds):
        for image in images:
            start = time.perf_counter()
            engine.run(image)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def slide_blocks(browser, port: int, sessions: int, settings: int, server_pid: int) -> dict[str, object]:
    """``sessions`` sessions on the Activations page, each moving another block slider (A, B, C) one notch at
    a time through ``settings`` settings, in turns: every setting is a network of its own, with an engine of
    its own. Returns the seconds per setting and the server's memory."""
    from playwright.sync_api import expect

    from tests.ui.browsing import settle

    tabs = []
    for index in range(sessions):
        tab = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        tab.goto(f"http://127.0.0.1:{port}/activations")
        settle(tab, timeout=600)
        tab.get_by_text("Blocks of each type").first.click()
        letter = "ABC"[index % 3]
        slider = tab.locator("[data-testid='stSlider']").filter(has_text=f"Inception-ResNet-{letter}")
        slider = slider.locator("input").first
        slider.wait_for()
        tabs.append((tab, slider))
    seconds = []
    counts = [[10, 20, 10] for _ in tabs]
    steps = {0: 1, 1: -1, 2: 1}  # A and C up from 10, B down from 20: ten settings each within 1 to 30
    bars = [tab.locator("[data-testid='stProgress']").filter(has_text=re.compile(r"^1\. ")) for tab, _ in tabs]
    for _ in range(settings):
        start = time.monotonic()
        before = [bar.first.inner_text() for bar in bars]
        for index, (_, slider) in enumerate(tabs):
            slider.focus()
            slider.press("ArrowRight" if steps[index % 3] > 0 else "ArrowLeft")  # another network
            counts[index][index % 3] += steps[index % 3]
        for (tab, _), wanted, bar, old in zip(tabs, counts, bars, before, strict=True):
            # the page's run for the new network writes it into the address first and shows its top-5 last
            # (another network, other random weights: another first class): wait for both, then settle
            blocks = ",".join(map(str, wanted))
            tab.wait_for_url(lambda url, blocks=blocks: parse_qs(urlparse(url).query).get("blocks") == [blocks],
                             timeout=600_000)  # fmt: skip
            expect(bar.first).not_to_have_text(old, timeout=600_000)
            settle(tab, timeout=600)
        seconds.append(time.monotonic() - start)
        print(f"  setting {len(seconds)}: {seconds[-1]:.1f} s, server {memory_mb(server_pid)['VmRSS']:.0f} MB",
              file=sys.stderr, flush=True)  # fmt: skip
    memory = memory_mb(server_pid)
    values = [int(slider.input_value()) for _, slider in tabs]
    for tab, _ in tabs:
        tab.context.close()
    return {"seconds per setting (all sessions)": seconds, "last block counts": values, **memory}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visits", type=int, default=2)
    parser.add_argument("--sliders", type=int, default=10, help="settings each of three sessions slides through")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from explorer.nets import make_config
    from explorer.nets.weights import random_weights
    from explorer.runtime import Engine
    from tests.ui.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, free_port, settle, start_app

    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "serving-streamlit.log"
    port = free_port()
    server = start_app(port, log, {"EXPLORER_WEIGHTS": "random"})  # EXPLORER_ENGINE_BUDGET_MB passes through
    report: dict[str, object] = {"cpu cores": os.cpu_count()}
    try:
        deadline = time.monotonic() + 300
        while "the default model is ready" not in log.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not load its model: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        report["memory after start-up MB"] = memory_mb(server.pid)["VmRSS"]
        seconds: dict[str, list[float]] = {name: [] for name in PAGES}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            for _ in range(args.visits):
                for name, path in PAGES.items():
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    tab = context.new_page()
                    start = time.monotonic()
                    tab.goto(f"http://127.0.0.1:{port}/{path}")
                    settle(tab, timeout=600)
                    seconds[name].append(time.monotonic() - start)
                    context.close()
            memory = memory_mb(server.pid)
            report["memory after every page MB"] = memory["VmRSS"]
            report["peak memory MB"] = memory["VmHWM"]
            if args.sliders:
                slid = slide_blocks(browser, port, 3, args.sliders, server.pid)
                report["sliders: three sessions, seconds per setting"] = slid["seconds per setting (all sessions)"]
                report["sliders: block counts reached"] = slid["last block counts"]
                report["sliders: memory after MB"] = slid["VmRSS"]
                report["sliders: peak memory MB"] = slid["VmHWM"]
            browser.close()
        report["page seconds (first visit, then cached)"] = seconds
    finally:
        server.terminate()
        server.wait(timeout=30)
    engine = Engine(*random_weights(make_config("released")), device="cpu")
    report["per image ms (engine.run, cpu, median)"] = per_image_ms(engine)
    (ARTIFACTS / "serving.json").write_text(json.dumps(report, indent=2))
    for key, value in report.items():
        if isinstance(value, dict):
            print(key)
            for name, times in value.items():
                print(f"  {name:<18} " + "  ".join(f"{t:6.2f}" for t in times))
        elif isinstance(value, list):
            print(f"{key:<44} " + " ".join(f"{t:.1f}" for t in value))
        else:
            print(f"{key:<44} {value:.0f}" if isinstance(value, float) else f"{key:<44} {value}")


if __name__ == "__main__":
    main()
