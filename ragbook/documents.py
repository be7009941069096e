"""Documents and chunks: the records every other module passes around.

A :class:`Document` is the text of one source (a file, a notebook, a PDF) together with
*segments*: character spans that carry where the text came from (a PDF page, a notebook cell,
a slide, a Markdown section).  Chunks never cross a segment, so every chunk can cite one page or cell.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ragbook._display import html_escape, shorten
from ragbook.errors import LoadError

__all__ = ["Segment", "Document", "Chunk", "LoadError"]


@dataclass(frozen=True)
class Segment:
    """A span ``text[start:end]`` of a document and where it came from."""

    start: int
    end: int
    page: int | None = None  # 1-based PDF page
    cell: int | None = None  # 1-based notebook cell
    slide: int | None = None  # 1-based slide of a deck
    section: tuple[str, ...] = ()  # heading path, outermost first

    def location(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.page is not None:
            out["page"] = self.page
        if self.cell is not None:
            out["cell"] = self.cell
        if self.slide is not None:
            out["slide"] = self.slide
        if self.section:
            out["section"] = list(self.section)
        return out


_DIGEST_PIECE = 1 << 20  # characters encoded at a time: a 200 MB text is not copied whole


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        # UTF-8 encodes each code point on its own, so pieces hash exactly like the whole
        for i in range(0, len(part), _DIGEST_PIECE):
            h.update(part[i : i + _DIGEST_PIECE].encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


@dataclass
class Document:
    """The extracted text of one source with its segments and metadata.

    ``metadata`` must be JSON-serialisable: it is saved with the index.  ``warnings`` collects
    problems that did not stop the load (a PDF page that failed to extract, say).
    """

    text: str
    source: str
    title: str = ""
    segments: list[Segment] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.segments:
            self.segments = [Segment(0, len(self.text))]

    @property
    def id(self) -> str:
        """Stable id from the source path, title, content and metadata."""
        meta = json.dumps(self.metadata, sort_keys=True, ensure_ascii=False, default=str)
        return _digest(self.source, self.title, _digest(self.text), meta)[:16]

    def __len__(self) -> int:
        return len(self.text)

    def __repr__(self) -> str:
        kind = self.metadata.get("format", "text")
        return (
            f"Document(source={self.source!r}, title={shorten(self.title, 40)!r}, "
            f"format={kind!r}, chars={len(self.text)}, segments={len(self.segments)})"
        )

    def _repr_html_(self) -> str:
        return (
            "<div class='ragbook-document'>"
            f"<b>{html_escape(self.title or self.source)}</b> "
            f"<code>{html_escape(self.source)}</code> &middot; {len(self.text):,} characters, "
            f"{len(self.segments)} segments"
            f"<pre style='white-space:pre-wrap;max-height:12em;overflow:auto'>"
            f"{html_escape(shorten(self.text, 1200))}</pre></div>"
        )


@dataclass
class Chunk:
    """A passage of a document: what gets embedded, retrieved and cited.

    ``start``/``end`` are character offsets into the document's extracted text, so that
    ``document.text[chunk.start:chunk.end] == chunk.text``.
    """

    text: str
    source: str
    doc_id: str = ""
    title: str = ""
    page: int | None = None
    cell: int | None = None
    slide: int | None = None
    section: tuple[str, ...] = ()
    start: int = 0
    end: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    context: str = ""  # what identifies the passage's document and section (see ragbook.chunking)

    @cached_property
    def id(self) -> str:
        """Id of what is embedded: identical passages under the same context share it (and are stored once)."""
        return _digest(self.context, self.text)[:16] if self.context else _digest(self.text)[:16]

    def citation(self) -> str:
        """A short human reference: ``notes.pdf, page 3`` or ``intro.md > Loops``."""
        parts = [self.source]
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.cell is not None:
            parts.append(f"cell {self.cell}")
        if self.slide is not None:
            parts.append(f"slide {self.slide}")
        text = ", ".join(parts)
        if self.section:
            text += " > " + " > ".join(self.section)
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "doc_id": self.doc_id, "title": self.title}
        for key in ("page", "cell", "slide"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.section:
            out["section"] = list(self.section)
        out["start"], out["end"] = self.start, self.end
        if self.metadata:
            out["metadata"] = self.metadata
        return out

    @classmethod
    def from_dict(cls, text: str, data: dict[str, Any]) -> Chunk:
        return cls(
            text=text,
            source=data["source"],
            doc_id=data.get("doc_id", ""),
            title=data.get("title", ""),
            page=data.get("page"),
            cell=data.get("cell"),
            slide=data.get("slide"),
            section=tuple(data.get("section", ())),
            start=data.get("start", 0),
            end=data.get("end", 0),
            metadata=data.get("metadata", {}),
            context=data.get("context", ""),
        )

    def __repr__(self) -> str:
        return f"Chunk({self.citation()!r}, chars={len(self.text)}, text={shorten(self.text, 60)!r})"

    def _repr_html_(self) -> str:
        return (
            "<div class='ragbook-chunk'>"
            f"<div><b>{html_escape(self.citation())}</b> "
            f"<small>chars {self.start}-{self.end}</small></div>"
            f"<blockquote style='white-space:pre-wrap'>{html_escape(self.text)}</blockquote></div>"
        )
