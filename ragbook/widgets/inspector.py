"""Retrieval inspector: a query box and live controls; each hit with its score breakdown and context."""

from __future__ import annotations

import re
from typing import Any, Callable

import ipywidgets as w

from ragbook._display import highlight, html_escape, shorten
from ragbook.errors import SettingsError
from ragbook.filters import parse_range
from ragbook.widgets._common import Panel, guarded

__all__ = ["Inspector", "hits_html", "parse_pages"]


def parse_pages(text: str) -> tuple[int, int] | list[int] | None:
    """``"3"``, ``"3-10"`` or ``"1, 4, 7"`` as a page filter; ``""`` for none."""
    text = text.strip()
    if not text:
        return None
    how = f"pages {text!r}: write a page (3), a range (3-10) or a list (1, 4, 7)"
    if re.search(r"[-\u2013]", text):
        try:
            pages = parse_range(text)
        except SettingsError:
            raise SettingsError(how) from None
        lo, hi = pages if isinstance(pages, tuple) else (None, None)
        if lo is None or hi is None:
            raise SettingsError(how)
        if lo > hi:
            raise SettingsError(f"pages {text!r}: the first page is after the last")
        return (lo, hi)
    try:
        return [int(p) for p in re.split(r"[,\s]+", text) if p]
    except ValueError:
        raise SettingsError(how) from None


