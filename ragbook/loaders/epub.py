"""EPUB books (EPUB 2 and 3): chapters in reading order, each cited by its table-of-contents title.

An EPUB is a zip: ``META-INF/container.xml`` names the OPF package file, whose manifest lists
the parts and whose spine gives their reading order.  Each XHTML part goes through the HTML
loader's extraction (scripts and navigation dropped, headings kept), so a chunk cites
``book.epub > Chapter 3 > Loops``.

Choices:

- Spine items marked ``linear="no"`` (endnotes, answers to exercises) are kept in spine order:
  they are auxiliary to the reading order, not to the book's content.  The EPUB 3 navigation
  document is left out even when it is in the spine: it holds only the chapter titles.
- A chapter's title is its entry in the table of contents (nav document, else NCX); a part
  with no entry takes its first heading, and a part that the contents split into several
  entries (``book.xhtml#ch1``, ``#ch2``...) gets no chapter title: its headings are the path.
- The XML parts (container, OPF, NCX, encryption) are parsed with expat and refused if they
  declare entities: no entity expansion (billion laughs), no external entities, no network.
- Books whose content is encrypted (``META-INF/encryption.xml`` listing anything but
  obfuscated fonts) are DRM-protected and refused; font obfuscation alone is fine.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as ET
from xml.parsers import expat

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.archive import open_archive, read_member
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB
from ragbook.loaders.html import declared_charset, html_to_text
from ragbook.loaders.text import decode_text, section_segments

__all__ = ["load_epub"]

_KIND = "EPUB book"
_MAX_XML_BYTES = 8 << 20  # container, OPF, NCX, nav: a 3,000-chapter book's OPF is ~1 MB
_NS_OPF = "http://www.idpf.org/2007/opf"
_NS_DC = "http://purl.org/dc/elements/1.1/"
_NS_NCX = "http://www.daisy.org/z3986/2005/ncx/"
_NS_CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"
_NS_ENC = "http://www.w3.org/2001/04/xmlenc#"
# Font obfuscation (IDPF and Adobe): fonts are mangled so they cannot be reused; text is clear.
_FONT_OBFUSCATION = frozenset({"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"})
_XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/xml", "text/x-oeb1-document"})
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")
_DATE = re.compile(r"^\d{4}(?:-\d{2}(?:-\d{2})?)?")
_DRM = ("DRM-protected EPUB: its content is encrypted (META-INF/encryption.xml); ragbook cannot read it. "
        "Use a DRM-free copy of the book")


class _Forbidden(Exception):
    pass


def _forbid(*_: Any) -> NoReturn:
    raise _Forbidden


def _qname(name: str) -> str:
    # expat with namespace_separator=" " gives "uri local"; ElementTree spells it "{uri}local"
    uri, _, local = name.rpartition(" ")
    return f"{{{uri}}}{local}" if uri else local


def parse_xml(data: bytes, name: str) -> ET.Element:
    """An XML part as an ElementTree element; entity declarations and external references are refused."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartElementHandler = lambda tag, attrs: builder.start(
        _qname(tag), {_qname(k): v for k, v in attrs.items()})
    parser.EndElementHandler = lambda tag: builder.end(_qname(tag))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        return builder.close()
    except _Forbidden:
        raise LoadError(f"refused {_KIND}: {name!r} declares XML entities (a way to make a parser expand "
                        "gigabytes); this is not an ordinary book") from None
    except (expat.ExpatError, AssertionError, ValueError) as exc:  # TreeBuilder asserts on a broken tree
        raise LoadError(f"damaged {_KIND}: {name!r} is not well-formed XML ({exc})") from None


