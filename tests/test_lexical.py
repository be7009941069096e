from __future__ import annotations

import math

import numpy as np
import pytest

from ragbook.lexical import BM25, Analyzer

DOCS = [
    "The cat sat on the mat.",
    "Dogs are running in the park; a dog runs fast.",
    "Cats and dogs are pets.",
    "Quantum computers use qubits.",
]


def test_analyzer_stems_lowercases_and_drops_stopwords():
    an = Analyzer()
    assert an("The Dogs are RUNNING") == ["dog", "run"]
    assert an("running runs") == ["run", "run"]
    assert Analyzer(stemmer=None, stopwords=False)("The Dogs") == ["the", "dogs"]


def test_cjk_is_indexed_as_bigrams():
    assert Analyzer()("東京大学") == ["東京", "京大", "大学"]
    bm = BM25().build(["東京大学で研究する", "大阪の天気"])
    assert bm.scores("東京")[0] > 0 and bm.scores("東京")[1] == 0


def test_scores_follow_the_bm25_formula():
    bm = BM25(k1=1.2, b=0.75).build(DOCS)
    scores = bm.scores("dog")
    an = bm.analyzer
    lengths = [len(an(d)) for d in DOCS]
    avg = sum(lengths) / len(lengths)
    n, df = len(DOCS), 2
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    tf = an(DOCS[1]).count("dog")
    expected = idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * lengths[1] / avg))
    assert scores[1] == pytest.approx(expected, rel=1e-5)
    assert scores[0] == 0 and scores[3] == 0
    assert np.argmax(bm.scores("quantum qubit")) == 3


def test_update_equals_a_fresh_build():
    bm = BM25().build(DOCS)
    bm.update(np.array([True, False, True, False]), ["Parrots can talk.", "A cat naps."])
    fresh = BM25().build([DOCS[0], DOCS[2], "Parrots can talk.", "A cat naps."])
    for q in ["cat", "dog pets", "parrot talk", "quantum"]:
        np.testing.assert_allclose(bm.scores(q), fresh.scores(q), rtol=1e-6)
    assert len(bm) == 4


def test_save_load_round_trip(tmp_path):
    bm = BM25(k1=1.5, b=0.5, analyzer=Analyzer(stemmer="english", stopwords=False)).build(DOCS)
    bm.save(tmp_path)
    back = BM25.load(tmp_path)
    assert back.settings() == bm.settings()
    np.testing.assert_array_equal(back.scores("the dogs run"), bm.scores("the dogs run"))


def test_matched_terms_reports_query_words_found():
    bm = BM25().build(DOCS)
    assert bm.matched_terms("running dogs and quantum", DOCS[1]) == ["running", "dogs"]


def test_empty_index_and_unknown_terms():
    bm = BM25().build([])
    assert len(bm.scores("anything")) == 0
    assert BM25().build(DOCS).scores("zebra").sum() == 0


def test_loaded_postings_are_read_in_place_and_still_grow(tmp_path):
    texts = [f"passage {i} about topic{i % 7} and word{i % 13}" for i in range(300)]
    bm = BM25().build(texts)
    bm.save(tmp_path)
    loaded = BM25.load(tmp_path)
    assert all(isinstance(getattr(loaded, name), np.memmap) for name in ("indptr", "rows", "tf"))
    np.testing.assert_array_equal(loaded.scores("topic3 word5"), bm.scores("topic3 word5"))
    keep = np.ones(300, dtype=bool)
    keep[:10] = False
    loaded.update(keep, ["a new passage about topic3"])  # builds new arrays: the mapped files are never written
    bm.update(keep, ["a new passage about topic3"])
    np.testing.assert_array_equal(loaded.scores("topic3"), bm.scores("topic3"))
    assert BM25.load(tmp_path).scores("topic3").shape == (300,)
