"""Kept for compatibility: configuration grids now live in :mod:`ragbook.eval.grid`."""

from __future__ import annotations

from ragbook.eval.grid import ANSWER_KEYS, ANSWER_METRICS, INDEX_KEYS, RETRIEVAL_METRICS, Comparison, compare

__all__ = ["compare", "Comparison", "INDEX_KEYS", "ANSWER_KEYS", "RETRIEVAL_METRICS", "ANSWER_METRICS"]
