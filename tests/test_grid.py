"""Comparing configurations: the table, index reuse, determinism, answers, BEIR data, and the plot."""

from __future__ import annotations

import sys

import pytest
from fakes import HashEmbedder

from ragbook.evaluation import BeirData, beir_documents, evaluate_retrieval, index_beir
from ragbook.grid import Comparison, compare
from ragbook.index import Index
from ragbook.qa import evaluate_qa_retrieval, load_qa

QUESTIONS = ("question,source,answer,unanswerable\n"
             "Where does the Calvin cycle run?,photosynthesis.md,stroma,\n"
             "What share of the grade is the final exam?,syllabus.txt,45 percent,\n"
             "Which hazard of volcanoes is the deadliest?,volcanoes.md,pyroclastic flows,\n"
             "Where is oxygen released?,photosynthesis.md,,\n"
             "What is the capital of Australia?,,,yes\n")


@pytest.fixture()
def qa(tmp_path):
    path = tmp_path / "questions.csv"
    path.write_text(QUESTIONS, encoding="utf-8")
    return load_qa(path)


@pytest.fixture()
def hashed(notes_dir):
    index = Index(HashEmbedder(), chunk_size=40, overlap=8)
    index.add(notes_dir)
    return index


def test_grid_table_matches_single_runs_and_is_deterministic(hashed, qa):
    result = compare(hashed, qa, {"mode": ["dense", "bm25", "hybrid"], "k": [1, 3]})
    assert len(result) == 6 and result.keys == ["mode", "k"]
    assert result.metrics == ["hit", "recall", "mrr", "ndcg"]
    assert [(r["mode"], r["k"]) for r in result] == [("dense", 1), ("dense", 3), ("bm25", 1), ("bm25", 3),
                                                      ("hybrid", 1), ("hybrid", 3)]
    for row in result:
        single = evaluate_qa_retrieval(hashed, qa, k=row["k"], mode=row["mode"])
        assert row["ndcg"] == single[f"ndcg@{row['k']}"] and row["recall"] == single[f"recall@{row['k']}"]
    assert compare(hashed, qa, {"mode": ["dense", "bm25", "hybrid"], "k": [1, 3]}).rows == result.rows
    assert result.varied() == ["mode", "k"]
    assert result.best()["ndcg"] == max(r["ndcg"] for r in result)
    assert hashed.embedder.__class__ is HashEmbedder


def test_table_forms(hashed, qa):
    result = compare(hashed, qa, {"mode": ["dense", "bm25"]})
    frame = result.to_pandas()
    assert frame.shape == (2, 6) and list(frame.columns) == ["mode", "k", "hit", "recall", "mrr", "ndcg"]
    lines = str(result).splitlines()
    assert len(lines) == 3 and lines[0].split() == ["mode", "k", "hit", "recall", "mrr", "ndcg"]
    assert lines[1].split()[:2] == ["dense", "5"]
    assert repr(result).startswith("Comparison(name='questions.csv', configurations=2, varied=['mode'], best={'mode': ")
    html = result._repr_html_()
    assert html.count("<tr>") == 3 and "<b>" in html
    assert result.to_dict()["rows"] == result.rows


def test_index_is_rebuilt_once_per_chunk_size(hashed, notes_dir, qa):
    embedder = hashed.embedder
    probe = Index(HashEmbedder(), chunk_size=20, overlap=4)
    probe.add(notes_dir)
    one_build = probe.embedder.calls
    before = embedder.calls
    result = compare(hashed, qa, {"chunk_size": [20, 40], "mode": ["bm25", "dense"], "k": [2, 4]})
    assert embedder.calls - before == one_build  # chunk_size 40 is the index given; 20 is built once
    assert result.keys == ["chunk_size", "overlap", "mode", "k"]
    assert {(r["chunk_size"], r["overlap"]) for r in result} == {(20, 4), (40, 8)}  # overlap kept in proportion
    rebuilt = evaluate_qa_retrieval(probe, qa, k=4, mode="dense")
    row = next(r for r in result if (r["chunk_size"], r["mode"], r["k"]) == (20, "dense", 4))
    assert row["ndcg"] == rebuilt["ndcg@4"]


