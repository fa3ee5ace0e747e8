"""The app's own messages: made short where there is little room (the sidebar), and the server's console lines."""

from __future__ import annotations

import re

_ASIDE = re.compile(r"\s*\([^()]*\)")


def headline(message: str) -> str:
    """The cause a message starts with: what comes before its first "; " (the app's messages say the cause,
    then what to do), without the asides in brackets (an HTTP client's error text)."""
    cause = message.split("; ", 1)[0].splitlines()[0] if message.strip() else message
    return _ASIDE.sub("", cause).strip()


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one line for a console or a note: its message's first line (else its type), cut to ``limit``."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def console(line: str) -> None:
    """A line in the server's console, marked as ours among Streamlit's and torch's."""
    print(f"Explorer: {line}", flush=True)
