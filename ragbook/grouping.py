"""Search results grouped by document: which files talk about X, each with its best passages.

:meth:`ragbook.retrieval.Retriever.search_documents` ranks passages as a search does, then
:func:`group_by_source` walks them best first and gathers them by file (``source``): a file's
place is its best passage's.  One file that the loader split into several documents (an EPUB's
chapters, say) counts once.  The index stores a passage found in two files once, with both
locations; it counts for both files, each citing its own location.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ragbook._display import Markup, highlight, html_escape, html_table, shorten, text_table
from ragbook._listing import Listing
from ragbook.errors import MissingDependencyError

if TYPE_CHECKING:
    from ragbook.documents import Chunk
    from ragbook.retrieval import Hit

__all__ = ["DocumentHit", "DocumentResults", "group_by_source", "nth_source"]


@dataclass
class DocumentHit:
    """One document (a source file) that matches a query, with its best passages, best first.

    ``score`` and ``relevance`` are its best passage's; ``rank`` is the document's place (1 =
    best).  Each passage in ``hits`` keeps its ``rank`` in the whole passage ranking, so a
    document's hits may be #1, #4 and #9.
    """

    source: str
    title: str
    score: float
    relevance: float | None
    rank: int
    hits: list[Hit] = field(default_factory=list)

    @property
    def best(self) -> Hit:
        return self.hits[0]

    def citation(self) -> str:
        """The best passage's citation: ``paper.pdf, page 3``."""
        return self.best.citation()

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "source": self.source, "title": self.title, "score": self.score,
                "relevance": self.relevance, "citation": self.citation(), "hits": [h.to_dict() for h in self.hits]}

    def __repr__(self) -> str:
        return (f"DocumentHit(rank={self.rank}, score={self.score:.4f}, source={self.source!r}, "
                f"title={shorten(self.title, 40)!r}, hits={len(self.hits)})")

    def _repr_html_(self) -> str:
        return DocumentResults(query="", documents=[self])._repr_html_()


@dataclass
class DocumentResults(Listing[DocumentHit]):
    """The documents of one search, best first; iterable, indexable, and displayable."""

    _items = "documents"

    query: str
    documents: list[DocumentHit]
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        return [d.source for d in self.documents]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "documents": [d.to_dict() for d in self.documents]}

    def to_pandas(self) -> Any:
        """One row per document: its rank, source, title, scores, number of passages and best passage."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise MissingDependencyError("DocumentResults.to_pandas needs pandas: pip install pandas") from exc
        rows = [{"rank": d.rank, "source": d.source, "title": d.title, "score": d.score, "relevance": d.relevance,
                 "passages": len(d.hits), "citation": d.citation(), "text": d.best.text} for d in self.documents]
        return pd.DataFrame(rows, columns=["rank", "source", "title", "score", "relevance", "passages", "citation", "text"])

    def __repr__(self) -> str:
        top = f", top={self.documents[0].source!r}" if self.documents else ""
        return (f"DocumentResults(query={shorten(self.query, 40)!r}, documents={len(self.documents)}, "
                f"mode={self.settings.get('mode')!r}{top})")

    def to_table(self, width: int = 100) -> str:
        """A plain-text table, one line per document: rank, score, passages found, best passage's citation."""
        rows = [("#", "score", "hits", "document (best passage)")]
        for d in self.documents:
            cited = d.citation()
            # a Markdown file's title is its first heading, already in the citation's section path
            label = cited if not d.title or d.title in cited else f"{d.title} — {cited}"
            rows.append((str(d.rank), f"{d.score:.4f}", str(len(d.hits)), label))
        return text_table(rows, right=(0, 1, 2), width=width)

    def _repr_html_(self) -> str:

        rows = []
        for d in self.documents:
            name = f"<b>{html_escape(d.title)}</b><br><small>{html_escape(d.source)}</small>" if d.title else \
                f"<b>{html_escape(d.source)}</b>"
            passages = "".join(
                f"<div><small>#{h.rank} {html_escape(h.citation())} ({h.score:.3f})</small>"
                f"<blockquote style='margin:0 0 .4em 1em'>{highlight(shorten(h.text, 400), h.matched_terms)}</blockquote></div>"
                for h in d.hits)
            rows.append([d.rank, f"{d.score:.4f}", Markup(name), Markup(passages)])
        head = ""
        if self.query:
            head = (f"<div><b>{len(self.documents)} documents</b> for <q>{html_escape(self.query)}</q> "
                    f"<small>({html_escape(self.settings.get('mode', ''))})</small></div>")
        table = html_table(["#", "score", "document", "best passages"], rows)
        return f"<div class='ragbook-results ragbook-documents'>{head}{table}</div>"


def _sources(locations: Iterable[Chunk], keep: Callable[[Chunk], bool] | None) -> dict[str, list[Chunk]]:
    """The locations of one passage by file, in order; only those ``keep`` allows (the filters)."""
    out: dict[str, list[Chunk]] = {}
    for chunk in locations:
        if keep is None or keep(chunk):
            out.setdefault(chunk.source, []).append(chunk)
    return out


def nth_source(ranked: Iterable[list[Chunk]], keep: Callable[[Chunk], bool] | None, n: int) -> int | None:
    """The position among ``ranked`` passages (their locations) where the ``n``-th distinct file appears."""
    seen: set[str] = set()
    for position, locations in enumerate(ranked):
        seen.update(_sources(locations, keep))
        if len(seen) >= n:
            return position
    return None


def group_by_source(ranked: Iterable[tuple[list[Chunk], Callable[[], Hit]]], k: int, passages: int,
                    keep: Callable[[Chunk], bool] | None = None) -> list[DocumentHit]:
    """The first ``k`` files among ``ranked`` passages (best first), each with up to ``passages`` of them.

    Each passage comes as its locations and a function that makes its :class:`Hit` (called
    only for passages that are kept: matching the query's terms costs).  A passage in several
    files counts for each file ``keep`` allows (the filters), citing that file's location.
    ``ranked`` is read lazily and no further than needed.
    """
    documents: dict[str, DocumentHit] = {}
    full = 0
    for locations, make_hit in ranked:
        wanted = [source for source in _sources(locations, keep)
                  if (len(documents[source].hits) < passages if source in documents else len(documents) < k)]
        if not wanted:
            continue
        hit = make_hit()
        everywhere = [hit.chunk, *hit.also_in]
        for source, here in _sources(everywhere, keep).items():
            if source not in wanted:
                continue
            doc = documents.get(source)
            if doc is None:
                if len(documents) == k:  # the passage's other file took the last place
                    continue
                doc = documents[source] = DocumentHit(source=source, title=here[0].title, score=hit.score,
                                                      relevance=hit.relevance, rank=len(documents) + 1)
            elsewhere = [c for c in everywhere if c is not here[0]]
            doc.hits.append(replace(hit, chunk=here[0], also_in=elsewhere, matched_terms=list(hit.matched_terms)))
            full += len(doc.hits) == passages
        if len(documents) == k and full == k:
            break
    return list(documents.values())
