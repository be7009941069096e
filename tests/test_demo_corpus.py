"""The demo corpus as the demo indexes it: every format in it is read, and gold questions find their place."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from ragbook.index import Index

GOLD = json.loads((REPO / "corpora" / ".questions.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo(embedder):
    index = Index(embedder)
    report = index.add(REPO / "corpora")
    return index, report


def test_every_document_in_the_demo_corpus_is_read(demo):
    index, report = demo
    assert report.ok and not report.warnings
    formats = {rec["format"] for rec in index.files.values()}
    assert {"pdf", "markdown", "notebook", "docx", "pptx"} <= formats
    # the generator script is not a document: listed once as a type nobody reads
    assert [p.source for p in report.ignored] == ["*.py"]


@pytest.mark.parametrize("gold", [q for q in GOLD if q["source"].endswith((".docx", ".pptx"))],
                         ids=lambda q: q["source"].rsplit("/", 1)[-1] + ":" + q["question"][:30])
def test_questions_about_the_deck_and_the_word_file_find_their_slide_or_section(demo, gold):
    index, _ = demo
    hits = index.search(gold["question"], k=3)
    mine = [h for h in hits if h.source == gold["source"]]
    if gold.get("slide"):
        assert any(h.chunk.slide == gold["slide"] and f"slide {gold['slide']}" in h.citation() for h in mine), \
            [h.citation() for h in hits]
    else:
        assert any(gold["section"] in h.chunk.section for h in mine), [h.citation() for h in hits]
