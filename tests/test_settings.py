"""Settings as data: one definition, checked in one place, read by the assistant, the file, the CLI and the grid."""

from __future__ import annotations

import dataclasses
import math

import pytest

from ragbook.errors import SettingsError
from ragbook.settings import (
    ANSWER_PASSAGES,
    ASSISTANT_KEYS,
    FUSIONS,
    MODES,
    RETRIEVAL_KEYS,
    AssistantConfig,
    RetrievalConfig,
    describe,
)


def test_defaults_and_descriptions():
    config = AssistantConfig()
    # an assistant's prompt holds fewer passages than a search shows (ANSWER_PASSAGES, measured in trust.py)
    assert config.retrieval == RetrievalConfig(k=ANSWER_PASSAGES) and config.retrieval.k == 3 and RetrievalConfig().k == 5
    assert config.min_relevance == 0.3
    assert MODES == ("hybrid", "dense", "bm25") and set(FUSIONS) == {"weighted", "rrf"}
    for cls in (RetrievalConfig, AssistantConfig):
        docs = describe(cls)
        assert list(docs) == [f.name for f in dataclasses.fields(cls)]
        assert all(text for _, text in docs.values())  # every setting says what it is
    assert describe(RetrievalConfig)["k"][0] == 5


def test_frozen_and_replace_checks_again():
    config = AssistantConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "x"  # type: ignore[misc]
    changed = config.replace(name="Bio", k=4, mode="bm25")  # retrieval settings may be given flat
    assert changed.name == "Bio" and changed.retrieval.k == 4 and changed.retrieval.mode == "bm25"
    assert config.retrieval.k == 3
    with pytest.raises(SettingsError, match="unknown assistant setting.*colour"):
        config.replace(colour="red")
    with pytest.raises(SettingsError, match="k must be"):
        config.replace(k=0)


@pytest.mark.parametrize("key, value, message", [
    ("k", 0, "k must be between 1"), ("k", 2.5, "whole number"), ("k", True, "whole number"),
    ("mode", "semantic", "mode must be one of hybrid, dense, bm25"), ("fusion", "max", "fusion must be one of"),
    ("weight", math.nan, "finite"), ("weight", 1.5, "between 0 and 1"), ("mmr", -0.1, "mmr"),
    ("min_score", "high", "finite number"), ("candidates", 10**9, "candidates"), ("reranker", 3, "text"),
    ("filters", ["source"], "filters must be a dict"),
])
def test_each_retrieval_setting_is_checked(key, value, message):
    with pytest.raises(SettingsError, match=message):
        RetrievalConfig(**{key: value})


@pytest.mark.parametrize("key, value, message", [
    ("name", 7, "name must be a text"), ("name", "x" * 1001, "1,000"), ("min_relevance", 2.0, "between 0 and 1"),
    ("max_answer_tokens", 0, "max_answer_tokens"), ("temperature", math.inf, "finite"),
    ("history_turns", -1, "history_turns"), ("verify", "yes", "True or False"),
    ("abstain_unknown_terms", 1, "True or False"), ("llm", 3.5, "llm must be"), ("template", 3, "template must be"),
])
def test_each_assistant_setting_is_checked(key, value, message):
    with pytest.raises(SettingsError, match=message):
        AssistantConfig(**{key: value})


def test_json_round_trip_keeps_ranges_apart_from_lists():
    config = AssistantConfig(name="Bio", llm="extractive", retrieval=RetrievalConfig(
        k=3, filters={"page": (3, 10), "cell": [3, 10], "section": {"not": (1, 3)}}))
    data = config.to_dict()
    assert data["retrieval"]["filters"] == {"page": {"range": [3, 10]}, "cell": [3, 10],
                                            "section": {"not": {"range": [1, 3]}}}
    import json

    back = AssistantConfig.from_dict(json.loads(json.dumps(data)))
    assert back == config and back.retrieval.filters["page"] == (3, 10)


def test_from_dict_refuses_what_a_file_must_not_carry():
    with pytest.raises(SettingsError, match="unknown retrieval setting"):
        AssistantConfig.from_dict({"retrieval": {"k": 3, "exec": "rm -rf /"}})
    with pytest.raises(SettingsError, match="unknown assistant setting"):
        AssistantConfig.from_dict({"name": "x", "__class__": "os.system"})
    with pytest.raises(SettingsError, match="Python code"):
        AssistantConfig.from_dict({"retrieval": {"filters": {"where": "lambda c: True"}}})
    with pytest.raises(SettingsError, match="each filter is"):
        AssistantConfig.from_dict({"retrieval": {"filters": {"page": {"range": "1-3"}}}})
    with pytest.raises(SettingsError, match="mapping"):
        AssistantConfig.from_dict(["k", 3])  # type: ignore[arg-type]


