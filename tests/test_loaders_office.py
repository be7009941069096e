"""Word and PowerPoint loaders: files made here with python-docx/python-pptx (and by hand with
zipfile for what those libraries never write), plus the real-world .docx files when present."""

from __future__ import annotations

import json
import os
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from ragbook.documents import Document, LoadError
from ragbook.loaders import load_file

docx = pytest.importorskip("docx")
pptx = pytest.importorskip("pptx")
from docx.oxml import parse_xml  # noqa: E402 - after the importorskip above
from docx.oxml.ns import nsdecls  # noqa: E402
from pptx.util import Inches, Pt  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_DOCX = SHARED / "realdocs" / "docx"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def one(path: Path, **options) -> Document:
    (doc,) = load_file(path, **options)
    return doc


def spans(doc: Document) -> dict[tuple[str, ...], str]:
    return {seg.section: doc.text[seg.start:seg.end] for seg in doc.segments}


def assert_well_formed(doc: Document) -> None:
    previous_end = 0
    for seg in doc.segments:
        assert previous_end <= seg.start < seg.end <= len(doc.text)
        assert doc.text[seg.start:seg.end].strip()
        assert seg.page is None  # no invented pages
        previous_end = seg.end
    json.dumps(doc.metadata)


def rewrite_zip(source: Path, target: Path, replace: dict[str, bytes | None], add: dict[str, bytes] | None = None) -> Path:
    """A copy of the zip at ``source`` with some parts replaced (None: removed) or added."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in replace:
                if replace[info.filename] is not None:
                    zout.writestr(info.filename, replace[info.filename])
            else:
                zout.writestr(info, zin.read(info))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return target


# --- Word: building documents ---------------------------------------------------------------
def make_docx(path: Path) -> Path:
    d = docx.Document()
    props = d.core_properties
    props.title, props.author = "Field Guide", "Ada Okafor; Ben Lee"
    props.created = props.modified = datetime(2021, 3, 4, 9, 30)
    d.add_paragraph("Intro before any heading.")
    d.add_heading("Getting started", level=1)
    p = d.add_paragraph("Read the guide")
    p.add_run(" carefully")
    d.add_paragraph("first bullet", style="List Bullet")
    d.add_paragraph("second bullet", style="List Bullet")
    d.add_paragraph("step one", style="List Number")
    d.add_paragraph("step two", style="List Number")
    d.add_heading("Equipment", level=2)
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("Item", "Count", "Where"), ("Goggles", "12", "Shelf A"), ("Gloves", "40", "Shelf B")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(0, 2).merge(table.cell(1, 2))  # vertical merge: "Where" once, not twice
    inner = table.cell(2, 0).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "nested-left", "nested-right"
    d.add_heading("Appendix", level=1)
    d.add_paragraph("The end & <more>.")
    section = d.sections[0]
    section.header.paragraphs[0].text = "RUNNING HEADER TEXT"
    section.footer.paragraphs[0].text = "RUNNING FOOTER TEXT"
    # a text box (w:txbxContent inside a drawing) and a hyperlink, as Word writes them
    anchor = p._p
    anchor.append(parse_xml(
        f'<w:r {nsdecls("w")} xmlns:v="urn:schemas-microsoft-com:vml"><w:pict><v:shape><v:textbox>'
        '<w:txbxContent><w:p><w:r><w:t>Boxed remark</w:t></w:r></w:p></w:txbxContent>'
        '</v:textbox></v:shape></w:pict></w:r>'))
    anchor.append(parse_xml(f'<w:hyperlink {nsdecls("w", "r")} r:id="rId99"><w:r><w:t> see the site</w:t></w:r>'
                            '</w:hyperlink>'))
    # deleted text and a field code must not show
    anchor.append(parse_xml(f'<w:del {nsdecls("w")} w:id="1" w:author="x"><w:r><w:delText>GONE</w:delText></w:r></w:del>'))
    anchor.append(parse_xml(f'<w:r {nsdecls("w")}><w:instrText>PAGE \\* MERGEFORMAT</w:instrText></w:r>'))
    d.save(path)
    return path


FOOTNOTES = (f'<w:footnotes xmlns:w="{W_NS}">'
             '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
             '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p>'
             '</w:footnote><w:footnote w:id="7"><w:p><w:r><w:footnoteRef/></w:r><w:r><w:t> Seven is the note.</w:t>'
             '</w:r></w:p></w:footnote></w:footnotes>').encode()
COMMENTS = (f'<w:comments xmlns:w="{W_NS}"><w:comment w:id="0" w:author="Rita"><w:p><w:r><w:t>Check this number'
            '</w:t></w:r></w:p></w:comment></w:comments>').encode()
NOTE_RELS = ('<Relationship Id="rIdFn" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
             'footnotes" Target="footnotes.xml"/><Relationship Id="rIdCm" Type="http://schemas.openxmlformats.org/'
             'officeDocument/2006/relationships/comments" Target="comments.xml"/></Relationships>')
NOTE_TYPES = ('<Override PartName="/word/footnotes.xml" ContentType="application/vnd.openxmlformats-officedocument.'
              'wordprocessingml.footnotes+xml"/><Override PartName="/word/comments.xml" ContentType="application/'
              'vnd.openxmlformats-officedocument.wordprocessingml.comments+xml"/></Types>')


def with_notes(source: Path, target: Path) -> Path:
    """``source`` with a footnote referenced from the first paragraph and a comment (zipfile by hand)."""
    with zipfile.ZipFile(source) as z:
        body = z.read("word/document.xml").decode()
        rels = z.read("word/_rels/document.xml.rels").decode()
        types = z.read("[Content_Types].xml").decode()
    ref = '<w:r><w:footnoteReference w:id="7"/></w:r>'
    at = body.index("Intro before any heading.")
    at = body.index("</w:r>", at) + len("</w:r>")
    body = body[:at] + ref + body[at:]
    return rewrite_zip(source, target, {"word/document.xml": body.encode(),
                                        "word/_rels/document.xml.rels": rels.replace("</Relationships>", NOTE_RELS).encode(),
                                        "[Content_Types].xml": types.replace("</Types>", NOTE_TYPES).encode()},
                       {"word/footnotes.xml": FOOTNOTES, "word/comments.xml": COMMENTS})


@pytest.fixture
def guide(tmp_path) -> Path:
    return make_docx(tmp_path / "guide.docx")


# --- Word: structure ------------------------------------------------------------------------
def test_docx_headings_lists_tables_and_metadata(guide):
    doc = one(guide)
    assert_well_formed(doc)
    assert doc.title == "Field Guide"
    assert doc.metadata["authors"] == ["Ada Okafor", "Ben Lee"]
    assert doc.metadata["date"] == "2021-03-04" and doc.metadata["format"] == "docx"
    by_section = spans(doc)
    assert by_section[()] == "Intro before any heading."
    started = by_section[("Getting started",)]
    assert started.startswith("Getting started\n\nRead the guide carefully see the site")
    assert "- first bullet\n- second bullet\n1. step one\n2. step two" in started
    assert "Boxed remark" in started  # text box kept, after its paragraph
    assert "GONE" not in doc.text and "MERGEFORMAT" not in doc.text
    table = by_section[("Getting started", "Equipment")]
    # python-docx's merge() moves "Shelf A" up into the merged cell; the merged cell comes once
    assert table.splitlines()[2:] == ["Item | Count | Where Shelf A", "Goggles | 12",
                                      "Gloves [nested-left, nested-right] | 40 | Shelf B"]
    assert by_section[("Appendix",)] == "Appendix\n\nThe end & <more>."
    assert "RUNNING" not in doc.text  # page headers and footers are running text
    assert doc.warnings == []


def test_docx_notes_come_after_the_body_or_not_at_all(guide, tmp_path):
    noted = with_notes(guide, tmp_path / "noted.docx")
    doc = one(noted)
    assert_well_formed(doc)
    assert "Intro before any heading.[1]" in doc.text
    by_section = spans(doc)
    assert by_section[("Footnotes",)] == "Footnotes\n\n[1] Seven is the note."
    assert by_section[("Comments",)] == "Comments\n\nRita: Check this number"
    assert doc.text.index("Footnotes") > doc.text.index("The end")
    assert (doc.metadata["footnotes"], doc.metadata["comments"]) == (1, 1)
    bare = one(noted, docx_notes=False)
    assert "Seven is the note" not in bare.text and "Check this number" not in bare.text
    assert {seg.section for seg in bare.segments}.isdisjoint({("Footnotes",), ("Comments",)})


def test_docx_title_falls_back_to_title_style_then_a_lone_heading(tmp_path):
    d = docx.Document()
    d.add_heading("Styled Title", level=0)
    d.add_heading("Only Chapter", level=1)
    d.add_paragraph("Body.")
    d.save(tmp_path / "a.docx")
    doc = one(tmp_path / "a.docx")
    assert doc.title == "Styled Title"
    assert ("Styled Title", "Only Chapter") in spans(doc)
    assert "authors" not in doc.metadata  # python-docx's template says "python-docx": not an author

    d = docx.Document()
    for chapter in ("One", "Two"):
        d.add_heading(chapter, level=1)
        d.add_paragraph(f"Text of {chapter}.")
    d.save(tmp_path / "b.docx")
    assert one(tmp_path / "b.docx").title == "b"  # two chapters: no title of its own, the file's name


def test_docx_outline_levels_and_numbered_headings(tmp_path):
    d = docx.Document()
    p = d.add_paragraph("Custom heading by outline level")
    p._p.get_or_add_pPr().append(parse_xml(f'<w:outlineLvl {nsdecls("w")} w:val="0"/>'))
    d.add_paragraph("under it")
    d.save(tmp_path / "o.docx")
    assert spans(one(tmp_path / "o.docx"))[("Custom heading by outline level",)].endswith("under it")


# --- Word: hostile and broken files ---------------------------------------------------------
def test_docx_with_macros_loads_text_with_a_warning(guide, tmp_path):
    macro = rewrite_zip(guide, tmp_path / "macro.docx", {}, {"word/vbaProject.bin": b"\x00attribute vb_name" * 50})
    doc = one(macro)
    assert "Read the guide carefully" in doc.text
    assert any("macros" in warning for warning in doc.warnings)


@pytest.mark.parametrize("content, reason", [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600 + "WordDocument".encode("utf-16-le"), "old binary Word .doc"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600 + "EncryptedPackage".encode("utf-16-le"), "password-protected"),
    (b"{\\rtf1\\ansi hello}", "RTF"),
    (b"just some text, not a zip", "not a zip archive"),
    (b"   \n", "empty file"),
])
def test_docx_that_is_something_else_says_what_it_is(tmp_path, content, reason):
    path = tmp_path / "bad.docx"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=reason):
        load_file(path)


def test_docx_truncated_or_missing_parts(guide, tmp_path):
    data = guide.read_bytes()
    (tmp_path / "cut.docx").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="not a zip archive|damaged"):
        load_file(tmp_path / "cut.docx")

    no_body = rewrite_zip(guide, tmp_path / "nobody.docx", {"word/document.xml": None})
    with pytest.raises(LoadError, match="word/document.xml.*missing"):
        load_file(no_body)

    plain = tmp_path / "plain.docx"
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(LoadError, match="Content_Types"):
        load_file(plain)

    broken = rewrite_zip(guide, tmp_path / "broken.docx", {"word/document.xml": b"<w:document><w:body><w:p>"})
    with pytest.raises(LoadError, match="not well-formed|damaged"):
        load_file(broken)

    # a deck renamed .docx
    deck = make_deck(tmp_path / "deck.pptx", slides=1)
    renamed = tmp_path / "deck.docx"
    renamed.write_bytes(deck.read_bytes())
    with pytest.raises(LoadError, match="not a Word document.*PowerPoint"):
        load_file(renamed)


def write_bomb(target: Path, template: Path, part: str, unpacked_mb: int, random_bits: bool = False) -> Path:
    """``template`` with ``part`` replaced by ``unpacked_mb`` MB of "0" (or random "0"/"1"), streamed."""
    bits = bytes.maketrans(bytes(range(256)), bytes(48 + (b & 1) for b in range(256)))
    with zipfile.ZipFile(template) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename == part:
                with zout.open(part, "w", force_zip64=True) as member:
                    for _ in range(unpacked_mb):
                        member.write(os.urandom(1 << 20).translate(bits) if random_bits else b"0" * (1 << 20))
            else:
                zout.writestr(info, zin.read(info))
    return target


@pytest.mark.parametrize("fmt", ["docx", "pptx"])
def test_zip_bombs_are_refused_before_inflating(tmp_path, guide, fmt):
    template = guide if fmt == "docx" else make_deck(tmp_path / "t.pptx", slides=1)
    part = "word/document.xml" if fmt == "docx" else "ppt/slides/slide1.xml"
    bomb = write_bomb(tmp_path / f"bomb.{fmt}", template, part, 50)
    assert bomb.stat().st_size < 1_000_000
    started = time.perf_counter()
    with pytest.raises(LoadError, match="zip bomb|unpacks to"):
        load_file(bomb)
    assert time.perf_counter() - started < 2
    # a small max_file_mb bounds what may be unpacked, whatever the ratio: 6 MB of random
    # binary digits compress only ~7:1, to a file under max_file_mb that unpacks past 4x it
    dense = write_bomb(tmp_path / f"dense.{fmt}", template, part, 6, random_bits=True)
    assert dense.stat().st_size < 2**20
    with pytest.raises(LoadError, match="unpacks to"):
        load_file(dense, max_file_mb=1.0)


def laughs(levels: int) -> str:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1))
    return f"<!DOCTYPE w:document [{entities}]>"


def test_xml_entity_expansion_and_deep_nesting_are_refused(guide, tmp_path):
    with zipfile.ZipFile(guide) as z:
        body = z.read("word/document.xml").decode()
    head, rest = body.split("?>", 1)
    bomb = rewrite_zip(guide, tmp_path / "laughs.docx", {
        "word/document.xml": (head + "?>" + laughs(9) + rest.replace("Intro before", "&lol9; Intro before", 1)).encode()})
    with pytest.raises(LoadError, match="billion laughs"):
        load_file(bomb)
    # a small declared entity is neither expanded nor fatal: the rest of the text is read
    small = rewrite_zip(guide, tmp_path / "small.docx", {
        "word/document.xml": (head + "?>" + laughs(2) + rest.replace("Intro before", "&lol2;Intro before", 1)).encode()})
    doc = one(small)
    assert "lol" not in doc.text and "Intro before any heading." in doc.text
    assert any("DOCTYPE" in warning for warning in doc.warnings)

    deep = "<w:p>" * 5000 + "</w:p>" * 5000
    nested = rewrite_zip(guide, tmp_path / "deep.docx", {
        "word/document.xml": rest.join([head + "?>", ""]).replace("<w:body>", "<w:body>" + deep, 1).encode()})
    with pytest.raises(LoadError, match="deeper than 256"):
        load_file(nested)


def test_docx_through_load_reports_problems_not_exceptions(guide, tmp_path):
    from ragbook.loaders import load

    (tmp_path / "old.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    loaded = load(tmp_path)
    assert [Path(doc.source).name for doc in loaded] == ["guide.docx"]
    assert [(Path(p.source).name, "save as .docx" in p.reason) for p in loaded.errors] == [("old.docx", True)]


# --- Word: real-world files -----------------------------------------------------------------
real = pytest.mark.skipif(not REAL_DOCX.exists(), reason="shared/data/realdocs not present")


@real
def test_real_nested_tables_and_merged_cells():
    doc = one(REAL_DOCX / "nested-tables-merged-cells.docx")
    assert_well_formed(doc)
    lines = doc.text.splitlines()
    assert "Lorem ipsum | A link example" in lines  # hyperlink text kept
    assert "a | >b< | c" in lines  # XML-escaped characters come out as themselves
    assert "d | [e, f; g&t, h] | i" in lines  # the nested table, inside its cell
    # merged cells once: "a" spans two rows, "b" two columns, "d" two rows
    merged = doc.text[doc.text.index("Table with merged cells"):].splitlines()[2:]
    assert merged == ["a | b", "c | d", "e"]


@real
def test_real_japanese_text_is_intact():
    doc = one(REAL_DOCX / "japanese-paperqa.docx")
    assert_well_formed(doc)
    assert doc.title == "AIエージェントとRAGの統合"
    # (full-width punctuation is folded to what people type: "（LLM）" reads "(LLM)")
    assert "ハイブリッド検索" in doc.text and "大規模言語モデル(LLM)" in doc.text
    assert ("AIエージェントとRAGの統合", "ハイブリッド検索の重要性") in {s.section for s in doc.segments}


@real
def test_real_large_handbook_loads_fast_with_heading_sections():
    started = time.perf_counter()
    doc = one(REAL_DOCX / "doj-chapter13-trustee-handbook-large.docx")
    assert time.perf_counter() - started < 20
    assert_well_formed(doc)
    assert len(doc.text) > 800_000 and doc.metadata["paragraphs"] > 8000
    sections = {seg.section for seg in doc.segments}
    assert len(sections) > 120
    assert ("CHAPTER 1 – INTRODUCTION", "A. PURPOSE") in sections
    assert any(s[-1:] == ("1. CONFLICTS OF INTEREST",) for s in sections)
    assert "[1]" in doc.text and spans(doc)[("Footnotes",)].startswith("Footnotes\n\n[1] ")


@real
def test_real_page_breaks_give_no_pages():
    doc = one(REAL_DOCX / "page-breaks-haystack.docx")
    assert_well_formed(doc)
    assert "Now this is a new paragraph on a new page." in doc.text
    assert doc.metadata["authors"] == ["Jonathan Strutz"]


# --- PowerPoint -----------------------------------------------------------------------------
def make_deck(path: Path, slides: int = 30, title: str | None = "Evaluation Deck") -> Path:
    """A deck of ``slides`` slides; slide 2 has a table, 3 a group and a chart-free layout, 4 is hidden."""
    prs = pptx.Presentation()
    props = prs.core_properties
    props.title = title or ""
    props.author = "Dana Ruiz"
    props.created = props.modified = datetime(2022, 5, 6, 10, 0)
    for n in range(1, slides + 1):
        slide = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
        slide.shapes.title.text = f"Slide title {n}"
        body = slide.placeholders[1].text_frame
        body.text = f"point {n}a"
        sub = body.add_paragraph()
        sub.text, sub.level = f"detail {n}b", 1
        slide.notes_slide.notes_text_frame.text = f"Say the number {n * 7}."
        if n == 2:
            rows = slide.shapes.add_table(2, 3, Inches(1), Inches(5), Inches(6), Inches(1)).table
            for c, (head, value) in enumerate([("Metric", "F1"), ("Value", "0.81"), ("Note", "")]):
                rows.cell(0, c).text, rows.cell(1, c).text = head, value
            rows.cell(0, 1).merge(rows.cell(0, 2))
        if n == 3:
            group = slide.shapes.add_group_shape()
            right = group.shapes.add_textbox(Inches(5), Inches(6), Inches(2), Inches(1))
            right.text_frame.text = "grouped right"
            left = group.shapes.add_textbox(Inches(1), Inches(6), Inches(2), Inches(1))
            left.text_frame.text = "grouped left"
            top = slide.shapes.add_textbox(Inches(7), Inches(1.6), Inches(2), Inches(0.5))
            top.text_frame.text = "top right box"
        if n == 4:
            slide._element.set("show", "0")
    prs.save(path)
    return path


@pytest.fixture(scope="module")
def deck(tmp_path_factory) -> Path:
    return make_deck(tmp_path_factory.mktemp("deck") / "deck.pptx")


def test_pptx_one_segment_per_slide_with_notes(deck):
    doc = one(deck)
    assert_well_formed(doc)
    assert doc.title == "Evaluation Deck"
    assert doc.metadata["slides"] == 30 and doc.metadata["hidden_slides"] == [4]
    assert doc.metadata["authors"] == ["Dana Ruiz"] and doc.metadata["date"] == "2022-05-06"
    assert [seg.slide for seg in doc.segments] == [n for n in range(1, 31) if n != 4]
    first = doc.segments[0]
    assert first.section == ("Slide title 1",)
    assert doc.text[first.start:first.end] == "Slide title 1\n- point 1a\n  - detail 1b\nSpeaker notes: Say the number 7."
    assert "Slide title 4" not in doc.text and "Say the number 28." not in doc.text


def test_pptx_tables_groups_and_reading_order(deck):
    doc = one(deck)
    by_slide = {seg.slide: doc.text[seg.start:seg.end] for seg in doc.segments}
    # python-pptx's merge() moves "Note" into the merged cell, which comes once; empty end cells go
    assert "Metric | Value Note\nF1 | 0.81\n" in by_slide[2]
    lines = by_slide[3].splitlines()
    assert lines.index("top right box") < lines.index("grouped left") < lines.index("grouped right")
    assert lines[-1].startswith("Speaker notes:")


def test_pptx_options_hidden_and_notes(deck):
    doc = one(deck, pptx_hidden=True, pptx_notes=False)
    assert 4 in [seg.slide for seg in doc.segments]
    assert "(hidden slide)\nSlide title 4" in doc.text
    assert "Speaker notes" not in doc.text


def test_pptx_title_falls_back_to_first_slide(tmp_path):
    path = make_deck(tmp_path / "t.pptx", slides=2, title=None)
    assert one(path).title == "Slide title 1"  # python-pptx's "PowerPoint Presentation" is not a title


def test_pptx_hand_built_odd_decks(tmp_path):
    base = make_deck(tmp_path / "base.pptx", slides=2)
    with zipfile.ZipFile(base) as z:
        slide = z.read("ppt/slides/slide1.xml").decode()
    # a slide that is not well-formed, one with a billion-laughs DOCTYPE, one nested too deep
    broken = rewrite_zip(base, tmp_path / "broken.pptx", {"ppt/slides/slide1.xml": slide[:-40].encode()})
    with pytest.raises(LoadError, match="not well-formed|damaged"):
        load_file(broken)
    head, rest = slide.split("?>", 1)
    laughing = rewrite_zip(base, tmp_path / "laughs.pptx", {
        "ppt/slides/slide1.xml": (head + "?>" + laughs(9).replace("w:document", "p:sld")
                                  + rest.replace("Slide title 1", "&lol9;", 1)).encode()})
    with pytest.raises(LoadError, match="billion laughs"):
        load_file(laughing)
    deep = rewrite_zip(base, tmp_path / "deep.pptx", {
        "ppt/slides/slide1.xml": slide.replace("<p:cSld>", "<p:cSld>" + "<x>" * 3000 + "</x>" * 3000, 1).encode()})
    with pytest.raises(LoadError, match="deeper than 256"):
        load_file(deep)
    # a deck whose presentation part is gone, and one whose slides have no text at all
    gone = rewrite_zip(base, tmp_path / "gone.pptx", {"ppt/presentation.xml": None})
    with pytest.raises(LoadError, match="missing"):
        load_file(gone)
    empty = tmp_path / "empty.pptx"
    prs = pptx.Presentation()
    prs.slides.add_slide(prs.slide_layouts[6])
    prs.save(empty)
    with pytest.raises(LoadError, match="no text found"):
        load_file(empty)
    # a macro-enabled deck keeps its text; an old binary .ppt says what to do
    macro = rewrite_zip(base, tmp_path / "macro.pptx", {}, {"ppt/vbaProject.bin": b"\x00" * 100})
    doc = one(macro)
    assert "Slide title 1" in doc.text and any("macros" in w for w in doc.warnings)
    old = tmp_path / "old.pptx"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    with pytest.raises(LoadError, match=r"PowerPoint \.ppt.*save as \.pptx"):
        load_file(old)


def test_pptx_chart_title_and_textbox_bullets(tmp_path):
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE

    prs = pptx.Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    slide.shapes.title.text = "Results"
    data = CategoryChartData()
    data.categories = ["A", "B"]
    data.add_series("accuracy", (0.7, 0.9))
    chart = slide.shapes.add_chart(XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(2), Inches(4), Inches(3), data).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = "Accuracy by model"
    box = slide.shapes.add_textbox(Inches(6), Inches(2), Inches(3), Inches(2)).text_frame
    box.text = "plain box line"
    box.paragraphs[0].font.size = Pt(12)
    prs.save(tmp_path / "chart.pptx")
    doc = one(tmp_path / "chart.pptx")
    assert doc.text.splitlines() == ["Results", "Chart: Accuracy by model", "plain box line"]


# --- the demo corpus's Office files -------------------------------------------------------------
CORPORA = Path(__file__).resolve().parents[1] / "corpora"


def test_demo_guest_lecture_deck():
    doc = one(CORPORA / "course-notes" / "07-guest-lecture.pptx")
    assert_well_formed(doc)
    assert doc.title == "Beyond Accuracy: Evaluating Models in Practice"
    by_slide = {seg.slide: (seg.section, doc.text[seg.start:seg.end]) for seg in doc.segments}
    assert sorted(by_slide) == list(range(1, 9))
    section, text = by_slide[5]
    assert section == ("What Changed Our Recall",) and "Recall rose from 0.41 to 0.78" in text
    assert "retrained every 28 days" in by_slide[7][1]
    assert "Actual stockout | 41 | 59" in by_slide[3][1]
    assert "Speaker notes: The single biggest gain came from the event calendar" in by_slide[5][1]


def test_demo_lab_safety_document():
    doc = one(CORPORA / "lab-safety-and-conduct.docx")
    assert_well_formed(doc)
    assert doc.title == "Lab Safety and Conduct" and doc.metadata["date"] == "2024-11-12"
    by_section = spans(doc)
    assert "Assembly Point C" in by_section[("Lab Safety and Conduct", "Emergencies and Evacuation")]
    assert "Room too hot or cold, lights or doors not working | Hollis Hall facilities desk | Extension 4471" in \
        by_section[("Lab Safety and Conduct", "Who to Contact")]
    assert by_section[("Footnotes",)].startswith("Footnotes\n\n[1] The B07 fire alarm is tested every first Monday")


def test_demo_generator_is_deterministic(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_office_docs", CORPORA / "make_office_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "DECK", tmp_path / "deck.pptx")
    monkeypatch.setattr(module, "WORD", tmp_path / "word.docx")
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.main()
    assert (tmp_path / "deck.pptx").read_bytes() == (CORPORA / "course-notes" / "07-guest-lecture.pptx").read_bytes()
    assert (tmp_path / "word.docx").read_bytes() == (CORPORA / "lab-safety-and-conduct.docx").read_bytes()
