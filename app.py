"""Inception-ResNet-v2 Explorer: ``streamlit run app.py``.

Each browser session runs this file as its script (``__main__``): the navigation over the pages.
`streamlit run` also imports it as a module, finds ``app`` and serves that: the same pages, plus a
start-up hook that begins loading the default model as soon as the server is up, before anyone
connects (seconds on a CPU, a minute or two of compiling on a GPU).
"""

import contextlib
import threading
import time
from collections.abc import AsyncIterator

import streamlit as st

if __name__ == "__main__":
    st.set_page_config(page_title="Inception-ResNet-v2 Explorer", layout="wide")
    st.navigation(
        [
            st.Page("explorer/pages/overview.py", title="Network", default=True),
            st.Page("explorer/pages/counts.py", title="Layer counts", url_path="counts"),
            st.Page("explorer/pages/graph.py", title="Block graph", url_path="graph"),
            st.Page("explorer/pages/activations.py", title="Activations", url_path="activations"),
            st.Page("explorer/pages/compare.py", title="Compare variants", url_path="compare"),
            st.Page("explorer/pages/experiment.py", title="Residual scaling", url_path="experiment"),
            st.Page("explorer/pages/tour.py", title="Guided tour", url_path="tour"),
        ]
    ).run()
else:

    def _warm_up() -> None:
        start = time.perf_counter()
        from explorer.pages._common import default_engine_build  # imports torch: off the server's start

        try:
            engine = default_engine_build().result()
        except Exception as error:  # the page that needs the model tries again and shows the error
            print(f"Explorer: loading the default model failed ({error}); pages will retry", flush=True)
        else:
            took = time.perf_counter() - start
            print(f"Explorer: the default model is ready on {engine.device} after {took:.1f} s", flush=True)

    @contextlib.asynccontextmanager
    async def _on_start(_app: st.App) -> AsyncIterator[None]:
        threading.Thread(target=_warm_up, name="explorer-warm-up", daemon=True).start()
        yield

    app = st.App("app.py", lifespan=_on_start)
