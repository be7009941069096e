"""Retrieval quality of ragbook: nDCG@10, recall@10 and MRR@10 for dense, BM25 and both hybrids.

    python benchmarks/quality.py                                  # SQuAD 2.0 dev (CS224N half)
    python benchmarks/quality.py --data path/to/scifact --split test
    python benchmarks/quality.py --protocol mteb                  # only the published protocol
    python benchmarks/quality.py --tune                           # also sweep rrf_k, weight, candidates

Two protocols (both by default):

* ``chunked``: documents indexed as ragbook indexes anything (default chunk size and overlap);
  a document ranks where its best chunk ranks.  This is what a ragbook user gets.
* ``mteb``: MTEB's protocol, for faithfulness: each document embedded whole as
  ``title + " " + text`` cut at the model's 256-token window (one chunk, no splitting) and
  searched exactly.  Its dense nDCG@10 is the figure to compare with a published one
  (all-MiniLM-L6-v2: SciFact 0.645, NFCorpus 0.316, FiQA 0.369, ArguAna 0.502, SCIDOCS 0.216).

Then, on the chunked index, the calibration of ``Hit.relevance``: the best hit's relevance for
the answerable questions and for 200 queries of made-up words, per mode, and the share below
the assistant's abstention threshold (``DEFAULT_MIN_RELEVANCE``).

Only ragbook's public API is used (``ragbook.evaluation``, Index, Retriever, Embedder), so the
numbers measure ragbook.  Results go to ``benchmarks/results/quality.json`` (for a data set
other than the default: ``quality-<name>.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from _common import REPO  # noqa: E402  (sets the offline environment and sys.path first)

import numpy as np  # noqa: E402

import ragbook  # noqa: E402
from ragbook.embedding import DEFAULT_MODEL, Embedder  # noqa: E402
from ragbook.evaluation import PROTOCOLS, evaluate_retrieval, index_beir, load_beir  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "squad2-dev-cs224n"

# name -> retriever settings (ragbook's defaults otherwise)
MODES = {
    "dense": {"mode": "dense"},
    "bm25": {"mode": "bm25"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-weighted": {"mode": "hybrid", "fusion": "weighted"},
}

# all-MiniLM-L6-v2 on MTEB (nDCG@10, test split); BM25 from the BEIR paper (Table 2)
PUBLISHED_DENSE = {"scifact": 0.645, "nfcorpus": 0.316, "fiqa": 0.369, "arguana": 0.502, "scidocs": 0.216}
PUBLISHED_BM25 = {"scifact": 0.665, "nfcorpus": 0.325, "fiqa": 0.236}


def published(table: dict[str, float], name: str) -> float | None:
    name = name.lower()
    return next((v for key, v in table.items() if key in name), None)


def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0


def paired(a: dict, b: dict, metric: str) -> tuple[float, float]:
    """Mean per-query difference a - b and its standard error (same queries on both sides)."""
    return mean_se([a["per_query"][q][metric] - b["per_query"][q][metric] for q in a["per_query"]])


def run_protocol(data, embedder, protocol: str, k: int) -> dict:
    t0 = time.perf_counter()
    index = index_beir(data.corpus, embedder, protocol=protocol)
    build_s = time.perf_counter() - t0
    stats = index.stats()
    out = {"index": {**stats, "chunk_size": index.chunk_size, "overlap": index.overlap, "seconds": round(build_s, 1)},
           "modes": {}}
    print(f"\n== protocol {protocol}: {stats['documents']} documents -> {stats['chunks']} chunks "
          f"(chunk_size={index.chunk_size}, overlap={index.overlap}, {stats['index_type']}); built in {build_s:.0f} s")
    if protocol == "mteb":
        out["self_check"] = truncation_check(index, data, embedder)
    full = {}
    print(f"{'mode':<16} {'nDCG@' + str(k):>14} {'recall@' + str(k):>10} {'MRR@' + str(k):>8} {'hit@' + str(k):>7} {'s':>6}")
    for name, settings in MODES.items():
        res = evaluate_retrieval(index, data.queries, data.qrels, k=k, **settings)
        full[name] = res
        nd, se = mean_se([v[f"ndcg@{k}"] for v in res["per_query"].values()])
        print(f"{name:<16} {nd:>8.4f}±{se:.4f} {res[f'recall@{k}']:>10.4f} {res[f'mrr@{k}']:>8.4f} "
              f"{res[f'hit@{k}']:>7.4f} {res['seconds']:>6.1f}")
        out["modes"][name] = {key: (round(v, 4) if isinstance(v, float) else v) for key, v in res.items()
                              if key != "per_query"}
        out["modes"][name]["ndcg_se"] = round(se, 4)
    metric = f"ndcg@{k}"
    best_single = max(("dense", "bm25"), key=lambda m: full[m][metric])
    targets = {}
    for hybrid in ("hybrid-rrf", "hybrid-weighted"):
        diff, se = paired(full[hybrid], full[best_single], metric)
        ok = full[hybrid][metric] > max(full["dense"][metric], full["bm25"][metric])
        targets[hybrid] = {"pass": ok, "vs": best_single, "diff": round(diff, 4), "se": round(se, 4)}
        print(f"target [{protocol}] {hybrid} beats dense and bm25: {'PASS' if ok else 'MISS'} "
              f"({metric} {diff:+.4f} ± {1.96 * se:.4f} (95%) vs {best_single})")
    out["targets"] = targets
    return {"summary": out, "index": index, "full": full}


def made_up_queries(n: int = 200, seed: int = 0) -> list[str]:
    """Queries of 2-4 made-up words ("zxqv florb wibble"): nothing in any corpus is about them."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    word = lambda: "".join(rng.choice(letters, int(rng.integers(4, 8))))  # noqa: E731
    return ["zxqv florb wibble"] + [" ".join(word() for _ in range(int(rng.integers(2, 5)))) for _ in range(n - 1)]


