"""Crash-safe index folders: a manifest that names one complete, verified generation of data files.

Layout::

    my-index/
      manifest.json          # the commit point: format version, settings, files, checksums
      data-000003/           # the generation the manifest names
        chunks.jsonl  vectors.npy  ids.npy  dense.faiss  bm25.*
      .lock                  # the writers' lock (holds who is writing while a save runs)

(``dense.faiss`` is written for the approximate kinds only: flat search is rebuilt from
``vectors.npy``, so the vectors are stored once.)

Writing.  A save takes the folder's lock, writes a new generation into a hidden temporary
folder, fsyncs it, renames it into place, and only then replaces ``manifest.json`` with
``os.replace`` (atomic on POSIX and Windows).  A process killed at any moment leaves either the
old manifest with its complete old generation, or the new one: never a mix.  A save that fails
(a full disk, say) removes what it wrote and leaves the previous generation as it was.

One writer at a time.  ``index_lock`` is an OS lock on ``.lock`` (``flock``, or ``msvcrt`` on
Windows): a second writer waits up to ``lock_timeout`` seconds, then stops with
:class:`IndexLockedError` naming the holder.  The OS drops the lock when its process dies, so a
killed writer never blocks the next one.  Only under the lock are leftovers of interrupted saves
and stale generations removed, so a save never deletes another save's temporary folder.

Reading needs no lock: the manifest switch is atomic.  :func:`read_manifest` type-checks every
field against ``MANIFEST_SCHEMA`` and checks that each data file is a plain name, a regular file
(not a link) inside the data folder, with the recorded size and sha256.  Whatever is wrong is an
:class:`IndexFormatError` naming the field or file, never a ``KeyError``.  Nothing is pickled:
every file is JSON, JSONL, ``.npy`` (``allow_pickle=False``) or FAISS.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import socket
import stat
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from ragbook._files import file_sha256
from ragbook.errors import IndexFormatError, IndexLockedError, SettingsError

__all__ = ["write_index_folder", "read_manifest", "index_lock", "IndexFormatError", "IndexLockedError",
           "FORMAT", "FORMAT_VERSION", "DEFAULT_LOCK_TIMEOUT"]

log = logging.getLogger(__name__)

FORMAT = "ragbook-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK_FILE = ".lock"
SHARDS = ".shards"  # a cluster build's per-file results, kept until a save holds them (ragbook.cluster)
_GENERATION = re.compile(r"^data-([0-9]{6,})$")
_TMP_DATA = ".tmp-data-"
# A data file's name: no separators, no "..", no leading dot, nothing a file system treats specially.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# The manifest grows with the number of files indexed (~1 KB each); 256 MiB is ~250,000 files.
# Anything larger is not a manifest ragbook wrote, and parsing it could exhaust memory.
MAX_MANIFEST_BYTES = 256 * 2**20

# Seconds a writer waits for another one to finish (RAGBOOK_LOCK_TIMEOUT overrides it).
DEFAULT_LOCK_TIMEOUT = 10.0


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on Windows; nothing to do there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _generations(root: Path) -> list[int]:
    out = []
    for entry in root.iterdir() if root.is_dir() else []:
        m = _GENERATION.match(entry.name)
        if m and entry.is_dir():
            out.append(int(m.group(1)))
    return sorted(out)


def _is_leftover(name: str) -> bool:
    """A file an interrupted save leaves behind: a temporary data folder or manifest."""
    return name.startswith(_TMP_DATA) or (name.startswith(f".{MANIFEST}.") and name.endswith(".tmp"))


# -- one writer at a time ------------------------------------------------------------------------


def lock_timeout(value: float | None = None) -> float:
    """Seconds to wait for the lock: ``value``, else ``$RAGBOOK_LOCK_TIMEOUT``, else the default."""
    source = "lock_timeout"
    if value is None:
        env = os.environ.get("RAGBOOK_LOCK_TIMEOUT", "").strip()
        if not env:
            return DEFAULT_LOCK_TIMEOUT
        source = "RAGBOOK_LOCK_TIMEOUT"
        try:
            value = float(env)
        except ValueError:
            raise SettingsError(f"RAGBOOK_LOCK_TIMEOUT must be a number of seconds, not {env!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise SettingsError(f"{source} must be a number of seconds >= 0, not {value!r}")
    return float(value)


class _Holding:
    """This process's hold on one index folder: threads queue on ``mutex``; the outermost holds the OS lock."""

    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_holdings: dict[str, _Holding] = {}
