"""Small helpers shared by the ``__repr__`` and ``_repr_html_`` of ragbook's objects."""

from __future__ import annotations

import html
import re
from typing import Sequence


def html_escape(value: object) -> str:
    """Escape any value for HTML text or attribute context: document text is untrusted."""
    return html.escape(str(value), quote=True)


def highlight(text: str, terms: list[str]) -> str:
    """Escaped ``text`` with the query terms (and the words they begin) wrapped in ``<mark>``."""
    escaped = html_escape(text)
    if not terms:
        return escaped
    pattern = re.compile(r"\b(" + "|".join(re.escape(html_escape(t)) for t in sorted(terms, key=len, reverse=True)) + r")\w*",
                         re.IGNORECASE)
    return pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped)


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def html_table(headers: list[str], rows: Sequence[Sequence[object]], cls: str = "ragbook-table") -> str:
    """A static, escaped HTML table (cells may be pre-rendered by wrapping in ``Markup``)."""

    def cell(value: object) -> str:
        return value.html if isinstance(value, Markup) else html_escape(value)

    head = "".join(f"<th style='text-align:left'>{html_escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left;vertical-align:top'>{cell(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Markup:
    """HTML that was built from escaped pieces and may be inserted as is."""

    __slots__ = ("html",)

    def __init__(self, html_text: str) -> None:
        self.html = html_text
