"""BM25 over chunk texts, with postings in flat numpy arrays that save without pickle.

Analysis follows the usual English setup (Lucene's ``english`` analyzer, used for the BEIR
BM25 baselines): lower-case Unicode words, a short stop list, Snowball stemming (PyStemmer).
Text is first normalised as loaded documents are (:func:`ragbook.loaders.unicode.normalize`).
Chinese, Japanese and Korean runs, which have no spaces, are indexed as character bigrams.

Postings are stored term-major: for term ``t`` its rows are ``rows[indptr[t]:indptr[t+1]]``
with term frequencies ``tf[...]``.  Rows can be removed and added without re-tokenizing the
rows that stay, which keeps index updates cheap.
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ragbook._files import release_pages
from ragbook.errors import IndexFormatError
from ragbook.loaders.unicode import normalize
from ragbook.storage import BM25_SETTINGS, SchemaError, list_of, record, string, validate

__all__ = ["BM25", "Analyzer"]

# Lucene's English stop set (the one Elasticsearch's "english" analyzer uses).
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
    # what is left of possessives and contractions once apostrophes split words
    + ["s", "t"]
)

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
# Longer "words" are dropped (Lucene's maxTokenLength): a 100,000-character run in one file
# would otherwise be a term, bloat bm25.json and exceed what a saved index may hold.
MAX_TERM_CHARS = 255
# What a word of a passage's context line (title > section) counts for, against 1 for a word of
# the passage: a title says what the whole passage is about (BM25F weighs such fields 2-3x).
CONTEXT_TF = 2
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
        # the folding loaded documents get, so that a query typed in full-width forms, with a
        # ligature or a decomposed accent finds them; pure ASCII costs one check
        words = _TOKEN.findall(normalize(text).lower())
        out: list[str] = []
        for word in words:
            if _CJK.search(word):  # CJK runs become bigrams, whatever their length
                out.extend(term for term in _cjk_terms(word) if len(term) <= MAX_TERM_CHARS)
            elif len(word) > MAX_TERM_CHARS:
                continue  # base64 or a hash, never typed in a query: as in Lucene, not a term
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

    def update(self, keep: np.ndarray | None, new_texts: Sequence[str], contexts: Sequence[str] | None = None) -> None:
        """Keep rows where ``keep`` is true (renumbered in order) and append ``new_texts``.

        ``contexts`` (one per new text: the line that names its document and section) are
        indexed with their text, as part of the same passage, each word counting
        :data:`CONTEXT_TF` times.
        """
        n_old = len(self.doc_len)
        keep = np.ones(n_old, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
        # kept postings, renumbered: still term-major, rows increasing within a term
        mask = keep[self.rows] if len(self.rows) else np.zeros(0, dtype=bool)
        old_terms = np.repeat(np.arange(len(self.indptr) - 1, dtype=np.int32), np.diff(self.indptr))[mask]
        old_rows = (np.cumsum(keep, dtype=np.int64) - 1).astype(np.int32)[self.rows[mask]]
        old_tf = self.tf[mask]
        lengths = self.doc_len[keep]

        # New postings go into typed arrays (12 bytes each): Python lists of ints cost ~10x
        # that, which for a 200 MB text file was gigabytes.
        first = len(lengths)
        t_new, r_new, f_new, l_new = array("i"), array("i"), array("f"), array("f")
        vocab = self.vocab
        for i, text in enumerate(new_texts):
            counts = Counter(self.analyzer(text))
            if contexts is not None and contexts[i]:
                for term in self.analyzer(contexts[i]):
                    counts[term] += CONTEXT_TF
            l_new.append(sum(counts.values()))
            for term, c in counts.items():
                tid = vocab.get(term)
                if tid is None:
                    tid = vocab[term] = len(vocab)
                t_new.append(tid)
                f_new.append(c)
            r_new.extend([first + i] * len(counts))

        term_all = np.concatenate([old_terms, np.frombuffer(t_new, dtype=np.intc)]).astype(np.int32, copy=False)
        del old_terms, t_new
        # old postings come first and every new row is after every old one, so a stable sort
        # by term alone leaves rows increasing within each term
        order = np.argsort(term_all, kind="stable")
        self.indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_all, minlength=len(vocab)), out=self.indptr[1:])
        del term_all
        self.rows = np.concatenate([old_rows, np.frombuffer(r_new, dtype=np.intc)]).astype(np.int32, copy=False)[order]
        del old_rows, r_new
        self.tf = np.concatenate([old_tf, np.frombuffer(f_new, dtype=np.float32)]).astype(np.float32, copy=False)[order]
        self.doc_len = np.concatenate([lengths, np.frombuffer(l_new, dtype=np.float32)]).astype(np.float32, copy=False)
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
        norm: np.ndarray | None = getattr(self, "_norm", None)
        if norm is None or len(norm) != len(self.doc_len):
            avg = float(self.doc_len.mean()) if len(self.doc_len) else 1.0
            norm = self._norm = (self.k1 * (1.0 - self.b + self.b * self.doc_len / (avg or 1.0))).astype(np.float32)
        return norm

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
            np.save(folder / f"bm25.{name}.npy", np.asarray(arr, dtype=_DTYPES[name]), allow_pickle=False)
        return list(FILES)

    @classmethod
    def load(cls, folder: Path) -> BM25:
        """Read what :meth:`save` wrote, checked for consistency (a tampered file is an IndexFormatError)."""
        try:
            meta = json.loads((folder / "bm25.json").read_bytes().decode("utf-8"))
            validate(meta, _META_SCHEMA)
        except (ValueError, RecursionError, SchemaError) as exc:
            raise IndexFormatError(f"{folder}: bm25.json is damaged ({exc}); rebuild the index") from None
        s = meta["settings"]
        try:
            analyzer = Analyzer(stemmer=s["stemmer"], stopwords=s["stopwords"])
        except KeyError:  # PyStemmer's answer to an unknown language
            raise IndexFormatError(f"{folder}: bm25.json names an unknown stemmer {s['stemmer']!r}; rebuild the index") from None
        bm = cls(k1=s["k1"], b=s["b"], analyzer=analyzer)
        bm.vocab = {term: i for i, term in enumerate(meta["terms"])}
        if len(bm.vocab) != len(meta["terms"]):
            raise IndexFormatError(f"{folder}: bm25.json lists a term twice; rebuild the index")
        for name, dtype in _DTYPES.items():
            try:  # the postings are memory-mapped: a search reads the pages of its own terms only
                arr = np.load(folder / f"bm25.{name}.npy", allow_pickle=False, mmap_mode="r" if name in _MAPPED else None)
            except (OSError, ValueError) as exc:
                raise IndexFormatError(f"{folder}: bm25.{name}.npy cannot be read ({exc}); rebuild the index") from None
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
                raise IndexFormatError(f"{folder}: bm25.{name}.npy holds {getattr(arr, 'dtype', '?')} values in "
                                       f"{getattr(arr, 'ndim', '?')} dimensions, not a list of {dtype}; rebuild the index")
            setattr(bm, name, arr)
        problem = _postings_problem(len(bm.vocab), bm.indptr, bm.rows, bm.tf, bm.doc_len)
        if problem:
            raise IndexFormatError(f"{folder}: the BM25 arrays are inconsistent ({problem}); rebuild the index")
        for name in _MAPPED:
            release_pages(getattr(bm, name))  # the check read every posting; a search reads its own terms'
        bm._norm = None
        return bm


FILES = ("bm25.json", "bm25.indptr.npy", "bm25.rows.npy", "bm25.tf.npy", "bm25.doc_len.npy")
_MAPPED = ("indptr", "rows", "tf")  # the large arrays (one entry per posting or term), read in place
_DTYPES: dict[str, np.dtype[Any]] = {"indptr": np.dtype(np.int64), "rows": np.dtype(np.int32),
                                     "tf": np.dtype(np.float32), "doc_len": np.dtype(np.float32)}
_META_SCHEMA = record({"settings": BM25_SETTINGS, "terms": list_of(string(max_length=10_000))})


def _postings_problem(n_terms: int, indptr: np.ndarray, rows: np.ndarray, tf: np.ndarray,
                      doc_len: np.ndarray) -> str | None:
    """What is wrong with a set of postings, or None: every check scoring relies on (O(postings))."""
    n_docs, nnz = len(doc_len), len(rows)
    if len(indptr) != n_terms + 1:
        return f"{len(indptr)} offsets for {n_terms} terms"
    if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
        return "term offsets are not increasing from 0 to the number of postings"
    if len(tf) != nnz:
        return f"{len(tf)} term frequencies for {nnz} postings"
    if nnz and (rows.min() < 0 or rows.max() >= n_docs):
        return f"a posting names a passage outside 0..{n_docs - 1}"
    if not (np.all(np.isfinite(tf)) and np.all(tf > 0)):
        return "a term frequency is not a positive number"
    if not (np.all(np.isfinite(doc_len)) and np.all(doc_len >= 0)):
        return "a passage length is negative or not a number"
    # within a term, rows are strictly increasing (a repeated row would count twice)
    starts = np.zeros(nnz, dtype=bool)
    starts[indptr[:-1][indptr[:-1] < nnz]] = True
    if nnz > 1 and not np.all((np.diff(rows.astype(np.int64)) > 0) | starts[1:]):
        return "a term's passages are not in increasing order"
    # a passage's length is the sum of its term frequencies
    if not np.allclose(np.bincount(rows, weights=tf, minlength=n_docs), doc_len, rtol=1e-5, atol=1e-3):
        return "passage lengths disagree with the term frequencies"
    return None
