"""Writing a file so that a crash never leaves half of it, hashing one (and remembering the hash until the
file changes), and the cache folder: used by every layer."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

__all__ = ["atomic_write", "file_sha256", "cache_dir", "cached_sha256", "remembered_sha256", "remember_sha256",
           "release_pages"]

log = logging.getLogger(__name__)

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


# -- hashes remembered until the file changes (a 1 GB model, an exported encoder) -----------------


def _verified_db() -> Path:
    return cache_dir() / "verified.json"


def _read_db() -> dict[str, Any]:
    try:
        return json.loads(_verified_db().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _key(path: Path) -> tuple[str, dict[str, int]]:
    st = path.stat()
    return str(path.resolve()), {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cached_sha256(path: str | os.PathLike[str]) -> str | None:
    """The file's sha256 if it was hashed since it last changed (a ``stat``, no reading)."""
    try:
        key, stamp = _key(Path(path))
    except OSError:
        return None
    entry = _read_db().get(key)
    if entry and entry.get("size") == stamp["size"] and entry.get("mtime_ns") == stamp["mtime_ns"]:
        return entry.get("sha256")
    return None


def remembered_sha256(path: str | os.PathLike[str], hash_file: Callable[[Path], str] = file_sha256) -> str:
    """The file's sha256, from the cache when it has not changed, else hashed (by ``hash_file``) and remembered."""
    known = cached_sha256(path)
    if known:
        return known
    path = Path(path)
    log.info("hashing %s", path)
    digest = hash_file(path)
    remember_sha256(path, digest)
    return digest


def remember_sha256(path: str | os.PathLike[str], digest: str) -> None:
    """Record ``digest`` as the sha256 of ``path`` as it is now (its size and modification time)."""
    try:
        key, stamp = _key(Path(path))
        db = {k: v for k, v in _read_db().items() if os.path.exists(k)}  # forget deleted files
        db[key] = {**stamp, "sha256": digest}
        with atomic_write(_verified_db(), "w", encoding="utf-8", durable=False) as f:  # a cache: losing it costs a re-hash
            json.dump(db, f, indent=1, sort_keys=True)
    except OSError as exc:  # a read-only cache only costs a re-hash next time
        log.warning("cannot record the hash of %s in %s: %s", path, _verified_db(), exc)


def release_pages(array: Any, *, random_access: bool = False) -> None:
    """Let go of the pages of a memory-mapped array that a whole-array check has just read.

    The file stays mapped and the pages stay in the OS's cache: the next access reads them back
    without I/O.  Only this process's resident size drops, to what its searches touch.  With
    ``random_access`` the OS is also told that reads will be scattered rows: no read-ahead, and
    no mapping of neighbouring pages on each fault (which made 400 searches of a 200k-vector
    index map the whole file).  Arrays that are not mapped, and systems without ``madvise``,
    are left as they are.
    """
    import mmap

    mapped = getattr(array, "_mmap", None)
    if mapped is None or not hasattr(mapped, "madvise"):
        return
    advice = [getattr(mmap, "MADV_DONTNEED", None)] + ([getattr(mmap, "MADV_RANDOM", None)] if random_access else [])
    for flag in filter(None, advice):
        try:
            mapped.madvise(flag)
        except (OSError, ValueError):  # a closed or odd mapping: keeping the pages is harmless
            pass
