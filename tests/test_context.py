"""What identifies a document is searchable: the context line, joined headings, title from the name."""

from __future__ import annotations

import numpy as np
import pytest

from ragbook.chunking import MAX_CONTEXT_TOKENS, Chunker, context_header, join_headings
from ragbook.documents import Document, Segment
from ragbook.index import Index
from ragbook.loaders import discover, load, title_from_name
from ragbook.loaders.text import markdown_headings, section_segments


@pytest.fixture(scope="module")
def tok(embedder):
    return embedder.tokenizer


def test_context_header_names_title_byline_date_and_section():
    assert context_header("1937 Roosevelt", (), {}) == "1937 Roosevelt"
    meta = {"authors": ["Ada Lovelace", "Charles Babbage", "Mary Somerville", "John Herschel"], "date": "1843-09-01"}
    assert context_header("Notes", ("Note G",), meta) == \
        "Notes (Ada Lovelace, Charles Babbage, Mary Somerville et al.; 1843-09-01) > Note G"
    # Markdown front matter says "author"; a first heading that repeats the title is not said twice
    assert context_header("Loops", ("Loops", "For loops"), {"author": "Kim"}) == "Loops (Kim) > For loops"
    # a date already in the title is not repeated; whitespace and newlines never reach the line
    assert context_header("1961\nKennedy", (" Part  one ",), {"date": "1961"}) == "1961 Kennedy > Part one"
    assert context_header("", ("Only", "a path"), {}) == "Only > a path"


def test_title_from_a_file_name():
    assert title_from_name("1937-Roosevelt") == "1937 Roosevelt"
    assert title_from_name("lab_02__loops") == "lab 02 loops"
    assert title_from_name("---") == "---"  # nothing to tidy into: kept


def test_documents_without_a_title_get_one_from_their_name(tmp_path):
    (tmp_path / "1937-Roosevelt.txt").write_text("We see one third of a nation ill-housed.", encoding="utf-8")
    (tmp_path / "notes.md").write_text("# Photosynthesis\n\nLight makes sugar.", encoding="utf-8")
    titles = {d.source.split("/")[-1]: d.title for d in load(tmp_path)}
    assert titles == {"1937-Roosevelt.txt": "1937 Roosevelt", "notes.md": "Photosynthesis"}


def test_each_chunk_carries_its_context_and_loses_no_budget_to_it(embedder, tok):
    text = "# Volcanoes\n\n" + "\n\n".join(f"## Part {i}\n\n" + "Lava flows downhill and cools into rock. " * 40
                                         for i in range(3))
    doc = Document(text=text, source="v.md", title="Earth Science Notes",
                   segments=section_segments(text, markdown_headings(text)),
                   metadata={"authors": ["R. Tremor"], "date": "2024"})
    chunker = Chunker(chunk_size=254, overlap=16, tokenizer=tok, max_tokens=embedder.max_tokens)
    chunks = chunker.split(doc)
    assert {c.context for c in chunks} == {f"Earth Science Notes (R. Tremor; 2024) > Volcanoes > Part {i}"
                                           for i in range(3)}
    for c in chunks:
        assert len(tok.encode(c.text, add_special_tokens=False).ids) <= embedder.max_tokens
        assert text[c.start:c.end] == c.text and c.context not in c.text
    plain = Chunker(chunk_size=254, overlap=16, tokenizer=tok, max_tokens=embedder.max_tokens, context=False).split(doc)
    assert all(c.context == "" for c in plain)
    # the line is embedded on its own: the passages are the very same with or without it
    assert [(c.start, c.end) for c in chunks] == [(c.start, c.end) for c in plain]
    assert chunks[0].id != plain[0].id  # but what is embedded differs, and so does the id


def test_the_vector_is_the_passage_moved_towards_its_context_line(embedder):
    from ragbook.index import CONTEXT_WEIGHT

    index = Index(embedder)
    index.add_documents([Document(text="We see one third of a nation ill-housed.", source="a.txt", title="1937 Roosevelt")])
    text, line = embedder.encode_documents(["We see one third of a nation ill-housed.", "1937 Roosevelt"])
    expected = text + CONTEXT_WEIGHT * line
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(np.asarray(index.vectors.vectors)[0], expected, atol=1e-5)
    # BM25 reads the line too, as part of the passage
    assert index.search("Roosevelt", k=1, mode="bm25")[0].source == "a.txt"
    assert float(index.bm25.doc_len[0]) == len(index.bm25.analyzer("We see one third of a nation ill-housed.")) + 2 * 2


def test_a_title_that_is_a_paragraph_is_cut_to_the_context_budget(tok, embedder):
    doc = Document(text="Short body text.", source="x.pdf", title="word " * 500)
    chunk = Chunker(tokenizer=tok, max_tokens=embedder.max_tokens).split(doc)[0]
    assert chunk.context.endswith("…")
    assert len(tok.encode(chunk.context, add_special_tokens=False).ids) <= MAX_CONTEXT_TOKENS + 2


