"""Whether a server stays within its memory budget, whatever its sessions do.

    python -m benchmarks.memory [--budget-mb 1024] [--settings 12] [--sessions 3]

Starts `streamlit run app.py` (random weights) with ``EXPLORER_MEMORY_BUDGET_MB``, opens the Activations page
once and reads the server's resident memory there: after its first result. Then ``--sessions`` sessions each
slide a block slider through ``--settings`` block counts (every setting a network and an engine of its own,
every page run a result and its pictures), and open the network map's inside of a block, the tour and the
Activations page on each network they reach. The claim (explorer.runtime.memory): the server's resident memory,
and its peak, stay within its memory after the first result plus the budget plus 200 MB. Prints the figures and
whether they held; exits 1 if not. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serving import memory_mb, slide_blocks  # noqa: E402

#: What Python, the allocators and Streamlit may keep beyond the budget (the issue's bound).
SLACK_MB = 200


def visit_pages(browser, port: int, blocks: str) -> None:
    """The pages that keep the most per network: the map with a block open inside, the tour, Activations."""
    from tests.ui.browsing import settle

    tab = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    pages = (f"map?node=repeat_1.0&image=cat&blocks={blocks}", f"tour?blocks={blocks}", f"activations?blocks={blocks}")
    for path in pages:
        tab.goto(f"http://127.0.0.1:{port}/{path}")
        settle(tab, timeout=600)
    tab.context.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-mb", type=int, default=1024)
    parser.add_argument("--settings", type=int, default=12)
    parser.add_argument("--sessions", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.ui.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, free_port, settle, start_app

    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "memory-streamlit.log"
    port = free_port()
    env = {"EXPLORER_WEIGHTS": "random", "EXPLORER_MEMORY_BUDGET_MB": str(args.budget_mb)}
    server = start_app(port, log, env)
    report: dict[str, object] = {"cpu cores": os.cpu_count(), "budget MB": args.budget_mb}
    try:
        deadline = time.monotonic() + 300
        while "the default model is ready" not in log.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not load its model: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            first = browser.new_context().new_page()
            first.goto(f"http://127.0.0.1:{port}/activations")
            settle(first, timeout=600)
            first.context.close()
            report["after the first result MB"] = baseline = memory_mb(server.pid)["VmRSS"]
            slid = slide_blocks(browser, port, args.sessions, args.settings, server.pid)
            for blocks in ("5,10,5", "10,20,10", "12,19,12"):
                visit_pages(browser, port, blocks)
            browser.close()
        memory = memory_mb(server.pid)
        report["block counts reached"] = slid["last block counts"]
        report["after every setting and page MB"] = memory["VmRSS"]
        report["peak MB"] = memory["VmHWM"]
        report["bound MB (first result + budget + 200)"] = bound = baseline + args.budget_mb + SLACK_MB
        report["held"] = memory["VmRSS"] <= bound and memory["VmHWM"] <= bound
    finally:
        server.terminate()
        server.wait(timeout=30)
    (ARTIFACTS / "memory.json").write_text(json.dumps(report, indent=2))
    for key, value in report.items():
        print(f"{key:<44} {value:.0f}" if isinstance(value, float) else f"{key:<44} {value}")
    sys.exit(0 if report["held"] else 1)


if __name__ == "__main__":
    main()
