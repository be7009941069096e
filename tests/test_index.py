from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEmbedder

from ragbook.documents import Document
from ragbook.errors import SettingsError
from ragbook.index import Index, ModelMismatchError, build
from ragbook.storage import IndexFormatError


def _fast(**kw):
    return Index(HashEmbedder(), **kw)


def test_build_search_and_cite(notes_dir, make_index):
    index = make_index()
    report = index.add(notes_dir)
    assert report.ok and sorted(report.added) == ["course/notes/photosynthesis.md", "course/notes/syllabus.txt",
                                                   "course/notes/volcanoes.md"]
    top = index.search("Where in the chloroplast does the Calvin cycle run?", k=3)[0]
    assert top.source == "course/notes/photosynthesis.md"
    assert top.chunk.section == ("Photosynthesis", "Calvin cycle")
    doc_text = (notes_dir / "notes/photosynthesis.md").read_text(encoding="utf-8")
    assert doc_text[top.chunk.start:top.chunk.end] == top.text
    assert "stroma" in top.text
    assert index.search("deadliest volcanic hazard", k=1, mode="dense")[0].source.endswith("volcanoes.md")
    assert index.search("office hours room", k=1, mode="bm25")[0].source.endswith("syllabus.txt")


def test_update_reembeds_only_changed_files(notes_dir):
    emb = HashEmbedder()
    index = Index(emb, chunk_size=40, overlap=0)
    index.add(notes_dir)
    first = emb.embedded
    # each passage, and each distinct context line (title > section) once
    assert first == len(index) + len({c.context for c in index.chunks if c.context})

    again = index.add(notes_dir)
    assert emb.embedded == first and again.embedded == 0
    assert len(again.unchanged) == 3 and not again.added and not again.updated

    vol = notes_dir / "notes/volcanoes.md"
    vol.write_text(vol.read_text(encoding="utf-8") + "\n## Monitoring\n\nSeismometers record tremors before eruptions.\n",
                   encoding="utf-8")
    (notes_dir / "notes/syllabus.txt").unlink()
    (notes_dir / "notes/new.md").write_text("# Tides\n\nThe moon's gravity raises tides.\n", encoding="utf-8")
    report = index.add(notes_dir)
    assert report.updated == ["course/notes/volcanoes.md"]
    assert report.removed == ["course/notes/syllabus.txt"]
    assert report.added == ["course/notes/new.md"]
    # only the new passages were embedded: the unchanged sections of volcanoes.md were reused
    assert 0 < report.embedded <= 3
    assert report.reused >= 2
    assert "course/notes/syllabus.txt" not in index.files
    assert all(c.source != "course/notes/syllabus.txt" for c in index.chunks)
    assert index.search("tremors seismometers", k=1, mode="bm25")[0].source == "course/notes/volcanoes.md"
    # everything stays aligned
    assert len(index._texts) == len(index.vectors) == len(index.bm25) == len(index._locations)


def test_identical_passages_are_stored_once(tmp_path):
    text = "# Shared\n\nThis exact paragraph about lab safety appears in several handouts.\n"
    for name in ("a.md", "b.md", "c.md"):
        (tmp_path / name).write_text(text, encoding="utf-8")
    index = _fast()
    report = index.add(tmp_path)
    assert len(index.chunks) == 3 and len(index) == 1
    assert report.embedded == 1 and report.reused == 2
    hit = index.search("lab safety", k=3, mode="bm25")[0]
    assert len(hit.also_in) == 2 and {hit.source, *(c.source for c in hit.also_in)} == {
        f"{tmp_path.name}/{n}" for n in ("a.md", "b.md", "c.md")}
    index.remove(f"{tmp_path.name}/a.md")
    assert len(index) == 1 and len(index.chunks) == 2
    index.remove("*")
    assert len(index) == 0 and len(index.vectors) == 0


def test_bad_file_is_reported_and_the_rest_indexed(notes_dir):
    (notes_dir / "notes/broken.txt").write_bytes(b"\x00\x01\x02binary\x00" * 100)
    (notes_dir / "notes/empty.md").write_text("", encoding="utf-8")
    report = _fast().add(notes_dir)
    skipped = {p.source: p.reason for p in report.skipped}
    assert set(skipped) == {"course/notes/broken.txt", "course/notes/empty.md"}
    assert "binary" in skipped["course/notes/broken.txt"] and "empty" in skipped["course/notes/empty.md"]
    assert len(report.added) == 3 and not report.ok
    assert "broken.txt" in str(report) and "broken.txt" in report._repr_html_()


def test_a_file_that_turns_bad_keeps_its_previous_version(notes_dir):
    index = _fast()
    index.add(notes_dir)
    before = [c.text for c in index.chunks if c.source.endswith("volcanoes.md")]
    (notes_dir / "notes/volcanoes.md").write_bytes(b"\x00\xff" * 50)
    report = index.add(notes_dir)
    assert "previously indexed version is kept" in report.skipped[0].reason
    assert [c.text for c in index.chunks if c.source.endswith("volcanoes.md")] == before


