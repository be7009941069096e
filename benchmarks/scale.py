"""Dense search at scale: flat, HNSW and IVF (and their PQ forms) through ragbook's VectorStore, against raw FAISS.

Data: synthetic, L2-normalised 384-dimensional vectors (the size of all-MiniLM-L6-v2): a
mixture of 1,000 topics of uneven size (log-normal weights) inside 12 broad subjects, each
topic a 32-dimensional Gaussian patch in its own random subspace, plus a little isotropic
noise and a shared mean direction.  Its parameters were chosen (``--calibrate``) so that at
~10k vectors the HNSW and IVF recall curves, the local intrinsic dimension and the cosine
statistics match real MiniLM embeddings of the shared corpora.  Matching the cosine
statistics alone is not enough: clusters with full-rank noise (``--data hard``) have the same
global statistics but are much harder for HNSW and IVF than text embeddings, and uniform noise
on the sphere is hopeless; either would understate recall and inflate the recommended settings.
Queries: 200 held-out vectors from the same distribution.

For each index kind: build time, memory (bytes of the serialised FAISS index, plus the float32
matrix and ids ragbook keeps beside it), p50/p95 single-query latency with one OpenMP thread
(a notebook user runs one query at a time, and FAISS runs a single query on one thread anyway
for flat, HNSW and IVF), and recall@10 against exact search, both for ``k=10`` and for the
``k=50`` candidates that ragbook's Retriever actually asks for.  "raw" is the same FAISS
structure searched directly (no IndexIDMap2, no VectorStore), interleaved query by query with
ragbook.  Also: the flat-search latency curve by size (for the auto threshold) and the cost of
the first search after an edit (HNSW is rebuilt from scratch after any removal).

    python benchmarks/scale.py               # 100k vectors (~3-5 min)
    python benchmarks/scale.py --quick       # 20k vectors (~1 min)
    python benchmarks/scale.py --million     # 1M vectors (long: ~30-60 min on 2 cores)
    python benchmarks/scale.py --calibrate   # compare the synthetic data with real embeddings
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _common import Report, clock, summary_ms, versions

D = 384
CLUSTERS = 1000
NQ = 200
RECALL_TARGET = 0.95
EF_SWEEP = (32, 64, 96, 128, 256)
NPROBE_SWEEP = (8, 16, 32, 64, 96, 128, 192, 256, 384)

# The default data ("calibrated"): topics within 12 broad subjects, each topic a 32-dimensional
# patch (decaying spectrum) in its own random subspace, plus a little isotropic noise and a
# shared mean direction.  Chosen so that, at the same size (~10k), HNSW and IVF recall curves,
# local intrinsic dimension and the cosine statistics match real all-MiniLM-L6-v2 embeddings of
# the shared corpora (run --calibrate).  The "hard" data (--data hard) has full-rank noise in
# each cluster: similar global statistics, but recall curves well below real data's at equal
# size (HNSW efSearch=64: 0.90 vs 0.997 at 10k), a pessimistic bound.
SUBJECTS = 12
TOPIC_RANK = 32
CALIBRATED = {"decay": 0.6, "local": 1.2, "iso": 0.3, "sub": 0.5, "mean": 0.5}
HARD = {"spread": 0.9, "decay": 0.65, "mean": 0.45}


class Mixture:
    """A fixed mixture of low-rank Gaussian topics on the unit sphere; ``sample(n, seed)`` draws vectors."""

    def __init__(self, d: int = D, clusters: int = CLUSTERS, seed: int = 0) -> None:
        p = CALIBRATED
        rng = np.random.default_rng(seed)
        self.d = d
        mean = rng.standard_normal(d)
        mean /= np.linalg.norm(mean)
        subjects = rng.standard_normal((SUBJECTS, d))
        subjects /= np.linalg.norm(subjects, axis=1, keepdims=True)
        own = rng.standard_normal((clusters, d))
        own /= np.linalg.norm(own, axis=1, keepdims=True)
        centres = subjects[rng.integers(0, SUBJECTS, clusters)] + p["sub"] * own + p["mean"] * mean
        self.centres = (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)
        w = rng.lognormal(0.0, 1.0, clusters)
        self.weights = w / w.sum()
        self.bases = np.stack([np.linalg.qr(rng.standard_normal((d, TOPIC_RANK)))[0] for _ in range(clusters)]).astype(np.float32)
        scale = (np.arange(TOPIC_RANK) + 1.0) ** -p["decay"]
        self.scale = (scale / np.linalg.norm(scale) * p["local"]).astype(np.float32)
        self.iso = p["iso"] / math.sqrt(d)

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        label = rng.choice(len(self.weights), size=n, p=self.weights)
        order = np.argsort(label, kind="stable")
        bounds = np.searchsorted(label[order], np.arange(len(self.weights) + 1))
        out = np.empty((n, self.d), dtype=np.float32)
        for k in range(len(self.weights)):
            rows = order[bounds[k] : bounds[k + 1]]
            if len(rows):
                z = rng.standard_normal((len(rows), TOPIC_RANK), dtype=np.float32) * self.scale
                out[rows] = self.centres[k] + z @ self.bases[k].T
        for lo in range(0, n, 100_000):  # in blocks: no second full-size temporary
            block = out[lo : lo + 100_000]
            block += rng.standard_normal(block.shape, dtype=np.float32) * self.iso
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        return out


class HardMixture:
    """Clusters with full-rank anisotropic noise: real-looking global statistics, hard neighbourhoods."""

    def __init__(self, d: int = D, clusters: int = CLUSTERS, seed: int = 0) -> None:
        p = HARD
        rng = np.random.default_rng(seed)
        self.d = d
        mean = rng.standard_normal(d)
        mean /= np.linalg.norm(mean)
        centres = rng.standard_normal((clusters, d))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        centres = centres + p["mean"] * mean
        self.centres = (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)
        w = rng.lognormal(0.0, 1.0, clusters)
        self.weights = w / w.sum()
        scale = (np.arange(d) + 1.0) ** -p["decay"]
        self.scale = (scale / np.linalg.norm(scale) * p["spread"]).astype(np.float32)
        self.spread = rng.uniform(0.7, 1.3, clusters).astype(np.float32)
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        self.basis = q.astype(np.float32)

    def sample(self, n: int, seed: int, block: int = 100_000) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.d), dtype=np.float32)
        for lo in range(0, n, block):
            m = min(block, n - lo)
            label = rng.choice(len(self.weights), size=m, p=self.weights)
            z = rng.standard_normal((m, self.d), dtype=np.float32) * self.scale
            x = self.centres[label] + (z @ self.basis) * self.spread[label, None]
            out[lo : lo + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out


def local_dimension(x: np.ndarray, k: int = 20, m: int = 1000) -> float:
    """Median maximum-likelihood local intrinsic dimension (Levina-Bickel) over ``m`` points."""
    import faiss

    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    sims = flat.search(x[:m], k + 1)[0][:, 1:]
    dist = np.sqrt(np.maximum(2.0 - 2.0 * sims, 1e-12))
    return float(np.median((k - 1) / np.sum(np.log(dist[:, -1:] / dist[:, :-1]), axis=1)))


def difficulty(xb: np.ndarray, xq: np.ndarray) -> dict[str, list[float]]:
    """Recall@10 of HNSW (M=32, efC=80) at efSearch 16/32/64 and of IVF (4*sqrt(n) lists) at nprobe 4/8/16/32."""
    import faiss

    truth = exact_topk(xb, xq, 10)
    h = faiss.IndexHNSWFlat(xb.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    h.hnsw.efConstruction = 80
    h.add(xb)
    out: dict[str, list[float]] = {"hnsw_ef16_32_64": [], "ivf_nprobe4_8_16_32": []}
    for ef in (16, 32, 64):
        h.hnsw.efSearch = ef
        out["hnsw_ef16_32_64"].append(round(recall(list(h.search(xq, 10)[1]), truth), 3))
    nlist = int(4 * math.sqrt(len(xb)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(xb.shape[1]), xb.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.min_points_per_centroid = 1  # quiet: small training sets are the point here
    ivf.train(xb)
    ivf.add(xb)
    for p in (4, 8, 16, 32):
        ivf.nprobe = p
        out["ivf_nprobe4_8_16_32"].append(round(recall(list(ivf.search(xq, 10)[1]), truth), 3))
    return out


def describe(x: np.ndarray, sample: int = 2000, seed: int = 0) -> dict[str, float]:
    """Cosine statistics that decide how hard ANN search is: nearest neighbour, random pairs, spectrum."""
    rng = np.random.default_rng(seed)
    s = x[rng.choice(len(x), min(sample, len(x)), replace=False)]
    sims = s @ s.T
    np.fill_diagonal(sims, -np.inf)
    nn = sims.max(axis=1)
    pairs = sims[np.triu_indices(len(s), 1)]
    ev = np.linalg.svd(s - s.mean(0), compute_uv=False) ** 2
    ev /= ev.sum()
    return {"nn_cos_median": float(np.median(nn)), "random_cos_mean": float(pairs.mean()),
            "random_cos_std": float(pairs.std()), "norm_of_mean": float(np.linalg.norm(s.mean(0))),
            "pca_top10_share": float(ev[:10].sum()), "pca_dims_for_80pct": int(np.searchsorted(np.cumsum(ev), 0.8) + 1)}


# -- measuring ------------------------------------------------------------------------------------


def faiss_bytes(index) -> int:
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def exact_topk(xb: np.ndarray, xq: np.ndarray, k: int) -> np.ndarray:
    import faiss

    flat = faiss.IndexFlatIP(xb.shape[1])
    flat.add(xb)
    return flat.search(xq, k)[1]


def recall(found: list[np.ndarray], truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k].tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth)]))


def unwrap(index):
    """The FAISS structure inside ragbook's IndexIDMap2 wrapper (IVF carries its own ids)."""
    import faiss

    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index


