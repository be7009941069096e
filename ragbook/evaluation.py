"""Retrieval evaluation: BEIR-style data sets, the standard IR metrics, and ragbook run over them.

>>> data = load_beir("scifact")                      # corpus.jsonl, queries.jsonl, qrels/test.tsv
>>> index = index_beir(data.corpus)                 # each document becomes one ragbook Document
>>> evaluate_retrieval(index, data.queries, data.qrels, k=10, mode="hybrid")["ndcg@10"]

The metrics follow trec_eval as BEIR and MTEB call it through pytrec_eval: nDCG uses the
relevance grade itself as gain (not ``2**rel - 1``) with a ``log2(rank + 1)`` discount and the
ideal ranking of every judged document; a document counts as relevant for recall, MRR and hit
rate when its grade is above 0.  Retrieval returns chunks; a document ranks where its best
chunk ranks (its score is the max over its chunks).

The same metrics on question sets a teacher writes (CSV/JSONL: question, source, page,
answer), answer metrics without a judge model (exact match, token F1, citation precision,
abstention) and grids of configurations are importable from here too; they live in
:mod:`ragbook.qa`, :mod:`ragbook.answer_metrics` and :mod:`ragbook.grid`.
"""

from __future__ import annotations

import json
import logging
import math
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, cast

import numpy as np

from ragbook.errors import DataFormatError, NotFoundError, SettingsError

if TYPE_CHECKING:
    from ragbook.answer_metrics import (
        AnswerReport,
        contains_answer,
        evaluate_answers,
        exact_match,
        is_abstention,
        normalize_answer,
        token_f1,
    )
    from ragbook.documents import Document
    from ragbook.embedding import Embedder
    from ragbook.grid import Comparison, compare
    from ragbook.index import Index
    from ragbook.qa import QAItem, QASet, RetrievalReport, evaluate_qa_retrieval, load_qa

__all__ = [
    "BeirData", "load_beir", "beir_documents", "index_beir", "evaluate_retrieval", "rank_documents",
    "ndcg_at_k", "recall_at_k", "mrr_at_k", "hit_rate_at_k", "PROTOCOLS", "queries_cached",
    # teacher question sets, answers and configuration grids (ragbook.qa, ragbook.answer_metrics, ragbook.grid)
    "QAItem", "QASet", "load_qa", "evaluate_qa_retrieval", "RetrievalReport",
    "normalize_answer", "exact_match", "token_f1", "contains_answer", "is_abstention", "evaluate_answers",
    "AnswerReport", "compare", "Comparison",
]

log = logging.getLogger(__name__)

PROTOCOLS = ("chunked", "mteb")