def test_deleted_root_is_dropped(notes_dir):
    index = _fast()
    index.add([notes_dir / "notes/volcanoes.md", notes_dir / "notes/syllabus.txt"])
    (notes_dir / "notes/volcanoes.md").unlink()
    report = index.add([notes_dir / "notes/volcanoes.md", notes_dir / "notes/syllabus.txt"])
    assert report.removed == ["volcanoes.md"] and report.unchanged == ["syllabus.txt"]


def test_save_load_round_trip_gives_identical_results(notes_dir, tmp_path, make_index):
    index = make_index(chunk_size=64, overlap=8)
    index.add(notes_dir)
    out = index.save(tmp_path / "ix")
    back = Index.load(out)
    assert back.stats() == index.stats() and back.files == index.files
    for mode in ("dense", "bm25", "hybrid"):
        a = index.search("how is the grade computed", k=4, mode=mode)
        b = back.search("how is the grade computed", k=4, mode=mode)
        assert [(h.chunk.id, h.source, h.chunk.section, h.chunk.start) for h in a] == \
               [(h.chunk.id, h.source, h.chunk.section, h.chunk.start) for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == 1 and manifest["embedding"]["dimension"] == 384
    assert manifest["chunking"] == {"chunk_size": 64, "overlap": 8, "max_tokens": 254, "context": True}
    assert all(len(rec["sha256"]) == 64 for rec in manifest["files"].values())
    data = out / manifest["data"]
    names = sorted(p.name for p in data.iterdir())
    # a flat index keeps its vectors once: vectors.npy, no dense.faiss (rebuilt from it on load)
    assert names == sorted(["chunks.jsonl", "vectors.npy", "ids.npy", "bm25.json", "bm25.indptr.npy",
                            "bm25.rows.npy", "bm25.tf.npy", "bm25.doc_len.npy"])
    first = json.loads((data / "chunks.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"id", "text", "context", "locations"}
    assert first["context"] and back.locations(0)[0].context == first["context"]  # the title line, saved once a row


def test_updating_a_loaded_index_and_saving_again(notes_dir, tmp_path):
    out = tmp_path / "ix"
    build(notes_dir, out=out, embedding_model=HashEmbedder())
    index = Index.load(out, embedding_model=HashEmbedder())
    (notes_dir / "notes/extra.md").write_text("# Extra\n\nGlaciers carve U-shaped valleys.\n", encoding="utf-8")
    report = index.add()  # the recorded folder
    assert report.added == ["course/notes/extra.md"]
    index.save()
    again = Index.load(out, embedding_model=HashEmbedder())
    assert again.search("glaciers valleys", k=1, mode="bm25")[0].source == "course/notes/extra.md"
    assert [p.name for p in out.iterdir() if p.name.startswith("data-")] == [json.loads(
        (out / "manifest.json").read_text(encoding="utf-8"))["data"]]


def test_model_mismatch_is_a_clear_error(notes_dir, tmp_path, make_index):
    index = make_index()
    index.add(notes_dir)
    index.save(tmp_path / "ix")
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2"):
        Index.load(tmp_path / "ix", embedding_model=HashEmbedder(384)).search("anything")
    with pytest.raises(ModelMismatchError):
        Index.load(tmp_path / "ix", embedding_model=HashEmbedder(32)).search("anything")


def test_same_model_at_another_path_is_accepted(notes_dir, tmp_path, make_index, embedder):
    index = make_index()
    index.add(notes_dir)
    index.save(tmp_path / "ix")
    copy = tmp_path / "model-copy"
    shutil.copytree(embedder._target, copy)
    back = Index.load(tmp_path / "ix", embedding_model=copy)
    assert back.search("Calvin cycle", k=1)[0].source.endswith("photosynthesis.md")


def test_damaged_or_foreign_folders_are_clear_errors(notes_dir, tmp_path):
    out = tmp_path / "ix"
    build(notes_dir, out=out, embedding_model=HashEmbedder())
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))

    vectors = out / manifest["data"] / "vectors.npy"
    raw = bytearray(vectors.read_bytes())
    raw[-1] ^= 0xFF
    vectors.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match="damaged"):
        Index.load(out)

    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexFormatError, match="format version 99"):
        Index.load(out)
    manifest_path.write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexFormatError, match="not valid JSON"):
        Index.load(out)
    with pytest.raises(IndexFormatError, match="no manifest.json"):
        Index.load(tmp_path)

    precious = tmp_path / "my-documents"
    precious.mkdir()
    (precious / "thesis.md").write_text("do not delete", encoding="utf-8")
    with pytest.raises(IndexFormatError, match="not a ragbook index"):
        _fast().save(precious)
    assert (precious / "thesis.md").read_text(encoding="utf-8") == "do not delete"


def test_failed_save_leaves_the_previous_index(notes_dir, tmp_path, monkeypatch):
    out = tmp_path / "ix"
    index = build(notes_dir, out=out, embedding_model=HashEmbedder())
    before = Index.load(out, embedding_model=HashEmbedder()).stats()
    index.add_documents([Document(text="A new page about comets.", source="comets.txt")])

    def boom(folder):
        raise OSError("disk full")

    monkeypatch.setattr(index.bm25, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        index.save(out)
    assert Index.load(out, embedding_model=HashEmbedder()).stats() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "pq", "hnsw-pq", "ivf-pq"])
