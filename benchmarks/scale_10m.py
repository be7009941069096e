"""An index larger than memory: 10 million vectors in IVF-PQ, loaded and searched in a few GB.

The vectors are scale.py's calibrated synthetic data (384 dimensions, the size of
all-MiniLM-L6-v2), generated in pieces of 500,000 straight into a float16 file on disk, so the
whole float32 matrix (15.4 GB) never exists.  While generating, the exact top 10 of 200
held-out queries is kept (float32, blockwise): the ground truth for recall.

Build: ``VectorStore.from_arrays(matrix, ids, "ivf-pq").save(folder)`` (ragbook's own code: the
coarse quantiser and the PQ codebooks are trained on a 1M sample, the rows added in blocks
converted to float32 one at a time), timed, with the size of every file it writes.

Search: a fresh process loads the folder with ``VectorStore.load`` (the vectors memory-mapped,
checked for NaN in blocks whose pages are let go) and runs the queries one at a time, one
thread, as a notebook user does; it reports its resident memory (``VmRSS``) after loading and
after searching, its peak (``VmHWM``), recall@10 against the exact search, and p50/p95 latency.
With ``-n`` up to 2M the float32 matrix is kept too, and the same candidates are re-ranked with
it: the price of float16 on recall.

    python benchmarks/scale_10m.py                  # 10M (~40 min on 2 cores; 15 GB of disk)
    python benchmarks/scale_10m.py -n 1000000       # 1M, with the float16 vs float32 comparison
    python benchmarks/scale_10m.py --search-only    # search the index built by a previous run
    python benchmarks/scale_10m.py --quick          # 200,000 vectors (~30 s)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import BENCH, Report, summary_ms, versions

PIECE = 500_000
NQ = 200
QUERY_SEED = 10**6
TARGETS = {"rss_gb": 4.0, "recall10": 0.95, "p50_ms": 50.0}


def generate(n: int, folder: Path, keep_f32: bool) -> dict:
    """vectors (float16 .npy), queries, exact top-10 ids; returns timings."""
    from scale import Mixture

    mix = Mixture()
    xq = mix.sample(NQ, seed=QUERY_SEED)
    f16 = np.lib.format.open_memmap(folder / "source-f16.npy", mode="w+", dtype=np.float16, shape=(n, mix.d))
    f32 = np.lib.format.open_memmap(folder / "source-f32.npy", mode="w+", dtype=np.float32, shape=(n, mix.d)) if keep_f32 else None
    best_s = np.full((NQ, 10), -np.inf, dtype=np.float32)
    best_i = np.zeros((NQ, 10), dtype=np.int64)
    t0 = time.perf_counter()
    for piece, lo in enumerate(range(0, n, PIECE)):
        x = mix.sample(min(PIECE, n - lo), seed=1 + piece)
        f16[lo : lo + len(x)] = x
        if f32 is not None:
            f32[lo : lo + len(x)] = x
        s = xq @ x.T  # (NQ, piece): merge with the running top 10
        top = np.argpartition(-s, 10, axis=1)[:, :10]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        cand_i = np.concatenate([best_i, top + lo], axis=1)
        keep = np.argsort(-cand_s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
        print(f"  generated {lo + len(x):,} / {n:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    f16.flush()
    del f16
    if f32 is not None:
        f32.flush()
        del f32
    np.save(folder / "queries.npy", xq)
    np.save(folder / "truth.npy", best_i)
    return {"generate_s": round(time.perf_counter() - t0, 1)}


def build(folder: Path) -> dict:
    from ragbook.vectors import VectorStore

    matrix = np.load(folder / "source-f16.npy", mmap_mode="r")
    index_dir = folder / "index"
    shutil.rmtree(index_dir, ignore_errors=True)
    index_dir.mkdir()
    t0 = time.perf_counter()
    store = VectorStore.from_arrays(matrix, np.arange(len(matrix), dtype=np.int64), "ivf-pq")
    files = store.save(index_dir)
    seconds = time.perf_counter() - t0
    (index_dir / "settings.json").write_text(json.dumps(store.settings()), encoding="utf-8")
    sizes = {name: (index_dir / name).stat().st_size for name in files}
    return {"build_s": round(seconds, 1), "nlist": store.index.nlist, "nprobe": store.index.nprobe,
            "bytes": sizes, "disk_gb": round(sum(sizes.values()) / 1e9, 2)}


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def search(folder: Path) -> dict:
    """Runs in a fresh process: load, search, measure."""
    import faiss

    from ragbook.vectors import VectorStore

    index_dir = folder / "index"
    settings = json.loads((index_dir / "settings.json").read_text(encoding="utf-8"))
    xq, truth = np.load(folder / "queries.npy"), np.load(folder / "truth.npy")
    rss0 = status_kb("VmRSS")
    t0 = time.perf_counter()
    store = VectorStore.load(index_dir, settings, xq.shape[1])
    load_s = time.perf_counter() - t0
    rss_loaded = status_kb("VmRSS")
    found, times = [], []
    for rep in range(2):  # the first pass warms the lists and rows it reads
        for q in xq:
            t = time.perf_counter()
            rows, _ = store.search(q, 10)
            times.append(time.perf_counter() - t) if rep else None
            if rep:
                found.append(store.ids[rows])
    recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))
    out = {"load_s": round(load_s, 1), "rss_before_load_mb": rss0 // 1024, "rss_loaded_mb": rss_loaded // 1024,
           "rss_after_search_mb": status_kb("VmRSS") // 1024, "peak_rss_mb": status_kb("VmHWM") // 1024,
           "recall10": round(recall, 4), "latency": summary_ms(times)}
    f32_path = folder / "source-f32.npy"
    if f32_path.exists():  # the same candidates re-ranked with float32: what float16 costs
        f32 = np.load(f32_path, mmap_mode="r")
        faiss.omp_set_num_threads(1)
        hits16 = hits32 = 0
        err = 0.0
        for q, t in zip(xq, truth):
            _, cand = store.index.search(q[None], 10 * store.refine)
            cand = cand[0][cand[0] >= 0]
            s32 = np.asarray(f32[cand], dtype=np.float32) @ q
            s16 = np.asarray(store.vectors[cand], dtype=np.float32) @ q
            err = max(err, float(np.abs(s32 - s16).max()))
            hits32 += len(set(cand[np.argsort(-s32)[:10]].tolist()) & set(t.tolist()))
            hits16 += len(set(cand[np.argsort(-s16)[:10]].tolist()) & set(t.tolist()))
        out["float32_rerank_recall10"] = hits32 / (10 * len(xq))
        out["float16_rerank_recall10"] = hits16 / (10 * len(xq))
        out["float16_max_score_error"] = round(err, 5)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="200,000 vectors (~30 s)")
    parser.add_argument("--search-only", action="store_true", help="search the index a previous run built")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n = 200_000
    if args.child:
        print(json.dumps(search(args.child)))
        return 0
    folder = BENCH / ".cache" / f"scale-{args.n}"
    name = "scale-10m" if args.n == 10_000_000 else f"scale-n{args.n}"
    rep = Report(name, argv, n=args.n, dimension=384, queries=NQ, index="ivf-pq",
                 versions=versions("faiss-cpu", "numpy"))
    rep.data["command"] = " ".join(["python", "benchmarks/scale_10m.py", *(argv if argv is not None else sys.argv[1:])])
    figures: dict = {}
    if not args.search_only:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rep.section(f"generating {args.n:,} vectors in pieces of {PIECE:,}")
        figures.update(generate(args.n, folder, keep_f32=args.n <= 2_000_000))
        rep.section("building the IVF-PQ index (ragbook VectorStore.save)")
        figures.update(build(folder))
        (folder / "build.json").write_text(json.dumps(figures), encoding="utf-8")
        os.remove(folder / "source-f16.npy")  # the index holds its own copy
    else:
        figures.update(json.loads((folder / "build.json").read_text(encoding="utf-8")))
    rep.section("loading and searching in a fresh process")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, __file__, "--child", str(folder)], capture_output=True, text=True,
                           env=env, check=True)
    figures.update(json.loads(child.stdout.strip().splitlines()[-1]))
    for key, value in figures.items():
        rep.info(key, value, f"{key}: {value}")
    gb = figures["rss_after_search_mb"] / 1024
    rep.check("rss_gb", round(gb, 2), f"<= {TARGETS['rss_gb']} GB", gb <= TARGETS["rss_gb"],
              f"resident memory of the loaded index after {2 * NQ} searches: {gb:.2f} GB")
    peak = figures["peak_rss_mb"] / 1024
    rep.check("peak_rss_gb", round(peak, 2), f"<= {TARGETS['rss_gb']} GB", peak <= TARGETS["rss_gb"],
              f"peak resident memory while loading (NaN scan of the mapped matrix) and searching: {peak:.2f} GB")
    r = figures["recall10"]
    rep.check("recall10", r, f">= {TARGETS['recall10']}", r >= TARGETS["recall10"], f"recall@10 against exact search: {r:.4f}")
    p50 = figures["latency"]["p50_ms"]
    rep.check("p50_ms", p50, f"<= {TARGETS['p50_ms']} ms", p50 <= TARGETS["p50_ms"],
              f"p50 search latency, one thread: {p50:.2f} ms (p95 {figures['latency']['p95_ms']:.2f})")
    rep.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
