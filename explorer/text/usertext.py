"""Text that comes from users (a URL's parameters, an upload's name, a text box), made safe to show.

Streamlit renders markdown in messages, captions, labels and progress texts, and plotly renders a subset
of HTML in titles, legends and hover texts; user text in either could carry a link, an image that the
browser fetches from another host, or markup that dresses it up as the app's own words. :func:`shown` is
the one way such text reaches the screen: it is cut to a sensible length, its control and bidirectional
characters are made visible (a right-to-left override would otherwise reverse the app's own sentence
around it), and it is escaped for where it goes, so that it reads as the characters that were given.
"""

from __future__ import annotations

import html
import re
import string
import unicodedata
from typing import Literal

_ASCII_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
#: How much of a user's text a message quotes; the rest is an ellipsis.
LIMIT = 60

Target = Literal["markdown", "plotly", "plain"]

# Bidirectional controls and other invisible formatting characters that change how the text around them
# reads (Unicode category Cf covers them, the zero-width space and joiners included); line and paragraph
# separators (Zl, Zp) would start new markdown blocks.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn")
# CommonMark lets every ASCII punctuation character be escaped with a backslash: escaped, none of them
# starts a link, an image, emphasis, a heading, a list, HTML, Streamlit's ":colour[...]" / ":icon:"
# directives or LaTeX.
_MARKDOWN_SPECIAL = frozenset(string.punctuation)
# GFM's autolinks ("https://...", "www.x.y", "a@b.c") are found in the text after escapes are undone, so
# escaping does not stop them: an invisible word joiner does, where the patterns need two characters to be
# adjacent: before a ":" after a letter or digit (a scheme), before the "." of "www." and before any "@".
# It is ours, added on purpose, not the user's.
WORD_JOINER = "\u2060"


def _breaks_autolink(value: str, index: int) -> bool:
    char, before = value[index], value[max(index - 3, 0) : index]
    if char == "@":
        return True
    if char == ":":
        return before[-1:].isalnum()
    return char == "." and before.lower() == "www"


def _visible(char: str) -> str:
    """A character as it can be seen: itself, or its code point for one that would act unseen."""
    if unicodedata.category(char) in _HIDDEN:
        return f"<U+{ord(char):04X}>"
    return char


def cleaned(text: object, limit: int = LIMIT) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis) and with invisible characters made visible."""
    value = str(text)
    if len(value) > limit:
        value = value[: max(limit - 1, 1)] + "…"
    return "".join(_visible(char) for char in value)


def shown(text: object, target: Target = "markdown", limit: int = LIMIT) -> str:
    """User text ready for ``target``: markdown (Streamlit's messages, captions and labels), plotly (titles,
    legends, hover texts) or plain (what shows text as it is: a selectbox's options, a table's cells)."""
    value = cleaned(text, limit)
    if target == "markdown":
        return "".join(
            (WORD_JOINER if _breaks_autolink(value, i) else "") + (f"\\{char}" if char in _MARKDOWN_SPECIAL else char)
            for i, char in enumerate(value)
        )
    if target == "plotly":
        return html.escape(value, quote=True)
    return value


def quoted(text: object, target: Target = "markdown", limit: int = LIMIT) -> str:
    """:func:`shown` between quotation marks, as messages quote what was given."""
    return f"“{shown(text, target, limit)}”"


def parse_int(text: str) -> int | None:
    """A whole number from a URL in ASCII digits ("3", " 3 ", "+3", "-3"), or None for anything else.

    Neither ``str.isdigit`` (it accepts "²") nor :func:`int` alone (it reads "٣" as 3 and "1_0" as 10) is the
    test: an address names a number one way, so that it can be written back the same (``str(number)``).
    """
    if not isinstance(text, str) or not _ASCII_INTEGER.fullmatch(text):
        return None
    return int(text)
