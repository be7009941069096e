"""Writing a file so that a crash never leaves half of it, hashing one, and the cache folder: used by every layer."""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["atomic_write", "file_sha256", "cache_dir"]

_BLOCK = 4 * 2**20


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None,
                 durable: bool = True) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` only when the ``with`` block ends without an error.

    It writes a temporary file beside ``path`` (same folder, so the rename is atomic on POSIX
    and Windows), fsyncs it (``durable``: the bytes are on disk before the name points at them),
    then renames it over ``path``.  An error or a kill leaves ``path`` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; what ragbook writes is as readable as any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where ragbook keeps what it can rebuild (assembled models, exported encoders):
    ``$RAGBOOK_CACHE``, else ``$XDG_CACHE_HOME/ragbook``, else ``~/.cache/ragbook``."""
    if os.environ.get("RAGBOOK_CACHE"):
        return Path(os.environ["RAGBOOK_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ragbook"
