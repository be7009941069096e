"""OCR of images and scanned PDF pages: images drawn here with Pillow, plus the real scans when present.

Tests that need the engine skip (with the install command as the reason) when the ``ocr``
extra is not installed; the "missing" path is simulated by hiding ``tesserocr`` from the
import system, so it runs everywhere.
"""

from __future__ import annotations

import io
import json
import re
import struct
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from ragbook.documents import LoadError
from ragbook.errors import MissingDependencyError
from ragbook.loaders import load_file, ocr

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HUCK = SHARED / "realdocs" / "pdf-hostile" / "scan-no-text-huckfinn-p22.pdf"
VICKSBURG = SHARED / "realdocs" / "pdf-good" / "scanned-with-ocr-layer-vicksburg.pdf"

needs_ocr = pytest.mark.skipif(ocr.missing() is not None, reason=str(ocr.missing()))
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="shared/data (real-world documents) is absent")

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
OTHERS = ["Pages of a scanned report are read one by one.",
          "Every frame of a TIFF becomes its own page.",
          "Tesseract finds the third page as well."]


# --- helpers --------------------------------------------------------------------------------

def draw(lines: list[str] | str, size: int = 40, mode: str = "L", width: int = 1700) -> Image.Image:
    """Black text on white, one line per item, in Pillow's own scalable font."""
    lines = [lines] if isinstance(lines, str) else lines
    font = ImageFont.load_default(size=size)
    height = 80 + len(lines) * int(size * 1.6)
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        pen.text((50, 40 + i * int(size * 1.6)), line, fill="black", font=font)
    return image.convert(mode)


