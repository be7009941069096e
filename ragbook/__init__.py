"""ragbook: retrieval-augmented assistants over your own documents, on open models, offline.

``import ragbook`` is cheap: the heavy libraries (torch, sentence-transformers, faiss,
transformers) are imported only by the code that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access (PEP 562)
_EXPORTS = {
    "Document": "ragbook.documents",
    "Chunk": "ragbook.documents",
    "Segment": "ragbook.documents",
    "LoadError": "ragbook.documents",
    "load": "ragbook.loaders",
    "load_file": "ragbook.loaders",
    "discover": "ragbook.loaders",
    "register_loader": "ragbook.loaders",
    "Chunker": "ragbook.chunking",
    "Embedder": "ragbook.embedding",
    "Index": "ragbook.index",
    "BuildReport": "ragbook.index",
    "IndexFormatError": "ragbook.index",
    "ModelMismatchError": "ragbook.index",
    "build": "ragbook.index",
    "open_index": "ragbook.index",
    "Retriever": "ragbook.retrieval",
    "Results": "ragbook.retrieval",
    "Hit": "ragbook.retrieval",
    "Reranker": "ragbook.rerank",
    "config": "ragbook.progress",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragbook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ragbook.chunking import Chunker
    from ragbook.documents import Chunk, Document, LoadError, Segment
    from ragbook.embedding import Embedder
    from ragbook.index import BuildReport, Index, IndexFormatError, ModelMismatchError, build, open_index
    from ragbook.loaders import discover, load, load_file, register_loader
    from ragbook.progress import config
    from ragbook.rerank import Reranker
    from ragbook.retrieval import Hit, Results, Retriever
