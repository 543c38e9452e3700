"""Matrix HTML -> XEP-0393 plain text (csrc/matrix/html.c), through _core.html_to_text.

Pure conversion: no server is needed. The extension is tested directly because
the converter is a C function with no facade of its own yet.
"""

from __future__ import annotations

import html.entities
import random
import threading

import pytest

from matridge import _core

NBSP = "\xa0"
FFFD = "\ufffd"
PILL = "https://matrix.to/#/@alice:example.org"


def text(html: str | bytes) -> str:
    return _core.html_to_text(html)[0]


STYLING = [
    ("<b>bold</b>", "*bold*"),
    ("<strong>bold</strong>", "*bold*"),
    ("<i>it</i> <em>em</em>", "_it_ _em_"),
    ("<del>a</del> <s>b</s> <strike>c</strike>", "~a~ ~b~ ~c~"),
    ("<code>x = 1</code>", "`x = 1`"),
    # markers go inside the surrounding whitespace, never around nothing
    ("<b> x </b>y", "*x* y"),
    ("a<b> x </b>b", "a *x* b"),
    ("<b></b>z", "z"),
    ("<b>  </b>z", "z"),
    ("x<i> </i>y", "x y"),
    ("<b><i></i></b>", ""),
    # one marker per style; adjacent spans of a style join
    ("<b>a <strong>b</strong> c</b>", "*a b c*"),
    ("<b>a</b><b>b</b>", "*ab*"),
    ("<b>a</b> <b>b</b>", "*a* *b*"),
    ("<b><i>x</i></b>", "*_x_*"),
    ("<b>a <i>b</i></b>", "*a _b_*"),
    # nothing is styled inside code
    ("<code>*not bold*</code>", "`*not bold*`"),
    ("<code><b>x</b></code>", "`x`"),
    ("<b><code>x</code></b>", "*`x`*"),
    # spans do not cross lines in XEP-0393: close and reopen them
    ("<b>a<br>b</b>", "*a*\n*b*"),
    ("<i>a<p>b</p></i>", "_a_\n\n_b_"),
    ("<font color=red>r</font><span data-mx-color='#f00'>s</span>", "rs"),
    ("<u>under</u> <sup>2</sup><sub>x</sub>", "under 2x"),
]

BLOCKS = [
    ("<p>a</p><p>b</p>", "a\n\nb"),
    ("<div>a</div><div>b</div>", "a\nb"),
    ("<div>a</div>b", "a\nb"),
    ("a<br>b", "a\nb"),
    ("a<br/>b<br />c", "a\nb\nc"),
    ("a<br>", "a"),
    ("<br><br>a", "a"),
    # no runs of blank lines
    ("a<br><br>b", "a\n\nb"),
    ("a<br><br><br><br>b", "a\n\nb"),
    ("<p>a</p><br><br><p>b</p>", "a\n\nb"),
    ("<p>a</p>\n\n<p></p><p>\n</p><div></div><p>b</p>", "a\n\nb"),
    ("a<hr>b", "a\n\nb"),
    ("<p>a</p><hr><p>b</p>", "a\n\nb"),
    ("<h1>Title</h1>text", "*Title*\n\ntext"),
    (
        "<h2>T</h2><h3>U</h3><h4>V</h4><h5>W</h5><h6>X</h6>",
        "*T*\n\n*U*\n\n*V*\n\n*W*\n\n*X*",
    ),
    ("intro <h1><b>bold</b> title</h1>", "intro\n\n*bold title*"),
    ("<details><summary>s</summary>body</details>", "s\nbody"),
]

