"""What Word (``.docx``) and PowerPoint (``.pptx``) files share: a zip package of XML parts.

The archive is checked by :func:`~ragbook.loaders.archive.open_archive` before any library
inflates a byte, and the libraries parse with entity resolution off (libxml2 also refuses entity
amplification and XML nested deeper than 256 levels), so a zip bomb or a "billion laughs" part
is refused with a reason.  Macros (``vbaProject.bin``) and embedded objects are never opened,
let alone run.  The formats themselves: :mod:`ragbook.loaders.word`, :mod:`ragbook.loaders.powerpoint`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ragbook.documents import LoadError
from ragbook.loaders.archive import open_archive
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited

__all__ = ["UNPACKED_PER_FILE_MB", "read_package", "needs", "library_error", "core_properties", "one_line", "W_NS", "MATH_NS",
           "MC_NS", "DRAWING_NS", "WORD_TYPES"]

# An archive may unpack to this many times max_file_mb (the 818k-character handbook unpacks
# 4:1; the ratio check in ragbook.loaders.archive catches bombs that stay under this).
UNPACKED_PER_FILE_MB = 4

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Compound File Binary: old .doc/.ppt, or an encrypted docx/pptx
_OTHER_FORMATS = {b"{\\rtf": "an RTF document", b"%PDF": "a PDF", b"<?xml": "a flat XML file",
                  b"PK\x03\x04": "", b"PK\x05\x06": ""}

W_NS = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MATH_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
MC_NS = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
DRAWING_NS = "{http://schemas.openxmlformats.org/drawingml/2006/main}"

# Values the libraries' own templates put in core properties: not the user's title or author.
_TOOL_DEFAULTS = {"python-docx", "python-pptx", "powerpoint presentation", "word document", "presentation1"}

WORD_TYPES = {  # main-part content types that are Word documents, macro-enabled and templates too
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
}


# --- the package: shared by both formats ----------------------------------------------------

def read_package(path: Path, options: dict[str, Any], kind: str, binary: str, modern: str) -> tuple[io.BytesIO, list[str]]:
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


def needs(module: str, package: str, kind: str) -> Any:
    """Import the library that reads ``kind``, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise LoadError(f"reading a {kind} needs the '{package}' package: pip install {package}") from None


def library_error(exc: Exception, kind: str) -> LoadError:
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


def core_properties(package: Any, reltype: str) -> dict[str, Any]:
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


def one_line(text: str) -> str:
    return " ".join(text.split())
