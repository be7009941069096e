"""Building over the real-world files in ../shared/data/realdocs: bad ones reported, the rest indexed."""

from __future__ import annotations

import pytest
from conftest import SHARED
from fakes import HashEmbedder

from ragbook.index import Index
from ragbook.loaders import ocr

REALDOCS = SHARED / "data" / "realdocs"

pytestmark = pytest.mark.skipif(not REALDOCS.is_dir(), reason="needs ../shared/data/realdocs")

# file -> a phrase the build report must give for it (skipped files)
SKIPPED = {
    "pdf-hostile/encrypted-rc4-userpw-openpassword.pdf": "password",
    "pdf-hostile/encrypted-aes256-r6-userpw-foo.pdf": "password",
    "pdf-hostile/xfa-livecycle-no-text.pdf": "xfa form",
    "pdf-hostile/truncated-federal-register-50pct.pdf": "truncated",
    "pdf-hostile/empty-0-bytes.pdf": "empty",
    "pdf-hostile/header-then-eof-44-bytes.pdf": "corrupt",
    "pdf-hostile/zero-pages-valid.pdf": "no pages",
    "pdf-hostile/page-tree-cycle.pdf": "corrupt",
    "pdf-hostile/page-tree-too-deep.pdf": "corrupt",
    "pdf-hostile/crash-attributeerror-on-open.pdf": "corrupt",
    "pdf-hostile/no-xref-handwritten.pdf": "corrupt",
}
# pages with no text layer: read by OCR where the `ocr` extra is installed, else skipped with the command
SCANS = {"pdf-hostile/scan-no-text-huckfinn-p22.pdf": "tip-toeing along a path amongst",
         "pdf-hostile/text-as-vector-curves.pdf": ""}


@pytest.mark.slow
def test_build_over_realdocs_reports_bad_files_and_indexes_the_rest(tmp_path):
    index = Index(HashEmbedder(), chunk_size=400, overlap=0)
    report = index.add(REALDOCS, passwords={"encrypted-aes256-r6-userpw-foo.pdf": "wrong"})
    skipped = {p.source.split("realdocs/", 1)[1]: p.reason for p in report.skipped}
    for name, phrase in SKIPPED.items():
        assert name in skipped, f"{name} should be skipped"
        assert phrase in skipped[name].lower(), f"{name}: {skipped[name]!r} should mention {phrase!r}"
    indexed = {s.split("realdocs/", 1)[1] for s in index.sources}
    for name, phrase in SCANS.items():
        if ocr.missing() is None:
            text = " ".join(c.text for c in index.chunks if c.source.endswith(name))
            assert name in indexed and phrase.lower() in text.lower()
        else:
            assert "no text layer" in skipped[name] and "pip install 'ragbook[ocr]'" in skipped[name]
    # Word files are read (they used to be dropped without a word), each with its sections
    assert {"docx/japanese-paperqa.docx", "docx/nested-tables-merged-cells.docx", "docx/page-breaks-haystack.docx",
            "docx/doj-chapter13-trustee-handbook-large.docx"} <= indexed
    assert "pdf-good/irs-irm-2.3.59-400p.pdf" in indexed
    assert "pdf-hostile/encrypted-owner-only-rc4-40.pdf" in indexed  # opens without a password
    assert "pdf-hostile/recoverable-corrupt-zen.pdf" in indexed
    assert {"html/wikipedia-new-zealand-1mb.html", "ipynb/nbconvert-library-tutorial.ipynb"} <= indexed
    pages = {c.page for c in index.chunks if c.source.endswith("irs-irm-2.3.59-400p.pdf")}
    assert min(pages) == 1 and max(pages) <= 400 and len(pages) > 350  # blank pages have no chunks
    assert not any("iVBORw0KGgo" in c.text for c in index.chunks)  # no base64 PNG from notebook outputs
    # the report is readable, names each file once per problem, and says what to do
    assert all(p.reason and p.source for p in report.problems)
    index.save(tmp_path / "ix")
    assert Index.load(tmp_path / "ix", embedding_model=HashEmbedder()).stats() == index.stats()
