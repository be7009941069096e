"""Retrieval evaluation: ragbook run over a BEIR-style set or a teacher's question set, and scored.

>>> data = load_beir("scifact")                      # corpus.jsonl, queries.jsonl, qrels/test.tsv
>>> index = index_beir(data.corpus)                 # each document becomes one ragbook Document
>>> evaluate_retrieval(index, data.queries, data.qrels, k=10, mode="hybrid")["ndcg@10"]

>>> evaluate_qa_retrieval(index, load_qa("questions.csv"), k=5)   # hit@5, recall@5, MRR@5, nDCG@5
RetrievalReport(questions=2, k=5, mode='hybrid', hit@5=1.0, recall@5=1.0, mrr@5=0.75, ndcg@5=0.8155)

The metrics are :mod:`ragbook.eval.metrics`' (trec_eval's, as BEIR and MTEB compute them).
On a BEIR set, retrieval returns chunks; a document ranks where its best chunk ranks (its
score is the max over its chunks).

On a question set, retrieval is scored on the ``k`` passages retrieved, in order.  A passage
is relevant to an expected source when its source matches it (and its page is one of the
pages, when given); each expected source counts once, at the first passage that matches it.
With that ranking, the formulas are the standard ones: hit@k (a relevant passage in the top
k), recall@k (share of the expected sources found), MRR@k, and nDCG@k with binary gains.
Questions without a source, and unanswerable ones, are not scored.
"""

from __future__ import annotations

import logging
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, cast

import numpy as np

from ragbook._display import html_escape, html_table, shorten
from ragbook.errors import SettingsError
from ragbook.eval.datasets import QAItem, QASet, beir_documents, load_qa, pages_text
from ragbook.eval.metrics import RANKING_METRICS, hit_rate_at_k, mrr_at_k, ndcg_at_k, recall_at_k
from ragbook.eval.report import Report, summary_text

if TYPE_CHECKING:
    from ragbook.documents import Document
    from ragbook.embedding import Embedder
    from ragbook.index import Index

__all__ = ["evaluate_retrieval", "rank_documents", "index_beir", "PROTOCOLS", "queries_cached",
           "evaluate_qa_retrieval", "ranked_targets", "RetrievalReport"]

log = logging.getLogger(__name__)

PROTOCOLS = ("chunked", "mteb")


def rank_documents(scored_chunks: Iterable[tuple[str, float]]) -> list[str]:
    """Document ids by their best chunk's score, best first (ties keep first-seen order)."""
    best: dict[str, float] = {}
    for doc, score in scored_chunks:
        if doc not in best or score > best[doc]:
            best[doc] = score
    return sorted(best, key=lambda d: -best[d])  # sorted() is stable


# -- running ragbook over a BEIR-style set -------------------------------------------------------


def index_beir(corpus: Mapping[str, Mapping[str, str]], model: Any = None, *, protocol: str = "chunked",
               **index_settings: Any) -> Index:
    """An :class:`~ragbook.index.Index` of ``corpus`` (a :attr:`BeirData.corpus`).

    ``protocol="chunked"`` indexes documents as ragbook does any text (``chunk_size``,
    ``overlap`` apply).  ``protocol="mteb"`` reproduces how MTEB scores an embedding model:
    each document is cut to the tokens the model reads (its first ``max_tokens`` word pieces,
    what sentence-transformers' truncation keeps) and embedded whole as one chunk with no
    context line (the text already starts with the title), searched exactly (flat index).
    """
    from ragbook.embedding import DEFAULT_MODEL, Embedder, EmbeddingModel
    from ragbook.index import Index

    if protocol not in PROTOCOLS:
        raise SettingsError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    embedder = model if isinstance(model, EmbeddingModel) else Embedder(model or DEFAULT_MODEL)
    documents = beir_documents(corpus)
    if protocol == "mteb":
        fixed = {"chunk_size": embedder.max_tokens, "overlap": 0, "index_type": "flat", "context": False}
        clash = [k for k in fixed if k in index_settings and index_settings[k] != fixed[k]]
        if clash:
            raise SettingsError(f"protocol='mteb' fixes {', '.join(clash)}; leave them out")
        index_settings.update(fixed)
    index = Index(embedder, **index_settings)
    if protocol == "mteb":
        documents = _truncate(documents, index.chunker.tokenizer, index.chunk_size)
    index.add_documents(documents)
    return index


def _truncate(documents: list[Document], tokenizer: Any, limit: int) -> list[Document]:
    """Each document cut after its ``limit``-th token (character offsets of the model's tokenizer)."""
    from ragbook.documents import Document

    encodings = tokenizer.encode_batch([d.text for d in documents], add_special_tokens=False)
    out = []
    for doc, enc in zip(documents, encodings):
        if len(enc.offsets) > limit:
            doc = Document(text=doc.text[: enc.offsets[limit - 1][1]], source=doc.source, title=doc.title)
        out.append(doc)
    return out