def calibration(index, data) -> dict:
    """Top-1 relevance (Hit.relevance, 0..1) for answerable vs made-up queries, and the share below the
    assistant's abstention threshold: what a score threshold can tell apart."""
    from ragbook.assistant import DEFAULT_MIN_RELEVANCE
    from ragbook.evaluation import queries_cached

    groups = {"answerable": [data.queries[q] for q in data.qrels if q in data.queries], "made-up": made_up_queries()}
    out = {"threshold": DEFAULT_MIN_RELEVANCE, "modes": {}}
    print(f"\n== calibration: top-1 relevance, and the share below {DEFAULT_MIN_RELEVANCE} (the assistant abstains)")
    with queries_cached(index, groups["answerable"] + groups["made-up"]):
        for mode in ("hybrid", "dense", "bm25"):
            retriever = index.retriever(k=1, mode=mode)
            row = {}
            for name, queries in groups.items():
                top = np.array([max((h.relevance for h in retriever.search(q)), default=0.0) for q in queries])
                row[name] = {"queries": len(queries), "mean": round(float(top.mean()), 3),
                             "p5": round(float(np.percentile(top, 5)), 3), "p95": round(float(np.percentile(top, 95)), 3),
                             "max": round(float(top.max()), 3), "below_threshold": round(float((top < DEFAULT_MIN_RELEVANCE).mean()), 4)}
                print(f"{mode:<7} {name:<11} mean {top.mean():.3f}  p5 {row[name]['p5']:.3f}  p95 {row[name]['p95']:.3f}  "
                      f"max {top.max():.3f}  below {DEFAULT_MIN_RELEVANCE}: {row[name]['below_threshold']:.1%}")
            out["modes"][mode] = row
    return out


