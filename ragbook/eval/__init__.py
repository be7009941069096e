"""Evaluation: how well ragbook finds the passages, and how good its answers are, on data you choose.

One module per part, read in the order a run goes::

    metrics     the formulas, pure functions: nDCG/recall/MRR/hit@k, exact match, token F1, is_correct
    datasets    what to evaluate on: a teacher's question set (load_qa), a BEIR folder (load_beir)
    report      what every report shares: rows, figures, a table, to_pandas
    retrieval   ragbook's retrieval over a data set: evaluate_retrieval, evaluate_qa_retrieval
    answers     an assistant's answers over a question set: evaluate_answers
    grid        many configurations side by side: compare

>>> from ragbook.eval import load_qa, evaluate_qa_retrieval, compare
>>> evaluate_qa_retrieval(index, load_qa("questions.csv"), k=5)

Importing this package is cheap: a name is imported from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it; resolved on first access (PEP 562)
_EXPORTS = {
    **dict.fromkeys(("ndcg_at_k", "recall_at_k", "mrr_at_k", "hit_rate_at_k", "normalize_answer", "exact_match",
                     "token_f1", "contains_answer", "is_abstention", "answer_text", "is_correct"), "ragbook.eval.metrics"),
    **dict.fromkeys(("QAItem", "QASet", "load_qa", "source_matches", "BeirData", "load_beir", "beir_documents"),
                    "ragbook.eval.datasets"),
    **dict.fromkeys(("Report", "format_table"), "ragbook.eval.report"),
    **dict.fromkeys(("evaluate_retrieval", "rank_documents", "index_beir", "PROTOCOLS", "queries_cached",
                     "evaluate_qa_retrieval", "ranked_targets", "RetrievalReport"), "ragbook.eval.retrieval"),
    **dict.fromkeys(("score_answer", "summarize", "evaluate_answers", "AnswerReport"), "ragbook.eval.answers"),
    **dict.fromkeys(("compare", "Comparison"), "ragbook.eval.grid"),
}

# the public names, one module's to a line
__all__ = [
    "ndcg_at_k", "recall_at_k", "mrr_at_k", "hit_rate_at_k", "normalize_answer", "exact_match", "token_f1",
    "contains_answer", "is_abstention", "answer_text", "is_correct",
    "QAItem", "QASet", "load_qa", "source_matches", "BeirData", "load_beir", "beir_documents",
    "Report", "format_table",
    "evaluate_retrieval", "rank_documents", "index_beir", "PROTOCOLS", "queries_cached", "evaluate_qa_retrieval",
    "ranked_targets", "RetrievalReport",
    "score_answer", "summarize", "evaluate_answers", "AnswerReport",
    "compare", "Comparison",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragbook.eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ragbook.eval.answers import AnswerReport, evaluate_answers, score_answer, summarize
    from ragbook.eval.datasets import BeirData, QAItem, QASet, beir_documents, load_beir, load_qa, source_matches
    from ragbook.eval.grid import Comparison, compare
    from ragbook.eval.metrics import (
        answer_text,
        contains_answer,
        exact_match,
        hit_rate_at_k,
        is_abstention,
        is_correct,
        mrr_at_k,
        ndcg_at_k,
        normalize_answer,
        recall_at_k,
        token_f1,
    )
    from ragbook.eval.report import Report, format_table
    from ragbook.eval.retrieval import (
        PROTOCOLS,
        RetrievalReport,
        evaluate_qa_retrieval,
        evaluate_retrieval,
        index_beir,
        queries_cached,
        rank_documents,
        ranked_targets,
    )
