"""Files and folders -> :class:`~ragbook.documents.Document` objects.

A loader is a function ``loader(path, **options)`` registered for file extensions.
:func:`discover` finds the files a user means, :func:`load_file` reads one, and :func:`load`
does both and never raises for a bad file: each one becomes a :class:`Problem` that says
what is wrong and what to do.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import importlib
import inspect
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Union

from ragbook._display import html_escape, html_table
from ragbook._listing import Listing
from ragbook.documents import Document, LoadError
from ragbook.errors import SettingsError
from ragbook.loaders.files import (
    DEFAULT_MAX_FILE_MB,
    check_regular,
    printable,
    special_file_reason,
    unicode_name,
    without_surrogates,
)
from ragbook.loaders.html import load_html
from ragbook.loaders.notebook import load_notebook
from ragbook.loaders.pdf import load_pdf
from ragbook.loaders.text import load_markdown, load_text
from ragbook.loaders.unicode import normalize_document

__all__ = ["register_loader", "extensions", "BySeverity", "loader_for", "load_file", "discover", "load",
           "SourceFile", "Problem", "Loaded", "DEFAULT_MAX_FILE_MB", "LOAD_OPTIONS", "title_from_name"]

logger = logging.getLogger(__name__)

PathArg = Union[str, "os.PathLike[str]"]
Loader = Callable[..., Union[Document, "list[Document]", str]]

_LOADERS: dict[str, Loader] = {}
# The options the built-in loaders understand (ragbook.build passes them on); a custom loader's
# own options can be added here by whoever registers it.
LOAD_OPTIONS = {"max_file_mb", "max_pages", "passwords", "notebook_outputs", "ocr", "docx_notes", "pptx_notes",
                "pptx_hidden", "latex_skip_included"}
_GLOB_MAGIC = re.compile(r"[*?[]")
# What error messages call a file of each built-in type.
_KINDS = {".pdf": "PDF", ".md": "Markdown file", ".markdown": "Markdown file", ".txt": "text file",
          ".text": "text file", ".html": "HTML page", ".htm": "HTML page", ".xhtml": "HTML page", ".ipynb": "notebook",
          ".docx": "Word document", ".pptx": "PowerPoint deck", ".epub": "EPUB book", ".tex": "LaTeX file",
          ".latex": "LaTeX file", ".png": "image", ".jpg": "image", ".jpeg": "image", ".tif": "image",
          ".tiff": "image"}


def register_loader(extensions: str | Iterable[str], func: Loader | None = None) -> Any:
    """Register ``func(path, **options)`` for file extensions such as ``".rst"``.

    Works as a call or a decorator (``@register_loader(".rst")``); registering an
    extension again replaces its loader.  The function returns a Document, a list of them,
    or a plain string (wrapped into a Document).
    """
    names = [extensions] if isinstance(extensions, str) else list(extensions)
    for name in names:
        if not isinstance(name, str) or not name.startswith(".") or len(name) < 2:
            raise SettingsError(f"an extension looks like '.rst' (with the dot), got {name!r}")

    def register(loader: Loader) -> Loader:
        if not callable(loader):
            raise SettingsError(f"a loader must be callable, got {type(loader).__name__}")
        for name in names:
            _LOADERS[name.lower()] = loader
        return loader

    return register if func is None else register(func)


def extensions() -> list[str]:
    """The file endings a registered loader reads (".pdf", ".md", ".tar.gz"...), sorted."""
    return sorted(_LOADERS)


def loader_for(path: PathArg) -> Loader | None:
    """The loader registered for ``path``'s extension (case-insensitive), or None."""
    suffixes = Path(path).suffixes
    # longest first, so that a loader for ".tar.gz" wins over one for ".gz"
    for i in range(len(suffixes)):
        loader = _LOADERS.get("".join(suffixes[i:]).lower())
        if loader is not None:
            return loader
    return None


def _lazy(module: str, name: str) -> Loader:
    """A loader whose module (and the library it needs) is imported on first use, not by ``import ragbook``."""

    def loader(path: Path, **options: Any) -> Any:
        return getattr(importlib.import_module(module), name)(path, **options)

    loader.__name__ = loader.__qualname__ = name
    return loader


