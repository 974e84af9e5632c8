"""Plain text out of each content type, and that text cut into passages for the search index.

Markdown goes through a CommonMark parser (markdown-it-py) and HTML through an HTML5 parser
(selectolax's lexbor), never regexes: both parsers accept any input, as browsers do, so broken
markup still yields its text. Paragraph breaks come out as blank lines, which is where passages
are cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token
from selectolax.lexbor import LexborHTMLParser, LexborNode


class NotText(ValueError):
    """The content is not text: no retry can make it searchable."""


#: A passage holds about this many characters. Small enough that a snippet is cheap to cut and a
#: tsvector stays far below PostgreSQL's limits (1 MB, positions up to 16383); large enough that a
#: typical document is one passage.
PASSAGE_CHARS = 4000

#: Above this share of control or undecodable (U+FFFD) characters, content is binary, not text.
MAX_JUNK_SHARE = 0.10

# C0/C1 controls except tab, newline, carriage return and form feed; U+FFFD, what a decoder leaves
# for bytes that were not UTF-8; U+E000/U+E001, which snippets use as highlight markers.
_JUNK = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd\ue000\ue001]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SPACES = re.compile(r"\s+")

# Elements whose content is not visible text.
_INVISIBLE = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "iframe", "object", "svg"}
)
# Elements that start a new paragraph; everything else (b, a, span …) runs on inside one.
_BLOCKS = frozenset(
    {"address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div",
     "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
     "h6", "header", "hr", "html", "legend", "li", "main", "nav", "ol", "p", "pre", "section",
     "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"}
)  # fmt: skip


def clean(text: str) -> str:
    """``text`` without control characters, or NotText when they are too many to be text."""
    junk = len(_JUNK.findall(text))
    if not junk:
        return text
    if junk > MAX_JUNK_SHARE * len(text):
        share = junk / len(text)
        raise NotText(f"content is not text: {share:.0%} of it are control or undecodable characters")
    return _JUNK.sub(" ", text)


# --- HTML -------------------------------------------------------------------------------------


def _html_text(root: LexborNode) -> str:
    """Visible text of ``root``, a blank line around each block element."""
    parts: list[str] = []
    close = object()
    stack: list[LexborNode | object] = [root]
    while stack:
        node = stack.pop()
        if node is close:
            parts.append("\n\n")
            continue
        assert isinstance(node, LexborNode)
        if node.is_text_node:
            parts.append(node.text_content or "")
            continue
        tag = node.tag
        if tag in _INVISIBLE or not node.is_element_node:
            if not node.is_document_node:
                continue
        elif tag == "br":
            parts.append("\n")
            continue
        elif tag in _BLOCKS:
            parts.append("\n\n")
            stack.append(close)
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend(reversed(children))
    return _paragraphs("".join(parts))


def _paragraphs(text: str) -> str:
    """Whitespace collapsed inside paragraphs, one blank line between them."""
    chunks = (_SPACES.sub(" ", chunk).strip() for chunk in _PARAGRAPH_BREAK.split(text))
    return "\n\n".join(chunk for chunk in chunks if chunk)


def html(content: str) -> tuple[str | None, str]:
    """(the <title>, the visible text) of an HTML document or fragment."""
    tree = LexborHTMLParser(content)
    title_node = tree.css_first("title")
    title = _SPACES.sub(" ", title_node.text()).strip() if title_node is not None else ""
    root = tree.body if tree.body is not None else tree.root
    text = _html_text(root) if root is not None else ""
    return title or None, text


# --- Markdown ---------------------------------------------------------------------------------


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _inline_text(children: list[Token], parts: list[str]) -> None:
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "image":
            _inline_text(child.children or [], parts)  # its alt text
        # html_inline: tags are markup, not text; the text between them arrives as text tokens.


def markdown(content: str) -> str:
    parts: list[str] = []
    for token in _markdown().parse(content):
        kind = token.type
        if kind == "inline":
            _inline_text(token.children or [], parts)
        elif kind in ("fence", "code_block"):
            parts.append(token.content)
            parts.append("\n\n")
        elif kind == "html_block":
            parts.append(html(token.content)[1])
            parts.append("\n\n")
        elif kind in ("td_close", "th_close"):
            parts.append(" ")  # cells of a row stay one paragraph
        elif kind.endswith("_close") or kind == "hr":
            parts.append("\n\n")
    return _paragraphs("".join(parts))


# --- Dispatch and passages ----------------------------------------------------------------------


def plain(content: str) -> str:
    return content


EXTRACTORS: dict[str, Callable[[str], str]] = {"text/plain": plain, "text/markdown": markdown}


def extract(content_type: str, content: str) -> tuple[str | None, str]:
    """(a title found in the content or None, the plain text). Raises NotText."""
    content = clean(content)
    if content_type == "text/html":
        return html(content)
    try:
        extractor = EXTRACTORS[content_type]
    except KeyError:
        raise NotText(f"unsupported content type {content_type!r}") from None
    return None, extractor(content)


def passages(text: str, size: int = PASSAGE_CHARS) -> list[str]:
    """``text`` in pieces of about ``size`` characters, cut at paragraph breaks where possible,
    else at a space, so that every character lands in exactly one passage."""
    if len(text) <= size:
        return [text]
    out: list[str] = []
    current: list[str] = []
    length = 0
    for paragraph in _PARAGRAPH_BREAK.split(text):
        if length and length + len(paragraph) > size:
            out.append("\n\n".join(current))
            current, length = [], 0
        while len(paragraph) > size:
            cut = paragraph.rfind(" ", size // 2, size)
            if cut <= 0:
                cut = size  # one word longer than a passage: PostgreSQL skips it anyway (> 2047 chars)
            out.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip()
        if paragraph:
            current.append(paragraph)
            length += len(paragraph) + 2
    if current:
        out.append("\n\n".join(current))
    return out
