"""Kept for compatibility: question sets now live in :mod:`ragbook.eval.datasets`, scoring in :mod:`ragbook.eval.retrieval`."""

from __future__ import annotations

from ragbook.eval.datasets import QAItem, QASet, load_qa, source_matches
from ragbook.eval.report import Report, format_table
from ragbook.eval.retrieval import RetrievalReport, evaluate_qa_retrieval, ranked_targets

__all__ = ["QAItem", "QASet", "load_qa", "evaluate_qa_retrieval", "RetrievalReport", "source_matches", "format_table",
           "ranked_targets", "Report"]
