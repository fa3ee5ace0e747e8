"""Inception-ResNet-v2 Explorer: ``streamlit run app.py``."""

import streamlit as st

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
