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
from pathlib import Path
from typing import Any, Iterator

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited

__all__ = ["load_pdf", "garble_score"]

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


# Producers often store the file name as /Title ("Binder1.pdf", "Microsoft Word - notes.docx").
_FILE_NAME_TITLE = re.compile(r"\.(pdf|docx?|rtf|odt|txt|tex|dvi|ps|indd|pptx?|xlsx?|html?)$", re.I)
_OFFICE_PREFIX = re.compile(r"^Microsoft (Word|PowerPoint|Excel) - ")


def _title(reader: Any) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a broken /Info dictionary should not cost the text
        return ""
    title = _OFFICE_PREFIX.sub("", " ".join(str(title or "").split()))
    return "" if _FILE_NAME_TITLE.search(title) else title


def load_pdf(path: Path, **options: Any) -> Document:
    """A PDF's text layer, one segment per page that has text (``page`` is 1-based)."""
    with _quiet_pypdf():
        reader, count = _open(path, options)
        pages: list[tuple[int, str]] = []
        failures: list[str] = []
        for number in range(1, count + 1):
            try:
                text = _clean(reader.pages[number - 1].extract_text() or "")
            except Exception as exc:
                logger.debug("%s, page %d: text extraction failed", path.name, number, exc_info=True)
                failures.append(f"page {number}: text extraction failed ({type(exc).__name__}: {exc})")
                continue
            if text:
                pages.append((number, text))
        title = _title(reader)
    if not pages:
        if len(failures) == count:
            more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
            raise LoadError(f"no page could be read ({failures[0]}{more}); the PDF may be damaged, re-export it")
        raise LoadError(_NO_TEXT)

    parts: list[str] = []
    segments: list[Segment] = []
    offset = 0
    for number, text in pages:
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(text)
        segments.append(Segment(offset, offset + len(text), page=number))
        offset += len(text)
    full = "".join(parts)

    # one line per failed page, but a PDF failing on every page should not bury the other warnings
    notes = failures[:5] + ([f"{len(failures) - 5} more pages failed the same way"] if len(failures) > 5 else [])
    empty = count - len(pages) - len(failures)
    if empty and len(pages) < count / 2:
        notes.append(f"{empty} of {count} pages have no text layer (scanned?); OCR them to make them searchable")
    notes.extend(_garble_warnings(pages))
    metadata: dict[str, Any] = {"format": "pdf", "pages": count}
    if reader.is_encrypted:
        metadata["encrypted"] = True
    return Document(text=full, source=path.name, title=title or path.stem, segments=segments,
                    metadata=metadata, warnings=notes)


def _garble_warnings(pages: list[tuple[int, str]]) -> list[str]:
    counts = [_garble_counts(text) for _, text in pages]
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
