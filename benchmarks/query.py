"""Search latency of a ragbook index against raw encode + FAISS search on the same index.

Chunks: ~20-word passages cut from the shared corpora (OpenStax Python, US inaugural
addresses, Pride and Prejudice, SQuAD paragraphs), one document each, embedded for real by
ragbook (``Index.add_documents``); queries: 200 real SQuAD questions.  The index is saved and
opened again with ``ragbook.open_index``, as a notebook user would, so the numbers include the
memory-mapped vectors.

Measured, k=10, each query through every method back to back in rotating order (the overhead
is the median of per-query differences, which cancels slowly changing load):
  A ragbook ``index.search(q, k=10, mode="dense")``      B ragbook ``index.search(q, k=10)`` (hybrid)
  C raw: ``SentenceTransformer.encode([q], normalize_embeddings=True)`` + ``faiss_index.search(v, 10)``
    on the same model object and the same FAISS structure (unwrapped from IndexIDMap2)
  D ragbook ``embed_query`` alone (ragbook's default encoder: ONNX Runtime int8 on a CPU; raw is torch).
Because encoding (~10-15 ms) is noisier than the overhead being measured, the overhead is
also measured without it: the same searches with the query vectors computed beforehand
(ragbook's ``embed_query`` replaced on the instance by a dict lookup) against raw FAISS alone,
plus ragbook's ``embed_query`` against raw ``encode``.  The verdict uses that decomposition
with one FAISS thread on both sides; a second check repeats it with FAISS's default thread
count (as ragbook ships), where a busy machine adds OpenMP scheduling stalls (see README).
The end-to-end difference is printed beside them.

``--large`` goes to 100,000 chunks (HNSW under ``index_type="auto"``) without embedding
90,000 more passages: the extra passages are the base ones shifted by 2-18 words, and their
vectors are the base passage's vector plus a little noise (cosine ~0.95), supplied through an
embedder stand-in at build time (ragbook accepts any object with Embedder's methods); the
saved index is then opened with the real model.

    python benchmarks/query.py            # 10,000 chunks (~3-4 min, mostly embedding)
    python benchmarks/query.py --quick    # 1,000 chunks, 60 queries (~1-2 min)
    python benchmarks/query.py --large    # 100,000 chunks (~6-10 min)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import OPENSTAX, SHARED_DATA, Report, clock, median, summary_ms, versions

OVERHEAD_TARGET_MS = 2.0
ENCODE_RATIO_TARGET = 0.5  # issue 14: a query's encoding at most half of raw torch's (ONNX Runtime on a CPU)
WORDS = 20


# -- corpus -----------------------------------------------------------------------------------


def word_streams() -> dict[str, list[str]]:
    """Running text of each shared corpus, as words."""
    streams: dict[str, list[str]] = {}
    corpora = SHARED_DATA / "corpora"
    for path in sorted(OPENSTAX.glob("*.md")):
        text = re.sub(r"[#*`|>_\[\]()]+", " ", path.read_text(encoding="utf-8"))
        streams.setdefault("openstax", []).extend(text.split())
    for path in sorted((corpora / "inaugural").glob("*.txt")):
        streams.setdefault("inaugural", []).extend(path.read_text(encoding="utf-8", errors="replace").split())
    for path in sorted((corpora / "gutenberg").glob("*.txt")):
        streams.setdefault("gutenberg", []).extend(path.read_text(encoding="utf-8", errors="replace").split())
    squad = SHARED_DATA / "squad2-dev-cs224n" / "corpus.jsonl"
    with open(squad, encoding="utf-8") as f:
        streams["squad"] = [w for line in f for w in json.loads(line)["text"].split()]
    return streams


def passages(n: int, variants: int = 1) -> tuple[list[str], list[str], np.ndarray]:
    """``n`` base passages (every other 20-word window), each with ``variants`` shifted copies.

    Returns the texts, their source names, and for each text the index of its base passage.
    """
    streams = word_streams()
    windows = [(name, i) for name, words in streams.items() for i in range(0, len(words) - WORDS - 2 * variants, WORDS)]
    if n > len(windows):
        raise SystemExit(f"only {len(windows)} windows in the shared corpora; ask for fewer")
    pick = np.linspace(0, len(windows) - 1, n).astype(int)
    texts, sources, base = [], [], []
    for b, w in enumerate(pick):
        name, start = windows[w]
        words = streams[name]
        for v in range(variants):
            s = start + 2 * v
            texts.append(" ".join(words[s : s + WORDS]))
            sources.append(f"{name}/{start:07d}+{2 * v}")
            base.append(b)
    # identical windows would be stored once; keep one of each so counts are what they say
    seen, keep = set(), []
    for i, t in enumerate(texts):
        if t not in seen:
            seen.add(t)
            keep.append(i)
    return [texts[i] for i in keep], [sources[i] for i in keep], np.asarray(base)[keep]


def questions(n: int, seed: int = 0) -> list[str]:
    with open(SHARED_DATA / "squad2-dev-cs224n" / "questions.jsonl", encoding="utf-8") as f:
        qs = [json.loads(line) for line in f]
    qs = [q["question"].strip() for q in qs if not q.get("is_impossible") and q["question"].strip()]
    random.Random(seed).shuffle(qs)
    return qs[:n]


class Borrowed:
    """Embedder stand-in for building: passage vectors from a table, everything else the real model's."""

    def __init__(self, real, table: dict[str, np.ndarray]) -> None:
        self.real = real
        self.table = table
        self.name = real.name
        self.normalize = True
        self.tokenizer = real.tokenizer
        self.max_tokens = real.max_tokens
        self.dimension = real.dimension

    def info(self):
        return self.real.info()

    def fingerprint(self):
        return self.real.fingerprint()

    def encode_documents(self, texts, *, show_progress=None):
        return np.stack([self.table[t] for t in texts]).astype(np.float32) if len(texts) else np.zeros((0, self.dimension), np.float32)

    def encode_queries(self, texts):
        return self.real.encode_queries(texts)


