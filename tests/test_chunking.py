from __future__ import annotations

import random
import string

import pytest

from ragbook.chunking import Chunker
from ragbook.documents import Document, Segment


def _doc(text, segments=None):
    return Document(text=text, source="doc.md", segments=segments or [])


def _long_text(paragraphs=30, seed=0):
    rng = random.Random(seed)
    words = "the cell membrane controls what enters and leaves each cell while proteins carry signals".split()
    paras = []
    for _ in range(paragraphs):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 25))).capitalize() + "."
                     for _ in range(rng.randint(2, 8))]
        paras.append(" ".join(sentences))
    return "\n\n".join(paras)


@pytest.fixture(scope="module")
def tok(embedder):
    return embedder.tokenizer


def test_chunks_fit_budget_and_offsets_are_exact(embedder, tok):
    text = _long_text()
    doc = _doc(text)
    chunker = Chunker(chunk_size=64, overlap=8, tokenizer=tok, max_tokens=embedder.max_tokens)
    chunks = chunker.split(doc)
    assert len(chunks) > 5
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert len(tok.encode(c.text, add_special_tokens=False).ids) <= 64
    # everything is covered: each word of the text appears in some chunk, in order
    assert chunks[0].start == 0 and chunks[-1].end == len(text.rstrip())


def test_overlap_repeats_text_and_zero_overlap_does_not(tok):
    text = _long_text(paragraphs=10, seed=1)
    with_overlap = Chunker(chunk_size=48, overlap=16, tokenizer=tok).split(_doc(text))
    no_overlap = Chunker(chunk_size=48, overlap=0, tokenizer=tok).split(_doc(text))
    overlapping_pairs = sum(b.start < a.end for a, b in zip(with_overlap, with_overlap[1:]))
    # only a boundary before a piece too big to share its chunk with any overlap has none
    assert overlapping_pairs >= 0.8 * (len(with_overlap) - 1)
    for a, b in zip(with_overlap, with_overlap[1:]):
        assert len(tok.encode(text[b.start:a.end], add_special_tokens=False).ids) <= 16
    assert all(b.start >= a.end for a, b in zip(no_overlap, no_overlap[1:]))


def test_prefers_paragraph_boundaries(tok):
    paras = [f"Paragraph {i} talks about topic {i} in a few short words." for i in range(6)]
    text = "\n\n".join(paras)
    chunks = Chunker(chunk_size=40, overlap=0, tokenizer=tok).split(_doc(text))
    for c in chunks:  # no paragraph is cut in the middle
        assert c.text.startswith("Paragraph") and c.text.endswith(".")


def test_chunks_never_cross_segments_and_keep_locations(tok):
    page1 = "First page text about mitochondria. " * 30
    page2 = "Second page text about ribosomes. " * 30
    text = page1 + "\n\n" + page2
    segs = [Segment(0, len(page1), page=1), Segment(len(page1) + 2, len(text), page=2, section=("Cells", "Ribosomes"))]
    chunks = Chunker(chunk_size=50, overlap=5, tokenizer=tok).split(_doc(text, segs))
    assert {c.page for c in chunks} == {1, 2}
    for c in chunks:
        seg = segs[c.page - 1]
        assert seg.start <= c.start < c.end <= seg.end
        assert ("ribosomes" in c.text) == (c.page == 2)
    assert all(c.section == ("Cells", "Ribosomes") for c in chunks if c.page == 2)
    assert chunks[-1].citation() == "doc.md, page 2 > Cells > Ribosomes"


@pytest.mark.parametrize("kind", ["base64", "cjk", "emoji", "url", "numbers", "mixed"])
def test_no_chunk_exceeds_what_the_model_reads(embedder, tok, kind):
    """Adversarial text: the tokenizer splits these into many pieces per character."""
    rng = random.Random(kind)
    if kind == "base64":
        text = "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(20000))
    elif kind == "cjk":
        text = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(5000))
    elif kind == "emoji":
        text = " ".join("".join(chr(rng.randint(0x1F600, 0x1F64F)) for _ in range(5)) for _ in range(800))
    elif kind == "url":
        text = " ".join(f"https://example.org/{rng.randint(0, 10**9)}/a_b-c?x={rng.random()}" for _ in range(400))
    elif kind == "numbers":
        text = " ".join(f"{rng.random():.12f}" for _ in range(2000))
    else:
        text = _long_text(20) + "\n\n" + "ÄÖÜ ß∑∫√ " * 500 + "\n" + "x" * 3000
    limit = embedder.max_seq_length
    chunks = Chunker(chunk_size=embedder.max_tokens, overlap=20, tokenizer=tok, max_tokens=embedder.max_tokens).split(_doc(text))
    assert chunks
    lengths = [len(tok.encode(c.text, add_special_tokens=True).ids) for c in chunks]
    assert max(lengths) <= limit
    for c in chunks:
        assert text[c.start:c.end] == c.text


def test_chunk_size_larger_than_model_is_a_clear_error(embedder, tok):
    with pytest.raises(ValueError, match="more than the embedding model reads"):
        Chunker(chunk_size=512, tokenizer=tok, max_tokens=embedder.max_tokens)


@pytest.mark.parametrize("size,overlap", [(4, 0), (100, 80), (100, -1)])
def test_bad_settings_are_rejected(size, overlap):
    with pytest.raises(ValueError):
        Chunker(chunk_size=size, overlap=overlap)


def test_whitespace_fallback_tokenizer():
    text = " ".join(f"word{i}" for i in range(1000))
    chunks = Chunker(chunk_size=100, overlap=10).split(_doc(text))
    assert all(len(c.text.split()) <= 100 for c in chunks)
    assert chunks[0].text.startswith("word0 ") and chunks[-1].text.endswith("word999")


def test_empty_and_whitespace_segments_give_no_chunks(tok):
    text = "   \n\n   "
    assert Chunker(tokenizer=tok).split(_doc(text)) == []
