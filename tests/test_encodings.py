"""Decoding legacy encodings, refusing binaries, and Unicode normalisation of documents and queries."""

from __future__ import annotations

import gzip
import io
import random
import struct
import sys
import time
import unicodedata
import zipfile
import zlib
from pathlib import Path

import pytest

from ragbook.documents import Document, LoadError, Segment
from ragbook.lexical import BM25, Analyzer
from ragbook.loaders import load_file
from ragbook.loaders.text import decode_text
from ragbook.loaders.unicode import normalize, normalize_document

# A real sentence per language, with the codec a legacy editor would have saved it in.
SENTENCES = {
    "cp1255": ("Windows-1255", "שלום לכולם, זהו מסמך לדוגמה בעברית שנכתב כדי לבדוק את זיהוי הקידוד של הקובץ."),
    "cp1251": ("Windows-1251", "Привет всем, это пример документа на русском языке, написанный для проверки кодировки."),
    "koi8_r": ("KOI8-R", "Привет всем, это пример документа на русском языке, написанный для проверки кодировки."),
    "shift_jis": ("Shift_JIS", "これは文字コードの判定を確認するために書かれた日本語の文書の例です。東京は日本の首都です。"),
    "gbk": ("GB18030", "这是一个用于测试文件编码检测的中文示例文档。北京是中国的首都，长城很有名。"),
    "gb18030": ("GB18030", "这是一个用于测试文件编码检测的中文示例文档。北京是中国的首都，长城很有名。"),
    "euc_kr": ("EUC-KR", "이것은 파일의 인코딩 감지를 테스트하기 위해 작성된 한국어 예제 문서입니다. 서울은 한국의 수도입니다."),
    "cp1253": ("Windows-1253", "Αυτό είναι ένα παράδειγμα εγγράφου στα ελληνικά, γραμμένο για να ελέγξει την κωδικοποίηση."),
    "cp1256": ("Windows-1256", "هذا مثال على مستند باللغة العربية، كتب لاختبار اكتشاف ترميز الملف. القاهرة هي عاصمة مصر."),
    "latin_1": ("Windows-1252",
                "Ceci est un exemple de document en français, écrit pour vérifier l'encodage. Où est la bibliothèque ?"),
    "cp1252": ("Windows-1252", "The café’s “crème brûlée” costs €5 – naïve, but façade-free."),
    "cp1250": ("Windows-1250", "Zażółć gęślą jaźń: przykładowy dokument po polsku, napisany dla sprawdzenia kodowania."),
    "big5": ("Big5", "這是一個用於測試檔案編碼偵測的繁體中文範例文件。台北是台灣的首都。"),
}


def one(path: Path) -> Document:
    (doc,) = load_file(path)
    return doc


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("codec", sorted(SENTENCES))
@pytest.mark.parametrize("lines", [1, 300], ids=["one-line", "long"])
def test_legacy_encodings_are_detected_and_named(tmp_path, codec, lines):
    label, sentence = SENTENCES[codec]
    original = "\n".join([sentence] * lines)
    data = original.encode(codec)
    doc = one(write(tmp_path / "legacy.txt", data))
    assert doc.text == normalize(original)  # (load_file folds full-width punctuation: "，" reads ",")
    # a Latin line with a few accents is read right, but honestly called a guess
    guess = " (a guess from very little text; re-save the file as UTF-8)" if sum(b > 127 for b in data) < 16 else ""
    assert doc.warnings == [f"not UTF-8; decoded as {label}{guess}"]


def test_a_few_words_are_a_flagged_guess(tmp_path):
    # Under 16 non-ASCII bytes, Hebrew, Greek and Cyrillic share byte ranges in their Windows
    # code pages: whatever the guess, the warning says it is one.  Western text, the most
    # common case, is guessed right.
    for text in ("Где мы?", "שלום עולם", "Γεια σου"):
        decoded, warnings = decode_text(text.encode({"Г": "cp1251", "ש": "cp1255", "Γ": "cp1253"}[text[0]]))
        assert len(decoded) == len(text) and "\ufffd" not in decoded
        assert warnings and "a guess from very little text; re-save the file as UTF-8" in warnings[0]
    decoded, warnings = decode_text("Où est la bibliothèque ?".encode("latin-1"))
    assert decoded == "Où est la bibliothèque ?"
    assert warnings == ["not UTF-8; decoded as Windows-1252 (a guess from very little text; re-save the file as UTF-8)"]


