"""Extractive answers: the passages' own sentences that best answer a question, cited.

No language model is involved, so the answer is fast, deterministic, and can only say what the
documents say: what a teacher can trust to show where the book says something.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np

from ragbook.lexical import Analyzer
from ragbook.retrieval import Hit

__all__ = ["extract", "focus"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n{2,}|\n(?=\s*[-*•]|\s*\d+[.)]\s)")
_ANALYZER = Analyzer()
_LIST_ITEM = re.compile(r"^(?:[-*•+]|\d+[.)])\s+")


def _blocks(text: str) -> list[str]:
    """Paragraphs, with short unpunctuated lines (headings, PDF titles) set apart."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        heading = stripped.startswith("#") or (
            0 < len(stripped.split()) <= 8 and not stripped.endswith((".", "!", "?", ":", ",", ";")))
        if not stripped or heading:
            blocks.append([])
            continue
        if _LIST_ITEM.match(stripped):  # each list item stands alone
            blocks.append([])
            stripped = _LIST_ITEM.sub("", stripped)
        blocks[-1].append(stripped)
    return [" ".join(b) for b in blocks if b]


def _sentences(text: str) -> list[str]:
    parts = [" ".join(p.split()) for block in _blocks(text) for p in _SENTENCE_END.split(block)]
    # fragments say little on their own
    return [p for p in parts if len(p) >= 25 and len(p.split()) >= 5]


def _scores(question: str, texts: list[str], embedder: Any) -> np.ndarray:
    """How well each text answers the question: cosine to it, plus a bonus for sharing its words."""
    q = embedder.encode_queries([question])[0]
    dense = embedder.encode_documents(texts, show_progress=False) @ q
    q_terms = set(_ANALYZER(question))
    overlap = np.array([len(q_terms & set(_ANALYZER(t))) / max(len(q_terms), 1) for t in texts])
    return np.asarray(dense + 0.3 * overlap)


def focus(question: str, hits: Sequence[Hit], embedder: Any, budget: int,
          count_tokens: Callable[[str], int]) -> list[tuple[str, str]]:
    """Each passage cut to its sentences closest to the question, within ``budget`` tokens.

    Returns ``(citation, text)`` pairs for the prompt (see :func:`ragbook.prompt.format_passages`).
    A passage that fits is kept whole; otherwise its best sentences are kept in reading order,
    the gaps marked "…", so the model reads less before its first word.  The best sentence is
    kept even if it alone is over the budget.
    """
    out: list[tuple[str, str]] = []
    units: list[list[str]] = []
    for hit in hits:
        text = hit.chunk.text
        parts = [" ".join(p.split()) for block in _blocks(text) for p in _SENTENCE_END.split(block) if p.strip()]
        units.append(parts if count_tokens(text) > budget and len(parts) > 1 else [])
    flat = [u for parts in units for u in parts]
    scores = iter(_scores(question, flat, embedder) if flat else [])
    for hit, parts in zip(hits, units):
        if not parts:
            out.append((hit.chunk.citation(), hit.chunk.text))
            continue
        score = np.array([next(scores) for _ in parts])
        chosen: list[int] = []
        used = 0
        for i in np.argsort(-score, kind="stable"):
            size = count_tokens(parts[i])
            if chosen and used + size > budget:
                continue
            chosen.append(int(i))
            used += size
        chosen.sort()
        pieces = ["\u2026"] if chosen[0] > 0 else []
        for a, b in zip(chosen, chosen[1:] + [len(parts)]):
            pieces.append(parts[a])
            if b != a + 1:
                pieces.append("\u2026")
        out.append((hit.chunk.citation(), " ".join(pieces)))
    return out


def extract(question: str, hits: Sequence[Hit], embedder: Any, *, max_sentences: int = 3,
            passages: int = 3) -> tuple[str, list[Hit]]:
    """The best ``max_sentences`` sentences from the top ``passages`` hits, each cited ``[n]``.

    Sentences are scored by cosine similarity to the question plus a bonus for sharing its
    words, then shown in reading order (by passage, then position).  Returns the answer text
    and the passages it numbers.
    """
    used = list(hits[:passages])
    candidates: list[tuple[int, int, str]] = []  # (passage number, position, sentence)
    for n, hit in enumerate(used, start=1):
        for pos, sentence in enumerate(_sentences(hit.text)):
            candidates.append((n, pos, sentence))
    if not candidates:
        return "", used
    texts = [s for _, _, s in candidates]
    rank_bonus = np.array([0.02 * (len(used) - n) for n, _, _ in candidates])
    score = _scores(question, texts, embedder) + rank_bonus
    best = np.argsort(-score, kind="stable")[:max_sentences]
    # keep sentences close to the best one; a weak third sentence only adds noise
    keep = [i for i in best if score[i] >= score[best[0]] - 0.12]
    keep.sort(key=lambda i: (candidates[i][0], candidates[i][1]))
    text = " ".join(f"{candidates[i][2]} [{candidates[i][0]}]" for i in keep)
    return text, used