# -- measuring ----------------------------------------------------------------------------------


def passes(methods: dict, queries: list[str]) -> dict[str, list[float]]:
    """Time each method over all queries, passes in the order A B C ... C B A."""
    times: dict[str, list[float]] = {m: [] for m in methods}
    for name in [*methods, *reversed(methods)]:
        fn = methods[name]
        for q in queries:
            t0 = time.perf_counter()
            fn(q)
            times[name].append(time.perf_counter() - t0)
    return times


def paired(methods: dict, queries: list[str], rounds: int = 2) -> dict[str, list[float]]:
    """Time every method on each query back to back, rotating which goes first, ``rounds`` times.

    Used where the work includes encoding (milliseconds, and noisy on a shared machine):
    differences taken query by query cancel load that changes slowly, and the median of
    those differences ignores the bursts.
    """
    names = list(methods)
    times: dict[str, list[float]] = {m: [] for m in names}
    turn = 0
    for _ in range(rounds):
        for q in queries:
            order = names[turn % len(names):] + names[: turn % len(names)]
            turn += 1
            for name in order:
                t0 = time.perf_counter()
                methods[name](q)
                times[name].append(time.perf_counter() - t0)
    return times


def paired_diff_ms(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over queries of ``a`` minus ``b`` (ms)."""
    return 1000 * median([x - y for x, y in zip(times[a], times[b])])


def profile(fn, queries: list[str], top: int = 12) -> list[dict]:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        for q in queries:
            fn(q)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    calls = len(queries) * 5
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls_per_query": round(nc / calls, 2),
                     "tottime_us_per_query": round(tt / calls * 1e6, 1), "cumtime_us_per_query": round(ct / calls * 1e6, 1)})
    rows.sort(key=lambda r: -r["tottime_us_per_query"])
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=None, help="base passages to embed (default 10,000; 1,000 with --quick)")
    parser.add_argument("--large", action="store_true", help="100,000 chunks (10 shifted copies of each base passage)")
    parser.add_argument("--queries", type=int, default=None, help="queries (default 200; 60 with --quick)")
    parser.add_argument("--quick", action="store_true", help="~1 minute variant")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch threads for both sides (default: torch's own choice, as ragbook ships; "
                             "1 is steadier when other jobs share the cores)")
    args = parser.parse_args(argv)
    base_n = args.chunks or (1_000 if args.quick else 10_000)
    variants = 10 if args.large else 1
    nq = args.queries or (60 if args.quick else 200)

    import faiss

    import ragbook
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    from ragbook.vectors import AUTO_THRESHOLD

    texts, sources, base = passages(base_n, variants)
    qs = questions(nq)
    rep = Report("query", argv if argv is not None else sys.argv[1:], chunks=len(texts), base_passages=base_n,
                 queries=len(qs), k=10, quick=args.quick, large=args.large,
                 versions=versions("sentence-transformers", "torch", "onnxruntime", "faiss-cpu", "numpy"))
    rep.info("threads", {"torch": torch.get_num_threads(), "faiss": faiss.omp_get_max_threads()})
    rep.info("chunk_words", WORDS, f"{len(texts):,} chunks of {WORDS} words ({base_n:,} embedded for real), {len(qs)} SQuAD questions")

    tmp = Path(tempfile.mkdtemp(prefix="ragbook-bench-query-"))
    try:
        # -- build, save, open -----------------------------------------------------------------
        rep.section("build (not the point here; for reference)")
        emb = ragbook.Embedder()
        t_load, _ = clock(lambda: emb.model)
        docs = [ragbook.Document(text=t, source=s) for t, s in zip(texts, sources)]
        if variants == 1:
            index = ragbook.Index(emb)
            t_build, report = clock(lambda: index.add_documents(docs))
        else:
            first = np.unique(base, return_index=True)[1]
            t_embed, base_vecs = clock(lambda: emb.encode_documents([texts[i] for i in first]))
            rng = np.random.default_rng(0)
            noise = rng.standard_normal((len(texts), base_vecs.shape[1])).astype(np.float32)
            noise *= 0.3 / np.linalg.norm(noise, axis=1, keepdims=True)
            vecs = base_vecs[base] + noise
            vecs[first] = base_vecs  # the base passages keep their true vectors
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            index = ragbook.Index(Borrowed(emb, dict(zip(texts, vecs))))
            t_build, report = clock(lambda: index.add_documents(docs))
            rep.info("embed_base_s", round(t_embed, 1), f"embedding {len(first):,} base passages: {t_embed:.1f} s")
        rep.info("build_s", round(t_build, 1), f"Index.add_documents: {t_build:.1f} s for {len(index):,} chunks; "
                 + ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items()))
        t_save, _ = clock(lambda: index.save(tmp / "index"))
        del index
        t_open, index = clock(lambda: ragbook.open_index(tmp / "index"))
        t_first, _ = clock(lambda: index.search(qs[0], k=10))
        kind = index.vectors.kind_in_use
        rep.info("open_s", round(t_open, 3), f"save {t_save:.2f} s; open_index {t_open:.2f} s; first search after opening "
                 f"{t_first * 1000:.0f} ms (model load, fingerprint check, id map); index type {kind!r} "
                 f"(auto threshold {AUTO_THRESHOLD:,})")
        rep.info("first_search_s", round(t_first, 3))
        rep.info("index_type", kind)

        # -- end to end ----------------------------------------------------------------------
        model = index.embedder.model
        store = index.vectors
        raw_index = faiss.downcast_index(store.index.index) if isinstance(store.index, faiss.IndexIDMap2) else store.index
        if kind == "hnsw":
            raw_index.hnsw.efSearch = store.ef_search
        # FAISS's thread count is left at its default (all cores), as ragbook ships; the effect
        # of one thread is measured separately below (see also scale.py)
        cores = faiss.omp_get_max_threads()

        def raw(q):
            v = model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
            return raw_index.search(np.asarray(v, dtype=np.float32), 10)

        for q in qs[:10]:  # warm up every path
            index.search(q, k=10)
            index.search(q, k=10, mode="dense")
            raw(q)
        rep.section(f"end to end, k=10, {len(qs)} queries x 2 rounds, methods back to back in rotating order (ms)")
        e2e = paired({"dense": lambda q: index.search(q, k=10, mode="dense"),
                      "hybrid": lambda q: index.search(q, k=10),
                      "raw": raw,
                      "embed_query": index.embed_query}, qs)
        s = {k: summary_ms(v) for k, v in e2e.items()}
        for k in e2e:
            print(f"   {k:12} p50 {s[k]['p50_ms']:7.2f}   p95 {s[k]['p95_ms']:7.2f}")
        rep.info("end_to_end_ms", s)
        e2e_dense = paired_diff_ms(e2e, "dense", "raw")
        e2e_hybrid = paired_diff_ms(e2e, "hybrid", "raw")
        rep.info("end_to_end_overhead_ms", {"dense": round(e2e_dense, 3), "hybrid": round(e2e_hybrid, 3)},
                 f"end to end vs raw, median of per-query differences: dense {e2e_dense:+.2f} ms, hybrid {e2e_hybrid:+.2f} ms "
                 f"(difference of p50s: dense {s['dense']['p50_ms'] - s['raw']['p50_ms']:+.2f}, hybrid "
                 f"{s['hybrid']['p50_ms'] - s['raw']['p50_ms']:+.2f}; of p95s: dense {s['dense']['p95_ms'] - s['raw']['p95_ms']:+.2f}, "
                 f"hybrid {s['hybrid']['p95_ms'] - s['raw']['p95_ms']:+.2f})")

        # -- without encoding: the overhead itself ------------------------------------------------
        rep.section("overhead without encoding (query vectors computed beforehand), ms")
        cache = {q: index.embed_query(q) for q in qs}
        real_embed = index.embed_query
        index.embed_query = cache.__getitem__  # instance attribute: ragbook's search code unchanged
        qmat = {q: v.reshape(1, -1).astype(np.float32) for q, v in cache.items()}
        for q in qs[:10]:
            index.search(q, k=10)
            index.search(q, k=10, mode="dense")
        # one FAISS thread on both sides: ragbook's own code, free of OpenMP scheduling stalls
        faiss.omp_set_num_threads(1)
        post = passes({"dense": lambda q: index.search(q, k=10, mode="dense"),
                       "hybrid": lambda q: index.search(q, k=10),
                       "faiss": lambda q: raw_index.search(qmat[q], 10),
                       "faiss_k50": lambda q: raw_index.search(qmat[q], 50)}, qs)
        faiss.omp_set_num_threads(cores)
        # as shipped: FAISS's default thread count on both sides
        post_default = passes({"dense": lambda q: index.search(q, k=10, mode="dense"),
                               "faiss": lambda q: raw_index.search(qmat[q], 10)}, qs)
        p = {k: summary_ms(v) for k, v in post.items()}
        pd = {k: summary_ms(v) for k, v in post_default.items()}
        for k in post:
            print(f"   1 FAISS thread   {k:10} p50 {p[k]['p50_ms']:7.3f}   p95 {p[k]['p95_ms']:7.3f}")
        for k in post_default:
            print(f"   {cores} FAISS threads  {k:10} p50 {pd[k]['p50_ms']:7.3f}   p95 {pd[k]['p95_ms']:7.3f}")
        timings = {}
        for mode in ("dense", "hybrid"):
            res = [index.search(q, k=10, mode=mode).timings for q in qs]
            timings[mode] = {key: round(median([r.get(key, 0.0) for r in res]) * 1000, 4) for key in res[0]}
        rep.info("post_encode_ms", p)
        rep.info("post_encode_default_threads_ms", pd)
        rep.info("ragbook_timings_median_ms", timings,
                 "ragbook's own Results.timings (median ms): " + "; ".join(
                     f"{m}: " + ", ".join(f"{k} {v:.3f}" for k, v in t.items()) for m, t in timings.items()))
        enc = paired({"ragbook_embed_query": real_embed,
                      "raw_encode": lambda q: model.encode([q], normalize_embeddings=True, convert_to_numpy=True)}, qs, rounds=3)
        e = {k: summary_ms(v) for k, v in enc.items()}
        enc_over = paired_diff_ms(enc, "ragbook_embed_query", "raw_encode")
        rep.info("encode_ms", e, f"encode: ragbook embed_query p50 {e['ragbook_embed_query']['p50_ms']:.2f} ms, raw encode "
                 f"p50 {e['raw_encode']['p50_ms']:.2f} ms; median per-query difference {enc_over:+.3f} ms")
        enc_ratio = e["ragbook_embed_query"]["p50_ms"] / e["raw_encode"]["p50_ms"]
        rep.check("query_encode_ratio", round(enc_ratio, 3), f"<= {ENCODE_RATIO_TARGET}", enc_ratio <= ENCODE_RATIO_TARGET,
                  f"query encoding, ragbook ({index.embedder.backend}) / raw torch encode, p50: {enc_ratio:.3f}")
        # the verdict: encode overhead + search overhead (each measured precisely)
        dense_over = enc_over + p["dense"]["p50_ms"] - p["faiss"]["p50_ms"]
        hybrid_over = enc_over + p["hybrid"]["p50_ms"] - p["faiss"]["p50_ms"]
        scale_note = "" if len(index) >= 100_000 else f" (target is for 100k chunks; this is {len(index):,})"
        rep.check("dense_overhead_ms", round(dense_over, 3), f"<= {OVERHEAD_TARGET_MS} ms", dense_over <= OVERHEAD_TARGET_MS,
                  f"dense search overhead over raw encode + FAISS at {len(index):,} chunks, 1 FAISS thread: {dense_over:.3f} ms "
                  f"(search {p['dense']['p50_ms'] - p['faiss']['p50_ms']:.3f} + encode {enc_over:+.3f}){scale_note}")
        rep.info("hybrid_overhead_ms", round(hybrid_over, 3),
                 f"   hybrid search over raw dense encode + FAISS: {hybrid_over:.3f} ms "
                 f"(BM25 + fusion + hits; p95 {p['hybrid']['p95_ms'] - p['faiss']['p95_ms']:.3f} ms) (no target)")
        if cores > 1:
            shipped = enc_over + pd["dense"]["p50_ms"] - pd["faiss"]["p50_ms"]
            rep.check("dense_overhead_default_threads_ms", round(shipped, 3), f"<= {OVERHEAD_TARGET_MS} ms",
                      shipped <= OVERHEAD_TARGET_MS,
                      f"the same with FAISS's default {cores} threads on both sides (as shipped): {shipped:.3f} ms "
                      f"(ragbook p50 {pd['dense']['p50_ms']:.3f} ms vs raw {pd['faiss']['p50_ms']:.3f} ms)")
        if cores > 1:
            def one_thread(fn):
                def run(q):
                    faiss.omp_set_num_threads(1)
                    try:
                        return fn(q)
                    finally:
                        faiss.omp_set_num_threads(cores)
                return run

            th = passes({"dense_default_threads": lambda q: index.search(q, k=10, mode="dense"),
                         "dense_1_thread": one_thread(lambda q: index.search(q, k=10, mode="dense")),
                         "encode_then_dense_default_threads": lambda q: (model.encode([q], normalize_embeddings=True), index.search(q, k=10, mode="dense")),
                         "encode_then_dense_1_thread": one_thread(lambda q: (model.encode([q], normalize_embeddings=True), index.search(q, k=10, mode="dense")))}, qs)
            t = {k: summary_ms(v) for k, v in th.items()}
            rep.info("threads_effect_ms", t, f"FAISS threads, ragbook dense search (vector precomputed): {cores} threads p50 "
                     f"{t['dense_default_threads']['p50_ms']:.3f} / p95 {t['dense_default_threads']['p95_ms']:.3f} ms, 1 thread p50 "
                     f"{t['dense_1_thread']['p50_ms']:.3f} / p95 {t['dense_1_thread']['p95_ms']:.3f} ms; right after a torch encode: "
                     f"{cores} threads p50 {t['encode_then_dense_default_threads']['p50_ms']:.2f} / p95 "
                     f"{t['encode_then_dense_default_threads']['p95_ms']:.2f} ms, 1 thread p50 "
                     f"{t['encode_then_dense_1_thread']['p50_ms']:.2f} / p95 {t['encode_then_dense_1_thread']['p95_ms']:.2f} ms (encode included)")

        # -- where it goes --------------------------------------------------------------------
        rep.section("profile (cProfile, query vectors precomputed, 1 FAISS thread): top functions by own time, us per query")
        faiss.omp_set_num_threads(1)  # else the OpenMP stalls measured above hide everything else
        for mode in ("dense", "hybrid"):
            rows = profile(lambda q: index.search(q, k=10, mode=mode), qs[:50])
            rep.info(f"profile_{mode}", rows)
            print(f"   {mode}:")
            for r in rows[:8]:
                print(f"     {r['tottime_us_per_query']:8.1f} us own, {r['cumtime_us_per_query']:8.1f} us cum, "
                      f"{r['calls_per_query']:6.1f} calls  {r['function']}")
        faiss.omp_set_num_threads(cores)
        index.embed_query = real_embed

        # -- updates at this size --------------------------------------------------------------
        rep.section("updates at this size (Index.add_documents of one ~20-word document)")
        new_doc = ragbook.Document(text="A freshly written note about list comprehensions and generator expressions "
                                        "in Python, added after the index was built.", source="new/note-1")
        t_add, r_add = clock(lambda: index.add_documents([new_doc]))
        t_next, _ = clock(lambda: index.search(qs[1], k=10, mode="dense"))
        replace = ragbook.Document(text=docs[len(docs) // 2].text + " (revised)", source=docs[len(docs) // 2].source)
        t_rep, r_rep = clock(lambda: index.add_documents([replace]))
        t_next2, _ = clock(lambda: index.search(qs[2], k=10, mode="dense"))
        rep.info("update_add_s", {"add": round(t_add, 4), "next_search": round(t_next, 4), "seconds": r_add.seconds},
                 f"add one new document: {t_add * 1000:.0f} ms ({', '.join(f'{k} {v * 1000:.0f} ms' for k, v in r_add.seconds.items())}); "
                 f"next search {t_next * 1000:.1f} ms")
        rep.info("update_replace_s", {"replace": round(t_rep, 4), "next_search": round(t_next2, 4), "seconds": r_rep.seconds},
                 f"replace one document: {t_rep * 1000:.0f} ms ({', '.join(f'{k} {v * 1000:.0f} ms' for k, v in r_rep.seconds.items())}); "
                 f"next search {t_next2 * 1000:.1f} ms{'  <- HNSW rebuilt from scratch' if kind == 'hnsw' and t_next2 > 1 else ''}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = "-quick" if args.quick else "-100k" if args.large else ""
    size += f"-c{args.chunks}" if args.chunks else ""  # a non-default size never overwrites the default files
    rep.write(size + (f"-t{args.torch_threads}" if args.torch_threads else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
