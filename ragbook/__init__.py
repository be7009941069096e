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
    "RagbookError": "ragbook.errors",
    "SettingsError": "ragbook.errors",
    "TemplateError": "ragbook.errors",
    "LoadError": "ragbook.errors",
    "IndexLockedError": "ragbook.errors",
    "ModelNotFoundError": "ragbook.errors",
    "BundleError": "ragbook.errors",
    "LLMError": "ragbook.errors",
    "LLMTimeoutError": "ragbook.errors",
    "DataFormatError": "ragbook.errors",
    "MissingDependencyError": "ragbook.errors",
    "NotFoundError": "ragbook.errors",
    "MagicError": "ragbook.errors",
    "ServerError": "ragbook.errors",
    "connect": "ragbook.remote",
    "load": ("ragbook.assistant", "load_assistant"),
    "load_documents": ("ragbook.loaders", "load"),
    "load_file": "ragbook.loaders",
    "discover": "ragbook.loaders",
    "register_loader": "ragbook.loaders",
    "Chunker": "ragbook.chunking",
    "Embedder": "ragbook.embedding",
    "Index": "ragbook.index",
    "BuildReport": "ragbook.index",
    "IndexFormatError": "ragbook.errors",
    "ModelMismatchError": "ragbook.errors",
    "build": "ragbook.index",
    "open_index": "ragbook.index",
    "Retriever": "ragbook.retrieval",
    "RetrievalConfig": "ragbook.settings",
    "AssistantConfig": "ragbook.settings",
    "Results": "ragbook.retrieval",
    "Hit": "ragbook.retrieval",
    "DocumentResults": "ragbook.retrieval",
    "DocumentHit": "ragbook.retrieval",
    "Reranker": "ragbook.rerank",
    "config": "ragbook.progress",
    "set_progress": "ragbook.progress",
    "Assistant": "ragbook.assistant",
    "Answer": "ragbook.answer",
    "Template": "ragbook.prompt",
    "TEMPLATES": "ragbook.prompt",
    "load_llm": "ragbook.llm",
    "list_models": "ragbook.llm",
    "QASet": "ragbook.eval.datasets",
    "load_qa": "ragbook.eval.datasets",
    "evaluate_qa_retrieval": "ragbook.eval.retrieval",
    "evaluate_answers": "ragbook.eval.answers",
    "compare": "ragbook.eval.grid",
}

# the public surface, pinned by tests/test_import.py
__all__ = ["__version__", "Answer", "Assistant", "AssistantConfig", "BuildReport", "BundleError", "Chunk", "Chunker",
    "DataFormatError", "Document", "DocumentHit", "DocumentResults", "Embedder", "Hit", "Index", "IndexFormatError",
    "IndexLockedError", "LLMError", "LLMTimeoutError", "LoadError", "MagicError", "MissingDependencyError",
    "ModelMismatchError", "ModelNotFoundError", "NotFoundError", "QASet", "RagbookError", "Reranker", "Results",
    "RetrievalConfig", "Retriever", "Segment", "ServerError", "SettingsError", "Template", "TemplateError", "TEMPLATES", "build",
    "compare", "config", "connect", "discover", "evaluate_answers", "evaluate_qa_retrieval", "list_models", "load",
    "load_documents", "load_file", "load_llm", "load_qa", "open_index", "register_loader", "set_progress"]


def __getattr__(name: str):
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'ragbook' has no attribute {name!r}")
    module, attr = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's hook: %load_ext ragbook
    from ragbook.magics import load_ipython_extension as load

    load(ipython)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ragbook.answer import Answer
    from ragbook.assistant import Assistant
    from ragbook.assistant import load_assistant as load
    from ragbook.chunking import Chunker
    from ragbook.documents import Chunk, Document, Segment
    from ragbook.embedding import Embedder
    from ragbook.errors import (
        BundleError,
        DataFormatError,
        IndexFormatError,
        IndexLockedError,
        LLMError,
        LLMTimeoutError,
        LoadError,
        MagicError,
        MissingDependencyError,
        ModelMismatchError,
        ModelNotFoundError,
        NotFoundError,
        RagbookError,
        SettingsError,
        TemplateError,
    )
    from ragbook.eval.answers import evaluate_answers
    from ragbook.eval.datasets import QASet, load_qa
    from ragbook.eval.grid import compare
    from ragbook.eval.retrieval import evaluate_qa_retrieval
    from ragbook.index import BuildReport, Index, build, open_index
    from ragbook.llm import list_models, load_llm
    from ragbook.loaders import discover, load_file, register_loader
    from ragbook.loaders import load as load_documents
    from ragbook.progress import config, set_progress
    from ragbook.prompt import TEMPLATES, Template
    from ragbook.rerank import Reranker
    from ragbook.retrieval import DocumentHit, DocumentResults, Hit, Results, Retriever
    from ragbook.settings import AssistantConfig, RetrievalConfig
