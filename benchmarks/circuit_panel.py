"""The Channels page's "What builds this channel" panel in a browser: cold, then from warm caches.

    python -m benchmarks.circuit_panel [--block repeat_1.4] [--channel 3] [--repeat 3]

Indexes the sample photographs (random weights) into a temporary folder, starts `streamlit run app.py` with it
as the server's index, and opens ``/channels?block=B&channel=C`` in chromium: the time until the panel's last
line is shown and the page's run is over, first with nothing cached, then ``--repeat`` times in new sessions
(the circuit, the tiles' mosaics and kernels cached). Prints the machine and the times. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_index import machine  # noqa: E402

LAST_LINE = "The classes it raises most"


def opened(browser, url: str) -> float:
    from tests.ui.browsing import settle

    tab = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    start = time.monotonic()
    tab.goto(url)
    settle(tab, timeout=600)
    button = tab.get_by_role("button", name="Measure what builds it")
    if button.count():  # not measured yet: a job of the server's queue, started as a person starts it
        button.click()
    tab.get_by_text(LAST_LINE).wait_for(timeout=600_000)
    settle(tab, timeout=600)
    seconds = time.monotonic() - start
    tab.context.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block", default="repeat_1.4")
    parser.add_argument("--channel", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from explorer.runtime.images import SAMPLES_DIR
    from tests.ui.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, free_port, start_app

    ARTIFACTS.mkdir(exist_ok=True)
    index = Path(tempfile.mkdtemp(prefix="panel-index-")) / "samples"
    command = [sys.executable, "-m", "explorer", "index", str(SAMPLES_DIR), "--out", str(index), "--weights", "random"]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    port = free_port()
    server = start_app(
        port, ARTIFACTS / "panel-streamlit.log", {"EXPLORER_WEIGHTS": "random", "EXPLORER_INDEX": str(index)}
    )
    url = f"http://127.0.0.1:{port}/channels?block={args.block}&channel={args.channel}&image=cat"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            cold = opened(browser, url)
            warm = [opened(browser, url) for _ in range(args.repeat)]
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {
        "machine": machine(),
        "target": f"{args.block} {args.channel}",
        "cold, s": cold,
        "warm caches (median), s": statistics.median(warm),
        "warm, each": warm,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
