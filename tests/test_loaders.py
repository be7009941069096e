"""Loaders, discovery and load(): tiny fixtures made here, plus the real-world files when present."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import one, write

import ragbook.loaders as loaders
from ragbook.documents import Document, LoadError
from ragbook.loaders import (
    DEFAULT_MAX_FILE_MB,
    Loaded,
    Problem,
    SourceFile,
    discover,
    load,
    load_file,
    loader_for,
    register_loader,
)

try:
    from pdfmaker import make_pdf
except ImportError:  # tests/ collected as a package
    from tests.pdfmaker import make_pdf

REALDOCS = Path(__file__).parents[2] / "shared" / "data" / "realdocs"


def spans(doc: Document) -> list[str]:
    return [doc.text[s.start:s.end] for s in doc.segments]


def assert_well_formed(doc: Document) -> None:
    """Segments in order, inside the text, never overlapping, never blank; metadata is JSON."""
    previous_end = 0
    for seg in doc.segments:
        assert previous_end <= seg.start < seg.end <= len(doc.text)
        assert doc.text[seg.start:seg.end].strip()
        previous_end = seg.end
    json.dumps(doc.metadata)


def notebook(cells: list[dict], **meta) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                       "metadata": {"language_info": {"name": "python"}, **meta}})


def md(source):
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def code(source, outputs=()):
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": list(outputs), "execution_count": 1}


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the loader registry, so that test registrations do not leak."""
    monkeypatch.setattr(loaders, "_LOADERS", dict(loaders._LOADERS))
    return loaders._LOADERS


# --- text and Markdown --------------------------------------------------------------------
def test_text_file_is_one_segment_with_normalised_newlines(tmp_path):
    doc = one(write(tmp_path / "notes.txt", b"\xef\xbb\xbfline one\r\nline two\rline three\n"))
    assert doc.text == "line one\nline two\nline three"
    assert (doc.title, doc.source, doc.metadata["format"]) == ("notes", "notes.txt", "text")
    assert doc.metadata["path"] == str((tmp_path / "notes.txt").resolve())
    assert spans(doc) == [doc.text] and doc.warnings == []
    assert one(write(tmp_path / "WIDE.TXT", "héllo wörld".encode("utf-16"))).text == "héllo wörld"


def test_legacy_encodings_decode_with_a_warning(tmp_path):
    legacy = "Caf\u00e9 cr\u00e8me \u201cquoted\u201d \u20ac5 ".encode("cp1252")
    doc = one(write(tmp_path / "legacy.txt", legacy * 20))
    assert "Café crème “quoted” €5" in doc.text
    assert doc.warnings == ["not UTF-8; decoded as Windows-1252"]
    doc = one(write(tmp_path / "typo.txt", b"fine text " * 100 + b"\xff" + b" more"))
    assert "\ufffd" in doc.text and doc.warnings == ["1 undecodable bytes replaced with \ufffd"]


@pytest.mark.parametrize("name,content,message", [
    ("empty.txt", b"", "empty file"),
    ("blank.md", b"  \n\t\n", "empty file"),
    ("front-matter-only.md", b"---\ntitle: x\n---\n", "empty file"),
    ("empty.html", b"", "empty file"),
    ("nul.txt", b"text\x00\x01\x02binary", "binary data in a text file"),
    ("controls.txt", b"ab\x01\x02\x03\x04\x05\x06" * 20, "binary data in a text file"),
    # 0x81 and 0x8d are invalid in UTF-8 and unassigned in Windows-1252
    ("bad.txt", b"ok " + b"\x81\x8d" * 50, r"undecodable text: not UTF-8 \(first bad byte 0x81 at offset 3\)"),
    ("blank.html", b"<html><script>x()</script><p> </p></html>", "no visible text"),
    ("bad.ipynb", b"{not json", r"not a Jupyter notebook \(invalid JSON at line 1"),
    ("list.ipynb", b"[1, 2]", "not a Jupyter notebook"),
    ("v2.ipynb", b'{"nbformat": 2, "worksheets": []}', "unsupported nbformat 2"),
    ("blank.ipynb", notebook([md("  "), code("")]).encode(), "empty notebook"),
    ("a.xyz", b"x", r"unsupported file type '.xyz'; supported: .*register_loader"),
])
def test_bad_input_raises(tmp_path, name, content, message):
    with pytest.raises(LoadError, match=message):
        load_file(write(tmp_path / name, content))


