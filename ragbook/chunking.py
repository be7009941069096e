"""Structure-aware recursive chunking, measured in the embedding model's own tokens.

A document is split segment by segment (a PDF page, a notebook cell, a Markdown section), so
a chunk never straddles two pages.  Inside a segment the text is split at the coarsest
boundary that works (paragraphs, then lines, sentences, clauses, words, and as a last resort
token boundaries), and the pieces are packed greedily up to ``chunk_size`` tokens, with
``overlap`` tokens of trailing pieces repeated at the start of the next chunk.  Overlap is
made of whole pieces (paragraphs, sentences) where they fit in it, else of the last sentences
or words of the piece before the boundary.

Token counts come from one pass of the model's fast tokenizer over the whole document (its
character offsets make every span count a binary search), and every finished chunk is
re-tokenized on its own to prove it fits what the model reads.  Models truncate silently
(all-MiniLM-L6-v2 drops everything after 256 word pieces), so an oversized chunk would be
searchable only by its beginning: here that cannot happen.

Memory is bounded by a window, not by the document.  Token offsets cost about 100 bytes of
Python objects per token (a 20 MB single-line file once needed 2.9 GB), so a document longer
than ``_ONE_PASS_CHARS`` is tokenized one window at a time: each window ends at the coarsest
boundary in its second half, and the unfinished chunk at its end is carried over to start the
next window, so windows leave no visible seams.  Shorter documents are chunked exactly as if
windows did not exist.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

from ragbook.documents import Chunk, Document, Segment
from ragbook.errors import SettingsError
from ragbook.settings import IndexConfig

__all__ = ["Chunker", "DEFAULT_CHUNK_SIZE", "DEFAULT_OVERLAP", "MAX_CONTEXT_TOKENS", "context_header", "join_headings"]

# Chosen by benchmarks/chunking.py on 16 long SQuAD articles (1,500 questions): hybrid hit@5
# (chunk holds the answer) is 0.915 at 64 tokens, 0.939 at 128, 0.958 at 200 (overlap 32) and
# 0.959 at 254; overlaps of 10-20% of the size are within noise of each other.
DEFAULT_CHUNK_SIZE: int = IndexConfig.chunk_size  # the settings' own defaults (ragbook.settings)
DEFAULT_OVERLAP: int = IndexConfig.overlap

# The context line (document title, byline, section path) that names each passage's place:
# enough for "Introduction to Python Programming > 3 Conditionals > 3.2 Nested decisions", and a
# hard cap for a title that is really a paragraph.
MAX_CONTEXT_TOKENS = 40
_CONTEXT_AUTHORS = 3
# A segment this short with no blank line in it is a heading alone (an empty section): its text
# joins the segment that follows instead of standing as a passage of its own.
_HEADING_CHARS = 200

# A fast tokenizer needs about 170 bytes per character while it works (its normalizer tracks
# each character's alignment), and the offsets ~100 bytes per token after.  Documents up to
# _ONE_PASS_CHARS (a 400-page book, ~170 MB at the peak) are tokenized in one pass, exactly as
# always; longer ones a window of _WINDOW_CHARS at a time (~20 MB; larger windows are no
# faster, and on a single line give the very same chunks).
_ONE_PASS_CHARS = 1_000_000
_WINDOW_CHARS = 100_000

# From coarse to fine; a piece that is still too long moves to the next level.
_SEPARATORS = [
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"\n\s*"),  # lines
    re.compile(r"(?<=[.!?。！？…])[\"')\]]*\s+"),  # sentences
    re.compile(r"(?<=[;:,])\s+"),  # clauses
    re.compile(r"\s+"),  # words
]


def context_header(title: str, section: tuple[str, ...] | list[str], metadata: dict[str, Any]) -> str:
    """The line that says which document and section a passage is from.

    ``"1937 Roosevelt"``, ``"Attention Is All You Need (Vaswani, Shazeer, Parmar et al.; 2017) >
    3 Model Architecture"``: the title, the authors and date when the document has them, and the
    section path (without a first heading that only repeats the title).  The index embeds it and
    BM25-indexes it with every passage of the section, so a question that names its document
    ("in his 1937 inaugural ...") finds passages that never mention the name themselves.
    """
    head = " ".join(str(title or "").split())
    authors = metadata.get("authors") or metadata.get("author")  # Markdown front matter says "author"
    if isinstance(authors, str):
        authors = [authors]
    names = [" ".join(str(a).split()) for a in authors or [] if str(a).strip()]
    byline = ", ".join(names[:_CONTEXT_AUTHORS]) + (" et al." if len(names) > _CONTEXT_AUTHORS else "")
    date = " ".join(str(metadata.get("date") or "").split())[:10]
    if date and date in head:
        date = ""
    extra = "; ".join(part for part in (byline, date) if part)
    if extra:
        head = f"{head} ({extra})" if head else extra
    path = [" ".join(part.split()) for part in section if part and part.strip()]
    if path and head and path[0].casefold() == " ".join(str(title or "").split()).casefold():
        path = path[1:]
    return " > ".join(part for part in [head, *path] if part)


def join_headings(text: str, segments: list[Segment]) -> list[Segment]:
    """Segments with every heading-only segment joined to the one that follows it.

    Textbooks and slides are full of empty sections ("3 Conditionals" straight followed by "3.1
    If statements"): alone, such a heading is a passage that matches every question about its
    topic and answers none.  Joined, the heading leads the next section's first passage (which
    keeps the deeper section path).  A heading at the very end joins the segment before it.  Only
    segments of the same page, cell and slide are joined: a citation never spans two pages.
    """
    out: list[Segment] = []
    pending: Segment | None = None
    for seg in segments:
        bare = _bare_heading(text, seg)
        if pending is not None:
            if _same_place(pending, seg):
                seg = Segment(pending.start, seg.end, page=seg.page, cell=seg.cell, slide=seg.slide, section=seg.section)
            else:
                out.append(pending)
            pending = None
        if bare:  # (with the headings before it, if any: "3 Conditionals" + "3.1 Introduction")
            pending = seg
        else:
            out.append(seg)
    if pending is not None:
        if out and _same_place(out[-1], pending):
            last = out.pop()
            pending = Segment(last.start, pending.end, page=last.page, cell=last.cell, slide=last.slide,
                              section=last.section)
        out.append(pending)
    return out


def _same_place(a: Segment, b: Segment) -> bool:
    return (a.page, a.cell, a.slide) == (b.page, b.cell, b.slide)


def _bare_heading(text: str, seg: Segment) -> bool:
    """A segment that is only its heading: one short line that is (about) its own section's title."""
    if not seg.section or seg.end - seg.start > _HEADING_CHARS:
        return False
    line = text[seg.start:seg.end].strip()
    title = seg.section[-1].strip().casefold()
    return "\n" not in line and bool(title) and title in line.casefold() and len(line) <= len(title) + 12