def test_identical_text_under_different_titles_is_two_passages(embedder):
    index = Index(embedder, chunk_size=64, overlap=0)
    same = "Submit the form before the deadline on Friday."
    index.add_documents([Document(text=same, source="a.txt", title="Biology handbook"),
                         Document(text=same, source="b.txt", title="Chemistry handbook")])
    assert len(index) == 2  # each embedded under its own title
    hit = index.search("chemistry handbook deadline", k=1, mode="bm25")[0]
    assert hit.source == "b.txt" and hit.text == same  # the passage shown is the text, not the context line
    # the same passage under the same context is still stored once
    index.add_documents([Document(text=same, source="c.txt", title="Biology handbook")])
    assert len(index) == 2 and len(index.locations(0)) == 2


def test_a_question_naming_its_document_finds_it(embedder, tmp_path):
    speeches = {
        "1933-Roosevelt.txt": ("The only thing we have to fear is fear itself. "
                               "Our greatest primary task is to put people to work."),
        "1937-Roosevelt.txt": ("I see one-third of a nation ill-housed, ill-clad, ill-nourished. "
                               "The test of our progress is this."),
        "1961-Kennedy.txt": "Ask not what your country can do for you. Let us begin anew, remembering civility.",
        "1801-Jefferson.txt": "We are all Republicans, we are all Federalists. Error of opinion may be tolerated.",
    }
    for name, text in speeches.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    index = Index(embedder)
    index.add([tmp_path / name for name in speeches])
    # nothing in Jefferson's passage says "Jefferson" or "1801": only the context line does
    for mode in ("bm25", "hybrid"):
        assert index.search("What did Jefferson say in 1801 about opinion?", k=1, mode=mode)[0].source == "1801-Jefferson.txt"
    assert index.search("Kennedy 1961 country", k=1, mode="bm25")[0].source == "1961-Kennedy.txt"
    # filters read the title too
    hits = index.search("nation", k=5, filters={"title": "*Roosevelt"})
    assert hits and {h.source for h in hits} <= {"1933-Roosevelt.txt", "1937-Roosevelt.txt"}


