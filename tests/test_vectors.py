"""ragbook.vectors for collections larger than memory: float16 re-ranking, arrays on disk, auto's IVF-PQ, pages let go."""

from __future__ import annotations

import numpy as np
import pytest

from ragbook import vectors
from ragbook.vectors import MIN_CANDIDATES, VectorStore


def _data(n: int = 4000, d: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, d))
    x = centres[rng.integers(0, 50, n)] + 0.4 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _recall(store: VectorStore, x: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    found = 0
    for q in queries:
        rows, _ = store.search(q, k)
        found += len(set(store.ids[rows].tolist()) & set(np.argsort(-(x @ q))[:k].tolist()))
    return found / (k * len(queries))


def test_a_matrix_on_disk_is_indexed_in_blocks_saved_as_float16_and_searched(tmp_path, monkeypatch):
    """from_arrays over a memory-mapped float16 file; FAISS gets it a block at a time, never whole."""
    monkeypatch.setattr(vectors, "BLOCK", 512)  # 8 blocks
    x = _data()
    disk = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float16, shape=x.shape)
    disk[:] = x
    added = []
    store = VectorStore.from_arrays(disk, np.arange(len(x), dtype=np.int64), "ivf-pq")
    real_build = store._build

    def spy():
        index = real_build()
        added.append(index.ntotal)
        return index

    store._build = spy
    folder = tmp_path / "ix"
    folder.mkdir()
    assert store.save(folder) == ["vectors.npy", "ids.npy", "dense.faiss"]
    assert added == [len(x)] and store.vectors is disk  # not copied into memory
    saved = np.load(folder / "vectors.npy", mmap_mode="r")
    assert saved.dtype == np.float16 and store.settings()["dtype"] == "float16"
    loaded = VectorStore.load(folder, store.settings(), x.shape[1])
    assert isinstance(loaded.vectors, np.memmap) and loaded.dtype == np.float16
    assert _recall(loaded, x, x[:40] + 0.01) >= 0.95
    rows, scores = loaded.search(x[7], 5)
    np.testing.assert_allclose(scores, x[rows] @ x[7], atol=2e-3)  # cosines from the float16 rows


def test_from_arrays_refuses_ids_that_do_not_fit():
    x = _data(100)
    with pytest.raises(Exception, match="distinct ids"):
        VectorStore.from_arrays(x, np.zeros(100, dtype=np.int64), "ivf-pq")
    with pytest.raises(Exception, match="distinct ids"):
        VectorStore.from_arrays(x, np.arange(99), "ivf-pq")


def test_a_manifest_naming_float16_refuses_a_float32_matrix_and_old_float32_pq_indexes_still_load(tmp_path):
    from ragbook.errors import IndexFormatError

    x = _data(3000)
    store = VectorStore(64, "pq")
    store.update(np.zeros(0, bool), np.arange(3000, dtype=np.int64), x)
    store.save(tmp_path)
    settings = store.settings()
    np.save(tmp_path / "vectors.npy", x)  # float32 where the manifest says float16
    with pytest.raises(IndexFormatError, match="expected float16"):
        VectorStore.load(tmp_path, settings, 64)
    old = {k: v for k, v in settings.items() if k != "dtype"}  # saved before the matrix was float16
    loaded = VectorStore.load(tmp_path, old, 64)
    assert loaded.vectors.dtype == np.float32 and _recall(loaded, x, x[:30]) >= 0.95


def test_auto_turns_to_ivf_pq_above_its_threshold(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "AUTO_PQ_THRESHOLD", 2500)
    x = _data(3000)
    store = VectorStore(64, "auto", threshold=1000)
    store.update(np.zeros(0, bool), np.arange(2000, dtype=np.int64), x[:2000])
    assert store.kind_in_use == "hnsw" and store.vectors.dtype == np.float32
    store.update(np.ones(2000, bool), np.arange(2000, 3000, dtype=np.int64), x[2000:])
    assert store.kind_in_use == "ivf-pq" and store.vectors.dtype == np.float16
    store.save(tmp_path)
    loaded = VectorStore.load(tmp_path, store.settings(), 64)
    assert loaded.settings()["in_use"] == "ivf-pq" and _recall(loaded, x, x[:30]) >= 0.95


def test_pq_kinds_rerank_at_least_the_minimum_number_of_candidates(monkeypatch):
    x = _data(3000)
    store = VectorStore(64, "ivf-pq", refine=1)
    store.update(np.zeros(0, bool), np.arange(3000, dtype=np.int64), x)
    asked = []
    index = store.index
    real = index.search

    class Spy:
        def __getattr__(self, name):
            return getattr(index, name)

        def search(self, q, n):
            asked.append(n)
            return real(q, n)

    store._index = Spy()
    store.search(x[0], 10)
    assert asked == [MIN_CANDIDATES]  # refine=1 would re-rank only 10


def test_row_of_finds_rows_by_id_and_says_minus_one_for_unknown_ids():
    store = VectorStore(4, "flat")
    ids = np.array([50, 7, 900, 3], dtype=np.int64)
    store.update(np.zeros(0, bool), ids, np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(store.row_of(np.array([3, 50, 8, 900, -1])), [3, 0, -1, 2, -1])
    assert VectorStore(4, "flat").row_of(np.array([1])).tolist() == [-1]


def test_searching_a_mapped_matrix_lets_its_pages_go(tmp_path, monkeypatch):
    """Rows read from a memory-mapped matrix are released every RELEASE_EVERY rows, not kept resident."""
    released = []
    monkeypatch.setattr(vectors, "RELEASE_EVERY", 1000)
    monkeypatch.setattr(vectors, "release_pages", lambda array, **kw: released.append(array))
    x = _data(3000)
    store = VectorStore(64, "ivf-pq")
    store.update(np.zeros(0, bool), np.arange(3000, dtype=np.int64), x)
    store.save(tmp_path)
    loaded = VectorStore.load(tmp_path, store.settings(), 64)
    released.clear()
    for q in x[:10]:
        loaded.search(q, 10)  # 400 rows re-ranked a search: let go after the 3rd, 5th, 7th and 9th
    assert len(released) == 4 and all(a is loaded.vectors for a in released)
