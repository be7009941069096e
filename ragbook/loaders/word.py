"""Word (``.docx``) files: paragraphs, lists, tables, text boxes and notes, with the heading path.

python-docx gives the package, the core properties and the parts; the text comes from walking
the XML, because python-docx skips nested tables, text boxes and notes.  A document has no
reliable page numbers, so segments carry the heading path only.  The package is checked first
(:mod:`ragbook.loaders.office`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from ragbook.documents import Document, LoadError
from ragbook.loaders.office import (
    MATH_NS,
    MC_NS,
    W_NS,
    WORD_TYPES,
    core_properties,
    library_error,
    needs,
    one_line,
    read_package,
)
from ragbook.loaders.text import section_segments

__all__ = ["load_docx"]


def _val(element: Any, path: str) -> str | None:
    found = element.find(path) if element is not None else None
    return None if found is None else found.get(f"{W_NS}val")


class _Styles:
    """Paragraph styles: heading level and list numbering, following ``basedOn``."""

    def __init__(self, root: Any) -> None:
        self.by_id: dict[str, Any] = {}
        self.default: str | None = None
        for style in root.iter(f"{W_NS}style") if root is not None else ():
            style_id = style.get(f"{W_NS}styleId")
            if style.get(f"{W_NS}type") == "paragraph" and style_id:
                self.by_id[style_id] = style
                if style.get(f"{W_NS}default") in ("1", "true"):
                    self.default = style_id
        self._levels: dict[str | None, int] = {}

    def _chain(self, style_id: str | None) -> Iterator[Any]:
        seen: set[str | None] = set()
        while style_id in self.by_id and style_id not in seen and len(seen) < 50:
            seen.add(style_id)
            style = self.by_id[style_id]
            yield style
            style_id = _val(style, f"{W_NS}basedOn")

    def level(self, style_id: str | None) -> int:
        """0 for body text, 1 for Title, N+1 for Heading N (or outline level N-1)."""
        style_id = style_id or self.default
        if style_id not in self._levels:
            level = 0
            for style in self._chain(style_id):
                name = (_val(style, f"{W_NS}name") or "").strip().lower()
                heading = re.fullmatch(r"heading ?([1-9])", name)
                outline = _val(style, f"{W_NS}pPr/{W_NS}outlineLvl")
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
            num_pr = style.find(f"{W_NS}pPr/{W_NS}numPr")
            if num_pr is not None:
                return _val(num_pr, f"{W_NS}numId"), _val(num_pr, f"{W_NS}ilvl")
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
        for abstract in root.iter(f"{W_NS}abstractNum"):
            levels = {}
            for lvl in abstract.iter(f"{W_NS}lvl"):
                start = _val(lvl, f"{W_NS}start") or "1"
                levels[int(lvl.get(f"{W_NS}ilvl", "0") or 0)] = (
                    _val(lvl, f"{W_NS}numFmt") or "decimal", _val(lvl, f"{W_NS}lvlText") or "",
                    int(start) if start.isdigit() else 1)
            self.levels[abstract.get(f"{W_NS}abstractNumId", "")] = levels
        for num in root.iter(f"{W_NS}num"):
            overrides = {}
            for override in num.iter(f"{W_NS}lvlOverride"):
                restart = _val(override, f"{W_NS}startOverride")
                if restart and restart.isdigit():
                    overrides[int(override.get(f"{W_NS}ilvl", "0") or 0)] = int(restart)
            self.nums[num.get(f"{W_NS}numId", "")] = (_val(num, f"{W_NS}abstractNumId") or "", overrides)

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
            if tag == f"{W_NS}t" or tag == f"{MATH_NS}t":
                out.append(child.text or "")
                out.extend(node.tail or "" for node in child)  # text after an unexpanded entity
            elif tag == f"{W_NS}tab" or tag == f"{W_NS}ptab":
                out.append("\t")
            elif tag in (f"{W_NS}br", f"{W_NS}cr"):
                out.append("\n")
            elif tag == f"{W_NS}noBreakHyphen":
                out.append("-")
            elif tag in (f"{W_NS}footnoteReference", f"{W_NS}endnoteReference"):
                kind = "footnote" if tag == f"{W_NS}footnoteReference" else "endnote"
                out.append(f"[{self.note_mark(kind, child.get(f'{W_NS}id', ''))}]")
            elif tag == f"{W_NS}txbxContent":
                boxes.append(child)  # a text box: its paragraphs follow this one
            elif tag == f"{MC_NS}AlternateContent":
                choice = next((c for c in child if isinstance(c.tag, str)), None)  # Choice; Fallback repeats it
                if choice is not None:
                    self.inline(choice, out, boxes)
            elif tag in (f"{W_NS}del", f"{W_NS}moveFrom", f"{W_NS}delText", f"{W_NS}instrText", f"{W_NS}pPr", f"{W_NS}rPr"):
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
        ppr = p.find(f"{W_NS}pPr")
        style = _val(ppr, f"{W_NS}pStyle")
        outline = _val(ppr, f"{W_NS}outlineLvl")
        level = int(outline) + 2 if outline and outline.isdigit() and int(outline) < 9 else self.styles.level(style)
        num_pr = ppr.find(f"{W_NS}numPr") if ppr is not None else None
        num_id, ilvl = (_val(num_pr, f"{W_NS}numId"), _val(num_pr, f"{W_NS}ilvl")) if num_pr is not None else \
            self.styles.numbering(style)
        return text, boxes, level, num_id, ilvl

    # blocks
    def blocks_of(self, container: Any) -> Iterator[Any]:
        """The paragraphs and tables of a body, cell, text box or note, through wrappers."""
        for child in container:
            tag = child.tag
            if tag in (f"{W_NS}p", f"{W_NS}tbl"):
                yield child
            elif tag in (f"{W_NS}sdt", f"{W_NS}sdtContent", f"{W_NS}customXml", f"{W_NS}ins", f"{W_NS}moveTo"):
                yield from self.blocks_of(child)
            elif tag == f"{MC_NS}AlternateContent":
                choice = next((c for c in child if isinstance(c.tag, str)), None)
                if choice is not None:
                    yield from self.blocks_of(choice)

    def walk(self, container: Any) -> None:
        for block in self.blocks_of(container):
            if block.tag == f"{W_NS}tbl":
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
                title = one_line(text) if level else ""
                self.blocks.append((prefix + text, level, title, bool(prefix.strip())))
            for box in boxes:
                self.walk(box)

    def table_lines(self, tbl: Any) -> list[str]:
        """One line per row, cells between " | "; merged cells once; a nested table inline in brackets."""
        lines = []
        for row in self.blocks_of_kind(tbl, f"{W_NS}tr"):
            cells = []
            for tc in self.blocks_of_kind(row, f"{W_NS}tc"):
                merge = tc.find(f"{W_NS}tcPr/{W_NS}vMerge")
                if merge is not None and merge.get(f"{W_NS}val", "continue") != "restart":
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
            elif child.tag in (f"{W_NS}sdt", f"{W_NS}sdtContent", f"{W_NS}customXml"):
                yield from self.blocks_of_kind(child, tag)

    def cell_text(self, tc: Any) -> str:
        parts = []
        for block in self.blocks_of(tc):
            if block.tag == f"{W_NS}tbl":
                self.tables += 1
                rows = [line.replace(" | ", ", ") for line in self.table_lines(block)]
                if rows:
                    parts.append("[" + "; ".join(rows) + "]")
                continue
            text, boxes, _, num_id, ilvl = self.paragraph(block)
            parts.append(self.numbering.prefix(num_id, ilvl).strip() + " " + text)
            for box in boxes:
                parts.extend(self.cell_text(box).split("\n"))
        return one_line(" ".join(parts))

    def note_text(self, note: Any) -> str:
        inner = _WordWalker(self.styles, self.numbering)
        inner.note_numbers = self.note_numbers
        inner.walk(note)
        return one_line(" ".join(text for text, *_ in inner.blocks))


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
        notes = {n.get(f"{W_NS}id", ""): n for n in root.iter(f"{W_NS}{kind}")
                 if n.get(f"{W_NS}type") not in ("separator", "continuationSeparator", "continuationNotice")}
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
        for comment in root.iter(f"{W_NS}comment"):
            text = walker.note_text(comment)
            author = one_line(comment.get(f"{W_NS}author", ""))
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
    needs("docx", "python-docx", kind)
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.package import OpcPackage

    stream, warnings = read_package(path, options, kind, "Word .doc", ".docx")
    try:
        package = OpcPackage.open(stream)
        body, parts = _read_parts(package.main_document_part, kind)
        meta = core_properties(package, RT.CORE_PROPERTIES)
    except LoadError:
        raise
    except Exception as exc:  # the libraries raise KeyError, ValueError, XMLSyntaxError, BadZipFile...
        raise library_error(exc, kind) from None
    root = _body(body, kind, warnings)

    walker = _WordWalker(_Styles(parts.get("styles")), _Numbering(parts.get("numbering")))
    walker.walk(root)
    notes = _notes(walker, parts) if options.get("docx_notes", True) else []
    title = meta.pop("title", "") or _title(walker.blocks)
    text, headings = _join_blocks(walker.blocks, notes)
    if not text.strip():
        raise LoadError(f"no text found in the {kind} (only images or empty paragraphs?)")

    metadata: dict[str, Any] = {"format": "docx", "paragraphs": walker.paragraphs, "tables": walker.tables, **meta}
    for heading, lines in notes:
        metadata[heading.lower()] = len(lines)
    return Document(text=text, source=path.name, title=title, segments=section_segments(text, headings),
                    metadata=metadata, warnings=warnings)


def _read_parts(main: Any, kind: str) -> tuple[Any, dict[str, Any]]:
    """The main part's root element and, by name, the parts the text needs (styles, numbering, notes)."""
    if main.content_type not in WORD_TYPES:
        what = "a PowerPoint deck" if "presentationml" in main.content_type else main.content_type
        raise LoadError(f"not a {kind}: its main part is {what}; check the file's extension")
    body = _part_xml(main)
    parts: dict[str, Any] = {}
    for rel in main.rels.values():
        name = rel.reltype.rsplit("/", 1)[-1]
        if not rel.is_external and name in ("styles", "numbering", "footnotes", "endnotes", "comments"):
            parts[name] = _part_xml(rel.target_part)
    return body, parts


def _body(document: Any, kind: str, warnings: list[str]) -> Any:
    """The ``<w:body>`` of word/document.xml, or a LoadError when there is none."""
    if document.getroottree().docinfo.doctype:
        warnings.append("the document declares a DOCTYPE, which Word never writes; its entities were not expanded")
    root = document.find(f"{W_NS}body")
    if root is None:
        raise LoadError(f"not a valid {kind}: word/document.xml has no body")
    return root


def _title(blocks: list[tuple[str, int, str, bool]]) -> str:
    # a Heading 1 names the document only if it is the only one (else it is the first chapter)
    firsts = [t for _, level, t, _ in blocks if level == 2]
    return next((t for _, level, t, _ in blocks if level == 1), "") or (firsts[0] if len(firsts) == 1 else "")


def _join_blocks(body: list[tuple[str, int, str, bool]],
                 notes: list[tuple[str, list[str]]]) -> tuple[str, list[tuple[int, int, str]]]:
    """The text of the body and the notes after it, and its headings as ``(offset, level, title)``."""
    blocks = list(body)
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
    return "".join(pieces), headings
