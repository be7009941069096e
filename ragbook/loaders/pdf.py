"""PDF files through pypdf, one segment per page.

Real-world PDFs fail in many ways (truncated downloads, passwords, scans without a text
layer, fonts without a Unicode map); each gets its own sentence instead of a traceback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited

__all__ = ["dehyphenate", "garble_score", "load_pdf", "pdf_date", "split_authors", "strip_furniture"]

logger = logging.getLogger(__name__)

# Thresholds of garble_score, tuned on realdocs: mojibake from a CID font without a
# ToUnicode map scores ~0.46, the worst good page (math fonts, private-use glyphs) ~0.06.
_GARBLED_DOCUMENT = 0.2
_GARBLED_PAGE = 0.3
_MIN_SCORED_CHARS = 40
_GARBLED = "text looks garbled (fonts without a Unicode map?); answers from it may be wrong"
_NEEDS_AES = "AES-encrypted PDF: install the 'cryptography' package (pip install cryptography)"
_NO_TEXT = "no text layer (scanned or image-only PDF?); run OCR first, e.g. `ocrmypdf in.pdf out.pdf`"

# Kana and Han switch within one Japanese word; they count as one script.
_SCRIPT_GROUPS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HALFWIDTH": "CJK", "FULLWIDTH": "CJK",
                  "IDEOGRAPHIC": "CJK", "MATHEMATICAL": "LATIN"}


@contextlib.contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs a warning per odd font or xref entry; keep them out of the user's notebook."""
    pypdf_logger = logging.getLogger("pypdf")
    level = pypdf_logger.level
    pypdf_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pypdf_logger.setLevel(level)


def _script(char: str) -> str:
    if char < "\x80":
        return "LATIN"
    name = unicodedata.name(char, "")
    word = name.split(" ", 1)[0] if name else "?"
    return _SCRIPT_GROUPS.get(word, word)


def garble_score(text: str) -> tuple[float, int]:
    """How much ``text`` looks like mojibake (0 = clean), and how many characters were scored.

    The score adds two shares: characters that are no real text (unassigned, private use,
    surrogates, controls, U+FFFD) among non-space characters, and script changes between
    neighbouring letters of one word.  Real text, even mixing scripts, changes script at word
    boundaries; glyph ids read as code points jump between Greek, Arabic, Bengali... mid-word.
    """
    return _score(_garble_counts(text))


def _score(counts: tuple[int, ...]) -> tuple[float, int]:
    bad, scored, letters, switches = counts
    return (bad / scored + switches / max(letters, 1) if scored else 0.0), scored


def _garble_counts(text: str) -> tuple[int, int, int, int]:
    bad = scored = letters = switches = 0
    previous = ""
    for char in text:
        if char.isspace():
            previous = ""
            continue
        scored += 1
        category = unicodedata.category(char)
        if category[0] == "C" or char == "\ufffd":
            bad += 1
            previous = ""
        elif category[0] == "M" or category == "Lm":
            continue  # combining marks and modifier letters belong to the letter beside them
        elif category[0] == "L":
            script = _script(char)
            letters += 1
            switches += bool(previous) and script != previous
            previous = script
        else:
            previous = ""
    return bad, scored, letters, switches


