"""A classroom: N browser sessions at once, following a teacher's room and each uploading its own image.

    python -m benchmarks.load_classroom [--sessions 30] [--replicas 1] [--room] [--students socket] [--timeout 600]

With ``--room`` a teacher's session (presenter mode) opens a class room, every student opens its link, and the
teacher moves three times (a page, another, back): the time from the teacher's click to each student's page run
beginning is the step's latency (p50, p95, max over the students). ``--replicas R`` serves the class as
``irv2-explorer class --replicas R`` does (nginx, Redis), else one ``streamlit run``.

``--students socket`` (with ``--room``): the students are websocket clients that speak Streamlit's protocol as its
frontend does (``benchmarks.classroom_clients``) instead of chromium pages, so that a class of 30 on a 2-core
machine measures the server rather than 30 browsers on the server's cores; the teacher is still a browser, and
there is no upload part.

Starts `streamlit run app.py` on a loopback port, opens N pages in Debian's chromium (one browser,
N contexts), uploads a different image in each at the same moment and waits for each page's
top-5. Each session's answer is checked against a single-session run of the same image through
the library (the same engine and weights), so crosstalk would show. Reports p50 / p95
time-to-maps and the server's peak memory. Bounded: every wait has a deadline; traffic stays on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from tests.ui.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, free_port, start_app  # noqa: E402


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


def percentile(ordered: list[float], share: float) -> float:
    return ordered[max(round(share * len(ordered)) - 1, 0)]


def follow_steps(browser, pages: list, base: str, timeout: float) -> list[list[float]]:
    """A teacher opens a room, every page follows it, the teacher moves twice: each student's latency per move."""
    import re

    from tests.ui.test_classroom_browser import nav, start_room

    teacher = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    teacher.goto(f"{base}/?present=1")
    for title in ("Layer counts", "Network map", "Network"):  # each page drawn once: its first time is not following
        nav(teacher, title)
    code = start_room(teacher, base)
    for page in pages:  # opened at once, as a class scanning the code does
        page.goto(f"{base}/?room={code}", wait_until="commit", timeout=timeout * 1000)
    joined = time.monotonic()
    for number, page in enumerate(pages):  # each on the teacher's page, drawn (its own first run is not measured)
        page.get_by_text(re.compile(f"Following the teacher in room {code}")).wait_for(timeout=timeout * 1000)
        page.get_by_text("Keras layers", exact=True).first.wait_for(timeout=timeout * 1000)
        print(f"student {number + 1} following, {time.monotonic() - joined:.1f} s", file=sys.stderr, flush=True)
    found = []
    for title, path in (("Layer counts", "/counts"), ("Network map", "/map"), ("Layer counts", "/counts")):
        start = time.monotonic()
        teacher.locator("[data-testid='stTopNavLink']", has_text=title).first.click()  # the clock runs from here
        arrived: dict[int, float] = {}
        while len(arrived) < len(pages):
            for number, page in enumerate(pages):
                if number not in arrived and urlparse(page.url).path == path:
                    arrived[number] = time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{len(pages) - len(arrived)} students never followed"
            pages[0].wait_for_timeout(20)  # lets Playwright take in the pages' events (their new addresses)
        found.append(list(arrived.values()))
    for page in pages:
        page.get_by_role("button", name="Stop following").click()
    return found


def follow_steps_sockets(browser, count: int, base: str, timeout: float) -> tuple[list[list[float]], list[float]]:
    """As ``follow_steps``, the students being websocket clients (``benchmarks.classroom_clients``). Each step
    starts from a settled class (every student's page drawn, as while a teacher talks); also returned: each
    step's time until every student's page had been drawn whole."""
    from benchmarks.classroom_clients import Class
    from tests.ui.test_classroom_browser import nav, start_room

    teacher = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    teacher.goto(f"{base}/?present=1")
    for title in ("Layer counts", "Network map", "Network"):
        nav(teacher, title)
    teacher.get_by_text("Keras layers", exact=True).first.wait_for(timeout=timeout * 1000)  # the server's caches warm
    code = start_room(teacher, base)
    students = Class(base, f"room={code}", count)

    def settled(path: str, since: float) -> list[float]:
        while None in (drawn := students.drawings(path, since)):
            assert not students.dropped(), students.dropped()
            assert time.monotonic() - since < timeout, f"{drawn.count(None)} students' pages never finished"
            teacher.wait_for_timeout(50)
        return drawn

    joined = time.monotonic()
    students.start()
    try:
        settled("/", joined)  # the Network page is the default one
        print(f"{count} students following, {time.monotonic() - joined:.1f} s", file=sys.stderr, flush=True)
        found, drawn = [], []
        for title, path in (("Layer counts", "/counts"), ("Network map", "/map"), ("Layer counts", "/counts")):
            teacher.wait_for_timeout(1000)  # every follower's fragment ticking again
            start = time.monotonic()
            teacher.locator("[data-testid='stTopNavLink']", has_text=title).first.click()  # the clock runs from here
            while None in (arrived := students.arrivals(path, start)):
                assert not students.dropped(), students.dropped()
                assert time.monotonic() - start < timeout, f"{arrived.count(None)} students never followed"
                teacher.wait_for_timeout(20)
            found.append(arrived)
            drawn.append(max(settled(path, start)))
        return found, drawn
    finally:
        students.stop()