register_loader([".txt", ".text"], load_text)
register_loader([".md", ".markdown"], load_markdown)
register_loader([".html", ".htm", ".xhtml"], load_html)
register_loader(".ipynb", load_notebook)
register_loader(".pdf", load_pdf)
register_loader(".docx", _lazy("ragbook.loaders.word", "load_docx"))
register_loader(".pptx", _lazy("ragbook.loaders.powerpoint", "load_pptx"))
register_loader(".epub", _lazy("ragbook.loaders.epub", "load_epub"))
register_loader([".tex", ".latex"], _lazy("ragbook.loaders.latex", "load_latex"))
register_loader([".png", ".jpg", ".jpeg", ".tif", ".tiff"], _lazy("ragbook.loaders.ocr", "load_image"))


@dataclass(frozen=True)
class SourceFile:
    """A file to load: ``path`` to open, ``source`` to show and cite, ``root`` it was found under."""

    path: Path
    source: str
    root: Path


@dataclass(frozen=True)
class Problem:
    """A file that was skipped (``"error"``), loaded with a problem (``"warning"``), or not read
    because no loader reads its type (``"ignored"``: one problem per extension, ``source="*.xyz"``)."""

    source: str
    reason: str
    severity: str = "error"

    def __str__(self) -> str:
        # one line, whatever the file is called: a newline or an escape sequence in a name must
        # not forge more lines or recolour a terminal
        return f"{printable(self.source)}: {printable(self.reason)}"


