"""Zip-based documents (Word, PowerPoint, EPUB), checked before anything is inflated.

A ``.docx``, ``.pptx`` or ``.epub`` is a zip archive, so a shared file can be a zip bomb: a
few kilobytes that inflate to gigabytes.  :func:`open_archive` reads only the zip directory and
refuses an archive whose entries would unpack to more than a limit, or inflate at a ratio no
real document has, before any library decompresses a byte.  Python's ``zipfile`` never returns
more than an entry's declared size, so checking the declared sizes bounds what is read.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import IO

from ragbook.documents import LoadError

__all__ = ["open_archive", "read_member", "MAX_ENTRIES", "MAX_RATIO"]

# A 900-page Word handbook has ~40 entries and unpacks 12:1; a deck with 200 images ~500 entries.
MAX_ENTRIES = 10_000
# Deflate of real XML reaches ~30:1 (a table full of repeated cells); bombs reach 1000:1 and more.
MAX_RATIO = 200
_RATIO_FROM = 1 << 20  # tiny entries compress oddly and harm nobody: the ratio counts above 1 MB


def open_archive(path: str | Path | IO[bytes], kind: str, max_unpacked_mb: float) -> zipfile.ZipFile:
    """Open ``path`` as a zip after checking its directory; :class:`LoadError` says what is wrong.

    ``path`` is a file name or a binary file object (a loader may hold the bytes already);
    ``kind`` names the format in messages ("Word document"); ``max_unpacked_mb`` bounds the sum
    of the declared sizes of all entries.
    """
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise LoadError(f"not a valid {kind}: the file is not a zip archive (damaged, truncated, or an "
                        "older binary format; re-save it in the current format)") from None
    except (OSError, ValueError, EOFError) as exc:  # a damaged directory raises these too
        raise LoadError(f"not a valid {kind}: {exc}") from None
    try:
        _check(zf, kind, max_unpacked_mb)
    except BaseException:
        zf.close()
        raise
    return zf


def _check(zf: zipfile.ZipFile, kind: str, max_unpacked_mb: float) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise LoadError(f"refused {kind}: {len(infos):,} entries in its zip (at most {MAX_ENTRIES:,}); "
                        "this is not an ordinary document")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise LoadError(f"encrypted {kind}: remove the password (save an unprotected copy) and build again")
        total += info.file_size
        if info.file_size > _RATIO_FROM and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise LoadError(f"refused {kind}: the part {info.filename!r} would inflate {info.file_size:,} bytes "
                            f"from {info.compress_size:,} (more than {MAX_RATIO}:1); possibly a zip bomb")
    if total > max_unpacked_mb * 1_000_000:
        raise LoadError(f"refused {kind}: it unpacks to {total / 1e6:,.0f} MB, over the {max_unpacked_mb:g} MB limit "
                        "(max_file_mb); raise the limit if you trust this file")


def read_member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of one entry, at most ``limit`` of them (a :class:`LoadError` past it)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise LoadError(f"the archive has no part {name!r}; the file is damaged or not what its extension says") from None
    if info.file_size > limit:
        raise LoadError(f"the part {name!r} is {info.file_size:,} bytes, over the limit of {limit:,}")
    try:
        with zf.open(info) as member:
            return member.read(limit + 1)[:limit]
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise LoadError(f"damaged archive part {name!r}: {exc}") from None