CODE_BLOCKS = [
    ("<pre><code>x = 1\n  y\n</code></pre>", "```\nx = 1\n  y\n```"),
    (
        '<pre><code class="language-python">def f():\n    pass\n</code></pre>',
        "```python\ndef f():\n    pass\n```",
    ),
    ('<pre class="language-rust"><code>fn</code></pre>', "```rust\nfn\n```"),
    ('<pre><code class="hljs language-c++">x</code></pre>', "```c++\nx\n```"),
    ('<pre><code class="language-py;rm -rf">x</code></pre>', "```py\nx\n```"),
    ('<pre><code class="notlanguage-py">x</code></pre>', "```\nx\n```"),
    ("<pre>a\n\n\n\nb\n</pre>", "```\na\n\n\n\nb\n```"),
    ("<pre>\nx</pre>", "```\nx\n```"),
    ("<pre>  a  \tb</pre>", "```\n  a  \tb\n```"),
    ("<pre><b>x</b> &lt;a&gt; *y*</pre>", "```\nx <a> *y*\n```"),
    ("<pre>a<br>b</pre>", "```\na\nb\n```"),
    ("<pre></pre>x", "x"),
    ("<p>a</p><pre><code>b</code></pre><p>c</p>", "a\n\n```\nb\n```\n\nc"),
    ("a<pre>b</pre>c", "a\n\n```\nb\n```\n\nc"),
    ("<b>a<pre>b</pre>c</b>", "*a*\n\n```\nb\n```\n\n*c*"),
    ("<pre>unclosed", "```\nunclosed\n```"),
    ("<code>a<pre>b</pre>c</code> <b>d</b>", "`a`\n\n```\nb\n```\n\n`c` *d*"),
    ("<pre><code>x</pre><b>y</b>", "```\nx\n```\n\n*y*"),
]

QUOTES = [
    ("<blockquote>q</blockquote>a", "> q\na"),
    ("a<blockquote>q</blockquote>", "a\n> q"),
    ("<blockquote>a<br>b</blockquote>", "> a\n> b"),
    (
        "<blockquote><p>q1</p><p>q2</p></blockquote><p>after</p>",
        "> q1\n>\n> q2\n\nafter",
    ),
    ("<blockquote>a<blockquote>b</blockquote>c</blockquote>d", "> a\n> > b\n> c\nd"),
    (
        "<blockquote><blockquote><p>a</p><p>b</p></blockquote></blockquote>",
        "> > a\n> >\n> > b",
    ),
    ("<blockquote><b>a<br>b</b></blockquote>", "> *a*\n> *b*"),
    ("<blockquote><pre><code>x\ny</code></pre></blockquote>", "> ```\n> x\n> y\n> ```"),
    ("<blockquote><pre>a\n\nb</pre></blockquote>", "> ```\n> a\n>\n> b\n> ```"),
]

LISTS = [
    ("<ul><li>a</li><li>b</li></ul>", "• a\n• b"),
    ("<ul>\n  <li>a</li>\n  <li>b</li>\n</ul>", "• a\n• b"),
    ("<ol><li>a</li><li>b</li></ol>", "1. a\n2. b"),
    ('<ol start="3"><li>x<li>y</ol>', "3. x\n4. y"),
    ("<ol start='-2'><li>a</li><li>b</li></ol>", "-2. a\n-1. b"),
    ("<ol start=junk><li>a</li></ol>", "1. a"),
    ("<ol start=99999999999999999999><li>a</li></ol>", "1000000000. a"),
    ("<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>", "• a\n  • b\n• c"),
    (
        "<ul><li>a<ol><li>b</li><li>c</li></ol></li><li>d</li></ul>",
        "• a\n  1. b\n  2. c\n• d",
    ),
    (
        "<ol><li>a<ul><li>b<ul><li>c</li></ul></li></ul></li></ol>",
        "1. a\n   • b\n     • c",
    ),
    ("<ul><li>a<br>b</li></ul>", "• a\n  b"),
    ("<ul><li><p>a</p></li><li><p>b</p></li></ul>", "• a\n\n• b"),
    ("intro<ul><li>a</li></ul>outro", "intro\n• a\noutro"),
    ("<ul><li></li><li>b</li></ul>", "• b"),
    ("<li>stray</li>", "• stray"),
    ("<blockquote><ul><li>a</li><li>b</li></ul></blockquote>", "> • a\n> • b"),
]

TABLES = [
    (
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>",
        "a | b\n1 | 2",
    ),
    (
        "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>1</td></tr></tbody>"
        "</table>after",
        "h\n1\nafter",
    ),
    ("<table><tr><td>1</td><td></td><td>3</td></tr></table>", "1 | | 3"),
    ("<table><tr><td> <b>x</b> </td><td>y</td></tr></table>", "*x* | y"),
    ("<table><caption>Cap</caption><tr><td>1</td></tr></table>", "Cap\n1"),
]