class BySeverity:
    """``errors`` (files not read), ``warnings`` and ``ignored`` (file types no loader reads) of ``problems``."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ignored(self) -> list[Problem]:
        """File types no loader reads, one line per extension with a count."""
        return [p for p in self.problems if p.severity == "ignored"]


@dataclass
class Loaded(BySeverity, Listing[Document]):
    """What :func:`load` read: the documents, and a problem for each file that went wrong."""

    _items = "documents"

    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def __repr__(self) -> str:
        chars = sum(len(doc.text) for doc in self.documents)
        return (f"Loaded(documents={len(self.documents)}, chars={chars}, "
                f"errors={len(self.errors)}, warnings={len(self.warnings)}, ignored={len(self.ignored)})")

    def _repr_html_(self) -> str:
        formats = Counter(str(doc.metadata.get("format", "text")) for doc in self.documents)
        by_format = ", ".join(f"{n} {kind}" for kind, n in sorted(formats.items()))
        chars = sum(len(doc.text) for doc in self.documents)
        summary = (f"<b>{len(self.documents)} documents</b>" + (f" ({html_escape(by_format)})" if by_format else "")
                   + f", {chars:,} characters")
        if not self.problems:
            return f"<div class='ragbook-loaded'>{summary}; no problems.</div>"
        shown = self.problems[:50]
        table = html_table(["file", "severity", "problem"], [[p.source, p.severity, p.reason] for p in shown])
        more = f"<div>... and {len(self.problems) - len(shown)} more</div>" if len(self.problems) > len(shown) else ""
        return (f"<div class='ragbook-loaded'>{summary}; {len(self.errors)} files skipped, "
                f"{len(self.warnings)} warnings{table}{more}</div>")


# --- reading one file ---------------------------------------------------------------------
_NAME_SEPARATORS = re.compile(r"[\s_]+|(?<=\w)-+(?=\w)|(?<=[a-z])\.(?=[A-Za-z])")


def title_from_name(stem: str) -> str:
    """A title read from a file name: ``1937-Roosevelt`` -> ``1937 Roosevelt``, ``lab_02_loops`` -> ``lab 02 loops``."""
    return " ".join(_NAME_SEPARATORS.sub(" ", stem).split()) or stem

def _unsupported(path: Path) -> str:
    what = f"'{path.suffix.lower()}'" if path.suffix else "(no extension)"
    return (f"unsupported file type {what}; supported: {', '.join(sorted(_LOADERS))}; "
            "register one with ragbook.register_loader")


def _call(loader: Loader, path: Path, options: dict[str, Any]) -> Any:
    """Call ``loader`` with the options it accepts: a user's ``def f(path)`` must work too."""
    try:
        params = list(inspect.signature(loader).parameters.values())
    except (TypeError, ValueError):
        return loader(path, **options)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return loader(path, **options)
    names = {p.name for p in params[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return loader(path, **{k: v for k, v in options.items() if k in names})


def _as_documents(result: Any, path: Path) -> list[Document]:
    if isinstance(result, str):
        return [Document(text=result, source=path.name, title=path.stem)]
    if isinstance(result, Document):
        return [result]
    if isinstance(result, (list, tuple)) and all(isinstance(doc, Document) for doc in result):
        return list(result)
    raise LoadError(f"the loader for '{path.suffix.lower()}' returned {type(result).__name__}; "
                    "it must return a Document, a list of Documents or a str")


def _json_safe(metadata: Any) -> dict[str, Any]:
    # Metadata is saved with the index as UTF-8 JSON: anything else (objects, lone surrogates)
    # becomes a string now, rather than failing much later when the index is written.
    if not isinstance(metadata, dict):
        return {}
    try:
        json.dumps(metadata, ensure_ascii=False).encode("utf-8")
        return metadata
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        text = json.dumps(metadata, default=str, ensure_ascii=False)
        return json.loads(without_surrogates(text)[0])


def load_file(path: PathArg, source: str | None = None, **options: Any) -> list[Document]:
    """Read one file with the loader for its extension.

    ``source`` is the name documents are cited by (default: the file name).  Options go to
    the loader: ``max_file_mb`` (default :data:`DEFAULT_MAX_FILE_MB`), ``passwords`` for
    encrypted PDFs (``{"file.pdf": "secret"}``), ``notebook_outputs``, ``ocr`` (read pages
    without a text layer and images by OCR when the ``ocr`` extra is installed; default True),
    ``docx_notes`` (Word footnotes, endnotes and comments; default True), ``pptx_notes``
    (speaker notes; default True), ``pptx_hidden`` (hidden slides; default False),
    ``latex_skip_included`` (a .tex file that another one in its folder includes is read as
    part of that one, not twice; default True).  Every failure is a
    :class:`LoadError` whose message says what is wrong and what to do.  Only regular files
    are read: a pipe, socket or device (or a link to one) is refused without being opened.
    """
    path = Path(os.fsdecode(path))
    # the name documents are cited by: valid Unicode on one line, whatever the file is called
    source = unicode_name(source) if source else printable(path.name)
    loader = loader_for(path)
    if loader is None:
        raise LoadError(_unsupported(path))
    kind = _KINDS.get(path.suffix.lower(), f"'{path.suffix.lower()}' file")
    max_mb = options.get("max_file_mb", DEFAULT_MAX_FILE_MB)
    info = check_regular(path, max_mb)
    if info.st_size == 0:
        raise LoadError("empty file")

    try:
        # the built-in loaders read through ragbook.loaders.files with this limit, which they
        # check again on the opened file (it may have been replaced or have grown since)
        result = _call(loader, path, {**options, "source": source, "max_file_mb": max_mb})
        documents = _as_documents(result, path)
    except LoadError:
        raise
    except PermissionError:
        raise LoadError("permission denied; check the file's permissions") from None
    except Exception as exc:  # a loader bug or a library crash must not end a whole load()
        raise LoadError(f"could not read {kind}: {type(exc).__name__}: {exc}") from exc

    documents = [doc for doc in documents if isinstance(doc.text, str) and doc.text.strip()]
    for doc in documents:
        # what people type: presentation forms, full-width letters, ligatures and invisible
        # characters folded (segments remapped), so that a search finds the text as shown
        normalize_document(doc)
    documents = [doc for doc in documents if doc.text.strip()]
    if not documents:
        raise LoadError("no text found in the file")
    resolved = unicode_name(str(path.resolve()))
    for doc in documents:
        # lone surrogates (a broken PDF font map, a custom loader's surrogateescape) cannot be
        # saved as UTF-8: one bad file must not sink the save of the whole index
        doc.text, replaced = without_surrogates(doc.text)
        if replaced:
            doc.warnings.append(f"{replaced} invalid characters (lone surrogates) replaced with \ufffd")
        doc.source = source
        named = not str(doc.title or "").strip() or doc.title == path.stem
        doc.title = title_from_name(printable(path.stem)) if named else without_surrogates(str(doc.title))[0]
        doc.metadata = _json_safe(doc.metadata)
        doc.metadata.setdefault("format", path.suffix.lower().lstrip(".") or "text")
        doc.metadata["path"] = resolved
    return documents


# --- finding files ------------------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike)):
        return [value]
    return list(value)


def _matches(patterns: list[str], source: str, name: str) -> bool:
    return any(fnmatch.fnmatch(source, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _broken_link(path: str, shown: str) -> Problem | None:
    """A problem for a symbolic link whose target is gone (or that loops), else None."""
    if not os.path.islink(path) or os.path.exists(path):
        return None
    target = "?"
    try:
        target = printable(os.readlink(path))
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Problem(shown, f"symbolic link loop (points to {target!r}, which leads back to itself); fix or remove it")
    return Problem(shown, f"broken symbolic link (points to {target!r}, which does not exist); fix or remove it")


def _maybe_document(name: str) -> bool:
    """Whether a file called ``name`` could be one the user means: a loader reads it, or it has no extension."""
    return loader_for(name) is not None or not os.path.splitext(name)[1]


class _Finder:
    """One discover() call: the filters, what was found, and which folders were walked.

    Shown paths (``source``) are made printable here, once: every later message, citation
    and saved record then holds valid Unicode on one line.  Filters match the real names.
    """

    def __init__(self, include: list[str], exclude: list[str], hidden: bool) -> None:
        self.include, self.exclude, self.hidden = include, exclude, hidden
        self.files: list[SourceFile] = []
        self.problems: list[Problem] = []
        self.seen: set[Path] = set()
        self.visited: set[tuple[int, int]] = set()
        self.unread: dict[str, list[str]] = {}  # extension -> files met in folders that no loader reads

    def problem(self, shown: str, reason: str) -> None:
        self.problems.append(Problem(printable(shown), reason))

    def wanted(self, shown: str, name: str) -> bool:
        if self.include and not _matches(self.include, shown, name):
            return False
        return not _matches(self.exclude, shown, name)

    def file(self, path: str, shown: str, root: Path, how: str) -> int:
        """Consider one path that is not a folder; returns 1 if it was added.

        ``how`` is ``"named"`` (an argument), ``"matched"`` (by a glob) or ``"walked"`` (in a
        folder): an unsupported or broken file named directly is always explained, one met in
        a folder only if it could be a document.  Only regular files are added: a pipe, socket
        or device that passes the filters is always reported, here, before anything opens it
        (opening a pipe for reading waits for a writer; a device may never end).
        """
        name = os.path.basename(path)
        if broken := _broken_link(path, shown):
            if how != "walked" or _maybe_document(name):
                self.problem(broken.source, broken.reason)
            return 0
        try:
            info = os.stat(path)  # follows links: a link to /dev/zero is a device
        except OSError as exc:
            if how != "walked" or _maybe_document(name):
                self.problem(shown, f"cannot access the file ({exc.strerror or exc}); check it")
            return 0
        if reason := special_file_reason(info.st_mode, path):
            if self.wanted(shown, name):
                self.problem(shown, reason)
            return 0
        if loader_for(name) is None:
            if how == "named":
                self.problem(shown, _unsupported(Path(path)))
            elif self.wanted(shown, name):
                ext = os.path.splitext(name)[1].lower()
                self.unread.setdefault(ext, []).append(shown)
            return 0
        return self.add(path, shown, root)

    def add(self, path: str, shown: str, root: Path) -> int:
        if not self.wanted(shown, os.path.basename(path)):
            return 0
        resolved = Path(path).resolve()
        if resolved not in self.seen:
            self.seen.add(resolved)
            self.files.append(SourceFile(path=resolved, source=printable(shown), root=root))
        return 1

    def walk(self, top: str, shown: str, root: Path) -> int:
        """Add the loadable files under ``top``; returns how many matched."""
        found = 0
        stack = [(top, shown)]
        while stack:
            folder, shown_folder = stack.pop()
            try:
                info = os.stat(folder)
                # (device, inode) marks a folder however it was reached: links cannot loop us
                if (info.st_dev, info.st_ino) in self.visited:
                    continue
                self.visited.add((info.st_dev, info.st_ino))
                with os.scandir(folder) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except PermissionError:
                self.problem(shown_folder, "permission denied: cannot list this folder; check its permissions")
                continue
            except OSError as exc:
                self.problem(shown_folder, f"cannot list this folder ({exc.strerror})")
                continue
            for entry in entries:
                if entry.name.startswith(".") and not self.hidden:
                    continue
                entry_shown = f"{shown_folder}/{entry.name}" if shown_folder else entry.name
                if _matches(self.exclude, entry_shown, entry.name):
                    continue
                try:
                    is_dir = entry.is_dir()  # follows symbolic links
                except OSError:
                    is_dir = False
                if is_dir:
                    stack.append((entry.path, entry_shown))
                else:
                    found += self.file(entry.path, entry_shown, root, "walked")
        return found

    def pattern(self, pattern: str) -> None:
        parts = Path(pattern).parts
        literal = 0
        while literal < len(parts) and not _GLOB_MAGIC.search(parts[literal]):
            literal += 1
        base = os.path.abspath(os.path.join(*parts[:literal])) if literal else os.getcwd()
        # shown paths start with the base folder's name, as for a folder argument; a pattern
        # with no folder part ("*.md") is shown relative to the working directory
        label = os.path.basename(base) if literal else ""
        root = Path(base).resolve()
        found = 0
        for match in sorted(glob.glob(pattern, recursive=True)):
            relative = Path(os.path.relpath(os.path.abspath(match), base)).as_posix()
            if not self.hidden and any(part.startswith(".") for part in relative.split("/")):
                continue
            shown = f"{label}/{relative}" if label else relative
            if os.path.isdir(match):
                found += self.walk(match, shown, root)
            else:
                found += self.file(match, shown, root, "matched")
        if not found:
            self.problem(pattern, "no supported files match this pattern; check the pattern "
                         f"(supported: {', '.join(sorted(_LOADERS))})")

    def argument(self, raw: PathArg) -> None:
        arg = os.path.expanduser(os.fsdecode(raw))
        if not os.path.lexists(arg):
            if _GLOB_MAGIC.search(arg):
                self.pattern(arg)
            else:
                self.problem(arg, f"no such file or folder (relative paths start at {os.getcwd()}); check the path")
            return
        absolute = os.path.abspath(arg)
        name = os.path.basename(absolute)
        if os.path.isdir(arg):
            self.walk(absolute, name, Path(absolute).resolve())
        else:
            self.file(absolute, name, Path(absolute).resolve(), "named")


def discover(paths: PathArg | Iterable[PathArg], include: str | list[str] | None = None,
             exclude: str | list[str] | None = None, hidden: bool = False) -> tuple[list[SourceFile], list[Problem]]:
    """The loadable files under ``paths`` (files, folders, or globs such as ``"notes/**/*.md"``).

    Folders are walked recursively, following symbolic links; files without a registered
    loader are ignored there, but reported when named directly.  ``include``/``exclude``
    are glob patterns matched against the shown path and the file name (exclude wins, and
    also prunes folders).  Hidden files and folders are skipped unless ``hidden=True``.
    Only regular files (and links to them) are returned: a named pipe, socket or device is a
    problem, found without opening it.  Shown paths are printable: a name that is not valid
    UTF-8 shows its odd bytes as ``\\xe9``, control characters as ``\\x1b``.
    Returns the files in sorted order, each file once, and the problems found on the way.
    """
    finder = _Finder(_as_list(include), _as_list(exclude), hidden)
    for raw in _as_list(paths):
        finder.argument(raw)
    files = sorted(finder.files, key=lambda f: (f.source, str(f.path)))
    return files, finder.problems + _unread_problems(finder.unread)


def _unread_problems(unread: dict[str, list[str]]) -> list[Problem]:
    """One line per extension that no loader reads: ``*.xyz: no loader for .xyz (12 files, e.g. ...)``."""
    out = []
    for ext, shown in sorted(unread.items(), key=lambda item: (-len(item[1]), item[0])):
        what = f"'{ext}'" if ext else "files without an extension"
        label = f"*{ext}" if ext else "(no extension)"
        files = f"{len(shown)} file{'s' if len(shown) != 1 else ''}"
        hint = "; ragbook.register_loader can add one" if ext else ""
        out.append(Problem(label, f"no loader for {what}: {files} not read (e.g. {sorted(shown)[0]}){hint}", "ignored"))
    return out


def load(paths: PathArg | Iterable[PathArg], include: str | list[str] | None = None,
         exclude: str | list[str] | None = None, hidden: bool = False, **options: Any) -> Loaded:
    """Discover and read files; bad files become problems instead of exceptions.

    Document warnings (a PDF page that failed, a file decoded as Windows-1252) are listed
    as problems with ``severity="warning"`` too, so one table shows everything to check.
    """
    from ragbook.progress import progress

    files, problems = discover(paths, include=include, exclude=exclude, hidden=hidden)
    documents: list[Document] = []
    for file in progress(files, desc="Loading files", unit="file", min_total=20):
        try:
            loaded = load_file(file.path, source=file.source, **options)
        except LoadError as exc:
            logger.info("skipped %s: %s", file.source, exc)
            problems.append(Problem(file.source, str(exc)))
            continue
        for doc in loaded:
            documents.append(doc)
            problems.extend(Problem(file.source, warning, "warning") for warning in doc.warnings)
    return Loaded(documents=documents, problems=problems)
