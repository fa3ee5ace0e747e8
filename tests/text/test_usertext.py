"""User text is text: explorer.text.usertext, checked with a real CommonMark + GFM parser (markdown-it-py, the parser
behind rich and MyST) as the oracle for what Streamlit's markdown would make of it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from explorer.text.usertext import LIMIT, cleaned, parse_int, quoted, shown

PAYLOADS = [
    "[click me](https://evil.example/x)",
    "![x](https://evil.example/x.png)",
    "<img src=https://evil.example/y.png>",
    "<a href='https://evil.example'>here</a>",
    "**bold** _it_ `code` ~~gone~~",
    "# heading",
    "- item",
    "https://evil.example/bare www.evil.example mail@evil.example",
    ":red[red] :material/home: $x^2$",
    "[ref]\n\n[ref]: https://evil.example",
    "abc\u202edlrow olleh",
    "a\u2066b\u2069c\u200bd\x00e\x1bf",
]
PARSER = MarkdownIt("commonmark", {"linkify": True}).enable(["linkify", "strikethrough", "table"])


def rendered(markdown: str) -> str:
    return PARSER.render(markdown)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_markdown_renders_as_the_characters_given(payload):
    html = rendered(shown(payload, limit=500))
    for tag in ("<a ", "<img", "<strong", "<em", "<code", "<h1", "<li", "<s>", "<del"):
        assert tag not in html, (payload, html)
    assert "\u202e" not in html and "\x00" not in html


def test_bidi_and_control_characters_are_made_visible():
    assert cleaned("abc\u202edef") == "abc<U+202E>def"
    assert cleaned("a\nb\tc") == "a<U+000A>b<U+0009>c"
    assert "U+202E" in rendered(shown("x\u202ey"))


def test_the_oracle_sees_the_markup_that_raw_payloads_carry():
    assert '<a href="https://evil.example/x">' in rendered(PAYLOADS[0])
    assert '<img src="https://evil.example/x.png"' in rendered(PAYLOADS[1])
    assert "<strong>bold</strong>" in rendered(PAYLOADS[4])
    assert '<a href="https://evil.example/bare">' in rendered(PAYLOADS[7])


def test_long_text_is_cut_with_an_ellipsis():
    text = shown("A" * 10_000)
    assert len(text) == LIMIT and text.endswith("…")
    assert quoted("x").startswith("“") and quoted("x").endswith("”")


def test_plotly_text_is_html_escaped():
    assert shown("<a href='x'>y</a>", "plotly") == "&lt;a href=&#x27;x&#x27;&gt;y&lt;/a&gt;"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("3", 3),
        (" 3 ", 3),
        ("+3", 3),
        ("-3", -3),
        ("²", None),
        ("3.0", None),
        ("", None),
        ("1e3", None),
        ("\u0663", None),  # an Arabic-Indic 3, which int() reads as 3
        ("1_0", None),  # int() reads 10
        ("\uff13", None),  # a full-width 3
    ],
)
def test_numbers_in_urls_are_ascii_digits(text, number):
    assert parse_int(text) == number


@given(st.text(max_size=200))
def test_any_text_comes_out_bounded_and_without_markup(text):
    out = shown(text)
    assert len(cleaned(text)) <= 9 * LIMIT  # each character at most "<U+XXXX>" or more, cut to LIMIT first
    html = rendered(out)
    assert "<a " not in html and "<img" not in html


def test_autolinks_are_broken_by_word_joiners_that_read_as_nothing():
    from explorer.text.usertext import WORD_JOINER

    out = shown("https://evil.example www.evil.example a@evil.example")
    assert f"https{WORD_JOINER}\\:" in out and f"www{WORD_JOINER}\\." in out and f"a{WORD_JOINER}\\@" in out


def test_a_messages_headline_is_its_cause_without_the_clients_asides():
    from explorer.nets.hub import offline_help
    from explorer.text.messages import headline

    message = (
        "cannot reach the Hugging Face Hub at https://huggingface.co (ConnectError: [Errno 111] Connection refused); "
        f"timm/inception_resnet_v2.tf_in1k is not in the cache; {offline_help()}; random weights"
    )
    assert headline(message) == "cannot reach the Hugging Face Hub at https://huggingface.co"
    assert headline("random weights, as EXPLORER_WEIGHTS asks") == "random weights, as EXPLORER_WEIGHTS asks"
    assert headline("") == ""