LINKS = [
    ('<a href="https://x.org">here</a>', "here <https://x.org>"),
    ('<a href="https://x.org">https://x.org</a>', "https://x.org"),
    ('<a href="https://x.org/">https://x.org</a>', "https://x.org"),
    ('<a href="https://x.org">https://x.org/</a>', "https://x.org/"),
    ('<a href="mailto:a@b.c">a@b.c</a>', "a@b.c"),
    ('<a href="MAILTO:a@b.c">a@b.c</a>', "a@b.c"),
    ('<a href="mailto:a@b.c">mail me</a>', "mail me <mailto:a@b.c>"),
    ('<a href="https://x.org"></a>', "<https://x.org>"),
    ("<a>no target</a>", "no target"),
    ('<a href="">empty</a>', "empty"),
    ('<a href="https://x.org/a?b=c&amp;d=e">t</a>', "t <https://x.org/a?b=c&d=e>"),
    ('<a href="https://x.org/a b">t</a>', "t <https://x.org/a%20b>"),
    ('<b><a href="https://x.org">t</a></b>', "*t <https://x.org>*"),
    ('<a href="https://x.org"><b>t</b></a>', "*t* <https://x.org>"),
    ('<a href="https://x.org"><img alt="cat"></a>', "cat <https://x.org>"),
    ('<a href="https://a.org">a<a href="https://b.org">b</a>', "ab <https://a.org>"),
    # room and event permalinks: their text, the link when the text differs
    ('<a href="https://matrix.to/#/#room:ex.org">#room:ex.org</a>', "#room:ex.org"),
    ('<a href="https://matrix.to/#/%23room%3Aex.org">#room:ex.org</a>', "#room:ex.org"),
    ('<a href="matrix:r/room:ex.org">#room:ex.org</a>', "#room:ex.org"),
    ('<a href="https://matrix.to/#/!r:ex.org?via=ex.org">!r:ex.org</a>', "!r:ex.org"),
    (
        '<a href="https://matrix.to/#/!r:ex.org/$ev?via=ex.org">this</a>',
        "this <https://matrix.to/#/!r:ex.org/$ev?via=ex.org>",
    ),
    (
        '<a href="https://matrix.to/#/#room:ex.org">the room</a>',
        "the room <https://matrix.to/#/#room:ex.org>",
    ),
]

OTHER = [
    ('<img alt=":cat:" src="mxc://a/b">', ":cat:"),
    ('<img title="t" src="mxc://a/b">', "t"),
    ('<img alt=" " title="t">', "t"),
    ('<img src="mxc://a/b">x', "x"),
    ("a <img alt='big  cat'> b", "a big cat b"),
    ('<span data-mx-spoiler="the ending">he dies</span>', "(the ending) he dies"),
    ("<span data-mx-spoiler>he dies</span>", "he dies"),
    ('<span data-mx-spoiler="">he dies</span>', "he dies"),
    (
        "<mx-reply><blockquote>In reply to <a href='x'>y</a></blockquote></mx-reply>hi",
        "hi",
    ),
    (
        "<mx-reply><blockquote><p>q</p><b>a</b><br></blockquote></mx-reply><p>hi</p>",
        "hi",
    ),
    ("<mx-reply>never closed", ""),
    ("a<mx-reply/>b", "ab"),
    ("<script>alert(1)</script>x", "x"),
    ("<SCRIPT>a</script >x", "x"),
    ("<script>if (a<b) document.write('</p>')</script>x", "x"),
    ("<script>never closed", ""),
    ("<style>b { color: red }</style>x", "x"),
    ("<head><title>t</title><meta charset=utf-8></head><body>x</body>", "x"),
    ("<title>t</title>x", "x"),
    ("a<!-- c -->b", "ab"),
    ("a<!-- <b>c</b> -->b", "ab"),
    ("a<!-->b", "ab"),
    ("a<!--->b", "ab"),
    ("a<!-- never closed", "a"),
    ("<!DOCTYPE html>x", "x"),
    ("<?xml version='1.0'?>x", "x"),
    ("<foo>x</foo> <marquee>y</marquee> <x-y a=b>z</x-y>", "x y z"),
    ("<html><body><p>x</p></body></html>", "x"),
]

WHITESPACE = [
    ("  a \n\t b  ", "a b"),
    ("<p> a </p>", "a"),
    ("\n<p>a</p>\n<p>b</p>\n", "a\n\nb"),
    (f"a&nbsp;&nbsp;b{NBSP}", f"a{NBSP}{NBSP}b{NBSP}"),
    ("a\r\nb\rc", "a b c"),
    ("a&#10;&#32;b", "a b"),
    ("", ""),
    ("   ", ""),
]