_holdings_guard = threading.Lock()


@contextmanager
def index_lock(root: str | os.PathLike[str], timeout: float | None = None) -> Iterator[Path]:
    """Hold the write lock of the index folder ``root`` (created if needed) for the ``with`` block.

    Re-entrant within a thread (``build`` holds it around load, update and save, and the save
    inside takes it again); other threads and processes wait up to ``timeout`` seconds and then
    get :class:`IndexLockedError`.
    """
    root = Path(root)
    wait = lock_timeout(timeout)
    _prepare_root(root)
    deadline = time.monotonic() + wait
    with _holdings_guard:
        holding = _holdings.setdefault(os.path.normcase(os.path.realpath(root)), _Holding())
    if not holding.mutex.acquire(timeout=min(wait, threading.TIMEOUT_MAX)):
        raise IndexLockedError(f"{root} is being written by another thread of this process; waited {wait:g} s. "
                               "Wait for that save to finish, then try again.")
    try:
        if holding.depth == 0:
            holding.fd = _lock_file(root, deadline, wait)
        holding.depth += 1
    except BaseException:
        holding.mutex.release()
        raise
    try:
        yield root
    finally:
        holding.depth -= 1
        if holding.depth == 0:
            fd, holding.fd = holding.fd, None
            _unlock_file(fd)
        holding.mutex.release()


def _prepare_root(root: Path) -> None:
    """Create the index folder, refusing paths that are files or folders of something else."""
    if root.exists() and not root.is_dir():
        raise IndexFormatError(f"{root} exists and is not a folder; choose another --out")
    for parent in root.parents:
        if parent.exists():
            if not parent.is_dir():
                raise IndexFormatError(f"cannot create the index folder {root}: {parent} is a file, not a folder; "
                                       "choose another --out")
            break
    if root.is_dir() and not _is_index_folder(root):
        raise IndexFormatError(
            f"{root} is a non-empty folder that is not a ragbook index; refusing to write into it. "
            "Choose a new or empty folder."
        )
    root.mkdir(parents=True, exist_ok=True)


def _is_index_folder(root: Path) -> bool:
    """True for an index, an empty folder, or one holding only what ragbook's own saves leave."""
    if (root / MANIFEST).exists() or _generations(root):
        return True
    return all(entry.name in (LOCK_FILE, SHARDS) or _is_leftover(entry.name) for entry in root.iterdir())


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    # Lock one byte far past the holder's note, so that waiters can still read the note
    # (Windows byte-range locks are mandatory: a locked range cannot be read by others).
    _WIN_LOCK_OFFSET = 1 << 30

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EDEADLOCK):
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


# errnos of file systems that cannot lock at all (some network and FUSE mounts)
_NO_LOCKS = {getattr(errno, name) for name in ("ENOLCK", "ENOSYS", "EOPNOTSUPP", "ENOTSUP") if hasattr(errno, name)}


