"""Word (``.docx``) and PowerPoint (``.pptx``) files through python-docx and python-pptx.

Both formats are zip archives of XML parts.  The archive is checked by
:func:`~ragbook.loaders.archive.open_archive` before any library inflates a byte, and the
libraries parse with entity resolution off (libxml2 also refuses entity amplification and XML
nested deeper than 256 levels), so a zip bomb or a "billion laughs" part is refused with a
reason.  Macros (``vbaProject.bin``) and embedded objects are never opened, let alone run.

Word: the libraries give the package, the core properties and the parts; the text comes from
walking the XML, because python-docx skips nested tables, text boxes and notes.  A document
has no reliable page numbers, so segments carry the heading path only.
PowerPoint: one segment per slide, cited as ``slide=N`` (its position in the deck).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Iterator

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.archive import open_archive
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited
from ragbook.loaders.text import section_segments

__all__ = ["load_docx", "load_pptx", "UNPACKED_PER_FILE_MB"]

# An archive may unpack to this many times max_file_mb (the 818k-character handbook unpacks
# 4:1; the ratio check in ragbook.loaders.archive catches bombs that stay under this).
UNPACKED_PER_FILE_MB = 4

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Compound File Binary: old .doc/.ppt, or an encrypted docx/pptx
_OTHER_FORMATS = {b"{\\rtf": "an RTF document", b"%PDF": "a PDF", b"<?xml": "a flat XML file",
                  b"PK\x03\x04": "", b"PK\x05\x06": ""}

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_M = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"

# Values the libraries' own templates put in core properties: not the user's title or author.
_TOOL_DEFAULTS = {"python-docx", "python-pptx", "powerpoint presentation", "word document", "presentation1"}

_WORD_TYPES = {  # main-part content types that are Word documents, macro-enabled and templates too
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
}


# --- the package: shared by both formats ----------------------------------------------------

def _read_package(path: Path, options: dict[str, Any], kind: str, binary: str, modern: str) -> tuple[io.BytesIO, list[str]]:
    """The checked bytes of a Word or PowerPoint file, and warnings about what it holds.

    ``binary`` names the old format (".doc"), ``modern`` the one to save as (".docx").
    """
    max_mb = options.get("max_file_mb", DEFAULT_MAX_FILE_MB)
    data = read_limited(path, max_mb)  # read once: what is checked is what is parsed
    if not data.strip():
        raise LoadError("empty file")
    if data.startswith(_OLE2):
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise LoadError(f"password-protected {kind}: remove the password (save an unprotected {modern} copy) "
                            "and build again")
        raise LoadError(f"password-protected or old binary {binary} file, not a {modern}: open it and "
                        f"save as {modern}")
    for signature, what in _OTHER_FORMATS.items():
        if what and data.startswith(signature):
            raise LoadError(f"not a {kind}: this is {what} with a {modern} extension; rename or convert it")
    limit_mb = None if max_mb is None else UNPACKED_PER_FILE_MB * max_mb
    with open_archive(io.BytesIO(data), kind, limit_mb if limit_mb is not None else float("inf")) as zf:
        names = zf.namelist()
    if "[Content_Types].xml" not in names:
        raise LoadError(f"not a {kind}: a zip archive without [Content_Types].xml (an ordinary zip renamed?)")
    warnings = []
    if any(name.lower().endswith("vbaproject.bin") for name in names):
        warnings.append("contains macros (vbaProject.bin); they were not run, only the text was read")
    return io.BytesIO(data), warnings


def _needs(module: str, package: str, kind: str) -> Any:
    """Import the library that reads ``kind``, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise LoadError(f"reading a {kind} needs the '{package}' package: pip install {package}") from None