ATTRIBUTES = [
    ("<a href=https://x.org/a?b=c>t</a>", "t <https://x.org/a?b=c>"),
    ("<a href='https://x.org'>t</a>", "t <https://x.org>"),
    ('<a href = "https://x.org" >t</a>', "t <https://x.org>"),
    ('<a title href="https://x.org">t</a>', "t <https://x.org>"),
    ('<a HREF="https://x.org">t</a>', "t <https://x.org>"),
    ('<a href="https://a.org" href="https://b.org">t</a>', "t <https://a.org>"),
    ('<a href="it\'s">t</a>', "t <it's>"),
    ("<a href='say \"hi\"'>t</a>", 't <say%20"hi">'),
    ('<a href="a>b">t</a>', "t <a>b>"),
    ("<ol start='2' reversed><li>x</ol>", "2. x"),
    ("<img alt=cat>", "cat"),
    ("<img alt=cat/>", "cat/"),
    ("<img alt=&lt;3>", "<3"),
    ("<b class>x</b>", "*x*"),
    ("<b =weird x=>y</b>", "*y*"),
]

ENTITIES = [
    ("&amp;&lt;&gt;&quot;&apos;", "&<>\"'"),
    ("&eacute;&Eacute;&uuml;&szlig;&copy;&euro;&hellip;&mdash;", "éÉüß©€…—"),
    ("&#65;&#x42;&#X43;&#0065;", "ABCA"),
    ("&#x1F600;", "\U0001f600"),
    ("&#65&#x42 x", "AB x"),
    (
        "&bogus; &AMP; &amp &#; &#x; &#xg; & ; &",
        "&bogus; &AMP; &amp &#; &#x; &#xg; & ; &",
    ),
    ("&ampersand;", "&ampersand;"),
    ("&thetasymx;", "&thetasymx;"),
    ("&#x110000;", FFFD),
    ("&#0;", FFFD),
    ("&#xD800;&#xDFFF;", FFFD + FFFD),
    ("&#99999999999999999999999;", FFFD),
    ("&#1;&#x1F;&#xFFFE;&#xFFFF;", FFFD * 4),
    ("&#x7F;&#xFFFD;&#x10FFFF;", "\x7f\ufffd\U0010ffff"),
    ("&lt;b&gt;not a tag&lt;/b&gt;", "<b>not a tag</b>"),
]

STRAY = [
    ("a < b > c", "a < b > c"),
    ("x<3 <> <<", "x<3 <> <<"),
    ("a <b", "a <b"),
    ("a <b c='d", "a <b c='d"),
    ("a </b", "a </b"),
    ("a </", "a </"),
    ("a <", "a <"),
    ("a <!x", "a <!x"),
    ("</x>y", "y"),
    ("</b>y", "y"),
    ("</>y", "y"),
    ("</3>y", "y"),
    ("<b>unclosed", "*unclosed*"),
    ("<b><i>x</b>y</i>", "*_x_*y"),
    ("<b>a<code>b</b>c</code>", "*a`b`*c"),
    ("<ul><li>unclosed", "• unclosed"),
    ("<a href='https://x.org'>unclosed", "unclosed <https://x.org>"),
]

ALL_CASES = (
    STYLING
    + BLOCKS
    + CODE_BLOCKS
    + QUOTES
    + LISTS
    + TABLES
    + LINKS
    + OTHER
    + WHITESPACE
    + ATTRIBUTES
    + ENTITIES
    + STRAY
)


@pytest.mark.parametrize(("html", "expected"), ALL_CASES)
def test_conversion(html: str, expected: str) -> None:
    assert _core.html_to_text(html) == (expected, ())


def test_every_html4_named_entity_decodes() -> None:
    names = sorted(html.entities.name2codepoint)
    source = " ".join(f"&{name};" for name in names)
    assert text(source).split(" ") == [
        chr(html.entities.name2codepoint[name]) if name != "nbsp" else NBSP
        for name in names
    ]


# --- mentions -------------------------------------------------------------------


def mention_of(html: str) -> tuple[str, list[tuple[str, str]]]:
    """The text, and each mention as (text[start:end], user_id)."""
    out, mentions = _core.html_to_text(html)
    return out, [(out[start:end], user) for start, end, user in mentions]


