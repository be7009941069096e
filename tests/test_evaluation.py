"""Evaluation: metric formulas against hand-computed values, the loaders, and a run on a tiny corpus."""

from __future__ import annotations

import json
import math

import pytest
from fakes import HashEmbedder

from ragbook.evaluation import (
    BeirData,
    beir_documents,
    evaluate_retrieval,
    hit_rate_at_k,
    index_beir,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    rank_documents,
    recall_at_k,
)

# -- metrics --------------------------------------------------------------------------------------

GRADED = {"d1": 2, "d2": 1, "d3": 0}  # d3 is judged but not relevant
RANKED = ["d3", "d1", "x", "d2", "y"]


def test_ndcg_graded_gain_log2_discount_and_ideal_from_qrels():
    dcg = 2 / math.log2(3) + 1 / math.log2(5)  # d1 at rank 2, d2 at rank 4, d3 gains nothing
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(RANKED, GRADED, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(RANKED, GRADED, 10) == pytest.approx(0.643322, abs=1e-6)


def test_ndcg_cutoff_keeps_the_ideal_at_k():
    # @2: only d1 counts; the ideal @2 is d1 then d2
    assert ndcg_at_k(RANKED, GRADED, 2) == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ndcg_at_k(RANKED, GRADED, 1) == 0.0
    # @1 with many relevant documents: the ideal has one, so a relevant top hit of the best grade scores 1
    assert ndcg_at_k(["d1"], GRADED, 1) == 1.0
    assert ndcg_at_k(["d2"], GRADED, 1) == pytest.approx(0.5)


def test_perfect_and_empty_rankings():
    assert ndcg_at_k(["d1", "d2"], GRADED, 10) == pytest.approx(1.0)
    for metric in (ndcg_at_k, recall_at_k, mrr_at_k, hit_rate_at_k):
        assert metric([], GRADED, 10) == 0.0
        assert metric(["a", "b"], {"a": 0}, 10) == 0.0  # nothing relevant: 0, not a division by zero


def test_recall_mrr_hit_count_grade_above_zero_only():
    assert recall_at_k(RANKED, GRADED, 10) == 1.0
    assert recall_at_k(RANKED, GRADED, 3) == 0.5
    assert recall_at_k(RANKED, GRADED, 1) == 0.0
    assert mrr_at_k(RANKED, GRADED, 10) == 0.5  # d3 (grade 0) at rank 1 does not count
    assert mrr_at_k(RANKED, GRADED, 1) == 0.0
    assert hit_rate_at_k(RANKED, GRADED, 2) == 1.0
    assert hit_rate_at_k(RANKED, GRADED, 1) == 0.0


def test_repeated_ids_count_once():
    assert ndcg_at_k(["d2", "d2", "d1"], GRADED, 10) == ndcg_at_k(["d2", "d1"], GRADED, 10)
    assert recall_at_k(["d2", "d2"], GRADED, 2) == 0.5
    with pytest.raises(ValueError):
        ndcg_at_k(RANKED, GRADED, 0)


def test_rank_documents_uses_the_best_chunk():
    pairs = [("a", 0.2), ("b", 0.9), ("a", 0.95), ("c", 0.5), ("b", 0.1), ("d", 0.5)]
    assert rank_documents(pairs) == ["a", "b", "c", "d"]  # c before d: tie keeps first-seen order


# -- loaders ----------------------------------------------------------------------------------------


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_load_beir_folder(tmp_path):
    _write_jsonl(tmp_path / "corpus.jsonl", [
        {"_id": 1, "title": "Café", "text": "first"}, {"_id": "d2", "text": "second", "metadata": {}},
    ])
    _write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "which first?"}, {"_id": 7, "text": "dev only"}])
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\t1\t2\nq1\td2\t0\n", encoding="utf-8")
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n7\td2\t1\n", encoding="utf-8")

    data = load_beir(tmp_path)
    assert data.corpus == {"1": {"title": "Café", "text": "first"}, "d2": {"title": "", "text": "second"}}
    assert data.queries == {"q1": "which first?", "7": "dev only"}
    assert data.qrels == {"q1": {"1": 2, "d2": 0}}
    assert data.split == "test" and data.answers == {}
    assert load_beir(tmp_path, split="dev").qrels == {"7": {"d2": 1}}
    assert "judged_queries=1" in repr(data)
    with pytest.raises(FileNotFoundError, match="dev, test"):
        load_beir(tmp_path, split="train")


def test_load_squad_style_folder_keeps_answerable_questions(tmp_path):
    _write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "Art_0", "title": "Art", "text": "Paint dries."}])
    _write_jsonl(tmp_path / "questions.jsonl", [
        {"id": "a", "question": "What dries?", "answers": ["Paint"], "is_impossible": False, "gold_doc_ids": ["Art_0"]},
        {"id": "b", "question": "What flies?", "answers": [], "is_impossible": True, "gold_doc_ids": []},
    ])
    data = load_beir(tmp_path)
    assert data.queries == {"a": "What dries?"}
    assert data.qrels == {"a": {"Art_0": 1}}
    assert data.answers == {"a": ["Paint"]}


def test_load_beir_refuses_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        load_beir(tmp_path)
    _write_jsonl(tmp_path / "corpus.jsonl", [])
    with pytest.raises(FileNotFoundError, match="qrels"):
        load_beir(tmp_path)