MARKDOWN = """---
title: Course notes
author: "Ada"
tags:
  - nested yaml is skipped
---
Intro before any heading.

# Week 1
Variables.

## Loops
```python
# not a heading
for i in range(3): pass
```

Week 2
======
Setext body.

Details
-------
More.
"""


def test_markdown_front_matter_and_sections(tmp_path):
    doc = one(write(tmp_path / "notes.md", MARKDOWN))
    assert doc.title == "Course notes" and doc.metadata["author"] == "Ada"
    assert "---" not in doc.text[:5] and doc.text.startswith("Intro before")
    assert [s.section for s in doc.segments] == [
        (), ("Week 1",), ("Week 1", "Loops"), ("Week 2",), ("Week 2", "Details")]
    texts = spans(doc)
    assert texts[0] == "Intro before any heading."
    assert texts[2].startswith("## Loops") and "# not a heading" in texts[2]
    assert texts[3].startswith("Week 2\n======") and texts[4] == "Details\n-------\nMore."
    assert_well_formed(doc)
    # title: front matter, else the first H1, else the file name
    assert one(write(tmp_path / "a.md", "## Sub\ntext\n# Main\nbody")).title == "Main"
    doc = one(write(tmp_path / "plain.markdown", "no headings\n\n---\n\nafter a rule"))
    assert doc.title == "plain" and [s.section for s in doc.segments] == [()]


# --- HTML ---------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html><html><head><title>My &amp; Page</title><style>p{color:red}</style>
<script>var hidden = "SCRIPT";</script></head><body>
<nav><a href="/">NAVLINK</a></nav>
<h1>Main heading</h1><p>First   paragraph
with <b>bold</b> text &eacute;&#233;.</p>
<p>Square <img class="mwe-math-fallback-image-inline" aria-hidden="true" alt="{\\displaystyle x^{2}}"><img alt="photo"></p>
<div hidden>HIDDEN</div><span aria-hidden="true">ARIA</span><button>CLICK</button>
<ul><li>one<li>two</ul>
<h2>Table</h2><table><tr><th>name</th><th>age</th></tr><tr><td>Ann</td><td>3</td></tr></table>
<pre>  keep   spacing
    indented</pre>