def _clean(text: str) -> str:
    # pypdf can split astral characters (math italic letters) into lone surrogates, which
    # cannot be written as UTF-8 later; pairs are joined, strays become U+FFFD.
    if any("\ud800" <= c <= "\udfff" for c in text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").strip()


def _password(path: Path, options: dict[str, Any]) -> str | None:
    passwords = options.get("passwords") or {}
    for key in (options.get("source"), path.name, str(path)):
        if key and key in passwords:
            return passwords[key]
    return None


def _open(path: Path, options: dict[str, Any]) -> tuple[Any, int]:
    """A decrypted ``PdfReader`` and its page count, or a :class:`LoadError` saying why not."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    def corrupt(exc: BaseException) -> LoadError:
        hint = "truncated or incomplete download?" if "ended unexpectedly" in str(exc) else "re-export or repair it"
        return LoadError(f"corrupt or truncated PDF ({type(exc).__name__}: {exc}); {hint}")

    # pypdf would read a path whole into memory anyway; reading it here keeps the checks
    # (a regular file, within max_file_mb) on what is actually parsed
    data = read_limited(path, options.get("max_file_mb", DEFAULT_MAX_FILE_MB))
    if not data:
        raise LoadError("empty file")
    try:
        reader = PdfReader(io.BytesIO(data))
    except DependencyError:
        raise LoadError(_NEEDS_AES) from None
    except Exception as exc:
        raise corrupt(exc) from None
    needs_password = f"encrypted PDF: a password is required; pass passwords={{{path.name!r}: '...'}}"
    if reader.is_encrypted:
        password = _password(path, options)
        # The empty user password comes last: owner-password-only PDFs open in viewers
        # without asking, so they must open here too, whatever password was passed.
        candidates = ([password] if password is not None else []) + [""]
        try:
            opened = any(reader.decrypt(candidate) for candidate in candidates)
        except DependencyError:
            raise LoadError(_NEEDS_AES) from None
        except Exception as exc:
            raise corrupt(exc) from None
        if not opened and password is not None:
            raise LoadError(f"encrypted PDF: the password given for {path.name!r} is wrong")
        if not opened:
            raise LoadError(needs_password)
    try:
        count = len(reader.pages)
    except FileNotDecryptedError:
        raise LoadError(needs_password) from None
    except Exception as exc:
        raise corrupt(exc) from None
    if count == 0:
        raise LoadError("PDF has no pages")
    return reader, count


# -- text clean-up ---------------------------------------------------------------------------
#
# What pypdf hands back is the page as typeset: ligature glyphs, hyphens that broke a word at
# the end of a line, running headers and page numbers.  Each is undone here so that a search
# for "efficient retrieval" finds the page that printed "eﬃcient retrie-" / "val".

# Ligatures and the invisible or look-alike characters typesetting leaves behind.  Soft hyphens
# are handled with the line breaks; zero-width (non-)joiners are kept: they spell Persian and Indic.
_COMPAT = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                         "\ufb05": "st", "\ufb06": "st", "\u00a0": " ", "\u2007": " ", "\u202f": " ",
                         "\u200b": "", "\u2060": "", "\ufeff": ""})
# pdfTeX draws an accent as its own spacing glyph before the letter ("F¨arber"); put it back on.
_SPACING_ACCENT = re.compile(r"([\u00a8\u00b4\u02c6\u02dc\u02c7\u02da])([A-Za-z])")
_COMBINING = {"\u00a8": "\u0308", "\u00b4": "\u0301", "\u02c6": "\u0302", "\u02dc": "\u0303", "\u02c7": "\u030c",
              "\u02da": "\u030a"}


def _compat(text: str) -> str:
    text = text.translate(_COMPAT)
    text = re.sub(r"\u00ad[ \t]*\n[ \t]*", "", text).replace("\u00ad", "")
    return _SPACING_ACCENT.sub(lambda m: unicodedata.normalize("NFC", m[2] + _COMBINING[m[1]]), text)


# A word broken at a line end: a letter, a hyphen (ASCII or U+2010), a lowercase letter next.
_BROKEN = re.compile(r"([^\W\d_](?:[\w\-\u2010]*[^\W\d_])?)[\-\u2010][ \t]*\n[ \t]*([^\W\d_][^\W\d_]*)")
_WORD = re.compile(r"[^\W\d_]+(?:[\-\u2010][^\W\d_]+)*")


def _vocabulary(texts: list[str]) -> tuple[set[str], set[str]]:
    """The words and the hyphenated compounds the document prints inside its lines."""
    words: set[str] = set()
    compounds: set[str] = set()
    for text in texts:
        for token in _WORD.findall(_BROKEN.sub(" ", text.lower())):  # not the halves of broken words
            (compounds if "-" in token or "\u2010" in token else words).add(token)
    return words, compounds


def dehyphenate(text: str, words: set[str] | None = None, compounds: set[str] | None = None) -> str:
    """Join words broken across lines: ``"retrie-\\nval"`` -> ``"retrieval"``.

    Only a line ending in a letter and a hyphen, followed by a line starting with a lowercase
    letter, is joined (``Soekarno-`` / ``Hatta`` and ``737-`` / ``9`` stay apart), and the two
    lines become one.  The hyphen is dropped unless the word is a compound: its first part holds
    a hyphen already (``state-of-the-\\nart``); the document prints ``left-right`` elsewhere and
    never ``leftright``; or it never prints ``leftright`` but prints both halves as words of 4+
    letters (``edge-\\nagnostic``; ``in-\\nformation`` is joined).  ``words`` and ``compounds``
    hold what the document prints (see :func:`_vocabulary`).  On the realdocs paper (ACL) and
    book (Free Culture): 1,931 breaks joined (2 of a 50-word sample wrong: "aggressivelycleaned",
    "Contextenhanced"), 27 hyphens kept (3 wrong: "over-turned", "over-stepped", "over-riding").
    """
    words, compounds = words or set(), compounds or set()

    def join(m: re.Match[str]) -> str:
        left, right = m[1], m[2]
        if not right[0].islower():
            return m[0]
        last = re.split(r"[\-\u2010]", left)[-1].lower()
        tail = right.lower()
        if last != left.lower():
            keep = True  # state-of-the-art
        elif last + tail in words or f"{last}-{tail}" in compounds:
            keep = last + tail not in words
        else:  # two words of their own (edge-agnostic) rather than syllables (retrie-val, in-formation)
            keep = len(last) >= 4 and len(tail) >= 4 and last in words and tail in words
        return left + ("-" if keep else "") + right

    return _BROKEN.sub(join, text) if ("-" in text or "\u2010" in text) else text


# Running headers and footers: lines at a page's edges that repeat, digits aside, on at least
# half of the odd or of the even pages (books alternate them), in documents of 4+ pages.
_EDGE_LINES = 4
_FURNITURE_SHARE = 0.5
_MIN_FURNITURE_PAGES = 4
_ROMAN = r"(?:[ivxlcdm]+|[IVXLCDM]+)"
# a page number on its own: "12", "xii", "- 12 -", "Page 12", "Page 12 of 40", "12 / 40", "[12]"
_PAGE_NUMBER = re.compile(rf"^(?:page|seite|p\.)?\s*[-\u2013\u2014\[(]?\s*(\d{{1,5}}|{_ROMAN})\s*[-\u2013\u2014\])]?"
                          rf"(?:\s*(?:of|/|von)\s*\d{{1,5}})?$", re.IGNORECASE)
_DECORATED = re.compile(r"^(?:page|seite|p\.)\s|of|/|von|[-\u2013\u2014\[(]", re.IGNORECASE)


def _shape(line: str) -> str:
    shape = re.sub(r"\d+", "0", " ".join(line.split()).lower())
    return re.sub(rf"\b{_ROMAN}$", "0", shape)  # "page iv" and "page 12" are one header


def _roman(token: str) -> int | None:
    values = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}
    total, previous = 0, 0
    for char in reversed(token.lower()):
        value = values.get(char)
        if value is None:
            return None
        total, previous = (total - value, previous) if value < previous else (total + value, value)
    return total


def _edges(lines: list[str]) -> list[int]:
    """Indices of the first and last few non-blank lines of a page."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return sorted(set(filled[:_EDGE_LINES] + filled[-_EDGE_LINES:]))


def strip_furniture(pages: list[list[str]], numbers: list[int]) -> list[list[str]]:
    """Drop running headers/footers and page numbers from each page's lines (page N stays page N).

    A header is a line among a page's first or last four that appears, with digits read as
    one digit, on at least half of the odd pages or of the even pages (4+ pages with text).  A
    page number is a page's first or last line that is only a number ("12", "- 12 -", "xii",
    "Page 12 of 40"); a bare number is dropped only when its distance to the page's position
    in the file is shared by another page, so a table's last "43" stays.  A page made only of
    repeated lines keeps them.
    """
    edges = [_edges(lines) for lines in pages]
    furniture: set[str] = set()
    if len(pages) >= _MIN_FURNITURE_PAGES:
        for parity in (0, 1):
            chosen = [i for i, number in enumerate(numbers) if number % 2 == parity]
            pages_with = Counter(shape for i in chosen for shape in {_shape(pages[i][j]) for j in edges[i]})
            least = max(2, _FURNITURE_SHARE * len(chosen))
            furniture |= {shape for shape, n in pages_with.items() if n >= least and shape.strip("0 ")}

    kept = []
    for i, lines in enumerate(pages):
        drop = {j for j in edges[i] if _shape(lines[j]) in furniture}
        if len(drop) == sum(bool(line.strip()) for line in lines):
            drop = set()  # pages that say nothing else ("Rotated 90", four times) keep their words
        kept.append([line for j, line in enumerate(lines) if j not in drop])

    # bare numbers at a page's first or last line, and their offset from the page's number
    # (counted before and after the headers went: "Page 2 of 9" may have gone as a header)
    offsets: Counter[int] = Counter()
    candidates: dict[tuple[int, int], int | None] = {}
    for i, number in enumerate(numbers):
        seen: set[int] = set()
        for lines in (pages[i], kept[i]):
            filled = [j for j, line in enumerate(lines) if line.strip()]
            for j in {filled[0], filled[-1]} if filled else ():
                m = _PAGE_NUMBER.match(lines[j].strip())
                value = (int(m[1]) if m[1].isdigit() else _roman(m[1])) if m else None
                if value is not None:
                    seen.add(value - number)
                if m and lines is kept[i]:
                    # "Page 3 of 9" and "- 3 -" are page numbers wherever they stand; a bare "3" if it fits
                    decorated = _DECORATED.search(lines[j].strip()) or value is None
                    candidates[i, j] = None if decorated or value is None else value - number
        offsets.update(seen)
    out = []
    for i, lines in enumerate(kept):
        drop = {j for (k, j), offset in candidates.items() if k == i and (offset is None or offsets[offset] >= 2)}
        out.append([line for j, line in enumerate(lines) if j not in drop])
    return out


# -- references --------------------------------------------------------------------------------
_REFERENCES = re.compile(r"^\s*(?:(?:\d{1,2}|[IVX]{1,4})\.?\s+)?(references|bibliography|works cited|literature cited"
                         r"|references and notes|literatur|literaturverzeichnis|bibliographie|références)\s*:?\s*$",
                         re.IGNORECASE | re.MULTILINE)
# what ends a reference list: an appendix heading ("Appendix", "A Background & Terminology")
_APPENDIX = re.compile(r"^\s*(?:(?i:appendix|appendices|supplementary materials?|supplemental materials?)\b.{0,60}"
                       r"|A\.?\s+[A-Z][A-Za-z&,\-]*(?: [A-Za-z&,\-]+){0,6})\s*$", re.MULTILINE)
REFERENCES_SECTION = ("References",)


def _reference_spans(pages: list[tuple[int, str]]) -> list[tuple[int, str, tuple[str, ...]]]:
    """Split page texts where a reference list starts (and ends): (page, text, section) parts.

    Only a heading in the second half of the document counts, so a table of contents listing
    "References" on page 2 does not turn the paper into references.
    """
    total = sum(len(text) for _, text in pages)
    done = 0
    heading: tuple[int, int] | None = None  # (index of the page, offset in it) of the last heading
    for k, (_, text) in enumerate(pages):
        for m in _REFERENCES.finditer(text):
            if done + m.start() >= total / 2:
                heading = (k, m.start())
        done += len(text)
    if heading is None:
        return [(number, text, ()) for number, text in pages]
    parts: list[tuple[int, str, tuple[str, ...]]] = []
    inside = False
    for k, (number, text) in enumerate(pages):
        cuts = [(0, inside)]
        start = heading[1] + 1 if k == heading[0] else 0
        if k == heading[0]:
            cuts.append((heading[1], True))
            inside = True
        if inside:
            end = _APPENDIX.search(text, start)
            if end:
                cuts.append((end.start(), False))
                inside = False
        for (a, ref), (b, _) in zip(cuts, cuts[1:] + [(len(text), False)]):
            if text[a:b].strip():
                parts.append((number, text[a:b], REFERENCES_SECTION if ref else ()))
    return parts


# -- form fields and annotations -----------------------------------------------------------------
_MAX_ANNOTATIONS = 5000  # per page: a hostile file can list millions
_MAX_VALUE = 10_000  # characters of one field value or comment
_SKIPPED_ANNOTATIONS = {"/Widget", "/Link", "/Popup"}


def _string(value: Any) -> str:
    """A field value as text: text, a name or a number; anything else (a signature's dictionary,
    a stream, raw bytes) is not something a person typed, and gives ""."""
    if hasattr(value, "get_object"):
        value = value.get_object()
    if value is None or isinstance(value, (bool, bytes, dict)):
        return ""
    if isinstance(value, list):
        return ", ".join(filter(None, (_string(v) for v in value[:100])))
    if not isinstance(value, (str, int, float)):
        return ""
    text = str(value)
    if text.startswith("/"):  # a name: the state of a checkbox or radio button
        text = "" if text == "/Off" else text[1:]
    return _compat(" ".join(_clean(text[:_MAX_VALUE]).split()))


def _field(annotation: Any) -> tuple[str, str]:
    """A widget's fully qualified field name and value (the value may sit on a parent)."""
    names, value, node = [], None, annotation
    for _ in range(32):  # parent chains are short; a cycle must not hang
        if node is None:
            break
        node = node.get_object()
        if "/T" in node:
            names.append(str(node["/T"]))
        if value is None and "/V" in node:
            value = node["/V"]
        node = node.get("/Parent")
    return ".".join(reversed(names)), _string(value)


def page_extras(page: Any) -> list[str]:
    """Filled form fields and comments on one page, as lines: "Form field Name: value"."""
    lines: list[str] = []
    seen: set[str] = set()
    annotations = page.get("/Annots") or []
    for ref in list(annotations.get_object() if hasattr(annotations, "get_object") else annotations)[:_MAX_ANNOTATIONS]:
        try:
            annotation = ref.get_object()
            subtype = annotation.get("/Subtype")
            if subtype == "/Widget":
                name, value = _field(annotation)
                if any(c.isalnum() for c in value) and name not in seen:
                    seen.add(name)
                    lines.append(f"Form field {name or 'without a name'}: {value}")
            elif subtype not in _SKIPPED_ANNOTATIONS:
                text = _string(annotation.get("/Contents"))
                if text:
                    author = _string(annotation.get("/T"))
                    lines.append(f"Comment{' by ' + author if author else ''}: {text}")
        except Exception:  # one broken annotation must not cost the page
            logger.debug("unreadable annotation", exc_info=True)
    return lines


def _is_xfa(reader: Any) -> bool:
    try:
        root = reader.trailer["/Root"]
        form = root.get("/AcroForm")
        return bool(root.get("/NeedsRendering")) or bool(form is not None and "/XFA" in form.get_object())
    except Exception:
        return False


# -- metadata ------------------------------------------------------------------------------------
# Producers often store the file name as /Title ("Binder1.pdf", "Microsoft Word - notes.docx").
_FILE_NAME_TITLE = re.compile(r"\.(pdf|docx?|rtf|odt|txt|tex|dvi|ps|indd|pptx?|xlsx?|html?)$", re.IGNORECASE)
_OFFICE_PREFIX = re.compile(r"^Microsoft (Word|PowerPoint|Excel) - ")
_JUNK_TITLE = re.compile(r"^(untitled(\s+document)?|document\d*|doc\d*|title|no title|slide \d+|"
                         r"powerpoint presentation|presentation\d*|.*\btemplate\b.*|book\d*|binder\d*|\(?anonymous\)?|"
                         r"-+|\.+|\?+)$", re.IGNORECASE)
_JUNK_AUTHOR = re.compile(r"^(user|admin|administrator|owner|unknown|author|default|[A-Z0-9]*[:_\\][A-Z0-9:_\\]*)$",
                          re.IGNORECASE)


def _info(reader: Any) -> tuple[str, dict[str, Any]]:
    """Title, authors and date from the document information dictionary."""
    try:
        info = reader.metadata or {}
        raw = {key: info.get(key) for key in ("/Title", "/Author", "/CreationDate")}
    except Exception:  # a broken /Info dictionary should not cost the text
        return "", {}
    title = _OFFICE_PREFIX.sub("", " ".join(_string(raw["/Title"]).split()))
    if _FILE_NAME_TITLE.search(title) or _JUNK_TITLE.match(title):
        title = ""
    metadata: dict[str, Any] = {}
    authors = split_authors(_string(raw["/Author"]))
    if authors:
        metadata["authors"] = authors
    date = pdf_date(str(raw["/CreationDate"] or ""))
    if date:
        metadata["date"] = date
    return title, metadata


def split_authors(value: str) -> list[str]:
    """``"A. Lo ; B. Wang"`` and ``"Ann Lee, Bo Chen and Cy Diaz"`` -> names; ``"Lee, Ann"`` stays whole."""
    if ";" in value:
        pieces = value.split(";")
    else:
        pieces = re.split(r",\s*(?:and\s+|&\s*)?|\s+and\s+|\s+&\s+", value)
        if "," in value and any(len(p.split()) < 2 for p in pieces):  # "Lee, Ann": one name, last name first
            pieces = re.split(r"\s+and\s+|\s+&\s+", value)
    names = [" ".join(p.split()) for p in pieces]
    return [n for n in names if n and any(c.isalpha() for c in n) and not _JUNK_AUTHOR.match(n)][:50]


def pdf_date(value: str) -> str:
    """``"D:20200502083329Z"`` -> ``"2020-05-02"`` (as much of the date as is valid), else ``""``."""
    m = re.match(r"^(?:D:)?\s*(\d{4})(\d{2})?(\d{2})?", value.strip())
    if not m or not 1000 <= int(m[1]) <= 2999:
        return ""
    date = m[1]
    if m[2] and 1 <= int(m[2]) <= 12:
        date += f"-{m[2]}"
        if m[3] and 1 <= int(m[3]) <= 31:
            date += f"-{m[3]}"
    return date


# -- OCR -----------------------------------------------------------------------------------------
_OCR_INSTALL = "install OCR to read such pages here: pip install 'ragbook[ocr]'"


def _ocr_module() -> tuple[Any, str | None]:
    """The OCR module and None, or None and the sentence that says how to install it."""
    try:
        from ragbook.loaders import ocr
    except ImportError:
        return None, _OCR_INSTALL
    try:
        missing = ocr.missing()
    except Exception as exc:  # a broken OCR install reads as a missing one
        return None, f"OCR is unavailable ({type(exc).__name__}: {exc})"
    return (ocr, None) if missing is None else (None, missing)


def _has_image(page: Any) -> bool:
    try:
        objects = page["/Resources"].get_object().get("/XObject") or {}
        return any(objects[name].get_object().get("/Subtype") in ("/Image", "/Form") for name in objects)
    except Exception:
        return False


def _ranges(numbers: list[int]) -> str:
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


# -- the loader ----------------------------------------------------------------------------------
def load_pdf(path: Path, **options: Any) -> Document:
    """A PDF's text, one segment per page that has text (``page`` is 1-based).

    Running headers, footers and page numbers are dropped, words hyphenated across lines are
    joined, ligatures are spelled out, filled form fields and comments are added to their page,
    and a reference list gets ``section=("References",)``.  Pages without a text layer are read
    by OCR when it is installed (``ocr=False`` turns that off).
    """
    with _quiet_pypdf():
        reader, count = _open(path, options)
        texts, extras, failures, blank = _extract_pages(reader, count, path)
        title, metadata = _info(reader)
        ocr_notes, ocr_pages, ocr_hint = _read_by_ocr(reader, texts, blank, options)
        xfa = _is_xfa(reader)
        encrypted = reader.is_encrypted

    if not texts and not any(extras.values()):
        raise _unreadable(failures, count, xfa, ocr_hint)
    pages = _page_texts(texts, extras)
    full, segments = _join_pages(pages)
    notes = _page_warnings(failures, count, len(pages), ocr_hint)
    notes.extend(ocr_notes)
    notes.extend(_garble_warnings([(n, t) for n, t in pages if n in texts and n not in ocr_pages]))
    metadata = {"format": "pdf", "pages": count, **metadata}
    if ocr_pages:
        metadata["ocr"] = True
        metadata["ocr_pages"] = ocr_pages
    if encrypted:
        metadata["encrypted"] = True
    if any(extras.values()):
        metadata["form_fields"] = sum(line.startswith("Form field ") for e in extras.values() for line in e)
    return Document(text=full, source=path.name, title=title, segments=segments, metadata=metadata, warnings=notes)


def _extract_pages(reader: Any, count: int, path: Path) -> tuple[dict[int, str], dict[int, list[str]], list[str], list[int]]:
    """Each page's text layer: (texts by page, form fields and comments by page, failures, pages without text)."""
    texts: dict[int, str] = {}
    extras: dict[int, list[str]] = {}
    failures: list[str] = []
    blank: list[int] = []
    for number in range(1, count + 1):
        try:
            page = reader.pages[number - 1]
            text = _compat(_clean(page.extract_text() or ""))
        except Exception as exc:
            logger.debug("%s, page %d: text extraction failed", path.name, number, exc_info=True)
            failures.append(f"page {number}: text extraction failed ({type(exc).__name__}: {exc})")
            continue
        extras[number] = page_extras(page)
        if text:
            texts[number] = text
        else:
            blank.append(number)
    return texts, extras, failures, blank


def _unreadable(failures: list[str], count: int, xfa: bool, ocr_hint: str) -> LoadError:
    """Why a PDF gave no text at all: every page failed, an XFA form, or no text layer."""
    if len(failures) == count:
        more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
        return LoadError(f"no page could be read ({failures[0]}{more}); the PDF may be damaged, re-export it")
    if xfa:
        return LoadError("no text layer: this is an XFA form (Adobe LiveCycle), whose pages only Adobe Reader "
                         "draws; open it in Adobe Reader, print it to PDF and load that")
    return LoadError(_NO_TEXT + (f"; or {ocr_hint}" if ocr_hint else ""))


def _page_texts(texts: dict[int, str], extras: dict[int, list[str]]) -> list[tuple[int, str]]:
    """``(page, text)`` of the pages with text: furniture stripped, words joined, form fields and comments after."""
    numbers = sorted(texts)
    lines = strip_furniture([texts[n].split("\n") for n in numbers], numbers)
    body = {n: "\n".join(page_lines).strip() for n, page_lines in zip(numbers, lines)}
    words, compounds = _vocabulary(list(body.values()))
    pages = []
    for number in sorted(set(body) | {n for n, e in extras.items() if e}):
        text = dehyphenate(body.get(number, ""), words, compounds)
        text = "\n\n".join(part for part in (text, "\n".join(extras.get(number, []))) if part)
        if text:
            pages.append((number, text))
    return pages


def _join_pages(pages: list[tuple[int, str]]) -> tuple[str, list[Segment]]:
    """The document's text and a segment per page, or per part of a page split at the references."""
    parts: list[str] = []
    segments: list[Segment] = []
    offset = 0
    previous = None
    for number, text, section in _reference_spans(pages):
        if parts:
            gap = "\n" if number == previous else "\n\n"  # a page split at its heading stays one block
            parts.append(gap)
            offset += len(gap)
        text = text.strip()
        parts.append(text)
        segments.append(Segment(offset, offset + len(text), page=number, section=section))
        offset += len(text)
        previous = number
    return "".join(parts), segments


def _page_warnings(failures: list[str], count: int, read: int, ocr_hint: str) -> list[str]:
    # one line per failed page, but a PDF failing on every page should not bury the other warnings
    notes = failures[:5] + ([f"{len(failures) - 5} more pages failed the same way"] if len(failures) > 5 else [])
    empty = count - read - len(failures)
    if empty and read < count / 2:
        hint = f"; {ocr_hint}" if ocr_hint else ""
        notes.append(f"{empty} of {count} pages have no text layer (scanned?); OCR them to make them searchable{hint}")
    return notes


def _read_by_ocr(reader: Any, texts: dict[int, str], blank: list[int],
                 options: dict[str, Any]) -> tuple[list[str], list[int], str]:
    """OCR the pages without a text layer into ``texts``: (warnings, pages read, install hint).

    In a document that has text elsewhere only pages with an image are read: an empty page
    between chapters has nothing to OCR.
    """
    if not blank or options.get("ocr", True) is False:
        return [], [], ""
    todo = [n for n in blank if not texts or _has_image(reader.pages[n - 1])]
    if not todo:
        return [], [], ""
    ocr, missing = _ocr_module()
    if ocr is None:
        return [], [], missing or ""
    done: list[int] = []
    confidences: list[float] = []
    notes: list[str] = []
    for number in todo:
        try:
            text, confidence = ocr.ocr_pdf_page(reader.pages[number - 1])
        except Exception as exc:
            logger.debug("page %d: OCR failed", number, exc_info=True)
            notes.append(f"page {number}: OCR failed ({type(exc).__name__}: {exc})")
            continue
        text = _compat(_clean(text or ""))
        if text:
            texts[number] = text
            done.append(number)
            confidences.append(float(confidence))
    if done:
        mean = sum(confidences) / len(confidences)
        mean = mean / 100 if mean > 1 else mean  # OCR engines give 0-1 or 0-100
        label = "page" if len(done) == 1 else "pages"
        notes.insert(0, f"{label} {_ranges(done)} read by OCR (mean confidence {mean:.0%}); check the text")
    return notes[:6], done, ""


def _garble_warnings(pages: list[tuple[int, str]]) -> list[str]:
    counts = [_garble_counts(text) for _, text in pages]
    if not counts:
        return []
    score, scored = _score(tuple(sum(column) for column in zip(*counts)))
    if scored >= _MIN_SCORED_CHARS and score > _GARBLED_DOCUMENT:
        return [_GARBLED]
    bad_pages = []
    for (number, _), page_counts in zip(pages, counts):
        page_score, page_scored = _score(page_counts)
        if page_scored >= _MIN_SCORED_CHARS and page_score > _GARBLED_PAGE:
            bad_pages.append(str(number))
    if not bad_pages:
        return []
    label = "page" if len(bad_pages) == 1 else "pages"
    shown = ", ".join(bad_pages[:10]) + (", ..." if len(bad_pages) > 10 else "")
    return [f"{label} {shown}: {_GARBLED}"]