def _resolve(base: str, href: str) -> str | None:
    """The archive name ``href`` points to from the part ``base``; None if it leaves the archive."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path:
        return None  # http://..., file:///..., //host/...
    path = unquote(parts.path)
    if path.startswith("/") or "\\" in path or "\x00" in path:
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(base), path))
    if joined == ".." or joined.startswith(("../", "/")):
        return None
    return joined


def _read_xml(zf: zipfile.ZipFile, name: str) -> ET.Element:
    return parse_xml(read_member(zf, name, _MAX_XML_BYTES), name)


def _check_encryption(zf: zipfile.ZipFile) -> None:
    if "META-INF/encryption.xml" not in zf.NameToInfo:
        return
    try:
        root = _read_xml(zf, "META-INF/encryption.xml")
    except LoadError:
        raise LoadError(_DRM + " (its encryption.xml cannot even be read)") from None
    for data in root.iter(f"{{{_NS_ENC}}}EncryptedData"):
        method = data.find(f"{{{_NS_ENC}}}EncryptionMethod")
        if method is None or method.get("Algorithm") not in _FONT_OBFUSCATION:
            raise LoadError(_DRM)


def _opf_path(zf: zipfile.ZipFile) -> str:
    if "META-INF/container.xml" not in zf.NameToInfo:
        raise LoadError(f"not a valid {_KIND}: META-INF/container.xml is missing (damaged, or not an EPUB)")
    root = _read_xml(zf, "META-INF/container.xml")
    for rootfile in root.iter(f"{{{_NS_CONTAINER}}}rootfile"):
        media = rootfile.get("media-type", "application/oebps-package+xml")
        full = rootfile.get("full-path") or ""
        if media == "application/oebps-package+xml":
            opf = _resolve("", full)
            if opf is None:
                raise LoadError(f"refused {_KIND}: container.xml points outside the archive ({full!r})")
            if opf not in zf.NameToInfo:
                raise LoadError(f"damaged {_KIND}: the package file {opf!r} named in container.xml is missing")
            return opf
    raise LoadError(f"damaged {_KIND}: container.xml names no package (.opf) file")


def _text(element: ET.Element | None) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def _book_metadata(package: ET.Element) -> tuple[str, dict[str, Any]]:
    meta = package.find(f"{{{_NS_OPF}}}metadata")
    if meta is None:
        return "", {}
    title = next((t for t in map(_text, meta.iter(f"{{{_NS_DC}}}title")) if t), "")
    # EPUB 3 gives roles in <meta refines="#id" property="role">, EPUB 2 in opf:role
    roles = {(m.get("refines") or "").lstrip("#"): _text(m) for m in meta.iter(f"{{{_NS_OPF}}}meta")
             if m.get("property") == "role"}
    creators: list[tuple[str, str]] = []
    for creator in meta.iter(f"{{{_NS_DC}}}creator"):
        role = creator.get(f"{{{_NS_OPF}}}role") or roles.get(creator.get("id") or "", "")
        if name := _text(creator):
            creators.append((name, role))
    authors = [n for n, role in creators if role in ("", "aut")] or [n for n, _ in creators]
    out: dict[str, Any] = {}
    if authors:
        out["authors"] = list(dict.fromkeys(authors))
    dates = [(d.get(f"{{{_NS_OPF}}}event") or "", _text(d)) for d in meta.iter(f"{{{_NS_DC}}}date")]
    # EPUB 2 may list several events; publication is the date a citation wants
    ranked = sorted((d for d in dates if d[1]), key=lambda d: {"publication": 0, "": 1}.get(d[0], 2))
    date = ranked[0][1] if ranked else ""
    if date:
        iso = _DATE.match(date)
        out["date"] = iso.group() if iso else date
    if language := next((t for t in map(_text, meta.iter(f"{{{_NS_DC}}}language")) if t), ""):
        out["language"] = language
    return title, out


class _NavParser(HTMLParser):
    """``(href, label)`` of the links in an EPUB 3 nav document's ``<nav epub:type="toc">``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # >0 inside the toc <nav>
        self.href: str | None = None
        self.label: list[str] = []
        self.entries: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "nav":
            if self.depth or "toc" in (dict(attrs).get("epub:type") or "").split():
                self.depth += 1
        elif tag == "a" and self.depth:
            self.href, self.label = dict(attrs).get("href") or "", []

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav" and self.depth:
            self.depth -= 1
        elif tag == "a" and self.href is not None:
            self.entries.append((self.href, " ".join("".join(self.label).split())))
            self.href = None

    def handle_data(self, data: str) -> None:
        if self.href is not None:
            self.label.append(data)


