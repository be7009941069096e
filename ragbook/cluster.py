"""Building an index on a Ray cluster: files read and chunked in parallel tasks, embedded by an actor pool.

>>> ragbook.build("library/", out="library-index", engine="ray")                  # Ray on this machine
>>> ragbook.build("library/", out="library-index", engine="ray", address="auto")   # a running cluster

or ``ragbook index library/ --out library-index --engine ray [--address HOST:6379]``.

The driver (this process) lists the files and hashes them as an in-process build does, so only
new or changed files go to the cluster.  Ray Data streams them through two stages: tasks that
read and chunk each file with the same loaders and chunker, and a pool of actors that each load
the embedding model once (one GPU an actor where the cluster has GPUs) and embed the passages the
index does not hold yet.  Each file's result comes back to the driver and is written at once as
a *shard* under ``<index folder>/.shards/``: its passages as JSON and their vectors as ``.npy``,
with the vectors' sha256.  The driver then merges the files, in the order an in-process build
reads them, through the same code: the same chunk ids, manifest and build report.

Faults.  A worker process that dies is Ray's to handle: the task is run again, the actor
restarted and its batch retried.  If the driver dies, nothing was saved, so the previous index
is as it was, and the next run takes the shards already written instead of sending those files
to the cluster again.  The save that stores the index removes the shards.

The workers must see the files at the paths the driver sees: one machine, or a folder shared by
the cluster's machines (NFS, say).  Each worker checks the sha256 of what it reads against the
driver's; a file it cannot read, or that changed, is reported like any other unreadable file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ragbook import __version__
from ragbook._files import atomic_write
from ragbook.chunking import Chunker
from ragbook.documents import Chunk
from ragbook.embedding import Embedder, EmbeddingModel
from ragbook.errors import LoadError, MissingDependencyError, SettingsError
from ragbook.index import (
    CONTEXT_WEIGHT,
    BuildUpdate,
    FileResult,
    Index,
    PendingFile,
    embed_with_context,
    int_id,
    read_file,
)
from ragbook.loaders import DEFAULT_MAX_FILE_MB
from ragbook.loaders.files import digest_limited
from ragbook.progress import progress
from ragbook.storage import SHARDS

__all__ = ["read_on_ray", "RayPlan"]

log = logging.getLogger(__name__)

# Files per read task, passages per part and parts per call of an embedding actor.  On a CPU,
# ONNX Runtime embeds one text at a time, so these only set how finely work is dealt out (small
# enough that the actors finish together, large enough that Ray's per-batch cost stays far below
# the model's); on a GPU the actor's model batches GPU_BATCH passages at a time (not measured:
# no GPU was lent yet).
FILES_PER_TASK = 4
PART = 64  # new passages a row: a large file's are spread over the actors
PARTS_PER_BATCH = 4
GPU_BATCH = 256  # passages per forward pass on a GPU actor


@dataclass
class RayPlan:
    """How the cluster is used: actors, their threads, CPUs and GPUs (chosen from its resources)."""

    actors: int
    threads: int  # torch / ONNX Runtime threads in each actor
    cpus_per_actor: float
    gpus_per_actor: float
    read_cpus: float = 0.5  # a read task's share

    @classmethod
    def for_resources(cls, cpus: float, gpus: float, actors: int | None = None, threads: int | None = None) -> RayPlan:
        """One actor a GPU; else one single-threaded actor a CPU, each asking Ray for a share that leaves room to read.

        ONNX Runtime embeds one text at a time (see ragbook.onnx_embedding), which splits poorly
        over threads: on 2 cores, 6,723 passages took 68.8 s with two actors of one thread and
        84.2 s with one actor of two (benchmarks/cluster.py).  Actors holding every CPU would
        starve the read tasks, so they ask for (CPUs - 1/8 of them) between them.
        """
        if gpus >= 1:
            n = actors or int(gpus)
            return cls(actors=n, threads=threads or 2, cpus_per_actor=1.0, gpus_per_actor=1.0)
        cpus = max(1.0, cpus)
        reserve = max(1.0, cpus // 8)  # CPUs left for read tasks
        threads = threads or 1
        n = actors or max(1, int(cpus // threads))
        return cls(actors=n, threads=threads, cpus_per_actor=max(0.1, min(float(threads), (cpus - reserve) / n)),
                   gpus_per_actor=0.0)


@dataclass
class _Job:
    """What a worker needs to read, chunk and embed as the driver would (shipped to every worker)."""

    embedder: Any  # an unloaded Embedder, or a test's EmbeddingModel
    chunking: dict[str, Any]
    load_options: dict[str, Any]
    known: np.ndarray  # int ids of the passages the index holds already (sorted): not embedded again
    threads: int = 1
    prefer: str | None = None  # the encoder an existing index was built with
    _chunker: Any = field(default=None, repr=False)

    def chunker(self) -> Chunker:
        if self._chunker is None:
            emb = self.embedder
            self._chunker = Chunker(chunk_size=self.chunking["chunk_size"], overlap=self.chunking["overlap"],
                                    tokenizer=emb.tokenizer, max_tokens=emb.max_tokens, context=self.chunking["context"])
        return self._chunker


def _portable(embedder: EmbeddingModel, device: str | None, batch_size: int, threads: int) -> Any:
    """An embedder to ship to workers: a fresh, unloaded :class:`Embedder` with the same choices."""
    if isinstance(embedder, Embedder):
        # the encoder this process would use (ONNX int8 on a CPU, say), so every CPU worker makes the
        # same vectors whatever its environment; GPU actors take torch (within the fingerprint tolerance)
        return Embedder(embedder._target, device=device, batch_size=batch_size, normalize=embedder.normalize,
                        backend="auto" if device else embedder.backend, threads=threads)
    return embedder  # ragbook.testing.HashEmbedder and the like: small, picklable objects


# -- what runs on the workers ------------------------------------------------------------------


def _read_files(batch: dict[str, np.ndarray], job: _Job) -> dict[str, list[Any]]:
    """A read task: load and chunk each file of the batch; its new passages go on in parts.

    A row a part, at most ``PART`` passages each, so that a 600-page PDF is embedded by every
    actor, not by one while the others wait.  The file's result (JSON) rides in its first part;
    every part says how many parts the file has, for the driver to put them together.
    """
    out: dict[str, list[Any]] = {"source": [], "result": [], "part": [], "parts": [], "texts": []}
    for pending_json in batch["pending"]:
        pending = json.loads(pending_json)
        max_mb = job.load_options.get("max_file_mb", DEFAULT_MAX_FILE_MB)
        try:
            if digest_limited(pending["path"], max_mb) != pending["digest"]:
                raise LoadError("the file changed while it was being indexed; index it again")
            result = read_file(pending["path"], pending["source"], job.chunker(), job.load_options)
        except LoadError as exc:
            result = FileResult(error=str(exc))
        except OSError as exc:
            result = FileResult(error=f"cannot read file on worker {os.uname().nodename}: {exc.strerror or exc} "
                             "(the cluster's workers must see the files at the driver's paths)")
        new: dict[str, tuple[str, str]] = {}  # the passages to embed: not in the index, once each
        for c in result.chunks:
            if c.id not in new and not _holds(job.known, int_id(c.id)):
                new[c.id] = (c.text, c.context)
        items = [[cid, text, context] for cid, (text, context) in new.items()]
        parts = max(1, -(-len(items) // PART))
        for k in range(parts):
            out["source"].append(pending["source"])
            out["result"].append(json.dumps(_result_to_json(result), ensure_ascii=False) if k == 0 else "")
            out["part"].append(k)
            out["parts"].append(parts)
            out["texts"].append(json.dumps(items[k * PART:(k + 1) * PART], ensure_ascii=False))
    return out


class _EmbedActor:
    """An actor of the pool: loads the model once, then embeds the passages of each batch of parts."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        emb = job.embedder
        if job.prefer and hasattr(emb, "prefer"):
            emb.prefer(job.prefer)
        self.info = json.dumps(emb.info())  # loads the model (and says which encoder it is)
        if "torch" in sys.modules:  # ONNX Runtime was given its threads by the Embedder
            sys.modules["torch"].set_num_threads(job.threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        parts = [json.loads(t) for t in batch["texts"]]
        texts = [text for items in parts for _, text, _ in items]
        contexts = [context for items in parts for _, _, context in items]
        started = time.perf_counter()
        emb = self.job.embedder
        vectors = (embed_with_context(lambda t: emb.encode_documents(t, show_progress=False), texts, contexts)
                   if texts else np.zeros((0, 1), dtype=np.float32))
        seconds = time.perf_counter() - started
        out: dict[str, list[Any]] = {key: list(batch[key]) for key in ("source", "result", "part", "parts")}
        out.update(ids=[], vectors=[], info=[], embed_s=[])
        at = 0
        for items in parts:
            rows = np.asarray(vectors[at:at + len(items)], dtype=np.float32)
            at += len(items)
            out["ids"].append(json.dumps([cid for cid, _, _ in items]))
            out["vectors"].append(_npy_bytes(rows))
            out["info"].append(self.info)
            out["embed_s"].append(seconds * len(items) / max(len(texts), 1))
        return out


def _holds(known: np.ndarray, value: int) -> bool:
    at = int(np.searchsorted(known, value))
    return at < len(known) and int(known[at]) == value


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _npy_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _result_to_json(result: FileResult) -> dict[str, Any]:
    if result.error is not None:
        return {"error": result.error}
    chunks = []
    for c in result.chunks:
        d = c.to_dict()
        d.pop("metadata", None)  # the document's, restored from "documents" (as a saved index does)
        d.pop("title", None)
        d["text"], d["context"] = c.text, c.context
        chunks.append(d)
    return {"chunks": chunks, "documents": result.documents, "format": result.format, "warnings": result.warnings,
            "load_s": result.load_s, "chunk_s": result.chunk_s}


def _result_from_json(data: dict[str, Any]) -> FileResult:
    if "error" in data:
        return FileResult(error=str(data["error"]))
    docs = data["documents"]
    chunks = []
    for c in data["chunks"]:
        doc = docs.get(c.get("doc_id", ""), {})
        chunks.append(Chunk.from_dict(c["text"], {**c, "title": doc.get("title", ""), "metadata": doc.get("metadata", {})}))
    return FileResult(chunks=chunks, documents=docs, format=data["format"], warnings=list(data["warnings"]),
                      load_s=float(data["load_s"]), chunk_s=float(data["chunk_s"]))


# -- shards ------------------------------------------------------------------------------------


class Shards:
    """Per-file results of a cluster build on disk: ``<key>.json`` (passages) and ``<key>.npy`` (vectors).

    A shard's key hashes everything its content depends on (the file's sha256 and display name,
    the model, the chunking, the loaders' options, ragbook's version), so a shard is only ever
    taken for the very same work.  A damaged shard (bad JSON, a vectors file whose sha256 is not
    the recorded one) is ignored and the file sent to the cluster again.
    """

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        self.folder = folder
        self.settings = json.dumps(settings, sort_keys=True, default=str)

    def key(self, pending: PendingFile) -> str:
        text = json.dumps([self.settings, pending.source, pending.digest, __version__])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def get(self, pending: PendingFile) -> tuple[FileResult, list[str], np.ndarray, dict[str, Any]] | None:
        """The file's result, the ids of the vectors made for it, those vectors, and the encoder's info."""
        key = self.key(pending)
        try:
            meta = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
            raw = (self.folder / f"{key}.npy").read_bytes()
            if hashlib.sha256(raw).hexdigest() != meta["vectors_sha256"]:
                raise ValueError("its vectors are not the ones recorded")
            vectors = _npy_array(raw)
            ids = [str(i) for i in meta["ids"]]
            if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(ids):
                raise ValueError(f"its vectors have the shape {vectors.shape}")
            return _result_from_json(meta["result"]), ids, vectors, dict(meta["info"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring the damaged shard %s of %s (%s); reading the file again", key, pending.source, exc)
            return None

    def put(self, pending: PendingFile, result: dict[str, Any], ids: list[str], vectors_npy: bytes,
            info: dict[str, Any]) -> None:
        key = self.key(pending)
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.folder / f"{key}.npy", "wb", durable=False) as f:
            f.write(vectors_npy)
        meta = {"source": pending.source, "sha256": pending.digest, "ids": ids, "info": info, "result": result,
                "vectors_sha256": hashlib.sha256(vectors_npy).hexdigest()}
        with atomic_write(self.folder / f"{key}.json", "w", encoding="utf-8", durable=False) as f:
            json.dump(meta, f, ensure_ascii=False)


# -- the driver --------------------------------------------------------------------------------


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("engine='ray' needs Ray Data: pip install 'ragbook[ray]'") from exc
    return ray


@contextmanager
def _connected(address: str | None, num_cpus: int | None) -> Iterator[Any]:
    """Ray, joined at ``address`` or started here; shut down afterwards if it was started here."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError) as exc:
            auth = "" if os.environ.get("RAY_AUTH_MODE") else (
                "; if the cluster uses token authentication (Ray's default for clusters started where a token "
                "exists), set RAY_AUTH_MODE=token and give its token in RAY_AUTH_TOKEN or ~/.ray/auth_token")
            raise SettingsError(f"cannot join the Ray cluster at {address!r} ({exc}); start it with "
                                f"`ray start --head` or check the address{auth}") from exc
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def read_on_ray(index: Index, found: list[Any], update: BuildUpdate, load_options: dict[str, Any], *,
                address: str | None = None, actors: int | None = None, threads: int | None = None,
                num_cpus: int | None = None, shards: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """Read, chunk and embed the changed files of ``found`` on Ray; fills ``update`` as ``Index._read`` would.

    Returns the vectors made, by chunk id, for :meth:`Index._apply`.
    """
    from ray.data import ActorPoolStrategy, DataContext

    started = time.perf_counter()
    max_mb = load_options.get("max_file_mb", DEFAULT_MAX_FILE_MB)
    pendings = [p for p in (index._check(src, update, max_mb) for src in found) if p is not None]
    update.report.seconds["hash"] = time.perf_counter() - started
    info = index._embedding_info
    settings = {"chunking": index.chunker.settings(), "model": index.embedder.name,
                "encoder": (info or {}).get("encoder", getattr(index.embedder, "_requested", "")),
                "load_options": load_options, "context_weight": CONTEXT_WEIGHT}
    temp = None
    if shards is None and index.path is None:
        temp = tempfile.TemporaryDirectory(prefix="ragbook-shards-")
    folder = Path(shards) if shards else Path(temp.name) if temp else Path(index.path) / SHARDS  # type: ignore[arg-type]
    store = Shards(folder, settings)
    results: dict[str, tuple[FileResult, list[str], np.ndarray]] = {}
    infos: list[dict[str, Any]] = []
    todo = []
    for p in pendings:
        hit = store.get(p)
        if hit is None:
            todo.append(p)
        else:
            results[p.source] = hit[:3]
            infos.append(hit[3])
    log.info("%d changed files: %d from shards a previous run wrote, %d to the cluster", len(pendings),
             len(pendings) - len(todo), len(todo))
    embed_s = 0.0
    if todo:
        cluster_started = time.perf_counter()
        with _connected(address, num_cpus) as ray:
            ctx = DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.verbose_stats_logs = False
            if not log.isEnabledFor(logging.DEBUG):  # Ray Data's per-run INFO lines, unless debugging
                logging.getLogger("ray.data").setLevel(logging.WARNING)
            resources = ray.cluster_resources()
            plan = RayPlan.for_resources(resources.get("CPU", 1.0), resources.get("GPU", 0.0), actors, threads)
            device = "cuda" if plan.gpus_per_actor else None
            known = np.sort(index.vectors.ids) if len(index) else np.zeros(0, dtype=np.int64)
            job = _Job(embedder=_portable(index.embedder, device, GPU_BATCH if device else 32, plan.threads),
                       chunking={"chunk_size": index.chunk_size, "overlap": index.overlap, "context": index.context},
                       load_options=load_options, known=known, threads=plan.threads, prefer=(info or {}).get("encoder"))
            rows = [{"pending": json.dumps(p.__dict__)} for p in todo]
            ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // FILES_PER_TASK, 10_000)))
            # Read tasks of their own (a slow PDF never holds a model; Ray runs a task again if its
            # worker dies).  They ask for the memory a file at the size limit may take, text and all,
            # which also keeps Ray Data from running them inside the actors (unlike resources: no fusing).
            read_memory = min(4 * float(max_mb), 2048.0) * 2**20  # Ray saw 337 MiB in one over the real documents
            ds = ds.map_batches(_read_files, fn_kwargs={"job": job}, batch_size=FILES_PER_TASK, batch_format="numpy",
                                num_cpus=plan.read_cpus, memory=read_memory)
            pool = max(1, min(plan.actors, -(-len(todo) // PARTS_PER_BATCH)))  # no idle actors for a small update
            ds = ds.map_batches(_EmbedActor, fn_constructor_kwargs={"job": job}, batch_size=PARTS_PER_BATCH,
                                batch_format="numpy", compute=ActorPoolStrategy(size=pool),
                                num_cpus=plan.cpus_per_actor, num_gpus=plan.gpus_per_actor or None)
            by_source = {p.source: p for p in todo}
            pieces: dict[str, dict[int, tuple[str, list[str], np.ndarray]]] = {}
            bar = progress(total=len(todo), desc="Indexing on Ray", unit="file", min_total=20)
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for source, result_json, part, parts, ids_json, vec, info_json, secs in zip(
                        batch["source"], batch["result"], batch["part"], batch["parts"], batch["ids"], batch["vectors"],
                        batch["info"], batch["embed_s"]):
                    got = pieces.setdefault(str(source), {})
                    got[int(part)] = (str(result_json), json.loads(ids_json), _npy_array(bytes(vec)))
                    embed_s += float(secs)
                    if len(got) < int(parts):
                        continue  # the file's other parts are still on their way
                    del pieces[str(source)]
                    ordered = [got[k] for k in range(int(parts))]
                    data, made_by = json.loads(ordered[0][0]), json.loads(info_json)
                    ids = [cid for _, part_ids, _ in ordered for cid in part_ids]
                    vectors = np.concatenate([v.reshape(len(i), -1) for _, i, v in ordered]) if ids else \
                        np.zeros((0, 1), dtype=np.float32)
                    if "error" not in data:  # a failure is tried again next time (it may have been the worker's)
                        store.put(by_source[str(source)], data, ids, _npy_bytes(vectors), made_by)
                    results[str(source)] = (_result_from_json(data), ids, vectors)
                    infos.append(made_by)
                    bar.update(1)
            bar.close()
        update.report.seconds["cluster"] = time.perf_counter() - cluster_started
    update.report.seconds["cluster_embed"] = embed_s
    made: dict[str, np.ndarray] = {}
    for p in pendings:  # in the order an in-process build reads them: the same rows, the same index
        result, ids, vectors = results[p.source]
        index._accept(p, result, update)
        made.update(zip(ids, vectors))
    for made_by in {json.dumps(i, sort_keys=True): i for i in infos}.values():
        index._check_model(made_by)  # recorded for a new index, checked against an existing one's
    if temp is not None:
        temp.cleanup()
    return made

