"""PowerPoint (``.pptx``) files: one segment per slide, cited as ``slide=N``.

Each slide's title, its text in reading order (top to bottom, left to right), tables, grouped
shapes and charts' titles, then its speaker notes, marked as such.  The package is checked
first (:mod:`ragbook.loaders.office`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.office import (
    DRAWING_NS,
    core_properties,
    library_error,
    needs,
    one_line,
    read_package,
)

__all__ = ["load_pptx"]


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
        if f"{DRAWING_NS}buAutoNum" in marks:
            counters[level] = counters.get(level, 0) + 1
            prefix = f"{counters[level]}. "
        elif f"{DRAWING_NS}buChar" in marks or (bulleted and f"{DRAWING_NS}buNone" not in marks):
            prefix = "- "
        lines.append("  " * level + prefix + text if prefix else text)
    return lines


def _table_lines(table: Any) -> list[str]:
    lines = []
    for row in table.rows:
        cells = [one_line(cell.text) for cell in row.cells if not cell.is_spanned]
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
            title = one_line(chart.chart_title.text_frame.text)
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
    title = one_line(title_shape.text_frame.text) if title_shape is not None and title_shape.has_text_frame else ""
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
    needs("pptx", "python-pptx", kind)
    from pptx import Presentation
    from pptx.opc.constants import RELATIONSHIP_TYPE as RT

    stream, warnings = read_package(path, options, kind, "PowerPoint .ppt", ".pptx")
    deck_text = _DeckText(bool(options.get("pptx_notes", True)), bool(options.get("pptx_hidden", False)), warnings)
    try:
        deck = Presentation(stream)
        meta = core_properties(deck.part.package, RT.CORE_PROPERTIES)
        for number, slide in enumerate(deck.slides, start=1):
            deck_text.add(number, slide)
        slides = len(deck.slides)
    except LoadError:
        raise
    except Exception as exc:
        raise library_error(exc, kind) from None
    if not deck_text.segments:
        raise LoadError(f"no text found in the {kind} ({slides} slides: pictures only?"
                        + (" hidden slides are skipped: pass pptx_hidden=True)" if deck_text.hidden else ")"))
    metadata: dict[str, Any] = {"format": "pptx", "slides": slides, **meta}
    if deck_text.hidden:
        metadata["hidden_slides"] = deck_text.hidden
    title = metadata.pop("title", "") or (deck_text.titles[0] if deck_text.titles else "")
    return Document(text="".join(deck_text.pieces), source=path.name, title=title, segments=deck_text.segments,
                    metadata=metadata, warnings=warnings)


class _DeckText:
    """The deck's text, built slide by slide, with a segment per slide that has text."""

    def __init__(self, with_notes: bool, with_hidden: bool, warnings: list[str]) -> None:
        self.with_notes, self.with_hidden, self.warnings = with_notes, with_hidden, warnings
        self.pieces: list[str] = []
        self.segments: list[Segment] = []
        self.hidden: list[int] = []
        self.titles: list[str] = []
        self.offset = 0

    def add(self, number: int, slide: Any) -> None:
        is_hidden = slide._element.get("show") in ("0", "false")
        if is_hidden:
            self.hidden.append(number)
            if not self.with_hidden:
                return
        problems: list[str] = []
        title, text = _slide_text(slide, self.with_notes, problems)
        self.warnings.extend(f"slide {number}: {problem}" for problem in problems)
        if is_hidden and text:
            text = "(hidden slide)\n" + text
        if title:
            self.titles.append(title)
        if not text:
            return
        if self.pieces:
            self.pieces.append("\n\n")
            self.offset += 2
        self.pieces.append(text)
        self.segments.append(Segment(self.offset, self.offset + len(text), slide=number, section=(title,) if title else ()))
        self.offset += len(text)