# Query vectors per embedder object, so sweeps over settings embed each query once.
_QUERY_VECTORS: weakref.WeakKeyDictionary[Any, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


class _CachedQueries:
    """Stands in for an index's embedder during an evaluation: query vectors come from a batch."""

    def __init__(self, inner: Any, vectors: dict[str, np.ndarray]) -> None:
        self._inner = inner
        self._vectors = vectors

    def encode_queries(self, texts: Sequence[str] | str) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._inner.encode_queries(missing)))
        return np.stack([self._vectors[t] for t in texts])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _query_vectors(embedder: Any, texts: list[str]) -> dict[str, np.ndarray]:
    try:
        cache = _QUERY_VECTORS.setdefault(embedder, {})
    except TypeError:  # not weak-referenceable: cache for this run only
        cache = {}
    missing = list(dict.fromkeys(t for t in texts if t not in cache))
    if missing:
        cache.update(zip(missing, embedder.encode_queries(missing)))
    return cache


@contextmanager
def queries_cached(index: Index, texts: Sequence[str]) -> Iterator[None]:
    """Inside the block, ``index`` embeds these queries once per embedder (for sweeps over settings)."""
    inner = index.embedder
    if texts:
        # a duck-typed stand-in, as Index takes any model with the embedder's methods
        index.embedder = cast("Embedder", _CachedQueries(inner, _query_vectors(inner, list(texts))))
    try:
        yield
    finally:
        index.embedder = inner


def _doc_ids(hits: Iterable[Any]) -> list[str]:
    """Document ids in hit order; a passage stored once for several documents credits them all."""
    out: dict[str, None] = {}
    for hit in hits:
        for chunk in (hit.chunk, *hit.also_in):
            out.setdefault(chunk.source)
    return list(out)


def evaluate_retrieval(index: Index, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                       k: int = 10, *, ignore_identical_ids: bool = True, **retriever_settings: Any) -> dict[str, Any]:
    """Search every judged query and score the document ranking; returns the metric means.

    Keys: ``ndcg@k``, ``recall@k``, ``mrr@k``, ``hit@k`` (means over the judged queries),
    ``queries`` (how many), ``seconds``, ``settings`` (the retriever's), and ``per_query``
    (``{query_id: {metric: value}}``).  Documents are the chunks' ``source``; as many chunks
    are retrieved as it takes to rank ``k`` distinct documents.  ``ignore_identical_ids``
    drops a document whose id is the query's own (as BEIR and MTEB do; it matters for ArguAna).
    Queries with no document of grade > 0 are skipped, as are judgments for unknown queries.
    """
    started = time.perf_counter()
    retriever = index.retriever(k=k, **retriever_settings)
    judged = [q for q, rel in qrels.items() if q in queries and any(g > 0 for g in rel.values())]
    skipped = sum(1 for q in qrels if q not in judged)
    if skipped:
        log.info("%d of %d judged queries skipped (unknown query or no relevant document)", skipped, len(qrels))
    per_query: dict[str, dict[str, float]] = {}
    with queries_cached(index, [queries[q] for q in judged] if retriever.mode != "bm25" else []):
        for qid in judged:
            ranked = _rank(retriever, queries[qid], k, qid if ignore_identical_ids else None, len(index))
            per_query[qid] = {f"{name}@{k}": fn(ranked, qrels[qid], k) for name, fn in RANKING_METRICS.items()}
    means = {f"{name}@{k}": float(np.mean([v[f"{name}@{k}"] for v in per_query.values()])) if per_query else 0.0
             for name in RANKING_METRICS}
    settings = {key: value for key, value in retriever.settings().items() if key != "k"}
    return {**means, "queries": len(per_query), "seconds": time.perf_counter() - started, "settings": settings,
            "per_query": per_query}


def _rank(retriever: Any, query: str, k: int, exclude: str | None, total: int) -> list[str]:
    """At least ``k`` distinct documents for ``query`` (fewer only if the index runs out)."""
    depth = k + (exclude is not None)
    while True:
        hits = retriever.search(query, k=depth).hits
        docs = [d for d in _doc_ids(hits) if d != exclude]
        if len(docs) >= k or len(hits) < depth or depth >= total:
            return docs[:k]
        depth = min(depth * 2, total)


# -- retrieval on a question set -------------------------------------------------------------------


def _retriever(target: Any, k: int | None, settings: Mapping[str, Any]) -> Any:
    """A Retriever for an Index or an Assistant (its own settings, overridden by ``settings``)."""
    from ragbook.retrieval import Retriever

    base = getattr(target, "retriever", None)
    if isinstance(base, Retriever):
        changes = dict(settings)
        if k is not None:
            changes["k"] = k
        return base.copy(**changes) if changes else base
    from ragbook.index import Index

    if not isinstance(target, Index):
        raise SettingsError(f"expected an Index or an Assistant, not {type(target).__name__}")
    return Retriever(target, k=k or 5, **settings)