<footer>FOOTER</footer><noscript>NOSCRIPT</noscript></body></html>"""


def test_html_visible_text_structure_and_sections(tmp_path):
    doc = one(write(tmp_path / "page.html", PAGE))
    assert doc.title == "My & Page" and doc.metadata["format"] == "html"
    for hidden in ("SCRIPT", "NAVLINK", "HIDDEN", "ARIA", "CLICK", "FOOTER", "NOSCRIPT", "color:red"):
        assert hidden not in doc.text
    assert "First paragraph with bold text éé.\n\nSquare x^{2}\n" in doc.text and "photo" not in doc.text
    assert "- one\n- two" in doc.text
    assert "name | age\nAnn | 3" in doc.text
    assert "  keep   spacing\n    indented" in doc.text
    assert [s.section for s in doc.segments] == [("Main heading",), ("Main heading", "Table")]
    assert spans(doc)[1].startswith("Table\n\nname | age")
    assert_well_formed(doc)
    page = '<html><head><meta charset="iso-8859-1"></head><body><h1>Caf\xe9</h1><p>cr\xe8me</p></body></html>'
    doc = one(write(tmp_path / "old.htm", page.encode("latin-1")))
    assert doc.title == "Café" and "crème" in doc.text and doc.warnings == []


# --- notebooks ----------------------------------------------------------------------------
CELLS = [
    md(["# Lab 2\n", "Intro text."]),
    {"cell_type": "raw", "metadata": {}, "source": "RAW CELL"},
    code("x = 1\nprint(x)", [{"output_type": "stream", "name": "stdout", "text": ["1\n"]},
                             {"output_type": "display_data", "metadata": {},
                              "data": {"image/png": "iVBORw0KGgoAAAA", "text/plain": ["<Figure>"]}}]),
    md(""),
    md("## Loops\nLoop text."),
    code("for i in range(3):\n    pass", [{"output_type": "execute_result", "metadata": {}, "execution_count": 2,
                                           "data": {"text/plain": "x" * 5000}}]),
]


def test_notebook_cells_sections_and_no_outputs_by_default(tmp_path):
    doc = one(write(tmp_path / "lab.ipynb", notebook(CELLS)))
    assert doc.title == "Lab 2" and doc.metadata["kernel"] == "python" and doc.metadata["format"] == "notebook"
    assert [(s.cell, s.section) for s in doc.segments] == [
        (1, ("Lab 2",)), (3, ("Lab 2",)), (5, ("Lab 2", "Loops")), (6, ("Lab 2", "Loops"))]
    assert spans(doc) == ["# Lab 2\nIntro text.", "x = 1\nprint(x)", "## Loops\nLoop text.",
                          "for i in range(3):\n    pass"]
    assert "RAW CELL" not in doc.text and "<Figure>" not in doc.text
    assert_well_formed(doc)


def test_notebook_outputs_are_text_only_and_capped(tmp_path):
    doc = one(write(tmp_path / "lab.ipynb", notebook(CELLS)), notebook_outputs=True)
    texts = spans(doc)
    assert texts[1] == "x = 1\nprint(x)\n1\n<Figure>"
    assert "iVBOR" not in doc.text
    assert texts[3] == "for i in range(3):\n    pass\n" + "x" * 2000 + " [output truncated]"


def test_notebook_v3_worksheets(tmp_path):
    nb = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"}, "worksheets": [{"cells": [
        {"cell_type": "heading", "level": 2, "source": ["Setup"]},
        {"cell_type": "code", "language": "python", "input": ["import os"], "outputs": []}]}]}
    doc = one(write(tmp_path / "old.ipynb", json.dumps(nb)))
    assert doc.text == "## Setup\n\nimport os" and doc.title == "old" and doc.metadata["kernel"] == "python"
    assert [(s.cell, s.section) for s in doc.segments] == [(1, ("Setup",)), (2, ("Setup",))]


# --- PDF ----------------------------------------------------------------------------------
def test_pdf_pages_offsets_and_title(tmp_path):
    path = make_pdf(tmp_path / "slides.pdf", ["Alpha page\nsecond line", "", "Gamma page"], title="Deck")
    doc = one(path)
    assert doc.title == "Deck" and doc.metadata["pages"] == 3 and doc.metadata["format"] == "pdf"
    assert [s.page for s in doc.segments] == [1, 3]  # the blank page 2 gives no segment
    assert spans(doc) == ["Alpha page\nsecond line", "Gamma page"]
    assert doc.text == "Alpha page\nsecond line\n\nGamma page"
    assert_well_formed(doc)


def test_pdf_without_text_and_truncated_pdf_raise(tmp_path):
    with pytest.raises(LoadError, match="no text layer .*ocrmypdf"):
        load_file(make_pdf(tmp_path / "scan.pdf", ["", "   "]))
    full = make_pdf(tmp_path / "full.pdf", ["some text"] * 5).read_bytes()
    with pytest.raises(LoadError, match="corrupt or truncated PDF"):
        load_file(write(tmp_path / "cut.pdf", full[: len(full) // 2]))


def test_encrypted_pdf_needs_the_password(tmp_path):
    path = make_pdf(tmp_path / "secret.pdf", ["classified text"], encrypt_password="s3cret")
    with pytest.raises(LoadError, match=r"encrypted PDF: a password is required; pass passwords=\{'secret.pdf'"):
        load_file(path)
    with pytest.raises(LoadError, match="password given for 'secret.pdf' is wrong"):
        load_file(path, passwords={"secret.pdf": "nope"})
    assert one(path, passwords={"secret.pdf": "s3cret"}).text == "classified text"
    assert one(path, source="docs/secret.pdf", passwords={"docs/secret.pdf": "s3cret"}).text == "classified text"


def test_garble_score_separates_mojibake_from_real_scripts():
    from ragbook.loaders.pdf import garble_score

    for clean in ("Plain English text, with digits 42.", "Привет, мир — 你好世界 こんにちは世界 مرحبا بالعالم"):
        assert garble_score(clean)[0] < 0.1
    # 60 characters of pypdf's reading of a Japanese CID font without a ToUnicode map
    mojibake = ("\u0371\u036d\u0377\u0a68\u034d\u09b0\u0ecc\u0370\u0362\u1edb\u037b\u0354\u0393\u0378\u0368"
                "\u038b\u036a\u1ecf\u0366\u0377\u0c3f\u0c6f\u0378\u08e6\u0378\u0395\u1edc\u0279\u0279\u035c"
                "\u0395\u0392\u0378\u0ccb\u0947\u0ccb\u0555\u0744\u0377\u0561\u0688\u0371\u0354\u039c\u0363"
                "\u0394\u0e4d\u05af\u0354\u0392\u08b4\u0371\u1b85\u08ed\u03a0\u03ef\u03ab\u039b\u036d\u0392")
    assert garble_score(mojibake)[0] > 0.3


# --- load_file errors ---------------------------------------------------------------------
def test_file_larger_than_limit_raises(tmp_path):
    path = write(tmp_path / "big.txt", "word " * 1000)
    with pytest.raises(LoadError, match=r"file too large \(4.9 KB, the limit is max_file_mb=0.001\)"):
        load_file(path, max_file_mb=0.001)
    assert DEFAULT_MAX_FILE_MB == 200 and one(path).text.startswith("word")


def test_folder_and_fifo_named_like_files_raise(tmp_path):
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(LoadError, match="folder, not a file"):
        load_file(tmp_path / "folder.txt")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.txt")
        with pytest.raises(LoadError, match="not a regular file"):
            load_file(tmp_path / "pipe.txt")
    with pytest.raises(LoadError, match="file not found"):
        load_file(tmp_path / "missing.md")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_raises(tmp_path):
    path = write(tmp_path / "locked.md", "# secret")
    path.chmod(0)
    try:
        with pytest.raises(LoadError, match="permission denied"):
            load_file(path)
    finally:
        path.chmod(0o644)


# --- registry -----------------------------------------------------------------------------
def test_register_loader_as_decorator_and_call(tmp_path, registry):
    @register_loader(".RST")
    def load_rst(path, **options):
        return path.read_text(encoding="utf-8").replace("=", "").strip()

    write(tmp_path / "docs" / "intro.rst", "Intro\n=====\nreStructuredText body")
    files, problems = discover(tmp_path / "docs")
    assert [f.source for f in files] == ["docs/intro.rst"] and problems == []
    result = load(tmp_path / "docs")
    assert result.problems == [] and result.documents[0].text == "Intro\n\nreStructuredText body"
    assert result.documents[0].metadata["format"] == "rst" and result.documents[0].title == "intro"
    assert loader_for("X.Rst") is load_rst

    register_loader([".rst"], lambda path: Document(text="replaced", source="x", metadata={"when": object()}))
    doc = one(tmp_path / "docs" / "intro.rst")  # a loader without **options still works
    assert doc.text == "replaced" and doc.source == "intro.rst" and isinstance(doc.metadata["when"], str)
    with pytest.raises(ValueError):
        register_loader("rst", load_rst)


def test_loader_crash_becomes_load_error(tmp_path, registry):
    def broken(path, **options):
        raise KeyError("boom")

    register_loader(".log", broken)
    with pytest.raises(LoadError, match=r"could not read '.log' file: KeyError: 'boom'"):
        load_file(write(tmp_path / "x.log", "data"))
    register_loader(".log", lambda path, **o: 42)
    with pytest.raises(LoadError, match="returned int"):
        load_file(tmp_path / "x.log")


# --- discover -----------------------------------------------------------------------------
@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "corpora" / "a" / "b.md", "# B")
    write(tmp_path / "corpora" / "a" / "draft.md", "# Draft")
    write(tmp_path / "corpora" / "c.txt", "c")
    write(tmp_path / "corpora" / "data.bin", b"\x89PNG")
    write(tmp_path / "corpora" / ".secret.md", "hidden")
    write(tmp_path / "corpora" / ".git" / "notes.md", "hidden folder")
    return tmp_path / "corpora"


def test_discover_folder_sources_roots_and_hidden(corpus):
    files, problems = discover("corpora")
    assert [f.source for f in files] == ["corpora/a/b.md", "corpora/a/draft.md", "corpora/c.txt"]
    # data.bin is not read inside a folder: one line for its type, not an error
    assert [(p.source, p.severity) for p in problems] == [("*.bin", "ignored")]
    assert problems[0].reason.startswith("no loader for '.bin': 1 file not read (e.g. corpora/data.bin)")
    assert files[0] == SourceFile(path=(corpus / "a" / "b.md").resolve(), source="corpora/a/b.md", root=corpus.resolve())
    assert [f.source for f in discover(str(corpus))[0]] == [f.source for f in files]  # absolute root too
    hidden = [f.source for f in discover(corpus, hidden=True)[0]]
    assert "corpora/.secret.md" in hidden and "corpora/.git/notes.md" in hidden


def test_discover_include_exclude_and_glob(corpus):
    assert [f.source for f in discover(corpus, include="*.md")[0]] == ["corpora/a/b.md", "corpora/a/draft.md"]
    assert [f.source for f in discover(corpus, include="*.md", exclude="draft*")[0]] == ["corpora/a/b.md"]
    assert [f.source for f in discover(corpus, exclude=["a"])[0]] == ["corpora/c.txt"]  # prunes the folder
    assert [f.source for f in discover("corpora/**/*.md")[0]] == ["corpora/a/b.md", "corpora/a/draft.md"]
    files, problems = discover("corpora/**/*.docx")
    assert files == [] and "no supported files match" in problems[0].reason


def test_discover_direct_files_missing_paths_and_dedupe(corpus):
    files, problems = discover(["corpora/c.txt", corpus / "c.txt", "corpora", "nowhere", "corpora/data.bin"])
    assert [f.source for f in files] == ["c.txt", "corpora/a/b.md", "corpora/a/draft.md"]
    assert files[0].root == (corpus / "c.txt").resolve()
    assert [(p.source, p.severity) for p in problems] == [("nowhere", "error"), ("data.bin", "error"), ("*.bin", "ignored")]
    assert "no such file or folder" in problems[0].reason
    assert str(problems[1]).startswith("data.bin: unsupported file type '.bin'; supported: .docx, .epub, .htm, .html")


def test_discover_survives_symlink_loops_and_reports_broken_links(corpus):
    os.symlink(corpus, corpus / "a" / "loop")  # corpora/a/loop -> corpora
    os.symlink(corpus / "a" / "b.md", corpus / "alias.md")
    os.symlink(corpus / "gone.md", corpus / "dangling.md")
    files, problems = discover(corpus)
    sources = [f.source for f in files]
    assert len(sources) == len({f.path for f in files}) == 3  # alias.md is b.md again
    assert "corpora/c.txt" in sources
    assert [p.source for p in problems] == ["corpora/dangling.md", "*.bin"]
    assert "broken symbolic link" in problems[0].reason
    assert "broken symbolic link" in discover(corpus / "dangling.md")[1][0].reason


# --- load ---------------------------------------------------------------------------------
def test_load_mixes_good_and_bad_files(tmp_path):
    folder = tmp_path / "mixed"
    write(folder / "good.md", "# Good\ntext")
    write(folder / "page.html", "<title>T</title><p>para</p>")
    make_pdf(folder / "paper.pdf", ["pdf text"])
    write(folder / "empty.txt", "")
    write(folder / "binary.txt", b"\x00\x01\x02")
    write(folder / "broken.pdf", b"%PDF-1.4\n%%EOF\n")
    make_pdf(folder / "locked.pdf", ["x"], encrypt_password="pw")
    write(folder / "legacy.txt", "na\u00efve caf\u00e9 ".encode("cp1252") * 10)
    result = load(folder)
    assert isinstance(result, Loaded) and len(result) == 4
    assert sorted(d.source for d in result) == [f"mixed/{n}" for n in ("good.md", "legacy.txt", "page.html", "paper.pdf")]
    errors = {p.source: p.reason for p in result.errors}
    assert set(errors) == {"mixed/empty.txt", "mixed/binary.txt", "mixed/broken.pdf", "mixed/locked.pdf"}
    assert "password" in errors["mixed/locked.pdf"] and "corrupt" in errors["mixed/broken.pdf"]
    assert result.warnings == [Problem("mixed/legacy.txt", "not UTF-8; decoded as Windows-1252", "warning")]
    assert repr(result) == "Loaded(documents=4, chars=%d, errors=4, warnings=1, ignored=0)" % sum(len(d.text) for d in result)
    assert load(folder, passwords={"locked.pdf": "pw"}).errors.__len__() == 3


def test_loaded_html_escapes_file_names_and_reasons(tmp_path):
    write(tmp_path / "<i>x&y.txt", "")
    shown = load(tmp_path)._repr_html_()
    assert "<i>" not in shown and "&lt;i&gt;x&amp;y.txt" in shown and "empty file" in shown
    assert "no problems" in Loaded()._repr_html_()


# --- real-world files (../shared/data/realdocs, skipped when absent) ----------------------

# file -> (pages or cells, at least this many characters) for the files that must load
REAL_OK = {
    "pdf-good/acl2020-s2orc-two-column.pdf": (15, 55_000),
    "pdf-good/arabic-habibi.pdf": (1, 20),
    "pdf-good/book-free-culture-352p.pdf": (352, 650_000),  # running headers and page numbers dropped
    "pdf-good/book-geotopo-de-117p.pdf": (117, 130_000),
    "pdf-good/chinese-table-receipt.pdf": (1, 2_400),
    "pdf-good/federal-register-2020-17221-3col.pdf": (15, 52_000),  # running headers dropped
    "pdf-good/form-filled-by-acrobat.pdf": (3, 400),
    "pdf-good/form-irs-f1040nr.pdf": (5, 16_000),
    "pdf-good/gao-23-106826-cybersecurity.pdf": (2, 10_000),
    "pdf-good/iop-jpcs-2022-word-cc-by-3.pdf": (12, 37_000),
    "pdf-good/irs-irm-2.3.59-400p.pdf": (400, 250_000),  # 1,903 lines of page furniture dropped
    "pdf-good/multilang-hello-world.pdf": (1, 120),
    "pdf-good/scanned-with-ocr-layer-vicksburg.pdf": (6, 12_000),
    "pdf-good/slides-beamer-bsdcan2019-opensmtpd.pdf": (65, 17_000),
    "pdf-hostile/encrypted-owner-only-rc4-40.pdf": (1, 38),
    "pdf-hostile/japanese-jo-mojibake.pdf": (1, 800),
    "pdf-hostile/recoverable-corrupt-zen.pdf": (1, 900),
    "pdf-hostile/rotated-landscape-table-nics.pdf": (1, 5_500),
    "pdf-hostile/rotated-pages-90-180-270-360.pdf": (4, 80),
    "ipynb/nbconvert-library-tutorial.ipynb": (40, 10_000),
    "ipynb/nbformat-v3-worksheets.ipynb": (9, 800),
    "ipynb/pdfplumber-extract-table-nics.ipynb": (35, 3_000),
    "ipynb/sbert-retrieve-rerank-wikipedia.ipynb": (18, 5_000),
    "html/google-sre-book-chapter.html": (None, 28_000),
    "html/v8-blog-standalone-wasm.html": (None, 14_000),
    "html/wikipedia-hermitian-matrix.html": (None, 9_000),
    "html/wikipedia-new-zealand-1mb.html": (None, 120_000),
}
REAL_WARNINGS = {"pdf-hostile/japanese-jo-mojibake.pdf": "text looks garbled"}
# reason (a regular expression) -> the pdf-hostile files that must fail with it
REAL_ERRORS = {
    "corrupt or truncated PDF": ["crash-attributeerror-on-open", "header-then-eof-44-bytes", "no-xref-handwritten",
                                 "page-tree-cycle", "page-tree-too-deep", "truncated-federal-register-50pct"],
    "no text layer": ["scan-no-text-huckfinn-p22", "text-as-vector-curves", "xfa-livecycle-no-text"],
    "encrypted PDF: a password is required": ["encrypted-aes256-r6-userpw-foo", "encrypted-rc4-userpw-openpassword"],
    r"page 1: text extraction failed \(TypeError": ["crash-typeerror-in-extract"],
    r"page 1: text extraction failed \(NotImplementedError": ["unsupported-filter"],
    "empty file": ["empty-0-bytes"],
    "PDF has no pages": ["zero-pages-valid"],
}


def realdoc(name: str) -> Path:
    if not REALDOCS.is_dir():
        pytest.skip(f"{REALDOCS} is not available")
    return REALDOCS / name


@pytest.mark.parametrize("name", sorted(REAL_OK))
def test_realdocs_load(name):
    count, min_chars = REAL_OK[name]
    doc = one(realdoc(name), notebook_outputs=True, ocr=False)  # (the OCR extra has its own tests)
    assert len(doc.text) >= min_chars
    assert_well_formed(doc)
    if count is not None:
        assert doc.metadata.get("pages", doc.metadata.get("cells")) == count
    expected = REAL_WARNINGS.get(name)
    assert [w for w in doc.warnings if not expected or expected not in w] == []
    assert not expected or any(expected in w for w in doc.warnings)
    assert "iVBOR" not in doc.text  # base64 images stay out even with notebook outputs on


@pytest.mark.parametrize("name,reason", [(f"pdf-hostile/{n}.pdf", r) for r, ns in REAL_ERRORS.items() for n in ns])
def test_realdocs_fail_clearly(name, reason):
    with pytest.raises(LoadError, match=reason):
        load_file(realdoc(name), ocr=False)  # scans without the OCR extra


@pytest.mark.parametrize("name,password,chars", [
    ("encrypted-rc4-userpw-openpassword.pdf", "openpassword", 500),
    ("encrypted-aes256-r6-userpw-foo.pdf", "foo", 30),
])
def test_realdocs_encrypted_with_password(name, password, chars):
    doc = one(realdoc(f"pdf-hostile/{name}"), passwords={name: password})
    assert doc.metadata["pages"] == 1 and len(doc.text) >= chars


@pytest.mark.parametrize("front, expected", [
    ("title: Course notes\nauthor: Ada\n", {"title": "Course notes", "author": "Ada"}),
    ("code: 007\ndraft: yes\nweek: 3\n", {"code": "007", "draft": "yes", "week": "3"}),  # text stays text
    ("title: 'Quoted: with a colon'\ntags: [a, b]\nauthor:\n  name: Ada\n", {"title": "Quoted: with a colon"}),
    ("summary: >\n  folded\n  text\ntitle: T\n", {"summary": "folded text", "title": "T"}),
    ("a: &x [1, 2]\nb: *x\ntitle: T\n", {"a": "&x [1, 2]", "title": "T"}),  # aliases refused: read as plain lines
    ("title: [unclosed\nauthor: Ada\n", {"title": "[unclosed", "author": "Ada"}),  # not YAML: plain lines
])
def test_front_matter_is_read_as_yaml_text(tmp_path, front, expected):
    doc = one(write(tmp_path / "n.md", f"---\n{front}---\n# Heading\n\nBody text here.\n"))
    assert {k: doc.metadata[k] for k in expected} == expected
    assert doc.text.startswith("# Heading")
