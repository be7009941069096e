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
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any, Protocol

from ragbook.documents import Chunk, Document

__all__ = ["Chunker", "DEFAULT_CHUNK_SIZE", "DEFAULT_OVERLAP"]

# Chosen by benchmarks/chunking.py on 16 long SQuAD articles (1,500 questions): hybrid hit@5
# (chunk holds the answer) is 0.915 at 64 tokens, 0.939 at 128, 0.958 at 200 (overlap 32) and
# 0.959 at 254; overlaps of 10-20% of the size are within noise of each other.
DEFAULT_CHUNK_SIZE = 200
DEFAULT_OVERLAP = 32

# From coarse to fine; a piece that is still too long moves to the next level.
_SEPARATORS = [
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"\n\s*"),  # lines
    re.compile(r"(?<=[.!?。！？…])[\"')\]]*\s+"),  # sentences
    re.compile(r"(?<=[;:,])\s+"),  # clauses
    re.compile(r"\s+"),  # words
]


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

    def __post_init__(self) -> None:
        if self.chunk_size < 8:
            raise ValueError(f"chunk_size must be at least 8 tokens, not {self.chunk_size}")
        if not 0 <= self.overlap < self.chunk_size // 2 + 1:
            raise ValueError(f"overlap must be between 0 and half of chunk_size ({self.chunk_size // 2}), not {self.overlap}")
        if self.max_tokens is not None and self.chunk_size > self.max_tokens:
            raise ValueError(
                f"chunk_size={self.chunk_size} tokens is more than the embedding model reads "
                f"({self.max_tokens} tokens after its special tokens); the rest would be silently "
                f"dropped. Use chunk_size <= {self.max_tokens}."
            )
        if self.tokenizer is None:
            self.tokenizer = _WhitespaceTokenizer()

    def settings(self) -> dict[str, Any]:
        return {"chunk_size": self.chunk_size, "overlap": self.overlap, "max_tokens": self.max_tokens}

    def __repr__(self) -> str:
        return f"Chunker(chunk_size={self.chunk_size}, overlap={self.overlap}, max_tokens={self.max_tokens})"

    # -- splitting ---------------------------------------------------------------------------

    def split(self, document: Document) -> list[Chunk]:
        """Chunks of ``document``, in order, each with its page/cell/section and offsets."""
        text = document.text
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        starts = [s for s, e in enc.offsets]
        ends = [e for s, e in enc.offsets]
        counter = _SpanCounter(starts, ends, text)
        base_meta = {k: v for k, v in document.metadata.items() if k != "path"}
        chunks: list[Chunk] = []
        for seg in document.segments:
            for a, b in self._merge(self._atoms(text, seg.start, seg.end, 0, counter), counter):
                a, b = _strip(text, a, b)
                if a >= b:
                    continue
                chunks.append(
                    Chunk(
                        text=text[a:b],
                        source=document.source,
                        doc_id=document.id,
                        title=document.title,
                        page=seg.page,
                        cell=seg.cell,
                        section=seg.section,
                        start=a,
                        end=b,
                        metadata=dict(base_meta),
                    )
                )
        return self._enforce_limit(chunks)

    def _atoms(self, text: str, a: int, b: int, level: int, counter: _SpanCounter) -> list[tuple[int, int]]:
        """Pieces of ``text[a:b]`` that each fit, cut at the coarsest boundaries that make them fit."""
        if counter.count(a, b) <= self.chunk_size:
            return [(a, b)]
        if level >= len(_SEPARATORS):
            return counter.hard_cut(a, b, self.chunk_size)
        atoms: list[tuple[int, int]] = []
        for pa, pb in _split_at(text, a, b, _SEPARATORS[level]):
            atoms.extend(self._atoms(text, pa, pb, level + 1, counter))
        return atoms

    def _merge(self, pieces: list[tuple[int, int]], counter: _SpanCounter) -> list[tuple[int, int]]:
        """Pack consecutive pieces into chunks, repeating trailing pieces as overlap."""
        out: list[tuple[int, int]] = []
        current: list[tuple[int, int]] = []
        for piece in pieces:
            if current and counter.count(current[0][0], piece[1]) > self.chunk_size:
                out.append((current[0][0], current[-1][1]))
                # keep the longest tail of the closed chunk that fits in the overlap budget
                tail: list[tuple[int, int]] = []
                for prev in reversed(current):
                    if counter.count(prev[0], current[-1][1]) > self.overlap:
                        break
                    tail.insert(0, prev)
                if not tail and self.overlap:
                    tail = self._partial_tail(current[-1], counter)
                current = tail
                while current and counter.count(current[0][0], piece[1]) > self.chunk_size:
                    current.pop(0)
            current.append(piece)
        if current:
            out.append((current[0][0], current[-1][1]))
        return out

    def _partial_tail(self, piece: tuple[int, int], counter: _SpanCounter) -> list[tuple[int, int]]:
        """The end of a piece too long to repeat whole: its last sentences, else its last words."""
        a, b = piece
        text = counter.text
        for pattern in (_SEPARATORS[2], _SEPARATORS[4]):
            for m in pattern.finditer(text, a, b):
                if m.end() < b and counter.count(m.end(), b) <= self.overlap:
                    return [(m.end(), b)]
        return []

    def _enforce_limit(self, chunks: list[Chunk]) -> list[Chunk]:
        """Re-tokenize each chunk alone; split any that a model would truncate."""
        if self.max_tokens is None or not chunks:
            return chunks
        limit = self.max_tokens
        encodings = self.tokenizer.encode_batch([c.text for c in chunks], add_special_tokens=False)
        out: list[Chunk] = []
        for chunk, enc in zip(chunks, encodings):
            if len(enc.offsets) <= limit:
                out.append(chunk)
                continue
            # Cut at the token where the limit falls, then check the halves again.
            cut = enc.offsets[limit - 1][1]
            first = _sub_chunk(chunk, 0, cut)
            second = _sub_chunk(chunk, cut, len(chunk.text))
            out.extend(self._enforce_limit([c for c in (first, second) if c.text]))
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
        page=chunk.page, cell=chunk.cell, section=chunk.section,
        start=chunk.start + a, end=chunk.start + b, metadata=dict(chunk.metadata),
    )
