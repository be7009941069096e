"""Question sets with an evidence string: loading, data checks, scoring at k, summaries.

Shared by ``named.py`` and ``headings.py``.  A question file is JSONL, one question a line, each
with ``id``, ``question``, ``source`` (the gold file's name) and ``evidence`` (an exact passage
of that file that holds the answer).  A question is scored in one search mode at ``k``:

* hit@k: a hit among the top k is from the gold file (a hit's source or, for a passage stored
  once for several files, a file it is also in, has the gold file's name);
* nDCG@k: binary relevance by file; only the first gold hit counts and there is one relevant
  file, so nDCG@k = 1 / log2(1 + rank of the first gold hit), 0 when none is in the top k;
* MRR@k on the same first gold rank;
* passage hit@k: the evidence (whitespace-normalised) lies inside the text of one of the top k
  (by default only a hit from the gold file counts).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (sets the offline environment before anything imports ragbook)


def norm(text: str) -> str:
    return " ".join(text.split())


def words(text: str) -> list[str]:
    """Lower-case words, curly quotes straightened, punctuation dropped ("one-third" -> "one", "third").

    Underscores stay inside a word, so ``max_value`` is one word (code in a textbook).
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    return re.findall(r"[a-z0-9_]+(?:'[a-z]+)?", text)


def load_questions(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check(questions: list[dict], corpus: Path, *, max_per_document: int, copy_run: int,
          max_evidence_words: int = 25, document: str = "document", label: str = "",
          seen: set[str] | None = None) -> list[str]:
    """Problems with a question set: evidence not in its file, copied runs, balance, duplicate ids.

    A file may be asked about at most ``max_per_document`` times, and a question may not repeat
    ``copy_run`` consecutive words of its file.  ``document`` names a file in the messages
    ("speech", "module"), ``label`` prefixes the balance messages (e.g. the split), and ``seen``
    carries the ids of earlier sets so that ids stay unique across them.
    """
    problems = []
    for source, n in Counter(q["source"] for q in questions).items():
        if n > max_per_document:
            problems.append(f"{label}{source} is asked {n} times (at most {max_per_document})")
    seen = set() if seen is None else seen
    texts: dict[str, str] = {}
    runs: dict[str, set[tuple[str, ...]]] = {}
    for q in questions:
        qid = q["id"]
        if qid in seen:
            problems.append(f"{qid}: duplicate id")
        seen.add(qid)
        path = corpus / q["source"]
        if not path.is_file():
            problems.append(f"{qid}: no file {path}")
            continue
        if q["source"] not in texts:
            text = texts[q["source"]] = norm(path.read_text(encoding="utf-8", errors="replace"))
            own = words(text)
            runs[q["source"]] = {tuple(own[i:i + copy_run]) for i in range(len(own) - copy_run + 1)}
        if norm(q["evidence"]) not in texts[q["source"]]:
            problems.append(f"{qid}: evidence is not in {q['source']}: {q['evidence']!r}")
        if len(q["evidence"].split()) > max_evidence_words:
            problems.append(f"{qid}: evidence has more than {max_evidence_words} words")
        asked = words(q["question"])
        copied = [" ".join(asked[i:i + copy_run]) for i in range(len(asked) - copy_run + 1)
                  if tuple(asked[i:i + copy_run]) in runs[q["source"]]]
        if copied:
            problems.append(f"{qid}: question copies {copy_run} words of its {document}: {copied[0]!r}")
    return problems


def hit_sources(hit) -> list[str]:
    """Names of the files a hit is from: its own and, for a passage stored once, the others holding it."""
    # getattr: also_in is absent in older versions, which headings.py measures too
    return [Path(s).name for s in [hit.source, *(c.source for c in getattr(hit, "also_in", []))]]


def file_name(hit) -> str:
    return Path(hit.source).name


def score(index, question: dict, mode: str, k: int, *, passage_from_gold: bool = True,
          describe: Callable[[Any], Any] = file_name) -> dict:
    """One question searched in one mode: first gold rank, hit, nDCG, reciprocal rank, passage hit.

    No relevance threshold drops a hit (``min_score=None``).  ``top`` lists ``describe(hit)`` for
    each of the top k; ``passage_from_gold=False`` counts the evidence in any hit's text.
    """
    results = list(index.search(question["question"], k=k, mode=mode, min_score=None))
    gold = question["source"]
    evidence = norm(question["evidence"])
    rank = next((i for i, h in enumerate(results, start=1) if gold in hit_sources(h)), None)
    passage = any((not passage_from_gold or gold in hit_sources(h)) and evidence in norm(h.text) for h in results)
    return {
        "rank": rank,
        "hit": rank is not None,
        "ndcg": 1.0 / math.log2(1 + rank) if rank else 0.0,
        "rr": 1.0 / rank if rank else 0.0,
        "passage": passage,
        "top": [describe(h) for h in results],
    }


def summarise(rows: list[dict], k: int, *, mrr: bool = True) -> dict:
    n = len(rows)
    summary = {"questions": n,
               f"hit@{k}": round(sum(r["hit"] for r in rows) / n, 4),
               f"ndcg@{k}": round(sum(r["ndcg"] for r in rows) / n, 4)}
    if mrr:
        summary[f"mrr@{k}"] = round(sum(r["rr"] for r in rows) / n, 4)
    summary[f"passage_hit@{k}"] = round(sum(r["passage"] for r in rows) / n, 4)
    return summary


def build_index(corpus: Path, folder: str | None):
    """The index of ``corpus`` with ragbook's defaults: loaded from ``folder`` when saved there, else built (and saved)."""
    import ragbook

    if folder and (Path(folder) / "manifest.json").exists():
        t0 = time.perf_counter()
        index = ragbook.Index.load(folder)
        return index, {"reused": folder, "seconds": round(time.perf_counter() - t0, 1)}
    t0 = time.perf_counter()
    index = ragbook.Index()
    report = index.add(corpus)
    info = {"built": True, "seconds": round(time.perf_counter() - t0, 1), "report": report.summary()}
    if folder:
        index.save(folder)
        info["saved_to"] = folder
    return index, info