def test_index_types_agree_on_small_data_and_update(kind, tmp_path):
    docs = [Document(text=f"Topic {i}: " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(20)), source=f"d{i}.txt")
            for i in range(300)]
    index = Index(HashEmbedder(64), index_type=kind)
    index.add_documents(docs)
    exact = Index(HashEmbedder(64), index_type="flat")
    exact.add_documents(docs)
    q = docs[17].text
    assert index.search(q, k=1, mode="dense")[0].source == exact.search(q, k=1, mode="dense")[0].source == "d17.txt"
    index.remove(["d17.txt", "d18.txt"])
    index.add_documents([Document(text="Completely new words here", source="new.txt")])
    assert index.search(q, k=1, mode="dense")[0].source != "d17.txt"
    assert index.search("Completely new words here", k=1, mode="dense")[0].source == "new.txt"
    index.save(tmp_path / kind)
    back = Index.load(tmp_path / kind, embedding_model=HashEmbedder(64))
    assert back.stats()["index_type"] == kind
    assert back.search("Completely new words here", k=1, mode="dense")[0].source == "new.txt"


def test_auto_switches_to_hnsw_above_threshold():
    index = Index(HashEmbedder(16))
    index.vectors.threshold = 50
    index.add_documents([Document(text=f"doc number {i} " + "x" * (i % 5), source=f"{i}.txt") for i in range(60)])
    assert index.vectors.kind_in_use == "hnsw"
    assert index.search("doc number 7", k=1, mode="bm25")[0].source == "7.txt"


def test_reprs_are_concise_and_html_is_escaped(tmp_path):
    (tmp_path / "evil.md").write_text("# <script>alert(1)</script>\n\nText with <b>tags</b> & more.\n", encoding="utf-8")
    index = _fast()
    index.add(tmp_path)
    r = repr(index)
    assert r.startswith("Index(") and "0x" not in r and len(r) < 200
    html = index._repr_html_()
    assert "<script>" not in html
    results = index.search("tags", k=1, mode="bm25")
    html = results._repr_html_()
    assert "<script>" not in html and "&lt;b&gt;" in html and "<mark>" in html
    assert "<script>" not in results[0].chunk._repr_html_()


def test_empty_query_and_empty_index():
    index = _fast()
    assert len(index.search("anything")) == 0
    index.add_documents([Document(text="something", source="s.txt")])
    with pytest.raises(ValueError, match="empty"):
        index.search("   ")


def test_unreadable_file_is_reported(notes_dir):
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    path = notes_dir / "notes/secret.md"
    path.write_text("# Secret\n\nhidden", encoding="utf-8")
    path.chmod(0)
    try:
        report = _fast().add(notes_dir)
    finally:
        path.chmod(0o644)
    assert any(p.source.endswith("secret.md") for p in report.skipped)


def test_paths_in_index_are_relative_to_the_root(notes_dir, monkeypatch):
    monkeypatch.chdir(notes_dir.parent)
    index = _fast()
    index.add(Path("course"))
    assert index.sources == ["course/notes/photosynthesis.md", "course/notes/syllabus.txt", "course/notes/volcanoes.md"]


@pytest.mark.parametrize("kind", ["pq", "hnsw-pq", "ivf-pq"])
def test_pq_kinds_rank_candidates_with_exact_scores(kind):
    from ragbook.vectors import VectorStore

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(40, 64))
    data = centers[rng.integers(0, 40, 3000)] + 0.35 * rng.normal(size=(3000, 64))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    queries = data[:50] + 0.05 * rng.normal(size=(50, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    store = VectorStore(64, kind)
    assert store.pq_m == 8  # one byte per 8 dimensions
    store.update(np.zeros(0, dtype=bool), np.arange(3000, dtype=np.int64) * 7919, data)
    found = 0
    for q in queries:
        rows, scores = store.search(q, 10)
        exact = np.argsort(-(data @ q))[:10]
        found += len(set(rows.tolist()) & set(exact.tolist()))
        # cosines from the float16 matrix (within 0.002), not code distances (off by ~0.05)
        np.testing.assert_allclose(scores, data[rows] @ q, atol=2e-3)
        assert list(scores) == sorted(scores, reverse=True)
    assert found / 500 >= 0.9
    assert store.settings()["in_use"] == kind and store.settings()["refine"] == 10
    assert store.vectors.dtype == np.float16 and store.settings()["dtype"] == "float16"


def test_the_old_name_of_embedding_model_still_works_with_a_warning(notes_dir, tmp_path):
    out = tmp_path / "ix"
    with pytest.warns(DeprecationWarning, match="model= is now embedding_model="):
        build(notes_dir, out=out, model=HashEmbedder())
    with pytest.warns(DeprecationWarning, match="Index.load"):
        assert len(Index.load(out, model=HashEmbedder())) > 0
    with pytest.raises(SettingsError, match="embedding_model= only"):
        Index(HashEmbedder(), model=HashEmbedder())
    assert "embedding_model=" in repr(Index.load(out, embedding_model=HashEmbedder()))
