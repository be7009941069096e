"""Retrieval: dense, BM25 and hybrid search, filters, MMR, reranking, and the reasons for each hit.

Every :class:`Hit` keeps the numbers that put it where it is: its dense similarity and rank,
its BM25 score and rank, its calibrated relevance (0..1, comparable across queries: see
:class:`Retriever`), and what rank fusion, reranking or MMR did to it.  Ranks are 1-based
positions among the candidates by that score alone.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ragbook._display import Markup, highlight, html_escape, html_table, shorten, text_table, timed
from ragbook._listing import Listing
from ragbook.documents import Chunk
from ragbook.errors import MissingDependencyError, SettingsError
from ragbook.filters import check_filters, check_whole, filter_mask, location_ok
from ragbook.grouping import DocumentHit, DocumentResults, group_by_source, nth_source
from ragbook.settings import FUSIONS, MODES, RETRIEVAL_KEYS, RetrievalConfig
from ragbook.vectors import top_n as _top

if TYPE_CHECKING:
    from ragbook.index import Index
    from ragbook.rerank import Reranker

__all__ = ["Retriever", "SearchIndex", "Results", "Hit", "DocumentResults", "DocumentHit", "MODES", "FUSIONS"]


@dataclass
class Hit:
    """One retrieved passage, with the evidence for its place in the list.

    ``score`` is what the list is ordered by; ``relevance`` is the same passage's calibrated
    relevance in 0..1, comparable across queries (what ``min_score`` and an assistant's
    abstention read).  With weighted fusion (the default), dense or BM25 search they are equal;
    after reciprocal-rank fusion or a reranker, ``score`` is that method's own number.
    """

    chunk: Chunk
    score: float
    rank: int
    relevance: float | None = None
    dense_score: float | None = None
    dense_rank: int | None = None
    bm25_score: float | None = None
    bm25_relevance: float | None = None
    bm25_rank: int | None = None
    weight: float | None = None
    fused_score: float | None = None
    rerank_score: float | None = None
    rank_before_rerank: int | None = None
    mmr_penalty: float | None = None
    rank_before_mmr: int | None = None
    matched_terms: list[str] = field(default_factory=list)
    also_in: list[Chunk] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def source(self) -> str:
        return self.chunk.source

    @property
    def page(self) -> int | None:
        return self.chunk.page

    def citation(self) -> str:
        return self.chunk.citation()

    def explain(self) -> str:
        """Why this passage came back, in one line.

        e.g. ``relevance 0.59 = 0.5 × dense 0.67 + 0.5 × bm25 0.51; dense 0.667 (#1); bm25 19.16 (#1) on grace,
        days -> 0.51``: the calibrated relevance and how it was made, then each side's own number and rank.
        """
        parts = []
        if self.relevance is not None:
            formula = ""
            if self.weight is not None and self.dense_score is not None and self.bm25_relevance is not None:
                formula = (f" = {self.weight:g} × dense {max(self.dense_score, 0.0):.2f}"
                           f" + {1 - self.weight:g} × bm25 {self.bm25_relevance:.2f}")
            parts.append(f"relevance {self.relevance:.2f}{formula}")
        if self.dense_score is not None:
            parts.append(f"dense {self.dense_score:.3f} (#{self.dense_rank})")
        if self.bm25_score is not None:
            terms = f" on {', '.join(self.matched_terms)}" if self.matched_terms else ""
            rank = f" (#{self.bm25_rank})" if self.bm25_rank is not None else " (no query word)"
            share = f" -> {self.bm25_relevance:.2f}" if self.bm25_relevance is not None else ""
            parts.append(f"bm25 {self.bm25_score:.2f}{rank}{terms}{share}")
        if self.fused_score is not None and self.fused_score != self.relevance:
            parts.append(f"rank fusion {self.fused_score:.4f}")
        if self.rerank_score is not None:
            parts.append(f"reranked {self.rerank_score:.3f} (was #{self.rank_before_rerank})")
        if self.mmr_penalty is not None:
            parts.append(f"mmr redundancy {self.mmr_penalty:.2f} (was #{self.rank_before_mmr})")
        if self.also_in:
            parts.append(f"also in {len(self.also_in)} other place(s)")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("rank", "score", "relevance", "dense_score", "dense_rank", "bm25_score",
                                               "bm25_relevance", "bm25_rank", "weight", "fused_score", "rerank_score",
                                               "rank_before_rerank", "mmr_penalty", "rank_before_mmr")}
        out.update(self.chunk.to_dict())
        out["text"] = self.text
        out["citation"] = self.citation()
        out["matched_terms"] = self.matched_terms
        if self.also_in:
            out["also_in"] = [c.to_dict() for c in self.also_in]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        """The hit :meth:`to_dict` describes (as a server sends it); unknown keys are ignored."""
        keys = ("relevance", "dense_score", "dense_rank", "bm25_score", "bm25_relevance", "bm25_rank", "weight",
                "fused_score", "rerank_score", "rank_before_rerank", "mmr_penalty", "rank_before_mmr")
        numbers: dict[str, Any] = {k: data.get(k) for k in keys}
        also = [Chunk.from_dict("", c) for c in data.get("also_in") or [] if isinstance(c, dict) and "source" in c]
        return cls(chunk=Chunk.from_dict(str(data.get("text", "")), data), score=float(data.get("score") or 0.0),
                   rank=int(data.get("rank") or 0), matched_terms=list(data.get("matched_terms") or []), also_in=also,
                   **numbers)

    def __repr__(self) -> str:
        return f"Hit(rank={self.rank}, score={self.score:.4f}, {self.citation()!r}, text={shorten(self.text, 50)!r})"

    def _repr_html_(self) -> str:
        return Results(query="", hits=[self])._repr_html_()


@dataclass
class Results(Listing[Hit]):
    """The hits of one search, best first; iterable, indexable, and displayable."""

    _items = "hits"

    query: str
    hits: list[Hit]
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_pandas(self) -> Any:
        try:
            import pandas as pd
        except ImportError as exc:
            raise MissingDependencyError("Results.to_pandas needs pandas: pip install pandas") from exc
        return pd.DataFrame([h.to_dict() for h in self.hits])

    def __repr__(self) -> str:
        ms = self.timings.get("total", 0.0) * 1000
        top = f", top={self.hits[0].citation()!r}" if self.hits else ""
        return (f"Results(query={shorten(self.query, 40)!r}, hits={len(self.hits)}, mode={self.settings.get('mode')!r}{top}, "
                f"ms={ms:.1f})")

    def to_table(self, width: int = 100) -> str:
        """A plain-text table: rank, score, source, page, snippet."""
        rows = [("#", "score", "source", "page", "passage")]
        for h in self.hits:
            loc = h.page if h.page is not None else (f"cell {h.chunk.cell}" if h.chunk.cell is not None else
                                                    f"slide {h.chunk.slide}" if h.chunk.slide is not None else "")
            rows.append((str(h.rank), f"{h.score:.4f}", h.source, str(loc), shorten(h.text, 10_000)))
        return text_table(rows, right=(0, 1, 3), width=width, caps={2: 40})

    def _repr_html_(self) -> str:
        rows = []
        for h in self.hits:
            passage = highlight(shorten(h.text, 600), h.matched_terms)
            rows.append([h.rank, f"{h.score:.4f}", h.citation(), Markup(passage), h.explain()])
        head = ""
        if self.query:
            ms = self.timings.get("total", 0.0) * 1000
            head = (f"<div><b>{len(self.hits)} results</b> for <q>{html_escape(self.query)}</q> "
                    f"<small>({html_escape(self.settings.get('mode', ''))}, {ms:.0f} ms)</small></div>")
        return f"<div class='ragbook-results'>{head}{html_table(['#', 'score', 'source', 'passage', 'why'], rows)}</div>"


@runtime_checkable
class SearchIndex(Protocol):
    """What a :class:`Retriever` needs from an index (:class:`ragbook.index.Index` is one)."""

    bm25: Any  # ragbook.lexical.BM25
    files: dict[str, dict[str, Any]]  # what filters on document metadata read

    @property
    def vectors(self) -> Any: ...  # ragbook.vectors.VectorStore

    def __len__(self) -> int: ...

    def embed_query(self, query: str) -> Any: ...

    def locations(self, row: int) -> list[Chunk]: ...

    def text(self, row: int) -> str: ...


class Retriever:
    """Search settings over an :class:`~ragbook.index.Index`.

    ``Retriever(index, k=3, mode="bm25")`` or ``Retriever(index, config)``: the settings are a
    :class:`~ragbook.settings.RetrievalConfig` (``retriever.config``), also readable and
    assignable one by one (``retriever.k = 3``, checked at once).

    mode: ``"hybrid"`` (dense + BM25), ``"dense"`` or ``"bm25"``.
    fusion: ``"weighted"`` (the default: on SQuAD 2.0 nDCG@10 0.915 against 0.884 for RRF,
      0.892 for BM25 and 0.811 for dense) or ``"rrf"`` (reciprocal-rank fusion).
    weight: share of the dense side in fusion (0..1).
    candidates: how deep each side looks before fusion.
    mmr: ``None`` for plain ranking, or MMR's lambda in 0..1 (1 = relevance only).
    filters: ``{"source": "notes/*.md", "page": (3, 10), "format": "pdf", ...}``; a value may
      be a glob (text), a value, a ``(low, high)`` range, a list of those, or a function of the
      value; ``"where"`` takes a function of the chunk.  Keys are a chunk's location (source,
      page, cell, section, title, doc_id), ``format``, and any document-metadata key the index
      holds.  A filter that could match nothing (an unknown key, a reversed range, a page given
      as text...) is a :class:`~ragbook.errors.SettingsError`, not an empty result.
    min_score: drop hits whose ``relevance`` is below it (0..1).
    reranker: a :class:`~ragbook.rerank.Reranker` or a local cross-encoder folder; it rescores
      the top ``rerank_depth`` candidates.

    **Scores.**  Each hit's ``relevance`` is in 0..1 and means the same for every query and
    every mode, so one threshold fits all:

    - dense: the cosine similarity of query and passage (negative counts as 0);
    - BM25: ``1 - exp(-bm25 / full)``, where ``full`` is what a passage of average length with
      every query term once would score (the sum of the terms' idf; a term the index has never
      seen counts with the highest idf).  Such a passage scores 0.63, one with half the query's
      weight 0.39, and made-up words 0 however BM25 ranks them;
    - hybrid: ``weight * dense + (1 - weight) * bm25`` of those two.

    With weighted fusion, dense or BM25 search the list is ordered by this relevance (``score ==
    relevance``); with RRF by the rank-fusion number, and after a reranker by its score, while ``relevance`` keeps
    the calibrated value.  It separates real questions from nonsense, and ranks as well as the
    min-max fusion it replaced, which gave every query's top hit a score near 1.0, nonsense
    included (figures: benchmarks/README.md, "Why the defaults").
    """

    # the settings, read from and written to self.config (see _setting below)
    k: int
    mode: str
    fusion: str
    weight: float
    rrf_k: int
    candidates: int
    mmr: float | None
    filters: dict[str, Any] | None
    min_score: float | None
    rerank_depth: int

    def __init__(self, index: Index, config: RetrievalConfig | None = None, **settings: Any) -> None:
        if not isinstance(index, SearchIndex):
            raise SettingsError(f"a Retriever searches an Index (ragbook.Index, or anything with its search methods), "
                                f"not {type(index).__name__}")
        self.index = index
        self._reranker: Any = None
        config = config or RetrievalConfig()
        if "reranker" in settings:  # a Reranker object is kept as it is; its config records its name
            reranker = settings.pop("reranker")
            if reranker is not None and not isinstance(reranker, (str, os.PathLike)):
                if not callable(getattr(reranker, "score", None)):
                    raise SettingsError(f"reranker must be a Reranker, a local cross-encoder folder or None, "
                                        f"not {type(reranker).__name__}")
                self._reranker = reranker
                settings["reranker"] = getattr(reranker, "name", None)
            else:
                settings["reranker"] = None if reranker is None else str(reranker)
        self.config = config.replace(**settings) if settings else config
        if self._reranker is None and self.config.reranker is not None:
            from ragbook.rerank import Reranker

            self._reranker = Reranker(self.config.reranker)
        check_filters(self.config.filters, index)

    @property
    def reranker(self) -> Reranker | None:
        return self._reranker

    @reranker.setter
    def reranker(self, value: Any) -> None:
        other = Retriever(self.index, self.config, reranker=value)
        self.config, self._reranker = other.config, other._reranker

    def copy(self, index: Index | None = None, **changes: Any) -> Retriever:
        """Another retriever with some settings changed (on another index, if given)."""
        reranker = changes.pop("reranker", self._reranker)  # the loaded one, not loaded again
        return Retriever(index if index is not None else self.index, self.config.replace(**changes), reranker=reranker)

    def settings(self) -> dict[str, Any]:
        """The settings as a dict (filters as given, the reranker by name)."""
        return {key: getattr(self.config, key) for key in RETRIEVAL_KEYS}

    def __repr__(self) -> str:
        s = self.settings()
        return "Retriever(" + ", ".join(f"{k}={v!r}" for k, v in s.items() if v is not None) + ")"

    def search(self, query: str, **overrides: Any) -> Results:
        """The top ``k`` passages for ``query``; keyword arguments override settings for this call."""
        if overrides:
            return self._overridden(overrides).search(query)
        self._check_query(query)
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        allowed = filter_mask(self.index, self.filters) if self.filters else None
        if len(self.index) == 0 or (allowed is not None and not allowed.any()):
            return Results(query, [], self.settings(), {"total": time.perf_counter() - t_start})
        depth = max(self.candidates, self.k * (4 if self.mmr is not None else 1),
                    self.rerank_depth if self.reranker is not None else 0)
        sides = self._sides(query, allowed, timings)
        entries = self._fuse(query, sides, *sides.candidates(depth, timings), timings)
        if self.reranker is not None and entries:
            with timed(timings, "rerank"):
                entries = self._rerank(query, entries, self.reranker)
        if self.mmr is not None and entries:
            with timed(timings, "mmr"):
                entries = self._mmr(entries, float(self.mmr))
        hits = [self._hit(query, e, rank) for rank, e in enumerate(entries[: self.k], start=1)]
        timings["total"] = time.perf_counter() - t_start
        return Results(query, hits, self.settings(), timings)

    def search_documents(self, query: str, k: int | None = None, passages: int = 3, **overrides: Any) -> DocumentResults:
        """The ``k`` documents (source files) that best match ``query``, each with its best ``passages`` passages.

        Which papers (or lectures) talk about X: the passages are ranked as by :meth:`search`
        (mode, filters, ``min_score`` and the reranker apply), then grouped by file; a file's
        place is its best passage's.  A passage found in two files counts for both.  ``k``
        defaults to the retriever's; MMR does not apply (the documents are distinct already).
        The query is embedded once.  If the ``candidates`` best passages of each side come from
        fewer than ``k`` files, or a passage left out could still outrank the ``k``-th file, more
        are drawn from the same scores (so on a flat index the files are the exact top ``k`` by
        relevance; with RRF, until ``k`` files are found).  Each file's ``passages`` are its best
        among those candidates.
        """
        if overrides:
            return self._overridden(overrides).search_documents(query, k, passages)
        k = self.k if k is None else k
        check_whole("k", k, 1)
        check_whole("passages", passages, 1)
        self._check_query(query)
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        settings = {**self.settings(), "k": k, "passages": passages, "mmr": None}
        allowed = filter_mask(self.index, self.filters) if self.filters else None
        if len(self.index) == 0 or (allowed is not None and not allowed.any()):
            return DocumentResults(query, [], settings, {"total": time.perf_counter() - t_start})
        sides = self._sides(query, allowed, timings)
        filters = self.filters
        keep = (lambda c: location_ok(c, filters)) if filters else None
        depth = max(self.candidates, k * passages, self.rerank_depth if self.reranker is not None else 0)
        while True:
            dense, lexical = sides.candidates(depth, timings)
            complete = sides.complete(depth, self.mode)
            outside = 0.0 if complete else sides.outside_bound(query, dense, lexical, depth, self.mode, self.weight)
            entries = self._fuse(query, sides, dense, lexical, timings)
            if complete or (self.min_score is not None and outside < self.min_score):
                break  # every passage that can come back is among the candidates
            at = nth_source((self.index.locations(e["row"]) for e in entries), keep, k)
            # k files found and, where the order is by relevance, no passage left out could rank above the k-th
            if at is not None and ((self.mode == "hybrid" and self.fusion == "rrf") or entries[at]["relevance"] >= outside):
                break
            depth *= 4
        if self.reranker is not None and entries:
            with timed(timings, "rerank"):
                entries = self._rerank(query, entries, self.reranker)
        with timed(timings, "group"):
            ranked = ((self.index.locations(e["row"]), partial(self._hit, query, e, rank))
                      for rank, e in enumerate(entries, start=1))
            documents = group_by_source(ranked, k, passages, keep)
        timings["total"] = time.perf_counter() - t_start
        return DocumentResults(query, documents, settings, timings)

    # -- the steps of a search -----------------------------------------------------------------

    def _overridden(self, overrides: dict[str, Any]) -> Retriever:
        return self.copy(**overrides)

    def _check_query(self, query: Any) -> None:
        if not isinstance(query, str) or not query.strip():
            raise SettingsError("the query is empty: type a question or some keywords")

    def _sides(self, query: str, allowed: np.ndarray | None, timings: dict[str, float]) -> _Sides:
        """What a search computes once: the query's vector and every passage's BM25 score."""
        qvec = bm25_all = None
        if self.mode in ("dense", "hybrid"):
            with timed(timings, "embed"):
                qvec = self.index.embed_query(query)
        if self.mode in ("bm25", "hybrid"):
            with timed(timings, "bm25"):
                bm25_all = self.index.bm25.scores(query)
                if allowed is not None:
                    bm25_all = np.where(allowed, bm25_all, 0.0)
        return _Sides(self.index, allowed, qvec, bm25_all)

    def _fuse(self, query: str, sides: _Sides, dense: dict[int, float], lexical: dict[int, float],
              timings: dict[str, float]) -> list[dict[str, Any]]:
        """Score every candidate on both sides and fuse: entries best first, ``min_score`` applied."""
        t = time.perf_counter()
        index = self.index
        cand = np.array(sorted(set(dense) | set(lexical)), dtype=np.int64)
        if len(cand) == 0:
            return []
        d_scores = d_rank = d_rel = b_scores = b_rank = b_rel = fused = None
        relevance: np.ndarray
        final: np.ndarray
        if sides.qvec is not None:
            missing = [r for r in cand.tolist() if r not in dense]
            dense.update(zip(missing, index.vectors.scores_for(sides.qvec, np.array(missing, dtype=np.int64)).tolist()))
            d_scores = np.array([dense[r] for r in cand.tolist()], dtype=np.float64)
            d_rank = _ranks(d_scores)
            # relevance: 0..1 and comparable across queries (see the class docstring); min_score reads it
            d_rel = np.clip(np.nan_to_num(d_scores), 0.0, 1.0)
            relevance, final = d_rel, d_scores
        if sides.bm25_all is not None:
            b_scores = sides.bm25_all[cand].astype(np.float64)
            b_rank = _ranks(b_scores)
            b_rel = bm25_relevance(b_scores, sides.full_match(query))
            relevance = final = b_rel
            if d_rel is not None and d_rank is not None:  # hybrid mode: _sides searched both sides
                relevance = self.weight * d_rel + (1 - self.weight) * b_rel
                if self.fusion == "rrf":
                    # a passage sharing no word with the query has no BM25 rank to reward
                    lexical_part = np.where(b_scores > 0, (1 - self.weight) / (self.rrf_k + b_rank), 0.0)
                    fused = self.weight / (self.rrf_k + d_rank) + lexical_part
                else:
                    fused = relevance
                final = fused
        order = np.argsort(-final, kind="stable")
        if self.min_score is not None:
            order = order[relevance[order] >= self.min_score]

        weight = self.weight if self.mode == "hybrid" else None
        entries = [
            {"row": int(cand[i]), "score": float(final[i]), "relevance": float(relevance[i]), "weight": weight,
             "dense_score": None if d_scores is None else float(d_scores[i]),
             "dense_rank": None if d_rank is None else int(d_rank[i]),
             "bm25_score": None if b_scores is None else float(b_scores[i]),
             "bm25_relevance": None if b_rel is None else float(b_rel[i]),
             "bm25_rank": None if b_rank is None or b_scores is None or b_scores[i] <= 0 else int(b_rank[i]),
             "fused_score": None if fused is None else float(fused[i])}
            for i in order
        ]
        timings["fuse"] = timings.get("fuse", 0.0) + time.perf_counter() - t
        return entries

    def _rerank(self, query: str, entries: list[dict[str, Any]], reranker: Reranker) -> list[dict[str, Any]]:
        head, tail = entries[: self.rerank_depth], entries[self.rerank_depth :]
        scores = np.asarray(reranker.score(query, [self.index.text(e["row"]) for e in head]), dtype=np.float64)
        if scores.shape != (len(head),):
            raise SettingsError(f"the reranker {getattr(reranker, 'name', reranker)!r} gave {scores.size} scores "
                                f"for {len(head)} passages; it must give one number per passage")
        scores = np.nan_to_num(scores, nan=-np.inf)  # a passage the model could not score goes last, not first
        for pos, (e, s) in enumerate(zip(head, scores), start=1):
            e["rank_before_rerank"] = pos
            e["rerank_score"] = e["score"] = float(s)
        head.sort(key=lambda e: -e["rerank_score"])
        return head + tail

    def _mmr(self, entries: list[dict[str, Any]], lam: float) -> list[dict[str, Any]]:
        """Maximal marginal relevance: trade relevance against similarity to passages already picked."""
        pool = entries[: max(self.k * 4, 20)]
        rel = _minmax(np.array([e["score"] for e in pool], dtype=np.float64))
        vecs = np.asarray(self.index.vectors.vectors[np.array([e["row"] for e in pool])], dtype=np.float64)
        sims = vecs @ vecs.T
        chosen: list[int] = []
        penalty = np.zeros(len(pool))
        left = list(range(len(pool)))
        while left and len(chosen) < self.k:
            if chosen:
                penalty = sims[:, chosen].max(axis=1)
            best = max(left, key=lambda i: lam * rel[i] - (1 - lam) * (penalty[i] if chosen else 0.0))
            pool[best]["mmr_penalty"] = float(penalty[best]) if chosen else 0.0
            pool[best]["rank_before_mmr"] = best + 1
            chosen.append(best)
            left.remove(best)
        return [pool[i] for i in chosen]

    def _hit(self, query: str, e: dict[str, Any], rank: int) -> Hit:
        row = e.pop("row")
        locs = self.index.locations(row)
        if self.filters:
            ok = [c for c in locs if location_ok(c, self.filters)]
            locs = ok + [c for c in locs if c not in ok]
        terms = self.index.bm25.matched_terms(query, self.index.text(row)) if self.mode != "dense" else []
        return Hit(chunk=locs[0], rank=rank, matched_terms=terms, also_in=locs[1:], **e)


# -- helpers --------------------------------------------------------------------------------


@dataclass
class _Sides:
    """What one search computes once: the query's vector (dense side) and every passage's BM25 score.

    Candidates are drawn from them at any depth without embedding the query again.
    """

    index: Index
    allowed: np.ndarray | None
    qvec: np.ndarray | None
    bm25_all: np.ndarray | None
    _full: float | None = None

    def candidates(self, depth: int, timings: dict[str, float]) -> tuple[dict[int, float], dict[int, float]]:
        """Each side's best ``depth`` rows with their scores (BM25: only rows sharing a word with the query)."""
        dense: dict[int, float] = {}
        lexical: dict[int, float] = {}
        if self.qvec is not None:
            with timed(timings, "dense"):
                rows, scores = self.index.vectors.search(self.qvec, depth, self.allowed)
                dense = dict(zip(rows.tolist(), scores.tolist()))
        if self.bm25_all is not None:
            with timed(timings, "bm25"):
                top = _top(self.bm25_all, depth)
                top = top[self.bm25_all[top] > 0]
                lexical = dict(zip(top.tolist(), self.bm25_all[top].tolist()))
        return dense, lexical

    def full_match(self, query: str) -> float:
        if self._full is None:
            self._full = bm25_full_match(self.index.bm25, query)
        return self._full

    @property
    def _rows(self) -> int:
        return int(self.allowed.sum()) if self.allowed is not None else len(self.index)

    @property
    def _lexical_rows(self) -> int:
        return int(np.count_nonzero(self.bm25_all)) if self.bm25_all is not None else 0

    def complete(self, depth: int, mode: str) -> bool:
        """Whether ``depth`` candidates a side hold every passage this mode could return."""
        return depth >= (self._lexical_rows if mode == "bm25" else self._rows)

    def outside_bound(self, query: str, dense: dict[int, float], lexical: dict[int, float], depth: int, mode: str,
                      weight: float) -> float:
        """The highest relevance a passage outside these candidates can have.

        It ranks below the last candidate on each side, so neither side's share can be more
        than that candidate's (exact for a flat index or with filters, approximate otherwise).
        """
        d = b = 0.0  # a side whose candidates are all its rows leaves nothing out
        if depth < self._rows:  # (an approximate index may find none: then nothing is known)
            d = float(np.clip(min(dense.values()), 0.0, 1.0)) if dense else 1.0
        if depth < self._lexical_rows:
            b = float(bm25_relevance(np.array([min(lexical.values())]), self.full_match(query))[0]) if lexical else 1.0
        return d if mode == "dense" else b if mode == "bm25" else weight * d + (1 - weight) * b


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score among all of them (ties share the better rank order by position)."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def bm25_full_match(bm25: Any, query: str) -> float:
    """The BM25 score of a passage of average length that holds each query term once: the sum of their idf.

    A term the index has never seen counts with the highest idf, so a query of made-up words
    cannot be matched, and one real word among them matches only its share.
    """
    n = len(bm25)
    total = 0.0
    for term in dict.fromkeys(bm25.analyzer(query)):
        tid = bm25.vocab.get(term)
        df = 0 if tid is None else int(bm25.indptr[tid + 1] - bm25.indptr[tid])
        total += math.log1p((n - df + 0.5) / (df + 0.5))
    return total


def bm25_relevance(scores: np.ndarray, full_match: float) -> np.ndarray:
    """BM25 scores on a 0..1 scale shared by every query: ``1 - exp(-score / full_match)``.

    A passage with every query term once scores 0.63, one with half the query's weight 0.39,
    more occurrences or a shorter passage up to 0.89; the order of the passages is kept.
    """
    if full_match <= 0:  # only stop words: nothing to match
        return np.zeros_like(scores)
    return -np.expm1(-scores / full_match)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    return np.ones_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


def _setting(name: str) -> property:
    def get(self: Retriever) -> Any:
        return getattr(self.config, name)

    def set_(self: Retriever, value: Any) -> None:
        config = self.config.replace(**{name: value})  # checked here, at once
        if name == "filters":
            check_filters(value, self.index)
        self.config = config

    return property(get, set_, doc=f"the ``{name}`` setting (see RetrievalConfig)")


for _name in RETRIEVAL_KEYS:
    if _name != "reranker":
        setattr(Retriever, _name, _setting(_name))