class _Context:
    """The passages before and after a hit in its document, from the index's chunks."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self._key: Any = None
        self._by_source: dict[str, list[Any]] = {}

    def around(self, chunk: Any, width: int = 1) -> tuple[list[Any], list[Any]]:
        key = (id(self.index), len(self.index))
        if key != self._key:
            by_source: dict[str, list[Any]] = {}
            for c in self.index.chunks:
                by_source.setdefault(c.source, []).append(c)
            for chunks in by_source.values():
                chunks.sort(key=lambda c: (c.doc_id, c.start))
            self._by_source, self._key = by_source, key
        chunks = self._by_source.get(chunk.source, [])
        for c in chunks:
            if c.doc_id == chunk.doc_id and c.start == chunk.start and c.text == chunk.text:
                same_doc = [x for x in chunks if x.doc_id == chunk.doc_id]
                j = same_doc.index(c)
                return same_doc[max(0, j - width):j], same_doc[j + 1:j + 1 + width]
        return [], []


def hits_html(results: Any, context: Callable[[Any], tuple[list[Any], list[Any]]] | None = None) -> str:
    """Static HTML for a list of hits: citation, score breakdown, highlighted passage, context."""

    if not len(results):
        return "<i>No passage matched. Lower the minimum score, clear the filters or try other words.</i>"
    cards = []
    for h in results:
        body = highlight(h.text, h.matched_terms)
        ctx = ""
        if context is not None:
            before, after = context(h.chunk)
            if before or after:
                def tail(c: Any) -> str:
                    return html_escape(shorten(c.text, 500))
                ctx = ("<details><summary><small>in context</small></summary>"
                       "<div style='white-space:pre-wrap;color:#666'>"
                       + "".join(tail(c) + "\n" for c in before)
                       + f"<span style='color:#000;background:#fff3bf'>{html_escape(h.text)}</span>\n"
                       + "".join(tail(c) for c in after) + "</div></details>")
        also = f"<small> (also in {html_escape(', '.join(c.citation() for c in h.also_in))})</small>" if h.also_in else ""
        cards.append(
            "<div class='ragbook-hit' style='border-left:3px solid #1a5fb4;padding:2px 8px;margin:6px 0'>"
            f"<div><b>#{h.rank}</b> <span style='color:#1a5fb4'>{html_escape(h.citation())}</span>{also} "
            f"<small>score {h.score:.4f}</small></div>"
            f"<div><small style='color:#555'>{html_escape(h.explain())}</small></div>"
            f"<div style='white-space:pre-wrap'>{body}</div>{ctx}</div>"
        )
    return "".join(cards)


class Inspector(Panel):
    """Search an index (or an assistant's index) with live controls; see why each passage came back.

    ``inspector.results`` holds the last :class:`~ragbook.retrieval.Results`; ``inspector.retriever``
    the settings on show.  With an assistant, "Use these settings" gives them to it.
    """

    title = "Inspect"

    def __init__(self, target: Any, query: str = "", *, live: bool = True) -> None:
        from ragbook.retrieval import MODES, Retriever

        self.assistant = target if hasattr(target, "retriever") and hasattr(target, "ask") else None
        base = self.assistant.retriever if self.assistant is not None else Retriever(target)
        self.retriever = base.copy()
        self.results: Any = None
        self.live = live
        r = self.retriever
        self.query = w.Text(value=query, placeholder="a question or some keywords", description="Query",
                            continuous_update=False, layout=w.Layout(width="80%"))
        self.search_button = w.Button(description="Search", button_style="primary", icon="search")
        self.k = w.IntSlider(value=r.k, min=1, max=30, description="k", continuous_update=False)
        self.mode = w.ToggleButtons(options=list(MODES), value=r.mode, description="Mode")
        self.weight = w.FloatSlider(value=r.weight, min=0.0, max=1.0, step=0.05, description="Dense weight",
                                    continuous_update=False, style={"description_width": "initial"})
        self.mmr_on = w.Checkbox(value=r.mmr is not None, description="MMR (diversity)", indent=False)
        self.mmr = w.FloatSlider(value=r.mmr if r.mmr is not None else 0.7, min=0.0, max=1.0, step=0.05,
                                 description="λ", continuous_update=False, disabled=r.mmr is None)
        self.min_on = w.Checkbox(value=r.min_score is not None, description="Minimum score", indent=False)
        self.min_score = w.FloatText(value=r.min_score if r.min_score is not None else 0.3, step=0.05,
                                     disabled=r.min_score is None, layout=w.Layout(width="7em"))
        filters = dict(r.filters or {})
        self.source = w.Text(value=str(filters.get("source", "")), placeholder="*.pdf, notes/*", description="Source",
                             continuous_update=False)
        pages = filters.get("page")
        self.pages = w.Text(value=f"{pages[0]}-{pages[1]}" if isinstance(pages, tuple) else "", placeholder="3-10",
                            description="Pages", continuous_update=False)
        self.apply_button = w.Button(description="Use these settings", icon="check",
                                     tooltip="give these retrieval settings to the assistant",
                                     # ipywidgets buttons are 148 px wide: this label needs about 170 px with its icon
                                     layout=w.Layout(width="auto", min_width="13em",
                                                     display="" if self.assistant is not None else "none"))
        self.hits = w.HTML()
        self.search_button.on_click(self._on_search)
        self.apply_button.on_click(self._on_apply)
        for control in (self.query, self.k, self.mode, self.weight, self.mmr_on, self.mmr, self.min_on, self.min_score,
                        self.source, self.pages):
            control.observe(self._on_change, names="value")
        super().__init__([
            w.HBox([self.query, self.search_button]),
            w.HBox([self.k, self.mode]),
            w.HBox([self.weight, self.mmr_on, self.mmr]),
            w.HBox([self.min_on, self.min_score, self.source, self.pages]),
            self.apply_button, self.hits,
        ])
        self._context = _Context(self.retriever.index)
        self._sync_enabled()
        if query:
            self.search()

    def set_index(self, index: Any) -> None:
        """Search another index (the builder calls this after a build)."""
        self.retriever = self.retriever.copy(index)
        self._context = _Context(index)
        if self.query.value.strip():
            self.search()

    def _sync_enabled(self) -> None:
        self.weight.disabled = self.mode.value != "hybrid"
        self.mmr.disabled = not self.mmr_on.value
        self.min_score.disabled = not self.min_on.value

    def settings(self) -> dict[str, Any]:
        """The retrieval settings the controls show."""
        filters: dict[str, Any] = {}
        if self.source.value.strip():
            filters["source"] = self.source.value.strip()
        pages = parse_pages(self.pages.value)
        if pages is not None:
            filters["page"] = pages
        return {"k": self.k.value, "mode": self.mode.value, "weight": self.weight.value,
                "mmr": self.mmr.value if self.mmr_on.value else None,
                "min_score": self.min_score.value if self.min_on.value else None, "filters": filters or None}

    def search(self, query: str | None = None) -> Any:
        """Run the query with the current controls and show the hits (returns the Results)."""
        if query is not None:
            self.query.value = query  # with live updates on, this already searched
            if self.results is not None and self.results.query == query.strip():
                return self.results
        text = self.query.value.strip()
        if not text:
            raise SettingsError("type a query first")
        self.retriever = self.retriever.copy(**self.settings())
        self.results = self.retriever.search(text)
        self.hits.value = hits_html(self.results, self._context.around)
        ms = self.results.timings.get("total", 0.0) * 1000
        self.say(f"{len(self.results)} passages for {shorten(text, 60)!r} ({self.retriever.mode}, {ms:.0f} ms)")
        return self.results

    @guarded
    def _on_search(self, _button: Any = None) -> None:
        self.search()

    @guarded
    def _on_change(self, change: dict[str, Any]) -> None:
        self._sync_enabled()
        if self.live and self.query.value.strip():
            self.search()

    @guarded
    def _on_apply(self, _button: Any = None) -> None:
        if self.assistant is None:
            return
        self.retriever = self.retriever.copy(**self.settings())
        self.assistant.retriever = self.retriever.copy(self.assistant.index)
        self.say("the assistant now retrieves with these settings")

    def __repr__(self) -> str:
        n = len(self.results) if self.results is not None else 0
        return f"Inspector(query={shorten(self.query.value, 40)!r}, k={self.k.value}, mode={self.mode.value!r}, hits={n})"
