"""Kept for compatibility: answer metrics now live in :mod:`ragbook.eval.metrics`, reports in :mod:`ragbook.eval.answers`."""

from __future__ import annotations

from ragbook.eval.answers import AnswerReport, evaluate_answers, score_answer, summarize
from ragbook.eval.metrics import (
    MIN_GOLD_F1,
    answer_text,
    contains_answer,
    exact_match,
    is_abstention,
    is_correct,
    normalize_answer,
    token_f1,
)

__all__ = ["normalize_answer", "exact_match", "token_f1", "contains_answer", "is_abstention", "answer_text",
           "is_correct", "score_answer", "evaluate_answers", "AnswerReport", "summarize", "MIN_GOLD_F1"]