def ranked_targets(item: QAItem, hits: Iterable[Any]) -> list[str]:
    """One id per retrieved passage: the expected source it is the first to match, else ``#rank``.

    With these ids as the ranking and each expected source as a relevant id, the standard
    formulas score what the module's docstring describes.
    """
    targets = item.targets()
    found: set[str] = set()
    ranked = []
    for rank, hit in enumerate(hits, start=1):
        places = (hit.chunk, *getattr(hit, "also_in", ()))
        new = next((t for t in targets if t not in found and any(item.matches(c, t) for c in places)), None)
        if new is None:
            ranked.append(f"#{rank}")
        else:
            found.add(new)
            ranked.append(new)
    return ranked


def evaluate_qa_retrieval(target: Any, questions: QASet | str | Path, k: int | None = None, *,
                          limit: int | None = None, seed: int = 0, **retriever_settings: Any) -> RetrievalReport:
    """Search every question that names a source and score the passages retrieved.

    ``target`` is an :class:`~ragbook.index.Index` (hybrid, k=5 unless told) or an
    :class:`~ragbook.assistant.Assistant` (its retrieval settings); ``k`` and keyword
    arguments (``mode=``, ``fusion=``, ``weight=``...) override them.  ``limit`` evaluates a
    reproducible sample of that many questions (``seed``).
    """
    from ragbook.progress import progress

    qa = questions if isinstance(questions, QASet) else load_qa(questions)
    qa = qa.sample(limit, seed)
    started = time.perf_counter()
    retriever = _retriever(target, k, retriever_settings)
    k = retriever.k
    judged = [q for q in qa if q.judged]
    if len(judged) < len(qa):
        log.info("%d of %d questions not scored for retrieval (unanswerable, or no source or page given)",
                 len(qa) - len(judged), len(qa))
    rows = []
    texts = [q.question for q in judged] if retriever.mode != "bm25" else []
    with queries_cached(retriever.index, texts):
        for item in progress(judged, desc="Searching", unit="question", min_total=50):
            hits = list(retriever.search(item.question))
            ranked = ranked_targets(item, hits)
            relevant = {t: 1 for t in item.targets()}
            first = next((h for h in hits if item.matches(h.chunk) or any(item.matches(c) for c in h.also_in)), None)
            rows.append({"id": item.id, "question": item.question, "expected": _expected(item),
                         f"hit@{k}": hit_rate_at_k(ranked, relevant, k), f"recall@{k}": recall_at_k(ranked, relevant, k),
                         f"mrr@{k}": mrr_at_k(ranked, relevant, k), f"ndcg@{k}": ndcg_at_k(ranked, relevant, k),
                         "rank": first.rank if first is not None else None,
                         "top": hits[0].citation() if hits else ""})
    metrics = [f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg")]
    summary = {m: (sum(r[m] for r in rows) / len(rows) if rows else 0.0) for m in metrics}
    summary.update(questions=len(rows), k=k, seconds=round(time.perf_counter() - started, 3))
    settings = {key: value for key, value in retriever.settings().items() if value is not None and key != "filters"}
    log.info("retrieval on %s: %s", qa.name or "questions", ", ".join(f"{m} {summary[m]:.3f}" for m in metrics))
    return RetrievalReport(rows, summary, settings, qa.name)


def _expected(item: QAItem) -> str:
    where = " | ".join(item.sources)
    return where + (f", page {pages_text(item.pages)}" if item.pages else "")


@dataclass
class RetrievalReport(Report):
    """Per-question retrieval scores (``rows``) and their means (``summary``)."""

    @property
    def k(self) -> int:
        return int(self.summary["k"])

    def misses(self) -> list[dict[str, Any]]:
        """The questions whose expected source is not among the passages retrieved."""
        return [r for r in self.rows if not r[f"hit@{self.k}"]]

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "settings": self.settings, "rows": self.rows}

    def __repr__(self) -> str:
        k = self.k
        head = summary_text({"questions": self.summary["questions"], "k": k, "mode": self.settings.get("mode")},
                             ["questions", "k", "mode"])
        figures = summary_text(self.summary, [f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg")])
        return f"RetrievalReport({head}, {figures})"

    def _repr_html_(self) -> str:
        k = self.k
        metrics = [f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg")]
        head = ", ".join(f"{m} <b>{self.summary[m]:.3f}</b>" for m in metrics)
        rows = [[r["id"], shorten(r["question"], 100), r["expected"], r["rank"] or "missed", shorten(r["top"], 60),
                 f"{r[f'ndcg@{k}']:.3f}"] for r in self.rows[:50]]
        more = f"<div>… and {len(self.rows) - 50} more questions</div>" if len(self.rows) > 50 else ""
        title = html_escape(f"Retrieval on {self.name or 'the questions'}: {self.summary['questions']} questions, "
                            f"{self.settings.get('mode', '')}, k={k}")
        return (f"<div class='ragbook-report'><b>{title}</b><div>{head}</div>"
                + html_table(["id", "question", "expected", "first relevant rank", "top passage", f"ndcg@{k}"], rows)
                + more + "</div>")