def run_queries(store, raw, xq: np.ndarray, truth: np.ndarray, labels_are_ids: bool = False) -> dict:
    """Single-query latency and recall@10 of ragbook (k=10 and k=50) and raw FAISS (k=10).

    Each method runs over all queries in one pass, passes in the order A B C C B A, so that
    neither side searches a query whose graph nodes or lists the other has just pulled into
    the CPU cache, and drift in machine load hits all three alike.
    """
    def ragbook10(q):
        return store.search(q, 10)[0]

    def raw10(q):
        labels = raw.search(q.reshape(1, -1), 10)[1][0]
        return store.row_of(labels) if labels_are_ids else labels

    def ragbook50(q):
        return store.search(q, 50)[0]

    methods = {"ragbook": ragbook10, "raw": raw10, "ragbook_k50": ragbook50}
    times: dict[str, list[float]] = {m: [] for m in methods}
    found: dict[str, list[np.ndarray]] = {}
    for name in [*methods, *reversed(methods)]:
        fn = methods[name]
        rows = []
        for q in xq:
            t0 = time.perf_counter()
            rows.append(fn(q))
            times[name].append(time.perf_counter() - t0)
        found[name] = rows
    out = {m: summary_ms(t) for m, t in times.items()}
    out["overhead_p50_ms"] = round(out["ragbook"]["p50_ms"] - out["raw"]["p50_ms"], 4)
    out["recall10"] = recall(found["ragbook"], truth)
    out["recall10_raw"] = recall(found["raw"], truth)
    out["recall10_of_k50"] = recall(found["ragbook_k50"], truth)
    return out


