"""The index: chunks of your files, their vectors (FAISS) and a BM25 index, saved as a folder.

>>> index = ragbook.build("course/", out="course-index")   # load, chunk, embed, save
>>> index.search("how is the course graded?")
>>> index.update()                                         # later: re-embeds changed files only

Identical passages are stored once: a chunk's id is a hash of its text, so a paragraph that
appears in five files is embedded once and remembers all five locations, and a re-index after
an edit embeds only the passages whose text is new.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence, cast

import numpy as np

from ragbook import __version__
from ragbook._compat import renamed
from ragbook._display import html_escape, html_table, timed
from ragbook.chunking import DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP, Chunker
from ragbook.documents import Chunk, Document
from ragbook.embedding import DEFAULT_MODEL, Embedder, EmbeddingModel
from ragbook.errors import LoadError, ModelMismatchError, NotFoundError, SettingsError
from ragbook.lexical import BM25, Analyzer
from ragbook.lexical import FILES as BM25_FILES
from ragbook.loaders import DEFAULT_MAX_FILE_MB, LOAD_OPTIONS, BySeverity, Problem, discover, load_file
from ragbook.loaders.files import check_regular, digest_limited, printable
from ragbook.progress import progress
from ragbook.settings import INDEX_KEYS, VECTOR_KEYS, IndexConfig
from ragbook.storage import (
    SHARDS,
    IndexFormatError,
    SchemaError,
    anything,
    index_lock,
    integer,
    list_of,
    manifest_version,
    map_of,
    read_manifest,
    record,
    string,
    validate,
    write_index_folder,
)
from ragbook.vectors import FILES as VECTOR_FILES
from ragbook.vectors import OPTIONAL_FILES as VECTOR_OPTIONAL
from ragbook.vectors import VectorStore

__all__ = ["Index", "BuildReport", "build", "open_index", "IndexFormatError", "ModelMismatchError"]

log = logging.getLogger(__name__)




# How far a passage's vector moves towards its context line's (see Index._embed_with_context).
# On 120 questions that name one of 59 inaugural addresses (benchmarks/named.py, dev/test),
# hybrid hit@5 is 0.70/0.63 with no context, 0.97/0.95 at 0.3, 0.97/0.97 at 0.4 (dense 0.47/0.48,
# 0.87/0.87, 0.90/0.90).  Every passage leans towards its title, though, and questions that name
# no document pay for it: OpenStax hybrid nDCG@5 is 0.922 with no context, 0.922 at 0.3 and
# 0.914 at 0.4 (benchmarks/headings.py); one demo question sits near the abstention gate.
CONTEXT_WEIGHT = 0.3
# Who reads, chunks and embeds: this process, or another engine, "module:function", imported when
# used (ragbook.cluster sits above the index: it drives Index's steps on a Ray cluster).
ENGINES = {"local": "", "ray": "ragbook.cluster:read_on_ray"}


def int_id(chunk_id: str) -> int:
    return int(chunk_id[:15], 16)  # 60 bits: a positive int64 for FAISS


@dataclass
class BuildReport(BySeverity):
    """What a build or update did: files added, changed, removed, skipped (and why), timings."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    embedded: int = 0
    reused: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def skipped(self) -> list[Problem]:
        """The files not read (their ``errors``)."""
        return self.errors

    @property
    def ok(self) -> bool:
        return not self.skipped

    def summary(self) -> str:
        total = self.seconds.get("total", sum(self.seconds.values()))
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed, {len(self.skipped)} skipped"
            + (f", {len(self.ignored)} file types without a loader" if self.ignored else "")
            + f"; {self.embedded} passages embedded, "
            f"{self.reused} reused, {self.chunks_removed} dropped; {total:.1f} s"
        )

    def __repr__(self) -> str:
        return f"BuildReport({self.summary()})"

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  skipped {p}" for p in self.skipped]
        lines += [f"  warning {p}" for p in self.warnings]
        lines += [f"  ignored {p}" for p in self.ignored]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        out = f"<div class='ragbook-report'><b>Build report</b>: {html_escape(self.summary())}"
        if self.problems:
            rows: list[list[object]] = [[p.severity, p.source, p.reason] for p in self.problems]
            out += html_table(["", "file", "reason"], rows)
        return out + "</div>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added, "updated": self.updated, "removed": self.removed,
            "unchanged": len(self.unchanged), "embedded": self.embedded, "reused": self.reused,
            "chunks_added": self.chunks_added, "chunks_removed": self.chunks_removed,
            "problems": [{"source": p.source, "reason": p.reason, "severity": p.severity} for p in self.problems],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


@dataclass
class _Plan:
    """What Index.add looks at: the files found, the folders scanned, the indexed roots that are gone."""

    report: BuildReport
    found: list[Any] = field(default_factory=list)
    scanned_roots: set[str] = field(default_factory=set)
    gone_roots: list[str] = field(default_factory=list)


@dataclass
class BuildUpdate:
    """What Index.add gathers while reading: new chunks and file records, and the files to drop."""

    report: BuildReport
    found_sources: set[str] = field(default_factory=set)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    removals: set[str] = field(default_factory=set)


