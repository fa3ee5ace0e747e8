"""`streamlit run app.py` serves the pages and loads the default model at start-up, before anyone connects."""

from __future__ import annotations

import time
import urllib.request

from tests.ui.browsing import ARTIFACTS, free_port, start_app


def test_the_server_loads_the_default_model_before_the_first_visitor(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "app-start-streamlit.log"
    port = free_port()
    server = start_app(port, log, {"EXPLORER_WEIGHTS_DIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 180
        while "the default model is ready" not in log.read_text() and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            assert reply.status == 200  # the pages are served as before
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert "Explorer: the default model is ready on cpu" in text, text[-2000:]
    assert "Traceback" not in text and "missing ScriptRunContext" not in text, text[-2000:]