def make_store(kind: str, xb: np.ndarray, ids: np.ndarray, **params):
    """A VectorStore holding ``xb`` (as Index.add would leave it), FAISS structure built and timed."""
    from ragbook.vectors import VectorStore

    store = VectorStore(xb.shape[1], kind, **params)
    store.update(np.zeros(0, dtype=bool), ids, xb)
    t_build, _ = clock(lambda: store.index)
    t_first, _ = clock(lambda: store.search(xb[0], 10))  # builds the id -> row dict once
    return store, t_build, t_first, dict_bytes(store.ids)


def dict_bytes(ids: np.ndarray) -> int:
    """Memory of VectorStore's id -> row dict (rebuilt the same way, under tracemalloc)."""
    tracemalloc.start()
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del row_of
    return size


def memory(store, row_map_bytes: int) -> dict[str, int]:
    idx = faiss_bytes(store.index)
    kept = int(np.asarray(store.vectors).nbytes + store.ids.nbytes)
    return {"faiss_index_bytes": idx, "ragbook_vectors_ids_bytes": kept, "row_map_bytes": row_map_bytes,
            "ragbook_total_bytes": idx + kept + row_map_bytes}


def fmt_mb(b: int) -> str:
    return f"{b / 2**20:7.1f} MB"


# -- main ---------------------------------------------------------------------------------------