@dataclass
class PendingFile:
    """A file that changed since it was indexed (or is new): what the driver knows before reading it."""

    path: str
    root: str
    source: str
    digest: str
    size: int
    mtime_ns: int
    old: bool


@dataclass
class FileResult:
    """One file read and chunked (by this process or a worker): its chunks, or why it failed."""

    chunks: list[Chunk] = field(default_factory=list)
    documents: dict[str, Any] = field(default_factory=dict)  # doc id -> {"title", "metadata"}
    format: str = ""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    load_s: float = 0.0
    chunk_s: float = 0.0


def read_file(path: str, source: str, chunker: Chunker, load_options: dict[str, Any]) -> FileResult:
    """Load and chunk one file; a failure is returned as ``error`` (the message a build report shows)."""
    t0 = time.perf_counter()
    try:
        docs = load_file(path, source=source, **load_options)
    except Exception as exc:  # loaders raise LoadError; anything else is still one file's problem
        return FileResult(error=str(exc))
    t1 = time.perf_counter()
    chunks = [c for doc in docs for c in chunker.split(doc)]
    return FileResult(chunks=chunks, format=docs[0].metadata.get("format", "") if docs else "",
                      documents={d.id: {"title": d.title, "metadata": _jsonable(d.metadata)} for d in docs},
                      warnings=[w for d in docs for w in d.warnings], load_s=t1 - t0,
                      chunk_s=time.perf_counter() - t1)


# How far the fingerprint (8 coordinates of a fixed text's vector) may move before an index refuses
# the encoder in use.  Measured (benchmarks/encoders.py): int8 ONNX vs torch moves it 0.007 at
# most, and mixing them costs at most 0.002 nDCG@10; the coordinates of a 384-d unit vector are
# about 0.05 in size, so another model's fingerprint lands far outside.
FINGERPRINT_TOLERANCE = 0.015


