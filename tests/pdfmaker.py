"""A tiny PDF writer for tests: real, valid PDFs without a PDF library or binary fixtures."""

from __future__ import annotations

import os
from pathlib import Path


def _escape(line: str) -> bytes:
    raw = line.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _content(text: str) -> bytes:
    """A content stream drawing ``text`` in 12 pt Helvetica, one text line per ``\\n``."""
    ops = [b"BT /F1 12 Tf 14 TL 72 720 Td"]
    for line in text.split("\n") if text else []:
        ops.append(b"(" + _escape(line) + b") Tj T*")
    ops.append(b"ET")
    return b"\n".join(ops)


def make_pdf(path: str | os.PathLike[str], pages: list[str], encrypt_password: str | None = None,
             title: str | None = None) -> Path:
    """Write a PDF with one page per item of ``pages`` (an empty string gives a page without text).

    With ``encrypt_password`` the file is AES-256 encrypted by pypdf with that user password.
    """
    path = Path(path)
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    kids = []
    for i, text in enumerate(pages):
        page, content = 4 + 2 * i, 5 + 2 * i
        kids.append(f"{page} 0 R")
        stream = _content(text)
        objects[page] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                         f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>").encode()
        objects[content] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    objects[2] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()
    info = None
    if title is not None:
        info = max(objects) + 1
        objects[info] = b"<< /Title (" + _escape(title) + b") >>"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number]
    trailer = f"<< /Size {size} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    path.write_bytes(bytes(out))

    if encrypt_password is not None:
        from pypdf import PdfWriter

        writer = PdfWriter(clone_from=path)
        writer.encrypt(user_password=encrypt_password, owner_password=encrypt_password + "-owner",
                       algorithm="AES-256")
        with open(path, "wb") as handle:
            writer.write(handle)
    return path
