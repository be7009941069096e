"""Extractive answers: the passages' own sentences that best answer a question, cited.

No language model is involved, so the answer is fast, deterministic, and can only say what the
documents say: what a teacher can trust to show where the book says something.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from ragbook.lexical import Analyzer
from ragbook.retrieval import Hit

__all__ = ["extract"]

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
    q = embedder.encode_queries([question])[0]
    vecs = embedder.encode_documents(texts, show_progress=False)
    dense = vecs @ q
    q_terms = set(_ANALYZER(question))
    overlap = np.array([len(q_terms & set(_ANALYZER(t))) / max(len(q_terms), 1) for t in texts])
    rank_bonus = np.array([0.02 * (len(used) - n) for n, _, _ in candidates])
    score = dense + 0.3 * overlap + rank_bonus
    best = np.argsort(-score, kind="stable")[:max_sentences]
    # keep sentences close to the best one; a weak third sentence only adds noise
    keep = [i for i in best if score[i] >= score[best[0]] - 0.12]
    keep.sort(key=lambda i: (candidates[i][0], candidates[i][1]))
    text = " ".join(f"{candidates[i][2]} [{candidates[i][0]}]" for i in keep)
    return text, used
