"""Opening a user's files safely, and showing their names safely.

A folder may hold anything: a named pipe (reading it waits for a writer, forever), a link to
``/dev/zero`` (endless), a socket, a file another program is still writing, a name that is
not valid UTF-8 or that holds terminal escape sequences.  Every read of a user's file goes
through :func:`open_regular`, which opens without blocking, checks the *opened* descriptor
(so a file swapped for a pipe between a check and the open cannot hang anything), and never
reads past the size limit even if the file grows meanwhile.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from contextlib import contextmanager
from typing import BinaryIO, Iterator, Union

from ragbook.errors import LoadError

__all__ = ["DEFAULT_MAX_FILE_MB", "max_bytes", "special_file_reason", "check_regular", "open_regular",
           "read_limited", "digest_limited", "unicode_name", "printable", "without_surrogates"]

DEFAULT_MAX_FILE_MB = 200

PathArg = Union[str, bytes, "os.PathLike[str]"]

# O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; it changes
# nothing for regular files.  O_NOCTTY keeps a terminal device from becoming ours.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_HASH_BLOCK = 1 << 20


def max_bytes(max_file_mb: float | None) -> int | None:
    """The byte limit for ``max_file_mb`` (None: no limit)."""
    return None if max_file_mb is None else int(max_file_mb * 2**20)


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.1f} KB"


def too_large_reason(size: int, max_file_mb: float | None) -> str:
    return (f"file too large ({_size(size)}, the limit is max_file_mb={max_file_mb}); "
            "pass a larger max_file_mb to load it")


def special_file_reason(mode: int, path: PathArg | None = None) -> str | None:
    """Why a file of this mode is not read (a folder, a pipe, a device...), or None for a regular file.

    With ``path``, a symbolic link says where it points (``a symbolic link to a character
    device (/dev/zero)``).
    """
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "this is a folder, not a file; pass it to ragbook.load() to read the files inside"
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a special file")
    if path is not None and os.path.islink(path):
        kind = f"a symbolic link to {kind} ({printable(os.fsdecode(os.path.realpath(path)))})"
    return f"{kind}, not a regular file; ragbook reads only regular files: copy the content into a file"


def check_regular(path: PathArg, max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> os.stat_result:
    """``os.stat`` of ``path`` (following links) if it is a regular file within the size limit.

    Raises :class:`LoadError` saying why not.  Nothing is opened: a pipe or device is refused
    before anything could block on it.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        missing = "broken symbolic link; fix or remove it" if os.path.islink(path) else "file not found; check the path"
        raise LoadError(missing) from None
    except PermissionError:
        raise LoadError("permission denied; check the file's permissions") from None
    except OSError as exc:
        raise LoadError(f"cannot access the file ({exc.strerror or exc}); check the path") from None
    reason = special_file_reason(info.st_mode, path)
    if reason:
        raise LoadError(reason)
    limit = max_bytes(max_file_mb)
    if limit is not None and info.st_size > limit:
        raise LoadError(too_large_reason(info.st_size, max_file_mb))
    return info


@contextmanager
def open_regular(path: PathArg) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """Open ``path`` for reading if it is a regular file: ``(binary file, its fstat)``.

    The check is made on the opened descriptor, so it holds for what is actually read, even if
    the path was swapped for a pipe or a link to a device after an earlier ``os.stat``.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise LoadError("file not found (it disappeared while being indexed?); check the path") from None
    except PermissionError:
        raise LoadError("permission denied; check the file's permissions") from None
    except OSError as exc:  # a socket cannot be opened at all (ENXIO)
        raise LoadError(f"cannot open the file ({exc.strerror or exc}); ragbook reads only regular files") from None
    try:
        info = os.fstat(fd)
        reason = special_file_reason(info.st_mode, path)
        if reason:
            raise LoadError(reason)
        # unbuffered, and still non-blocking: a "regular" file that would block anyway (a
        # kernel interface such as /proc/kmsg) fails with EAGAIN instead of hanging
        stream = io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    with stream:
        yield stream, info


def _grew(max_file_mb: float | None) -> LoadError:
    return LoadError(f"the file grew past the limit (max_file_mb={max_file_mb}) while being read; "
                     "wait until it is complete, or pass a larger max_file_mb")


def _read(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes (fewer only at the end of the file)."""
    try:
        data = stream.read(size)
        while data is not None and 0 < len(data) < size:  # short reads: rare, only past 2 GB
            more = stream.read(size - len(data))
            if not more:
                break
            data += more
    except BlockingIOError:
        data = None
    if data is None:
        raise LoadError("reading this file would wait forever (it is a kernel or device interface); skipped")
    return data


def read_limited(path: PathArg, max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> bytes:
    """All bytes of a regular file, refusing (without reading) one larger than ``max_file_mb``.

    Never reads more than the limit plus one byte, even if the file grows while it is read.
    """
    limit = max_bytes(max_file_mb)
    with open_regular(path) as (stream, info):
        if limit is not None and info.st_size > limit:
            raise LoadError(too_large_reason(info.st_size, max_file_mb))
        # one byte more than the size fstat reported tells whether the file is still growing;
        # a read of a known size lands in one buffer, without intermediate copies
        data = _read(stream, info.st_size + 1)
        if len(data) <= info.st_size:
            return data
        if limit is None:
            while more := _read(stream, _HASH_BLOCK):
                data += more
            return data
        data += _read(stream, limit + 1 - len(data))
        if len(data) > limit:
            raise _grew(max_file_mb)
        return data


def digest_limited(path: PathArg, max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> str:
    """SHA-256 of a regular file's bytes, read in blocks; the same refusals as :func:`read_limited`."""
    limit = max_bytes(max_file_mb)
    h = hashlib.sha256()
    with open_regular(path) as (stream, info):
        if limit is not None and info.st_size > limit:
            raise LoadError(too_large_reason(info.st_size, max_file_mb))
        total = 0
        while block := _read(stream, _HASH_BLOCK):
            total += len(block)
            if limit is not None and total > limit:
                raise _grew(max_file_mb)
            h.update(block)
    return h.hexdigest()


# --- names ---------------------------------------------------------------------------------

# Lone surrogates are how Python spells the bytes of a file name that is not valid UTF-8
# (os.fsdecode's "surrogateescape"): they cannot be written as UTF-8, so JSON, a terminal or
# a web page would fail on them.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters a terminal obeys or that reorder what is shown: C0/C1 controls (newlines too: a
# problem is one line), DEL, bidirectional overrides, line and paragraph separators.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name: show the byte itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def unicode_name(name: str) -> str:
    """``name`` as valid Unicode: undecodable bytes (lone surrogates) shown as ``\\xe9``, nothing else changed."""
    return _SURROGATE.sub(lambda m: _escape(m.group()), name)


def printable(text: str) -> str:
    """``text`` as one line of valid Unicode with nothing a terminal obeys: how names are shown and cited.

    Undecodable bytes of a file name appear as ``\\xe9``, control characters as ``\\x1b`` or
    ``\\x0a``; ordinary text is returned unchanged.
    """
    return _UNPRINTABLE.sub(lambda m: _escape(m.group()), unicode_name(text))


def without_surrogates(text: str) -> tuple[str, int]:
    """``text`` with lone surrogates (which no UTF-8 file can hold) replaced by U+FFFD, and how many."""
    if text.isascii() or not _SURROGATE.search(text):
        return text, 0
    return _SURROGATE.subn("\ufffd", text)