def encoded(image: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def accuracy(expected: str, got: str) -> float:
    """1 - character error rate, whitespace collapsed."""
    expected, got = " ".join(expected.split()), " ".join(got.split())
    return 1 - distance(expected, got) / len(expected)


@pytest.fixture
def no_engine(monkeypatch):
    """OCR as on a machine without the extra: importing tesserocr fails."""
    monkeypatch.setitem(sys.modules, "tesserocr", None)
    monkeypatch.setattr(ocr, "_api", None)


# --- without the engine (always run) --------------------------------------------------------

def test_missing_names_the_install_command(no_engine):
    reason = ocr.missing()
    assert reason is not None and "pip install 'ragbook[ocr]'" in reason


def test_recognize_without_engine_raises_an_import_error(no_engine):
    with pytest.raises(MissingDependencyError, match=r"ragbook\[ocr\]") as info:
        ocr.recognize(draw("hello"))
    assert isinstance(info.value, ImportError)


def test_image_file_without_engine_is_a_load_error_with_the_command(no_engine, tmp_path):
    path = tmp_path / "scan.png"
    draw("hello").save(path)
    with pytest.raises(LoadError, match=r"OCR is not installed: pip install 'ragbook\[ocr\]'"):
        load_file(path)


def test_pdf_page_without_engine_raises_an_import_error(no_engine, tmp_path):
    from pypdf import PdfReader

    path = tmp_path / "scan.pdf"
    draw("hello").save(path)
    with pytest.raises(MissingDependencyError):
        ocr.ocr_pdf_page(PdfReader(path).pages[0])


def test_missing_model_is_named(monkeypatch):
    pytest.importorskip("tesserocr")
    monkeypatch.setattr(ocr, "_tessdata", lambda: None)
    reason = ocr.missing()
    assert reason is not None and "eng.traineddata" in reason and "TESSDATA_PREFIX" in reason


# --- images drawn here ----------------------------------------------------------------------

@needs_ocr
def test_reads_a_rendered_sentence_back():
    text, confidence = ocr.recognize(draw(SENTENCE))
    assert accuracy(SENTENCE, text) >= 0.95, text
    assert 0.8 <= confidence <= 1.0


@needs_ocr
def test_different_text_reads_differently():
    # guards against an engine stub that returns a fixed string
    text, _ = ocr.recognize(draw(OTHERS[0]))
    assert accuracy(OTHERS[0], text) >= 0.95 and accuracy(SENTENCE, text) < 0.6


@needs_ocr
@pytest.mark.parametrize("fmt,mode", [("PNG", "L"), ("JPEG", "RGB"), ("TIFF", "1"), ("BMP", "RGB"), ("PNG", "P")])
def test_encoded_bytes_of_each_format(fmt, mode):
    text, _ = ocr.recognize(encoded(draw(SENTENCE, mode=mode), fmt))
    assert accuracy(SENTENCE, text) >= 0.9, text


@needs_ocr
def test_transparent_png_is_read_on_white():
    # black text on a transparent background: read as black on white, not black on black
    image = Image.new("RGBA", (1700, 120), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((50, 40), SENTENCE, fill=(0, 0, 0, 255), font=ImageFont.load_default(size=40))
    text, _ = ocr.recognize(encoded(image, "PNG"))
    assert accuracy(SENTENCE, text) >= 0.9, text


@needs_ocr
def test_lines_and_paragraphs_keep_their_breaks():
    image = draw([OTHERS[0], OTHERS[1], "", "", OTHERS[2]])
    text, _ = ocr.recognize(image)
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    assert len(text.splitlines()) >= 3
    assert accuracy(OTHERS[2], paragraphs[-1]) >= 0.9, text
    assert accuracy(OTHERS[0], text.splitlines()[0]) >= 0.9, text


@needs_ocr
def test_image_file_is_a_document_with_ocr_metadata(tmp_path):
    path = tmp_path / "note.jpg"
    draw(SENTENCE, mode="RGB").save(path, quality=90)
    (doc,) = load_file(path)
    assert accuracy(SENTENCE, doc.text) >= 0.9
    assert doc.metadata["format"] == "jpeg"
    assert doc.metadata["ocr"]["engine"] == "tesseract" and doc.metadata["ocr"]["confidence"] > 0.8
    assert doc.source == "note.jpg" and not doc.warnings
    json.dumps(doc.metadata)


@needs_ocr
def test_multi_page_tiff_has_one_segment_per_page(tmp_path):
    path = tmp_path / "report.tiff"
    frames = [draw(line) for line in OTHERS]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    (doc,) = load_file(path)
    assert [s.page for s in doc.segments] == [1, 2, 3]
    for segment, line in zip(doc.segments, OTHERS):
        assert accuracy(line, doc.text[segment.start:segment.end]) >= 0.9
    assert doc.metadata["pages"] == 3


@needs_ocr
def test_tiff_with_too_many_frames_is_capped_with_a_warning(tmp_path):
    path = tmp_path / "many.tif"
    frames = [draw(OTHERS[0], size=30, width=900)] + [Image.new("L", (64, 64), "white") for _ in range(40)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    (doc,) = load_file(path, max_pages=5)
    assert any("only the first 5 pages" in w for w in doc.warnings)
    assert accuracy(OTHERS[0], doc.text) >= 0.9


@needs_ocr
def test_blank_image_has_no_text(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("L", (800, 600), "white").save(path)
    with pytest.raises(LoadError, match="no text found in the image"):
        load_file(path)


# --- hostile images -------------------------------------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@needs_ocr
@pytest.mark.parametrize("width,height", [(11_000, 11_000), (60_000, 60_000)])
def test_pixel_bombs_are_refused_before_decoding(tmp_path, width, height):
    # 121 million pixels (over ragbook's limit, under Pillow's) and 3.6 billion (over both)
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(width, height))
    with pytest.raises(LoadError, match="too large to read safely"):
        load_file(path)


@needs_ocr
@pytest.mark.parametrize("name,content,reason", [
    ("notes.png", b"Just some text saved with the wrong extension.\n", "not an image"),
    ("random.jpg", bytes(range(256)) * 8, "not an image"),
    ("header.tif", b"II*\x00" + b"\xff" * 60, "damaged|not an image"),
])
def test_files_that_are_not_images(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match=reason):
        load_file(path)


@needs_ocr
def test_empty_image_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(LoadError, match="empty"):
        load_file(path)
    with pytest.raises(LoadError, match="empty image"):
        ocr.load_image(path)


@needs_ocr
@pytest.mark.parametrize("fmt,keep", [("PNG", 0.5), ("JPEG", 0.3), ("TIFF", 0.5)])
def test_truncated_images_are_load_errors(tmp_path, fmt, keep):
    data = encoded(draw(SENTENCE, mode="RGB"), fmt, **({"compression": "tiff_deflate"} if fmt == "TIFF" else {}))
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(LoadError, match="damaged|truncated|no text|not an image"):
        load_file(path)


@needs_ocr
def test_recognize_refuses_undecodable_bytes():
    with pytest.raises(LoadError):
        ocr.recognize(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)


@needs_ocr
def test_file_size_limit_applies(tmp_path):
    path = tmp_path / "big.png"
    draw(SENTENCE).save(path)
    with pytest.raises(LoadError, match="too large"):
        load_file(path, max_file_mb=0.001)


# --- PDF pages ------------------------------------------------------------------------------

def scanned_pdf(path: Path, image: Image.Image) -> Path:
    image.save(path, resolution=150)  # Pillow writes an image-only PDF: a scan without a text layer
    return path


@needs_ocr
def test_pdf_page_without_text_layer_is_read(tmp_path):
    from pypdf import PdfReader

    page = PdfReader(scanned_pdf(tmp_path / "scan.pdf", draw(SENTENCE))).pages[0]
    assert not (page.extract_text() or "").strip()
    text, confidence = ocr.ocr_pdf_page(page)
    assert accuracy(SENTENCE, text) >= 0.9, text
    assert confidence > 0.8


@needs_ocr
def test_pdf_page_through_its_images_when_pdfium_is_absent(tmp_path, monkeypatch):
    from pypdf import PdfReader

    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    page = PdfReader(scanned_pdf(tmp_path / "scan.pdf", draw(OTHERS[1], mode="RGB"))).pages[0]
    text, _ = ocr.ocr_pdf_page(page)
    assert accuracy(OTHERS[1], text) >= 0.9, text


@needs_ocr
def test_blank_pdf_page_reads_as_nothing(tmp_path):
    from pypdf import PdfReader

    page = PdfReader(scanned_pdf(tmp_path / "blank.pdf", Image.new("L", (600, 800), "white"))).pages[0]
    assert ocr.ocr_pdf_page(page) == ("", 0.0)


# --- real scans -----------------------------------------------------------------------------

def words(text: str) -> str:
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text)  # words hyphenated across lines
    return " ".join(re.sub(r"[^\w' ]+", " ", text.replace("\u2019", "'")).split()).lower()


@needs_ocr
@needs_shared
def test_huckleberry_finn_scan_is_read():
    from pypdf import PdfReader

    text, confidence = ocr.ocr_pdf_page(PdfReader(HUCK).pages[0])
    got = words(text)
    # the drop cap W of "We went" stands apart from its word
    for phrase in ["went tip toeing along a path amongst", "we could a touched him nearly",
                   "seemed like i'd die if i couldn't scratch", "when you ain't sleepy"]:
        assert phrase in got, phrase
    assert confidence > 0.8


@needs_ocr
@needs_shared
def test_vicksburg_scan_matches_its_text_layer():
    # an Internet Archive scan whose text sits in JBIG2 masks over JPEG 2000 layers
    from pypdf import PdfReader

    page = PdfReader(VICKSBURG).pages[1]
    text, _ = ocr.ocr_pdf_page(page)
    assert "VICKSBURG" in text
    assert "leaving a hole big enough to bury a horse" in words(text)


def test_ocr_false_skips_images_with_that_reason(tmp_path):
    # the option a build passes on (ragbook.build(folder, ocr=False)): checked before the engine or the bytes
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(LoadError, match=r"turned off \(ocr=False\)"):
        load_file(path, ocr=False)
