"""Kept for compatibility: evaluation now lives in :mod:`ragbook.eval` (metrics, datasets, retrieval, answers, grid)."""

from __future__ import annotations

from ragbook.eval.answers import AnswerReport, evaluate_answers
from ragbook.eval.datasets import BeirData, QAItem, QASet, beir_documents, load_beir, load_qa
from ragbook.eval.grid import Comparison, compare
from ragbook.eval.metrics import (
    contains_answer,
    exact_match,
    hit_rate_at_k,
    is_abstention,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    recall_at_k,
    token_f1,
)
from ragbook.eval.retrieval import (
    PROTOCOLS,
    RetrievalReport,
    evaluate_qa_retrieval,
    evaluate_retrieval,
    index_beir,
    queries_cached,
    rank_documents,
)

__all__ = [
    "BeirData", "load_beir", "beir_documents", "index_beir", "evaluate_retrieval", "rank_documents",
    "ndcg_at_k", "recall_at_k", "mrr_at_k", "hit_rate_at_k", "PROTOCOLS", "queries_cached",
    "QAItem", "QASet", "load_qa", "evaluate_qa_retrieval", "RetrievalReport",
    "normalize_answer", "exact_match", "token_f1", "contains_answer", "is_abstention", "evaluate_answers",
    "AnswerReport", "compare", "Comparison",
]
