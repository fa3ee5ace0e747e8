"""The script `irv2-explorer app` gives `streamlit run`: explorer/ui/app.py's app, as app.py serves it in a checkout.

It has a folder of its own because Streamlit puts the script's folder first on sys.path, reads the settings
beside it (.streamlit/config.toml: a link to the checkout's, which the wheel carries as a file) and would list
a pages/ folder found there as pages of its own.
"""

import streamlit as st

from explorer.ui.app import lifespan, navigation

if __name__ == "__main__":
    navigation()
else:
    app = st.App(__file__, lifespan=lifespan)
