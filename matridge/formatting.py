"""XEP-0393 message styling → Matrix HTML (``org.matrix.custom.html``).

XMPP clients style plain text (``*strong*``, ``_emphasis_``, ``~strike~``,
code in backquotes, blocks between lines of three backquotes, and ``>``
quotes); Matrix clients show HTML. :func:`styling_to_html` turns the one
into the other, escaping everything else, and gives None when the text has
no styling at all, so the common plain message goes without a
``formatted_body``.

The rules are XEP-0393's: a span opens at the start of a line, after
whitespace or after another opening directive, and is not followed by
whitespace; it closes at the first matching directive on the same line that
is not preceded by whitespace, and holds at least one character. Nothing is
styled inside a code span or block.
"""

from __future__ import annotations

from html import escape

SPAN_TAGS = {"*": "strong", "_": "em", "~": "del", "`": "code"}


def styling_to_html(text: str) -> str | None:
    """The HTML for XEP-0393 styled `text`, or None if nothing in it is styled."""
    html, styled = _blocks(text.split("\n"))
    return html if styled else None


def _blocks(lines: list[str]) -> tuple[str, bool]:
    """HTML for a run of lines (a message, or a quote's content), and whether
    any block or span in them is styled."""
    out: list[str] = []
    styled = False
    plain: list[str] = []  # consecutive plain lines, joined by <br>

    def flush() -> None:
        if plain:
            out.append("<br>".join(plain))
            plain.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            # A preformatted block runs to a line of only ``` or the end.
            end = i + 1
            while end < len(lines) and lines[end] != "```":
                end += 1
            flush()
            code = "\n".join(lines[i + 1 : end])
            out.append(f"<pre><code>{escape(code, quote=False)}</code></pre>")
            styled = True
            i = end + 1
            continue
        if line.startswith(">"):
            end = i
            while end < len(lines) and lines[end].startswith(">"):
                end += 1
            flush()
            inner = [_unquote(q) for q in lines[i:end]]
            html, _ = _blocks(inner)
            out.append(f"<blockquote>{html}</blockquote>")
            styled = True
            i = end
            continue
        html, line_styled = _spans(line)
        plain.append(html)
        styled = styled or line_styled
        i += 1
    flush()
    return "".join(out), styled


def _unquote(line: str) -> str:
    """A quoted line's content: without its ``>`` and the space after it."""
    rest = line[1:]
    return rest[1:] if rest.startswith(" ") else rest


def _spans(line: str) -> tuple[str, bool]:
    """HTML for one line of spans, and whether any span is styled."""
    out: list[str] = []
    styled = False
    i = 0
    start = 0  # beginning of text not yet written
    while i < len(line):
        ch = line[i]
        close = _closing(line, i) if ch in SPAN_TAGS and _can_open(line, i) else -1
        if close < 0:
            i += 1
            continue
        out.append(escape(line[start:i], quote=False))
        tag = SPAN_TAGS[ch]
        inner = line[i + 1 : close]
        if ch == "`":
            content = escape(inner, quote=False)
        else:
            content, _ = _spans(inner)
        out.append(f"<{tag}>{content}</{tag}>")
        styled = True
        i = start = close + 1
    out.append(escape(line[start:], quote=False))
    return "".join(out), styled


def _can_open(line: str, i: int) -> bool:
    """Whether the directive at `i` may open a span: at the line's start,
    after whitespace or another opening directive, and before non-space."""
    if i + 1 >= len(line) or line[i + 1].isspace():
        return False
    return i == 0 or line[i - 1].isspace() or line[i - 1] in SPAN_TAGS


def _closing(line: str, i: int) -> int:
    """The index of the directive closing the span opened at `i`, or -1."""
    directive = line[i]
    j = line.find(directive, i + 2)  # a span holds at least one character
    while j != -1:
        if not line[j - 1].isspace():
            return j
        j = line.find(directive, j + 1)
    return -1