def truncation_check(index, data, embedder, n: int = 16) -> dict:
    """Our one-chunk vectors of truncated documents vs sentence-transformers truncating the full text."""
    def whole(row: int) -> str:
        doc = data.corpus[index.locations(row)[0].source]
        return (doc["title"] + " " + doc["text"]).strip()

    rows = [r for r in range(len(index)) if len(index.text(r)) < len(whole(r))]
    if not rows:
        print("MTEB self-check: no document was long enough to be truncated")
        return {"truncated_documents": 0}
    picked = rows[:: max(1, len(rows) // n)][:n]
    full = embedder.model.encode([whole(r) for r in picked], normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
    ours = np.asarray(index.vectors.vectors)[picked]
    cos = (full * ours).sum(axis=1)
    print(f"MTEB self-check: {len(rows)} documents truncated; for {len(picked)} of them ragbook's vector vs "
          f"sentence-transformers on the untruncated text: min cosine {cos.min():.6f}")
    return {"truncated_documents": len(rows), "checked": len(picked), "min_cosine": round(float(cos.min()), 6)}


def tune(index, data, k: int) -> dict:
    """Sweep the hybrid settings one family at a time around ragbook's defaults."""
    metric = f"ndcg@{k}"
    grids = {
        "rrf rrf_k x weight": [{"fusion": "rrf", "rrf_k": rk, "weight": w}
                               for rk in (1, 5, 10, 20, 40, 60, 100, 200) for w in (0.3, 0.4, 0.5, 0.6, 0.7)],
        "weighted weight": [{"fusion": "weighted", "weight": w} for w in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)],
        "candidates": [{"fusion": f, "candidates": c} for f in ("rrf", "weighted") for c in (10, 20, 50, 100, 200)],
    }
    out = {}
    for family, grid in grids.items():
        print(f"\n-- tuning: {family} ({len(grid)} settings, {data.queries.__len__()} queries)")
        rows = []
        for settings in grid:
            res = evaluate_retrieval(index, data.queries, data.qrels, k=k, mode="hybrid", **settings)
            row = {**settings, metric: round(res[metric], 4), f"recall@{k}": round(res[f"recall@{k}"], 4),
                   f"mrr@{k}": round(res[f"mrr@{k}"], 4), "seconds": round(res["seconds"], 1)}
            rows.append(row)
            print("   " + "  ".join(f"{key}={val}" for key, val in row.items()))
        best = max(rows, key=lambda r: r[metric])
        print(f"   best: {best}")
        out[family] = {"rows": rows, "best": best}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="a BEIR folder or the SQuAD-style folder")
    parser.add_argument("--split", default="test", help="qrels split of a BEIR folder (default: test)")
    parser.add_argument("--protocol", choices=(*PROTOCOLS, "both"), default="both")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=None, help="evaluate a reproducible sample of this many queries")
    parser.add_argument("--tune", action="store_true", help="also sweep rrf_k, weight and candidates (chunked protocol)")
    parser.add_argument("--out", default=None, help="JSON file to write (default: benchmarks/results/quality.json)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = load_beir(args.data, split=args.split).sample(args.queries)
    print(f"{data!r}")
    embedder = Embedder(args.model)
    protocols = list(PROTOCOLS) if args.protocol == "both" else [args.protocol]
    if args.tune and "chunked" not in protocols:
        protocols.insert(0, "chunked")
    results = {"dataset": data.name, "path": str(Path(args.data).resolve()), "split": data.split, "k": args.k,
               "queries": sum(1 for q in data.qrels if q in data.queries), "model": embedder.name,
               "ragbook_version": ragbook.__version__, "python": platform.python_version(),
               "cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()], "protocols": {}}
    runs = {}
    for protocol in protocols:
        runs[protocol] = run_protocol(data, embedder, protocol, args.k)
        results["protocols"][protocol] = runs[protocol]["summary"]

    metric = f"ndcg@{args.k}"
    print()
    if "mteb" in runs:
        dense = runs["mteb"]["full"]["dense"][metric]
        ref = published(PUBLISHED_DENSE, data.name) if args.model == DEFAULT_MODEL and args.k == 10 else None
        ref_text = f"published all-MiniLM-L6-v2 (MTEB): {ref:.3f}, difference {dense - ref:+.3f}" if ref else \
            "no published figure known for this data set"
        print(f"FAITHFULNESS FIGURE: dense {metric} under the MTEB protocol = {dense:.4f}  ({ref_text})")
        results["faithfulness"] = {"figure": f"protocols.mteb.modes.dense.{metric}", "value": round(dense, 4),
                                   "published": ref}
        bm = published(PUBLISHED_BM25, data.name)
        if bm and args.k == 10:
            print(f"  for reference: ragbook BM25 {metric} (MTEB protocol) = {runs['mteb']['full']['bm25'][metric]:.4f}; "
                  f"BEIR paper's Elasticsearch BM25: {bm:.3f} (a different analyzer and multi-field scoring)")
    else:
        print("FAITHFULNESS FIGURE: not measured (run with --protocol mteb or both)")
    for protocol, run in runs.items():
        ok = run["summary"]["targets"]["hybrid-weighted"]["pass"]
        print(f"TARGET [{protocol}] hybrid beats dense and bm25: {'PASS' if ok else 'MISS'} (hybrid-weighted, the default)")

    if "chunked" in runs:
        results["calibration"] = calibration(runs["chunked"]["index"], data)
    if args.tune:
        results["tuning"] = tune(runs["chunked"]["index"], data, args.k)

    results["seconds"] = round(time.perf_counter() - started, 1)
    default_name = "quality.json" if Path(args.data).resolve() == DEFAULT_DATA.resolve() else f"quality-{data.name}.json"
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / default_name
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file() and len(protocols) < len(PROTOCOLS):  # a partial run keeps the other protocols' figures
        previous = json.loads(out.read_text(encoding="utf-8"))
        if previous.get("dataset") == results["dataset"] and previous.get("k") == results["k"]:
            kept = {p: previous["protocols"][p] for p in previous.get("protocols", {}) if p not in results["protocols"]}
            results["protocols"] = {**kept, **results["protocols"]}
            for key in ("faithfulness", "calibration", "tuning"):
                if key in previous and key not in results:
                    results[key] = previous[key]
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out} ({results['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
