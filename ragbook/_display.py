"""Small helpers shared by the ``__repr__``, ``_repr_html_`` and timings of ragbook's objects."""

from __future__ import annotations

import html
import re
import time
from contextlib import contextmanager
from typing import Iterator, Sequence


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


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the seconds the ``with`` block takes to ``timings[key]`` (the figures results and answers show)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start


def text_table(rows: Sequence[Sequence[str]], *, right: tuple[int, ...] = (), width: int = 100,
               caps: dict[int, int] | None = None) -> str:
    """Plain-text columns, widths from their content; a column in ``caps`` is cut from the left (keeping a path's
    end) to its cap, and the last column is shortened to what is left of ``width``."""
    caps = caps or {}
    n = len(rows[0])
    widths = [min(max(len(r[i]) for r in rows), caps.get(i, len(max((r[i] for r in rows), key=len))))
              for i in range(n - 1)]
    room = max(width - sum(widths) - 2 * (n - 1), 20)
    lines = []
    for row in rows:
        cells = [c if len(c) <= w else "\u2026" + c[-(w - 1):] for c, w in zip(row[:-1], widths)]
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        lines.append("  ".join([*cells, shorten(row[-1], room)]))
    return "\n".join(lines)


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