def test_utf8_boms_declared_charsets_and_typos_keep_their_behaviour(tmp_path):
    text = "naïve café – Привет"
    for bom, codec in [(b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
                       (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be")]:
        assert decode_text(bom + text.encode(codec)) == (text, []), codec
    with pytest.raises(LoadError, match="invalid UTF-16"):
        decode_text(b"\xff\xfe" + "ok".encode("utf-16-le") + b"\x00\xd8")  # a lone surrogate
    # a few bad bytes in a long UTF-8 file are replaced, not a reason to re-decode it all
    decoded, warnings = decode_text(("ça va " * 500).encode() + b"\xe9")
    assert decoded.startswith("ça va ça va") and warnings == ["1 undecodable bytes replaced with \ufffd"]
    page = '<html><head><meta charset="windows-1251"><title>Тест</title></head><body><p>Привет, мир</p></body></html>'
    doc = one(write(tmp_path / "page.html", page.encode("cp1251")))
    assert (doc.title, doc.text, doc.warnings) == ("Тест", "Привет, мир", [])


def test_seven_bit_iso_2022_jp_mail_is_decoded(tmp_path):
    text = "これは電子メールの本文です。よろしくお願いします。"
    assert decode_text(text.encode("iso2022_jp")) == (text, ["not UTF-8; decoded as ISO-2022-JP"])


def test_undecodable_bytes_are_refused():
    with pytest.raises(LoadError, match=r"undecodable text: not UTF-8 \(first bad byte 0x81 at offset 3\)"):
        decode_text(b"ok " + b"\x81\x8d" * 50)  # valid cp949 (one rare syllable, repeated) but no text


def test_detection_reads_non_ascii_text_far_into_a_large_file():
    _, sentence = SENTENCES["cp1251"]
    data = b"plain ascii log line\n" * 200_000 + (sentence + "\n").encode("cp1251") * 50
    text, warnings = decode_text(data)
    assert text.endswith(sentence + "\n") and warnings == ["not UTF-8; decoded as Windows-1251"]


def test_detection_on_ten_megabytes_is_quick():
    _, sentence = SENTENCES["cp1251"]
    data = (sentence + "\n").encode("cp1251") * (10_000_000 // 90)
    start = time.perf_counter()
    text, warnings = decode_text(data)
    assert time.perf_counter() - start < 5  # about 0.3 s on a laptop core
    assert len(text) == len(data) and warnings == ["not UTF-8; decoded as Windows-1251"]


# --- NUL bytes, UTF-16 without BOM, binaries -----------------------------------------------
def test_a_stray_nul_is_removed_with_a_warning(tmp_path):
    data = b"First line of the notes.\n" * 40 + b"a stray\x00 NUL\n" + b"Last line.\n"
    doc = one(write(tmp_path / "notes.txt", data))
    assert "a stray NUL" in doc.text and "\x00" not in doc.text
    assert doc.warnings == ["1 NUL characters removed"]
    assert decode_text(b"hello\x00world") == ("helloworld", ["1 NUL characters removed"])


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("text", ["Plain English notes, saved by a Windows tool.\n" * 5,
                                  "Русский текст, сохранённый без метки порядка байтов.\n" * 5])
def test_utf16_and_utf32_without_bom_are_recognised(codec, text):
    decoded, warnings = decode_text(text.encode(codec))
    assert decoded == text and warnings == [f"decoded as {codec.upper()} (no byte order mark)"]


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\x00" + bytes([x * 7 % 256, 0, 255]) * 16 for x in range(16))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("notes.txt", "hello " * 100)
    return buffer.getvalue()


def _pdf() -> bytes:
    stream = zlib.compress(b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET" * 20)
    return (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length " + str(len(stream)).encode()
            + b" /Filter /FlateDecode >>\nstream\n" + stream + b"\nendstream\nendobj\ntrailer\n<< >>\n%%EOF\n")


BINARIES = {
    "png": _png,
    "zip": _zip,
    "pdf": _pdf,
    "gzip": lambda: gzip.compress(b"some text " * 1000),
    "elf": lambda: Path(sys.executable).resolve().read_bytes()[:200_000],
    "random": lambda: random.Random(0).randbytes(50_000),
    "text-head-binary-tail": lambda: b"A text header line.\n" * 2000 + random.Random(1).randbytes(50_000),
}


@pytest.mark.parametrize("kind", sorted(BINARIES))
def test_binaries_renamed_txt_are_refused(tmp_path, kind):
    data = BINARIES[kind]()
    if kind == "elf" and not data.startswith(b"\x7fELF"):
        pytest.skip("the Python executable is not an ELF file here")
    with pytest.raises(LoadError, match=r"binary data in a text file; is the extension right\?"):
        load_file(write(tmp_path / f"{kind}.txt", data))


# --- Unicode normalisation -------------------------------------------------------------------
@pytest.mark.parametrize("raw,expected", [
    ("ﬁnance ﬂow ﬀ", "finance flow ff"),  # Latin ligatures (PDF text)
    ("ＡＢＣ１２３！", "ABC123!"),  # full-width ASCII
    ("ｶﾞｷﾞ ﾊﾟﾝ ｱｲｳ", "ガギ パン アイウ"),  # half-width katakana, voicing marks joined
    ("ﻣﺮﺣﺒﺎ ﺑﻜﻢ", "مرحبا بكم"),  # Arabic presentation forms
    ("ﭏ", "אל"),  # Hebrew ligature
    ("cafe\u0301 n\u0303", "café ñ"),  # decomposed accents composed (NFC)
    ("a\u00a0b\u2009c\u202fd\u3000e\u2003f", "a b c d e f"),  # compatibility spaces
    ("soft\u00adhy\u200bphen\u200c\u200d\u2060\ufeff!", "softhyphen!"),  # invisible characters
    ("x² H₂O ½ ™ ① 𝐀 ℝ ﹏", "x² H₂O ½ ™ ① 𝐀 ℝ ﹏"),  # meaning-bearing forms kept
    ("plain ascii", "plain ascii"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected
    assert normalize(expected) == expected  # idempotent


def test_normalize_returns_settled_text_itself():
    for text in ("ascii only", "Привет, мир", "東京大学 “quoted” café"):
        assert normalize(text) is text


def _check_segments(doc: Document, before: Document) -> None:
    assert len(doc.segments) == len(before.segments)
    for old, new in zip(before.segments, doc.segments):
        assert doc.text[new.start:new.end] == normalize(before.text[old.start:old.end])
        assert (new.page, new.cell, new.section) == (old.page, old.cell, old.section)


def test_normalize_document_moves_segments_with_the_text():
    parts = ["ﬁrst\u00adpage ＡＢＣ", "ｶﾞｷﾞ\u200b and cafe\u0301", "plain ascii", "ﻣﺮﺣﺒﺎ \ufeffend"]
    text, segments = "", []
    for i, part in enumerate(parts, 1):
        segments.append(Segment(len(text), len(text) + len(part), page=i))
        text += part + "\n\n"
    before = Document(text=text, source="x.pdf", segments=list(segments), title="ﬁ\u00a0title")
    doc = Document(text=text, source="x.pdf", segments=list(segments), title=before.title)
    normalize_document(doc)
    assert doc.text == normalize(text) == "firstpage ABC\n\nガギ and café\n\nplain ascii\n\nمرحبا end\n\n"
    assert doc.title == "fi title"
    _check_segments(doc, before)


def test_normalize_document_with_a_boundary_inside_a_changing_sequence():
    # a segment ending between a half-width kana and its voicing mark, one starting between
    # "e" and its accent: they widen to the whole sequence rather than cut it
    text = "abｶﾞcd e\u0301f"
    doc = Document(text=text, source="x", segments=[Segment(0, 3), Segment(3, 6), Segment(7, 8), Segment(8, 10)])
    normalize_document(doc)
    assert doc.text == "abガcd éf"
    assert [doc.text[s.start:s.end] for s in doc.segments] == ["abガ", "ガcd", "é", "éf"]


def test_normalize_document_drops_segments_that_were_only_invisible():
    doc = Document(text="\u200b\u200b real text", source="x", segments=[Segment(0, 2), Segment(3, 12)])
    normalize_document(doc)
    assert doc.text == " real text" and [(s.start, s.end) for s in doc.segments] == [(1, 10)]


def test_normalize_document_on_loaded_markdown_and_html(tmp_path):
    markdown = "# Ｃｈａｐｔｅｒ one\n\nThe ﬁrst part\u00a0here.\n\n## Cafe\u0301 ｶﾞｲﾄﾞ\n\nZero\u200bwidth text.\n"
    doc = one(write(tmp_path / "notes.md", markdown.encode()))
    before = Document(text=doc.text, source=doc.source, segments=list(doc.segments))
    normalize_document(doc)
    _check_segments(doc, before)
    assert [doc.text[s.start:s.end] for s in doc.segments] == [
        "# Chapter one\n\nThe first part here.", "## Café ガイド\n\nZerowidth text."]
    page = "<h1>ﬁnance</h1><p>full\u00a0ＷＩＤＴＨ</p><h2>Second</h2><p>e\u0301te\u0301</p>"
    doc = one(write(tmp_path / "page.html", page.encode()))
    before = Document(text=doc.text, source=doc.source, segments=list(doc.segments))
    normalize_document(doc)
    _check_segments(doc, before)
    assert "finance" in doc.text and "full WIDTH" in doc.text and "été" in doc.text


def test_normalize_on_ten_megabytes_is_quick():
    text = ("Plain text with a no-break\u00a0space and a ﬁ ligature. " * 200_000)[:10_000_000]
    doc = Document(text=text, source="x", segments=[Segment(i, i + 10_000) for i in range(0, 10_000_000, 10_000)])
    start = time.perf_counter()
    normalize_document(doc)
    assert time.perf_counter() - start < 10  # about 0.3 s on a laptop core
    assert doc.text.count("fi ligature") == text.count("ﬁ ligature") and "\u00a0" not in doc.text
    assert len(doc.segments) == 1000
    for i in range(0, 1000, 97):
        assert doc.text[doc.segments[i].start:doc.segments[i].end] == normalize(text[i * 10_000:(i + 1) * 10_000])


# --- queries -----------------------------------------------------------------------------
def test_analyzer_folds_queries_like_documents():
    an = Analyzer()
    assert an("ＰＹＴＨＯＮ　ｌｏｏｐｓ") == an("python loops") == ["python", "loop"]
    assert an("ﬁnancial") == an("financial")
    assert an("cafe\u0301") == an("café")
    assert an("ｶﾞｲﾄﾞ") == an("ガイド")
    assert an("ﻣﺮﺣﺒﺎ") == an("مرحبا")
    assert an("co\u00adoperate") == an("cooperate")


def test_bm25_finds_documents_from_full_width_and_presentation_form_queries():
    docs = [normalize(t) for t in ("Python loops and functions", "ガイドブックの使い方", "مرحبا بكم في الدورة", "Café crème")]
    bm = BM25().build(docs)
    for query, row in [("ＰＹＴＨＯＮ ｌｏｏｐｓ", 0), ("ｶﾞｲﾄﾞ", 1), ("ﻣﺮﺣﺒﺎ", 2), ("cafe\u0301", 3)]:
        scores = bm.scores(query)
        assert scores.argmax() == row and scores[row] > 0, query


def test_decoded_nfd_text_tokenizes_as_words():
    # a combining accent is not a word character: unnormalised, "é" split "cafe" from nothing
    assert Analyzer(stemmer=None, stopwords=False)(unicodedata.normalize("NFD", "été café")) == ["été", "café"]