def _decode(data: bytes) -> tuple[str, list[str]]:
    declared = _XML_ENCODING.match(data)
    return decode_text(data, declared=declared.group(1).decode("ascii") if declared else declared_charset(data))


def _toc(zf: zipfile.ZipFile, package: ET.Element, manifest: dict[str, tuple[str, str, str]],
         warnings: list[str]) -> list[tuple[str, str, str]]:
    """The table of contents (nav document, else NCX) as ``(archive name, label, fragment)`` in order."""
    links: list[tuple[str, str, str]] = []  # (part the link is in, href, label)
    nav = next((href for href, _, props in manifest.values() if "nav" in props.split()), None)
    spine = package.find(f"{{{_NS_OPF}}}spine")
    ncx_id = spine.get("toc") if spine is not None else None
    ncx = manifest[ncx_id][0] if ncx_id in manifest else next(
        (href for href, media, _ in manifest.values() if media == "application/x-dtbncx+xml"), None)
    try:
        if nav and nav in zf.NameToInfo:
            parser = _NavParser()
            parser.feed(_decode(read_member(zf, nav, _MAX_XML_BYTES))[0])
            parser.close()
            links = [(nav, href, label) for href, label in parser.entries]
        if not links and ncx and ncx in zf.NameToInfo:
            for point in _read_xml(zf, ncx).iter(f"{{{_NS_NCX}}}navPoint"):
                content = point.find(f"{{{_NS_NCX}}}content")
                src = (content.get("src") or "") if content is not None else ""
                links.append((ncx, src, _text(point.find(f"{{{_NS_NCX}}}navLabel"))))
    except LoadError as exc:
        warnings.append(f"table of contents not used ({exc}); chapters are named by their first heading")
        return []
    toc: list[tuple[str, str, str]] = []
    for base, href, label in links:
        page, _, fragment = href.partition("#")
        target = _resolve(base, page) if page else None
        if target and label:
            toc.append((target, label, fragment))
    return toc


def _chapter_titles(toc: list[tuple[str, str, str]]) -> dict[str, str]:
    """Each part's chapter title: its first contents entry, unless the contents split it into several chapters."""
    titles: dict[str, str] = {}
    fragments: dict[str, set[str]] = {}
    for target, label, fragment in toc:
        titles.setdefault(target, label)
        fragments.setdefault(target, set()).add(fragment)
    return {target: label for target, label in titles.items() if len(fragments[target]) == 1}


def _repeats(heading: str, chapter: str) -> bool:
    """Whether a part's first heading only repeats its contents title ("Loops" under "Chapter 3: Loops")."""
    heading, chapter = " ".join(heading.split()).casefold(), " ".join(chapter.split()).casefold()
    return heading == chapter or (len(heading) >= 3 and (chapter.endswith(heading) or heading.endswith(chapter)))


def load_epub(path: Path, **options: Any) -> Document:
    """An EPUB book: chapters in spine order, one or more segments per chapter.

    A segment's section is ``(chapter title, heading path...)``.  Title, authors, date and
    language come from the package file.  DRM-protected, damaged and hostile books raise
    :class:`LoadError`; a missing or unreadable chapter is a warning.
    """
    max_mb = options.get("max_file_mb", DEFAULT_MAX_FILE_MB)
    part_limit = int(max_mb * 1_000_000)
    with open_archive(path, _KIND, max_mb) as zf:
        _check_encryption(zf)
        opf = _opf_path(zf)
        package = _read_xml(zf, opf)
        warnings: list[str] = []
        manifest, outside = _manifest(package, opf)
        itemrefs = _spine(package)
        titles = _chapter_titles(_toc(zf, package, manifest, warnings))
        title, metadata = _book_metadata(package)
        book = _BookText(zf, manifest, outside, titles, part_limit, warnings)
        for ref in itemrefs:
            book.read(ref.get("idref") or "")
        warnings.extend(f"skipped part: {failure}" for failure in book.failures)
    if not book.chapters:
        reason = f" ({book.failures[0]})" if book.failures else ""
        raise LoadError(f"no text found in the {_KIND}{reason}; it may hold only images (a scanned or comic book)")
    metadata.update(format="epub", chapters=book.chapters)
    return Document(text="".join(book.pieces), source=path.name, title=title, segments=book.segments,
                    metadata=metadata, warnings=warnings)


