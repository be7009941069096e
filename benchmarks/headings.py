"""Bare headings: how many passages of a textbook are a heading alone, and what they cost retrieval.

    python benchmarks/headings.py                          # build, search, write results/headings.json
    python benchmarks/headings.py --index /tmp/os-index    # build once into that folder, reuse it after
    python benchmarks/headings.py --out headings-before    # results/headings-before.json
    python benchmarks/headings.py --out-file /elsewhere/x.json --corpus PATH --data PATH
    python benchmarks/headings.py --check                  # validate the question file only (no model)

Textbooks are full of empty sections ("## 3.1 Introduction" followed straight by "### 3.1.1 ..."):
chunked section by section, each such heading becomes a passage of its own, which matches every
question on its topic and answers none.  The corpus is the OpenStax *Introduction to Python
Programming* book in Markdown (``../shared/data/corpora/openstax-intro-python/markdown``, 115
modules), indexed with ragbook's defaults through the public API (``Index()`` then
``index.add(folder)``).  The 50 questions (``benchmarks/data/openstax-questions.jsonl``, written
by hand in our own words, at most two per module) ask about the book's content without naming a
chapter, module or the book; each line holds ``id``, ``question``, ``source`` (the gold file) and
``evidence`` (an exact passage of that file, at most 25 words, that holds the answer).

A chunk is a **bare heading** when its text, stripped, is a single line that starts with ``#``
or equals the last title of its section path (``chunk.section[-1]``).  Chunks are counted once
per location (``index.chunks``) and once per stored passage (identical text is stored once).

For each question and each mode (dense, bm25, hybrid; ``index.search(q, k=5, mode=...,
min_score=None)``, i.e. no relevance threshold drops a hit) the script records:

* hit@5: a hit among the top 5 is from the gold file (a hit's source, or a file it is also in,
  ends with the gold file name);
* nDCG@5: binary relevance by file; only the first hit from the gold file counts (later chunks of
  the same file add nothing) and there is one relevant file, so nDCG@5 = 1 / log2(1 + rank of
  the first gold hit), 0 when none is in the top 5;
* passage hit@5: the evidence (whitespace-normalised) lies inside the text of one of the top 5;
* bare-heading slots: how many of the top 5 are bare headings, and whether the top hit is one.

The script uses only API that exists before and after the chunking change that joins a
heading-only section to the one that follows (``Index``, ``add``, ``search``, ``save``,
``load``, ``len``, ``index.chunks``, a hit's ``source``, ``text`` and ``chunk.section``), so the
same file measures both.  A reused ``--index`` reflects the code that built it: after a change
to chunking or to what is embedded, build it again (delete the folder).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

# _common first: it sets the offline environment before anything imports ragbook
from _common import BENCH, OPENSTAX, Report, _jsonable, versions
from _questions import build_index, load_questions
from _questions import check as check_questions
from _questions import score as score_question
from _questions import summarise as summarise_questions

DATA = BENCH / "data" / "openstax-questions.jsonl"
MODES = ("dense", "bm25", "hybrid")
K = 5
MAX_EVIDENCE_WORDS = 25
MAX_PER_MODULE = 2
COPY_RUN = 5  # a question may not repeat this many consecutive words of its module
NAMING = re.compile(r"\b(chapter|module|section|book|textbook|openstax)\b", re.IGNORECASE)  # a question names none


def check(questions: list[dict], corpus: Path) -> list[str]:
    """Problems with the question file: evidence not in its module, copied runs, balance, names."""
    problems = check_questions(questions, corpus, max_per_document=MAX_PER_MODULE, copy_run=COPY_RUN,
                               max_evidence_words=MAX_EVIDENCE_WORDS, document="module")
    return problems + [f"{q['id']}: question names a chapter/module/book: {q['question']!r}"
                       for q in questions if NAMING.search(q["question"])]


def is_bare_heading(chunk) -> bool:
    """One line alone that is a Markdown heading or its own section's title."""
    text = chunk.text.strip()
    if "\n" in text:
        return False
    title = chunk.section[-1].strip() if chunk.section else ""
    return text.startswith("#") or (bool(title) and text == title)


def describe(hit) -> dict:
    return {"source": Path(hit.source).name, "section": list(hit.chunk.section), "bare": is_bare_heading(hit.chunk),
            "text": hit.text[:120]}


def score(index, question: dict, mode: str) -> dict:
    """The shared scores (the evidence counts in any hit's text), plus the bare headings in the top K."""
    row = score_question(index, question, mode, K, passage_from_gold=False, describe=describe)
    bare = [top["bare"] for top in row["top"]]
    row["bare_slots"] = sum(bare)
    row["top1_bare"] = bool(bare and bare[0])
    return row