def test_a_python_filter_cannot_be_saved():
    config = RetrievalConfig(filters={"where": lambda chunk: True})
    with pytest.raises(SettingsError, match="cannot be saved"):
        config.to_dict()


def test_everything_reads_the_one_definition(course_index):
    from ragbook.assistant import Assistant
    from ragbook.cli import _parser
    from ragbook.retrieval import Retriever

    bot = Assistant(course_index, llm="extractive", k=3, mode="bm25")
    assert bot.config.retrieval == RetrievalConfig(k=3, mode="bm25") and bot.retriever.config.k == 3
    assert bot.settings() == bot.config.to_dict() and set(bot.settings()) == set(ASSISTANT_KEYS)
    assert set(Retriever(course_index).settings()) == set(RETRIEVAL_KEYS)
    search = next(a for a in _parser()._subparsers._group_actions[0].choices["search"]._actions if a.dest == "mode")
    assert tuple(search.choices) == MODES and search.default == RetrievalConfig().mode
    with pytest.raises(SettingsError, match="unknown retrieval setting"):
        Assistant(course_index, llm="extractive", top_k=3)


def test_a_retriever_setting_is_checked_when_assigned(course_index):
    from ragbook.retrieval import Retriever

    retriever = Retriever(course_index, RetrievalConfig(k=2))
    retriever.k = 4
    assert retriever.config.k == 4 and len(retriever.search("Calvin cycle")) == 4
    with pytest.raises(SettingsError, match="k must be"):
        retriever.k = 0
    with pytest.raises(SettingsError, match="unknown filter key"):
        retriever.filters = {"colour": "red"}  # known to the index, not to the config
    assert retriever.k == 4 and retriever.filters is None
    with pytest.raises(SettingsError, match="a Retriever searches an Index"):
        Retriever("notes/")  # type: ignore[arg-type]
    other = retriever.copy(mode="bm25")
    assert other.mode == "bm25" and retriever.mode == "hybrid" and other.index is retriever.index


@pytest.fixture()
def course_index(make_index, notes_dir):
    index = make_index()
    index.add(notes_dir)
    return index


def test_an_index_takes_its_vector_settings_and_keeps_them(notes_dir, tmp_path):
    from ragbook.index import Index, build
    from ragbook.settings import INDEX_KEYS, IndexConfig
    from ragbook.testing import HashEmbedder

    index = Index(HashEmbedder(), index_type="hnsw", ef_search=200, hnsw_m=16)
    index.add(notes_dir)
    assert index.vectors.settings()["ef_search"] == 200 and index.vectors.settings()["hnsw_m"] == 16
    assert index.config.ef_search == 200 and index.config.index_type == "hnsw" and set(index.config.to_dict()) == set(INDEX_KEYS)
    index.save(tmp_path / "ix")
    back = Index.load(tmp_path / "ix", embedding_model=HashEmbedder())
    assert back.config == index.config and back.vectors.settings()["ef_search"] == 200
    built = build(notes_dir, out=tmp_path / "iv", embedding_model=HashEmbedder(), index_type="ivf", nprobe=4)
    assert built.config.nprobe == 4
    with pytest.raises(SettingsError, match="unknown index setting.*efsearch"):
        Index(HashEmbedder(), efsearch=10)
    with pytest.raises(SettingsError, match="ef_search must be"):
        Index(HashEmbedder(), ef_search=0)
    with pytest.raises(SettingsError, match="index_type must be one of"):
        Index(HashEmbedder(), index_type="annoy")
    with pytest.raises(SettingsError, match="overlap"):
        IndexConfig(chunk_size=50, overlap=50)
    assert IndexConfig.from_dict(index.config.to_dict()) == index.config


def test_a_reranker_can_be_given_copied_and_taken_away(course_index):
    from ragbook.retrieval import Retriever

    class Scorer:
        name = "scorer"

        def score(self, query, texts):
            return [float(len(t)) for t in texts]

    retriever = Retriever(course_index, reranker=Scorer())
    assert retriever.config.reranker == "scorer" and retriever.copy(k=2).reranker is retriever.reranker
    retriever.reranker = None
    assert retriever.reranker is None and retriever.config.reranker is None