def test_settings_that_cannot_be_compared(hashed, qa):
    with pytest.raises(ValueError, match="unknown setting"):
        compare(hashed, qa, {"colour": ["red"]})
    with pytest.raises(ValueError, match="answers=True"):
        compare(hashed, qa, {"template": ["tutor", "strict"]})
    with pytest.raises(ValueError, match="no values for k"):
        compare(hashed, qa, {"k": []})
    with pytest.raises(ValueError, match="mode must be one of"):  # before the first configuration runs
        compare(hashed, qa, {"k": [1, 2], "mode": ["dense", "sparse"]})
    with pytest.raises(ValueError, match="chunk_size must be at least 8"):
        compare(hashed, qa, {"chunk_size": [40, 4]})
    from ragbook.qa import QAItem, QASet

    with pytest.raises(ValueError, match="nothing to score"):
        compare(hashed, QASet([QAItem("Why?", "q1", answers=("because",))]), {"k": [1, 2]})
    memory = index_beir({"a": {"title": "", "text": "some words"}}, HashEmbedder())
    with pytest.raises(ValueError, match="documents="):
        compare(memory, qa, {"chunk_size": [8, 16]})


def test_answers_over_a_grid_load_each_model_once(make_index, notes_dir, qa):
    from ragbook.assistant import Assistant

    index = make_index()
    index.add(notes_dir)
    bot = Assistant(index, llm="extractive", k=2)
    result = compare(bot, qa, {"template": ["tutor", "strict"], "k": [1, 2]}, answers=True)
    assert len(result) == 4 and result.keys == ["template", "k"]
    assert {"ndcg", "f1", "em", "citation_precision", "abstention_recall"} <= set(result.metrics)
    assert all(r["abstention_recall"] is not None for r in result)
    assert result.best("f1")["f1"] == max(r["f1"] for r in result)


BEIR = {
    "volcano": {"title": "Volcanoes", "text": "Shield volcanoes have gentle slopes of basalt lava."},
    "photo": {"title": "Photosynthesis", "text": "Plants turn light into chemical energy in the chloroplast."},
    "exam": {"title": "Syllabus", "text": "The final exam counts for 45 percent of the grade."},
}


def test_beir_data_compares_with_graded_document_relevance():
    data = BeirData(BEIR, {"q1": "basalt lava", "q2": "exam grade"}, {"q1": {"volcano": 1}, "q2": {"exam": 2}})
    index = index_beir(BEIR, HashEmbedder(), chunk_size=40, overlap=0)
    result = compare(index, data, {"mode": ["bm25", "dense"], "chunk_size": [40, 8]}, documents=beir_documents(BEIR))
    assert len(result) == 4 and result.keys == ["mode", "chunk_size", "overlap", "k"]
    first = result[0]
    assert first["k"] == 10 and first["ndcg"] == evaluate_retrieval(index, data.queries, data.qrels, k=10,
                                                                        mode="bm25")["ndcg@10"]
    with pytest.raises(ValueError, match="gold answers"):
        compare(index, data, {"mode": ["bm25"]}, answers=True)


def test_plot_returns_a_figure(hashed, qa):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    result = compare(hashed, qa, {"mode": ["dense", "bm25", "hybrid"], "k": [1, 3]})
    fig = result.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax = fig.axes[0]
    assert ax.get_title() == "hit" and ax.get_xlabel() == "mode"
    assert len(ax.patches) == 6 and ax.get_legend_handles_labels()[1] == ["k=1", "k=3"]
    assert sorted(p.get_height() for p in ax.patches) == sorted(r["hit"] for r in result)
    by_k = result.plot("ndcg", x="k")
    assert len(by_k.axes) == 1 and by_k.axes[0].get_xlabel() == "k"
    assert [t.get_text() for t in by_k.axes[0].get_xticklabels()] == ["1", "3"]
    with pytest.raises(ValueError, match="cannot plot"):
        result.plot("bleu")
    with pytest.raises(ValueError, match="x must be one of"):
        result.plot(x="colour")


def test_plot_without_matplotlib_says_how_to_install(hashed, qa, monkeypatch):
    result = Comparison([{"mode": "dense", "k": 5, "ndcg": 0.5}], ["mode", "k"], ["ndcg"])
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        result.plot()