class Index:
    """Chunks, vectors and BM25 postings for a set of files, with incremental updates.

    ``embedding_model`` is an embedding model name, local folder or :class:`Embedder` (``model=``
    is its old name); ``chunk_size`` and
    ``overlap`` are in the model's tokens; ``index_type`` is ``"auto"``, ``"flat"``, ``"hnsw"``,
    ``"ivf"``, or ``"pq"``/``"hnsw-pq"``/``"ivf-pq"`` for compressed vectors (see ``ragbook.vectors``).
    """

    def __init__(self, embedding_model: str | os.PathLike[str] | EmbeddingModel | None = None, *,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_OVERLAP, index_type: str = "auto",
                 bm25_k1: float = 1.2, bm25_b: float = 0.75, stemmer: str | None = "english", context: bool = True,
                 path: str | os.PathLike[str] | None = None,
                 model: str | os.PathLike[str] | EmbeddingModel | None = None, **vector_params: Any) -> None:
        model = renamed(embedding_model, model, "model", "embedding_model", "Index()")
        unknown = sorted(set(vector_params) - set(VECTOR_KEYS))
        if unknown:
            raise SettingsError(f"unknown index setting(s) {', '.join(unknown)}; they are {', '.join(INDEX_KEYS)}")
        # every setting checked at once, by its definition (ragbook.settings.IndexConfig)
        config = IndexConfig(chunk_size=chunk_size, overlap=overlap, context=context, index_type=index_type,  # type: ignore[arg-type]
                             bm25_k1=bm25_k1, bm25_b=bm25_b, stemmer=stemmer, **vector_params)
        self.embedder: Embedder
        if model is None or isinstance(model, (str, os.PathLike)):
            self.embedder = Embedder(model or DEFAULT_MODEL)
        elif isinstance(model, EmbeddingModel):  # ragbook.testing.HashEmbedder, say: the index calls only these
            self.embedder = cast(Embedder, model)
        else:
            raise SettingsError(f"embedding_model must be a model name, a folder or an EmbeddingModel, "
                                f"not {type(model).__name__}")
        self.chunk_size = chunk_size
        self.overlap = overlap
        self.context = bool(context)
        self.path = Path(path) if path else None
        self.files: dict[str, dict[str, Any]] = {}
        self.roots: list[str] = []
        self.last_report: BuildReport | None = None
        self._texts: list[str] = []
        self._locations: list[list[Chunk]] = []
        self._dimension: int | None = None
        self._embedding_info: dict[str, Any] | None = None  # recorded at build, checked at query
        self._model_checked = False
        self._index_type = index_type
        self._vector_params = config.vector_params()
        self._vectors: VectorStore | None = None
        self.bm25 = BM25(k1=bm25_k1, b=bm25_b, analyzer=Analyzer(stemmer=stemmer))
        self._chunker: Chunker | None = None
        Chunker(chunk_size=chunk_size, overlap=overlap)  # validate the numbers now, not mid-build

    # -- read-only views -------------------------------------------------------------------

    @property
    def config(self) -> IndexConfig:
        """The index's settings as data (:class:`ragbook.settings.IndexConfig`), as its manifest records them."""
        vectors = {k: v for k, v in self._vectors.settings().items() if k in VECTOR_KEYS} if self._vectors else {}
        return IndexConfig(chunk_size=self.chunk_size, overlap=self.overlap, context=self.context,
                           index_type=self._index_type,  # type: ignore[arg-type]
                           bm25_k1=self.bm25.k1, bm25_b=self.bm25.b, stemmer=self.bm25.analyzer.stemmer_name,
                           **{**self._vector_params, **vectors})

    def __len__(self) -> int:
        """Number of distinct passages (identical text stored once)."""
        return len(self._texts)

    @property
    def chunks(self) -> list[Chunk]:
        """Every chunk, one per location (a passage found in two files appears twice)."""
        return [c for locs in self._locations for c in locs]

    @property
    def sources(self) -> list[str]:
        return sorted(self.files)

    @property
    def vectors(self) -> VectorStore:
        if self._vectors is None:
            self._vectors = VectorStore(self._dimension or self.embedder.dimension, self._index_type,
                                        **self._vector_params)
        return self._vectors

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = Chunker(
                chunk_size=self.chunk_size, overlap=self.overlap, tokenizer=self.embedder.tokenizer,
                max_tokens=self.embedder.max_tokens, context=self.context,
            )
        return self._chunker

    def locations(self, row: int) -> list[Chunk]:
        return self._locations[row]

    def text(self, row: int) -> str:
        return self._texts[row]

    def stats(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "documents": sum(len(f.get("documents", {})) for f in self.files.values()),
            "chunks": sum(len(locs) for locs in self._locations),
            "unique_chunks": len(self._texts),
            "index_type": self.vectors.kind_in_use if self._texts else self._index_type,
        }

    # -- building --------------------------------------------------------------------------

    def add(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None, *,
            include: str | list[str] | None = None, exclude: str | list[str] | None = None,
            hidden: bool = False, engine: str = "local", address: str | None = None,
            ray_options: dict[str, Any] | None = None, **load_options: Any) -> BuildReport:
        """Index (or re-index) files, folders or globs; returns a :class:`BuildReport`.

        Files whose content did not change are not read again; passages whose text is
        already indexed are not embedded again; files that disappeared from a folder that is
        indexed again are removed.  A file that fails to load is reported and skipped; if an
        earlier version of it is indexed, that version is kept.

        ``engine="ray"`` reads, chunks and embeds the changed files on a Ray cluster (started on
        this machine, or joined at ``address``; ``pip install 'ragbook[ray]'``), with the same
        result; see :mod:`ragbook.cluster`.
        """
        if engine not in ENGINES:
            raise SettingsError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if engine == "local" and (address or ray_options):
            raise SettingsError("address= and ray_options= are for engine='ray'")
        started = time.perf_counter()
        if paths is None:
            if not self.roots:
                raise SettingsError("no paths given and the index has no recorded folders; pass paths to index")
            paths = list(self.roots)
        args = [paths] if isinstance(paths, (str, bytes, os.PathLike)) else list(paths)
        args = [os.fsdecode(a) if isinstance(a, bytes) else a for a in args]  # b"caf\xe9" names too
        plan = self._plan(args, include, exclude, hidden)
        update = BuildUpdate(plan.report)
        update.report.seconds.update(load=0.0, chunk=0.0)
        made = None
        if ENGINES[engine]:
            module, function = ENGINES[engine].split(":")
            run = getattr(importlib.import_module(module), function)
            made = run(self, plan.found, update, load_options, address=address, **(ray_options or {}))
        else:
            for src in progress(plan.found, desc="Reading files", unit="file", min_total=20):
                self._read(src, update, load_options)
        self._drop_vanished(plan, update)
        self._apply(update.removals, update.chunks, update.report, made)
        for source in update.report.removed:
            self.files.pop(source, None)
        self.files.update(update.records)
        for arg in args:
            root = str(Path(arg).expanduser().resolve()) if not any(ch in str(arg) for ch in "*?[") else str(arg)
            if root not in self.roots and root not in plan.gone_roots:
                self.roots.append(root)
        report = update.report
        report.seconds["total"] = time.perf_counter() - started
        self.last_report = report
        log.info("index update: %s", report.summary())
        return report

    def _plan(self, args: list[Any], include: Any, exclude: Any, hidden: bool) -> _Plan:
        """The files to look at, and the indexed roots that are gone (their files are dropped)."""
        plan = _Plan(BuildReport())
        present = []
        for arg in args:
            resolved = Path(arg).expanduser().resolve()
            if not resolved.exists() and not any(ch in str(arg) for ch in "*?[") and self._files_under(str(resolved)):
                plan.gone_roots.append(str(resolved))  # a whole indexed root was deleted: drop its files
            else:
                present.append(arg)
        found, problems = discover(present, include=include, exclude=exclude, hidden=hidden) if present else ([], [])
        plan.found = found
        plan.report.problems.extend(problems)
        plan.scanned_roots = {str(f.root) for f in found} | {
            str(Path(a).expanduser().resolve()) for a in present if Path(a).expanduser().exists()}
        return plan

    def _read(self, src: Any, update: BuildUpdate, load_options: dict[str, Any]) -> None:
        """Read and chunk one file if it changed; a file that fails is reported, its indexed version kept."""
        pending = self._check(src, update, load_options.get("max_file_mb", DEFAULT_MAX_FILE_MB))
        if pending is not None:
            self._accept(pending, read_file(pending.path, pending.source, self.chunker, load_options), update)
            # the chunks hold copies of what they need: this file's text (maybe 200 MB) must not
            # stay alive through embedding (returning drops it)

    def _check(self, src: Any, update: BuildUpdate, max_file_mb: float) -> PendingFile | None:
        """The file to read, or None: unchanged (by size and time, else by hash), or unreadable (reported)."""
        report = update.report
        source = self._source_key(src)
        update.found_sources.add(source)
        old = self.files.get(source)
        kept = "; the previously indexed version is kept" if old else ""
        try:
            # stat (following links) before anything opens the file: a pipe would block and a
            # device never end; a file over the limit is refused before it is read.  Hashing
            # opens without blocking and checks the opened file again (it may be swapped).
            stat = check_regular(src.path, max_file_mb)
            if old and old["size"] == stat.st_size and old["mtime_ns"] == stat.st_mtime_ns:
                report.unchanged.append(source)
                return None
            digest = digest_limited(src.path, max_file_mb)
        except LoadError as exc:
            report.problems.append(Problem(source, f"{exc}{kept}"))
            return None
        except OSError as exc:
            report.problems.append(Problem(source, f"cannot read file: {exc.strerror or exc}{kept}"))
            return None
        if old and old["sha256"] == digest:
            old["mtime_ns"] = stat.st_mtime_ns
            report.unchanged.append(source)
            return None
        return PendingFile(str(src.path), str(src.root), source, digest, stat.st_size, stat.st_mtime_ns, bool(old))

    def _accept(self, pending: PendingFile, result: FileResult, update: BuildUpdate) -> None:
        """Take one file's chunks (or its failure) into the update."""
        report, source = update.report, pending.source
        if result.error is not None:
            kept = "; the previously indexed version is kept" if pending.old else ""
            report.problems.append(Problem(source, f"{result.error}{kept}"))
            return
        report.seconds["load"] += result.load_s
        report.seconds["chunk"] += result.chunk_s
        report.problems.extend(Problem(source, w, "warning") for w in result.warnings)
        update.chunks.extend(result.chunks)
        update.records[source] = {
            "path": pending.path, "root": pending.root, "sha256": pending.digest, "size": pending.size,
            "mtime_ns": pending.mtime_ns, "format": result.format, "chunks": len(result.chunks),
            "warnings": list(result.warnings), "documents": result.documents,
        }
        (report.updated if pending.old else report.added).append(source)
        if pending.old:
            update.removals.add(source)

    def _drop_vanished(self, plan: _Plan, update: BuildUpdate) -> None:
        """Files of a scanned folder that are no longer there, and those of a root that is gone."""
        for source, rec in self.files.items():
            gone = rec["root"] in plan.gone_roots or (rec["root"] in plan.scanned_roots
                                                      and source not in update.found_sources)
            if gone and not _is_excluded_problem(source, update.report.problems):
                update.removals.add(source)
                update.report.removed.append(source)

    update = add

    def add_documents(self, documents: Iterable[Document]) -> BuildReport:
        """Index documents made in memory (no files); a document replaces one with the same source."""
        report = BuildReport()
        docs = list(documents)
        with timed(report.seconds, "chunk"):
            chunks = [c for d in progress(docs, desc="Chunking", unit="doc", min_total=200) for c in self.chunker.split(d)]
        replaced = {d.source for d in docs if d.source in self.files}
        for d in docs:
            rec = self.files.setdefault(d.source, {"path": "", "root": "", "sha256": "", "size": len(d.text),
                                                   "mtime_ns": 0, "format": d.metadata.get("format", "text"),
                                                   "chunks": 0, "warnings": [], "documents": {}})
            rec["documents"][d.id] = {"title": d.title, "metadata": _jsonable(d.metadata)}
            (report.updated if d.source in replaced else report.added).append(d.source)
        for c in chunks:
            self.files[c.source]["chunks"] += 1
        self._apply(replaced, chunks, report)
        self.last_report = report
        return report

    def remove(self, sources: str | Iterable[str]) -> int:
        """Remove files by display source or glob pattern; returns the number removed."""
        import fnmatch

        patterns = [sources] if isinstance(sources, str) else list(sources)
        gone = {s for s in self.files if any(fnmatch.fnmatchcase(s, p) for p in patterns)}
        report = BuildReport(removed=sorted(gone))
        self._apply(gone, [], report)
        for s in gone:
            del self.files[s]
        return len(gone)

    def _apply(self, removals: set[str], new_chunks: list[Chunk], report: BuildReport,
               made: dict[str, np.ndarray] | None = None) -> None:
        """Drop the locations of ``removals``, add ``new_chunks``; embed only texts not yet stored.

        ``made`` holds vectors already made elsewhere (by a cluster), by chunk id: only the new
        texts it lacks are embedded here.
        """
        row_of = {c.id: r for r, locs in enumerate(self._locations) for c in locs[:1]}
        locations = [[c for c in locs if c.source not in removals] if removals else list(locs) for locs in self._locations]
        fresh: dict[str, list[Chunk]] = {}
        for chunk in new_chunks:
            row = row_of.get(chunk.id)
            if row is not None:
                chunk.text = self._texts[row]  # share one string per passage
                locations[row].append(chunk)
                report.reused += 1
            else:
                fresh.setdefault(chunk.id, []).append(chunk)
        report.chunks_added = len(new_chunks)
        keep = np.array([bool(locs) for locs in locations], dtype=bool)
        report.chunks_removed = sum(len(a) - len(b) for a, b in zip(self._locations, locations)) if removals else 0
        new_texts = [locs[0].text for locs in fresh.values()]
        contexts = [locs[0].context for locs in fresh.values()]
        report.reused += sum(len(locs) - 1 for locs in fresh.values())

        with timed(report.seconds, "embed"):
            if not made:
                vectors = self._embed_with_context(new_texts, contexts)
            else:  # made on a cluster; a passage its shard lacks (the index changed since) is embedded here
                vectors = np.zeros((len(fresh), self._dimension or self.embedder.dimension), dtype=np.float32)
                todo = []
                for i, cid in enumerate(fresh):
                    if cid in made:
                        vectors[i] = made[cid]
                    else:
                        todo.append(i)
                if todo:
                    vectors[todo] = self._embed_with_context([new_texts[i] for i in todo], [contexts[i] for i in todo])
            report.embedded = len(new_texts)
        with timed(report.seconds, "index"):
            new_ids = np.array([int_id(cid) for cid in fresh], dtype=np.int64)
            self.vectors.update(keep, new_ids, vectors)
            del vectors  # the store holds its own copy; 1.5 KB a passage is too much to keep twice
            self.bm25.update(keep, new_texts, contexts)
            self._texts = [t for t, k in zip(self._texts, keep) if k] + new_texts
            self._locations = [locs for locs, k in zip(locations, keep) if k] + list(fresh.values())

    def _source_key(self, src: Any) -> str:
        """The display source of a discovered file, unless another file already uses that name."""
        rec = self.files.get(src.source)
        if rec is None or rec["path"] in ("", str(src.path)):
            return src.source
        return printable(str(src.path))  # shown and saved as JSON: valid Unicode, one line

    def _files_under(self, root: str) -> list[str]:
        return [s for s, rec in self.files.items() if rec["root"] == root]

    # -- embeddings and the model check ----------------------------------------------------

    def _embed_with_context(self, texts: list[str], contexts: list[str]) -> np.ndarray:
        return embed_with_context(self._embed_documents, texts, contexts)

    def _embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:  # nothing new: no need to load (or check) the model
            return np.zeros((0, self._dimension or self.embedder.dimension), dtype=np.float32)
        self._check_model()
        return self.embedder.encode_documents(texts)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector, after checking the model is the one the index was built with."""
        self._check_model()
        return self.embedder.encode_queries([query])[0]

    def _check_model(self, made_by: dict[str, Any] | None = None) -> None:
        """Record the encoder a new index is built with, or check the one in use against the index's.

        ``made_by`` is the :meth:`Embedder.info` of vectors made elsewhere (a cluster's workers):
        recorded for a new index, checked like the local model for an existing one.
        """
        if self._model_checked and made_by is None:
            return
        info = self._embedding_info
        if info is None:  # a new index: record the model (and the encoder) it is built with
            self._embedding_info = made_by or self.embedder.info()
            self._dimension = self._embedding_info["dimension"]
        else:
            dim, fp = ((made_by["dimension"], made_by["fingerprint"]) if made_by
                       else (self.embedder.dimension, self.embedder.fingerprint()))
            comparable = dim == info["dimension"] and len(fp) == len(info["fingerprint"])
            drift = float(np.abs(np.subtract(fp, info["fingerprint"])).max()) if comparable else None
            if drift is None or drift > FINGERPRINT_TOLERANCE:
                raise ModelMismatchError(self._mismatch(info, dim, drift))
        self._model_checked = self._model_checked or made_by is None

    def _mismatch(self, info: dict[str, Any], dim: int, drift: float | None) -> str:
        built, using = info.get("encoder", "torch"), getattr(self.embedder, "backend", None)
        if drift is not None and info["model"] == self.embedder.name and using and using != built:
            return (f"this index's vectors were made by the {built!r} encoder of {info['model']!r}, and the "
                    f"{using!r} encoder in use gives vectors {drift:.3f} away (more than {FINGERPRINT_TOLERANCE}): "
                    f"searching would rank passages unreliably. Open it with "
                    f"embedding_model=Embedder(backend={built!r}), or rebuild it with this encoder.")
        return (f"this index was built with the embedding model {info['model']!r} ({info['dimension']} dimensions), "
                f"but the model in use is {self.embedder.name!r} ({dim} dimensions, different vectors). "
                f"Searching it with another model would return meaningless results: open the index with "
                f"embedding_model={info['model']!r}, or rebuild it with the new model.")

    # -- search ------------------------------------------------------------------------------

    def retriever(self, **settings: Any):
        """A :class:`~ragbook.retrieval.Retriever` over this index with the given settings."""
        from ragbook.retrieval import Retriever

        return Retriever(self, **settings)

    def search(self, query: str, k: int = 5, **settings: Any):
        """Search with a one-off :class:`~ragbook.retrieval.Retriever` (hybrid by default)."""
        return self.retriever(k=k, **settings).search(query)

    # -- persistence -----------------------------------------------------------------------


    def search_documents(self, query: str, k: int = 5, passages: int = 3, **settings: Any):
        """The ``k`` documents (files) that best match ``query``, each with its best passages.

        One query embedding, however many passages it takes to fill ``k`` distinct files; see
        :meth:`ragbook.retrieval.Retriever.search_documents`.
        """
        return self.retriever(**settings).search_documents(query, k=k, passages=passages)
    def save(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float | None = None) -> Path:
        """Save atomically to a folder (the one it was loaded from by default).

        The folder's write lock is held while saving: another writer waits up to ``lock_timeout``
        seconds (default 10, or ``$RAGBOOK_LOCK_TIMEOUT``) and then gets IndexLockedError.  A save
        replaces the folder's index with this one: if another process saved the folder since this
        index was loaded, its changes are replaced (a warning says so).  :func:`build` holds the
        lock from load to save, so updates made through it never lose another writer's changes.
        """
        target = Path(path) if path else self.path
        if target is None:
            raise SettingsError("no folder to save to: pass a path, e.g. index.save('my-index')")
        if self._embedding_info is None:
            self._check_model()  # a new, empty index: record which model it is for

        def write(folder: Path) -> list[str]:
            with open(folder / "chunks.jsonl", "w", encoding="utf-8") as f:
                for text, locs in zip(self._texts, self._locations):
                    record = {"id": locs[0].id, "text": text, "locations": [_location(c) for c in locs]}
                    if locs[0].context:
                        record["context"] = locs[0].context
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            names = ["chunks.jsonl", *self.vectors.save(folder), *self.bm25.save(folder)]
            manifest["vectors"] = self.vectors.settings()  # with what building chose (an IVF's lists)
            return names

        manifest = {
            "ragbook_version": __version__,
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "embedding": self._embedding_info,
            "chunking": self.chunker.settings(),
            "vectors": self.vectors.settings(),
            "bm25": self.bm25.settings(),
            "counts": self.stats(),
            "roots": self.roots,
            "files": self.files,
            "last_build": self.last_report.to_dict() if self.last_report else None,
        }
        with index_lock(target, lock_timeout):
            seen = getattr(self, "_seen_version", None)  # (folder, manifest version) this index was read from
            now = manifest_version(target)
            if seen and seen[1] and seen[0] == os.path.realpath(target) and now not in (None, seen[1]):
                log.warning("%s was saved by another process since this index was opened; this save replaces "
                            "that version with this one", target)
            write_index_folder(target, write, manifest, lock_timeout=lock_timeout)
            shutil.rmtree(target / SHARDS, ignore_errors=True)  # a cluster build's shards: the index holds them now
            self._seen_version = (os.path.realpath(target), manifest_version(target))
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, embedding_model: str | os.PathLike[str] | EmbeddingModel | None = None,
             verify: bool = True, model: str | os.PathLike[str] | EmbeddingModel | None = None) -> Index:
        """Open a saved index.  ``embedding_model`` says where to find its embedding model, if not where it was
        (it is checked against the one that made the vectors; ``model=`` is its old name).

        Everything read is checked: the manifest's fields and types, the data files' names, sizes
        and (with ``verify``) sha256s and chunk ids, and that chunks, vectors and BM25 agree.  A
        damaged or tampered index is an IndexFormatError saying what is wrong.  No lock is needed:
        if a writer replaces the index while it is being read, the read starts again.
        """
        model = renamed(embedding_model, model, "model", "embedding_model", "Index.load()")
        path = Path(path)
        for attempt in range(5):
            version = manifest_version(path)
            try:
                index = cls._load(path, model, verify)
            except IndexFormatError:
                # a save switched generations mid-read (and removed the old one): read the new one
                if attempt == 4 or manifest_version(path) in (None, version):
                    raise
                continue
            # which save was read: unknown (None) if another one landed while reading
            index._seen_version = (os.path.realpath(path), version if manifest_version(path) == version else None)
            return index
        raise AssertionError("unreachable")

    @classmethod
    def _load(cls, path: Path, model: str | os.PathLike[str] | EmbeddingModel | None, verify: bool) -> Index:
        manifest, data = read_manifest(path, verify=verify, data_files=DATA_FILES, optional=VECTOR_OPTIONAL)
        emb, chunking, bm, vec = manifest["embedding"], manifest["chunking"], manifest["bm25"], manifest["vectors"]
        try:
            index = cls(model or emb["model"], chunk_size=chunking["chunk_size"], overlap=chunking["overlap"],
                        index_type=vec["kind"], bm25_k1=bm["k1"], bm25_b=bm["b"], stemmer=bm["stemmer"],
                        context=chunking.get("context", False), path=path,
                        **{key: vec[key] for key in VECTOR_KEYS if key in vec})
        except (SettingsError, KeyError) as exc:  # KeyError: PyStemmer's word for an unknown language
            raise IndexFormatError(f"{path}: the manifest's settings cannot be used ({exc}); rebuild the index") from None
        index._embedding_info = emb
        index._dimension = emb["dimension"]
        if isinstance(index.embedder, Embedder):  # search with the encoder that made the vectors, when it can run here
            index.embedder.prefer(emb.get("encoder", "torch"))
        index.files = manifest["files"]
        index.roots = manifest["roots"]
        titles = {did: d for f in index.files.values() for did, d in f["documents"].items()}
        try:
            index._texts, index._locations = _read_chunks(data / "chunks.jsonl", titles, verify)
            index._vectors = VectorStore.load(data, vec, emb["dimension"], verify=verify)
            index.bm25 = BM25.load(data)
        except IndexFormatError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexFormatError(f"{path}: cannot read the index data ({type(exc).__name__}: {exc}); rebuild it") from exc
        if index.bm25.settings() != bm:
            raise IndexFormatError(f"{path}: bm25.json's settings differ from the manifest's; rebuild the index")
        if not (len(index._texts) == len(index._vectors) == len(index.bm25)):
            raise IndexFormatError(f"{path}: chunks, vectors and BM25 rows disagree in number; rebuild the index")
        expected = np.fromiter((int_id(locs[0].id) for locs in index._locations), dtype=np.int64,
                               count=len(index._locations))
        if not np.array_equal(expected, index._vectors.ids):
            raise IndexFormatError(f"{path}: the vectors are not the passages' (ids.npy does not match chunks.jsonl); "
                                   "rebuild the index")
        return index

    # -- display ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        s = self.stats()
        where = f"path={str(self.path)!r}, " if self.path else ""
        return (f"Index({where}embedding_model={self.embedder.name!r}, files={s['files']}, chunks={s['chunks']}, "
                f"unique={s['unique_chunks']}, index_type={s['index_type']!r})")

    def _repr_html_(self) -> str:
        s = self.stats()
        head = (f"<div class='ragbook-index'><b>ragbook index</b>"
                f"{' <code>' + html_escape(self.path) + '</code>' if self.path else ''}<br>"
                f"{s['files']} files, {s['chunks']:,} chunks ({s['unique_chunks']:,} distinct), "
                f"model <code>{html_escape(self.embedder.name)}</code>, {html_escape(s['index_type'])} index, "
                f"chunks of &le; {self.chunk_size} tokens (overlap {self.overlap})")
        rows: list[list[object]] = [
            [src, rec.get("format", ""), rec.get("chunks", 0), "; ".join(rec.get("warnings", []))[:200]]
            for src, rec in sorted(self.files.items())[:50]]
        more = f"<div>… and {len(self.files) - 50} more files</div>" if len(self.files) > 50 else ""
        return head + html_table(["file", "format", "chunks", "warnings"], rows) + more + "</div>"

    def info(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "embedding": self._embedding_info or {"model": self.embedder.name},
            "chunking": {"chunk_size": self.chunk_size, "overlap": self.overlap, "context": self.context},
            "vectors": self.vectors.settings() if self._texts else {"kind": self._index_type},
            "bm25": self.bm25.settings(),
            "counts": self.stats(),
            "roots": self.roots,
        }


def build(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None,
          **settings: Any) -> Index:
    """Build (or, if ``out`` holds an index, update) an index from files, folders or globs.

    Settings for loading (``include``, ``exclude``, ``hidden``, ``passwords``...) go to
    :meth:`Index.add`; the rest (``embedding_model``, ``chunk_size``, ``overlap``, ``index_type``) to
    :class:`Index`.  With ``out``, the folder's write lock is held from reading the index to
    saving it, so two builds into one folder run one after the other and neither loses the
    other's files; the second waits up to ``lock_timeout`` seconds, then raises IndexLockedError.
    """
    lock_timeout = settings.pop("lock_timeout", None)
    # what Index() takes builds the index; the rest (include, exclude, passwords, a loader's
    # own options such as notebook_outputs or ocr) goes to Index.add and on to the loaders
    index_keys = (set(inspect.signature(Index.__init__).parameters) | set(VECTOR_KEYS)) - {"self", "path", "vector_params"}
    add_opts = {k: settings.pop(k) for k in list(settings) if k not in index_keys}
    unknown = sorted(set(add_opts) - {"include", "exclude", "hidden", "engine", "address", "ray_options"} - LOAD_OPTIONS)
    if unknown:
        raise SettingsError(f"unknown setting {', '.join(map(repr, unknown))}; index settings: "
                            f"{', '.join(sorted(index_keys))}; loading: include, exclude, hidden, engine, address, "
                            f"{', '.join(sorted(LOAD_OPTIONS))}")
    missing = _missing_paths(paths)
    if out is None:
        _refuse_missing(missing, [])
        index = Index(**settings)
        index.add(paths, **add_opts)
        return index
    manifest = Path(out) / "manifest.json"
    fresh = None if manifest.exists() else Index(path=out, **settings)  # bad settings fail before the folder is made
    with index_lock(out, lock_timeout):
        if manifest.exists():  # checked again under the lock: another build may have just made it
            model = renamed(settings.pop("embedding_model", None), settings.pop("model", None), "model",
                            "embedding_model", "build()")
            index = Index.load(out, embedding_model=model)
            _warn_ignored(settings)
        else:
            index = fresh or Index(path=out, **settings)
        _refuse_missing(missing, index.roots)  # a folder indexed before and deleted since is dropped, not an error
        index.add(paths, **add_opts)
        index.save(out, lock_timeout=lock_timeout)
    return index


def _missing_paths(paths: Any) -> list[str]:
    """The paths (not globs) among ``paths`` that do not exist."""
    args = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return [os.fspath(a) for a in args
            if not any(ch in os.fspath(a) for ch in "*?[") and not os.path.lexists(os.path.expanduser(os.fspath(a)))]


def _refuse_missing(missing: list[str], roots: list[str]) -> None:
    gone = [m for m in missing if str(Path(m).expanduser().resolve()) not in roots]
    if gone:
        raise NotFoundError(f"no such file or folder: {', '.join(map(repr, gone))} (relative paths start at "
                            f"{os.getcwd()}); check the path")


def embed_with_context(encode: Any, texts: list[str], contexts: list[str]) -> np.ndarray:
    """Each passage's vector, moved towards the vector of its context line (title > section).

    ``normalize(v(text) + CONTEXT_WEIGHT * v(context))``: a question that names its document
    ("in his 1937 inaugural") meets the passages of that document, while one that does not
    is scored almost as if no context were there.  The few distinct context lines (one per
    section) are embedded once each.  Embedding the line with the text instead
    (``"context\ntext"``) finds named documents as well but dilutes every passage: on the demo
    course its questions' best cosine fell from 0.602 to 0.567 (0.602 this way, at 0.3).
    """
    vectors = encode(texts)
    lines = sorted({c for c in contexts if c})
    if not lines:
        return vectors
    line_vectors = encode(lines)
    at = {line: i for i, line in enumerate(lines)}
    rows = [i for i, c in enumerate(contexts) if c]
    vectors[rows] += CONTEXT_WEIGHT * line_vectors[[at[contexts[i]] for i in rows]]
    vectors[rows] /= np.linalg.norm(vectors[rows], axis=1, keepdims=True)
    return vectors


def open_index(path: str | os.PathLike[str], **kwargs: Any) -> Index:
    """Open a saved index folder (see :meth:`Index.load`)."""
    return Index.load(path, **kwargs)


def _warn_ignored(settings: dict[str, Any]) -> None:
    if settings:
        log.warning("updating an existing index keeps its settings; ignored: %s", ", ".join(settings))


def _is_excluded_problem(source: str, problems: list[Problem]) -> bool:
    return any(p.source == source for p in problems)


def _location(chunk: Chunk) -> dict[str, Any]:
    data = chunk.to_dict()
    data.pop("title", None)
    data.pop("metadata", None)
    return data


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# The files an index's data folder holds, exactly: read_manifest refuses a manifest listing others.
DATA_FILES = ("chunks.jsonl", *VECTOR_FILES, *BM25_FILES)

_CHUNK_RECORD = record({
    "id": string(r"[0-9a-f]{16}"), "text": string(max_length=2**31),
    "locations": list_of(record({"source": string(), "doc_id": string(), "start": integer(0), "end": integer(0)},
                                optional={"page": integer(0), "cell": integer(0), "slide": integer(0),
                                          "section": list_of(string()), "metadata": map_of(anything())}), min_length=1),
}, optional={"context": string(max_length=10_000)})


def _read_chunks(file: Path, titles: dict[str, Any], verify: bool) -> tuple[list[str], list[list[Chunk]]]:
    """Passages and their locations from ``chunks.jsonl``, each record type-checked.

    With ``verify`` each id is checked against its text (it is a hash of it), so a changed text
    cannot pass for the passage its vector was computed from: ~0.1 s for 10,000 passages of
    ~900 characters on a 2-core laptop, a sixth of the whole load.
    """
    texts: list[str] = []
    locations: list[list[Chunk]] = []
    seen: set[str] = set()
    with open(file, "rb") as f:  # bytes: split on "\n" only, as written, and decode each line strictly
        for number, line in enumerate(f, 1):
            try:
                data = json.loads(line.decode("utf-8"))
                validate(data, _CHUNK_RECORD, "record")
            except (ValueError, RecursionError, SchemaError) as exc:
                raise IndexFormatError(f"{file}: line {number} is damaged ({str(exc)[:200]}); rebuild the index") from None
            text, cid = data["text"], data["id"]
            locs: list[Chunk] = []
            for loc in data["locations"]:
                if loc["start"] > loc["end"]:
                    raise IndexFormatError(f"{file}: line {number} has a location that ends before it starts; "
                                           "rebuild the index")
                doc = titles.get(loc["doc_id"], {})
                chunk = Chunk.from_dict(text, {**loc, "title": doc.get("title", ""), "metadata": doc.get("metadata", {}),
                                               "context": data.get("context", "")})
                if not (verify and not locs):
                    chunk.__dict__["id"] = cid  # saved with the text: no need to hash it again
                locs.append(chunk)
            if verify and locs[0].id != cid:  # computed from the text
                raise IndexFormatError(f"{file}: line {number}: the passage's id {cid} is not the hash of its text "
                                       "and context (they were changed); rebuild the index")
            if cid in seen:
                raise IndexFormatError(f"{file}: line {number}: the passage {cid} appears twice; rebuild the index")
            seen.add(cid)
            texts.append(text)
            locations.append(locs)
    return texts, locations

