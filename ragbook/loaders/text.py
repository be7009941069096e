"""Plain text and Markdown files, and the byte decoding every text-like loader shares.

Decoding is deliberately forgiving but never silent: a few bad bytes are replaced, a legacy
Windows-1252 file is decoded as such, and each of those leaves a warning on the document.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any, Iterator

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited

__all__ = ["decode_text", "read_text", "markdown_headings", "section_segments", "load_text", "load_markdown"]

_SNIFF_BYTES = 8192
# Share of bad bytes below which a UTF-8 file is taken as UTF-8 with a few typos, not as
# another encoding: one stray byte in a long note should not re-decode the whole file.
_RARE_BAD_BYTES = 0.005
_MAX_CONTROL_SHARE = 0.01
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_BINARY_HINT = "binary data in a text file; is the extension right?"


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, list[str]]:
    """Bytes of a text-like file -> (text with ``\\n`` newlines, warnings).

    ``declared`` is an encoding the file names itself (an HTML ``<meta charset>``); a BOM
    still wins over it, as in browsers.  Raises :class:`LoadError` for binary or
    undecodable data.
    """
    warnings: list[str] = []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not data.startswith(codecs.BOM_UTF32_LE):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            message = f"undecodable text: invalid UTF-16 at offset {exc.start}; re-save the file as UTF-8"
            raise LoadError(message) from None
    else:
        if b"\x00" in data[:_SNIFF_BYTES]:
            raise LoadError(_BINARY_HINT)
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8):]
            declared = None
        text = _decode_declared(data, declared, warnings) if declared else None
        if text is None:
            text = _decode_utf8(data, warnings)
    sample = text[:200_000]
    if sample and len(_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * len(sample):
        raise LoadError(_BINARY_HINT)
    return text.replace("\r\n", "\n").replace("\r", "\n"), warnings


def _decode_declared(data: bytes, declared: str, warnings: list[str]) -> str | None:
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        warnings.append(f"unknown charset {declared!r}; decoded as UTF-8")
        return None
    if name == "utf-8":
        return None
    if name in ("latin-1", "iso8859-1", "ascii"):
        # Web pages that say latin-1 or ascii are Windows-1252 in practice (and per the HTML spec).
        name = "cp1252"
    try:
        return data.decode(name)
    except UnicodeDecodeError:
        return None


def _decode_utf8(data: bytes, warnings: list[str]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first = exc
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    if bad < _RARE_BAD_BYTES * len(data):
        warnings.append(f"{bad} undecodable bytes replaced with \ufffd")
        return text
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise LoadError(
            f"undecodable text: not UTF-8 (first bad byte 0x{data[first.start]:02x} at offset {first.start}); "
            "re-save the file as UTF-8"
        ) from None
    warnings.append("not UTF-8; decoded as Windows-1252")
    return text


def read_text(path: Path, options: dict[str, Any]) -> tuple[str, list[str]]:
    """A text-like file's decoded text and warnings, read safely within ``options["max_file_mb"]``."""
    text, warnings = decode_text(read_limited(path, options.get("max_file_mb", DEFAULT_MAX_FILE_MB)))
    if not text or text.isspace():  # isspace stops at the first letter; strip() would copy it all
        raise LoadError("empty file")
    return text, warnings


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """``(offset, line)`` for each line, as splitting at newlines would give, one line at a time."""
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield start, text[start:end]
        start = end + 1


# --- Markdown structure -------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_LIST_OR_QUOTE = re.compile(r"^ {0,3}(?:[-+*>]|\d+[.)])(?:\s|$)")
_NON_SPACE = re.compile(r"\S")


def markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """``(offset, level, title)`` of each ATX or setext heading outside fenced code."""
    headings: list[tuple[int, int, str]] = []
    fence = ""
    # the paragraph just above: a setext underline turns all of its lines into a heading
    para_start = 0
    para_lines: list[str] = []
    for start, line in _lines(text):
        if fence:
            closing = line.strip()
            if closing.startswith(fence) and set(closing) == {fence[0]}:
                fence = ""
            continue
        opening = _FENCE.match(line)
        atx = None if opening else _ATX.match(line)
        underline = _SETEXT.match(line) if para_lines and not (opening or atx) else None
        if opening:
            fence = opening.group(1)
        elif atx and (atx.group(2) or "").strip():
            headings.append((start, len(atx.group(1)), atx.group(2).strip()))
        elif underline:
            title = " ".join(part.strip() for part in para_lines)
            headings.append((para_start, 1 if underline.group(1)[0] == "=" else 2, title))
        elif line.strip() and not line.startswith(("    ", "\t")) and not _LIST_OR_QUOTE.match(line):
            if not para_lines:
                para_start = start
            para_lines.append(line)
            continue
        para_lines = []
    return headings


def section_segments(text: str, headings: list[tuple[int, int, str]], **fields: Any) -> list[Segment]:
    """Split ``text`` at heading offsets into segments carrying the heading path.

    Segments keep document order, never overlap and are trimmed of surrounding whitespace;
    whitespace-only spans are dropped.  ``fields`` (``cell=3``) are set on every segment.
    """
    bounds = list(headings)
    if not bounds or bounds[0][0] > 0:
        bounds.insert(0, (0, 0, ""))
    path: list[tuple[int, str]] = []
    segments: list[Segment] = []
    for i, (start, level, title) in enumerate(bounds):
        if level:
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title))
        end = bounds[i + 1][0] if i + 1 < len(bounds) else len(text)
        # trimmed by offsets, not by copying the span: a section may be most of a large file
        first = _NON_SPACE.search(text, start, end)
        if first is None:
            continue
        last = end
        while text[last - 1].isspace():
            last -= 1
        segments.append(Segment(first.start(), last, section=tuple(t for _, t in path), **fields))
    return segments


# --- front matter -------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_KEY_VALUE = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*?)[ \t]*$")
_BLOCK_SCALARS = frozenset({"|", ">", "|-", ">-", "|+", ">+"})


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    """Simple ``key: value`` lines of a leading ``---`` block, and the text after it.

    Nested YAML (lists, mappings) is skipped rather than misread: a yaml dependency for a
    title and a date is not worth it.
    """
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, str] = {}
    for line in (match.group(1) or "").split("\n"):
        pair = _KEY_VALUE.match(line)
        # a block scalar ("summary: >") continues on indented lines this parser skips
        if pair and pair.group(2) and pair.group(2) not in _BLOCK_SCALARS:
            value = pair.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            meta[pair.group(1)] = value
    return meta, text[match.end():]


# --- loaders ------------------------------------------------------------------------------


def load_text(path: Path, **options: Any) -> Document:
    """A ``.txt`` file as one segment; the title is the file name without its extension."""
    text, warnings = read_text(path, options)
    text = text.rstrip()
    return Document(text=text, source=path.name, title=path.stem,
                    metadata={"format": "text"}, warnings=warnings)


def load_markdown(path: Path, **options: Any) -> Document:
    """A Markdown file, one segment per heading with the heading path as its section."""
    raw, warnings = read_text(path, options)
    meta, text = _front_matter(raw)
    text = text.strip("\n").rstrip()
    if not text or text.isspace():
        raise LoadError("empty file (nothing after the front matter)")
    headings = markdown_headings(text)
    title = meta.get("title", "") or next((t for _, level, t in headings if level == 1), "") or path.stem
    metadata: dict[str, Any] = dict(meta)
    metadata["format"] = "markdown"
    return Document(text=text, source=path.name, title=title, segments=section_segments(text, headings),
                    metadata=metadata, warnings=warnings)
