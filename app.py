"""Inception-ResNet-v2 Explorer: ``streamlit run app.py`` in a checkout.

``make run``, Streamlit Community Cloud and Hugging Face Spaces start here; the app itself is
``explorer/ui/app.py``, which an installed package serves with ``irv2-explorer app``. Each browser
session runs this file as ``__main__`` (the pages); ``streamlit run`` also imports it to find
``app`` and serves that, with the start-up hook that loads the default model before anyone connects.
"""

import streamlit as st

from explorer.ui.app import lifespan, navigation

if __name__ == "__main__":
    navigation()
else:
    app = st.App("app.py", lifespan=lifespan)