def test_sample_is_reproducible():
    data = BeirData({}, {f"q{i}": "x" for i in range(20)}, {f"q{i}": {"d": 1} for i in range(20)})
    assert data.sample(5).queries == data.sample(5).queries
    assert len(data.sample(5).qrels) == 5
    assert data.sample(None) is data


# -- end to end on a tiny corpus ---------------------------------------------------------------------

CORPUS = {
    "volcano": {"title": "Volcanoes", "text": "Shield volcanoes have gentle slopes of basalt lava. "
                "Stratovolcanoes are steep and explosive. Pyroclastic flows are the deadliest hazard."},
    "photo": {"title": "Photosynthesis", "text": "Plants turn light into chemical energy in the chloroplast."},
    "exam": {"title": "Syllabus", "text": "The final exam counts for 45 percent of the grade."},
    "exam-copy": {"title": "Syllabus", "text": "The final exam counts for 45 percent of the grade."},
    "rivers": {"title": "Rivers", "text": "Rivers carry sediment to deltas where they meet the sea."},
}
QUERIES = {"q1": "basalt lava volcanoes", "q2": "light chemical energy plants", "q3": "final exam grade",
           "q4": "nothing matches zzz", "q5": "unjudged"}
QRELS = {"q1": {"volcano": 1}, "q2": {"photo": 2, "rivers": 0}, "q3": {"exam": 1, "exam-copy": 1}, "q4": {"rivers": 1},
         "q6": {"rivers": 1}}


def test_beir_documents_join_title_and_text_like_mteb():
    docs = beir_documents({"a": {"title": "T", "text": " body "}, "b": {"title": "", "text": "only"}})
    assert [(d.text, d.source, d.title) for d in docs] == [("T  body", "a", "T"), ("only", "b", "")]


@pytest.mark.parametrize("settings", [{"mode": "dense"}, {"mode": "bm25"}, {"mode": "hybrid"},
                                      {"mode": "hybrid", "fusion": "weighted", "weight": 0.3}])
def test_evaluate_retrieval_end_to_end(settings):
    index = index_beir(CORPUS, HashEmbedder(), chunk_size=10, overlap=0)  # the volcano text spans chunks
    assert len({c.source for c in index.chunks}) == len(CORPUS)
    result = evaluate_retrieval(index, QUERIES, QRELS, k=3, **settings)
    assert result["queries"] == 4  # q5 unjudged, q6 unknown
    assert set(result["per_query"]) == {"q1", "q2", "q3", "q4"}
    assert result["settings"]["mode"] == settings["mode"]
    for name in ("ndcg@3", "recall@3", "mrr@3", "hit@3"):
        assert 0.0 <= result[name] <= 1.0
        assert result[name] == pytest.approx(sum(v[name] for v in result["per_query"].values()) / 4)
    assert result["per_query"]["q1"]["mrr@3"] == 1.0
    # the exam text is stored once for two documents: both are credited at rank 1
    assert result["per_query"]["q3"]["recall@3"] == 1.0
    assert result["per_query"]["q3"]["ndcg@3"] == pytest.approx(1.0)
    again = evaluate_retrieval(index, QUERIES, QRELS, k=3, **settings)
    assert again["per_query"] == result["per_query"]
    assert index.embedder.__class__ is HashEmbedder  # the query cache is removed afterwards


def test_evaluation_ranks_enough_chunks_to_fill_k_documents():
    corpus = {f"d{i}": {"title": "", "text": " ".join(["lava"] * 40) + f" word{i}"} for i in range(4)}
    index = index_beir(corpus, HashEmbedder(), chunk_size=8, overlap=0)  # 5+ chunks per document
    result = evaluate_retrieval(index, {"q": "lava word3"}, {"q": {"d3": 1}}, k=4, mode="bm25")
    assert result["recall@4"] == 1.0


def test_identical_ids_are_ignored_unless_asked():
    corpus = {"q1": {"title": "", "text": "basalt lava volcanoes"}, **CORPUS}
    index = index_beir(corpus, HashEmbedder())
    with_self = evaluate_retrieval(index, {"q1": QUERIES["q1"]}, {"q1": {"volcano": 1}}, k=1,
                                   mode="bm25", ignore_identical_ids=False)
    without = evaluate_retrieval(index, {"q1": QUERIES["q1"]}, {"q1": {"volcano": 1}}, k=1, mode="bm25")
    assert with_self["mrr@1"] == 0.0 and without["mrr@1"] == 1.0


def test_mteb_protocol_embeds_each_document_whole_and_truncated():
    embedder = HashEmbedder()
    embedder.max_tokens = 12
    index = index_beir(CORPUS, embedder, protocol="mteb")
    assert sorted(c.source for c in index.chunks) == sorted(CORPUS)  # one chunk per document
    volcano = next(c for c in index.chunks if c.source == "volcano")
    assert volcano.text == "Volcanoes Shield volcanoes have gentle slopes of basalt lava. Stratovolcanoes are"
    assert index.chunk_size == 12 and index.overlap == 0 and index.info()["vectors"]["kind"] == "flat"
    # the text already starts with the title, as MTEB embeds it: no context line on top
    assert index.context is False and all(c.context == "" for c in index.chunks)
    assert embedder.embedded == len(index)  # the passages only: no line embedded beside them
    with pytest.raises(ValueError, match="chunk_size"):
        index_beir(CORPUS, embedder, protocol="mteb", chunk_size=8)
    with pytest.raises(ValueError, match="protocol"):
        index_beir(CORPUS, embedder, protocol="bogus")

