"""The app's first result after a cold start, as a user sees it in the browser.

    python -m benchmarks.first_result [--rounds 5] [--via-landing-page]

Each round starts a fresh `streamlit run app.py` (nothing cached: a new process, new model, new
engine, random weights as on a fresh clone), opens the Activations page in Debian's chromium
(by its address, or with --via-landing-page from the Network page once that is drawn) and
waits for the default sample's result. Reports, per round and as the median, the seconds from
launching the server to: its health check answering, the top-5, the first activation map (the
block's map over the image), the interactive heatmap; "first result" is the later of the
top-5 and the map. The browser runs on the same cores as the server, as on a teacher's laptop.
Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ui.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, free_port, start_app  # noqa: E402


def one_round(browser, weights_dir: str, via_landing_page: bool) -> dict[str, float]:
    port = free_port()
    env = {"EXPLORER_WEIGHTS_DIR": weights_dir, "EXPLORER_WEIGHTS": "random"}  # the same model every round
    launched = time.monotonic()
    server = start_app(port, ARTIFACTS / "first-result-streamlit.log", env)
    times = {"server healthy": time.monotonic() - launched}
    try:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        if via_landing_page:
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Where the parameters and the computation are").first.wait_for(timeout=300_000)
            times["landing page drawn"] = time.monotonic() - launched
            page.locator("[data-testid='stSidebarNav'] a", has_text="Activations").first.click()
        else:
            page.goto(f"http://127.0.0.1:{port}/activations")
        waits = {
            "top-5 on screen": page.locator("[data-testid='stProgress']").nth(4),
            "first map on screen": page.get_by_text("overlaid on the image").first,
            "interactive heatmap drawn": page.locator(".js-plotly-plot").first,
        }
        for what, locator in waits.items():
            locator.wait_for(timeout=300_000)
            times[what] = time.monotonic() - launched
        exceptions = page.locator("[data-testid='stException']").count()
        context.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    if exceptions:
        raise SystemExit(f"the page showed {exceptions} exception box(es)")
    times["first result (top-5 and a map) on screen"] = max(times["top-5 on screen"], times["first map on screen"])
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--via-landing-page",
        action="store_true",
        help="open the Network page first and click through to Activations once it is drawn",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    rounds = []
    with tempfile.TemporaryDirectory() as weights_dir, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        for index in range(args.rounds):
            rounds.append(one_round(browser, weights_dir, args.via_landing_page))
            print(f"round {index + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in rounds[-1].items()), flush=True)
        browser.close()
    summary: dict[str, object] = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    summary["cores"] = os.cpu_count()
    (ARTIFACTS / "first-result.json").write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2))
    for key, value in summary.items():
        print(f"median {key:<42} {value:.1f} s" if isinstance(value, float) else f"{key:<49} {value}")


if __name__ == "__main__":
    main()