def _manifest(package: ET.Element, opf: str) -> tuple[dict[str, tuple[str, str, str]], dict[str, str]]:
    """The manifest's parts by id as ``(archive name, media type, properties)``, and the hrefs that leave the archive."""
    manifest: dict[str, tuple[str, str, str]] = {}
    outside: dict[str, str] = {}  # id -> href that leaves the archive (../../etc/passwd, /etc, http://)
    for item in package.iter(f"{{{_NS_OPF}}}item"):
        idref, href = item.get("id") or "", item.get("href") or ""
        target = _resolve(opf, href)
        if target:
            manifest[idref] = (target, item.get("media-type") or "", item.get("properties") or "")
        else:
            outside[idref] = href
    return manifest, outside


def _spine(package: ET.Element) -> list[ET.Element]:
    spine = package.find(f"{{{_NS_OPF}}}spine")
    itemrefs = list(spine.iter(f"{{{_NS_OPF}}}itemref")) if spine is not None else []
    if not itemrefs:
        raise LoadError(f"damaged {_KIND}: its package file lists no chapters (empty spine)")
    return itemrefs


class _BookText:
    """The book's text, built part by part in spine order, with a segment per heading section."""

    def __init__(self, zf: zipfile.ZipFile, manifest: dict[str, tuple[str, str, str]], outside: dict[str, str],
                 titles: dict[str, str], part_limit: int, warnings: list[str]) -> None:
        self.zf, self.manifest, self.outside, self.titles = zf, manifest, outside, titles
        self.part_limit, self.warnings = part_limit, warnings
        self.pieces: list[str] = []
        self.segments: list[Segment] = []
        self.offset = self.chapters = 0
        self.seen: set[str] = set()
        self.failures: list[str] = []

    def read(self, idref: str) -> None:
        name = self._part(idref)
        if name is None:
            return
        try:
            markup, notes = _decode(read_member(self.zf, name, self.part_limit))
            text, _, headings = html_to_text(markup)
        except LoadError as exc:
            self.failures.append(f"{name}: {exc}")
            return
        self.warnings.extend(f"{name}: {note}" for note in notes)
        if text.strip():
            # without a contents entry the heading path alone names the part (it starts with the first heading)
            self._append(text, headings, self.titles.get(name, ""))

    def _part(self, idref: str) -> str | None:
        """The archive name of a spine entry's part, or None for one not to read (missing, repeated, nav, not XHTML)."""
        if idref in self.outside:
            self.failures.append(f"{self.outside[idref]!r} points outside the book; not read")
            return None
        if idref not in self.manifest:
            self.failures.append(f"spine entry {idref!r} is not in the manifest")
            return None
        name, media, props = self.manifest[idref]
        if name in self.seen or "nav" in props.split() or media not in _XHTML_TYPES:
            return None
        self.seen.add(name)
        return name

    def _append(self, text: str, headings: list[tuple[int, int, str]], chapter: str) -> None:
        offset = self.offset
        if offset:
            self.pieces.append("\n\n")
            offset += 2
        self.pieces.append(text)
        self.chapters += 1
        first = headings[0][2] if headings else ""
        for seg in section_segments(text, headings):
            section = seg.section
            if chapter and section and section[0] == first and _repeats(first, chapter):
                section = section[1:]  # <h1>Chapter 3</h1> under the contents entry "Chapter 3"
            section = ((chapter,) if chapter else ()) + section
            self.segments.append(Segment(seg.start + offset, seg.end + offset, section=section))
        self.offset = offset + len(text)
