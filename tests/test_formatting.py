"""XEP-0393 styling → Matrix HTML (matridge.formatting), the Matrix contents
of what the user sends (matridge.outgoing) and mention rewriting: pure
functions."""

from __future__ import annotations

import pytest

from matridge.formatting import styling_to_html
from matridge.outgoing import edit_content, find_mentions, relate, text_content
from matridge.render import MentionTarget, apply_mentions


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("*bold*", "<strong>bold</strong>"),
        ("_emph_", "<em>emph</em>"),
        ("~gone~", "<del>gone</del>"),
        ("`x = 1`", "<code>x = 1</code>"),
        ("a *b* c", "a <strong>b</strong> c"),
        ("*_both_*", "<strong><em>both</em></strong>"),
        ("*bold _and emph_*", "<strong>bold <em>and emph</em></strong>"),
        ("`*not bold*`", "<code>*not bold*</code>"),
        ("*one* and *two*", "<strong>one</strong> and <strong>two</strong>"),
    ],
)
def test_spans_become_their_html_elements(text: str, html: str) -> None:
    assert styling_to_html(text) == html


@pytest.mark.parametrize(
    "text",
    [
        "plain text",
        "a * b * c",  # directives followed/preceded by whitespace
        "2*3*4",  # an opening directive must follow whitespace or the start
        "**",  # a span holds at least one character
        "*open but never closed",
        "*spans do not\ncross lines*",
        "snake_case_name",
        "",
    ],
)
def test_text_without_styling_has_no_html(text: str) -> None:
    assert styling_to_html(text) is None


def test_a_closing_directive_after_whitespace_does_not_close() -> None:
    assert styling_to_html("*a *b*") == "<strong>a *b</strong>"


def test_html_in_the_text_is_escaped() -> None:
    assert styling_to_html("*<b>&amp;</b>*") == (
        "<strong>&lt;b&gt;&amp;amp;&lt;/b&gt;</strong>"
    )
    assert styling_to_html("<script>") is None


def test_lines_are_separated_by_line_breaks() -> None:
    assert styling_to_html("*a*\nb\n\nc") == "<strong>a</strong><br>b<br><br>c"


def test_a_preformatted_block_keeps_its_text_unstyled() -> None:
    text = "look:\n```python\nx = *y*\n  <z>\n```\nafter"
    assert styling_to_html(text) == (
        "look:<pre><code>x = *y*\n  &lt;z&gt;</code></pre>after"
    )


def test_an_unclosed_preformatted_block_runs_to_the_end() -> None:
    assert styling_to_html("```\ncode\nmore") == "<pre><code>code\nmore</code></pre>"


def test_quotes_hold_styled_and_nested_quotes() -> None:
    text = "> quoted *bold*\n>> deeper\nanswer"
    assert styling_to_html(text) == (
        "<blockquote>quoted <strong>bold</strong>"
        "<blockquote>deeper</blockquote></blockquote>answer"
    )


def test_a_quote_alone_is_styling() -> None:
    assert styling_to_html(">plain quote") == "<blockquote>plain quote</blockquote>"


# ---- message contents (matridge.outgoing) and mentions (matridge.util) ----


def test_plain_text_has_no_formatted_body() -> None:
    assert text_content("hello") == {"msgtype": "m.text", "body": "hello"}


def test_an_emote_keeps_its_styling() -> None:
    assert text_content("/me *waves*") == {
        "msgtype": "m.emote",
        "body": "*waves*",
        "format": "org.matrix.custom.html",
        "formatted_body": "<strong>waves</strong>",
    }


def test_a_thread_reply_is_not_a_fallback() -> None:
    content = relate({"body": "x"}, "$reply", "$root")
    assert content["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": False,
        "m.in_reply_to": {"event_id": "$reply"},
    }
    assert relate({"body": "x"}, None, None) == {"body": "x"}


def test_an_edit_prefixes_both_bodies() -> None:
    content = edit_content("$old", text_content("*new*"))
    assert content["body"] == "* *new*"
    assert content["formatted_body"] == "* <strong>new</strong>"
    assert content["m.new_content"]["body"] == "*new*"
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$old"}


def test_mentions_write_the_xmpp_name_and_shift_later_references() -> None:
    targets = {
        "@a:x": MentionTarget("Alice W.", "xmpp:room@gw/Alice W."),
        "@b:x": MentionTarget("Bo", "xmpp:room@gw/Bo"),
    }
    text = "hi A and 🐇 B!"
    spans = [(11, 12, "@b:x"), (3, 4, "@a:x"), (5, 6, "@nobody:x")]
    new, refs = apply_mentions(text, spans, targets)
    assert new == "hi Alice W. and 🐇 Bo!"
    assert [new[b:e] for b, e, _ in refs] == ["Alice W.", "Bo"]
    assert refs[1][2] == "xmpp:room@gw/Bo"


def test_bad_mention_spans_are_ignored() -> None:
    targets = {"@a:x": MentionTarget("A", "xmpp:a")}
    spans = [(0, 3, "@a:x"), (2, 4, "@a:x"), (5, 99, "@a:x"), (4, 3, "@a:x")]
    assert apply_mentions("abcdef", spans, targets) == ("Adef", [(0, 1, "xmpp:a")])


FRAN, SAM1, SAM2 = "@fran:x.org", "@sam1:x.org", "@sam2:x.org"
NAMES = {
    "Friendly Fran": FRAN,
    "Sam (@sam1:x.org)": SAM1,
    "Sam (@sam2:x.org)": SAM2,
    "Al": "@al:x.org",
}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Friendly Fran: hi", [(0, 13, FRAN)]),
        ("hi @Friendly Fran, and you", [(4, 17, FRAN)]),
        ("ask Sam (@sam2:x.org).", [(4, 21, SAM2)]),
        ("Friendly Franz is someone else", []),
        ("xFriendly Fran", []),
        ("Al and Alice", [(0, 2, "@al:x.org")]),
        ("no one here", []),
    ],
)
def test_mentions_are_names_standing_as_whole_words(
    text: str, found: list[tuple[int, int, str]]
) -> None:
    assert find_mentions(text, NAMES) == found


def test_mentions_become_pills_inside_the_styled_html() -> None:
    text = "Friendly Fran: see the *agenda* <now>"
    content = text_content(text, find_mentions(text, NAMES))
    assert content["body"] == text
    assert content["m.mentions"] == {"user_ids": [FRAN]}
    assert content["formatted_body"] == (
        '<a href="https://matrix.to/#/@fran:x.org">Friendly Fran</a>: see the '
        "<strong>agenda</strong> &lt;now&gt;"
    )


def test_a_mention_alone_still_makes_html() -> None:
    content = text_content("/me waves at Al", find_mentions("waves at Al", NAMES))
    assert content["msgtype"] == "m.emote"
    assert content["formatted_body"] == (
        'waves at <a href="https://matrix.to/#/@al:x.org">Al</a>'
    )
    assert content["m.mentions"] == {"user_ids": ["@al:x.org"]}
