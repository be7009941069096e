"""One-file assistants: a ``.ragbook`` zip of JSON, JSONL, FAISS and ``.npy`` files.

Layout inside the zip::

    assistant.json            # format, version, name, template, retrieval and model settings
    index/manifest.json       # the index folder, exactly as Index.save writes it
    index/data-000001/...

Models are referenced (preset name or path, with sha256), never embedded.  Loading never
unpickles; every entry name is checked before anything is extracted, so a tampered file
cannot write outside its folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
import weakref
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from ragbook import __version__

__all__ = ["save_assistant", "load_assistant", "BundleError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "ragbook-assistant"
FORMAT_VERSION = 1
SETTINGS = "assistant.json"
_STORED = (".npy", ".faiss")  # vectors barely compress; storing them keeps loading fast
_MAX_UNPACKED = 64 * 2**30  # refuse zip bombs


class BundleError(ValueError):
    """A ``.ragbook`` file that cannot be opened: damaged, tampered with, or from another version."""


def save_assistant(assistant: Any, path: str | os.PathLike[str]) -> str:
    """Write ``assistant`` to ``path`` atomically (a crash leaves any previous file intact)."""
    target = Path(path)
    if target.suffix != ".ragbook":
        target = target.with_name(target.name + ".ragbook")
    settings = assistant.settings()
    index = assistant.index
    previous_path = index.path
    with tempfile.TemporaryDirectory(prefix="ragbook-save-") as tmp:
        folder = Path(tmp) / "index"
        try:
            index.save(folder)
        finally:
            index.path = previous_path
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "ragbook_version": __version__, **settings,
               "index": "index/"}
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with zipfile.ZipFile(partial, "w") as zf:
                zf.writestr(SETTINGS, json.dumps(doc, indent=2, ensure_ascii=False), compress_type=zipfile.ZIP_DEFLATED)
                for file in sorted(folder.rglob("*")):
                    if file.is_file():
                        name = "index/" + file.relative_to(folder).as_posix()
                        kind = zipfile.ZIP_STORED if file.suffix in _STORED else zipfile.ZIP_DEFLATED
                        zf.write(file, name, compress_type=kind)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return str(target)


def _safe_names(zf: zipfile.ZipFile) -> list[str]:
    names = []
    total = 0
    for info in zf.infolist():
        name = info.filename
        pure = PurePosixPath(name)
        if (name.startswith(("/", "\\")) or "\\" in name or ":" in name or ".." in pure.parts
                or not (name == SETTINGS or name.startswith("index/"))):
            raise BundleError(f"refusing to open: the entry {name!r} would be written outside the assistant's folder "
                              "(the file was tampered with, or is not a ragbook assistant)")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise BundleError(f"refusing to open: the entry {name!r} is a symbolic link")
        total += info.file_size
        names.append(name)
    if total > _MAX_UNPACKED:
        raise BundleError("refusing to open: the file claims to unpack to more than 64 GB")
    return names


def load_assistant(path: str | os.PathLike[str], **overrides: Any) -> Any:
    """Open a ``.ragbook`` file as a working :class:`~ragbook.assistant.Assistant`.

    ``overrides`` replace saved settings, e.g. ``llm="extractive"`` or ``k=8``; ``model=``
    says where to find the embedding model if it is not where it was.
    """
    from ragbook.assistant import Assistant
    from ragbook.index import Index
    from ragbook.storage import IndexFormatError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such assistant file: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{path} is not a ragbook assistant (not a valid zip file: {exc}); was it cut short while copying?") from None
    with zf:
        names = _safe_names(zf)
        if SETTINGS not in names:
            raise BundleError(f"{path} is not a ragbook assistant: {SETTINGS} is missing")
        try:
            doc = json.loads(zf.read(SETTINGS).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: {SETTINGS} is damaged ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BundleError(f"{path} is not a ragbook assistant file")
        if doc.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{path} is assistant format version {doc.get('format_version')}; this ragbook "
                              f"({__version__}) reads version {FORMAT_VERSION}. Use ragbook "
                              f"{doc.get('ragbook_version', '?')} or rebuild the assistant.")
        if "index/manifest.json" not in names:
            raise BundleError(f"{path} is incomplete: the index (index/manifest.json) is missing")
        folder = Path(tempfile.mkdtemp(prefix="ragbook-"))
        try:
            for name in names:
                dest = folder.joinpath(*PurePosixPath(name).parts)
                if not dest.resolve().is_relative_to(folder.resolve()):
                    raise BundleError(f"refusing to open: the entry {name!r} leaves the target folder")
                if name.endswith("/"):
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise BundleError(f"{path} is damaged ({exc}); re-copy or re-save it") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    model = overrides.pop("model", None)
    try:
        index = Index.load(folder / "index", model=model)
    except IndexFormatError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise BundleError(f"{path}: the index inside is damaged or incomplete ({exc})") from None
    index.path = None  # it lives in a temporary folder; saving needs an explicit target
    settings = {"name": doc.get("name", path.stem), "llm": doc.get("llm"), "template": doc.get("template", "tutor"),
                "min_relevance": doc.get("min_relevance"), "max_answer_tokens": doc.get("max_answer_tokens", 384),
                "temperature": doc.get("temperature", 0.0), "history_turns": doc.get("history_turns", 2),
                **doc.get("retrieval", {})}
    settings.update(overrides)
    try:
        assistant = Assistant(index, **settings)
    except (TypeError, ValueError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise BundleError(f"{path}: its settings are invalid ({exc})") from None
    weakref.finalize(assistant, shutil.rmtree, folder, True)
    return assistant
