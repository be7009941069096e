"""Crash-safe index folders: a manifest that names one complete generation of data files.

Layout::

    my-index/
      manifest.json          # the commit point: format version, settings, files, checksums
      data-000003/           # the generation the manifest names
        chunks.jsonl  vectors.npy  ids.npy  dense.faiss  bm25.*

A save writes a new generation into a hidden temporary folder, fsyncs it, renames it into
place, and only then replaces ``manifest.json`` with ``os.replace`` (atomic on POSIX and
Windows).  A process killed at any moment leaves either the old manifest with its complete old
generation, or the new one: never a mix.  Stale generations are removed after the switch.
Nothing is pickled; every file is JSON, JSONL, ``.npy`` (``allow_pickle=False``) or FAISS.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

__all__ = ["write_index_folder", "read_manifest", "IndexFormatError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "ragbook-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_GENERATION = re.compile(r"^data-(\d{6,})$")


class IndexFormatError(ValueError):
    """A folder is not a readable ragbook index (missing, damaged, or from another version)."""


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def write_index_folder(root: Path, write_data: Callable[[Path], list[str]], manifest: dict[str, Any]) -> Path:
    """Write a new generation with ``write_data(folder) -> file names`` and commit ``manifest``."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise IndexFormatError(f"{root} exists and is not a folder; choose another --out")
    if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).exists() and not _generations(root):
        raise IndexFormatError(
            f"{root} is a non-empty folder that is not a ragbook index; refusing to write into it. "
            "Choose a new or empty folder."
        )
    root.mkdir(parents=True, exist_ok=True)
    gen = max(_generations(root) + [0]) + 1
    tmp = root / f".tmp-data-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        names = write_data(tmp)
        files = {}
        for name in names:
            path = tmp / name
            _fsync_path(path)
            files[name] = {"bytes": path.stat().st_size, "sha256": file_digest(path)}
        _fsync_path(tmp)
        final = root / f"data-{gen:06d}"
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(root)

    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "data": final.name, "data_files": files}
    tmp_manifest = root / f".{MANIFEST}.{uuid.uuid4().hex[:12]}.tmp"
    with open(tmp_manifest, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_manifest, root / MANIFEST)
    _fsync_path(root)

    # The switch is done; anything else is garbage from older saves or interrupted ones.
    for entry in root.iterdir():
        stale_gen = _GENERATION.match(entry.name) and entry.name != final.name
        stale_tmp = entry.name.startswith(".tmp-data-") or (entry.name.startswith(f".{MANIFEST}.") and entry.name.endswith(".tmp"))
        if stale_gen or stale_tmp:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return final


def read_manifest(root: Path, *, verify: bool = True) -> tuple[dict[str, Any], Path]:
    """The manifest and data folder of the index at ``root``, checked for format and damage."""
    root = Path(root)
    path = root / MANIFEST
    if not path.exists():
        hint = " (it is a .ragbook assistant file; use ragbook.load)" if root.suffix == ".ragbook" else ""
        raise IndexFormatError(f"{root} is not a ragbook index: no {MANIFEST} found{hint}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IndexFormatError(f"{path} is not valid JSON ({exc}); the index is damaged, rebuild it") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path} is not a ragbook index manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{root} uses index format version {version}, but this ragbook reads version {FORMAT_VERSION}; "
            f"rebuild the index with `ragbook index ... --out {root}` or use the ragbook version that wrote it "
            f"({manifest.get('ragbook_version', 'unknown')})"
        )
    data = root / str(manifest.get("data", ""))
    if not manifest.get("data") or not data.is_dir() or data.parent != root:
        raise IndexFormatError(f"{root}: the data folder named in the manifest is missing; rebuild the index")
    for name, meta in manifest.get("data_files", {}).items():
        file = data / name
        if file.parent != data or not file.is_file():
            raise IndexFormatError(f"{root}: data file {name} is missing; rebuild the index")
        if file.stat().st_size != meta["bytes"] or (verify and file_digest(file) != meta["sha256"]):
            raise IndexFormatError(f"{root}: data file {name} is damaged (size or checksum differs); rebuild the index")
    return manifest, data