def chunk_counts(index) -> dict:
    chunks = index.chunks
    bare = [c for c in chunks if is_bare_heading(c)]
    bare_texts = {c.text for c in bare}
    return {
        "chunks": len(chunks),
        "unique_passages": len(index),
        "bare_heading_chunks": len(bare),
        "bare_heading_passages": len(bare_texts),
        "bare_share": round(len(bare) / len(chunks), 4) if chunks else 0.0,
        "bare_examples": Counter(c.text.strip() for c in bare).most_common(8),
    }


def summarise(rows: list[dict]) -> dict:
    summary = summarise_questions(rows, K, mrr=False)
    summary.update({"bare_slots": sum(r["bare_slots"] for r in rows),
                    "slots": sum(len(r["top"]) for r in rows),
                    "top1_bare": sum(r["top1_bare"] for r in rows)})
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(OPENSTAX), help="folder of the OpenStax Markdown modules")
    parser.add_argument("--data", default=str(DATA), help="question file (JSONL)")
    parser.add_argument("--index", default=None, help="saved index folder to reuse (built and saved there if absent)")
    parser.add_argument("--out", default="headings", help="results file name under benchmarks/results, without .json")
    parser.add_argument("--out-file", default=None, help="write the results JSON to this path instead")
    parser.add_argument("--check", action="store_true", help="only validate the question file")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. which code was measured)")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"no corpus at {corpus}: the shared data is needed (or pass --corpus)")
        return 2

    questions = load_questions(Path(args.data))
    problems = check(questions, corpus)
    for p in problems:
        print(f"PROBLEM {p}")
    if args.check:
        modules = Counter(q["source"] for q in questions)
        print(f"{len(questions)} questions over {len(modules)} modules (at most {max(modules.values())} each); "
              f"{len(problems)} problem(s)")
        return 1 if problems else 0

    report = Report("headings", argv, k=K, modes=list(MODES), corpus=str(corpus), data=args.data,
                    index=args.index, note=args.note)
    report.data["versions"] = versions("ragbook", "sentence-transformers", "faiss-cpu", "torch")
    report.data["data_problems"] = problems
    import ragbook

    report.data["ragbook_path"] = str(Path(ragbook.__file__).parent)
    report.data["bare_heading_rule"] = ("chunk text, stripped, is a single line that starts with '#' or equals "
                                        "chunk.section[-1]; counted per location (index.chunks) and per stored passage")
    report.section("index")
    index, info = build_index(corpus, args.index)
    report.data["index"] = info
    print(f"   {info}")
    counts = chunk_counts(index)
    report.data["chunks"] = counts
    print(f"   {counts['chunks']} chunks, {counts['unique_passages']} unique passages; bare headings: "
          f"{counts['bare_heading_chunks']} chunks ({counts['bare_share']:.1%}), "
          f"{counts['bare_heading_passages']} distinct passages")
    print("   bare = the chunk's text, stripped, is one line that starts with '#' or equals its last section title")
    if counts["bare_examples"]:
        print("   most common: " + "; ".join(f"{t[:40]!r} x{n}" for t, n in counts["bare_examples"][:5]))

    results: dict = {}
    per_question: dict = {q["id"]: {"question": q["question"], "source": q["source"]} for q in questions}
    for mode in MODES:
        t0 = time.perf_counter()
        rows = [score(index, q, mode) for q in questions]
        summary = summarise(rows)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        summary["misses"] = [q["id"] for r, q in zip(rows, questions) if not r["hit"]]
        summary["passage_misses"] = [q["id"] for r, q in zip(rows, questions) if not r["passage"]]
        summary["top1_bare_ids"] = [q["id"] for r, q in zip(rows, questions) if r["top1_bare"]]
        results[mode] = summary
        for r, q in zip(rows, questions):
            per_question[q["id"]][mode] = {k: r[k] for k in ("rank", "passage", "bare_slots", "top1_bare", "top")}

    report.section(f"hit@{K} / nDCG@{K} / passage hit@{K} over {len(questions)} questions; bare headings in the top {K}")
    print(f"   {'mode':<8}{'hit@5':>8}{'nDCG@5':>8}{'passage':>9}{'bare slots':>13}{'top-1 bare':>12}")
    for mode in MODES:
        s = results[mode]
        print(f"   {mode:<8}{s[f'hit@{K}']:>8.3f}{s[f'ndcg@{K}']:>8.3f}{s[f'passage_hit@{K}']:>9.3f}"
              f"{s['bare_slots']:>7} / {s['slots']:<4}{s['top1_bare']:>6} / {s['questions']}")
    report.data["results"] = results
    report.data["per_question"] = per_question

    for key in ("bare_heading_chunks", "unique_passages"):
        report.info(key, counts[key])
    for mode in MODES:
        for key in (f"hit@{K}", f"ndcg@{K}", f"passage_hit@{K}", "bare_slots", "top1_bare"):
            report.info(f"{mode}.{key}", results[mode][key])

    if args.out_file:
        path = Path(args.out_file)
        report.data["seconds"] = round(time.perf_counter() - report.started, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        print(f"\nheadings: {report.data['seconds']:.0f} s; wrote {path}")
    else:
        report.name = args.out
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
