"""An assistant's settings as data: one definition that everything else reads.

:class:`RetrievalConfig` (how passages are found) and :class:`AssistantConfig` (how they are
answered from) are frozen dataclasses: each field has a type, a default and a description,
and is checked here, once, whether it comes from Python, a saved ``.ragbook`` file, the command
line, a panel or an evaluation grid.  ``to_dict``/``from_dict`` give the JSON a saved assistant
holds; ``from_dict`` refuses unknown keys and anything of the wrong kind, since a shared file is
untrusted input.

>>> from ragbook.settings import AssistantConfig, RetrievalConfig
>>> config = AssistantConfig(name="DATA 101", retrieval=RetrievalConfig(k=3, mode="bm25"))
>>> config.to_dict()["retrieval"]["k"]
3
"""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Literal, get_args

from ragbook.errors import SettingsError

__all__ = ["IndexConfig", "RetrievalConfig", "AssistantConfig", "Mode", "Fusion", "IndexType", "MODES", "FUSIONS",
           "INDEX_TYPES", "EXTRACTIVE", "ANSWER_PASSAGES", "PASSAGE_TOKENS", "INDEX_KEYS", "VECTOR_KEYS",
           "RETRIEVAL_KEYS", "ASSISTANT_KEYS", "describe"]

IndexType = Literal["auto", "flat", "hnsw", "ivf", "pq", "hnsw-pq", "ivf-pq"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)
Mode = Literal["hybrid", "dense", "bm25"]
Fusion = Literal["weighted", "rrf"]
MODES: tuple[str, ...] = get_args(Mode)
FUSIONS: tuple[str, ...] = get_args(Fusion)
# llm="extractive": answer with the documents' own sentences, no language model
EXTRACTIVE = "extractive"
MAX_TEXT = 4_096


def _doc(text: str, default: Any = MISSING, **limits: Any) -> Any:
    """A field with its description and limits (``low``/``high``; ``kind``: int, float, bool, str)."""
    return field(default=default, metadata={"doc": text, **limits})


