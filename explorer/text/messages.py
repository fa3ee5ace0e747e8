"""The app's own messages made short where there is little room (the sidebar): the cause, the rest folded away."""

from __future__ import annotations

import re

_ASIDE = re.compile(r"\s*\([^()]*\)")


def headline(message: str) -> str:
    """The cause a message starts with: what comes before its first "; " (the app's messages say the cause,
    then what to do), without the asides in brackets (an HTTP client's error text)."""
    cause = message.split("; ", 1)[0].splitlines()[0] if message.strip() else message
    return _ASIDE.sub("", cause).strip()