@dataclass
class BeirData:
    """A retrieval test set: documents, queries, and which documents answer which query.

    ``answers`` holds answer strings per query where the set has them (SQuAD), else is empty.
    """

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    answers: dict[str, list[str]] = field(default_factory=dict)
    name: str = ""
    split: str = ""

    def __repr__(self) -> str:
        judged = sum(1 for q in self.qrels if q in self.queries)
        return (f"BeirData(name={self.name!r}, split={self.split!r}, documents={len(self.corpus)}, "
                f"queries={len(self.queries)}, judged_queries={judged}, "
                f"judgments={sum(len(r) for r in self.qrels.values())})")

    def sample(self, n: int | None, seed: int = 0) -> BeirData:
        """The same corpus with at most ``n`` judged queries, picked at random but reproducibly."""
        judged = [q for q in self.qrels if q in self.queries]
        if n is None or n >= len(judged):
            return self
        picked = sorted(np.random.default_rng(seed).choice(len(judged), n, replace=False).tolist())
        keep = [judged[i] for i in picked]
        return BeirData(self.corpus, {q: self.queries[q] for q in keep}, {q: self.qrels[q] for q in keep},
                        {q: self.answers[q] for q in keep if q in self.answers}, self.name, self.split)


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(f"{path}, line {number}: not JSON ({exc.msg})") from exc


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < 3 or not line.strip():
                continue
            if number == 1 and not parts[-1].lstrip("-").isdigit():
                continue  # the header: query-id corpus-id score
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[-1]))
            except ValueError as exc:
                raise DataFormatError(f"{path}, line {number}: expected 'query-id<TAB>corpus-id<TAB>score'") from exc
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Read a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

    Also reads a SQuAD-style folder (``corpus.jsonl`` + ``questions.jsonl`` with ``id``,
    ``question``, ``answers``, ``is_impossible``, ``gold_doc_ids``): only answerable
    questions are kept, each with its gold paragraphs at relevance 1; ``split`` is ignored.
    """
    root = Path(folder).expanduser()
    if not (root / "corpus.jsonl").is_file():
        raise NotFoundError(f"{root}: no corpus.jsonl; expected a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    corpus = {str(d["_id"]): {"title": d.get("title") or "", "text": d.get("text") or ""}
              for d in _read_jsonl(root / "corpus.jsonl")}
    if (root / "qrels").is_dir():
        path = root / "qrels" / f"{split}.tsv"
        if not path.is_file():
            found = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
            raise NotFoundError(f"{root}: no qrels/{split}.tsv; splits here: {', '.join(found) or 'none'}")
        queries = {str(q["_id"]): q["text"] for q in _read_jsonl(root / "queries.jsonl")}
        return BeirData(corpus, queries, _read_qrels(path), name=root.name, split=split)
    if (root / "questions.jsonl").is_file():
        queries, qrels, answers = {}, {}, {}
        for q in _read_jsonl(root / "questions.jsonl"):
            if q.get("is_impossible") or not q.get("gold_doc_ids"):
                continue
            qid = str(q["id"])
            queries[qid] = q["question"]
            qrels[qid] = {str(d): 1 for d in q["gold_doc_ids"]}
            answers[qid] = list(q.get("answers", []))
        return BeirData(corpus, queries, qrels, answers, name=root.name, split="answerable")
    raise NotFoundError(f"{root}: found corpus.jsonl but neither qrels/ (BEIR) nor questions.jsonl (SQuAD-style)")


# -- metrics ----------------------------------------------------------------------------------


def _top(ranked: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct ids (a repeated id would count twice otherwise)."""
    if k < 1:
        raise SettingsError(f"k must be at least 1, not {k}")
    out: dict[str, None] = {}
    for doc in ranked:
        out.setdefault(doc)
        if len(out) == k:
            break
    return list(out)


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains (the grade itself), ``log2(rank + 1)`` discount, ideal from the judgments."""
    dcg = sum(max(relevant.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(_top(ranked, k)))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Share of the relevant documents (grade > 0) found in the top ``k``."""
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted.intersection(_top(ranked, k))) / len(wanted) if wanted else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document in the top ``k`` (0 if none)."""
    for i, d in enumerate(_top(ranked, k)):
        if relevant.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def hit_rate_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """1.0 if any relevant document is in the top ``k``, else 0.0."""
    return 1.0 if mrr_at_k(ranked, relevant, k) > 0 else 0.0


_METRICS = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k, "hit": hit_rate_at_k}


def rank_documents(scored_chunks: Iterable[tuple[str, float]]) -> list[str]:
    """Document ids by their best chunk's score, best first (ties keep first-seen order)."""
    best: dict[str, float] = {}
    for doc, score in scored_chunks:
        if doc not in best or score > best[doc]:
            best[doc] = score
    return sorted(best, key=lambda d: -best[d])  # sorted() is stable


# -- running ragbook over a test set -------------------------------------------------------------


def beir_documents(corpus: Mapping[str, Mapping[str, str]]) -> list[Document]:
    """One Document per corpus entry: ``title + " " + text``, stripped (as MTEB joins them)."""
    from ragbook.documents import Document

    return [Document(text=(d.get("title", "") + " " + d.get("text", "")).strip(), source=doc_id,
                     title=d.get("title", "")) for doc_id, d in corpus.items()]


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
            per_query[qid] = {f"{name}@{k}": fn(ranked, qrels[qid], k) for name, fn in _METRICS.items()}
    means = {f"{name}@{k}": float(np.mean([v[f"{name}@{k}"] for v in per_query.values()])) if per_query else 0.0
             for name in _METRICS}
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


# Question sets, answer metrics and grids live in their own modules; they are importable from
# here too, so that ``from ragbook.evaluation import ...`` reaches every evaluation tool.
_ELSEWHERE = {
    **dict.fromkeys(("QAItem", "QASet", "load_qa", "evaluate_qa_retrieval", "RetrievalReport"), "ragbook.qa"),
    **dict.fromkeys(("normalize_answer", "exact_match", "token_f1", "contains_answer", "is_abstention",
                     "evaluate_answers", "AnswerReport"), "ragbook.answer_metrics"),
    **dict.fromkeys(("compare", "Comparison"), "ragbook.grid"),
}


def __getattr__(name: str) -> Any:
    if name in _ELSEWHERE:
        import importlib

        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module 'ragbook.evaluation' has no attribute {name!r}")