def _check_field(name: str, value: Any, meta: dict[str, Any]) -> None:
    kind = meta.get("kind")
    if value is None and meta.get("optional"):
        return
    if kind is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{name} must be True or False, not {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise SettingsError(f"{name} must be a whole number, not {value!r}: {meta['doc']}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise SettingsError(f"{name} must be a finite number, not {value!r}: {meta['doc']}")
    elif kind is str:
        if not isinstance(value, str) or len(value) > meta.get("max_length", MAX_TEXT):
            raise SettingsError(f"{name} must be a text of at most {meta.get('max_length', MAX_TEXT):,} characters, "
                                f"not {type(value).__name__}")
    if "choices" in meta and value not in meta["choices"]:
        raise SettingsError(f"{name} must be one of {', '.join(meta['choices'])}, not {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise SettingsError(f"{name} must be {span}, not {value!r}: {meta['doc']}")


def _check_all(config: Any) -> None:
    for f in fields(config):
        if f.metadata.get("kind") is not None:
            _check_field(f.name, getattr(config, f.name), dict(f.metadata))


@dataclass(frozen=True)
class IndexConfig:
    """How documents become an index: chunking, the vector index and its tuning, BM25 (see :class:`ragbook.index.Index`)."""

    chunk_size: int = _doc("chunk size, in the embedding model's tokens", 200, kind=int, low=8, high=100_000)
    overlap: int = _doc("tokens shared by neighbouring chunks", 32, kind=int, low=0, high=100_000)
    context: bool = _doc("index each chunk with its document title and section path", True, kind=bool)
    index_type: IndexType = _doc("the vector index: auto (exact search, HNSW above `threshold` chunks, IVF-PQ above "
                                 "2M), flat, hnsw, "
                                 "ivf, or pq, hnsw-pq, ivf-pq for compressed vectors", "auto", kind=str,
                                 choices=INDEX_TYPES)
    threshold: int = _doc("chunks above which auto leaves exact search for HNSW", 100_000, kind=int, low=1,
                          high=10**10)
    hnsw_m: int = _doc("HNSW: links per vector (more: better recall, more memory)", 32, kind=int, low=2, high=512)
    ef_construction: int = _doc("HNSW: candidates weighed while building", 80, kind=int, low=1, high=10_000)
    ef_search: int = _doc("HNSW: candidates weighed per search (more: better recall, slower)", 96, kind=int, low=1,
                          high=10_000)
    nprobe: int | None = _doc("IVF: clusters searched per query (None: chosen from the index's size)", None, kind=int,
                              optional=True, low=1, high=1_000_000)
    pq_m: int | None = _doc("PQ: bytes per compressed vector (None: chosen from the dimension)", None, kind=int,
                            optional=True, low=1, high=4_096)
    refine: int = _doc("PQ: how many times k candidates are re-ranked with the full vectors", 10, kind=int, low=1,
                       high=1_000)
    bm25_k1: float = _doc("BM25's term-frequency saturation", 1.2, kind=float, low=0.0, high=10.0)
    bm25_b: float = _doc("BM25's length normalisation", 0.75, kind=float, low=0.0, high=1.0)
    stemmer: str | None = _doc("the Snowball stemmer's language for BM25, or None", "english", kind=str,
                               optional=True, max_length=40)

    def __post_init__(self) -> None:
        _check_all(self)
        if self.overlap >= self.chunk_size:
            raise SettingsError(f"overlap ({self.overlap}) must be smaller than chunk_size ({self.chunk_size})")

    def replace(self, **changes: Any) -> IndexConfig:
        _unknown(changes, INDEX_KEYS, "index")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        if not isinstance(data, dict):
            raise SettingsError(f"index settings must be a mapping, not {type(data).__name__}")
        _unknown(data, INDEX_KEYS, "index")
        return cls(**data)

    def vector_params(self) -> dict[str, Any]:
        """The vector index's own settings, as :class:`ragbook.vectors.VectorStore` takes them."""
        return {key: getattr(self, key) for key in VECTOR_KEYS}


# Passages an assistant puts in its prompt.  Fewer than a search shows: the model reads every
# one before its first word (on a CPU most of the wait), and measured with the default model
# 3 answer as well as 5 (benchmarks/trust.py: SQuAD 100 correct 0.61 either way, OpenStax 102
# 0.79 vs 0.82, within two questions of each other; false abstentions 0.05 either way) in 0.6x the time.
ANSWER_PASSAGES = 3
# Of each passage after the best, the model reads its sentences closest to the question up to this
# many tokens (ragbook.extractive.focus); the best passage, where most answers are, stays whole.
# Measured with the default model (benchmarks/trust.py, k=3): OpenStax 102 correct 0.82 vs 0.79
# with whole passages, confidently wrong 0.18 vs 0.17; SQuAD 100 correct 0.66 vs 0.61, confidently
# wrong 0.68 vs 0.69; 5.6 s vs 6.4 s and 5.8 s vs 8.7 s an answer.  96 tokens cut less time; every
# passage cut (the best too) changed the demo answer.
PASSAGE_TOKENS = 64


@dataclass(frozen=True)
class RetrievalConfig:
    """How passages are found for a question (see :class:`ragbook.retrieval.Retriever`)."""

    k: int = _doc("how many passages a search returns", 5, kind=int, low=1, high=1_000)
    mode: Mode = _doc("hybrid (dense + BM25), dense or bm25", "hybrid", kind=str, choices=MODES)
    fusion: Fusion = _doc("how hybrid search merges its two sides: weighted relevance or reciprocal ranks",
                          "weighted", kind=str, choices=FUSIONS)
    weight: float = _doc("the dense side's share in fusion", 0.5, kind=float, low=0.0, high=1.0)
    rrf_k: int = _doc("reciprocal-rank fusion's constant", 60, kind=int, low=1, high=100_000)
    candidates: int = _doc("how deep each side looks before fusion", 50, kind=int, low=1, high=100_000)
    mmr: float | None = _doc("MMR's lambda (1 = relevance only), or None for plain ranking", None, kind=float,
                             optional=True, low=0.0, high=1.0)
    filters: dict[str, Any] | None = _doc("which chunks may be returned: {'source': '*.pdf', 'page': (3, 10), ...}",
                                          None)
    min_score: float | None = _doc("drop hits whose relevance is below it", None, kind=float, optional=True,
                                   low=0.0, high=1.0)
    reranker: str | None = _doc("a local cross-encoder folder (or name) that rescores the top candidates", None,
                                kind=str, optional=True)
    rerank_depth: int = _doc("how many candidates the reranker rescores", 20, kind=int, low=1, high=1_000)

    def __post_init__(self) -> None:
        _check_all(self)
        # the filters' keys and values are checked by the Retriever, which knows the index's metadata keys
        if self.filters is not None and not isinstance(self.filters, dict):
            raise SettingsError(f"filters must be a dict such as {{'source': '*.pdf', 'page': (3, 10)}}, "
                                f"not {type(self.filters).__name__}")

    def replace(self, **changes: Any) -> RetrievalConfig:
        _unknown(changes, RETRIEVAL_KEYS, "retrieval")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a ``(low, high)`` range becomes ``{"range": [low, high]}`` (a list means "any of")."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.filters:
            if callable(self.filters.get("where")):
                raise SettingsError("a filter with a Python function cannot be saved; use globs, ranges and lists")
            data["filters"] = {key: _saved_filter(value) for key, value in self.filters.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrievalConfig:
        if not isinstance(data, dict):
            raise SettingsError(f"retrieval settings must be a mapping, not {type(data).__name__}")
        _unknown(data, RETRIEVAL_KEYS, "retrieval")
        filters = data.get("filters")
        if filters is not None:
            _check_saved_filters(filters)
            data = {**data, "filters": {key: _loaded_filter(value) for key, value in filters.items()}}
        return cls(**data)


@dataclass(frozen=True)
class AssistantConfig:
    """An assistant's settings: its name, model, template, when it abstains, and its retrieval."""

    name: str = _doc("shown in the panels and saved with the assistant", "assistant", kind=str, max_length=1_000)
    llm: str | dict[str, Any] | None = _doc(
        "the language model: a preset, a GGUF file, 'openai:URL', 'extractive', a saved model reference, or None for "
        "this machine's choice ($RAGBOOK_LLM, else the best installed model)", None)
    template: str | dict[str, Any] = _doc("a built-in template's name, or a template's fields", "tutor")
    min_relevance: float | None = _doc("below this relevance of the best passage it says it doesn't know", 0.3,
                                       kind=float, optional=True, low=0.0, high=1.0)
    max_answer_tokens: int = _doc("the longest answer, in tokens", 384, kind=int, low=1, high=32_768)
    temperature: float = _doc("sampling temperature; 0 is greedy and repeatable", 0.0, kind=float, low=0.0, high=5.0)
    history_turns: int = _doc("how many earlier turns a chat keeps in the prompt", 2, kind=int, low=0, high=100)
    verify: bool = _doc("put to the model what the citation rules cannot settle (ragbook.grounding)", True, kind=bool)
    require_support: bool = _doc("say it doesn't know, with the passage sentence closest to the question, when no "
                                 "sentence of the model's answer is backed by a passage it cites (its words stay in "
                                 "answer.withheld)", True, kind=bool)
    abstain_unknown_terms: bool = _doc("say it doesn't know when the question is about a term no document uses "
                                       "(ragbook.coverage)", True, kind=bool)
    passage_tokens: int | None = _doc("the model reads the best passage whole and, of each other one, its sentences "
                                      "closest to the question up to this many tokens (None: every passage whole)",
                                      PASSAGE_TOKENS, kind=int, optional=True, low=16, high=100_000)
    retrieval: RetrievalConfig = field(default_factory=lambda: RetrievalConfig(k=ANSWER_PASSAGES),
                                       metadata={"doc": f"how passages are found (k={ANSWER_PASSAGES} passages a prompt)"})

    def __post_init__(self) -> None:
        _check_all(self)
        if not (self.llm is None or isinstance(self.llm, dict) or isinstance(self.llm, str) and len(self.llm) <= MAX_TEXT):
            raise SettingsError("llm must be a model name, a model description or None")
        if not isinstance(self.template, (str, dict)):
            raise SettingsError("template must be a template name or a template's fields")
        if not isinstance(self.retrieval, RetrievalConfig):
            raise SettingsError(f"retrieval must be a RetrievalConfig, not {type(self.retrieval).__name__}")

    def replace(self, **changes: Any) -> AssistantConfig:
        """A copy with some settings changed; retrieval settings (k, mode...) may be given flat."""
        retrieval = {key: changes.pop(key) for key in list(changes) if key in RETRIEVAL_KEYS}
        _unknown(changes, ASSISTANT_KEYS, "assistant")
        if retrieval:
            changes["retrieval"] = changes.get("retrieval", self.retrieval).replace(**retrieval)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["retrieval"] = self.retrieval.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssistantConfig:
        """From a saved assistant's JSON (``assistant.json``): unknown keys and wrong kinds are refused."""
        if not isinstance(data, dict):
            raise SettingsError(f"settings must be a mapping, not {type(data).__name__}")
        own = {key: value for key, value in data.items() if key != "retrieval"}
        _unknown(own, ASSISTANT_KEYS, "assistant")
        retrieval = RetrievalConfig.from_dict(data.get("retrieval") or {})
        return cls(**own, retrieval=retrieval)


INDEX_KEYS: tuple[str, ...] = tuple(f.name for f in fields(IndexConfig))
VECTOR_KEYS = ("threshold", "hnsw_m", "ef_construction", "ef_search", "nprobe", "pq_m", "refine")
RETRIEVAL_KEYS: tuple[str, ...] = tuple(f.name for f in fields(RetrievalConfig))
ASSISTANT_KEYS: tuple[str, ...] = tuple(f.name for f in fields(AssistantConfig))


def describe(config: type[IndexConfig] | type[RetrievalConfig] | type[AssistantConfig]) -> dict[str, tuple[Any, str]]:
    """Each setting's default and description, for help texts and documentation."""
    out = {}
    for f in fields(config):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        out[f.name] = (default, f.metadata.get("doc", ""))
    return out


def _unknown(data: dict[str, Any], known: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SettingsError(f"unknown {what} setting(s) {', '.join(unknown)}; they are {', '.join(known)}")


# -- filters in JSON: a (low, high) range is {"range": [low, high]}, since JSON has no tuples ----------------

def _saved_filter(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"not"}:
        return {"not": _saved_filter(value["not"])}
    return {"range": list(value)} if isinstance(value, tuple) else value


def _loaded_filter(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"not"}:
        return {"not": _loaded_filter(value["not"])}
    return tuple(value["range"]) if _is_range(value) else value


def _is_range(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"range"} and isinstance(value["range"], list)
            and len(value["range"]) == 2 and all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in value["range"]))


def _check_saved_filters(filters: Any) -> None:
    """Filters read from JSON: plain values, lists, ranges and negations only; never code."""
    if not isinstance(filters, dict) or len(filters) > 100:
        raise SettingsError("filters must be a JSON object of at most 100 filters")
    if "where" in filters:
        raise SettingsError("a 'where' filter is Python code, which is never read from a file")

    def plain(v: Any) -> bool:
        return v is None or isinstance(v, (str, int, float, bool)) and (not isinstance(v, str) or len(v) <= 1_000)

    def allowed(value: Any) -> bool:
        return plain(value) or _is_range(value) or isinstance(value, list) and len(value) <= 10_000 and all(map(plain, value))

    for value in filters.values():
        negated = isinstance(value, dict) and set(value) == {"not"}
        if not (allowed(value["not"]) if negated else allowed(value)):
            raise SettingsError("each filter is a text, a number, a list of them, a range {\"range\": [low, high]}, "
                                "or {\"not\": one of those}")
