"""HTML pages through the standard library's ``html.parser``: the visible text only.

Scripts, navigation, footers, forms and hidden elements are dropped; headings become
sections as in Markdown.  The parser keeps no tree, so a 1 MB page takes a fraction of a
second and malformed markup cannot make it fail.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ragbook.documents import Document, LoadError
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited
from ragbook.loaders.text import decode_text, section_segments

__all__ = ["load_html", "html_to_text"]

_SKIP = frozenset({
    "script", "style", "noscript", "template", "svg", "nav", "footer", "aside", "iframe", "object",
    "embed", "canvas", "button", "select", "option", "textarea", "datalist", "dialog", "map", "audio", "video",
})
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "keygen",
})
# Start or end of these breaks the line; 1 = new line, 2 = blank line.
_BLOCK = {
    **dict.fromkeys(("li", "tr", "dt", "dd", "br", "caption", "figcaption", "summary"), 1),
    **dict.fromkeys((
        "address", "article", "blockquote", "body", "center", "details", "dir", "div", "dl", "fieldset",
        "figure", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html", "legend",
        "main", "menu", "ol", "p", "pre", "section", "table", "tbody", "tfoot", "thead", "ul",
    ), 2),
}
_LISTS = frozenset({"ul", "ol", "menu", "dir"})
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements whose end tag may be left out: a hidden <li> closed only by the next <li> or </ul>.
_OPTIONAL_END = frozenset({"li", "p", "dt", "dd", "option", "tr", "td", "th", "tbody", "thead", "tfoot"})
# Well-known non-content markers of wiki and documentation pages ("[edit]" links, navboxes).
_SKIP_CLASSES = frozenset({"mw-editsection", "noprint", "navbox", "mw-jump-link", "visually-hidden", "sr-only"})
# Zero-width and soft-hyphen characters split words for a search index without showing anything.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
# Permalink markers that sites append to headings ("Install #", "Usage ¶").
_HEADING_MARK = re.compile(r"\s*[#¶§]$")
_DISPLAYSTYLE = re.compile(r"^\{\\displaystyle\s*(.*)\}$", re.S)
_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def _hidden(attrs: dict[str, str | None]) -> bool:
    if "hidden" in attrs or attrs.get("aria-hidden") == "true" or attrs.get("role") == "navigation":
        return True
    classes = attrs.get("class")
    if classes and not _SKIP_CLASSES.isdisjoint(classes.split()):
        return True
    return "display:none" in (attrs.get("style") or "").replace(" ", "").lower()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, int, int]] = []  # (text, gap before, heading level or 0)
        self.parts: list[str] = []
        self.gap = 0
        self.skip: list[str] = []  # open elements inside a dropped subtree, its root first
        self.in_head = False
        self.title_parts: list[str] | None = None
        self.title = ""
        self.heading = 0
        self.pre = 0
        self.lists = 0
        self.prefix = ""
        self.tables: list[list[bool]] = []  # per open table: [inside a cell, next cell is the first]

    # -- tags ------------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip:
            if (self.skip == [tag] and tag in _OPTIONAL_END) or (self.skip == ["p"] and _BLOCK.get(tag) == 2):
                self.skip.clear()  # the next <li> closes a hidden <li>, a <div> a hidden <p>; go on below
            else:
                if tag not in _VOID:
                    self.skip.append(tag)
                return
        if tag == "title":
            self.title_parts = []
            return
        if tag == "head":
            self.in_head = True
            return
        if tag == "body":
            self.in_head = False
        if tag == "img":
            self._math_image(dict(attrs))
            return
        if tag in _SKIP or (attrs and _hidden(dict(attrs))):
            if tag not in _VOID:
                self.skip.append(tag)
            return
        if self.in_head:
            return
        if tag in ("td", "th"):
            if self.tables:
                table = self.tables[-1]
                if not table[1]:
                    self.parts.append(" | ")
                table[0], table[1] = True, False
            return
        if tag == "br" and self.pre:
            self.parts.append("\n")
            return
        level = _BLOCK.get(tag)
        if level is None:
            return
        if self.tables and self.tables[-1][0] and tag not in ("table", "tr"):
            self.parts.append(" ")  # a block inside a cell keeps the row on one line
            return
        self._boundary(1 if tag in _LISTS and self.lists else level)  # a nested list stays tight
        # headings hold no blocks, so any block start also ends a heading left unclosed
        self.heading = _HEADINGS.get(tag, 0)
        if tag == "pre":
            self.pre += 1
        elif tag in _LISTS:
            self.lists += 1
        elif tag == "li":
            self.prefix = "  " * max(self.lists - 1, 0) + "- "
        elif tag == "table":
            self.tables.append([False, True])
        elif tag == "tr" and self.tables:
            self.tables[-1][:] = [False, True]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # a self-closed <div/> or <svg/> has no content: nothing to open, close or drop
        if tag in _VOID and not self.skip:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag in self.skip:
                while self.skip.pop() != tag:
                    pass
                return
            if self.skip[0] not in _OPTIONAL_END:
                return
            self.skip.clear()  # </ul> ends a hidden <li> that was never closed; handle </ul> too
        if tag == "title" and self.title_parts is not None:
            self.title = self.title or " ".join("".join(self.title_parts).split())
            self.title_parts = None
            return
        if tag == "head":
            self.in_head = False
            return
        if self.in_head:
            return
        if tag in ("td", "th"):
            if self.tables:
                self.tables[-1][0] = False
            return
        level = _BLOCK.get(tag)
        if level is None:
            return
        if self.tables and self.tables[-1][0] and tag not in ("table", "tr"):
            self.parts.append(" ")
            return
        self._boundary(1 if tag in _LISTS and self.lists > 1 else level)
        if tag in _HEADINGS:
            self.heading = 0
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
        elif tag in _LISTS:
            self.lists = max(self.lists - 1, 0)
        elif tag == "table" and self.tables:
            self.tables.pop()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.title_parts is not None:
            self.title_parts.append(data)
        elif not self.in_head:
            self.parts.append(data)

    def _math_image(self, attrs: dict[str, str | None]) -> None:
        # Wikipedia and many wikis draw formulas as images whose alt text is the TeX source,
        # while the MathML copy is display:none; without the alt text "A = A^H" would vanish.
        alt = attrs.get("alt")
        if alt and "math" in (attrs.get("class") or "") and not self.in_head:
            tex = _DISPLAYSTYLE.sub(r"\1", alt.strip())
            self.parts.append(f" {tex} ")

    # -- text ------------------------------------------------------------------------------

    def _boundary(self, gap: int) -> None:
        self._flush()
        self.gap = max(self.gap, gap)

    def _flush(self) -> None:
        raw = "".join(self.parts)
        self.parts = []
        if self.pre:
            text = raw.strip("\n").rstrip()
            if not text.strip():
                return
        else:
            text = " ".join(raw.translate(_INVISIBLE).split())
            if not text:
                return
        if self.prefix:
            text, self.prefix = self.prefix + text, ""
        self.blocks.append((text, self.gap or 1, self.heading))
        self.gap = 0

    def result(self) -> tuple[str, list[tuple[int, int, str]]]:
        """The page text and its headings as ``(offset, level, title)``."""
        self.close()
        self._flush()
        pieces: list[str] = []
        headings: list[tuple[int, int, str]] = []
        offset = 0
        for text, gap, level in self.blocks:
            if pieces:
                pieces.append("\n" * gap)
                offset += gap
            if level:
                headings.append((offset, level, _HEADING_MARK.sub("", text) or text))
            pieces.append(text)
            offset += len(text)
        return "".join(pieces), headings


def html_to_text(markup: str) -> tuple[str, str, list[tuple[int, int, str]]]:
    """Visible text of an HTML page: ``(text, <title>, headings)``."""
    parser = _TextExtractor()
    parser.feed(markup)
    text, headings = parser.result()
    return text, parser.title, headings


def declared_charset(data: bytes) -> str | None:
    match = _CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def load_html(path: Path, **options: Any) -> Document:
    """An HTML page's visible text, one segment per heading with the heading path as section."""
    data = read_limited(path, options.get("max_file_mb", DEFAULT_MAX_FILE_MB))
    markup, warnings = decode_text(data, declared=declared_charset(data))
    text, title, headings = html_to_text(markup)
    if not text.strip():
        raise LoadError("no visible text in the HTML page")
    if not title:
        title = next((t for _, level, t in headings if level == 1), "") or path.stem
    return Document(text=text, source=path.name, title=title, segments=section_segments(text, headings),
                    metadata={"format": "html"}, warnings=warnings)
