"""The dense half of an index: row-aligned vectors and the FAISS structure that searches them.

Each vector has a stable 63-bit id (derived from its chunk's content), so FAISS results stay
meaningful while rows are added and removed.  The float32 matrix itself is kept as the source
of truth (saved as ``vectors.npy``, memory-mapped on load): it lets an approximate index be
rebuilt without re-embedding, and lets MMR and filtered search read vectors directly.

Index kinds (``kind``): ``"flat"`` (exact inner product), ``"hnsw"`` (graph, fast, no removal
in place: rebuilt from the stored vectors), ``"ivf"`` (inverted lists, trained on the data),
and ``"auto"``: flat below ``AUTO_THRESHOLD`` vectors, HNSW above, IVF-PQ above
``AUTO_PQ_THRESHOLD``.  ``"pq"``, ``"hnsw-pq"`` and ``"ivf-pq"`` are the same three with
product-quantised codes (``pq_m`` bytes a vector instead of 4 x dimension: 32x smaller for 384
dimensions) for collections whose vectors do not fit in memory: the FAISS index finds
``refine`` x n candidates (at least ``MIN_CANDIDATES``) from the codes, and their scores come
from the memory-mapped matrix, so the scores ragbook reports stay cosines.  The PQ kinds keep
that matrix in float16 (half the disk, half the pages a re-rank reads): at 1M vectors recall@10
is the same as with float32 (0.994 and 0.994 from the same candidates) and the scores move by
less than 0.0001 (``benchmarks/scale_10m.py -n 1000000``).  A matrix larger than memory is
given with :meth:`VectorStore.from_arrays` and added to FAISS a block at a time.
"""

from __future__ import annotations

import errno
import math
from pathlib import Path
from typing import Any

import numpy as np

from ragbook._files import release_pages
from ragbook.errors import IndexFormatError, SettingsError
from ragbook.settings import INDEX_TYPES, IndexConfig

__all__ = ["VectorStore", "AUTO_THRESHOLD", "KINDS", "top_n"]

# Chosen by benchmarks/scale.py: up to here exact search answers in under 6 ms on a 2-core
# laptop (less than encoding the query) and stays exact and editable in place; beyond it HNSW
# keeps recall@10 >= 0.99 (efSearch 96) at ~0.2 ms.
AUTO_THRESHOLD: int = IndexConfig.threshold
# HNSW keeps every float32 vector and its links in memory, ~1.8 KB a vector (1.82 GB at 1M,
# benchmarks/scale.py): past 2M it outgrows a 4 GB budget, while IVF-PQ holds ~60 bytes a vector
# and maps the rest (10M: recall@10 and latency in benchmarks/results/scale-10m.json).
AUTO_PQ_THRESHOLD = 2_000_000
KINDS = INDEX_TYPES
PQ_KINDS = ("pq", "hnsw-pq", "ivf-pq")
# Inverted lists: at most this many (4 x sqrt(n) would be 12,649 at 10M vectors, whose k-means
# costs hours on 2 cores; 8,192 lists of ~1,200 vectors search 10M in a few ms), trained on at
# most this many sampled vectors (FAISS asks for 39 to 256 per list).
MAX_NLIST = 8192
MAX_TRAIN = 1 << 20
BLOCK = 65_536  # rows converted to float32 at a time when a large matrix is added or scanned
# Rows read from a memory-mapped matrix stay resident until let go, and a page fault maps more
# than the row: neighbouring cached pages, or the whole large folio the row lies in (~280 KB a
# row at 10M vectors).  Every this many rows the pages go back to the OS's cache (0.02 ms), so a
# long-running process stays ~0.6 GB above the index's own size at 10M vectors (0.1 GB at 200k),
# not the whole matrix (7.7 GB).
RELEASE_EVERY = 2_048
# The PQ kinds re-rank at least this many candidates (refine x k, if more).  At 10M vectors the
# true top 10 is often ranked past 100th by its codes: IVF-PQ recall@10 was 0.943 with 100
# candidates, 0.981 with 200 and 0.997 with 400, at 6.9 / 7.2 / 8.8 ms (nprobe did not matter:
# 256 to 1,024 lists gave the same recall; benchmarks/scale_10m.py).
MIN_CANDIDATES = 400


def _faiss() -> Any:
    import faiss

    return faiss


