"""Questions that name their document: "In his second inaugural, what did Lincoln say ...".

    python benchmarks/named.py                          # build, search, write results/named.json
    python benchmarks/named.py --index /tmp/inaugural   # build once into that folder, reuse it after
    python benchmarks/named.py --out named-before       # results/named-before.json
    python benchmarks/named.py --check                  # validate the question files only (no model)

The corpus is the 59 US inaugural addresses (``../shared/data/corpora/inaugural``, files
``YEAR-Name.txt``), indexed with ragbook's defaults through the public API (``Index()`` then
``index.add(folder)``).  The questions (``benchmarks/data/inaugural-named-{dev,test}.jsonl``,
60 each, written by hand in our own words) identify their speech only by year and/or president:
a third have distinctive topic words, a third a topic every speech shares (liberty, war, taxes,
the Union...) so that only the name or year tells the speeches apart, and a third name the
president alone ("in his third inaugural", "Lincoln's second"), including presidents who share a
surname (Adams, Harrison, Roosevelt, Bush).  Each line holds ``id``, ``question``, ``source``
(the gold file), ``answer``, ``evidence`` (an exact passage of the speech, at most 25 words,
that holds the answer) and ``kind`` (``distinctive`` / ``generic`` / ``president-only``).

For each question and each mode (dense, bm25, hybrid; ``index.search(q, k=5, mode=...)`` with no
relevance threshold: ``min_score`` is None, ragbook's default) the script records:

* hit@5: a hit among the top 5 is from the gold file (a hit's own source or, for a passage
  stored once for several files, any file in ``also_in``);
* nDCG@5: binary relevance by document.  Only the first hit from the gold file counts (later
  chunks of the same file add nothing), and there is one relevant document, so
  nDCG@5 = 1 / log2(1 + rank of the first gold hit), 0 when none is in the top 5;
* MRR@5 on the same first gold rank;
* passage hit@5: the gold ``evidence`` (whitespace-normalised) lies inside the text of one of the
  top-5 hits from the gold file, i.e. the passage that answers was retrieved.

A reused ``--index`` reflects the code that built it: after a change to chunking or to what is
embedded, build it again (delete the folder).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

# _common first: it sets the offline environment before anything imports ragbook
from _common import BENCH, SHARED_DATA, Report, versions
from _questions import build_index, load_questions, score, summarise
from _questions import check as check_questions

CORPUS = SHARED_DATA / "corpora" / "inaugural"
DATA = BENCH / "data"
SPLITS = ("dev", "test")
MODES = ("dense", "bm25", "hybrid")
KINDS = ("distinctive", "generic", "president-only")
K = 5
TARGET = 0.9  # hybrid hit@5 on the hidden set of this kind
MAX_EVIDENCE_WORDS = 25
MAX_PER_SPEECH = 3
COPY_RUN = 5  # a question may not repeat this many consecutive words of its speech


def split_questions(split: str) -> list[dict]:
    return load_questions(DATA / f"inaugural-named-{split}.jsonl")


def check(corpus: Path) -> list[str]:
    """Problems with the question files: evidence not in its speech, copied runs, balance, kinds."""
    problems = []
    seen: set[str] = set()  # ids are unique across the splits
    for split in SPLITS:
        rows = split_questions(split)
        problems += check_questions(rows, corpus, max_per_document=MAX_PER_SPEECH, copy_run=COPY_RUN,
                                    max_evidence_words=MAX_EVIDENCE_WORDS, document="speech",
                                    label=f"{split}: ", seen=seen)
        problems += [f"{r['id']}: kind {r.get('kind')!r} is not one of {KINDS}"
                     for r in rows if r.get("kind") not in KINDS]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(CORPUS), help="folder of the inaugural addresses")
    parser.add_argument("--index", default=None, help="saved index folder to reuse (built and saved there if absent)")
    parser.add_argument("--out", default="named", help="results file name, without .json (default: named)")
    parser.add_argument("--check", action="store_true", help="only validate the question files")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. which commit was measured)")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"no corpus at {corpus}: the shared data is needed (or pass --corpus)")
        return 2

    problems = check(corpus)
    for p in problems:
        print(f"PROBLEM {p}")
    if args.check:
        counts = {s: dict(Counter(q["kind"] for q in split_questions(s))) for s in SPLITS}
        speeches = {s: len({q["source"] for q in split_questions(s)}) for s in SPLITS}
        print(f"question files: {len(problems)} problem(s); kinds {counts}; distinct speeches {speeches}")
        return 1 if problems else 0

    report = Report("named", argv, k=K, modes=list(MODES), corpus=str(corpus), index=args.index, out=args.out, note=args.note)
    report.data["versions"] = versions("ragbook", "sentence-transformers", "faiss-cpu", "torch")
    report.data["data_problems"] = problems
    import ragbook

    report.data["ragbook_path"] = str(Path(ragbook.__file__).parent)
    report.section("index")
    index, info = build_index(corpus, args.index)
    info.update(index.stats())
    report.data["index"] = info
    print(f"   {info}")

    results: dict = {}
    per_question: dict = {}
    for split in SPLITS:
        questions = split_questions(split)
        for mode in MODES:
            t0 = time.perf_counter()
            rows = [score(index, q, mode, K) for q in questions]
            summary = summarise(rows, K)
            summary["seconds"] = round(time.perf_counter() - t0, 1)
            summary["by_kind"] = {kind: summarise([r for r, q in zip(rows, questions) if q["kind"] == kind], K)
                                  for kind in KINDS if any(q["kind"] == kind for q in questions)}
            summary["misses"] = [{"id": q["id"], "question": q["question"], "source": q["source"], "top": r["top"]}
                                 for r, q in zip(rows, questions) if not r["hit"]]
            results.setdefault(split, {})[mode] = summary
            for r, q in zip(rows, questions):
                per_question.setdefault(q["id"], {"source": q["source"], "kind": q["kind"]})[mode] = {
                    "rank": r["rank"], "passage": r["passage"], "top": r["top"]}

    report.section(f"hit@{K} / nDCG@{K} / passage hit@{K} (gold file among the top {K}; first gold hit only)")
    print(f"   {'split':<6}{'mode':<8}{'hit@5':>8}{'nDCG@5':>8}{'MRR@5':>8}{'passage':>9}   by kind (hit@5: "
          + " / ".join(KINDS) + ")")
    for split in SPLITS:
        for mode in MODES:
            s = results[split][mode]
            kinds = " / ".join(f"{s['by_kind'][k][f'hit@{K}']:.2f}" for k in KINDS if k in s["by_kind"])
            print(f"   {split:<6}{mode:<8}{s[f'hit@{K}']:>8.3f}{s[f'ndcg@{K}']:>8.3f}{s[f'mrr@{K}']:>8.3f}"
                  f"{s[f'passage_hit@{K}']:>9.3f}   {kinds}")
    report.data["results"] = results
    report.data["per_question"] = per_question

    report.section("target")
    for split in SPLITS:
        value = results[split]["hybrid"][f"hit@{K}"]
        report.check(f"{split}.hybrid.hit@{K}", value, f">= {TARGET}", value >= TARGET,
                     f"{split}: hybrid hit@{K} = {value:.3f} ({len(results[split]['hybrid']['misses'])} misses)")
    report.name = args.out
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