@contextlib.contextmanager
def served(replicas: int):
    """The app on a free loopback port (one ``streamlit run``, or replicas behind nginx): its address and pids."""
    os.environ["EXPLORER_WEIGHTS"] = "random"  # as the reference
    port = free_port()
    if replicas > 1:
        from explorer.classroom.serve import Classroom

        classroom = Classroom(replicas, port, "127.0.0.1")
        classroom.start()
        try:
            yield f"http://127.0.0.1:{port}", [r.process.pid for r in classroom.replicas if r.process]
        finally:
            classroom.stop()
    else:
        server = start_app(port, ARTIFACTS / "classroom-streamlit.log", {})
        try:
            yield f"http://127.0.0.1:{port}", [server.pid]
        finally:
            server.terminate()
            server.wait(timeout=30)


def upload_all(pages: list, images: list[Path], base: str, timeout: float) -> dict[str, dict]:
    """Every page's Activations page, then every image uploaded at (almost) once: each one's time to maps."""
    results: dict[str, dict] = {}
    for page in pages:
        page.goto(f"{base}/activations", timeout=timeout * 1000)
        page.get_by_text("Upload", exact=True).first.click()
    for page in pages:
        page.locator("[data-testid='stFileUploaderDropzoneInput']").first.wait_for(state="attached")
    start = time.monotonic()
    for page, path in zip(pages, images, strict=True):
        page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(path))
        results[path.name] = {"sent": time.monotonic() - start}
    for page, path in zip(pages, images, strict=True):
        left = max(timeout - (time.monotonic() - start), 1)
        page.get_by_text(f"{path.name}: what the network sees").wait_for(timeout=left * 1000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=left * 1000)  # the block's heatmap
        results[path.name]["maps"] = time.monotonic() - start
        bars = page.locator("[data-testid='stProgress']")  # "1. tabby: 41.0%", ...
        results[path.name]["top5"] = [bars.nth(i).inner_text().split(". ", 1)[1].rsplit(": ", 1)[0] for i in range(5)]
        results[path.name]["errors"] = page.locator("[data-testid='stException']").count()
    return results


def expected_top5(images: list[Path]) -> dict[str, list[str]]:
    """Each image's top-5 from one session's run through the library (the server's default random weights)."""
    from explorer.nets import make_config
    from explorer.nets.weights import random_weights
    from explorer.runtime import Engine
    from explorer.runtime.images import load_image

    model, info = random_weights(make_config("released"))
    engine = Engine(model, info, device="cpu")
    return {p.name: [x.label for x in engine.run(load_image(p).image).top5] for p in images}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--replicas", type=int, default=1, help="app processes behind nginx (1: one streamlit run)")
    parser.add_argument("--room", action="store_true", help="students follow a teacher's room; time its steps")
    parser.add_argument(
        "--students", choices=("browser", "socket"), default="browser", help="socket: websocket clients (--room)"
    )
    args = parser.parse_args()
    if args.students == "socket" and not args.room:
        parser.error("--students socket measures a room's steps: add --room")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    folder = ARTIFACTS / "classroom"
    folder.mkdir(exist_ok=True)
    images = make_images(args.sessions, folder) if args.students == "browser" else []
    expected = expected_top5(images)
    results: dict[str, dict] = {}
    steps: list[list[float]] = []
    drawn: list[float] = []  # socket students: each step's time until every page was drawn whole
    bad: list[str] = []
    with served(args.replicas) as (base, pids), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        if args.students == "socket":
            steps, drawn = follow_steps_sockets(browser, args.sessions, base, args.timeout)
        else:
            pages = []
            for _ in images:
                page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
                page.on("response", lambda r: bad.append(r.url) if r.status >= 400 and r.status != 404 else None)
                pages.append(page)
            if args.room:
                steps = follow_steps(browser, pages, base, args.timeout)
            results = upload_all(pages, images, base, args.timeout)
        browser.close()
        memory = sum(peak_memory_mb(pid) for pid in pids)

    summary: dict = {"sessions": args.sessions, "students": args.students, "replicas": args.replicas}
    summary["server peak memory MB (VmHWM, all replicas)"] = round(memory)
    if results:
        times = sorted(r["maps"] - r["sent"] for r in results.values())
        summary["correct results (top-5 equal to a single-session run)"] = sum(
            results[name]["top5"] == labels for name, labels in expected.items()
        )
        summary["exception boxes"] = sum(r["errors"] for r in results.values())
        summary["time to maps p50 s"] = statistics.median(times)
        summary["time to maps p95 s"] = percentile(times, 0.95)
        summary["HTTP responses >= 400 (not counting 404s of page paths)"] = len(bad)
    for number, latencies in enumerate(steps, start=1):
        ordered = sorted(latencies)
        summary[f"step {number} reached every student, s (max)"] = ordered[-1]
        summary[f"step {number} p50 / p95 s"] = f"{statistics.median(ordered):.2f} / {percentile(ordered, 0.95):.2f}"
        if drawn:
            summary[f"step {number}: every student's page drawn, s"] = drawn[number - 1]
    (ARTIFACTS / "classroom.json").write_text(json.dumps({"summary": summary, "sessions": results}, indent=2))
    for key, value in summary.items():
        print(f"{key:<56} {value:.2f}" if isinstance(value, float) else f"{key:<56} {value}")
    if results and (summary["correct results (top-5 equal to a single-session run)"] != args.sessions or bad):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
