"""A classroom on one server: N browser sessions at once, each uploading its own image.

    python -m benchmarks.load_classroom [--sessions 30] [--timeout 600]

Starts `streamlit run app.py` on a loopback port, opens N pages in Debian's chromium (one browser,
N contexts), uploads a different image in each at the same moment and waits for each page's
top-5. Each session's answer is checked against a single-session run of the same image through
the library (the same engine and weights), so crosstalk would show. Reports p50 / p95
time-to-maps and the server's peak memory. Bounded: every wait has a deadline; traffic stays on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from tests.ui.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, free_port, start_app  # noqa: E402


def make_images(count: int, folder: Path) -> list[Path]:
    """Distinct photographs: the samples rotated, mirrored and cropped."""
    samples = sorted((ROOT / "explorer" / "samples").glob("*.jpg"))
    paths = []
    for i in range(count):
        image = Image.open(samples[i % len(samples)]).convert("RGB").rotate(15 * (i // len(samples)), expand=True)
        if i % 2:
            image = ImageOps.mirror(image)
        path = folder / f"student-{i:02d}.png"
        image.save(path)
        paths.append(path)
    return paths


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from explorer.nets import make_config
    from explorer.nets.weights import random_weights
    from explorer.runtime import Engine
    from explorer.runtime.images import load_image

    ARTIFACTS.mkdir(exist_ok=True)
    folder = ARTIFACTS / "classroom"
    folder.mkdir(exist_ok=True)
    images = make_images(args.sessions, folder)
    model, info = random_weights(make_config("released"))
    reference_engine = Engine(model, info, device="cpu")
    expected = {p.name: [x.label for x in reference_engine.run(load_image(p).image).top5] for p in images}

    port = free_port()
    server = start_app(port, ARTIFACTS / "classroom-streamlit.log", {"EXPLORER_WEIGHTS": "random"})  # as the reference
    results: dict[str, dict] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            pages = []
            for _ in images:  # open every session and its Activations page first
                page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("[data-testid='stSidebarNav'] a", has_text="Activations").first.click()
                page.get_by_text("Upload", exact=True).first.click()
                pages.append(page)
            for page in pages:
                page.locator("[data-testid='stFileUploaderDropzoneInput']").first.wait_for(state="attached")
            start = time.monotonic()
            for page, path in zip(pages, images, strict=True):  # all uploads at (almost) once
                page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(path))
                results[path.name] = {"sent": time.monotonic() - start}
            for page, path in zip(pages, images, strict=True):
                left = max(args.timeout - (time.monotonic() - start), 1)
                page.get_by_text(f"{path.name}: what the network sees").wait_for(timeout=left * 1000)
                page.locator(".js-plotly-plot").first.wait_for(timeout=left * 1000)  # the block's heatmap
                results[path.name]["maps"] = time.monotonic() - start
                bars = page.locator("[data-testid='stProgress']")  # "1. tabby: 41.0%", ...
                labels = [bars.nth(i).inner_text().split(". ", 1)[1].rsplit(": ", 1)[0] for i in range(5)]
                results[path.name]["top5"] = labels
                results[path.name]["errors"] = page.locator("[data-testid='stException']").count()
            browser.close()
        memory = peak_memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    times = sorted(r["maps"] - r["sent"] for r in results.values())
    correct = sum(results[name]["top5"] == labels for name, labels in expected.items())
    errors = sum(r["errors"] for r in results.values())
    summary = {
        "sessions": args.sessions,
        "correct results (top-5 equal to a single-session run)": correct,
        "exception boxes": errors,
        "time to maps p50 s": statistics.median(times),
        "time to maps p95 s": times[max(round(0.95 * len(times)) - 1, 0)],
        "server peak memory MB (VmHWM)": round(memory),
    }
    (ARTIFACTS / "classroom.json").write_text(json.dumps({"summary": summary, "sessions": results}, indent=2))
    for key, value in summary.items():
        print(f"{key:<56} {value:.2f}" if isinstance(value, float) else f"{key:<56} {value}")
    if correct != args.sessions or errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
