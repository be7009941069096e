"""Search grouped by document: "which papers talk about X", each file with its best passages.

The oracle for every mode is the passage ranking itself: search with every passage as a
candidate, then take the files in the order their first passage appears.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from fakes import HashEmbedder

from ragbook.documents import Document, Segment
from ragbook.errors import SettingsError
from ragbook.grouping import DocumentHit, DocumentResults
from ragbook.index import Index

SHARED_TEXT = "Lava tubes drain molten rock beneath a hardened crust."


def paper(source: str, pages: list[str], title: str = "", fmt: str = "pdf") -> Document:
    """A document whose pages are separate passages (chunks never cross a segment)."""
    text, segments = "", []
    for number, page in enumerate(pages, start=1):
        segments.append(Segment(len(text), len(text) + len(page), page=number))
        text += page + "\n\n"
    return Document(text=text, source=source, title=title, segments=segments, metadata={"format": fmt})


DOCS = [
    paper("papers/lava.pdf", ["Basalt lava flows downhill from shield volcanoes.", "Cooling lava hardens into basalt rock.",
                              "Pahoehoe lava shows a smooth ropy surface.", "The museum shop sells postcards of islands."],
          title="On lava"),
    paper("papers/ash.pdf", ["Volcanic ash clouds ground aircraft for days.", "Ash falls on villages near the volcano.",
                             "Collapsing lava domes release ash flows."], title="Ash"),
    paper("papers/cells.pdf", ["Mitochondria produce ATP inside cells.", "Ribosomes build proteins from amino acids."],
          title="Cells"),
    Document(text=SHARED_TEXT, source="notes/a.md", metadata={"format": "markdown"}),
    Document(text=SHARED_TEXT, source="notes/b.md", metadata={"format": "markdown"}),
    Document(text="The French Revolution began in 1789 in Paris.", source="notes/history.md", metadata={"format": "markdown"}),
]
# field notes that compete for every query, so a small candidate pool must grow to find the files
VOCABULARY = ["lava", "rock", "volcano", "cells", "basalt", "crater", "magma", "river", "stone", "glacier", "island"]
DOCS += [Document(text=f"Field note {i}: " + " ".join(VOCABULARY[(i * j) % len(VOCABULARY)] for j in range(1, 4 + i % 3)) + ".",
                  source=f"field/{i:02d}.md", metadata={"format": "markdown"}) for i in range(24)]
FILES = {d.source for d in DOCS}


def files_with(*words: str) -> set[str]:
    return {d.source for d in DOCS if set(re.findall(r"\w+", d.text.lower())) & set(words)}


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.queries = 0

    def encode_queries(self, texts):
        self.queries += 1
        return super().encode_queries(texts)


@pytest.fixture()
def index():
    ix = Index(CountingEmbedder(), context=False)
    ix.add_documents(DOCS)
    return ix


def oracle(index: Index, query: str, passages: int = 3, **settings):
    """Files in the order their first passage appears when every passage is a candidate, with their passages."""
    n = len(index)
    hits = index.search(query, k=n, candidates=n, **settings)
    keep = settings.get("filters") or {}
    grouped: dict[str, list[str]] = {}
    for hit in hits:
        for chunk in [hit.chunk, *hit.also_in]:
            if all(chunk.source == v if key == "source" else True for key, v in keep.items()):
                texts = grouped.setdefault(chunk.source, [])
                if len(texts) < passages and (not texts or texts[-1] != chunk.text):
                    texts.append(chunk.text)
    return grouped


def test_distinct_documents_ranked_by_their_best_passage(index):
    results = index.retriever().search_documents("lava basalt volcanoes", k=3)
    assert isinstance(results, DocumentResults) and len(results) == 3
    assert len(set(results.sources)) == 3 and results.sources[0] == "papers/lava.pdf"
    assert [d.rank for d in results] == [1, 2, 3]
    scores = [d.score for d in results]
    assert scores == sorted(scores, reverse=True)
    for doc in results:
        assert isinstance(doc, DocumentHit) and doc.score == doc.hits[0].score and doc.relevance == doc.hits[0].relevance
        assert all(h.source == doc.source for h in doc.hits)
    top = index.search("lava basalt volcanoes", k=1)[0]
    assert results[0].best.chunk.id == top.chunk.id and results[0].score == pytest.approx(top.score)
    assert results[0].title == "On lava" and results[0].citation() == top.citation()
    assert results.settings["k"] == 3 and results.settings["passages"] == 3


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_gives_the_files_of_the_full_passage_ranking(index, mode):
    query = "lava ash rock"
    expected = list(oracle(index, query, mode=mode))
    # one candidate a side: the pool must grow until no passage left out could outrank the k-th file
    found = index.retriever(mode=mode, candidates=1).search_documents(query, k=4, passages=1)
    assert found.sources == expected[:4]
    assert found.settings["mode"] == mode
    full = index.retriever(mode=mode).search_documents(query, k=100)
    assert full.sources == expected
    if mode == "bm25":  # only passages sharing a word with the query
        assert set(full.sources) == files_with("lava", "ash", "rock")
    else:
        assert set(full.sources) == FILES


def test_rank_fusion_groups_the_same_ranking(index):
    query = "volcano ash lava"
    found = index.retriever(fusion="rrf", candidates=len(index)).search_documents(query, k=100)
    assert found.sources == list(oracle(index, query, fusion="rrf"))
    fused = [d.best.fused_score for d in found]
    assert fused == sorted(fused, reverse=True) and all(d.score == d.best.fused_score for d in found)


def test_query_is_embedded_once_while_the_pool_grows(index):
    before = index.embedder.queries
    results = index.retriever(candidates=1).search_documents("French Revolution cells lava", k=len(FILES), passages=1)
    assert index.embedder.queries == before + 1
    assert set(results.sources) == FILES


def test_k_larger_than_the_number_of_documents(index):
    results = index.retriever(mode="dense").search_documents("anything at all", k=50)
    assert len(results) == len(FILES) and set(results.sources) == FILES
    assert set(index.retriever().search_documents("lava", k=50, mode="bm25").sources) == files_with("lava")


def test_passages_are_each_documents_best_in_rank_order(index):
    query = "lava basalt ash"
    expected = oracle(index, query, passages=2)
    results = index.retriever().search_documents(query, k=100, passages=2)
    assert set(results.sources) == FILES
    for doc in results:
        assert [h.text for h in doc.hits] == expected[doc.source]
        ranks = [h.rank for h in doc.hits]
        assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
        assert [h.score for h in doc.hits] == sorted((h.score for h in doc.hits), reverse=True)
    lava = results[results.sources.index("papers/lava.pdf")]
    assert len(lava.hits) == 2 and {h.page for h in lava.hits} <= {1, 2, 3, 4}
    one = index.retriever().search_documents(query, k=100, passages=1)
    assert all(len(d.hits) == 1 for d in one) and one.sources == results.sources
    every = index.retriever().search_documents(query, k=100, passages=10)
    assert [h.page for h in every[every.sources.index("papers/lava.pdf")].hits] != []
    assert sorted(h.page for h in every[every.sources.index("papers/lava.pdf")].hits) == [1, 2, 3, 4]


def test_a_passage_in_two_files_counts_for_both(index):
    row = next(r for r in range(len(index)) if index.text(r) == SHARED_TEXT)
    assert sorted(c.source for c in index.locations(row)) == ["notes/a.md", "notes/b.md"]  # stored once
    results = index.retriever().search_documents("lava tubes drain molten rock", k=2)
    assert sorted(results.sources) == ["notes/a.md", "notes/b.md"]
    a, b = sorted(results, key=lambda d: d.source)
    assert a.best.chunk.source == "notes/a.md" and b.best.chunk.source == "notes/b.md"  # each cites its own file
    assert a.best.rank == b.best.rank == 1 and a.score == b.score
    assert [c.source for c in a.best.also_in] == ["notes/b.md"] and [c.source for c in b.best.also_in] == ["notes/a.md"]
    first = index.retriever().search_documents("lava tubes drain molten rock", k=1)
    assert first.sources == ["notes/a.md"] and first[0].best.also_in[0].source == "notes/b.md"  # k is k
    only_b = index.retriever(filters={"source": "notes/b.md"}).search_documents("lava tubes drain molten rock", k=5)
    assert only_b.sources == ["notes/b.md"]


def test_filters_apply_as_in_search(index):
    pdfs = index.retriever(filters={"format": "pdf"}).search_documents("lava ash cells", k=10)
    assert set(pdfs.sources) == {"papers/lava.pdf", "papers/ash.pdf", "papers/cells.pdf"}
    later = index.retriever().search_documents("lava ash", k=10, filters={"page": (2, None)})
    assert later and all(h.page >= 2 for d in later for h in d.hits)
    assert "notes/a.md" not in later.sources  # no page: not in range
    where = index.retriever().search_documents("lava", k=10, filters={"where": lambda c: c.source.startswith("notes/")})
    assert set(where.sources) <= {"notes/a.md", "notes/b.md", "notes/history.md"} and where
    assert len(index.retriever().search_documents("lava", filters={"source": "nothing/*"})) == 0
    with pytest.raises(SettingsError, match="unknown filter key"):
        index.retriever().search_documents("lava", filters={"colour": "red"})


def test_min_score_drops_documents_whose_best_passage_is_weak(index):
    everything = index.retriever(mode="dense").search_documents("Basalt lava flows downhill", k=10)
    threshold = everything[1].relevance + 1e-6  # only the best document's passages reach it
    strong = index.retriever(mode="dense", min_score=threshold, candidates=1).search_documents("Basalt lava flows downhill", k=10)
    assert strong.sources == everything.sources[:1]
    assert all(h.relevance >= threshold for d in strong for h in d.hits)
    assert len(index.retriever(mode="bm25").search_documents("zxqv florb", k=5)) == 0


class WordCountReranker:
    """A stand-in reranker: scores a passage by how often it says "ash"."""

    name = "test/ash-counter"

    def score(self, query, texts):
        return [float(t.lower().count("ash")) - len(t) / 1000 for t in texts]


def test_reranking_reorders_the_documents(index):
    query = "lava volcano"
    n = len(index)
    reranked = index.search(query, k=n, candidates=n, reranker=WordCountReranker(), rerank_depth=n)
    order = list(dict.fromkeys(c.source for h in reranked for c in [h.chunk, *h.also_in]))
    found = index.retriever(reranker=WordCountReranker(), rerank_depth=n).search_documents(query, k=10)
    assert found.sources == order[:10] and found.sources[0] == "papers/ash.pdf"
    assert all(h.rerank_score is not None for d in found for h in d.hits)
    assert found.settings["reranker"] == "test/ash-counter"


def test_empty_index_and_bad_settings(index):
    empty = Index(HashEmbedder()).retriever().search_documents("lava")
    assert len(empty) == 0 and list(empty) == [] and "documents=0" in repr(empty)
    assert "<table" in empty._repr_html_() and empty.to_dict() == {"query": "lava", "documents": []}
    assert empty.to_table().splitlines() == ["#  score  hits  document (best passage)"]
    r = index.retriever()
    for bad in ({"passages": 0}, {"k": 0}, {"k": 2.5}):
        with pytest.raises(SettingsError):
            r.search_documents("lava", **bad)
    with pytest.raises(SettingsError, match="unknown retrieval setting.*colour"):
        r.search_documents("lava", colour="red")
    with pytest.raises(SettingsError, match="query is empty"):
        r.search_documents("   ")
    assert r.search_documents("lava", mmr=0.5).settings["mmr"] is None  # MMR does not apply: files are distinct
    assert len(Index(HashEmbedder()).retriever(k=7).search_documents("x")) == 0
    assert index.retriever(k=2).search_documents("lava").settings["k"] == 2  # k defaults to the retriever's


def test_save_load_and_approximate_index_give_the_same_documents(index, tmp_path):
    before = index.retriever().search_documents("lava ash rock", k=4)
    index.save(tmp_path / "ix")
    loaded = Index.load(tmp_path / "ix", embedding_model=HashEmbedder())
    after = loaded.retriever().search_documents("lava ash rock", k=4)
    assert after.sources == before.sources and [d.score for d in after] == [d.score for d in before]
    hnsw = Index(HashEmbedder(), index_type="hnsw", context=False)
    hnsw.add_documents(DOCS)
    assert hnsw.retriever(candidates=1).search_documents("lava ash rock", k=4).sources == before.sources


HOSTILE_TITLE = "Lava <script>alert('title')</script>"
HOSTILE_TEXT = "Lava <script>alert('text')</script> and <img src=x onerror=alert(1)> flows & cools \"fast\"."


def test_repr_html_and_exports_escape_untrusted_text():
    ix = Index(HashEmbedder())
    ix.add_documents([Document(text=HOSTILE_TEXT, source="evil <b>paper.md", title=HOSTILE_TITLE),
                      Document(text="Lava is hot.", source="plain.md")])
    results = ix.retriever().search_documents("lava flows", k=2)
    assert results.sources[0] == "evil <b>paper.md"
    html = results._repr_html_() + results[0]._repr_html_()
    for raw in ("<script", "<img", "<b>paper"):
        assert raw not in html
    for tag in re.findall(r"<[a-zA-Z][^>]*>", html):  # the handler is shown as text, never inside a tag
        assert not re.search(r"\son\w+\s*=", re.sub(r"'[^']*'", "''", tag)), tag
    assert "&lt;script&gt;alert(&#x27;title&#x27;)" in html and "&lt;script&gt;alert(&#x27;text&#x27;)" in html
    assert "<mark>Lava</mark>" in html and "javascript" not in html.lower()
    text = repr(results)
    assert text == repr(results) and "\n" not in text and " at 0x" not in text
    assert text == "DocumentResults(query='lava flows', documents=2, mode='hybrid', top='evil <b>paper.md')"
    assert repr(results[0]).startswith("DocumentHit(rank=1, score=") and "hits=1" in repr(results[0])
    data = json.loads(json.dumps(results.to_dict()))
    assert data["documents"][0]["title"] == HOSTILE_TITLE and data["documents"][0]["hits"][0]["text"] == HOSTILE_TEXT
    assert data["documents"][0]["citation"] == "evil <b>paper.md"
    frame = results.to_pandas()
    assert list(frame["source"]) == ["evil <b>paper.md", "plain.md"] and list(frame["rank"]) == [1, 2]
    assert frame.loc[0, "text"] == HOSTILE_TEXT and np.all(frame["passages"] == 1)
    assert f"{HOSTILE_TITLE} — evil <b>paper.md" in results.to_table()  # the title, where the citation lacks it


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture()
def built(notes_dir, tmp_path, capsys):
    from ragbook.cli import main

    out = tmp_path / "ix"
    assert main(["--no-progress", "index", str(notes_dir), "--out", str(out), "--chunk-size", "60", "--overlap", "5",
                 "--index-type", "flat"]) == 0
    capsys.readouterr()
    return out


def test_cli_search_documents(built, capsys):
    from ragbook.cli import main

    assert main(["search", str(built), "volcano lava hazards", "--documents", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "score", "hits", "document", "(best", "passage)"]
    assert len(lines) == 3 and "volcanoes.md" in lines[1] and lines[1].split()[0] == "1"
    assert len({line.split()[-1] for line in lines[1:]}) == 2

    assert main(["search", str(built), "volcano lava hazards", "--documents", "-k", "10", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["rank"] for d in docs] == [1, 2, 3] and len({d["source"] for d in docs}) == 3
    assert docs[0]["source"].endswith("volcanoes.md") and 1 <= len(docs[0]["hits"]) <= 3
    assert docs[0]["citation"].startswith(docs[0]["source"]) and docs[0]["hits"][0]["source"] == docs[0]["source"]
    assert [h["rank"] for h in docs[0]["hits"]] == sorted(h["rank"] for h in docs[0]["hits"])

    assert main(["search", str(built), "grade exam", "--documents", "--mode", "bm25", "--filter", "source=*.txt",
                 "--explain"]) == 0
    out = capsys.readouterr().out
    assert "syllabus.txt" in out and "volcanoes" not in out and "bm25" in out and "(passage #1)" in out

    assert main(["search", str(built), "zxqv florb", "--documents", "--mode", "bm25"]) == 0
    assert "No documents" in capsys.readouterr().out

    assert main(["search", str(built), "lava", "--documents", "--mmr", "0.5"]) == 2
    assert "--mmr does not apply" in capsys.readouterr().err