@pytest.mark.parametrize(
    "href",
    [
        PILL,
        f"{PILL}?via=example.org&amp;via=other.org",
        "https://matrix.to/#/%40alice%3Aexample.org",
        "https://matrix.to/#/%40alice%3aexample.org?via=example.org",
        "http://matrix.to/#/@alice:example.org",
        "matrix:u/alice:example.org",
        "matrix:u/alice:example.org?action=chat",
    ],
)
def test_a_pill_is_its_display_name_and_a_mention(href: str) -> None:
    out, mentions = mention_of(f'Hi <a href="{href}">Alice Liddell</a>!')
    assert out == "Hi Alice Liddell!"
    assert mentions == [("Alice Liddell", "@alice:example.org")]


def test_mention_offsets_count_code_points_not_bytes() -> None:
    html = (
        f'é🎉 中文 <a href="{PILL}">Ålice 🐇</a> and '
        '<a href="https://matrix.to/#/@bob:ex.org">Bob</a>'
    )
    out, mentions = _core.html_to_text(html)
    assert out == "é🎉 中文 Ålice 🐇 and Bob"
    assert mentions == ((6, 13, "@alice:example.org"), (18, 21, "@bob:ex.org"))
    assert [out[s:e] for s, e, _ in mentions] == ["Ålice 🐇", "Bob"]


def test_mentions_inside_styling_and_blocks_span_the_name_only() -> None:
    html = (
        f'<blockquote><b><a href="{PILL}">Alice</a></b></blockquote>'
        f'<ul><li>x</li><li><a href="{PILL}"><i>Alice</i></a></li></ul>'
    )
    out, mentions = mention_of(html)
    assert out == "> *Alice*\n• x\n• _Alice_"
    assert mentions == [("Alice", "@alice:example.org")] * 2


def test_a_pill_without_text_shows_the_user_id() -> None:
    out, mentions = mention_of(f'<a href="{PILL}"></a> hi')
    assert out == "@alice:example.org hi"
    assert mentions == [("@alice:example.org", "@alice:example.org")]


def test_pills_in_the_reply_fallback_are_not_mentions() -> None:
    html = f'<mx-reply><blockquote><a href="{PILL}">Alice</a></blockquote></mx-reply>ok'
    assert _core.html_to_text(html) == ("ok", ())


@pytest.mark.parametrize(
    "href",
    [
        "https://matrix.to/#/@alice",  # no server
        "https://matrix.to/#/@:example.org",  # no localpart
        "https://matrix.to/#/@alice:",  # nothing after ':'
        "https://matrix.to/#/alice:example.org",  # no sigil
        "https://matrix.to/#/%40al%00ice%3Aexample.org",  # NUL once decoded
        "https://matrix.to/#/@al ice:example.org",
        "https://example.org/#/@alice:example.org",
        "matrix:u/",
    ],
)
def test_links_that_are_not_user_pills_are_plain_links(href: str) -> None:
    out, mentions = _core.html_to_text(f'<a href="{href}">Alice</a>')
    assert mentions == ()
    assert out.startswith("Alice <")


def test_room_permalinks_are_not_mentions() -> None:
    out, mentions = _core.html_to_text(
        '<a href="https://matrix.to/#/#room:ex.org">#room:ex.org</a>'
    )
    assert (out, mentions) == ("#room:ex.org", ())


# --- hostile input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<div>" * 100_000 + "x", "x"),
        ("<b>" * 100_000 + "x" + "</b>" * 100_000, "*x*"),
        ("<span>" * 100_000 + "x", "x"),
        # quotes and lists stop indenting after 8 levels
        ("<blockquote>" * 100_000 + "x", "> " * 8 + "x"),
        ("<ul><li>" * 100_000 + "x", "• " * 8 + "x"),
        ("<ol><li>" * 100_000 + "x", "1. " * 8 + "x"),
        ("<pre>" * 100_000 + "x", "```\nx\n```"),
        ("<a href='https://x.org'>" * 100_000 + "x", "x <https://x.org>"),
        ("<mx-reply>" * 100_000 + "x" + "</mx-reply>" * 100_000 + "y", "y"),
        # tags beyond the element stack are ignored, their text kept
        ("<i>" * 300 + "<b>x</b>" + "</i>" * 300, "_x_"),
    ],
)
def test_deep_nesting_is_capped(html: str, expected: str) -> None:
    assert text(html) == expected


