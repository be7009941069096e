"""Optional second stage: a cross-encoder reads (query, passage) pairs and rescores the top hits.

No reranker weights ship with ragbook (none are packaged for offline use); point it at a local
cross-encoder folder, e.g. one saved from ``cross-encoder/ms-marco-MiniLM-L6-v2`` on a machine
with network access.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ragbook.errors import ModelNotFoundError, SettingsError

__all__ = ["Reranker"]


class Reranker:
    """A sentence-transformers ``CrossEncoder`` loaded from a folder (or hub name where online)."""

    def __init__(self, model: str | os.PathLike[str], *, device: str | None = None, batch_size: int = 32,
                 max_length: int | None = None) -> None:
        if not isinstance(model, (str, os.PathLike)) or not os.fspath(model).strip():
            raise SettingsError(f"a reranker is a local cross-encoder folder (or a hub name where online), not {model!r}")
        for name, value in (("batch_size", batch_size), ("max_length", max_length)):
            if (value is not None or name == "batch_size") and not _whole(value):
                raise SettingsError(f"{name} must be a whole number of at least 1, not {value!r}")
        path = Path(model).expanduser()
        self.name = str(path.resolve()) if path.is_dir() else os.fspath(model)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model: Any = None

    def __repr__(self) -> str:
        return f"Reranker(name={self.name!r}, device={self.device!r})"

    @property
    def model(self) -> Any:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            kwargs: dict[str, Any] = {"device": self.device}
            if self.max_length:
                kwargs["max_length"] = self.max_length
            try:
                self._model = CrossEncoder(self.name, **kwargs)
            except OSError as exc:
                raise ModelNotFoundError(
                    f"cannot load the reranker {self.name!r}: {exc}. Give the path of a local cross-encoder folder."
                ) from exc
        return self._model

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One relevance score per passage (higher is better)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        scores = self.model.predict([(query, p) for p in passages], batch_size=self.batch_size,
                                    show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(len(passages), -1)[:, -1]


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