def real_embeddings() -> np.ndarray:
    """MiniLM vectors of ~10k real texts: SQuAD questions and paragraphs, chunks of the shared books."""
    import json

    import ragbook
    from _common import SHARED_DATA

    squad = SHARED_DATA / "squad2-dev-cs224n"
    texts = [json.loads(line)["question"] for line in open(squad / "questions.jsonl", encoding="utf-8")]
    texts += [json.loads(line)["text"] for line in open(squad / "corpus.jsonl", encoding="utf-8")]
    index = ragbook.Index()
    corpora = SHARED_DATA / "corpora"
    docs = ragbook.load([corpora / "openstax-intro-python" / "markdown", corpora / "inaugural", corpora / "gutenberg"])
    texts += [c.text for d in docs for c in index.chunker.split(d)]
    return index.embedder.encode_documents(list(dict.fromkeys(texts)))


def calibrate(rep: Report, real_path: Path | None) -> None:
    rep.section("calibration: synthetic data vs real all-MiniLM-L6-v2 embeddings, at the same size")
    if real_path is not None and real_path.exists():
        real = np.load(real_path)
    else:
        print("   embedding ~10k real texts (a few minutes)...", flush=True)
        real = real_embeddings()
        if real_path is not None:
            np.save(real_path, real)
    perm = np.random.default_rng(0).permutation(len(real))
    sets = {"real": (real[perm[NQ:]], real[perm[:NQ]])}
    n = len(real) - NQ
    for name, cls in (("calibrated", Mixture), ("hard", HardMixture)):
        mix = cls()
        sets[name] = (mix.sample(n, seed=0), mix.sample(NQ, seed=99))
    iso = np.random.default_rng(0).standard_normal((n + NQ, D)).astype(np.float32)
    iso /= np.linalg.norm(iso, axis=1, keepdims=True)
    sets["uniform"] = (iso[NQ:], iso[:NQ])
    for name, (xb, xq) in sets.items():
        row = {"n": len(xb), "local_dimension": round(local_dimension(xb), 1), **difficulty(xb, xq),
               **{k: round(v, 3) for k, v in describe(xb).items()}}
        rep.info(f"calibration_{name}", row, f"{name:>10}: " + ", ".join(f"{k} {v}" for k, v in row.items()))


def threads_effect(rep: Report, stores: dict, xq: np.ndarray, cores: int) -> dict:
    """Single-query latency and CPU time with one OpenMP thread vs all, on ``store.index`` itself.

    Calls the FAISS object directly: VectorStore.search may pin its own thread count, and this
    measures what that choice is worth (OpenMP's pool is woken for every single-query search
    otherwise; on a busy machine that wake-up waits for a time slice).
    """
    import faiss

    rep.section(f"one query at a time on the FAISS structure ragbook builds: 1 OpenMP thread vs {cores} (FAISS's default)")
    out = {}
    for kind, store in stores.items():
        res: dict[int, dict] = {}
        for threads in (1, cores, cores, 1):
            faiss.omp_set_num_threads(threads)
            t, c0 = [], time.process_time()
            index = store.index
            for q in xq:
                t0 = time.perf_counter()
                index.search(q.reshape(1, -1), 50)
                t.append(time.perf_counter() - t0)
            cpu = (time.process_time() - c0) / len(xq)
            prev = res.get(threads)
            res[threads] = {"times": (prev["times"] if prev else []) + t, "cpu": (prev["cpu"] if prev else []) + [cpu]}
        out[kind] = {th: {**summary_ms(r["times"]), "cpu_ms_per_query": round(1000 * sum(r["cpu"]) / len(r["cpu"]), 4)}
                     for th, r in res.items()}
        print("   " + f"{kind:5}: " + ";  ".join(
            f"{th} thread{'s' if th > 1 else ''} p50 {v['p50_ms']:.3f} / p95 {v['p95_ms']:.3f} ms, cpu {v['cpu_ms_per_query']:.3f} ms"
            for th, v in out[kind].items()), flush=True)
    faiss.omp_set_num_threads(cores)
    rep.info("threads_effect", out)
    return out