def _lock_file(root: Path, deadline: float, wait: float) -> int:
    """Open and lock ``root/.lock``, polling until ``deadline``; write who holds it into it."""
    path = root / LOCK_FILE
    # O_NOFOLLOW: a planted link must not make us truncate the file it points to
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    if path.is_symlink():
        raise IndexFormatError(f"{path} is a symbolic link; ragbook writes its lock there. Remove it and try again.")
    try:
        fd = os.open(path, flags, 0o644)
    except IsADirectoryError:
        raise IndexFormatError(f"{path} is a folder; ragbook writes its lock there. Remove it and try again.") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IndexFormatError(f"{path} is a symbolic link; ragbook writes its lock there. "
                                   "Remove it and try again.") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device planted there
            raise IndexFormatError(f"{path} is not a regular file; ragbook writes its lock there. "
                                   "Remove it and try again.")
        delay = 0.01
        while True:
            try:
                if _try_lock(fd):
                    break
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    raise
                log.warning("cannot lock %s (%s): this file system has no locks; make sure no other process "
                            "writes this index at the same time", path, exc.strerror)
                return fd
            left = deadline - time.monotonic()
            if left <= 0:
                raise IndexLockedError(
                    f"{root} is locked by {_describe_holder(path)}; waited {wait:g} s. Wait for it to finish and "
                    "try again (or wait longer: lock_timeout=..., or the RAGBOOK_LOCK_TIMEOUT environment variable)."
                )
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.2)
    except BaseException:
        os.close(fd)
        raise
    _write_note(fd, json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "command": _command_line(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }).encode("utf-8"))
    return fd


def _unlock_file(fd: int | None) -> None:
    if fd is None:
        return
    try:
        _write_note(fd, b"")  # nobody holds it now: do not name a finished process
        _unlock(fd)
    except OSError:
        pass  # closing the descriptor releases the lock anyway
    finally:
        os.close(fd)


def _write_note(fd: int, note: bytes) -> None:
    """Best effort: on a full disk the lock still works without its note."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, note)
        os.ftruncate(fd, len(note))
    except OSError:
        pass


def _command_line() -> str:
    args = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    if args[0] == "__main__.py":  # python -m ragbook ...
        args[0] = "ragbook"
    text = " ".join(args)
    return text if len(text) <= 120 else text[:119] + "…"


def _describe_holder(path: Path) -> str:
    """``pid 1234 (ragbook index notes --out ix) since 14:02:11``, from the holder's note."""
    try:
        with open(path, "rb") as f:
            note = json.loads(f.read(4096).decode("utf-8"))
        pid, host, command, since = note["pid"], note["host"], note["command"], note["since"]
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"  # it has not written its note yet, or the note is damaged
    where = "" if host == socket.gethostname() else f" on {host}"
    return f"pid {pid}{where} ({command}) since {since}"


# -- writing -------------------------------------------------------------------------------------


def write_index_folder(root: Path, write_data: Callable[[Path], list[str]], manifest: dict[str, Any], *,
                       lock_timeout: float | None = None) -> Path:
    """Write a new generation with ``write_data(folder) -> file names`` and commit ``manifest``.

    Holds the folder's lock throughout (see :func:`index_lock`).  On any failure the partial
    generation is removed and the previous one is left as it was; an ``OSError`` without a
    file name (a full disk) gets the index folder as its file name.
    """
    root = Path(root)
    with index_lock(root, lock_timeout):
        _remove(root, _is_leftover)  # interrupted saves; no other writer runs now
        gen = max(_generations(root) + [0]) + 1
        tmp = root / f"{_TMP_DATA}{uuid.uuid4().hex[:12]}"
        final = root / f"data-{gen:06d}"
        tmp_manifest = root / f".{MANIFEST}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            tmp.mkdir()
            names = write_data(tmp)
            files = {}
            for name in names:
                if not _PLAIN_NAME.match(name):
                    raise IndexFormatError(f"refusing to record the data file name {name!r}: not a plain file name")
                path = tmp / name
                _fsync_path(path)
                files[name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            _fsync_path(tmp)
            os.rename(tmp, final)
            _fsync_path(root)
            document = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "data": final.name,
                        "data_files": files}
            # a file path that is not valid UTF-8 holds lone surrogates (os.fsdecode): they are
            # written as \udcXX escapes, which json.loads reads back as the very same path
            text = json.dumps(document, indent=2, ensure_ascii=False)
            text = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)
            with open(tmp_manifest, "w", encoding="utf-8") as f:
                f.write(text)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_manifest, root / MANIFEST)  # the commit point
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if _manifest_data(root) != final.name:  # not committed: the previous generation stays current
                shutil.rmtree(final, ignore_errors=True)
            tmp_manifest.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.filename is None and exc.errno:
                raise OSError(exc.errno, f"{exc.strerror} (while saving the index)", str(root)) from exc
            raise
        _fsync_path(root)
        # The switch is done; older generations are garbage now.
        _remove(root, lambda name: bool(_GENERATION.match(name)) and name != final.name)
    return final


