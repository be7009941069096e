"""EPUB loader: real EPUB 2 and EPUB 3 books built here with zipfile, and hostile ones."""

from __future__ import annotations

import base64
import json
import os
import time
import zipfile
from pathlib import Path

import pytest

from ragbook.documents import Document, LoadError
from ragbook.loaders import load, load_file
from ragbook.loaders.epub import parse_xml

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="{opf}" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""


def xhtml(title: str, body: str) -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>{title}</title></head><body>{body}</body></html>")


def opf(chapters: list[str], *, version: int = 3, title: str = "Learning Python", extra_meta: str = "",
        extra_items: str = "", spine: str | None = None, creators: str | None = None) -> str:
    items = "".join(f'<item id="c{i}" href="{name}" media-type="application/xhtml+xml"/>'
                    for i, name in enumerate(chapters))
    refs = spine if spine is not None else "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    if version == 3:
        items += '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        refs = '<itemref idref="nav"/>' + refs  # many books put the nav document first in the spine
        creators = creators if creators is not None else (
            '<dc:creator id="a1">Ada Lovelace</dc:creator><meta refines="#a1" property="role">aut</meta>'
            '<dc:creator id="e1">Ed Itor</dc:creator><meta refines="#e1" property="role">edt</meta>'
            '<dc:creator id="a2">Alan Turing</dc:creator>')
        toc_attr = ""
    else:
        items += '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
        creators = creators if creators is not None else (
            '<dc:creator opf:role="aut">Ada Lovelace</dc:creator><dc:creator opf:role="ill">Ill Ustrator</dc:creator>')
        toc_attr = ' toc="ncx"'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" xmlns:opf="http://www.idpf.org/2007/opf" version="{version}.0">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:title>{title}</dc:title>{creators}
    <dc:date opf:event="modification">2023-01-01</dc:date><dc:date>2021-03-04T10:00:00Z</dc:date>
    <dc:language>en-GB</dc:language>{extra_meta}
  </metadata>
  <manifest>{items}{extra_items}</manifest>
  <spine{toc_attr}>{refs}</spine>
