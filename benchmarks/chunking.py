"""Which chunk size and overlap work best for all-MiniLM-L6-v2 on long documents?

    python benchmarks/chunking.py                      # ~6 min on 2 cores
    python benchmarks/chunking.py --questions 500 --sizes 128 200

Each SQuAD 2.0 article (CS224N dev half: 16 articles, 646 paragraphs) becomes one long
document: its paragraphs in corpus order, separated by blank lines.  Each configuration
chunks and embeds the 16 documents with ragbook (Index.add_documents), then every sampled
answerable question is searched (dense, BM25, hybrid with ragbook's defaults).

A question counts as answered at k when one of the top-k chunks

* lenient: contains one of its gold answer strings (case-insensitive), anywhere;
* strict: contains an occurrence of a gold answer inside the gold paragraph (so a chunk
  that merely mentions "France" elsewhere does not count; longer chunks get no free hits).

``@512tok`` is the strict hit rate within a 512-token context budget (chunks taken in rank
order while their tokens add up to at most 512, at least one): what fits in a small prompt.
Writes ``benchmarks/results/chunking.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

from _common import REPO  # noqa: E402  (sets the offline environment and sys.path first)

import numpy as np  # noqa: E402

from ragbook.chunking import DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP  # noqa: E402
from ragbook.documents import Document  # noqa: E402
from ragbook.embedding import DEFAULT_MODEL, Embedder  # noqa: E402
from ragbook.evaluation import load_beir  # noqa: E402
from ragbook.index import Index  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "squad2-dev-cs224n"
MODES = ("dense", "bm25", "hybrid")
KS = (1, 5, 10)
BUDGET = 512


class CachedQueries:
    """The embedder, with query vectors computed once in a batch and shared by every configuration."""

    def __init__(self, embedder: Embedder, queries: list[str]) -> None:
        self._inner = embedder
        self._vectors = dict(zip(queries, embedder.encode_queries(queries)))

    def encode_queries(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        return np.stack([self._vectors[t] if t in self._vectors else self._inner.encode_queries([t])[0] for t in texts])

    def __getattr__(self, name):
        return getattr(self._inner, name)


def long_documents(corpus: dict[str, dict[str, str]]) -> tuple[list[Document], dict[str, tuple[str, int, int]]]:
    """One document per title; and each paragraph id -> (title, start, end) in that document."""
    by_title: dict[str, list[tuple[str, str]]] = {}
    for pid, d in corpus.items():
        by_title.setdefault(d["title"], []).append((pid, d["text"]))
    docs, spans = [], {}
    for title, paragraphs in by_title.items():
        parts, pos = [], 0
        for pid, text in paragraphs:
            spans[pid] = (title, pos, pos + len(text))
            parts.append(text)
            pos += len(text) + 2
        docs.append(Document(text="\n\n".join(parts), source=title, title=title))
    return docs, spans


def configs(sizes: list[int], fractions: list[float]) -> list[tuple[int, int]]:
    out = [(s, round(s * f)) for s in sizes for f in fractions]
    if (DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP) not in out:
        out.append((DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP))
    return sorted(set(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 200, 254])
    parser.add_argument("--overlaps", type=float, nargs="+", default=[0.0, 0.1, 0.2], help="fractions of the size")
    parser.add_argument("--questions", type=int, default=1500, help="answerable questions to sample (0: all)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "chunking.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()

    data = load_beir(args.data)
    data = data.sample(args.questions or None)
    docs, spans = long_documents(data.corpus)
    text_of = {d.source: d.text for d in docs}
    questions = []
    for qid, query in data.queries.items():
        (gold,) = data.qrels[qid]
        title, a, b = spans[gold]
        patterns = [re.compile(re.escape(ans), re.IGNORECASE) for ans in data.answers[qid] if ans.strip()]
        where = [(m.start(), m.end()) for p in patterns for m in p.finditer(text_of[title], a, b)]
        if patterns and where:
            questions.append({"query": query, "title": title, "patterns": patterns, "where": where})
    words = sum(len(d.text.split()) for d in docs)
    print(f"{len(docs)} documents ({words:,} words), {len(questions)} questions")

    embedder = Embedder(args.model)
    model = CachedQueries(embedder, [q["query"] for q in questions])
    tokenizer = embedder.tokenizer
    results = []
    per_question: dict[tuple[int, int], np.ndarray] = {}  # hybrid strict hit@5 per question
    for size, overlap in configs(args.sizes, args.overlaps):
        t0 = time.perf_counter()
        index = Index(model, chunk_size=size, overlap=overlap)
        index.add_documents(docs)
        build_s = time.perf_counter() - t0
        tokens = {index.text(r): len(tokenizer.encode(index.text(r), add_special_tokens=False).ids) for r in range(len(index))}
        row = {"chunk_size": size, "overlap": overlap, "chunks": len(index.chunks),
               "mean_tokens": round(float(np.mean(list(tokens.values()))), 1), "build_seconds": round(build_s, 1),
               "modes": {}}
        t1 = time.perf_counter()
        for mode in MODES:
            retriever = index.retriever(k=max(KS), mode=mode)
            lenient = np.zeros((len(questions), len(KS)))
            strict = np.zeros((len(questions), len(KS)))
            budget = np.zeros(len(questions))
            for i, q in enumerate(questions):
                hits = retriever.search(q["query"]).hits
                first_lenient = first_strict = math.inf
                used, in_budget = 0, True
                for rank, hit in enumerate(hits, start=1):
                    used += tokens[hit.text]
                    in_budget = in_budget and (rank == 1 or used <= BUDGET)
                    if rank < first_lenient and any(p.search(hit.text) for p in q["patterns"]):
                        first_lenient = rank
                    if rank < first_strict and any(
                            c.source == q["title"] and any(c.start <= s and e <= c.end for s, e in q["where"])
                            for c in (hit.chunk, *hit.also_in)):
                        first_strict = rank
                        budget[i] = float(in_budget)
                lenient[i] = [first_lenient <= k for k in KS]
                strict[i] = [first_strict <= k for k in KS]
            row["modes"][mode] = {
                **{f"lenient@{k}": round(float(lenient[:, j].mean()), 4) for j, k in enumerate(KS)},
                **{f"strict@{k}": round(float(strict[:, j].mean()), 4) for j, k in enumerate(KS)},
                f"strict@{BUDGET}tok": round(float(budget.mean()), 4),
            }
            if mode == "hybrid":
                per_question[(size, overlap)] = strict[:, KS.index(5)].copy()
        row["search_seconds"] = round(time.perf_counter() - t1, 1)
        results.append(row)
        print(f"size {size:>3} overlap {overlap:>2}: {row['chunks']:>4} chunks (mean {row['mean_tokens']} tokens), "
              f"built in {build_s:.0f} s, searched in {row['search_seconds']:.0f} s", flush=True)

    n = len(questions)
    for mode in MODES:
        print(f"\n{mode}: hit rate (n={n}; one standard error is about {math.sqrt(0.25 / n):.3f} at 0.5, less near 1)")
        cols = [f"lenient@{k}" for k in KS] + [f"strict@{k}" for k in KS] + [f"strict@{BUDGET}tok"]
        print(f"{'size':>5} {'ovl':>4} {'chunks':>6} " + " ".join(f"{c:>15}" for c in cols))
        for row in results:
            m = row["modes"][mode]
            print(f"{row['chunk_size']:>5} {row['overlap']:>4} {row['chunks']:>6} " + " ".join(f"{m[c]:>15.4f}" for c in cols))

    # Recommend on the default mode's strict hit@5 (what a 5-passage prompt gets); a configuration
    # is within noise when its paired difference from the best is under two standard errors.
    def key(row: dict) -> tuple[float, float]:
        m = row["modes"]["hybrid"]
        return m["strict@5"], m[f"strict@{BUDGET}tok"]

    best = max(results, key=key)
    best_hits = per_question[(best["chunk_size"], best["overlap"])]
    close = []
    for row in results:
        diff = best_hits - per_question[(row["chunk_size"], row["overlap"])]
        se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
        row["hybrid_strict@5_vs_best"] = {"diff": round(float(diff.mean()), 4), "se": round(se, 4)}
        if diff.mean() <= 2 * se:
            close.append(row)
    current = next(r for r in results if (r["chunk_size"], r["overlap"]) == (DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP))

    def summary(row: dict) -> str:
        m = row["modes"]["hybrid"]
        return f"hybrid strict@5 {m['strict@5']:.4f}, @10 {m['strict@10']:.4f}, @{BUDGET}tok {m[f'strict@{BUDGET}tok']:.4f}"

    print(f"\nRECOMMENDATION: chunk_size={best['chunk_size']}, overlap={best['overlap']} ({summary(best)})")
    print(f"current default {DEFAULT_CHUNK_SIZE}/{DEFAULT_OVERLAP}: {summary(current)}; "
          f"best minus default {current['hybrid_strict@5_vs_best']['diff']:+.4f} "
          f"(se {current['hybrid_strict@5_vs_best']['se']:.4f})")
    print("within noise of the best on hybrid strict@5 (paired difference < 2 standard errors): "
          + ", ".join(f"{r['chunk_size']}/{r['overlap']}" for r in close))

    out = {"data": str(Path(args.data).resolve()), "model": embedder.name, "documents": len(docs), "words": words,
           "questions": n, "budget_tokens": BUDGET, "configs": results,
           "recommendation": {"chunk_size": best["chunk_size"], "overlap": best["overlap"],
                              "within_noise": [[r["chunk_size"], r["overlap"]] for r in close]},
           "seconds": round(time.perf_counter() - started, 1), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path} ({out['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