def _manifest_data(root: Path) -> str | None:
    """The generation the manifest on disk names (None if it cannot be read)."""
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8")).get("data")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None
    return data if isinstance(data, str) else None


def manifest_version(root: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """Which save the manifest at ``root`` is (None if there is none), without parsing it.

    Every save replaces the manifest with a new file, so its inode, size and time change:
    a cheap way to tell whether another process saved since, even for a 100 MB manifest.
    """
    try:
        st = os.stat(Path(root) / MANIFEST)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _remove(root: Path, doomed: Callable[[str], bool]) -> None:
    for entry in root.iterdir():
        if not doomed(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


# -- reading -------------------------------------------------------------------------------------


def read_manifest(root: Path, *, verify: bool = True,
                  data_files: Collection[str] | None = None,
                  optional: Collection[str] = ()) -> tuple[dict[str, Any], Path]:
    """The manifest and data folder of the index at ``root``, checked for format and damage.

    ``data_files``: the exact set of files the data folder must hold (None: any plain names), less any of
    ``optional`` that it does not list (a flat index has no dense.faiss: its vectors.npy is the one copy).
    With ``verify`` each file's sha256 is checked too, not only its size.  Files in the data
    folder that the manifest does not list are ignored (never read), but links are refused.
    """
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        hint = " (it is a .ragbook assistant file; use ragbook.load)" if root.suffix == ".ragbook" else ""
        raise IndexFormatError(f"{root} is not a ragbook index: no {MANIFEST} found{hint}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise IndexFormatError(f"{path} is {path.stat().st_size / 2**20:.0f} MB, larger than any index manifest "
                               f"({MAX_MANIFEST_BYTES // 2**20} MB at most); the index is damaged, rebuild it")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise IndexFormatError(f"{path} is not valid JSON ({_short(exc)}); the index is damaged, rebuild it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path} is not a ragbook index manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise IndexFormatError(
            f"{root} uses index format version {_short(version)}, but this ragbook reads version {FORMAT_VERSION}; "
            f"rebuild the index with `ragbook index ... --out {root}` or use the ragbook version that wrote it "
            f"({_short(manifest.get('ragbook_version', 'unknown'))})"
        )
    try:
        validate(manifest, MANIFEST_SCHEMA)
    except SchemaError as exc:
        raise IndexFormatError(f"{path}: {exc}; the index is damaged or was edited by hand, rebuild it") from None

    data = root / manifest["data"]  # the schema allows only data-NNNNNN here: no separators
    if data.is_symlink() or not data.is_dir():
        raise IndexFormatError(f"{root}: the data folder named in the manifest is missing; rebuild the index")
    listed = manifest["data_files"]
    for name in listed:
        if not _PLAIN_NAME.match(name):
            raise IndexFormatError(f"{root}: the manifest lists the data file {name!r}, which is not a plain file "
                                   "name inside the data folder; refusing to read it")
    if data_files is not None:
        missing = sorted(set(data_files) - set(listed) - set(optional))
        extra = sorted(set(listed) - set(data_files))
        if missing or extra:
            what = "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                             + ([f"unexpected {', '.join(extra)}"] if extra else []))
            raise IndexFormatError(f"{root}: the manifest's data files are not the ones an index has ({what}); "
                                   "rebuild the index")
    try:
        _check_data_files(root, data, listed, verify)
    except FileNotFoundError as exc:  # removed while being read: a writer replaced this generation
        raise IndexFormatError(f"{root}: data file {Path(exc.filename or '?').name} is missing; "
                               "rebuild the index") from None
    return manifest, data


def _check_data_files(root: Path, data: Path, listed: dict[str, Any], verify: bool) -> None:
    with os.scandir(data) as entries:
        links = sorted(e.name for e in entries if e.is_symlink())
    if links:
        raise IndexFormatError(f"{root}: the data folder holds symbolic links ({', '.join(links)}); an index never "
                               "does. Refusing to read it; rebuild the index")
    for name, meta in sorted(listed.items()):
        file = data / name
        st = file.lstat()
        if not stat.S_ISREG(st.st_mode):
            raise IndexFormatError(f"{root}: data file {name} is not a regular file; rebuild the index")
        if st.st_size != meta["bytes"] or (verify and file_sha256(file) != meta["sha256"]):
            raise IndexFormatError(f"{root}: data file {name} is damaged (size or checksum differs); rebuild the index")


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- a small schema check: every field read from a saved file, typed in one place -------------------


class SchemaError(Exception):
    """A value does not match its schema; the message names the field (``embedding.dimension``)."""


# A check takes a value and its path (a tuple of keys and indexes, formatted only on failure:
# loading checks every field of every passage, so the happy path must stay cheap).
FieldPath = tuple[Any, ...]
Check = Callable[[Any, FieldPath], None]


def validate(value: Any, schema: Check, where: str = "") -> None:
    """Raise :class:`SchemaError` naming the first field of ``value`` that does not match ``schema``."""
    try:
        schema(value, (where,) if where else ())
    except RecursionError:
        raise SchemaError(f"{where or 'the document'} is nested too deeply") from None


def _name(path: FieldPath) -> str:
    """``("files", "a.md", "size")`` -> ``files["a.md"].size``; ``("roots", 0)`` -> ``roots[0]``."""
    out = ""
    for i, key in enumerate(path):
        if isinstance(key, int):
            out += f"[{key}]"
        elif isinstance(key, _Key):
            out += f"[{_short(json.dumps(key.key, ensure_ascii=False), 60)}]"
        else:
            out += f".{key}" if i else key
    return out or "the document"


class _Key:
    """A key of a map (a file name, a source): shown quoted, unlike a field name."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}


def _fail(path: FieldPath, expected: str, value: Any) -> None:
    kind = _JSON_TYPES.get(type(value), "null" if value is None else type(value).__name__)
    shown = f"{_short(json.dumps(value, ensure_ascii=False), 40)} ({kind})" if kind in ("integer", "number", "string") else kind
    raise SchemaError(f"{_name(path)} must be {expected}, not {shown}")


def _range(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    return f" >= {minimum}" if minimum is not None else f" <= {maximum}" if maximum is not None else ""


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    expected = "an integer" + _range(minimum, maximum)

    def check(value: Any, path: FieldPath) -> None:
        if (type(value) is not int or (minimum is not None and value < minimum)
                or (maximum is not None and value > maximum)):
            _fail(path, expected, value)
    return check


def number(minimum: float | None = None, maximum: float | None = None) -> Check:
    expected = "a finite number" + _range(minimum, maximum)

    def check(value: Any, path: FieldPath) -> None:
        if (type(value) not in (int, float) or not math.isfinite(value)
                or (minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
            _fail(path, expected, value)
    return check


def string(pattern: str | None = None, *, choices: Collection[str] | None = None, max_length: int = 100_000) -> Check:
    regex = re.compile(pattern) if pattern else None
    expected = (f"one of {', '.join(map(repr, choices))}" if choices else
                f"a string matching {pattern}" if pattern else "a string")

    def check(value: Any, path: FieldPath) -> None:
        if (type(value) is not str or len(value) > max_length or (regex is not None and not regex.fullmatch(value))
                or (choices is not None and value not in choices)):
            _fail(path, expected, value)
    return check


def boolean() -> Check:
    def check(value: Any, path: FieldPath) -> None:
        if type(value) is not bool:
            _fail(path, "true or false", value)
    return check


def anything() -> Check:
    """Any JSON value (free-form metadata)."""
    def check(value: Any, path: FieldPath) -> None:
        pass
    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, path: FieldPath) -> None:
        if value is not None:
            inner(value, path)
    return check


def list_of(item: Check, *, min_length: int = 0, max_length: int | None = None) -> Check:
    def check(value: Any, path: FieldPath) -> None:
        if type(value) is not list:
            _fail(path, "a list", value)
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            raise SchemaError(f"{_name(path)} must have {min_length} to {max_length or 'any number of'} items, "
                              f"not {len(value)}")
        for i, v in enumerate(value):
            item(v, path + (i,))
    return check


def map_of(item: Check) -> Check:
    """A JSON object with any keys, each value matching ``item``."""
    def check(value: Any, path: FieldPath) -> None:
        if type(value) is not dict:
            _fail(path, "an object", value)
        for k, v in value.items():
            item(v, path + (_Key(k),))
    return check


def record(fields: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    """A JSON object with the required ``fields`` (and maybe ``optional`` ones); other keys are ignored."""
    def check(value: Any, path: FieldPath) -> None:
        if type(value) is not dict:
            _fail(path, "an object", value)
        for key, field_check in fields.items():
            if key not in value:
                raise SchemaError(f"{_name(path + (key,))} is missing")
            field_check(value[key], path + (key,))
        for key, field_check in (optional or {}).items():
            if key in value:
                field_check(value[key], path + (key,))
    return check


# What Index.save writes and Index.load (and ``ragbook info``) read.  The vector kinds are the
# ones ragbook.vectors knows; they are repeated here so that reading a manifest needs no numpy.
_KINDS = ("auto", "flat", "hnsw", "ivf", "pq", "hnsw-pq", "ivf-pq")
_SHA256 = string(r"[0-9a-f]{64}")
_count = integer(0)
_strings = list_of(string())

BM25_SETTINGS = record({"k1": number(0, 100), "b": number(0, 1), "stemmer": nullable(string(r"[a-z_]{1,40}")),
                        "stopwords": boolean()})

_FILE_RECORD = record({
    "path": string(), "root": string(), "sha256": string(r"([0-9a-f]{64})?"), "size": _count,
    "mtime_ns": _count, "format": string(), "chunks": _count, "warnings": _strings,
    "documents": map_of(record({"title": string(), "metadata": map_of(anything())})),
})

_BUILD_REPORT = record({
    "added": _strings, "updated": _strings, "removed": _strings, "unchanged": _count, "embedded": _count,
    "reused": _count, "chunks_added": _count, "chunks_removed": _count,
    "problems": list_of(record({"source": string(), "reason": string(), "severity": string()})),
    "seconds": map_of(number(0)),
})

MANIFEST_SCHEMA = record({
    "format": string(choices=[FORMAT]),
    "format_version": integer(FORMAT_VERSION, FORMAT_VERSION),
    "ragbook_version": string(max_length=100),
    "saved": string(max_length=100),
    "data": string(_GENERATION.pattern[1:-1]),
    "data_files": map_of(record({"bytes": _count, "sha256": _SHA256})),
    "embedding": record({
        "model": string(r".+", max_length=4096), "dimension": integer(1, 65_536),
        "fingerprint": list_of(number(), min_length=1, max_length=4096), "normalize": boolean(),
        "max_seq_length": nullable(integer(1)),
    }, optional={"encoder": string(max_length=100)}),
    "chunking": record({"chunk_size": integer(1), "overlap": integer(0), "max_tokens": nullable(integer(1))},
                       optional={"context": boolean()}),
    "vectors": record({
        "kind": string(choices=_KINDS), "in_use": string(choices=_KINDS[1:]), "hnsw_m": integer(2, 1024),
        "ef_construction": integer(1), "ef_search": integer(1), "nprobe": nullable(integer(1)),
        "threshold": _count, "pq_m": integer(1, 65_536), "refine": integer(1, 10_000),
    }, optional={"dtype": string(choices=["float32", "float16"]), "nlist": integer(1), "nprobe_in_use": integer(1)}),
    "bm25": BM25_SETTINGS,
    "counts": record({"files": _count, "documents": _count, "chunks": _count, "unique_chunks": _count,
                      "index_type": string()}),
    "roots": _strings,
    "files": map_of(_FILE_RECORD),
    "last_build": nullable(_BUILD_REPORT),
})
