"""Filters that refuse nonsense, and relevance scores that mean the same for every query.

Settings errors are checked on a small index built with the fast stand-in embedder; what the
scores mean is checked with the real model on the demo course notes (corpora/course-notes).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import REPO
from fakes import HashEmbedder

from ragbook.assistant import DEFAULT_MIN_RELEVANCE, Assistant
from ragbook.documents import Document, Segment
from ragbook.errors import RagbookError, SettingsError
from ragbook.index import Index
from ragbook.retrieval import Retriever, bm25_full_match

NAN, INF = float("nan"), float("inf")
NONSENSE = ["zxqv florb wibble", "asdf qwer zxcv", "blorptic fanquish drell", "mimsy borogoves outgrabe"]
# Below this a hit is noise; made-up words stay under it (documented in Retriever's docstring).
NOISE = 0.2


# -- settings that could only return nothing are refused ----------------------------------------


@pytest.fixture(scope="module")
def shelf():
    """Twelve documents: a paged 'PDF', notes with a year and tags, and one with a date."""
    index = Index(HashEmbedder())
    text = "Cells are the unit of life.\n\nMitochondria make ATP.\n\nRibosomes build proteins."
    pages, segs, pos = text.split("\n\n"), [], 0
    for number, page in enumerate(pages, start=1):
        segs.append(Segment(pos, pos + len(page), page=number))
        pos += len(page) + 2
    docs = [Document(text=text, source="biology.pdf", segments=segs, metadata={"format": "pdf"})]
    docs += [Document(text=f"Note {i} about topic {i % 3} and cells.", source=f"notes/{i}.md",
                      metadata={"format": "markdown", "year": 2015 + i, "tags": ["lab", f"unit{i % 2}"]})
             for i in range(10)]
    docs.append(Document(text="The exam is on a date.", source="exam.md", metadata={"format": "markdown", "due": "2026-05-04"}))
    index.add_documents(docs)
    return index


BAD_FILTERS = {
    "unknown key": ({"sorce": "*.pdf"}, "source"),
    "unknown metadata key": ({"author": "Ada"}, "Valid keys"),
    "document path, which chunks do not carry": ({"path": "/tmp/x"}, "source"),
    "reversed page range": ({"page": (40, 10)}, "(10, 40)"),
    "reversed metadata range": ({"year": (2020, 2016)}, "reversed"),
    "NaN range bound": ({"page": (1, NAN)}, "None"),
    "infinite range bound": ({"year": (-INF, 2020)}, "None"),
    "NaN value": ({"year": NAN}, "finite"),
    "page as text": ({"page": "3"}, "whole number"),
    "page as a fraction": ({"page": 2.5}, "whole number"),
    "page as a boolean": ({"page": True}, "whole number"),
    "negative page": ({"page": -1}, "whole number"),
    "source as a number": ({"source": 3}, "text"),
    "text range on source": ({"source": ("a.md", "b.md")}, "list"),
    "number metadata as text": ({"year": "2016"}, "numbers"),
    "text metadata as a number": ({"tags": 3}, "text"),
    "range of text and number": ({"due": ("2026-01-01", 2027)}, "can never match"),
    "empty list": ({"page": []}, "empty"),
    "None value": ({"source": None}, "leave the key out"),
    "three-item tuple": ({"page": (1, 2, 3)}, "use a list"),
    "list inside a list": ({"page": [[1, 2]]}, "not more lists"),
    "where is not a function": ({"where": "page > 2"}, "function"),
    "not a dict": ([("source", "*.pdf")], "dict"),
    "key not a name": ({3: "x"}, "names"),
    "dict as a value": ({"source": {"glob": "*.md"}}, "the one dict a filter takes is {'not': value}"),
    "not of the wrong kind": ({"page": {"not": "three"}}, "(after 'not') holds whole numbers"),
    "not of not": ({"section": {"not": {"not": "References"}}}, "the one dict a filter takes is"),
}


@pytest.mark.parametrize("name", list(BAD_FILTERS))
def test_nonsense_filters_are_refused_everywhere(shelf, name):
    filters, hint = BAD_FILTERS[name]
    with pytest.raises(SettingsError, match="filter") as made:
        Retriever(shelf, filters=filters)
    assert hint in str(made.value)
    with pytest.raises(SettingsError):  # the one-off search, and a search override on a good retriever
        shelf.search("cells", filters=filters)
    with pytest.raises(SettingsError):
        Retriever(shelf).search("cells", filters=filters)
    with pytest.raises(SettingsError):  # an assistant's settings
        Assistant(shelf, llm="extractive", filters=filters)


def test_an_unknown_key_names_the_valid_ones(shelf):
    with pytest.raises(SettingsError) as made:
        shelf.search("cells", filters={"sorce": "*.pdf"})
    message = str(made.value)
    assert "'sorce'" in message and "Did you mean 'source'?" in message
    for key in ("source", "page", "cell", "section", "title", "format", "year", "tags", "due", "where"):
        assert key in message
    assert isinstance(made.value, (RagbookError, ValueError, TypeError))


def test_sensible_filters_still_work(shelf):
    assert {h.page for h in shelf.search("cells", k=10, filters={"page": (2, 3)})} == {2, 3}
    assert {h.page for h in shelf.search("cells", k=10, filters={"page": [1, (3, None)]})} == {1, 3}
    years = [h.chunk.metadata["year"] for h in shelf.search("cells", k=20, filters={"year": (2018, 2020)})]
    assert sorted(years) == [2018, 2019, 2020]
    unit1 = shelf.search("cells", k=20, filters={"tags": "unit1"})  # a list-valued key matches any of its items
    assert len(unit1) == 5 and all("unit1" in h.chunk.metadata["tags"] for h in unit1)
    assert [h.source for h in shelf.search("exam", filters={"due": ("2026-01-01", "2026-12-31")})] == ["exam.md"]
    assert {h.source for h in shelf.search("cells", k=20, filters={"format": "PDF"})} == {"biology.pdf"}
    assert len(shelf.search("cells", k=20, filters={"year": lambda y: y is not None and y % 2 == 0})) == 5
    # a valid filter that happens to match nothing is an empty result, not an error
    assert len(shelf.search("cells", filters={"source": "nothing/*"})) == 0
    assert len(shelf.search("cells", filters={"year": (1900, 1910)})) == 0


def test_a_key_only_some_documents_have_is_valid(shelf):
    assert [h.source for h in shelf.search("exam date", k=20, filters={"due": "2026-*"})] == ["exam.md"]


def test_metadata_keys_follow_the_index_as_it_changes():
    index = Index(HashEmbedder())
    index.add_documents([Document(text="plain note", source="a.md", metadata={"format": "markdown"})])
    with pytest.raises(SettingsError, match="unknown filter key 'level'"):
        index.search("note", filters={"level": 2})
    index.add_documents([Document(text="graded note", source="b.md", metadata={"format": "markdown", "level": 2})])
    assert [h.source for h in index.search("note", filters={"level": 2})] == ["b.md"]
    index.remove("b.md")
    with pytest.raises(SettingsError, match="unknown filter key 'level'"):
        index.search("note", filters={"level": 2})


def test_filters_survive_a_save_and_reload(shelf, tmp_path):
    shelf.save(tmp_path / "shelf")
    back = Index.load(tmp_path / "shelf", embedding_model=HashEmbedder())
    assert len(back.search("cells", k=20, filters={"year": (2018, 2020)})) == 3
    with pytest.raises(SettingsError, match="reversed"):
        back.search("cells", filters={"year": (2020, 2018)})


BAD_NUMBERS = [
    ("min_score", NAN), ("min_score", INF), ("min_score", -0.1), ("min_score", 1.5), ("min_score", "0.3"), ("min_score", True),
    ("weight", NAN), ("weight", INF), ("weight", -0.5), ("weight", "0.5"),
    ("mmr", NAN), ("mmr", -INF), ("mmr", 2),
    ("rrf_k", NAN), ("rrf_k", -1),
    ("k", 0), ("k", 2.5), ("k", "5"), ("k", True), ("k", NAN),
    ("candidates", 0), ("rerank_depth", -3),
    ("mode", "semantic"), ("fusion", "sum"), ("reranker", 5),
]


@pytest.mark.parametrize("key,value", BAD_NUMBERS, ids=[f"{k}={v!r}" for k, v in BAD_NUMBERS])
def test_nonsense_settings_are_refused(shelf, key, value):
    with pytest.raises(SettingsError, match=key):
        Retriever(shelf, **{key: value})
    with pytest.raises(SettingsError, match=key):
        shelf.search("cells", **{key: value})
    with pytest.raises(SettingsError, match=key):
        Assistant(shelf, llm="extractive", **{key: value})
    with pytest.raises(SettingsError, match=key):
        Assistant(shelf, llm="extractive").copy(**{key: value})


def test_a_setting_assigned_after_creation_is_checked_at_once(shelf):
    retriever = Retriever(shelf)
    with pytest.raises(SettingsError, match="min_score"):
        retriever.min_score = NAN
    with pytest.raises(SettingsError, match="reversed"):
        retriever.filters = {"page": (9, 1)}
    assert retriever.min_score is None and retriever.filters is None  # the retriever keeps its valid settings
    retriever.min_score = 0.2
    assert retriever.config.min_score == 0.2 and retriever.search("cells").settings["min_score"] == 0.2


def test_unknown_search_overrides_are_settings_errors(shelf):
    with pytest.raises(SettingsError, match="min_scor"):
        Retriever(shelf).search("cells", min_scor=0.3)


@pytest.mark.parametrize("value", [NAN, INF, -0.2, 1.5, "high", True])
def test_the_abstention_threshold_is_checked(shelf, value):
    with pytest.raises(SettingsError, match="min_relevance"):
        Assistant(shelf, llm="extractive", min_relevance=value)


# -- relevance: comparable across queries ------------------------------------------------------


def test_bm25_relevance_is_on_one_scale_for_every_query(shelf):
    for query in ("cells", "mitochondria ATP", "note topic cells unit", "proteins ribosomes cells life"):
        full = bm25_full_match(shelf.bm25, query)
        for hit in shelf.search(query, k=20, mode="bm25"):
            assert hit.score == hit.relevance == pytest.approx(1 - math.exp(-hit.bm25_score / full))
            assert 0.0 < hit.relevance < 1.0
    raw = [h.bm25_score for h in shelf.search("note topic cells", k=20, mode="bm25")]
    assert raw == sorted(raw, reverse=True)  # ordered as raw BM25 orders them


def test_a_passage_with_every_query_word_once_scores_the_same_whatever_the_query():
    # passages of equal length, so each is of average length: a full match scores 1 - 1/e
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron".split()
    docs = [" ".join(words[i:i + 4]) for i in range(0, 12, 4)] + ["sigma tau upsilon phi"] * 3
    index = Index(HashEmbedder())
    index.add_documents([Document(text=t, source=f"{i}.md") for i, t in enumerate(docs)])
    for query in ("alpha", "alpha beta gamma delta", "eta theta", "iota kappa lambda omicron"):
        assert index.search(query, k=1, mode="bm25")[0].relevance == pytest.approx(1 - math.exp(-1), rel=1e-5)
    half = index.search("alpha beta", k=1, mode="bm25")[0].relevance  # short queries are not inflated
    assert half == pytest.approx(1 - math.exp(-1), rel=1e-5)
    partial = index.search("alpha epsilon", k=1, mode="bm25")[0]  # half the query's weight in one passage
    assert partial.relevance == pytest.approx(1 - math.exp(-0.5), rel=1e-5)


def test_made_up_words_get_no_lexical_relevance(shelf):
    assert len(shelf.search("zxqv florb wibble", mode="bm25")) == 0
    assert bm25_full_match(shelf.bm25, "zxqv florb wibble") > 0  # unseen words still count in the scale
    alone = shelf.search("mitochondria", k=1, mode="bm25")[0].relevance
    diluted = shelf.search("mitochondria zxqv florb wibble", k=1, mode="bm25")[0].relevance
    assert diluted < alone / 3  # one real word among made-up ones is only a small share of the query
    assert bm25_full_match(shelf.bm25, "the of and") == 0  # stop words only: nothing to match, no division by 0
    assert len(shelf.search("the of and", mode="bm25")) == 0


def test_hybrid_relevance_is_the_weighted_sum_of_the_calibrated_sides(shelf):
    for weight in (0.0, 0.3, 0.5, 1.0):
        for hit in shelf.search("mitochondria make ATP", k=8, weight=weight):
            expected = weight * max(hit.dense_score, 0.0) + (1 - weight) * hit.bm25_relevance
            assert hit.relevance == pytest.approx(expected) and hit.score == hit.relevance == hit.fused_score
    ordered = [h.relevance for h in shelf.search("note topic cells", k=20)]
    assert ordered == sorted(ordered, reverse=True)


def test_rank_fusion_keeps_the_calibrated_relevance_beside_its_own_score(shelf):
    weighted = {h.chunk.id: h.relevance for h in shelf.search("mitochondria make ATP", k=20)}
    for hit in shelf.search("mitochondria make ATP", k=20, fusion="rrf"):
        assert hit.score == hit.fused_score and hit.score < 0.05  # 1/(60 + rank) fractions
        assert hit.relevance == pytest.approx(weighted[hit.chunk.id])
        assert "rank fusion" in hit.explain() and "relevance" in hit.explain()
    kept = shelf.search("mitochondria make ATP", k=20, fusion="rrf", min_score=0.3)
    assert kept and all(h.relevance >= 0.3 for h in kept)  # min_score reads the relevance, not the rrf number


def test_reranked_hits_keep_their_relevance(shelf):
    class ByLength:  # a reranker stand-in: the real cross-encoder path is tested in test_retrieval.py
        name = "by-length"

        def score(self, query, passages):
            return np.array([float(len(p)) for p in passages])

    plain = {h.chunk.id: h.relevance for h in shelf.search("cells", k=20)}
    hits = shelf.search("cells", k=5, reranker=ByLength(), rerank_depth=20)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True) and hits[0].score > 1
    assert all(h.relevance == pytest.approx(plain[h.chunk.id]) for h in hits)


def test_explanations_show_how_relevance_was_made(shelf):
    hit = shelf.search("mitochondria make ATP", k=1)[0]
    why = hit.explain()
    assert why.startswith(f"relevance {hit.relevance:.2f} = 0.5 × dense") and "bm25" in why
    assert f"-> {hit.bm25_relevance:.2f}" in why and "mitochondria" in why.lower()
    html = shelf.search("mitochondria make ATP", k=2)._repr_html_()
    assert "relevance" in html and f"{hit.score:.4f}" in html
    row = hit.to_dict()
    assert row["relevance"] == hit.relevance and row["bm25_relevance"] == hit.bm25_relevance


def test_scores_are_finite_even_for_damaged_vectors(shelf):
    index = Index(HashEmbedder())
    index.add_documents([Document(text="alpha beta", source="a.md"), Document(text="gamma delta", source="b.md")])
    index.vectors.vectors[0] = np.nan  # the matrix MMR and rescoring read; FAISS keeps its own copy
    for hit in index.search("alpha gamma", k=2):
        assert math.isfinite(hit.relevance) and 0.0 <= hit.relevance <= 1.0


# -- with the real model on the demo course notes ------------------------------------------------


@pytest.fixture(scope="module")
def course_notes(embedder):
    index = Index(embedder)
    index.add(REPO / "corpora" / "course-notes")
    return index


def _gold_questions() -> list[str]:
    gold = json.loads((REPO / "corpora" / ".questions.json").read_text(encoding="utf-8"))
    return [q["question"] for q in gold if "course-notes" in q["source"]]


def test_nonsense_scores_low_and_real_questions_high(course_notes):
    for query in NONSENSE:
        results = course_notes.search(query, k=5)
        assert len(results) and results[0].score == results[0].relevance < NOISE  # no longer 1.0 at the top
        assert course_notes.search(query, k=1, mode="dense")[0].relevance < 0.3
    real = [course_notes.search(q, k=5)[0].relevance for q in _gold_questions()]
    assert min(real) >= DEFAULT_MIN_RELEVANCE and np.mean(real) > 0.4
    gibberish = [course_notes.search(q, k=5)[0].relevance for q in NONSENSE]
    assert max(gibberish) < min(real) / 2


def test_min_score_drops_nonsense_and_keeps_real_hits(course_notes):
    for query in NONSENSE:
        assert len(course_notes.search(query, k=5, min_score=DEFAULT_MIN_RELEVANCE)) == 0
    for question in _gold_questions():
        kept = course_notes.search(question, k=5, min_score=DEFAULT_MIN_RELEVANCE)
        assert kept and all(h.relevance >= DEFAULT_MIN_RELEVANCE for h in kept)


def test_the_assistant_abstains_on_nonsense_but_answers_real_questions(course_notes):
    bot = Assistant(course_notes, llm="extractive")
    for query in NONSENSE[:2]:
        answer = bot.ask(query + "?")
        assert answer.abstained and answer.mode == "abstained" and answer.passages  # it looked, and found nothing
    answer = bot.ask("How many grace days do students get over the whole term?")
    assert not answer.abstained and answer.mode == "extractive" and "00-syllabus.md" in answer.passages[0].source
    # the threshold reads the best passage's relevance (not its cosine, which is higher here)
    question = "How many grace days do students get over the whole term?"
    best = max(h.relevance for h in bot.search(question))
    assert max(h.dense_score for h in bot.search(question)) > best + 0.05
    assert Assistant(course_notes, llm="extractive", min_relevance=best + 0.02).ask(question).abstained
    assert not Assistant(course_notes, llm="extractive", min_relevance=best - 0.02).ask(question).abstained


def test_a_reranker_must_give_one_finite_number_per_passage(shelf):
    class Short:
        name = "short"

        def score(self, query, passages):
            return np.zeros(len(passages) - 1)

    class Blind:
        name = "blind"

        def score(self, query, passages):
            return np.array([np.nan] + [0.5] * (len(passages) - 1))

    with pytest.raises(SettingsError, match="one number per passage"):
        shelf.search("cells", reranker=Short())
    hits = shelf.search("cells", k=20, reranker=Blind(), rerank_depth=20)
    assert hits[-1].rank_before_rerank == 1 and hits[0].rerank_score == 0.5  # unscored goes last


@pytest.mark.parametrize("kwargs", [{"model": 5}, {"model": ""}, {"model": "x", "batch_size": 0},
                                    {"model": "x", "batch_size": None}, {"model": "x", "max_length": 2.5}])
def test_reranker_settings_are_checked(kwargs):
    from ragbook.rerank import Reranker

    with pytest.raises(SettingsError):
        Reranker(**kwargs)


def test_one_way_to_read_a_page_range():
    from ragbook.filters import parse_range

    assert parse_range("4") == 4 and parse_range("3-10") == (3, 10) and parse_range("3\u201310") == (3, 10)
    assert parse_range("3-") == (3, None) and parse_range("-10") == (None, 10)
    for bad in ("", "-", "three", "3-x", "1,2"):
        with pytest.raises(SettingsError, match="not a number or a range"):
            parse_range(bad)