class Tokenizer(Protocol):
    """What the chunker needs of a tokenizer: the ``tokenizers.Tokenizer`` interface."""

    def encode(self, sequence: str, add_special_tokens: bool = True) -> Any: ...

    def encode_batch(self, inputs: list[str], add_special_tokens: bool = True) -> list[Any]: ...


class _WhitespaceTokenizer:
    """Fallback used only when no model tokenizer is given: words and punctuation marks."""

    _word = re.compile(r"\w+|[^\w\s]", re.UNICODE)

    class _Encoding:
        def __init__(self, offsets: list[tuple[int, int]]) -> None:
            self.offsets = offsets
            self.ids = [0] * len(offsets)

    def encode(self, sequence: str, add_special_tokens: bool = True) -> Any:
        return self._Encoding([m.span() for m in self._word.finditer(sequence)])

    def encode_batch(self, inputs: list[str], add_special_tokens: bool = True) -> list[Any]:
        return [self.encode(s) for s in inputs]


@dataclass
class Chunker:
    """Split documents into chunks of at most ``chunk_size`` tokens.

    ``max_tokens`` is the most content tokens the embedding model reads (its sequence length
    minus its special tokens); ``chunk_size`` may not exceed it.
    """

    chunk_size: int = DEFAULT_CHUNK_SIZE
    overlap: int = DEFAULT_OVERLAP
    tokenizer: Tokenizer | None = None
    max_tokens: int | None = None
    special_tokens: int = 0
    context: bool = True

    def __post_init__(self) -> None:
        if self.chunk_size < 8:
            raise SettingsError(f"chunk_size must be at least 8 tokens, not {self.chunk_size}")
        if not 0 <= self.overlap < self.chunk_size // 2 + 1:
            raise SettingsError(f"overlap must be between 0 and half of chunk_size ({self.chunk_size // 2}), not {self.overlap}")
        if self.max_tokens is not None and self.chunk_size > self.max_tokens:
            raise SettingsError(
                f"chunk_size={self.chunk_size} tokens is more than the embedding model reads "
                f"({self.max_tokens} tokens after its special tokens); the rest would be silently "
                f"dropped. Use chunk_size <= {self.max_tokens}."
            )
        if self.tokenizer is None:
            self.tokenizer = _WhitespaceTokenizer()

    def settings(self) -> dict[str, Any]:
        return {"chunk_size": self.chunk_size, "overlap": self.overlap, "max_tokens": self.max_tokens,
                "context": self.context}

    def __repr__(self) -> str:
        return (f"Chunker(chunk_size={self.chunk_size}, overlap={self.overlap}, max_tokens={self.max_tokens}, "
                f"context={self.context})")

    @property
    def _tokenizer(self) -> Tokenizer:
        # __post_init__ replaces None with the fallback; only a later ``chunker.tokenizer = None`` gets here
        if self.tokenizer is None:
            raise SettingsError("Chunker.tokenizer is None; pass a tokenizer or leave it unset for the fallback")
        return self.tokenizer

    # -- splitting ---------------------------------------------------------------------------

    def split(self, document: Document) -> list[Chunk]:
        """Chunks of ``document``, in order, each with its page/cell/slide/section and offsets."""
        text = document.text
        # once per document: the id hashes the whole text, and chunks of one document share
        # one metadata dict (as an index loaded from disk does)
        metadata = {k: v for k, v in document.metadata.items() if k != "path"}
        fields = {"source": document.source, "doc_id": document.id, "title": document.title, "metadata": metadata}
        headers: dict[tuple[str, ...], str] = {}
        chunks: list[Chunk] = []
        limits: list[int | None] = []
        one_pass = len(text) <= self._one_pass_chars
        counter = self._counter(text, 0, len(text)) if one_pass else None
        for seg in join_headings(text, document.segments):
            if seg.section not in headers:
                headers[seg.section] = self._header(context_header(document.title, seg.section, metadata))
            context = headers[seg.section]
            # (the context line is embedded on its own: it takes nothing from the passage's budget)
            limit, size = self.max_tokens, self.chunk_size
            seg_fields = {**fields, "context": context}
            if counter is not None:
                spans = self._merge(self._atoms(text, seg.start, seg.end, 0, counter, size), counter, size)
                found = self._chunks(text, seg, spans, seg_fields)
                chunks.extend(found)
                limits.extend([limit] * len(found))
            else:  # a window's chunks are checked before the next window is tokenized
                for spans in self._windows(text, seg.start, seg.end, size):
                    found = self._chunks(text, seg, spans, seg_fields)
                    chunks.extend(self._enforce_limit(found, text, [limit] * len(found)))
        return self._enforce_limit(chunks, text, limits) if one_pass else chunks

    def _header(self, header: str) -> str:
        """``header`` cut to :data:`MAX_CONTEXT_TOKENS` (a "title" may be a whole paragraph)."""
        if not self.context or not header:
            return ""
        header = header[:MAX_CONTEXT_TOKENS * 8]  # no tokenizer call on a page-long "title"
        offsets = self._tokenizer.encode(header, add_special_tokens=False).offsets
        if len(offsets) > MAX_CONTEXT_TOKENS:
            header = header[:offsets[MAX_CONTEXT_TOKENS - 1][1]].rstrip() + " …"
        return header

    # an instance may lower these (tests do)
    _one_pass_chars = _ONE_PASS_CHARS
    _window_chars = _WINDOW_CHARS

    def _counter(self, text: str, lo: int, hi: int) -> _SpanCounter:
        """Token offsets of ``text[lo:hi]``, as offsets into ``text``."""
        enc = self._tokenizer.encode(text[lo:hi], add_special_tokens=False)
        offsets = enc.offsets
        del enc  # the tokenizer's own copy of the tokens is the larger part
        return _SpanCounter([s + lo for s, _ in offsets], [e + lo for _, e in offsets], text)

    def _windows(self, text: str, a: int, b: int, size_tokens: int) -> Iterator[list[tuple[int, int]]]:
        """Chunk spans of ``text[a:b]``, a bounded window at a time."""
        size = self._window_chars
        pos = a
        while pos < b:
            end = b if b - pos <= size else _cut(text, pos, pos + size)
            counter = self._counter(text, pos, end)
            spans = self._merge(self._atoms(text, pos, end, 0, counter, size_tokens), counter, size_tokens)
            # the last chunk may be cut short by the window's end: redo it at the start of the
            # next window, unless that would move on by less than half a window (a chunk of a
            # few tokens and pages of whitespace), which would make the work quadratic
            if end < b and len(spans) > 1 and spans[-1][0] >= pos + size // 2:
                yield spans[:-1]
                pos = spans[-1][0]
            else:
                yield spans
                pos = end

    def _chunks(self, text: str, seg: Segment, spans: list[tuple[int, int]], fields: dict[str, Any]) -> list[Chunk]:
        chunks = []
        for a, b in spans:
            a, b = _strip(text, a, b)
            if a < b:
                chunks.append(Chunk(text=text[a:b], page=seg.page, cell=seg.cell, slide=seg.slide, section=seg.section,
                                    start=a, end=b, **fields))
        return chunks

    def _atoms(self, text: str, a: int, b: int, level: int, counter: _SpanCounter, size: int) -> list[tuple[int, int]]:
        """Pieces of ``text[a:b]`` that each fit in ``size`` tokens, cut at the coarsest boundaries that make them fit."""
        if counter.count(a, b) <= size:
            return [(a, b)]
        if level >= len(_SEPARATORS):
            return counter.hard_cut(a, b, size)
        atoms: list[tuple[int, int]] = []
        for pa, pb in _split_at(text, a, b, _SEPARATORS[level]):
            atoms.extend(self._atoms(text, pa, pb, level + 1, counter, size))
        return atoms

    def _merge(self, pieces: list[tuple[int, int]], counter: _SpanCounter, size: int) -> list[tuple[int, int]]:
        """Pack consecutive pieces into chunks of ``size`` tokens, repeating trailing pieces as overlap."""
        out: list[tuple[int, int]] = []
        current: list[tuple[int, int]] = []
        overlap = min(self.overlap, size // 2)
        for piece in pieces:
            if current and counter.count(current[0][0], piece[1]) > size:
                out.append((current[0][0], current[-1][1]))
                # keep the longest tail of the closed chunk that fits in the overlap budget
                tail: list[tuple[int, int]] = []
                for prev in reversed(current):
                    if counter.count(prev[0], current[-1][1]) > overlap:
                        break
                    tail.insert(0, prev)
                if not tail and overlap:
                    tail = self._partial_tail(current[-1], counter, overlap)
                current = tail
                while current and counter.count(current[0][0], piece[1]) > size:
                    current.pop(0)
            current.append(piece)
        if current:
            out.append((current[0][0], current[-1][1]))
        return out

    def _partial_tail(self, piece: tuple[int, int], counter: _SpanCounter, overlap: int) -> list[tuple[int, int]]:
        """The end of a piece too long to repeat whole: its last sentences, else its last words."""
        a, b = piece
        text = counter.text
        for pattern in (_SEPARATORS[2], _SEPARATORS[4]):
            for m in pattern.finditer(text, a, b):
                if m.end() < b and counter.count(m.end(), b) <= overlap:
                    return [(m.end(), b)]
        return []

    def _enforce_limit(self, chunks: list[Chunk], text: str, limits: list[int | None]) -> list[Chunk]:
        """Re-tokenize each chunk alone; split any longer than its limit (a model would truncate it)."""
        limit_of = {i: limit for i, limit in enumerate(limits) if limit is not None}
        todo = list(limit_of)
        if not todo:
            return chunks
        # fresh slices of the document, not the chunks' own strings: a Rust tokenizer leaves a
        # UTF-8 copy cached inside every non-ASCII str it reads, for as long as the str lives
        pieces = [text[chunks[i].start:chunks[i].end] for i in todo]
        encodings = self._tokenizer.encode_batch(pieces, add_special_tokens=False)
        del pieces
        too_long = {i: enc.offsets for i, enc in zip(todo, encodings) if len(enc.offsets) > limit_of[i]}
        if not too_long:
            return chunks
        out: list[Chunk] = []
        for i, chunk in enumerate(chunks):
            if i not in too_long:
                out.append(chunk)
                continue
            # Cut at the token where the limit falls, then check the halves again.
            limit = limit_of[i]
            cut = too_long[i][limit - 1][1]
            halves = [c for c in (_sub_chunk(chunk, 0, cut), _sub_chunk(chunk, cut, len(chunk.text))) if c.text]
            out.extend(self._enforce_limit(halves, text, [limit] * len(halves)))
        return out


class _SpanCounter:
    """Counts tokens in character spans using one tokenization of the whole text."""

    def __init__(self, starts: list[int], ends: list[int], text: str) -> None:
        self.starts = starts
        self.ends = ends
        self.text = text

    def count(self, a: int, b: int) -> int:
        return bisect.bisect_left(self.starts, b) - bisect.bisect_left(self.starts, a)

    def hard_cut(self, a: int, b: int, size: int) -> list[tuple[int, int]]:
        first = bisect.bisect_left(self.starts, a)
        last = bisect.bisect_left(self.starts, b)
        spans = []
        for i in range(first, last, size):
            j = min(i + size, last) - 1
            spans.append((a if i == first else self.starts[i], min(self.ends[j], b)))
        if spans:
            spans[-1] = (spans[-1][0], b)
        return spans or [(a, b)]


def _cut(text: str, lo: int, hi: int) -> int:
    """Where a window ``text[lo:hi]`` should end: after the coarsest separator in its second half."""
    mid = lo + (hi - lo) // 2
    for pattern in _SEPARATORS:
        last = None
        for m in pattern.finditer(text, mid, hi):
            last = m
        if last is not None and last.end() < hi:
            return last.end()
    return hi  # one unbroken run of text (base64, say): cut anywhere, the carried chunk hides it


def _split_at(text: str, a: int, b: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    pieces = []
    pos = a
    for m in pattern.finditer(text, a, b):
        if m.start() > pos:
            pieces.append((pos, m.start()))
        pos = m.end()
    if pos < b:
        pieces.append((pos, b))
    return pieces


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _sub_chunk(chunk: Chunk, a: int, b: int) -> Chunk:
    a, b = _strip(chunk.text, a, b)
    return Chunk(
        text=chunk.text[a:b], source=chunk.source, doc_id=chunk.doc_id, title=chunk.title,
        page=chunk.page, cell=chunk.cell, slide=chunk.slide, section=chunk.section,
        start=chunk.start + a, end=chunk.start + b, metadata=chunk.metadata, context=chunk.context,
    )
