"""A fast stand-in for the embedding model, for tests about storage and bookkeeping.

Vectors are derived from a hash of the words, so equal texts get equal vectors and texts that
share words are similar; tests of search quality use the real model instead.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashEmbedder:
    name = "test/hash-embedder"
    normalize = True

    def __init__(self, dimension: int = 32) -> None:
        self.dimension = dimension
        self.tokenizer = None
        self.max_tokens = 10_000
        self.calls = 0
        self.embedded = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            h = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
            v[h % self.dimension] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode_documents(self, texts, *, show_progress=None):
        self.calls += 1
        self.embedded += len(texts)
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def encode_queries(self, texts):
        texts = [texts] if isinstance(texts, str) else texts
        return np.stack([self._vec(t) for t in texts])

    def fingerprint(self):
        return [round(float(x), 4) for x in self._vec("ragbook fingerprint")[:8]]

    def info(self):
        return {"model": self.name, "dimension": self.dimension, "normalize": True,
                "max_seq_length": self.max_tokens, "fingerprint": self.fingerprint()}