def _library_error(exc: Exception, kind: str) -> LoadError:
    """A LoadError with the true reason for what python-docx/python-pptx (or lxml, zipfile) raised."""
    message = str(exc).strip("'\"")
    if "amplification" in message or ("entity" in message.lower() and "loop" in message.lower()):
        return LoadError(f"refused {kind}: an XML part expands entities without bound (a 'billion laughs' "
                         "attack); this is not a document Word or PowerPoint writes")
    if "Excessive depth" in message or ("depth" in message and "XML_PARSE_HUGE" in message):
        return LoadError(f"refused {kind}: an XML part is nested deeper than 256 levels; this is not an "
                         "ordinary document")
    if type(exc).__name__ == "XMLSyntaxError":
        return LoadError(f"damaged {kind}: an XML part is not well-formed ({message}); re-save the file")
    if isinstance(exc, KeyError) and "no item named" in message:
        part = re.search(r"named '([^']+)'", message)
        return LoadError(f"not a valid {kind}: the part {part.group(1) if part else message} is missing "
                         "(damaged, or not what the extension says)")
    if isinstance(exc, KeyError):
        return LoadError(f"not a valid {kind}: its main part is missing or unlinked ({message})")
    if "content type" in message:
        return LoadError(f"not a {kind}: {message}")
    return LoadError(f"damaged {kind}: {type(exc).__name__}: {message}; re-save the file")


def _core(package: Any, reltype: str) -> dict[str, Any]:
    """title, authors, date and language from the core properties, if the file has them.

    (The libraries invent a default part with today's date when it is absent: never use it.)
    """
    try:
        package.part_related_by(reltype)
    except KeyError:
        return {}
    props = package.core_properties
    out: dict[str, Any] = {}
    title = " ".join((props.title or "").split())
    if title and title.lower() not in _TOOL_DEFAULTS:
        out["title"] = title
    authors = [a.strip() for a in re.split(r";", props.author or "") if a.strip()]
    authors = [a for a in authors if a.lower() not in _TOOL_DEFAULTS]
    if authors:
        out["authors"] = authors
    when = props.created or props.modified
    if when is not None:
        out["date"] = when.date().isoformat()
    if props.language:
        out["language"] = props.language.strip()
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- Word ---------------------------------------------------------------------------------

def _val(element: Any, path: str) -> str | None:
    found = element.find(path) if element is not None else None
    return None if found is None else found.get(f"{_W}val")


class _Styles:
    """Paragraph styles: heading level and list numbering, following ``basedOn``."""

    def __init__(self, root: Any) -> None:
        self.by_id: dict[str, Any] = {}
        self.default: str | None = None
        for style in root.iter(f"{_W}style") if root is not None else ():
            style_id = style.get(f"{_W}styleId")
            if style.get(f"{_W}type") == "paragraph" and style_id:
                self.by_id[style_id] = style
                if style.get(f"{_W}default") in ("1", "true"):
                    self.default = style_id
        self._levels: dict[str | None, int] = {}

    def _chain(self, style_id: str | None) -> Iterator[Any]:
        seen = set()
        while style_id in self.by_id and style_id not in seen and len(seen) < 50:
            seen.add(style_id)
            style = self.by_id[style_id]
            yield style
            style_id = _val(style, f"{_W}basedOn")

    def level(self, style_id: str | None) -> int:
        """0 for body text, 1 for Title, N+1 for Heading N (or outline level N-1)."""
        style_id = style_id or self.default
        if style_id not in self._levels:
            level = 0
            for style in self._chain(style_id):
                name = (_val(style, f"{_W}name") or "").strip().lower()
                heading = re.fullmatch(r"heading ?([1-9])", name)
                outline = _val(style, f"{_W}pPr/{_W}outlineLvl")
                if name == "title":
                    level = 1
                elif heading:
                    level = int(heading.group(1)) + 1
                elif outline is not None and outline.isdigit() and int(outline) < 9:
                    level = int(outline) + 2
                else:
                    continue
                break
            self._levels[style_id] = level
        return self._levels[style_id]

    def numbering(self, style_id: str | None) -> tuple[str | None, str | None]:
        for style in self._chain(style_id or self.default):
            num_pr = style.find(f"{_W}pPr/{_W}numPr")
            if num_pr is not None:
                return _val(num_pr, f"{_W}numId"), _val(num_pr, f"{_W}ilvl")
        return None, None


