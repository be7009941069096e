"""Plain text and Markdown files, and the byte decoding every text-like loader shares.

Decoding is deliberately forgiving but never silent: a few bad bytes are replaced, a legacy
file's encoding is detected (Windows-1251, Shift_JIS...), UTF-16 without a byte order mark is
recognised, stray NULs are dropped, and each of those leaves a warning on the document.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import yaml

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited

__all__ = ["decode_text", "read_text", "markdown_headings", "section_segments", "load_text", "load_markdown"]

_SNIFF_BYTES = 8192
# Share of bad bytes below which a UTF-8 file is taken as UTF-8 with a few typos, not as
# another encoding: one stray byte in a long note should not re-decode the whole file.
_RARE_BAD_BYTES = 0.005
_STRAY_BYTES = 8
# Control characters a text file may hold this share of (beyond one stray): more is binary.
_MAX_CONTROL_SHARE = 0.01
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# The same in raw bytes; ESC (ANSI colours in logs) and SUB (the DOS end-of-file mark) are
# not counted, and neither are bytes >= 0x80, which belong to the encoding.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 26, 27))
_BINARY_HINT = "binary data in a text file; is the extension right?"
# Formats whose first bytes say what they are: refused whatever the rest of the file holds.
_BINARY_MAGIC = (
    b"%PDF-", b"\x89PNG", b"GIF87a", b"GIF89a", b"\xff\xd8\xff", b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08",
    b"\x7fELF", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"\xfd7zXZ\x00", b"Rar!\x1a\x07", b"\xd0\xcf\x11\xe0",
    b"SQLite format 3\x00", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\x00asm",
    b"OggS", b"fLaC", b"ID3", b"II*\x00", b"MM\x00*", b"wOFF", b"wOF2", b"\x00\x01\x00\x00\x00",
)
# Detection reads text around non-ASCII bytes up to this much, wherever they are in the file.
_DETECT_SAMPLE = 64 * 1024
_DETECT_WINDOW = 4096
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")
_HIGH_BYTES = bytes(range(128, 256))
# Below this many non-ASCII bytes no detector can tell Hebrew from Cyrillic or Greek in
# Windows code pages (they share byte ranges): the warning says the result is a guess.
_FEW_NON_ASCII = 16
# Code pages the detector need not consider: EBCDIC, Mac and rare ones, which otherwise win
# ties on short texts (a Windows-1252 line read as cp775, Baltic DOS).
_NEVER = ["cp037", "cp1026", "cp1140", "cp273", "cp424", "cp500", "cp875", "cp1006", "cp856", "cp720", "cp737",
          "cp775", "cp1125", "hp_roman8", "hz", "koi8_t", "kz1048", "ptcp154", "utf_7", "mac_cyrillic",
          "mac_greek", "mac_iceland", "mac_latin2", "mac_roman", "mac_turkish", "johab", "iso2022_kr",
          "utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]
# Tie-break among equally good candidates, most used first (the legacy code pages of the
# web and of Windows); anything else comes after.
_PREFERRED = ["cp1252", "cp1251", "gb18030", "cp932", "cp949", "cp1250", "cp1256", "cp1254", "cp1253", "cp1255",
              "cp950", "big5", "koi8_r", "euc_jp", "cp1257", "cp1258", "cp874", "koi8_u", "iso8859_2", "cp866"]
# What the decoder uses for a detected name: supersets that decode every byte the subset does.
_SUPERSET = {"latin_1": "cp1252", "iso8859_1": "cp1252", "ascii": "cp1252", "shift_jis": "cp932",
             "shift_jis_2004": "cp932", "shift_jisx0213": "cp932", "euc_kr": "cp949", "gbk": "gb18030",
             "gb2312": "gb18030", "big5": "cp950", "iso8859_9": "cp1254", "tis_620": "cp874",
             "euc_jis_2004": "euc_jp", "euc_jisx0213": "euc_jp"}
_LABELS = {"cp932": "Shift_JIS", "cp949": "EUC-KR", "gb18030": "GB18030", "cp950": "Big5", "euc_jp": "EUC-JP",
           "koi8_r": "KOI8-R", "koi8_u": "KOI8-U", "iso2022_jp": "ISO-2022-JP", "cp874": "Windows-874 (Thai)"}
# Extensions of a CJK code page hold rare characters: a text made of them is something else
# (0x81 0x8d repeated reads as the Hangul syllable U+AC64 in cp949, which no one writes).
_EUC_CORE = frozenset({"cp949", "gb18030"})
_ISO2022_JP = re.compile(rb"\x1b\$[@B]|\x1b\(J")


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, list[str]]:
    """Bytes of a text-like file -> (text with ``\\n`` newlines, warnings).

    ``declared`` is an encoding the file names itself (an HTML ``<meta charset>``); a BOM
    still wins over it, as in browsers.  Without either, UTF-8 is tried first, then the
    encoding is detected (charset-normalizer) and named in a warning.  Raises
    :class:`LoadError` for binary or undecodable data.
    """
    warnings: list[str] = []
    text = _decode_bom(data)
    if text is None:
        if data.startswith(_BINARY_MAGIC):
            raise LoadError(_BINARY_HINT)
        bomless = _bomless_utf16_32(data)
        if bomless:
            text = _decode_unicode(data, bomless)
            warnings.append(f"decoded as {bomless.upper().replace('_', '-')} (no byte order mark)")
        elif _looks_binary(data):
            raise LoadError(_BINARY_HINT)
        elif data.startswith(codecs.BOM_UTF8):
            text = _decode_utf8(data[len(codecs.BOM_UTF8):], warnings)
        else:
            text = _decode_declared(data, declared, warnings) if declared else None
            if text is None:
                text = _decode_utf8(data, warnings)
    sample = text[:200_000]
    if sample and len(_CONTROL.findall(sample)) > max(1, _MAX_CONTROL_SHARE * len(sample)):
        raise LoadError(_BINARY_HINT)
    nuls = text.count("\x00")
    if nuls:
        # they end strings in C tokenizers and are refused by JSON consumers
        text = text.replace("\x00", "")
        warnings.append(f"{nuls} NUL characters removed")
    return text.replace("\r\n", "\n").replace("\r", "\n"), warnings


def _decode_bom(data: bytes) -> str | None:
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return _decode_unicode(data, name)
    return None


def _decode_unicode(data: bytes, name: str) -> str:
    try:
        return data.decode(name)
    except UnicodeDecodeError as exc:
        label = name.upper().replace("_", "-")
        message = f"undecodable text: invalid {label} at offset {exc.start}; re-save the file as UTF-8"
        raise LoadError(message) from None


def _bomless_utf16_32(data: bytes) -> str | None:
    """UTF-16/32 without a byte order mark, told by its pattern of NUL (or repeated high) bytes."""
    sample = data[:_SNIFF_BYTES]
    if len(sample) < 8 or len(data) % 2 or b"\x00" not in sample:
        return None
    if len(data) % 4 == 0:
        quads = [sample[i::4] for i in range(4)]
        zero = [q.count(0) / len(q) for q in quads]
        if zero[2] > 0.9 and zero[3] > 0.9 and zero[0] < 0.5:
            return "utf_32_le"
        if zero[0] > 0.9 and zero[1] > 0.9 and zero[3] < 0.5:
            return "utf_32_be"
    even, odd = sample[0::2], sample[1::2]
    # the high byte of each unit repeats (0x00 for Latin, 0x04 for Cyrillic...), the low one varies
    for high, low, name in ((odd, even, "utf_16_le"), (even, odd, "utf_16_be")):
        common = max(set(high), key=high.count)
        varied = len(set(low)) > min(8, len(low) // 4)  # text uses many characters; a binary pattern repeats one
        if (high.count(common) > 0.5 * len(high) and low.count(common) < 0.1 * len(low)
                and high.count(0) > 0.05 * len(high) and varied):
            return name
    return None


def _looks_binary(data: bytes) -> bool:
    """Control bytes beyond what a text file holds (one stray NUL is fine)."""
    # start, middle and end: a text header on a binary body, or the reverse, is still binary
    n = len(data)
    for start in {0, max(0, n // 2 - _SNIFF_BYTES // 2), max(0, n - _SNIFF_BYTES)}:
        sample = data[start:start + _SNIFF_BYTES]
        controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
        if controls > max(1, _MAX_CONTROL_SHARE * len(sample)):
            return True
    return False


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
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first = exc
    else:
        if _ISO2022_JP.search(data, 0, _DETECT_SAMPLE):  # 7-bit Japanese mail: valid ASCII, with escapes
            try:
                text = data.decode("iso2022_jp")
                warnings.append("not UTF-8; decoded as ISO-2022-JP")
            except UnicodeDecodeError:
                pass
        return text
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    good = len(text) - len(text.encode("ascii", "ignore")) - bad  # valid non-ASCII characters
    # a few stray bytes in UTF-8 (a handful, or fewer than its good non-ASCII characters) are
    # typos; many, or a run of them in ASCII text, are another encoding
    if bad < _RARE_BAD_BYTES * len(data) and (bad <= _STRAY_BYTES or good >= bad):
        warnings.append(f"{bad} undecodable bytes replaced with \ufffd")
        return text
    detected = _detect(data)
    if detected is not None:
        text, name, guess = detected
        label = _LABELS.get(name) or (f"Windows-{name[2:]}" if name.startswith("cp125") else name.upper().replace("_", "-"))
        if guess:
            warnings.append(f"not UTF-8; decoded as {label} (a guess from very little text; re-save the file as UTF-8)")
        else:
            warnings.append(f"not UTF-8; decoded as {label}")
        return text
    raise LoadError(
        f"undecodable text: not UTF-8 (first bad byte 0x{data[first.start]:02x} at offset {first.start}); "
        "re-save the file as UTF-8"
    )


def _detect(data: bytes) -> tuple[str, str, bool] | None:
    """``(text, codec, is_a_guess)`` for legacy-encoded ``data``, or None when no encoding fits.

    charset-normalizer judges a sample (text around non-ASCII bytes, up to 64 KB, from anywhere
    in the file); the chosen codec then decodes the whole file strictly.  Windows-1252, the
    usual legacy encoding, is tried last when detection finds nothing.
    """
    from charset_normalizer import from_bytes  # lazy: only legacy files need it

    sample = _detection_sample(data)
    non_ascii = len(sample) - len(sample.translate(None, _HIGH_BYTES))
    matches = from_bytes(sample, cp_exclusion=_NEVER)
    ranked = sorted(matches, key=lambda m: _rank(m.encoding, m.chaos, m.coherence))
    for match in ranked:
        name = _SUPERSET.get(match.encoding, match.encoding)
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        if name == "cp1252" or _plausible(sample.decode(name, "replace"), name):
            return text, name, non_ascii < _FEW_NON_ASCII
    try:
        return data.decode("cp1252"), "cp1252", non_ascii < _FEW_NON_ASCII
    except UnicodeDecodeError:
        return None


def _rank(encoding: str, chaos: float, coherence: float) -> tuple[float, int]:
    """Sort key: less mess and more language-like first; popular code pages win ties."""
    name = _SUPERSET.get(encoding, encoding)
    order = _PREFERRED.index(name) if name in _PREFERRED else len(_PREFERRED)
    # charset-normalizer's scores differ by a few hundredths between near-equal readings
    return round(chaos - 0.5 * coherence + (0.0 if order < len(_PREFERRED) else 0.05), 2), order


def _plausible(text: str, codec: str) -> bool:
    """Whether ``text`` reads as text: a fifth of its non-ASCII characters are letters or marks
    (not box drawing or symbols), and for a CJK superset most are in the common core."""
    counts = Counter(c for c in text if c >= "\x80")
    total = sum(counts.values())
    letters = sum(n for c, n in counts.items() if c.isalpha() or unicodedata.category(c)[0] == "M")
    if letters < 0.2 * total:
        return False
    if codec not in _EUC_CORE:
        return True
    # the common core is the EUC double-byte range: both bytes 0xA1 or more
    common = sum(n for c, n in counts.items() if min(c.encode(codec)) >= 0xA1)
    return common >= 0.5 * total


def _detection_sample(data: bytes) -> bytes:
    """Windows of text around non-ASCII bytes, from anywhere in the file, up to 64 KB.

    Windows start and end at a space or newline: in every legacy multi-byte encoding those
    bytes are whole characters, so no window starts or ends inside one.
    """
    if len(data) <= _DETECT_SAMPLE:
        return data
    parts: list[bytes] = []
    size = pos = 0
    while size < _DETECT_SAMPLE:
        match = _HIGH_BYTE.search(data, pos)
        if match is None:
            break
        first = match.start()
        lo = max(pos, first - 256)
        lo = max(data.rfind(b" ", lo, first), data.rfind(b"\n", lo, first), lo - 1) + 1
        hi = min(len(data), first + _DETECT_WINDOW)
        if hi < len(data):
            hi = max(data.rfind(b" ", first, hi), data.rfind(b"\n", first, hi), first) + 1
        parts.append(data[lo:hi])
        size += hi - lo
        pos = hi
    return b"\n".join(parts)


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
    """The top-level ``key: value`` pairs of a leading ``---`` YAML block, and the text after it.

    Read by PyYAML (already installed with transformers) with its base loader: every value stays
    the text it was (``007`` is not 7, ``yes`` is not True), and aliases are refused, so a file
    cannot make a small block expand into a large one.  Lists and mappings are left out (a
    filter compares one value); a block YAML cannot read falls back to plain ``key: value`` lines.
    """
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    block = match.group(1) or ""
    try:
        data = yaml.load(block, Loader=_TextOnlyLoader)  # noqa: S506 - a loader that builds only str, list, dict
    except yaml.YAMLError:
        return _key_value_lines(block), text[match.end():]
    if not isinstance(data, dict):
        return {}, text[match.end():]
    meta = {str(k): v.strip() for k, v in data.items() if isinstance(v, str) and v.strip() and isinstance(k, str)}
    return meta, text[match.end():]


class _TextOnlyLoader(yaml.BaseLoader):
    """PyYAML's base loader (strings, lists and mappings only) without aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not read in front matter")
        return super().compose_node(parent, index)


def _key_value_lines(block: str) -> dict[str, str]:
    """Plain ``key: value`` lines, for a front matter block that is not valid YAML."""
    meta: dict[str, str] = {}
    for line in block.split("\n"):
        pair = _KEY_VALUE.match(line)
        # a block scalar ("summary: >") continues on indented lines this reader skips
        if pair and pair.group(2) and pair.group(2) not in _BLOCK_SCALARS:
            value = pair.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            meta[pair.group(1)] = value
    return meta


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
