"""BM25 over chunk texts, with postings in flat numpy arrays that save without pickle.

Analysis follows the usual English setup (Lucene's ``english`` analyzer, used for the BEIR
BM25 baselines): lower-case Unicode words, a short stop list, Snowball stemming (PyStemmer).
Chinese, Japanese and Korean runs, which have no spaces, are indexed as character bigrams.

Postings are stored term-major: for term ``t`` its rows are ``rows[indptr[t]:indptr[t+1]]``
with term frequencies ``tf[...]``.  Rows can be removed and added without re-tokenizing the
rows that stay, which keeps index updates cheap.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["BM25", "Analyzer"]

# Lucene's English stop set (the one Elasticsearch's "english" analyzer uses).
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
    # what is left of possessives and contractions once apostrophes split words
    + ["s", "t"]
)

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


class Analyzer:
    """Text -> index terms.  Its settings are saved with the index so queries match."""

    def __init__(self, stemmer: str | None = "english", stopwords: bool = True) -> None:
        self.stemmer_name = stemmer
        self.use_stopwords = stopwords
        self._stem = _stemmer(stemmer) if stemmer else None

    def settings(self) -> dict[str, Any]:
        return {"stemmer": self.stemmer_name, "stopwords": self.use_stopwords}

    def __call__(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        out: list[str] = []
        for word in words:
            if _CJK.search(word):
                out.extend(_cjk_terms(word))
            elif not (self.use_stopwords and word in STOPWORDS):
                out.append(word)
        if self._stem is not None:
            out = self._stem(out)
        return out


@lru_cache(maxsize=4)
def _stemmer(name: str) -> Any:
    import Stemmer  # PyStemmer: a C extension, cheap to import

    stemmer = Stemmer.Stemmer(name)
    stemmer.maxCacheSize = 100_000
    return stemmer.stemWords


def _cjk_terms(word: str) -> list[str]:
    """Latin parts as words; CJK runs as overlapping character bigrams (single chars alone)."""
    terms: list[str] = []
    pos = 0
    for m in _CJK.finditer(word):
        if m.start() > pos:
            terms.append(word[pos : m.start()])
        run = m.group()
        terms.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        pos = m.end()
    if pos < len(word):
        terms.append(word[pos:])
    return terms


class BM25:
    """Okapi BM25 (Lucene's idf) over a list of texts; rows are the texts' positions."""

    def __init__(self, k1: float = 1.2, b: float = 0.75, analyzer: Analyzer | None = None) -> None:
        self.k1 = k1
        self.b = b
        self.analyzer = analyzer or Analyzer()
        self.vocab: dict[str, int] = {}
        self.indptr = np.zeros(1, dtype=np.int64)
        self.rows = np.zeros(0, dtype=np.int32)
        self.tf = np.zeros(0, dtype=np.float32)
        self.doc_len = np.zeros(0, dtype=np.float32)
        self._norm: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.doc_len)

    def __repr__(self) -> str:
        return f"BM25(rows={len(self)}, terms={len(self.vocab)}, k1={self.k1}, b={self.b})"

    def settings(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, **self.analyzer.settings()}

    # -- building --------------------------------------------------------------------------

    def update(self, keep: np.ndarray | None, new_texts: Sequence[str]) -> None:
        """Keep rows where ``keep`` is true (renumbered in order) and append ``new_texts``."""
        n_old = len(self.doc_len)
        keep = np.ones(n_old, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
        term_of = np.repeat(np.arange(len(self.indptr) - 1, dtype=np.int64), np.diff(self.indptr))
        newrow = np.cumsum(keep) - 1
        mask = keep[self.rows] if len(self.rows) else np.zeros(0, dtype=bool)
        terms, rows, tfs = [term_of[mask]], [newrow[self.rows[mask]]], [self.tf[mask]]
        lengths = [self.doc_len[keep]]

        first = int(keep.sum())
        t_new, r_new, f_new, l_new = [], [], [], []
        for i, text in enumerate(new_texts):
            counts = Counter(self.analyzer(text))
            l_new.append(sum(counts.values()))
            for term, c in counts.items():
                tid = self.vocab.get(term)
                if tid is None:
                    tid = self.vocab[term] = len(self.vocab)
                t_new.append(tid)
                r_new.append(first + i)
                f_new.append(c)
        terms.append(np.asarray(t_new, dtype=np.int64))
        rows.append(np.asarray(r_new, dtype=np.int64))
        tfs.append(np.asarray(f_new, dtype=np.float32))
        lengths.append(np.asarray(l_new, dtype=np.float32))

        term_all = np.concatenate(terms)
        order = np.lexsort((np.concatenate(rows), term_all))
        self.rows = np.concatenate(rows)[order].astype(np.int32)
        self.tf = np.concatenate(tfs)[order].astype(np.float32)
        self.indptr = np.zeros(len(self.vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_all, minlength=len(self.vocab)), out=self.indptr[1:])
        self.doc_len = np.concatenate(lengths).astype(np.float32)
        self._norm = None

    def build(self, texts: Iterable[str]) -> BM25:
        self.vocab = {}
        self.indptr = np.zeros(1, dtype=np.int64)
        self.rows = np.zeros(0, dtype=np.int32)
        self.tf = np.zeros(0, dtype=np.float32)
        self.doc_len = np.zeros(0, dtype=np.float32)
        self.update(None, list(texts))
        return self

    # -- scoring ---------------------------------------------------------------------------

    def _query_terms(self, query: str) -> list[int]:
        seen: dict[int, None] = {}
        for term in self.analyzer(query):
            tid = self.vocab.get(term)
            if tid is not None:
                seen.setdefault(tid)
        return list(seen)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (0 where no term matches)."""
        n = len(self.doc_len)
        out = np.zeros(n, dtype=np.float32)
        if n == 0:
            return out
        norm = self._length_norm()
        for tid in self._query_terms(query):
            lo, hi = self.indptr[tid], self.indptr[tid + 1]
            if hi == lo:
                continue
            rows, tf = self.rows[lo:hi], self.tf[lo:hi]
            df = hi - lo
            idf = np.log1p((n - df + 0.5) / (df + 0.5))
            out[rows] += idf * tf * (self.k1 + 1.0) / (tf + norm[rows])
        return out

    def _length_norm(self) -> np.ndarray:
        """``k1 * (1 - b + b * len / avg_len)`` per row, cached until the rows change."""
        if getattr(self, "_norm", None) is None or len(self._norm) != len(self.doc_len):
            avg = float(self.doc_len.mean()) if len(self.doc_len) else 1.0
            self._norm = (self.k1 * (1.0 - self.b + self.b * self.doc_len / (avg or 1.0))).astype(np.float32)
        return self._norm

    def matched_terms(self, query: str, text: str) -> list[str]:
        """Query words (as typed) whose index term occurs in ``text``: why BM25 liked it."""
        text_terms = set(self.analyzer(text))
        return [w for w, terms in self._query_words(query) if any(t in text_terms for t in terms)]

    def _query_words(self, query: str) -> list[tuple[str, list[str]]]:
        """Each distinct query word with its index terms, analysed once per query, not per hit."""
        cached = getattr(self, "_last_query", None)
        if cached is None or cached[0] != query:
            words = dict.fromkeys(_TOKEN.findall(query))
            cached = (query, [(w, self.analyzer(w)) for w in words])
            self._last_query = cached
        return cached[1]

    # -- persistence -----------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        terms = [""] * len(self.vocab)
        for term, tid in self.vocab.items():
            terms[tid] = term
        (folder / "bm25.json").write_text(
            json.dumps({"settings": self.settings(), "terms": terms}, ensure_ascii=False), encoding="utf-8"
        )
        arrays = {"indptr": self.indptr, "rows": self.rows, "tf": self.tf, "doc_len": self.doc_len}
        for name, arr in arrays.items():
            np.save(folder / f"bm25.{name}.npy", arr, allow_pickle=False)
        return ["bm25.json"] + [f"bm25.{name}.npy" for name in arrays]

    @classmethod
    def load(cls, folder: Path) -> BM25:
        meta = json.loads((folder / "bm25.json").read_text(encoding="utf-8"))
        s = meta["settings"]
        bm = cls(k1=s["k1"], b=s["b"], analyzer=Analyzer(stemmer=s["stemmer"], stopwords=s["stopwords"]))
        bm.vocab = {term: i for i, term in enumerate(meta["terms"])}
        for name in ("indptr", "rows", "tf", "doc_len"):
            setattr(bm, name, np.load(folder / f"bm25.{name}.npy", allow_pickle=False))
        bm._norm = None
        return bm