def test_an_index_saved_before_context_lines_keeps_updating_without_them(embedder, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Alpha\n\nAlpha particles are helium nuclei.", encoding="utf-8")
    old = Index(embedder, context=False)
    old.add(tmp_path / "docs")
    old.save(tmp_path / "ix")
    back = Index.load(tmp_path / "ix", embedding_model=embedder)
    assert back.context is False and back.chunker.context is False
    (tmp_path / "docs" / "b.md").write_text("# Beta\n\nBeta particles are electrons.", encoding="utf-8")
    back.add(tmp_path / "docs")
    assert all(c.context == "" for c in back.chunks)


def _md_doc(text):
    return Document(text=text, source="book.md", title="Book", segments=section_segments(text, markdown_headings(text)))


def test_a_heading_alone_joins_the_section_that_follows(tok):
    text = ("# 3 Conditionals\n\n## 3.1 Introduction\n\n### 3.1.1 Boolean values\n\n"
            "A Boolean is True or False.\n\n## 3.2 If statements\n\nAn if statement runs code when a condition holds.\n\n"
            "## 3.3 Summary")
    doc = _md_doc(text)
    segs = join_headings(text, doc.segments)
    texts = [text[s.start:s.end] for s in segs]
    assert texts[0].startswith("# 3 Conditionals\n\n## 3.1 Introduction\n\n### 3.1.1 Boolean values")
    assert segs[0].section == ("3 Conditionals", "3.1 Introduction", "3.1.1 Boolean values")
    # the trailing empty section joins the one before it
    assert texts[-1].startswith("## 3.2 If statements") and texts[-1].endswith("## 3.3 Summary")
    chunks = Chunker(tokenizer=tok).split(doc)
    assert not [c for c in chunks if "\n" not in c.text and c.text.lstrip("# ").split(" ", 1)[0][:1].isdigit()]
    assert len(chunks) == 2


def test_headings_never_join_across_pages_or_cells():
    text = "Chapter 2\nThe body of page two."
    segs = [Segment(0, 9, page=1, section=("Chapter 2",)), Segment(10, len(text), page=2)]
    assert join_headings(text, segs) == segs
    # a one-line segment that is not its own heading (a short paragraph) stays a passage
    text = "Deadline: Friday.\nSecond section body."
    segs = [Segment(0, 17, section=("Rules",)), Segment(18, len(text), section=("Other",))]
    assert join_headings(text, segs) == segs


def test_files_nobody_reads_are_listed_once_per_extension(tmp_path):
    for name in ("a.py", "b.py", "c.py", "data.csv", "README", "notes.md"):
        (tmp_path / name).write_text("x = 1\n", encoding="utf-8")
    (tmp_path / ".hidden.py").write_text("x", encoding="utf-8")
    files, problems = discover(tmp_path)
    assert [f.source for f in files] == [f"{tmp_path.name}/notes.md"]
    lines = {p.source: (p.severity, p.reason) for p in problems}
    assert lines["*.py"] == ("ignored", f"no loader for '.py': 3 files not read (e.g. {tmp_path.name}/a.py); "
                                        "ragbook.register_loader can add one")
    assert lines["*.csv"][1].startswith("no loader for '.csv': 1 file not read")
    assert lines["(no extension)"][1].startswith("no loader for files without an extension: 1 file")
    assert len(problems) == 3


def test_the_build_report_lists_unread_types_without_failing(embedder, tmp_path):
    (tmp_path / "notes.md").write_text("# Notes\n\nSome text.", encoding="utf-8")
    for i in range(5):
        (tmp_path / f"figure{i}.svg").write_text("<svg/>", encoding="utf-8")
    report = Index(embedder).add(tmp_path)
    assert report.ok and report.added == [f"{tmp_path.name}/notes.md"]
    assert [str(p) for p in report.ignored] == [
        f"*.svg: no loader for '.svg': 5 files not read (e.g. {tmp_path.name}/figure0.svg); ragbook.register_loader can add one"]
    assert "1 file types without a loader" in report.summary() and "ignored *.svg" in str(report)
    assert not report.warnings


def test_index_search_documents_gives_distinct_files_like_the_retriever(embedder, tmp_path):
    for name, text in {"lava.md": "# Lava\n\nLava cools into basalt.\n\n## Flows\n\nLava flows downhill slowly.",
                       "ash.md": "# Ash\n\nVolcanic ash and lava bombs fall near the vent.",
                       "tea.md": "# Tea\n\nGreen tea is steamed, black tea is oxidised."}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    index = Index(embedder)
    index.add(tmp_path)
    found = index.search_documents("lava", k=2)
    assert found.sources == index.retriever().search_documents("lava", k=2).sources
    assert len(found) == 2 and len(set(found.sources)) == 2 and not any(s.endswith("tea.md") for s in found.sources)


def test_a_references_section_can_be_left_out_by_a_saved_filter(embedder, tmp_path, capsys):
    from ragbook.assistant import Assistant
    from ragbook.cli import main

    (tmp_path / "paper.md").write_text(
        "# Glaciers\n\nGlaciers carve valleys as the ice moves downhill.\n\n"
        "## References\n\nSmith, J. Glaciers and how valleys form. Ice Journal, 2001.\n", encoding="utf-8")
    index = Index(embedder)
    index.add(tmp_path)
    everything = {h.chunk.section for h in index.search("glaciers valleys", k=5)}
    assert ("Glaciers", "References") in everything
    kept = index.search("glaciers valleys", k=5, filters={"section": {"not": "References"}})
    assert kept and all("References" not in h.chunk.section for h in kept)
    with pytest.raises(Exception, match="the one dict a filter takes is"):
        index.search("glaciers", filters={"section": {"nope": "References"}})
    # an assistant saved with the filter keeps it (a filter file holds no code: it is data)
    bot = Assistant(index, llm="extractive", filters={"section": {"not": "References"}, "page": {"not": (1, 3)}})
    bot.save(tmp_path / "bot.ragbook")
    from ragbook.assistant import load_assistant

    back = load_assistant(tmp_path / "bot.ragbook")
    assert back.retriever.filters == {"section": {"not": "References"}, "page": {"not": (1, 3)}}
    # and the command line says it with !=
    index.save(tmp_path / "ix")
    capsys.readouterr()
    assert main(["search", str(tmp_path / "ix"), "glaciers valleys", "--filter", "section!=References", "--json"]) == 0
    out = capsys.readouterr().out
    assert "Ice Journal" not in out and "carve valleys" in out


def test_filters_read_authors_and_dates_from_the_files_own_metadata(embedder, tmp_path):
    (tmp_path / "notes.md").write_text("---\ntitle: Analytical Engine Notes\nauthor: Ada Lovelace\ndate: 1843\n---\n\n"
                                       "# Note G\n\nThe engine can compute Bernoulli numbers.", encoding="utf-8")
    (tmp_path / "other.md").write_text("# Other\n\nThe engine weaves patterns like a loom.", encoding="utf-8")
    index = Index(embedder)
    index.add(tmp_path)
    hits = index.search("engine", k=5, filters={"author": "*Lovelace"})
    assert hits and {h.source.rsplit("/", 1)[-1] for h in hits} == {"notes.md"}
    assert hits[0].chunk.context == "Analytical Engine Notes (Ada Lovelace; 1843) > Note G"
    # the byline and date make the document findable by them
    assert index.search("Lovelace 1843", k=1, mode="bm25")[0].source.endswith("notes.md")