def _roman(n: int) -> str:
    out = ""
    for value, letters in ((1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"),
                           (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while n >= value:
            out, n = out + letters, n - value
    return out


def _letters(n: int) -> str:
    return chr(ord("a") + (n - 1) % 26) * ((n - 1) // 26 + 1)


def _format_number(n: int, fmt: str) -> str:
    if fmt in ("lowerLetter", "upperLetter"):
        text = _letters(max(n, 1))
    elif fmt in ("lowerRoman", "upperRoman"):
        text = _roman(max(n, 1))
    elif fmt == "decimalZero":
        text = f"{n:02d}"
    else:
        text = str(n)
    return text.upper() if fmt.startswith("upper") else text


class _Numbering:
    """List prefixes ("- ", "1. ", "2.a. "), counted in document order."""

    def __init__(self, root: Any) -> None:
        self.levels: dict[str, dict[int, tuple[str, str, int]]] = {}  # abstractNumId -> ilvl -> (fmt, text, start)
        self.nums: dict[str, tuple[str, dict[int, int]]] = {}  # numId -> (abstractNumId, start overrides)
        self.counters: dict[str, list[int]] = {}
        if root is None:
            return
        for abstract in root.iter(f"{_W}abstractNum"):
            levels = {}
            for lvl in abstract.iter(f"{_W}lvl"):
                start = _val(lvl, f"{_W}start") or "1"
                levels[int(lvl.get(f"{_W}ilvl", "0") or 0)] = (
                    _val(lvl, f"{_W}numFmt") or "decimal", _val(lvl, f"{_W}lvlText") or "", int(start) if start.isdigit() else 1)
            self.levels[abstract.get(f"{_W}abstractNumId", "")] = levels
        for num in root.iter(f"{_W}num"):
            overrides = {}
            for override in num.iter(f"{_W}lvlOverride"):
                start = _val(override, f"{_W}startOverride")
                if start and start.isdigit():
                    overrides[int(override.get(f"{_W}ilvl", "0") or 0)] = int(start)
            self.nums[num.get(f"{_W}numId", "")] = (_val(num, f"{_W}abstractNumId") or "", overrides)

    def prefix(self, num_id: str | None, ilvl: str | None) -> str:
        if not num_id or num_id == "0":
            return ""
        level = int(ilvl) if ilvl and ilvl.isdigit() else 0
        level = min(level, 8)
        abstract, overrides = self.nums.get(num_id, ("", {}))
        levels = self.levels.get(abstract, {})
        fmt, pattern, _ = levels.get(level, ("bullet", "", 1))
        indent = "  " * level
        if fmt == "bullet":
            return indent + "- "
        if fmt == "none":
            return indent
        counters = self.counters.setdefault(num_id, [0] * 9)
        for deeper in range(level + 1, 9):
            counters[deeper] = 0
        for upper in range(level + 1):
            if counters[upper] == 0:
                start = overrides.get(upper, levels.get(upper, ("", "", 1))[2])
                counters[upper] = start - 1 if upper == level else start
        counters[level] += 1

        def number(match: re.Match[str]) -> str:
            k = int(match.group(1)) - 1
            return _format_number(counters[k], levels.get(k, ("decimal", "", 1))[0]) if 0 <= k <= level else ""

        text = re.sub(r"%([1-9])", number, pattern) if pattern else f"{counters[level]}."
        return f"{indent}{text.strip()} " if text.strip() else indent


class _WordWalker:
    """Turns the body and note parts into blocks ``(text, level, title)`` in document order."""

    def __init__(self, styles: _Styles, numbering: _Numbering) -> None:
        self.styles, self.numbering = styles, numbering
        self.blocks: list[tuple[str, int, str, bool]] = []  # text, heading level, title, is a list item
        self.note_numbers: dict[tuple[str, str], str] = {}  # ("footnote", id) -> shown mark
        self.paragraphs = self.tables = 0

    # paragraphs
    def inline(self, element: Any, out: list[str], boxes: list[Any]) -> None:
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):
                continue  # comments, processing instructions, unexpanded entities
            if tag == f"{_W}t" or tag == f"{_M}t":
                out.append(child.text or "")
                out.extend(node.tail or "" for node in child)  # text after an unexpanded entity
            elif tag == f"{_W}tab" or tag == f"{_W}ptab":
                out.append("\t")
            elif tag in (f"{_W}br", f"{_W}cr"):
                out.append("\n")
            elif tag == f"{_W}noBreakHyphen":
                out.append("-")
            elif tag in (f"{_W}footnoteReference", f"{_W}endnoteReference"):
                kind = "footnote" if tag == f"{_W}footnoteReference" else "endnote"
                out.append(f"[{self.note_mark(kind, child.get(f'{_W}id', ''))}]")
            elif tag == f"{_W}txbxContent":
                boxes.append(child)  # a text box: its paragraphs follow this one
            elif tag == f"{_MC}AlternateContent":
                choice = next((c for c in child if isinstance(c.tag, str)), None)  # Choice; Fallback repeats it
                if choice is not None:
                    self.inline(choice, out, boxes)
            elif tag in (f"{_W}del", f"{_W}moveFrom", f"{_W}delText", f"{_W}instrText", f"{_W}pPr", f"{_W}rPr"):
                continue  # deleted text and field codes are not what the page shows
            else:
                self.inline(child, out, boxes)

    def note_mark(self, kind: str, note_id: str) -> str:
        key = (kind, note_id)
        if key not in self.note_numbers:
            n = sum(1 for k, _ in self.note_numbers if k == kind) + 1
            self.note_numbers[key] = str(n) if kind == "footnote" else _roman(n)
        return self.note_numbers[key]

    def paragraph(self, p: Any, in_cell: bool = False) -> tuple[str, list[Any], int, str | None, str | None]:
        out: list[str] = []
        boxes: list[Any] = []
        self.inline(p, out, boxes)
        text = "".join(out)
        ppr = p.find(f"{_W}pPr")
        style = _val(ppr, f"{_W}pStyle")
        outline = _val(ppr, f"{_W}outlineLvl")
        level = int(outline) + 2 if outline and outline.isdigit() and int(outline) < 9 else self.styles.level(style)
        num_pr = ppr.find(f"{_W}numPr") if ppr is not None else None
        num_id, ilvl = (_val(num_pr, f"{_W}numId"), _val(num_pr, f"{_W}ilvl")) if num_pr is not None else \
            self.styles.numbering(style)
        return text, boxes, level, num_id, ilvl

    # blocks
    def blocks_of(self, container: Any) -> Iterator[Any]:
        """The paragraphs and tables of a body, cell, text box or note, through wrappers."""
        for child in container:
            tag = child.tag
            if tag in (f"{_W}p", f"{_W}tbl"):
                yield child
            elif tag in (f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}ins", f"{_W}moveTo"):
                yield from self.blocks_of(child)
            elif tag == f"{_MC}AlternateContent":
                choice = next((c for c in child if isinstance(c.tag, str)), None)
                if choice is not None:
                    yield from self.blocks_of(choice)

    def walk(self, container: Any) -> None:
        for block in self.blocks_of(container):
            if block.tag == f"{_W}tbl":
                self.tables += 1
                lines = self.table_lines(block)
                if lines:
                    self.blocks.append(("\n".join(lines), 0, "", False))
                continue
            self.paragraphs += 1
            text, boxes, level, num_id, ilvl = self.paragraph(block)
            prefix = self.numbering.prefix(num_id, ilvl)
            text = text.strip()
            if text:
                title = _one_line(text) if level else ""
                self.blocks.append((prefix + text, level, title, bool(prefix.strip())))
            for box in boxes:
                self.walk(box)

    def table_lines(self, tbl: Any) -> list[str]:
        """One line per row, cells between " | "; merged cells once; a nested table inline in brackets."""
        lines = []
        for row in self.blocks_of_kind(tbl, f"{_W}tr"):
            cells = []
            for tc in self.blocks_of_kind(row, f"{_W}tc"):
                merge = tc.find(f"{_W}tcPr/{_W}vMerge")
                if merge is not None and merge.get(f"{_W}val", "continue") != "restart":
                    continue  # the lower part of a vertically merged cell: its text is above
                cells.append(self.cell_text(tc))
            while cells and not cells[-1]:
                cells.pop()
            if cells:
                lines.append(" | ".join(cells))
        return lines

    def blocks_of_kind(self, element: Any, tag: str) -> Iterator[Any]:
        for child in element:
            if child.tag == tag:
                yield child
            elif child.tag in (f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml"):
                yield from self.blocks_of_kind(child, tag)

    def cell_text(self, tc: Any) -> str:
        parts = []
        for block in self.blocks_of(tc):
            if block.tag == f"{_W}tbl":
                self.tables += 1
                rows = [line.replace(" | ", ", ") for line in self.table_lines(block)]
                if rows:
                    parts.append("[" + "; ".join(rows) + "]")
                continue
            text, boxes, _, num_id, ilvl = self.paragraph(block)
            parts.append(self.numbering.prefix(num_id, ilvl).strip() + " " + text)
            for box in boxes:
                parts.extend(self.cell_text(box).split("\n"))
        return _one_line(" ".join(parts))

    def note_text(self, note: Any) -> str:
        inner = _WordWalker(self.styles, self.numbering)
        inner.note_numbers = self.note_numbers
        inner.walk(note)
        return _one_line(" ".join(text for text, *_ in inner.blocks))


def _part_xml(part: Any) -> Any:
    """The root element of a package part (python-docx leaves parts it does not model as bytes)."""
    element = getattr(part, "_element", None)
    if element is not None:
        return element
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.fromstring(part.blob, parser)


def _notes(walker: _WordWalker, parts: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """("Footnotes", lines), ("Endnotes", ...), ("Comments", ...), each only where there is text."""
    out = []
    for kind, heading in (("footnote", "Footnotes"), ("endnote", "Endnotes")):
        root = parts.get(kind + "s")
        if root is None:
            continue
        notes = {n.get(f"{_W}id", ""): n for n in root.iter(f"{_W}{kind}")
                 if n.get(f"{_W}type") not in ("separator", "continuationSeparator", "continuationNotice")}
        referenced = [note_id for k, note_id in walker.note_numbers if k == kind and note_id in notes]
        ordered = referenced + [note_id for note_id in notes if note_id not in referenced]
        lines = []
        for note_id in ordered:
            text = walker.note_text(notes[note_id])
            mark = walker.note_numbers.get((kind, note_id)) or walker.note_mark(kind, note_id)
            if text:
                lines.append(f"[{mark}] {text}")
        if lines:
            out.append((heading, lines))
    root = parts.get("comments")
    if root is not None:
        lines = []
        for comment in root.iter(f"{_W}comment"):
            text = walker.note_text(comment)
            author = _one_line(comment.get(f"{_W}author", ""))
            if text:
                lines.append(f"{author}: {text}" if author else text)
        if lines:
            out.append(("Comments", lines))
    return out


def load_docx(path: Path, **options: Any) -> Document:
    """A Word document: body text in document order, one segment per heading section.

    Headings (Title, Heading 1-9 styles, outline levels) give each segment its ``section``
    path.  List items start with "- " or their number ("1. ", "2.a. "); tables give one line
    per row with " | " between cells (a merged cell once, a nested table inline as
    "[a, b; c, d]"); text boxes follow the paragraph they are anchored in; page headers and
    footers are left out.  Footnotes, endnotes and comments come after the body, each kind in
    its own segment (section ``("Footnotes",)``...), with "[1]" marks in the text where they
    are referenced; ``docx_notes=False`` leaves them out.  Metadata: ``authors``, ``date``
    (created, else modified) and ``language`` from the core properties.  The title is the core
    properties' title, else the first Title-style paragraph, else the Heading 1 if there is
    only one (several are chapters, not a title).
    """
    kind = "Word document"
    _needs("docx", "python-docx", kind)
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.package import OpcPackage

    stream, warnings = _read_package(path, options, kind, "Word .doc", ".docx")
    try:
        package = OpcPackage.open(stream)
        main = package.main_document_part
        if main.content_type not in _WORD_TYPES:
            what = "a PowerPoint deck" if "presentationml" in main.content_type else main.content_type
            raise LoadError(f"not a {kind}: its main part is {what}; check the file's extension")
        body = _part_xml(main)
        parts: dict[str, Any] = {}
        for rel in main.rels.values():
            name = rel.reltype.rsplit("/", 1)[-1]
            if not rel.is_external and name in ("styles", "numbering", "footnotes", "endnotes", "comments"):
                parts[name] = _part_xml(rel.target_part)
        meta = _core(package, RT.CORE_PROPERTIES)
    except LoadError:
        raise
    except Exception as exc:  # the libraries raise KeyError, ValueError, XMLSyntaxError, BadZipFile...
        raise _library_error(exc, kind) from None
    if body.getroottree().docinfo.doctype:
        warnings.append("the document declares a DOCTYPE, which Word never writes; its entities were not expanded")
    root = body.find(f"{_W}body")
    if root is None:
        raise LoadError(f"not a valid {kind}: word/document.xml has no body")

    walker = _WordWalker(_Styles(parts.get("styles")), _Numbering(parts.get("numbering")))
    walker.walk(root)
    notes = _notes(walker, parts) if options.get("docx_notes", True) else []

    # a Heading 1 names the document only if it is the only one (else it is the first chapter)
    firsts = [t for _, level, t, _ in walker.blocks if level == 2]
    title = meta.pop("title", "") or next((t for _, level, t, _ in walker.blocks if level == 1), "") \
        or (firsts[0] if len(firsts) == 1 else "")
    blocks = list(walker.blocks)
    for heading, lines in notes:
        blocks.append((heading, 1, heading, False))
        blocks.extend((line, 0, "", True) for line in lines)
    pieces: list[str] = []
    headings: list[tuple[int, int, str]] = []
    offset = 0
    previous_item = False
    for block, level, heading, item in blocks:
        if pieces:
            gap = "\n" if item and previous_item else "\n\n"
            pieces.append(gap)
            offset += len(gap)
        if level:
            headings.append((offset, level, heading))
        pieces.append(block)
        offset += len(block)
        previous_item = item
    text = "".join(pieces)
    if not text.strip():
        raise LoadError(f"no text found in the {kind} (only images or empty paragraphs?)")

    metadata: dict[str, Any] = {"format": "docx", "paragraphs": walker.paragraphs, "tables": walker.tables, **meta}
    for heading, lines in notes:
        metadata[heading.lower()] = len(lines)
    return Document(text=text, source=path.name, title=title, segments=section_segments(text, headings),
                    metadata=metadata, warnings=warnings)


# --- PowerPoint ---------------------------------------------------------------------------

_ROW_BAND = 914400 // 8  # EMU: shapes whose tops differ by less than 1/8 inch are read as one row


def _position(shape: Any) -> tuple[int, int]:
    try:
        top, left = shape.top, shape.left
    except Exception:  # a placeholder whose layout is damaged
        top = left = None
    return (top or 0) // _ROW_BAND, left or 0


def _paragraph_lines(frame: Any, bulleted: bool) -> list[str]:
    """The lines of a text frame; "- " or "N. " where the paragraph shows a bullet or a number."""
    lines = []
    counters: dict[int, int] = {}
    for p in frame.paragraphs:
        text = p.text.replace("\v", "\n").strip()
        level = p.level or 0
        ppr = p._p.pPr
        marks = {child.tag for child in ppr} if ppr is not None else set()
        if not text:
            continue
        prefix = ""
        if f"{_A}buAutoNum" in marks:
            counters[level] = counters.get(level, 0) + 1
            prefix = f"{counters[level]}. "
        elif f"{_A}buChar" in marks or (bulleted and f"{_A}buNone" not in marks):
            prefix = "- "
        lines.append("  " * level + prefix + text if prefix else text)
    return lines


def _table_lines(table: Any) -> list[str]:
    lines = []
    for row in table.rows:
        cells = [_one_line(cell.text) for cell in row.cells if not cell.is_spanned]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            lines.append(" | ".join(cells))
    return lines


def _shape_lines(shape: Any, skip: int | None) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER

    if shape.shape_id == skip:
        return []
    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        lines = []
        for child in sorted(shape.shapes, key=_position):
            lines.extend(_shape_lines(child, skip))
        return lines
    if getattr(shape, "has_table", False) and shape.has_table:
        return _table_lines(shape.table)
    if getattr(shape, "has_chart", False) and shape.has_chart:
        chart = shape.chart
        if chart.has_title and chart.chart_title.has_text_frame:
            title = _one_line(chart.chart_title.text_frame.text)
            return [f"Chart: {title}"] if title else []
        return []
    if shape.has_text_frame:
        bulleted = False
        if shape.is_placeholder:
            bulleted = shape.placeholder_format.type in (PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT)
        return _paragraph_lines(shape.text_frame, bulleted)
    return []


def _slide_text(slide: Any, with_notes: bool, problems: list[str]) -> tuple[str, str]:
    """(title, text) of one slide: title, shapes in reading order, then the speaker notes."""
    title_shape = slide.shapes.title
    title = _one_line(title_shape.text_frame.text) if title_shape is not None and title_shape.has_text_frame else ""
    lines = [title] if title else []
    skip = title_shape.shape_id if title_shape is not None else None
    shapes = [shape for shape in slide.shapes if shape.shape_id != skip]
    # a placeholder's position is looked up in its layout (slow): only sort when there is a choice
    for shape in sorted(shapes, key=_position) if len(shapes) > 1 else shapes:
        try:
            lines.extend(_shape_lines(shape, skip))
        except (KeyError, ValueError, AttributeError, NotImplementedError) as exc:
            # one odd shape (an unknown graphic frame, a broken chart part) must not lose the slide
            problems.append(f"a shape could not be read ({type(exc).__name__}: {exc})")
    if with_notes and slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = frame.text.replace("\v", "\n").strip() if frame is not None else ""
        if notes:
            lines.append("Speaker notes: " + notes)
    return title, "\n".join(lines).strip()


def load_pptx(path: Path, **options: Any) -> Document:
    """A PowerPoint deck, one segment per slide cited as ``slide=N`` (its position in the deck).

    A slide's text is its title, then its shapes in reading order (top to bottom, left to
    right; groups inside out; tables one row per line with " | " between cells; a chart's
    title), then a line "Speaker notes: ..." (``pptx_notes=False`` leaves notes out).  A slide
    with a title has the section ``(title,)``.  Hidden slides are skipped and listed in
    ``metadata["hidden_slides"]``; ``pptx_hidden=True`` reads them too, marked "(hidden slide)".
    The title comes from the core properties, else the first slide's title.
    """
    kind = "PowerPoint deck"
    _needs("pptx", "python-pptx", kind)
    from pptx import Presentation
    from pptx.opc.constants import RELATIONSHIP_TYPE as RT

    stream, warnings = _read_package(path, options, kind, "PowerPoint .ppt", ".pptx")
    with_notes = bool(options.get("pptx_notes", True))
    with_hidden = bool(options.get("pptx_hidden", False))
    pieces: list[str] = []
    segments: list[Segment] = []
    hidden: list[int] = []
    titles: list[str] = []
    offset = 0
    try:
        deck = Presentation(stream)
        meta = _core(deck.part.package, RT.CORE_PROPERTIES)
        for number, slide in enumerate(deck.slides, start=1):
            is_hidden = slide._element.get("show") in ("0", "false")
            if is_hidden:
                hidden.append(number)
                if not with_hidden:
                    continue
            problems: list[str] = []
            title, text = _slide_text(slide, with_notes, problems)
            warnings.extend(f"slide {number}: {problem}" for problem in problems)
            if is_hidden and text:
                text = "(hidden slide)\n" + text
            if title:
                titles.append(title)
            if not text:
                continue
            if pieces:
                pieces.append("\n\n")
                offset += 2
            pieces.append(text)
            segments.append(Segment(offset, offset + len(text), slide=number, section=(title,) if title else ()))
            offset += len(text)
        slides = len(deck.slides)
    except LoadError:
        raise
    except Exception as exc:
        raise _library_error(exc, kind) from None
    if not segments:
        raise LoadError(f"no text found in the {kind} ({slides} slides: pictures only?"
                        + (" hidden slides are skipped: pass pptx_hidden=True)" if hidden else ")"))
    metadata: dict[str, Any] = {"format": "pptx", "slides": slides, **meta}
    if hidden:
        metadata["hidden_slides"] = hidden
    title = metadata.pop("title", "") or (titles[0] if titles else "")
    return Document(text="".join(pieces), source=path.name, title=title, segments=segments,
                    metadata=metadata, warnings=warnings)