def flat_curve(rep: Report, mix: Mixture, sizes: list[int], xq: np.ndarray, cores: int) -> dict[int, dict]:
    import faiss

    rep.section("flat (exact) search latency by size, 1 thread, k=50 as ragbook's Retriever asks")
    faiss.omp_set_num_threads(1)
    curve = {}
    xb = mix.sample(max(sizes), seed=2)
    for n in sizes:
        flat = faiss.IndexFlatIP(D)
        flat.add(xb[:n])
        t = []
        for q in xq[:100]:
            t0 = time.perf_counter()
            flat.search(q.reshape(1, -1), 50)
            t.append(time.perf_counter() - t0)
        curve[n] = summary_ms(t)
        print(f"   n={n:>9,}: p50 {curve[n]['p50_ms']:7.2f} ms  p95 {curve[n]['p95_ms']:7.2f} ms", flush=True)
        del flat
    faiss.omp_set_num_threads(cores)
    rep.info("flat_latency_by_size", curve)
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=None, help="vectors (default 100,000; 20,000 with --quick)")
    parser.add_argument("--million", action="store_true", help="1,000,000 vectors")
    parser.add_argument("--quick", action="store_true", help="20k vectors, fewer sweeps (~1 min)")
    parser.add_argument("--pq", action="store_true", help="also the product-quantised kinds: pq, hnsw-pq, ivf-pq")
    parser.add_argument("--efc", type=lambda v: [int(x) for x in v.split(",") if x], default=None,
                        help="efConstruction values for extra raw FAISS HNSW builds (default 200; 40,200 with --quick)")
    parser.add_argument("--skip-update", action="store_true", help="skip the search-after-edit measurement")
    parser.add_argument("--data", choices=("calibrated", "hard"), default="calibrated",
                        help="synthetic data: calibrated to real embeddings (default) or hard (full-rank cluster noise)")
    parser.add_argument("--calibrate", action="store_true", help="only compare the synthetic data with real embeddings")
    parser.add_argument("--real", type=Path, default=None, help="a .npy of real embeddings for --calibrate")
    args = parser.parse_args(argv)
    n = args.n or (1_000_000 if args.million else 20_000 if args.quick else 100_000)
    if args.efc is None:
        args.efc = [40, 200] if args.quick else [200]
    import faiss

    cores = faiss.omp_get_max_threads()
    rep = Report("scale", argv if argv is not None else sys.argv[1:], n=n, dimension=D, clusters=CLUSTERS, queries=NQ,
                 data=args.data, data_params=CALIBRATED if args.data == "calibrated" else HARD,
                 build_threads=cores, search_threads=1, versions=versions("faiss-cpu", "numpy"))
    if args.calibrate:
        calibrate(rep, args.real)
        rep.write("-calibrate")
        return 0

    from ragbook.vectors import AUTO_THRESHOLD, VectorStore

    mix = HardMixture() if args.data == "hard" else Mixture()
    t_gen, xb = clock(lambda: mix.sample(n, seed=0))
    xq = mix.sample(NQ, seed=99)
    ids = np.random.default_rng(7).integers(0, 2**60, n, dtype=np.int64)  # content-hash-like ids, as ragbook's
    truth = exact_topk(xb, xq, 10)
    rep.info("data_seconds", round(t_gen, 2), f"{n:,} x {D} vectors + {NQ} held-out queries generated in {t_gen:.1f} s; "
                                              f"exact top-10 computed; builds use {cores} threads, searches 1")
    stats = describe(xb)
    rep.info("data_stats", stats, "data: " + ", ".join(f"{k} {v:.3g}" for k, v in stats.items()))
    results: dict[str, dict] = {}

    # -- flat --------------------------------------------------------------------------------
    rep.section("flat (IndexFlatIP in IndexIDMap2)")
    store, t_build, t_first, rowmap = make_store("flat", xb, ids)
    t_raw_build, _ = clock(lambda: faiss.IndexFlatIP(D).add(xb))
    raw_flat = unwrap(store.index)  # the very structure ragbook searches, without the wrappers
    faiss.omp_set_num_threads(1)
    r = run_queries(store, raw_flat, xq, truth)
    faiss.omp_set_num_threads(cores)
    mem = memory(store, rowmap)
    results["flat"] = {"build_s": t_build, "raw_build_s": t_raw_build, "first_search_s": t_first, **mem, **r}
    print(f"   build {t_build:.2f} s (raw {t_raw_build:.2f} s), first search {t_first * 1000:.0f} ms; "
          f"index {fmt_mb(mem['faiss_index_bytes'])} + ragbook's vectors/ids {fmt_mb(mem['ragbook_vectors_ids_bytes'])} "
          f"+ id map {fmt_mb(rowmap)}")
    print(f"   k=10: ragbook p50 {r['ragbook']['p50_ms']:.2f} / p95 {r['ragbook']['p95_ms']:.2f} ms; raw p50 "
          f"{r['raw']['p50_ms']:.2f} / p95 {r['raw']['p95_ms']:.2f} ms; k=50 ragbook p50 {r['ragbook_k50']['p50_ms']:.2f} ms; "
          f"recall@10 {r['recall10']:.3f}")
    flat_store = store
    del raw_flat

    # -- hnsw --------------------------------------------------------------------------------
    rep.section(f"hnsw (IndexHNSWFlat M=32, efConstruction=80, in IndexIDMap2); efSearch sweep")
    store, t_build, t_first, rowmap = make_store("hnsw", xb, ids, hnsw_m=32)
    mem = memory(store, rowmap)
    inner = unwrap(store.index)
    print(f"   build {t_build:.1f} s, first search {t_first * 1000:.0f} ms; index {fmt_mb(mem['faiss_index_bytes'])} "
          f"+ ragbook's vectors/ids {fmt_mb(mem['ragbook_vectors_ids_bytes'])} + id map {fmt_mb(rowmap)}")
    sweep = {}
    faiss.omp_set_num_threads(1)
    for ef in EF_SWEEP:
        inner.hnsw.efSearch = ef
        store.ef_search = ef
        sweep[ef] = r = run_queries(store, inner, xq, truth)
        print(f"   efSearch {ef:>4}: recall@10 {r['recall10']:.3f} (top 10 of k=50: {r['recall10_of_k50']:.3f}); ragbook p50 "
              f"{r['ragbook']['p50_ms']:.3f} / p95 {r['ragbook']['p95_ms']:.3f} ms, raw p50 {r['raw']['p50_ms']:.3f} ms, "
              f"ragbook k=50 p50 {r['ragbook_k50']['p50_ms']:.3f} ms", flush=True)
    faiss.omp_set_num_threads(cores)
    results["hnsw"] = {"build_s": t_build, "first_search_s": t_first, **mem, "sweep": sweep}
    inner.hnsw.efSearch = store.ef_search = VectorStore(D).ef_search  # back to ragbook's default
    hnsw_store = store

    # raw FAISS HNSW with other efConstruction values: what a better-built graph buys
    for efc in args.efc:
        h = faiss.IndexHNSWFlat(D, 32, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = efc
        t_b, _ = clock(lambda: h.add(xb))
        rep.section(f"raw FAISS IndexHNSWFlat M=32, efConstruction={efc}: build {t_b:.1f} s, {fmt_mb(faiss_bytes(h))}")
        sw = {}
        faiss.omp_set_num_threads(1)
        for ef in EF_SWEEP:
            h.hnsw.efSearch = ef
            t, found = [], []
            for q in xq:
                t0 = time.perf_counter()
                found.append(h.search(q.reshape(1, -1), 10)[1][0])
                t.append(time.perf_counter() - t0)
            sw[ef] = {"raw": summary_ms(t), "recall10": recall(found, truth)}
            print(f"   efSearch {ef:>4}: recall@10 {sw[ef]['recall10']:.3f}; raw p50 {sw[ef]['raw']['p50_ms']:.3f} / "
                  f"p95 {sw[ef]['raw']['p95_ms']:.3f} ms", flush=True)
        faiss.omp_set_num_threads(cores)
        results[f"hnsw_raw_efc{efc}"] = {"build_s": t_b, "faiss_index_bytes": faiss_bytes(h), "sweep": sw}
        del h

    # -- ivf ---------------------------------------------------------------------------------
    store, t_build, t_first, rowmap = make_store("ivf", xb, ids)
    ivf = unwrap(store.index)
    nlist, default_nprobe = ivf.nlist, ivf.nprobe
    rep.section(f"ivf (IndexIVFFlat, nlist={nlist}, ragbook's default nprobe={default_nprobe}); nprobe sweep")
    mem = memory(store, rowmap)
    # raw FAISS doing the same (train on the same points, same nlist)
    def raw_ivf():
        q = faiss.IndexFlatIP(D)
        index = faiss.IndexIVFFlat(q, D, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = xb if n <= nlist * 256 else xb[np.sort(np.random.default_rng(0).choice(n, nlist * 256, replace=False))]
        index.train(sample)
        index.add(xb)
        return index
    t_raw_build = None
    if n <= 200_000:
        t_raw_build, raw_index = clock(raw_ivf)
        del raw_index
    print(f"   build {t_build:.1f} s (raw FAISS {t_raw_build if t_raw_build is None else round(t_raw_build, 1)} s), "
          f"first search {t_first * 1000:.0f} ms; index {fmt_mb(mem['faiss_index_bytes'])} "
          f"+ ragbook's vectors/ids {fmt_mb(mem['ragbook_vectors_ids_bytes'])} + id map {fmt_mb(rowmap)}")
    sweep = {}
    faiss.omp_set_num_threads(1)
    for p in sorted(set(NPROBE_SWEEP) | {default_nprobe}):
        if p > nlist:
            continue
        ivf.nprobe = p
        sweep[p] = r = run_queries(store, ivf, xq, truth, labels_are_ids=True)
        print(f"   nprobe {p:>4}{'*' if p == default_nprobe else ' '}: recall@10 {r['recall10']:.3f} (top 10 of k=50: "
              f"{r['recall10_of_k50']:.3f}); ragbook p50 {r['ragbook']['p50_ms']:.3f} / p95 {r['ragbook']['p95_ms']:.3f} ms, "
              f"raw p50 {r['raw']['p50_ms']:.3f} ms", flush=True)
    faiss.omp_set_num_threads(cores)
    results["ivf"] = {"build_s": t_build, "raw_build_s": t_raw_build, "first_search_s": t_first, "nlist": nlist,
                      "default_nprobe": default_nprobe, **mem, "sweep": sweep}
    ivf_store = store
    ivf.nprobe = default_nprobe

    # -- product quantisation: pq, hnsw-pq, ivf-pq ---------------------------------------------
    if args.pq:
        for kind in ("pq", "hnsw-pq", "ivf-pq"):
            store, t_build, t_first, rowmap = make_store(kind, xb, ids)
            inner = unwrap(store.index)
            rep.section(f"{kind} ({type(inner).__name__}, {store.pq_m} bytes a vector; ragbook re-ranks "
                        f"{store.refine} x k candidates with the stored float vectors; raw = codes alone)")
            mem = memory(store, rowmap)
            faiss.omp_set_num_threads(1)
            r = run_queries(store, inner, xq, truth, labels_are_ids=kind == "ivf-pq")
            faiss.omp_set_num_threads(cores)
            results[kind] = {"build_s": t_build, "first_search_s": t_first, "pq_m": store.pq_m, "refine": store.refine,
                             **mem, **r}
            print(f"   build {t_build:.1f} s; index {fmt_mb(mem['faiss_index_bytes'])} (the float matrix, "
                  f"{fmt_mb(mem['ragbook_vectors_ids_bytes'])}, is memory-mapped from disk once saved)")
            print(f"   recall@10 {r['recall10']:.3f} with re-ranking, {r['recall10_raw']:.3f} from codes alone; "
                  f"ragbook p50 {r['ragbook']['p50_ms']:.3f} / p95 {r['ragbook']['p95_ms']:.3f} ms, raw p50 "
                  f"{r['raw']['p50_ms']:.3f} ms; k=50 p50 {r['ragbook_k50']['p50_ms']:.3f} ms "
                  f"(recall@10 of k=50 {r['recall10_of_k50']:.3f})", flush=True)
            del store, inner

    if cores > 1:
        results["threads"] = threads_effect(rep, {"flat": flat_store, "hnsw": hnsw_store, "ivf": ivf_store}, xq, cores)

    # -- an edit: remove 10 vectors, add 10, search ------------------------------------------
    if not args.skip_update:
        rep.section("after an edit (10 vectors removed, 10 added): time of the next search")
        edits = {}
        fresh = mix.sample(10, seed=123)
        fresh_ids = np.random.default_rng(8).integers(0, 2**60, 10, dtype=np.int64)
        faiss.omp_set_num_threads(1)
        for kind, s in (("flat", flat_store), ("ivf", ivf_store), ("hnsw", hnsw_store)):
            # what Index.add calls even when nothing changed: keep everything, add nothing
            noop = []
            for _ in range(3):
                noop.append(clock(lambda: s.update(np.ones(len(s), dtype=bool), np.zeros(0, np.int64), np.zeros((0, D), np.float32)))[0])
                t_noop_next, _ = clock(lambda: s.search(xq[2], 10))
            t_noop = sorted(noop)[1]
            keep = np.ones(len(s), dtype=bool)
            keep[np.arange(10) * (len(s) // 10)] = False
            t_upd, _ = clock(lambda: s.update(keep, fresh_ids, fresh))
            t_next, _ = clock(lambda: s.search(xq[1], 10))
            t_after, _ = clock(lambda: s.search(xq[3], 10))
            edits[kind] = {"noop_update_s": t_noop, "noop_next_search_s": t_noop_next, "update_s": t_upd,
                           "next_search_s": t_next, "search_after_s": t_after}
            print(f"   {kind:5}: no-op update {t_noop * 1000:7.1f} ms (+ next search {t_noop_next * 1000:6.1f} ms); "
                  f"edit: update {t_upd * 1000:7.1f} ms, next search {t_next * 1000:9.1f} ms, then {t_after * 1000:.2f} ms", flush=True)
        faiss.omp_set_num_threads(cores)
        results["edit"] = edits
    del flat_store, hnsw_store, ivf_store

    sizes = [s for s in (10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000) if s <= max(n, 100_000)]
    curve = flat_curve(rep, mix, sizes, xq, cores)
    rep.info("results", results)

    # -- verdicts and recommendations ----------------------------------------------------------
    rep.section("summary")
    ef_ok = [ef for ef in EF_SWEEP if results["hnsw"]["sweep"][ef]["recall10"] >= RECALL_TARGET]
    ef_best = min(ef_ok) if ef_ok else None
    current_ef = VectorStore(D).ef_search
    rep.check("hnsw_recall10_at_default_ef", results["hnsw"]["sweep"][current_ef]["recall10"] if current_ef in results["hnsw"]["sweep"] else None,
              f">= {RECALL_TARGET}", current_ef in results["hnsw"]["sweep"] and results["hnsw"]["sweep"][current_ef]["recall10"] >= RECALL_TARGET,
              f"HNSW recall@10 at ragbook's efSearch={current_ef} (k=10): {results['hnsw']['sweep'].get(current_ef, {}).get('recall10', float('nan')):.3f}")
    rep.info("recommended_ef_search", ef_best, f"   smallest efSearch in {EF_SWEEP} with recall@10 >= {RECALL_TARGET} at k=10: {ef_best}")
    np_ok = sorted(p for p, r in results["ivf"]["sweep"].items() if r["recall10"] >= RECALL_TARGET)
    np_best = np_ok[0] if np_ok else None
    d_np = results["ivf"]["default_nprobe"]
    rep.check("ivf_recall10_at_default_nprobe", results["ivf"]["sweep"][d_np]["recall10"], f">= {RECALL_TARGET}",
              results["ivf"]["sweep"][d_np]["recall10"] >= RECALL_TARGET,
              f"IVF recall@10 at ragbook's default nprobe={d_np} (nlist {results['ivf']['nlist']}): {results['ivf']['sweep'][d_np]['recall10']:.3f} "
              f"(p50 {results['ivf']['sweep'][d_np]['ragbook']['p50_ms']:.2f} ms)")
    rep.info("recommended_nprobe", np_best, f"   smallest nprobe with recall@10 >= {RECALL_TARGET}: {np_best} "
             f"(= nlist/{nlist / np_best:.0f}, ~{np_best / math.sqrt(n):.2f}*sqrt(n))" if np_best else "   no nprobe reached the target")
    for kind, r in (("flat", results["flat"]), ("hnsw", results["hnsw"]["sweep"][current_ef]),
                    ("ivf", results["ivf"]["sweep"][d_np])):
        ov, base = r["overhead_p50_ms"], r["raw"]["p50_ms"]
        ok = ov <= max(0.1, 0.05 * base)
        rep.check(f"{kind}_overhead_p50_ms", ov, "<= 0.1 ms or 5% of raw", ok,
                  f"VectorStore.search overhead over raw FAISS ({kind}, ragbook's defaults, p50): {ov * 1000:.0f} us "
                  f"on {base:.3f} ms ({100 * ov / base:+.1f}%)")
    for kind in ("pq", "hnsw-pq", "ivf-pq"):
        if kind in results:
            r = results[kind]
            rep.check(f"{kind}_recall10", r["recall10"], f">= {RECALL_TARGET}", r["recall10"] >= RECALL_TARGET,
                      f"{kind} recall@10 with re-ranking (k=10): {r['recall10']:.3f}, p50 {r['ragbook']['p50_ms']:.2f} ms, "
                      f"index {r['faiss_index_bytes'] / 2**20:.1f} MB")
    rep.info("current_auto_threshold", AUTO_THRESHOLD)
    size = "-quick" if args.quick else "-1m" if args.million else f"-n{n}" if args.n else ""
    write_summary = size + ("-hard" if args.data == "hard" else "")
    rep.write(write_summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
