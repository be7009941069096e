from __future__ import annotations

import shutil

import numpy as np
import pytest
from fakes import HashEmbedder

from ragbook.documents import Document, Segment
from ragbook.index import Index
from ragbook.retrieval import Retriever


@pytest.fixture()
def book(make_index):
    """A three-page 'PDF' and two notes, indexed with the real model."""
    pages = [
        "Chapter 1. Cells are the basic unit of life. The nucleus stores DNA.",
        "Chapter 2. Mitochondria produce ATP through cellular respiration.",
        "Chapter 3. Ribosomes build proteins from amino acids.",
    ]
    text, segs, pos = "", [], 0
    for i, page in enumerate(pages, start=1):
        text += page + "\n\n"
        segs.append(Segment(pos, pos + len(page), page=i))
        pos = len(text)
    docs = [
        Document(text=text, source="biology.pdf", title="Biology", segments=segs, metadata={"format": "pdf"}),
        Document(text="Mitochondria are called the powerhouse of the cell.", source="notes/a.md",
                 metadata={"format": "markdown"}),
        Document(text="Mitochondria are often called the powerhouse of the cell!", source="notes/b.md",
                 metadata={"format": "markdown"}),
        Document(text="The French Revolution began in 1789.", source="notes/history.md", metadata={"format": "markdown"}),
    ]
    index = make_index()
    index.add_documents(docs)
    return index


def test_hits_explain_themselves(book):
    results = book.search("What produces ATP in the cell?", k=3, fusion="rrf")
    top = results[0]
    assert top.rank == 1 and top.dense_rank is not None and top.bm25_rank is not None
    assert top.fused_score == pytest.approx(top.score)
    assert top.fused_score == pytest.approx(0.5 / (60 + top.dense_rank) + 0.5 / (60 + top.bm25_rank))
    unmatched = [h for h in book.search("What produces ATP in the cell?", k=10, fusion="rrf") if h.bm25_score == 0]
    for h in unmatched:  # no shared word: no BM25 rank, no BM25 share of the fused score
        assert h.bm25_rank is None and h.fused_score == pytest.approx(0.5 / (60 + h.dense_rank))
    assert "atp" in [t.lower() for t in top.matched_terms]
    assert "dense" in top.explain() and "bm25" in top.explain()
    assert [h.rank for h in results] == [1, 2, 3]
    assert results.timings["total"] >= results.timings["embed"] > 0


def test_default_is_weighted_fusion_of_normalised_scores(book):
    results = book.search("What produces ATP in the cell?", k=3)
    assert results.settings["fusion"] == "weighted" and results[0].fused_score == pytest.approx(results[0].score)
    assert all(0.0 <= h.fused_score <= 1.0 for h in results)


def test_modes_and_weighted_fusion(book):
    dense = book.search("powerhouse of the cell", k=3, mode="dense")
    assert dense[0].bm25_score is None and dense[0].score == pytest.approx(dense[0].dense_score)
    scores = [h.score for h in dense]
    assert scores == sorted(scores, reverse=True)
    bm25 = book.search("powerhouse", k=5, mode="bm25")
    assert {h.source for h in bm25} == {"notes/a.md", "notes/b.md"}  # only passages with the word
    w = book.search("powerhouse of the cell", k=3, fusion="weighted", weight=1.0)
    assert [h.chunk.id for h in w] == [h.chunk.id for h in dense]  # weight 1 = dense only
    assert 0.0 <= w[-1].score <= w[0].score <= 1.0


def test_filters(book):
    pdf_only = book.search("cells", k=5, filters={"source": "*.pdf"})
    assert pdf_only and all(h.source == "biology.pdf" for h in pdf_only)
    pages = book.search("cells proteins", k=5, filters={"page": (2, 3)})
    assert {h.page for h in pages} <= {2, 3} and pages
    assert book.search("cells", filters={"format": "markdown"}, k=10)[0].source.startswith("notes/")
    assert len(book.search("cells", filters={"source": ["notes/a.md", "notes/history.md"]}, k=10)) == 2
    assert len(book.search("cells", filters={"where": lambda c: c.page == 1}, k=10)) == 1
    assert len(book.search("cells", filters={"source": "nothing/*"})) == 0


def test_min_score_drops_weak_hits(book):
    everything = book.search("French Revolution", k=10, mode="dense")
    strong = book.search("French Revolution", k=10, mode="dense", min_score=0.5)
    assert len(strong) < len(everything)
    assert strong[0].source == "notes/history.md" and all(h.score >= 0.5 for h in strong)


def test_mmr_removes_near_duplicates(book):
    plain = book.search("mitochondria powerhouse of the cell", k=2, mode="dense")
    assert {h.source for h in plain} == {"notes/a.md", "notes/b.md"}  # near-identical pair
    diverse = book.search("mitochondria powerhouse of the cell", k=2, mode="dense", mmr=0.3)
    assert len({h.source for h in diverse} & {"notes/a.md", "notes/b.md"}) == 1
    second = diverse[1]
    assert second.rank_before_mmr > 2 and second.mmr_penalty is not None and "mmr" in second.explain()


def test_bad_settings_are_clear(book):
    for bad in ({"mode": "semantic"}, {"fusion": "sum"}, {"k": 0}, {"weight": 2}, {"mmr": -1}):
        with pytest.raises(ValueError):
            Retriever(book, **bad)


def test_retriever_overrides_do_not_stick(book):
    r = Retriever(book, k=2)
    assert len(r.search("cells", k=4)) == 4
    assert len(r.search("cells")) == 2 and r.k == 2
    assert "k=2" in repr(r)


def test_results_display_and_table(book):
    results = book.search("ribosomes", k=2)
    assert "biology.pdf" in results.to_table() and "page" in results.to_table().splitlines()[0]
    assert repr(results).startswith("Results(") and "ribosomes" in repr(results)
    html = results._repr_html_()
    assert "<table" in html and "ribosomes" in html.lower()


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory, embedder):
    """A randomly initialised BERT cross-encoder saved to a folder (no reranker weights exist offline)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("cross-encoder")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(f"{embedder._target}/{name}", folder / name)
    return folder


def test_cross_encoder_reranking(book, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    results = book.search("What produces ATP?", k=4, reranker=str(tiny_cross_encoder), rerank_depth=6)
    scores = [h.rerank_score for h in results]
    assert None not in scores and scores == sorted(scores, reverse=True)
    assert [h.score for h in results] == scores
    direct = CrossEncoder(str(tiny_cross_encoder)).predict([("What produces ATP?", h.text) for h in results])
    np.testing.assert_allclose(np.asarray(direct).reshape(-1), scores, rtol=1e-4, atol=1e-5)
    assert all(1 <= h.rank_before_rerank <= 6 for h in results)
    assert "reranked" in results[0].explain()


def test_fast_stand_in_embedder_runs_all_modes():
    index = Index(HashEmbedder())
    index.add_documents([Document(text=f"passage {i} about topic {i % 3}", source=f"{i}.txt") for i in range(30)])
    for mode in ("dense", "bm25", "hybrid"):
        assert len(index.search("topic 1", k=5, mode=mode)) == 5