</package>"""


def nav(entries: list[tuple[str, str]]) -> str:
    links = "".join(f'<li><a href="{href}">{label}</a></li>' for href, label in entries)
    return xhtml("Contents", f'<nav epub:type="toc" xmlns:epub="http://www.idpf.org/2007/ops"><h1>Contents</h1>'
                             f'<ol>{links}</ol></nav><nav epub:type="landmarks"><a href="c1.xhtml">Start</a></nav>')


def ncx(entries: list[tuple[str, str]]) -> str:
    points = "".join(f'<navPoint id="p{i}" playOrder="{i}"><navLabel><text>{label}</text></navLabel>'
                     f'<content src="{href}"/></navPoint>' for i, (href, label) in enumerate(entries))
    return (f'<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
            f"<navMap>{points}</navMap></ncx>")


def write_epub(path: Path, files: dict[str, str | bytes], *, mimetype: bool = True) -> Path:
    """A real EPUB: ``mimetype`` first and stored, then every part deflated."""
    with zipfile.ZipFile(path, "w") as zf:
        if mimetype:
            zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        for name, data in files.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


CHAPTERS = {
    "c1.xhtml": xhtml("ch1", "<h1>Getting started</h1><p>Install Python from python.org.</p>"
                             "<h2>The prompt</h2><p>Type expressions at the prompt.</p>"),
    "c2.xhtml": xhtml("ch2", "<h1>Chapter 2: Control flow</h1><p>Programs make decisions.</p>"
                             "<h2>Loops</h2><p>A for loop repeats a block.</p>"
                             "<script>document.write('INJECTED SCRIPT TEXT')</script>"
                             "<h3>While</h3><p>A while loop runs until its condition is false.</p>"),
    "c3.xhtml": xhtml("ch3", "<p>Endnote one: loops were invented early.</p>"),
}


def book(tmp_path: Path, version: int = 3, name: str = "book.epub", **opf_args) -> Path:
    toc = [("c1.xhtml", "Chapter 1: Getting started"), ("c2.xhtml", "Chapter 2: Control flow"),
           ("c3.xhtml#n1", "Notes")]
    files: dict[str, str | bytes] = {"META-INF/container.xml": CONTAINER.format(opf="OEBPS/content.opf")}
    spine = '<itemref idref="c0"/><itemref idref="c1"/><itemref idref="c2" linear="no"/>'
    files["OEBPS/content.opf"] = opf(list(CHAPTERS), version=version, spine=spine, **opf_args)
    files.update({f"OEBPS/{k}": v for k, v in CHAPTERS.items()})
    if version == 3:
        files["OEBPS/nav.xhtml"] = nav(toc)
    else:
        files["OEBPS/toc.ncx"] = ncx(toc)
    return write_epub(tmp_path / name, files)


def one(path: Path, **options) -> Document:
    (doc,) = load_file(path, **options)
    return doc


def sections(doc: Document) -> dict[tuple[str, ...], str]:
    return {s.section: doc.text[s.start:s.end] for s in doc.segments}


def assert_well_formed(doc: Document) -> None:
    previous = 0
    for seg in doc.segments:
        assert previous <= seg.start < seg.end <= len(doc.text)
        assert doc.text[seg.start:seg.end].strip()
        previous = seg.end
    json.dumps(doc.metadata)


@pytest.mark.parametrize("version", [2, 3])
def test_chapters_in_spine_order_cited_by_contents_title(tmp_path, version):
    doc = one(book(tmp_path, version))
    assert_well_formed(doc)
    assert doc.title == "Learning Python" and doc.metadata["format"] == "epub"
    assert doc.metadata["date"] == "2021-03-04" and doc.metadata["language"] == "en-GB"
    assert doc.metadata["chapters"] == 3
    found = sections(doc)
    assert found[("Chapter 1: Getting started",)].startswith("Getting started\n\nInstall Python")
    assert "Type expressions at the prompt." in found[("Chapter 1: Getting started", "The prompt")]
    # the <h1> that repeats the contents title is not repeated in the path
    assert found[("Chapter 2: Control flow", "Loops")].startswith("Loops\n\nA for loop repeats a block.")
    assert "runs until its condition" in found[("Chapter 2: Control flow", "Loops", "While")]
    # linear="no" parts are kept (endnotes are content), cited by their contents entry
    assert found[("Notes",)] == "Endnote one: loops were invented early."
    assert doc.text.index("Install Python") < doc.text.index("for loop") < doc.text.index("Endnote one")
    # scripts never run and never reach the index; the nav document's list of titles is left out
    assert "INJECTED" not in doc.text and "document.write" not in doc.text
    assert "Contents" not in doc.text and "Start" not in doc.text


def test_authors_follow_roles_in_epub2_and_epub3(tmp_path):
    assert one(book(tmp_path, 3, "b3.epub")).metadata["authors"] == ["Ada Lovelace", "Alan Turing"]
    assert one(book(tmp_path, 2, "b2.epub")).metadata["authors"] == ["Ada Lovelace"]
    only_editor = '<dc:creator opf:role="edt">Ed Itor</dc:creator>'
    assert one(book(tmp_path, 2, "e.epub", creators=only_editor)).metadata["authors"] == ["Ed Itor"]
    untitled = one(book(tmp_path, 2, "u.epub", title="", creators=""))
    assert untitled.title == "u" and "authors" not in untitled.metadata


def test_chapter_without_contents_entry_is_named_by_its_first_heading(tmp_path):
    files = {"META-INF/container.xml": CONTAINER.format(opf="content.opf"),
             "content.opf": opf(["a.xhtml", "b.xhtml"], version=2).replace('<item id="ncx"', '<item id="x"'),
             "a.xhtml": xhtml("A", "<h2>Prologue</h2><p>Before it all.</p>"),
             "b.xhtml": xhtml("B", "<p>No heading here, only prose.</p>")}
    doc = one(write_epub(tmp_path / "plain.epub", files))
    assert sections(doc) == {("Prologue",): "Prologue\n\nBefore it all.", (): "No heading here, only prose."}


def test_one_file_split_into_chapters_by_fragments_uses_its_headings(tmp_path):
    body = "<h1>One</h1><p>First chapter text.</p><h1>Two</h1><p>Second chapter text.</p>"
    files = {"META-INF/container.xml": CONTAINER.format(opf="content.opf"),
             "content.opf": opf(["all.xhtml"], version=2), "all.xhtml": xhtml("All", body),
             "toc.ncx": ncx([("all.xhtml#one", "One"), ("all.xhtml#two", "Two")])}
    assert sections(one(write_epub(tmp_path / "split.epub", files))) == {
        ("One",): "One\n\nFirst chapter text.", ("Two",): "Two\n\nSecond chapter text."}


def test_legacy_charset_of_a_part_is_honoured(tmp_path):
    part = ('<?xml version="1.0" encoding="windows-1252"?><html><body><p>Caf\u00e9 cr\u00e8me \u20ac5</p>'
            "</body></html>").encode("cp1252")
    files = {"META-INF/container.xml": CONTAINER.format(opf="content.opf"),
             "content.opf": opf(["a.xhtml"], version=2), "a.xhtml": part}
    assert one(write_epub(tmp_path / "cp.epub", files)).text == "Caf\u00e9 cr\u00e8me \u20ac5"


# --- hostile and damaged books --------------------------------------------------------------
def test_drm_encrypted_content_is_refused_but_font_obfuscation_is_fine(tmp_path):
    enc = """<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
      xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>
      <enc:EncryptionMethod Algorithm="{alg}"/>
      <enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData></encryption>"""
    drm = book(tmp_path, 3, "drm.epub")
    with zipfile.ZipFile(drm, "a") as zf:
        zf.writestr("META-INF/encryption.xml", enc.format(alg="http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                                                          uri="OEBPS/c1.xhtml"))
    with pytest.raises(LoadError, match="DRM-protected"):
        load_file(drm)
    fonts = book(tmp_path, 3, "fonts.epub")
    with zipfile.ZipFile(fonts, "a") as zf:
        zf.writestr("META-INF/encryption.xml", enc.format(alg="http://www.idpf.org/2008/embedding",
                                                          uri="OEBPS/font.otf"))
    assert "for loop" in one(fonts).text
    garbled = book(tmp_path, 3, "garbled.epub")
    with zipfile.ZipFile(garbled, "a") as zf:
        zf.writestr("META-INF/encryption.xml", "<encryption><broken")
    with pytest.raises(LoadError, match="DRM-protected"):
        load_file(garbled)


@pytest.mark.parametrize("files, message", [
    ({"OEBPS/content.opf": "<package/>"}, "container.xml is missing"),
    ({"META-INF/container.xml": CONTAINER.format(opf="OEBPS/content.opf")}, "content.opf' named in container.xml is missing"),
    ({"META-INF/container.xml": CONTAINER.format(opf="../../etc/passwd")}, "points outside the archive"),
    ({"META-INF/container.xml": CONTAINER.format(opf="/etc/passwd")}, "points outside the archive"),
    ({"META-INF/container.xml": "<container><rootfiles/></container>"}, "names no package"),
    ({"META-INF/container.xml": "<container><rootfiles>"}, "not well-formed XML"),
    ({"META-INF/container.xml": CONTAINER.format(opf="c.opf"), "c.opf": opf([], version=2, spine="")}, "empty spine"),
])
def test_damaged_structure_gives_a_true_reason(tmp_path, files, message):
    with pytest.raises(LoadError, match=message):
        load_file(write_epub(tmp_path / "bad.epub", files))


def test_spine_parts_missing_or_escaping_are_warnings_and_all_missing_is_an_error(tmp_path):
    names = ["c1.xhtml", "gone.xhtml", "../../etc/passwd", "/etc/passwd", "http://evil.example/x.xhtml"]
    files = {"META-INF/container.xml": CONTAINER.format(opf="content.opf"),
             "content.opf": opf(names, version=2), "c1.xhtml": CHAPTERS["c1.xhtml"]}
    doc = one(write_epub(tmp_path / "holes.epub", files))
    assert "Install Python" in doc.text
    assert any("gone.xhtml" in w and "no part" in w for w in doc.warnings)
    assert sum("points outside the book" in w for w in doc.warnings) == 3
    del files["c1.xhtml"]
    with pytest.raises(LoadError, match="no text found.*no part"):
        load_file(write_epub(tmp_path / "empty-holes.epub", files))


def test_xml_entity_bombs_are_refused_before_expanding(tmp_path):
    laughs = ('<?xml version="1.0"?><!DOCTYPE package [<!ENTITY a "aaaaaaaaaa">'
              + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
              + ']><package xmlns="http://www.idpf.org/2007/opf"><metadata>&j;</metadata></package>')
    files = {"META-INF/container.xml": CONTAINER.format(opf="content.opf"), "content.opf": laughs}
    started = time.perf_counter()
    with pytest.raises(LoadError, match="declares XML entities"):
        load_file(write_epub(tmp_path / "laughs.epub", files))
    assert time.perf_counter() - started < 2
    external = '<!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><c>&x;</c>'
    with pytest.raises(LoadError, match="declares XML entities"):
        parse_xml(external.encode(), "container.xml")
    parameter = '<!DOCTYPE c [<!ENTITY % p SYSTEM "http://evil.example/x.dtd"> %p;]><c/>'
    with pytest.raises(LoadError, match="declares XML entities"):
        parse_xml(parameter.encode(), "container.xml")


def test_zip_bomb_chapter_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.epub"
    write_epub(path, {"META-INF/container.xml": CONTAINER.format(opf="content.opf"),
                      "content.opf": opf(["c.xhtml"], version=2)})
    info = zipfile.ZipInfo("c.xhtml")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "a") as zf, zf.open(info, "w") as part:  # streamed: 20 MB of spaces, deflated
        block = b" " * (1 << 20)
        for _ in range(20):
            part.write(block)
    assert path.stat().st_size < 100_000
    with pytest.raises(LoadError, match="zip bomb"):
        load_file(path)
    # an ordinary ratio but more than the caller's limit: refused from the zip directory alone
    large = tmp_path / "large.epub"
    write_epub(large, {"META-INF/container.xml": CONTAINER.format(opf="content.opf"),
                       "content.opf": opf(["c.xhtml"], version=2),
                       "c.xhtml": xhtml("big", "<p>" + base64.b64encode(os.urandom(4_500_000)).decode() + "</p>")})
    with pytest.raises(LoadError, match="over the 5 MB limit"):
        load_file(large, max_file_mb=5)


def test_not_a_zip_truncated_and_empty_files(tmp_path):
    (tmp_path / "text.epub").write_text("this is not a zip archive at all")
    with pytest.raises(LoadError, match="not a zip archive"):
        load_file(tmp_path / "text.epub")
    good = book(tmp_path, 3).read_bytes()
    (tmp_path / "cut.epub").write_bytes(good[: len(good) // 2])
    with pytest.raises(LoadError, match="not a zip archive"):
        load_file(tmp_path / "cut.epub")
    (tmp_path / "empty.epub").write_bytes(b"")
    with pytest.raises(LoadError, match="empty file"):
        load_file(tmp_path / "empty.epub")
    images_only = {"META-INF/container.xml": CONTAINER.format(opf="content.opf"),
                   "content.opf": opf(["p.xhtml"], version=2), "p.xhtml": xhtml("x", '<img src="p1.png"/>')}
    with pytest.raises(LoadError, match="no text found"):
        load_file(write_epub(tmp_path / "comic.epub", images_only))


def test_load_reports_a_bad_book_and_reads_the_good_one(tmp_path):
    book(tmp_path, 2, "good.epub")
    (tmp_path / "bad.epub").write_bytes(b"PK\x03\x04 broken")
    loaded = load(tmp_path)
    assert [Path(d.source).name for d in loaded] == ["good.epub"]
    assert [(Path(p.source).name, "not a zip" in p.reason) for p in loaded.errors] == [("bad.epub", True)]


def test_throughput_of_a_hundred_chapter_book(tmp_path):
    paragraph = "<p>" + "Retrieval augmented generation cites its sources. " * 40 + "</p>"
    names = [f"ch{i:03}.xhtml" for i in range(100)]
    files: dict[str, str | bytes] = {"META-INF/container.xml": CONTAINER.format(opf="content.opf"),
                                     "content.opf": opf(names, version=2),
                                     "toc.ncx": ncx([(n, f"Chapter {i + 1}") for i, n in enumerate(names)])}
    for i, name in enumerate(names):
        files[name] = xhtml(name, f"<h1>Chapter {i + 1}</h1>" + "".join(
            f"<h2>Part {j}</h2>{paragraph * 3}" for j in range(5)))
    path = write_epub(tmp_path / "big.epub", files)
    started = time.perf_counter()
    doc = one(path)
    seconds = time.perf_counter() - started
    assert doc.metadata["chapters"] == 100 and len(doc.segments) == 100 * 6
    assert doc.segments[-1].section == ("Chapter 100", "Part 4")
    print(f"\nEPUB: 100 chapters, {len(doc.text):,} chars in {seconds:.2f}s: "
          f"{100 / seconds:,.0f} chapters/s, {len(doc.text) / seconds:,.0f} chars/s")
    assert seconds < 30
