"""The server's one memory budget (explorer.runtime.memory) and the cache of results and pictures under it.

:func:`budgeted` replaces ``st.cache_data`` for what is large (a run's maps, every block's inputs, pictures):
keyed like it (every argument but those whose names start with ``_``, which the key's other arguments stand
for), but held within the budget with the engines and the gallery, least recently used out first. Its values
are shared, not copied: callers read them and never change them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import streamlit as st

from explorer.runtime.memory import MemoryBudget, SizedCache

P = ParamSpec("P")
R = TypeVar("R")


@st.cache_resource(show_spinner=False)
def server_memory() -> MemoryBudget:
    """EXPLORER_MEMORY_BUDGET_MB, over the engines of other settings and every cache below."""
    return MemoryBudget()


@st.cache_resource(show_spinner=False)
def server_cache() -> SizedCache:
    return SizedCache(server_memory())


def budgeted(spinner: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A function's results kept in the server's cache, made once per key, with ``spinner`` shown while made."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)
        where = (function.__code__.co_filename, function.__qualname__)  # page scripts share one module name

        @functools.wraps(function)
        def cached(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            key = where + tuple((name, value) for name, value in bound.arguments.items() if not name.startswith("_"))
            cache = server_cache()
            if spinner is None or key in cache:
                return cache.get(key, lambda: function(*args, **kwargs))
            with st.spinner(spinner):
                return cache.get(key, lambda: function(*args, **kwargs))

        return cached

    return wrap
