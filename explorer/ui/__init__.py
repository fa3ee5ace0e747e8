"""The Streamlit app: the entry (:mod:`explorer.ui.app`), its pages (``pages/``, run by path), state and caches.

The only package that imports streamlit. Nothing is imported here, so that the server's entry does not load
torch before the server is up.
"""
