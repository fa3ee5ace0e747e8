"""`pip install`: a wheel built from the checkout installs into a fresh virtualenv, with its sample photographs
and the `irv2-explorer` command, which works from outside the checkout and serves the app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from explorer.analysis.counting import count_layers
from explorer.nets import make_config
from tests.ui.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, free_port

pytestmark = pytest.mark.package
PAGES = ["Network", "Network map", "Layer counts", "Block graph", "Activations", "Channels", "Classes",
         "Compare variants", "Residual scaling", "Guided tour", "New head"]  # fmt: skip

NOT_SHIPPED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "test-artifacts", "weights"
)


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh virtualenv with the wheel installed, as `pip install` from the registry does it."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SHIPPED)
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--wheel-dir", str(work / "dist")])
    (wheel,) = (work / "dist").glob("*.whl")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])  # from the base interpreter: none of .venv's packages
    # The dependencies are the test environment's (torch alone took most of a minute to unpack again), seen
    # through a .pth file after the venv's own packages; `pip check` then holds the wheel's declared
    # requirements against them, as pip's resolver would. The checkout itself is never on the path.
    python = str(venv / "bin" / "python")
    own = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    theirs = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    Path(own, "test-dependencies.pth").write_text("\n".join(theirs) + "\n")
    run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"])  # the venv's own, older: theirs
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)])
    run([python, "-m", "pip", "check"])
    return venv / "bin"


def test_irv2_explorer_counts_from_outside_the_checkout(installed, tmp_path):
    done = run([str(installed / "irv2-explorer"), "counts", "--format", "json"], cwd=tmp_path)
    assert json.loads(done.stdout) == json.loads(json.dumps(count_layers(make_config("released")).to_json()))
    usage = run([str(installed / "irv2-explorer"), "--help"], cwd=tmp_path).stdout
    assert usage.startswith("usage: irv2-explorer") and "\n  irv2-explorer weights fetch [TAG]" in usage


def test_the_wheel_carries_the_samples_and_infers_on_them(installed, tmp_path):
    python = str(installed / "python")
    show_samples = "import explorer.runtime.images as i; print(i.SAMPLES_DIR)"
    where = run([python, "-c", show_samples], cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(installed.parent) and (Path(where) / "ATTRIBUTION.md").is_file()
    settings = Path(where).parent / "ui" / "serve" / ".streamlit" / "config.toml"  # a file, not the checkout's link
    assert not settings.is_symlink() and settings.read_text() == (ROOT / ".streamlit" / "config.toml").read_text()
    done = run(
        [str(installed / "irv2-explorer"), "infer", str(Path(where) / "cat.jpg"), "--format", "json"], cwd=tmp_path
    )
    result = json.loads(done.stdout)
    assert len(result["top5"]) == 5 and result["blocks"][0]["name"] == "conv2d_1a"
    assert "random weights" in done.stderr  # --weights auto, with nothing cached: random, said once


def test_irv2_explorer_app_serves_the_app(installed, tmp_path):
    port = free_port()
    log = tmp_path / "app.log"
    server = subprocess.Popen(
        [str(installed / "irv2-explorer"), "app", "--port", str(port), "--address", "127.0.0.1"],
        cwd=tmp_path,  # no .streamlit/ here: the settings come with the package
        env={**os.environ, "EXPLORER_WEIGHTS_DIR": str(tmp_path)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while "the default model is ready" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as reply:
            assert reply.read() == b"ok"
        if CHROMIUM.exists():
            from playwright.sync_api import expect, sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                tab = browser.new_page()
                tab.goto(f"http://127.0.0.1:{port}/counts")
                expect(tab.get_by_role("heading", name="How many layers?")).to_be_visible(timeout=120_000)
                nav = tab.locator("[data-testid='stSidebarNav'] a")
                expect(nav).to_have_text(PAGES)  # the app's pages, not a listing of explorer/ui/pages/
                ARTIFACTS.mkdir(exist_ok=True)
                tab.screenshot(path=str(ARTIFACTS / "irv2-explorer-app.png"))
                browser.close()
        text = log.read_text()
        assert "Traceback" not in text and "Explorer: the default model is ready on cpu" in text, text[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
