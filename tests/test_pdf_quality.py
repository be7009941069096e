"""PDF text quality: running headers, hyphenation, ligatures, forms, references, metadata, OCR."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from ragbook.documents import LoadError
from ragbook.loaders import load_file
from ragbook.loaders.pdf import (
    dehyphenate,
    load_pdf,
    pdf_date,
    split_authors,
    strip_furniture,
)

try:
    from pdfmaker import make_pdf
except ImportError:  # tests/ collected as a package
    from tests.pdfmaker import make_pdf

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REALDOCS = SHARED / "realdocs"
needs_realdocs = pytest.mark.skipif(not REALDOCS.exists(), reason="needs ../shared/data/realdocs")


def page_texts(doc):
    return {s.page: doc.text[s.start:s.end] for s in doc.segments}


def raw_pdf(path: Path, streams: list[bytes], font: bytes) -> Path:
    """A one-font PDF whose pages draw the given content streams (for glyph-level tests)."""
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: font}
    kids = []
    for i, stream in enumerate(streams):
        kids.append(f"{4 + 2 * i} 0 R")
        objects[4 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R"
                              f" >> >> /Contents {5 + 2 * i} 0 R >>").encode()
        objects[5 + 2 * i] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    objects[2] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(streams)} >>".encode()
    out, offsets = bytearray(b"%PDF-1.4\n"), {}
    for n in sorted(objects):
        offsets[n] = len(out)
        out += b"%d 0 obj\n" % n + objects[n] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in sorted(objects))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


# --- running headers, footers, page numbers ----------------------------------------------
def test_running_headers_and_page_numbers_are_dropped_and_pages_keep_their_text(tmp_path):
    bodies = ["Cats sleep a lot.", "Dogs bark.", "", "Birds sing at dawn.", "Fish swim.", "Frogs jump high."]
    pages = [f"ACME Annual Report 2024\n{body}\nPage {n} of 6" for n, body in enumerate(bodies, 1)]
    pages[2] = "ACME Annual Report 2024\nA one-off line at the top\nbody of page three\n3"  # bare number
    doc = load_pdf(make_pdf(tmp_path / "report.pdf", pages))
    texts = page_texts(doc)
    assert texts[1] == "Cats sleep a lot." and texts[6] == "Frogs jump high."
    assert texts[3] == "A one-off line at the top\nbody of page three"
    assert "ACME" not in doc.text and "Page" not in doc.text and sorted(texts) == [1, 2, 3, 4, 5, 6]


def test_odd_and_even_headers_alternate_and_unique_lines_stay():
    numbers = list(range(1, 9))
    words = ["apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel"]
    pages = [[("Left header" if n % 2 == 0 else f"Right header {n}"), f"All about {w}.", f"{w.title()} facts"]
             for n, w in zip(numbers, words)]
    pages[4].insert(1, "Unique opening line")
    out = strip_furniture(pages, numbers)
    assert out[0] == ["All about apple.", "Apple facts"] and out[1] == ["All about banana.", "Banana facts"]
    assert out[4] == ["Unique opening line", "All about elder.", "Elder facts"]


def test_few_pages_or_a_lone_number_are_left_alone(tmp_path):
    doc = load_pdf(make_pdf(tmp_path / "short.pdf", ["Same title\nalpha", "Same title\nbeta", "Total\n43"]))
    assert doc.text == "Same title\nalpha\n\nSame title\nbeta\n\nTotal\n43"  # 3 pages: no header guessing
    # pages that are nothing but the same line keep it
    doc = load_pdf(make_pdf(tmp_path / "same.pdf", ["Rotated"] * 4))
    assert list(page_texts(doc).values()) == ["Rotated"] * 4


# --- hyphenation ---------------------------------------------------------------------------
def test_dehyphenate_joins_syllables_and_keeps_compounds():
    assert dehyphenate("fast retrie-\nval of text") == "fast retrieval of text"
    assert dehyphenate("state-of-the-\nart models") == "state-of-the-art models"
    assert dehyphenate("near Soekarno-\nHatta and 737-\n9") == "near Soekarno-\nHatta and 737-\n9"
    assert dehyphenate("a well-\nknown fact", compounds={"well-known"}) == "a well-known fact"
    assert dehyphenate("in-\nformation", words={"in", "formation"}) == "information"  # halves under 4 letters
    assert dehyphenate("edge-\nagnostic", words={"edge", "agnostic"}) == "edge-agnostic"
    assert dehyphenate("line ends -\nhere") == "line ends -\nhere"  # a dash, not a broken word


def test_pdf_words_broken_across_lines_are_searchable(tmp_path):
    doc = load_pdf(make_pdf(tmp_path / "h.pdf", ["Dense retrie-\nval and well-known tricks, a well-\nknown fact."]))
    assert doc.text == "Dense retrieval and well-known tricks, a well-known fact."


# --- ligatures and compatibility characters ------------------------------------------------
def test_ligatures_soft_hyphens_and_invisible_characters_are_spelled_out(tmp_path):
    font = (b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Type /Encoding /BaseEncoding "
            b"/WinAnsiEncoding /Differences [1 /fi /fl /ffi /ff] >> >>")
    # \x01 = fi, \x02 = fl, \x03 = ffi, \x04 = ff; \xa0 a no-break space, \xad a soft hyphen
    stream = b"BT /F1 12 Tf 14 TL 72 720 Td (e\x03cient \x01le \x02ow, o\x04\xa0line) Tj T* (retrie\xad) Tj T* (val) Tj ET"
    doc = load_pdf(raw_pdf(tmp_path / "lig.pdf", [stream], font))
    assert doc.text == "efficient file flow, off line\nretrieval"


def test_spacing_accents_from_tex_are_put_back_on_their_letter(tmp_path):
    doc = load_pdf(make_pdf(tmp_path / "tex.pdf", ["Saier and F\u00a8arber (2019), caf\u00b4e"]))
    assert doc.text == "Saier and F\u00e4rber (2019), caf\u00e9"


# --- annotations and form fields -----------------------------------------------------------
def _with_form(path: Path, pages: list[str], fields: dict[str, tuple[int, str]], notes: dict[int, str]) -> Path:
    from pypdf import PdfWriter
    from pypdf.annotations import FreeText
    from pypdf.generic import (
        ArrayObject,
        DictionaryObject,
        NameObject,
        NumberObject,
        TextStringObject,
    )

    writer = PdfWriter(clone_from=make_pdf(path, pages))
    widgets = ArrayObject()
    for name, (page, value) in fields.items():
        widget = DictionaryObject({NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Widget"),
                                   NameObject("/FT"): NameObject("/Tx"), NameObject("/T"): TextStringObject(name),
                                   NameObject("/V"): TextStringObject(value),
                                   NameObject("/Rect"): ArrayObject([NumberObject(n) for n in (72, 600, 300, 620)])})
        ref = writer._add_object(widget)
        widgets.append(ref)
        target = writer.pages[page - 1]
        if "/Annots" not in target:
            target[NameObject("/Annots")] = ArrayObject()
        target["/Annots"].append(ref)
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject({NameObject("/Fields"): widgets})
    for page, text in notes.items():
        writer.add_annotation(page - 1, FreeText(text=text, rect=(50, 550, 200, 650)))
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def test_filled_form_fields_and_comments_are_read_on_their_page(tmp_path):
    path = _with_form(tmp_path / "form.pdf", ["Application form", ""],
                      {"Applicant name": (1, "Ada Lovelace"), "Empty": (1, ""), "Reason": (2, "analytical engines")},
                      {2: "Reviewer: approved"})
    doc = load_pdf(path)
    texts = page_texts(doc)
    assert texts[1] == "Application form\n\nForm field Applicant name: Ada Lovelace"
    assert texts[2] == "Form field Reason: analytical engines\nComment: Reviewer: approved"
    assert doc.metadata["form_fields"] == 2 and doc.warnings == []


def test_form_without_a_text_layer_is_not_reported_empty(tmp_path):
    doc = load_pdf(_with_form(tmp_path / "blank-form.pdf", ["", ""], {"City": (2, "Paris")}, {}), ocr=False)
    assert page_texts(doc) == {2: "Form field City: Paris"}


def test_xfa_form_says_what_it_is(tmp_path):
    from pypdf import PdfWriter
    from pypdf.generic import BooleanObject, NameObject

    writer = PdfWriter(clone_from=make_pdf(tmp_path / "xfa.pdf", [""]))
    writer._root_object[NameObject("/NeedsRendering")] = BooleanObject(True)
    with open(tmp_path / "xfa.pdf", "wb") as handle:
        writer.write(handle)
    with pytest.raises(LoadError, match="no text layer: this is an XFA form"):
        load_pdf(tmp_path / "xfa.pdf", ocr=False)


# --- references ----------------------------------------------------------------------------
def test_reference_list_gets_its_own_section(tmp_path):
    pages = ["Contents\nReferences\nIntro text " * 3, "Method text " * 20, "Results text " * 20,
             "Conclusion text.\n5 References\n[1] A. Author. A paper. 2020.", "[2] B. Author. Another. 2021.",
             "Appendix A: extra tables\nTable data"]
    doc = load_pdf(make_pdf(tmp_path / "paper.pdf", pages))
    spans = [(s.page, s.section, doc.text[s.start:s.end]) for s in doc.segments]
    assert spans[0][1] == () and spans[3] == (4, (), "Conclusion text.")
    assert spans[4] == (4, ("References",), "5 References\n[1] A. Author. A paper. 2020.")
    assert spans[5] == (5, ("References",), "[2] B. Author. Another. 2021.")
    assert spans[6] == (6, (), "Appendix A: extra tables\nTable data")


# --- metadata ------------------------------------------------------------------------------
def test_authors_and_dates_from_the_info_dictionary():
    assert split_authors("Kyle Lo ; Lucy Lu Wang ;Dan Weld") == ["Kyle Lo", "Lucy Lu Wang", "Dan Weld"]
    assert split_authors("Ann Lee, Bo Chen and Cy Diaz") == ["Ann Lee", "Bo Chen", "Cy Diaz"]
    assert split_authors("Lee, Ann") == ["Lee, Ann"]
    assert split_authors("Ann Lee and Bo Chen") == ["Ann Lee", "Bo Chen"]
    assert split_authors("SE:W:CAR:MP:I:S") == [] and split_authors("admin") == [] and split_authors("") == []
    assert pdf_date("D:20200502083329Z") == "2020-05-02" and pdf_date("D:2019") == "2019"
    assert pdf_date("D:20201399") == "2020" and pdf_date("yesterday") == "" and pdf_date("") == ""


@pytest.mark.parametrize("title,expected", [("Deep Retrieval", "Deep Retrieval"), ("Microsoft Word - doc1.docx", ""),
                                            ("untitled", ""), ("Proceedings Template - WORD", ""),
                                            ("Microsoft Word - Field Notes", "Field Notes")])
def test_title_authors_and_date_reach_the_document(tmp_path, title, expected):
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=make_pdf(tmp_path / "m.pdf", ["text"]))
    writer.add_metadata({"/Title": title, "/Author": "Ann Lee; Bo Chen", "/CreationDate": "D:20210304120000Z"})
    with open(tmp_path / "m.pdf", "wb") as handle:
        writer.write(handle)
    doc = load_pdf(tmp_path / "m.pdf")
    assert doc.title == expected
    assert doc.metadata["authors"] == ["Ann Lee", "Bo Chen"] and doc.metadata["date"] == "2021-03-04"


# --- OCR hook ------------------------------------------------------------------------------
@pytest.fixture()
def fake_ocr(monkeypatch):
    """Stands in for ragbook.loaders.ocr (a dependency of the PDF loader, not what is tested)."""
    module = types.ModuleType("ragbook.loaders.ocr")
    module.state = {"missing": None, "calls": []}
    module.missing = lambda: module.state["missing"]

    def ocr_pdf_page(page):
        module.state["calls"].append(page)
        return "Words read from the scan", 0.87

    module.ocr_pdf_page = ocr_pdf_page
    monkeypatch.setitem(sys.modules, "ragbook.loaders.ocr", module)
    import ragbook.loaders

    monkeypatch.setattr(ragbook.loaders, "ocr", module, raising=False)
    return module


def test_pages_without_text_are_read_by_ocr_when_installed(tmp_path, fake_ocr):
    doc = load_pdf(make_pdf(tmp_path / "scan.pdf", ["", "", ""]))
    assert page_texts(doc) == {1: "Words read from the scan", 2: "Words read from the scan", 3: "Words read from the scan"}
    assert doc.metadata["ocr"] is True and doc.metadata["ocr_pages"] == [1, 2, 3]
    assert doc.warnings == ["pages 1-3 read by OCR (mean confidence 87%); check the text"]


def test_blank_pages_between_text_are_not_ocred(tmp_path, fake_ocr):
    doc = load_pdf(make_pdf(tmp_path / "book.pdf", ["Chapter one", "", "Chapter two"]))
    assert fake_ocr.state["calls"] == [] and "ocr" not in doc.metadata


def test_without_ocr_the_error_names_the_install_command(tmp_path, fake_ocr, monkeypatch):
    path = make_pdf(tmp_path / "scan.pdf", [""])
    fake_ocr.state["missing"] = "OCR is not installed: pip install 'ragbook[ocr]'"
    with pytest.raises(LoadError, match=r"no text layer .*ocrmypdf.*pip install 'ragbook\[ocr\]'"):
        load_pdf(path)
    fake_ocr.state["missing"] = None
    with pytest.raises(LoadError, match="no text layer") as info:
        load_pdf(path, ocr=False)
    assert fake_ocr.state["calls"] == [] and "pip install" not in str(info.value)
    import ragbook.loaders

    monkeypatch.setitem(sys.modules, "ragbook.loaders.ocr", None)  # not installed at all: ImportError
    monkeypatch.delattr(ragbook.loaders, "ocr", raising=False)
    with pytest.raises(LoadError, match=r"pip install 'ragbook\[ocr\]'"):
        load_pdf(path)


# --- real-world files ----------------------------------------------------------------------
@needs_realdocs
def test_real_paper_text_metadata_and_references():
    doc = load_pdf(REALDOCS / "pdf-good" / "acl2020-s2orc-two-column.pdf")
    assert doc.title == "S2ORC: The Semantic Scholar Open Research Corpus" and doc.metadata["date"] == "2020-05-02"
    assert doc.metadata["authors"][:2] == ["Kyle Lo", "Lucy Lu Wang"]
    assert "Artificial Intelligence" in doc.text and "\ufb01" not in doc.text and "Färber" in doc.text
    assert "existing corpora are not without their limitations" in " ".join(doc.text.split())
    refs = [s for s in doc.segments if s.section == ("References",)]
    assert doc.text[refs[0].start:].startswith("References\n") and {s.page for s in refs} == {9, 10, 11, 12}
    assert [s.section for s in doc.segments if s.page == 13] == [()]  # the appendix after the references
    assert "\n4970\n" not in doc.text and not doc.text.startswith("4970")


@needs_realdocs
def test_real_running_headers_go_and_pages_stay():
    doc = load_pdf(REALDOCS / "pdf-good" / "iop-jpcs-2022-word-cc-by-3.pdf")
    assert doc.text.count("IOP Publishing") == 2  # page 1's licence and header (not 4 lines from the top); was 13
    assert {s.page for s in doc.segments} == set(range(1, 13))


@needs_realdocs
def test_real_form_values_xfa_and_mojibake():
    doc = load_pdf(REALDOCS / "pdf-good" / "form-filled-by-acrobat.pdf")
    texts = page_texts(doc)
    assert "Form field Text Box 1: abc potato" in texts[1] and "Form field Text Box 2: salad πʬ xyz" in texts[3]
    with pytest.raises(LoadError, match="XFA form"):
        load_pdf(REALDOCS / "pdf-hostile" / "xfa-livecycle-no-text.pdf")
    assert any("garbled" in w for w in load_pdf(REALDOCS / "pdf-hostile" / "japanese-jo-mojibake.pdf").warnings)


def test_a_signature_field_is_not_dumped_as_text():
    # a signed PDF's /Sig field holds a dictionary with the raw PKCS#7 bytes: not a value anyone typed
    from pypdf.generic import ByteStringObject, DictionaryObject, NameObject, NumberObject, TextStringObject

    from ragbook.loaders.pdf import _string

    signature = DictionaryObject({NameObject("/Type"): NameObject("/Sig"),
                                  NameObject("/Contents"): ByteStringObject(b"0\x80\x06\t*\x86H")})
    assert _string(signature) == "" and _string(ByteStringObject(b"\x00\x01")) == ""
    assert _string(TextStringObject("abc potato")) == "abc potato" and _string(NumberObject(42)) == "42"
    assert _string(NameObject("/Off")) == "" and _string(NameObject("/Yes")) == "Yes"


@pytest.mark.skipif(not (REALDOCS / "pdf-good" / "federal-register-2020-17221-3col.pdf").exists(), reason="needs realdocs")
def test_the_signed_federal_register_gives_no_signature_bytes():
    doc = load_file(REALDOCS / "pdf-good" / "federal-register-2020-17221-3col.pdf", ocr=False)[0]
    assert "/Sig" not in doc.text and "PPKLite" not in doc.text and "\\x80" not in doc.text