def test_ten_megabytes_of_bold() -> None:
    assert text("<b>" * 3_500_000) == ""
    n = 2_500_000
    assert text("<b>x" * n) == "*" + "x" * n + "*"


def test_huge_flat_inputs_degrade_to_text() -> None:
    n = 1_000_000
    assert text("<" * n) == "<" * n
    assert text("&" * n) == "&" * n
    assert text("<a" * n) == "<a" * n  # the input ends inside the tag
    assert text("<a b='" * n) == "<a b='" * n
    assert text("&#" + "9" * n) == FFFD
    assert text("<!--" * n) == ""
    assert text("<script>" * n) == ""
    assert text("<li>" * n + "x") == "• x"
    assert text("<p>a</p>" * n) == "\n\n".join(["a"] * n)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a\xffb", f"a{FFFD}b"),
        (b"a\xc3", f"a{FFFD}"),
        (b"\xe2\x82x", f"{FFFD}x"),  # a truncated sequence is one U+FFFD
        (b"\xc0\xaf", FFFD * 2),  # overlong
        (b"\xed\xa0\x80", FFFD),  # an encoded surrogate
        (b"\xf4\x90\x80\x80", FFFD * 4),  # above U+10FFFF
        (b"\x80\xbf", FFFD * 2),
        (b"<b>\xff</b>", f"*{FFFD}*"),
        (b'<a href="\xff">t</a>', f"t <{FFFD}>"),
        (b"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "é€😀"),
        (b"a\x00b", f"a{FFFD}b"),
        (b"<b\x00>x</b>", "x"),  # not a known tag any more
        (b"\x01\x08\x0b\x1f", FFFD * 4),  # not allowed in XML
        (b"a\x0cb", "a b"),
    ],
)
def test_invalid_bytes_become_replacement_characters(raw: bytes, expected: str) -> None:
    assert text(raw) == expected


def test_str_input_with_lone_surrogates() -> None:
    assert text("a\ud800b\udfff") == f"a{FFFD}b{FFFD}"


def test_non_text_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _core.html_to_text(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _core.html_to_text(bytearray(b"x"))  # type: ignore[arg-type]


XML_CHAR_RANGES = [(0x9, 0xA), (0x20, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]


def is_xml_text(s: str) -> bool:
    return all(any(lo <= ord(ch) <= hi for lo, hi in XML_CHAR_RANGES) for ch in s)


FRAGMENTS = [
    "<b>", "</b>", "<i>", "</i>", "<code>", "</code>", "<pre>", "</pre>",
    "<pre><code class='language-x'>", "<blockquote>", "</blockquote>", "<ul>",
    "<ol start=7>", "<li>", "</li>", "</ul>", "</ol>", "<p>", "</p>", "<br>",
    "<h1>", "</h1>", "<table>", "<tr>", "<td>", "</td>", "<mx-reply>",
    "</mx-reply>", "<script>", "</script>", "<!--", "-->", f'<a href="{PILL}">',
    "<a href='https://x.org'>", "</a>", "<img alt='i'>", "<span data-mx-spoiler=r>",
    "&amp;", "&#x0;", "&#", "&", "<", ">", "'", '"', "=", " ", "\n", "\t", "x",
    "é", "🎉", "\x00", "\udc80", "<b/>", "</", "<!", "<a b=",
]  # fmt: skip


def test_random_fragment_soup_gives_valid_text_and_mentions() -> None:
    rng = random.Random(393)
    for _ in range(3000):
        soup = "".join(rng.choices(FRAGMENTS, k=rng.randrange(1, 60)))
        out, mentions = _core.html_to_text(soup)
        assert is_xml_text(out), soup
        assert out == out.strip(" \t\n"), soup
        for start, end, user in mentions:
            assert 0 <= start < end <= len(out), soup
            assert user == "@alice:example.org"


def test_conversions_in_parallel_threads_agree() -> None:
    inputs = [html for html, _ in ALL_CASES] * 20
    expected = [_core.html_to_text(h) for h in inputs]
    results: dict[int, list[tuple[str, tuple[tuple[int, int, str], ...]]]] = {}

    def work(k: int) -> None:
        results[k] = [_core.html_to_text(h) for h in inputs]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == expected for k in range(4))