class VectorStore:
    """Vectors, their ids, and a FAISS index over them (inner product on normalised vectors)."""

    def __init__(self, dimension: int, kind: str = "auto", *, hnsw_m: int = IndexConfig.hnsw_m,
                 ef_construction: int = IndexConfig.ef_construction, ef_search: int = IndexConfig.ef_search,
                 nprobe: int | None = IndexConfig.nprobe, threshold: int = AUTO_THRESHOLD,
                 pq_m: int | None = IndexConfig.pq_m, refine: int = IndexConfig.refine) -> None:
        if kind not in KINDS:
            raise SettingsError(f"unknown index type {kind!r}; choose one of {', '.join(KINDS)}")
        self.dimension = dimension
        self.kind = kind
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.nprobe = nprobe
        self.threshold = threshold
        self.pq_m = pq_m or _pq_bytes(dimension)
        if dimension % self.pq_m:
            raise SettingsError(f"pq_m={self.pq_m} must divide the dimension {dimension}")
        self.refine = max(1, int(refine))
        self.ids = np.zeros(0, dtype=np.int64)
        self.vectors = np.zeros((0, dimension), dtype=self.dtype)
        self._index: Any = None
        self._built_kind: str | None = None
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # ids sorted, and their rows
        self._rows_read = 0  # from a memory-mapped matrix, since its pages were last let go

    @classmethod
    def from_arrays(cls, vectors: np.ndarray, ids: np.ndarray, kind: str = "auto", **params: Any) -> VectorStore:
        """A store over existing arrays (a memory-mapped matrix larger than memory, say), not copied.

        The FAISS structure is built on first search or save, adding the rows in blocks, so a
        matrix on disk is never held in memory as a whole.
        """
        store = cls(vectors.shape[1], kind, **params)
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != len(vectors) or (len(ids) and len(np.unique(ids)) != len(ids)):
            raise SettingsError(f"{len(vectors)} vectors need as many distinct ids, got {len(ids)}")
        store.ids = ids
        store.vectors = vectors if vectors.dtype == store.dtype else np.asarray(vectors, dtype=store.dtype)
        return store

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"VectorStore(kind={self.kind!r}, in_use={self.kind_in_use!r}, vectors={len(self)}, dimension={self.dimension})"

    @property
    def kind_in_use(self) -> str:
        if self.kind != "auto":
            return self.kind
        n = len(self)
        return "flat" if n < self.threshold else "hnsw" if n < max(self.threshold, AUTO_PQ_THRESHOLD) else "ivf-pq"

    @property
    def dtype(self) -> np.dtype:
        """The stored matrix's type: float16 where it only re-ranks PQ candidates, float32 where FAISS reads it."""
        return np.dtype(np.float16 if self.kind_in_use in PQ_KINDS else np.float32)

    def settings(self) -> dict[str, Any]:
        """What the manifest records: the settings, and what a built IVF index chose (lists, lists searched)."""
        out = {"kind": self.kind, "in_use": self.kind_in_use, "hnsw_m": self.hnsw_m,
               "ef_construction": self.ef_construction, "ef_search": self.ef_search,
               "nprobe": self.nprobe, "threshold": self.threshold, "pq_m": self.pq_m, "refine": self.refine,
               "dtype": self.dtype.name}
        if self._index is not None and self._built_kind in ("ivf", "ivf-pq"):
            out.update(nlist=int(self._index.nlist), nprobe_in_use=int(self._index.nprobe))
        return out

    # -- changes ---------------------------------------------------------------------------

    def update(self, keep: np.ndarray, new_ids: np.ndarray, new_vectors: np.ndarray) -> None:
        """Keep rows where ``keep`` is true and append new rows; FAISS follows in place when it can."""
        keep = np.asarray(keep, dtype=bool)
        removed = self.ids[~keep]
        new_vectors = np.ascontiguousarray(new_vectors, dtype=np.float32).reshape(-1, self.dimension)
        new_ids = np.asarray(new_ids, dtype=np.int64)
        self.ids = np.concatenate([self.ids[keep], new_ids])
        self.vectors = np.concatenate([np.asarray(self.vectors)[keep], new_vectors]).astype(self.dtype, copy=False)
        self._sorted = None
        index = self._index
        if index is None or self._built_kind != self.kind_in_use:
            self._index = None  # built lazily on the next search or save
            return
        if len(removed):
            if self._built_kind in ("hnsw", "hnsw-pq"):  # HNSW graphs cannot drop nodes
                self._index = None
                return
            index.remove_ids(_faiss().IDSelectorBatch(removed))
        if len(new_ids):
            index.add_with_ids(new_vectors, new_ids)

    # -- the FAISS structure ----------------------------------------------------------------

    @property
    def index(self) -> Any:
        if self._index is None:
            self._index = self._build()
        return self._index

    def _build(self) -> Any:
        faiss = _faiss()
        kind = self.kind_in_use
        d = self.dimension
        n = len(self.vectors)
        ip = faiss.METRIC_INNER_PRODUCT
        nlist = max(1, min(int(4 * math.sqrt(max(n, 1))), max(n // 39, 1), MAX_NLIST))
        # 8-bit codes need 256 training points per sub-quantiser; tiny collections use fewer bits
        nbits = max(1, min(8, int(math.log2(max(n, 2))) - 2))
        if kind == "flat":
            inner = faiss.IndexFlatIP(d)
        elif kind in ("hnsw", "hnsw-pq"):
            # (HNSW-PQ ranks by L2 distance, which orders unit vectors as inner product does)
            inner = (faiss.IndexHNSWFlat(d, self.hnsw_m, ip) if kind == "hnsw"
                     else faiss.IndexHNSWPQ(d, self.pq_m, self.hnsw_m, nbits))
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        elif kind == "pq":
            inner = faiss.IndexPQ(d, self.pq_m, nbits, ip)
        elif kind == "ivf":
            inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, ip)
        else:  # ivf-pq
            inner = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, self.pq_m, nbits, ip)
        if kind in ("ivf", "ivf-pq"):
            # recall@10 0.989 at 10k, 0.988 at 100k, >= 0.995 at 1M vectors for ivf (benchmarks/scale.py)
            inner.nprobe = self.nprobe or min(nlist, max(16, nlist // 32))
        if not inner.is_trained and n:
            want = min(256 * max(nlist, 256), MAX_TRAIN)
            rows = np.sort(np.random.default_rng(0).choice(n, want, replace=False)) if n > want else slice(None)
            inner.train(np.ascontiguousarray(self.vectors[rows], dtype=np.float32))
        # IVF lists carry the ids themselves; the others get an id map around them
        index = inner if kind in ("ivf", "ivf-pq") else faiss.IndexIDMap2(inner)
        for lo in range(0, n, BLOCK):  # in blocks: the matrix may be on disk, and float16
            index.add_with_ids(np.ascontiguousarray(self.vectors[lo : lo + BLOCK], dtype=np.float32),
                               self.ids[lo : lo + BLOCK])
        self._built_kind = kind
        return index

    def row_of(self, ids: np.ndarray) -> np.ndarray:
        """The rows of ``ids``; -1 for an id the store does not hold."""
        if self._sorted is None:  # two arrays (16 bytes a vector), not a dict (~100): 10M ids fit
            order = np.argsort(self.ids, kind="stable")
            self._sorted = (self.ids[order], order)
        keys, rows = self._sorted
        ids = np.asarray(ids, dtype=np.int64)
        if not len(keys):
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        return np.where(keys[at] == ids, rows[at], -1).astype(np.int64)

    # -- search ----------------------------------------------------------------------------

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` rows and scores for one query vector; ``allowed`` restricts to a row mask (exact)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        total = len(self)
        if total == 0 or n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if allowed is not None:
            rows = np.flatnonzero(allowed)
            scores = self.scores_for(q, rows)
            top = top_n(scores, n)
            return rows[top], scores[top]
        n = min(n, total)
        index = self.index
        faiss = _faiss()
        # One query is one thread's work in FAISS; waking its OpenMP pool (next to torch's
        # threads) costs ~8 ms per search on 2 cores, 80x the search (benchmarks/query.py).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        pq = self._built_kind in PQ_KINDS
        want = min(total, max(n * self.refine, MIN_CANDIDATES)) if pq else n
        if self._built_kind == "hnsw-pq":
            # a graph walked by code distances needs a wider beam: recall@10 0.90 -> 0.95 at 20k (scale.py)
            _faiss().downcast_index(index.index).hnsw.efSearch = max(self.ef_search, 2 * want)
        try:
            scores, ids = index.search(q, want)
        finally:
            faiss.omp_set_num_threads(threads)
        rows = self.row_of(ids[0])
        keep = rows >= 0  # FAISS pads with -1; an id the store does not know is dropped, not read as row -1
        rows = rows[keep]
        if not pq:
            return rows, scores[0][keep]
        exact = self.scores_for(q, rows)  # codes find the candidates; the stored vectors rank them
        top = top_n(exact, n)
        return rows[top], exact[top]

    def scores_for(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact similarity of ``query`` to the given rows."""
        rows = np.asarray(rows)
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        self._rows_read += len(rows)
        if self._rows_read > RELEASE_EVERY:
            release_pages(self.vectors)
            self._rows_read = len(rows)
        return np.concatenate([np.asarray(self.vectors[rows[lo : lo + BLOCK]], dtype=np.float32) @ q
                               for lo in range(0, max(len(rows), 1), BLOCK)]).astype(np.float32, copy=False)

    # -- persistence -------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        """Write the vectors, their ids and (not for flat search, which is rebuilt from the vectors on load)
        the FAISS index; the names of the files written."""
        np.save(folder / "vectors.npy", np.asarray(self.vectors, dtype=self.dtype), allow_pickle=False)
        np.save(folder / "ids.npy", self.ids, allow_pickle=False)
        if self.kind_in_use == "flat":  # the FAISS file would be a second copy of vectors.npy
            return [name for name in FILES if name not in OPTIONAL_FILES]
        faiss = _faiss()
        index = self.index
        try:
            if self.kind_in_use == "hnsw" and np.array_equal(faiss.vector_to_array(index.id_map), self.ids):
                # the graph only: its vectors are vectors.npy's rows, in order (joined again on load)
                faiss.write_index(faiss.downcast_index(index.index), str(folder / "dense.faiss"), faiss.IO_FLAG_SKIP_STORAGE)
            else:
                faiss.write_index(index, str(folder / "dense.faiss"))
        except RuntimeError as exc:  # FAISS reports a failed write (a full disk, say) as RuntimeError
            raise OSError(errno.EIO, f"cannot write dense.faiss ({str(exc).strip().splitlines()[-1]})",
                          str(folder / "dense.faiss")) from exc
        return list(FILES)

    @classmethod
    def load(cls, folder: Path, settings: dict[str, Any], dimension: int, *, verify: bool = True) -> VectorStore:
        """Read what :meth:`save` wrote, checked (ids unique, shapes agree); ``verify`` also scans for NaN.

        A flat index is rebuilt from ``vectors.npy`` (a copy, as fast as reading it) rather than
        parsed from ``dense.faiss``, so the common case never feeds FAISS's reader a file that
        may have been tampered with.
        """
        params = {k: settings[k] for k in ("hnsw_m", "ef_construction", "ef_search", "nprobe", "threshold", "pq_m", "refine")
                  if k in settings}
        try:
            store = cls(dimension, settings.get("kind", "auto"), **params)
        except SettingsError as exc:
            raise IndexFormatError(f"{folder}: the vector settings are invalid ({exc}); rebuild the index") from None
        try:
            vectors = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False)
            ids = np.load(folder / "ids.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"{folder}: vectors.npy or ids.npy cannot be read ({exc}); rebuild the index") from None
        # the manifest names the matrix's type; one saved before it did holds float32
        problem = _arrays_problem(vectors, ids, dimension, verify, np.dtype(settings.get("dtype", "float32")))
        if problem:
            raise IndexFormatError(f"{folder}: {problem}; rebuild the index")
        release_pages(vectors, random_access=True)  # the check read them all; a search reads its own rows
        store.vectors, store.ids = vectors, ids
        in_use = settings.get("in_use", store.kind_in_use)
        if in_use != store.kind_in_use:
            raise IndexFormatError(f"{folder}: the manifest says a {in_use} index is in use, but {len(ids)} vectors "
                                   f"with kind={store.kind!r} make a {store.kind_in_use} one; rebuild the index")
        if in_use == "flat":
            return store  # rebuilt from the vectors on first search
        faiss = _faiss()
        try:
            index = faiss.read_index(str(folder / "dense.faiss"), faiss.IO_FLAG_SKIP_STORAGE if in_use == "hnsw" else 0)
        except RuntimeError as exc:
            raise IndexFormatError(f"{folder}: dense.faiss cannot be read ({exc}); rebuild the index") from None
        if in_use == "hnsw" and type(index).__name__ == "IndexHNSWFlat":  # a graph saved without its vectors
            if index.ntotal != len(ids) or index.d != dimension:
                raise IndexFormatError(f"{folder}: dense.faiss holds a graph of {index.ntotal} vectors of dimension "
                                       f"{index.d}; expected {len(ids)} of {dimension}; rebuild the index")
            index = _with_vectors(index, vectors, ids)
        problem = _faiss_problem(index, in_use, ids, dimension)
        if problem:
            raise IndexFormatError(f"{folder}: dense.faiss {problem}; rebuild the index")
        store._index = index
        store._built_kind = in_use
        if in_use in ("hnsw", "hnsw-pq"):
            _faiss().downcast_index(index.index).hnsw.efSearch = store.ef_search
        return store


FILES = ("vectors.npy", "ids.npy", "dense.faiss")
OPTIONAL_FILES = ("dense.faiss",)  # written only for the kinds that are not rebuilt from vectors.npy


def _arrays_problem(vectors: Any, ids: Any, dimension: int, verify: bool, dtype: np.dtype) -> str | None:
    """What is wrong with a loaded vector matrix (of type ``dtype``) and its ids, or None."""
    if not isinstance(ids, np.ndarray) or ids.dtype != np.int64 or ids.ndim != 1:
        return f"ids.npy holds {getattr(ids, 'dtype', '?')} values, not a list of int64 ids"
    if not isinstance(vectors, np.ndarray) or vectors.dtype != dtype or vectors.shape != (len(ids), dimension):
        return (f"vectors.npy holds {getattr(vectors, 'dtype', '?')} values of shape {getattr(vectors, 'shape', '?')}, "
                f"expected {dtype.name} of shape ({len(ids)}, {dimension})")
    if len(ids) and (ids.min() < 0 or len(np.unique(ids)) != len(ids)):
        return "ids.npy holds negative or repeated ids"
    if verify:
        for lo in range(0, len(vectors), BLOCK):  # in blocks: the matrix may be larger than memory
            if not np.all(np.isfinite(vectors[lo : lo + BLOCK])):
                return "vectors.npy holds a vector that is not finite (NaN or infinity)"
            if lo % (16 * BLOCK) == 15 * BLOCK:
                release_pages(vectors)  # a 10M-vector matrix (7.7 GB) is read, never all resident
    return None


# the FAISS structure each kind saves: (outer class, inner class or None)
_STRUCTURES = {"hnsw": ("IndexIDMap2", "IndexHNSWFlat"), "hnsw-pq": ("IndexIDMap2", "IndexHNSWPQ"),
               "pq": ("IndexIDMap2", "IndexPQ"), "ivf": ("IndexIVFFlat", None), "ivf-pq": ("IndexIVFPQ", None)}


def _with_vectors(graph: Any, vectors: np.ndarray, ids: np.ndarray) -> Any:
    """An HNSW graph read without its vectors, joined to them (rows in graph order) and to their ids."""
    faiss = _faiss()
    storage = faiss.IndexFlatIP(graph.d)
    storage.add(np.ascontiguousarray(vectors, dtype=np.float32))
    graph.storage = storage
    storage.this.disown()  # the graph frees it
    graph.own_fields = True
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(graph.d))  # FAISS wraps only an empty index: swap the graph in
    index.index = graph
    graph.this.disown()
    index.own_fields = True
    faiss.copy_array_to_vector(np.ascontiguousarray(ids, dtype=np.int64), index.id_map)
    index.ntotal = graph.ntotal
    index.construct_rev_map()
    return index


def _faiss_problem(index: Any, kind: str, ids: np.ndarray, dimension: int) -> str | None:
    faiss = _faiss()
    outer, inner = _STRUCTURES[kind]
    found = type(index).__name__
    if inner is not None and found == outer:
        found += "/" + type(faiss.downcast_index(index.index)).__name__
    if found != "/".join(filter(None, (outer, inner))):
        return f"is a {found} structure, not what a {kind} index saves"
    if index.ntotal != len(ids) or index.d != dimension:
        return f"holds {index.ntotal} vectors of dimension {index.d}; expected {len(ids)} of {dimension}"
    if inner is not None and not np.array_equal(np.sort(faiss.vector_to_array(index.id_map)), np.sort(ids)):
        return "maps its vectors to ids that are not the index's"
    return None


def _pq_bytes(dimension: int) -> int:
    """Bytes per vector for PQ codes: one per 8 dimensions (48 for 384), a divisor of the dimension."""
    target = max(1, dimension // 8)
    return max(m for m in range(1, target + 1) if dimension % m == 0)


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest scores, best first."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return part[np.argsort(-scores[part], kind="stable")]
