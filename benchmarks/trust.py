"""Answers a teacher can trust: correct, confidently wrong and abstention rates, per answer strategy.

Two question sets, each answered by the default model (``ragbook.llm.default_model()``:
Qwen2.5-Coder-1.5B-Instruct Q4_K_M through llama.cpp, greedy) with the assistant's defaults
(hybrid search, k=3 with the passages after the best focused to 64 tokens, abstention below
relevance 0.3); the model's own words are cached (``raw_text``, answered without the model's
checks) and ``--review`` replays ragbook's checks on them as the assistant does (``rules``:
citations, support, contradictions and ``require_support``; ``verify``: the model's checks too,
the default):

* ``openstax``: ``benchmarks/data/openstax-teacher.jsonl``, questions students ask about the
  OpenStax *Introduction to Python Programming* book (``../shared/data/corpora``): yes/no,
  numeric results, definitions, how-to, error messages, comparisons, and questions the book
  does not answer; several gold phrasings each.
* ``openstax-heldout``: ``benchmarks/data/openstax-heldout.jsonl``, 50 more questions on the same book
  (40 answerable: 10 yes/no, 7 numeric, 6 definitions, 7 how-to, 5 error messages, 5 comparisons;
  10 the book does not answer), written after ragbook's checks had been tuned on ``openstax``, with
  the book sentence that answers each (``evidence``, checked verbatim against its file).
* ``openstax-unseen``: ``benchmarks/data/openstax-unseen.jsonl``, 40 more (32 answerable, 8 not),
  written after the checks were changed for ``openstax-heldout`` and answered once.
* ``openstax-yesno``: ``benchmarks/data/openstax-yesno.jsonl``, 40 yes/no questions (12 yes, 12 no, 16 the book
  does not answer), answered once.
* ``squad``: 100 questions of SQuAD 2.0 dev (``../shared/data/squad2-dev-cs224n``, seed 0),
  answerable and unanswerable as drawn; SQuAD's gold answers are the phrasings.

A strategy is a template name (``tutor`` is today's default).  Every answer (``Answer.to_dict``,
passages included, and each passage's place in its document) goes to
``benchmarks/.cache/trust/<set>-<strategy>.jsonl`` (gitignored: the shared data's text stays out
of the repository) so that it can be scored again, with the current checker, without the model
(``--rescore``); figures go to ``benchmarks/results/trust.json``, one entry per set and
strategy.  The measures are ``ragbook.answer_metrics``'s: ``correct`` (judge-free, crediting
paraphrase), ``contains``, ``confidently_wrong`` (answered, cited, judged wrong),
``flagged_wrong``, abstention on unanswerable questions, and seconds per answer.

    python benchmarks/trust.py --set squad --strategy tutor       # ~30 min on 2 idle cores
    python benchmarks/trust.py --set openstax --strategy strict
    python benchmarks/trust.py --set openstax-heldout --strategy tutor --passage-tokens 64   # the later questions
    python benchmarks/trust.py --set openstax --strategy tutor --rescore    # no model: score the cached answers again
    python benchmarks/trust.py --set openstax --strategy tutor --resume     # a killed run goes on where it stopped
    python benchmarks/trust.py --set openstax --strategy tutor-verify --terms-gate   # the stored rows, gated
    python benchmarks/trust.py --set squad --k 3                  # fewer passages a prompt (scored as tutor-k3)

``benchmarks/data/openstax-incidental.jsonl``: 18 questions the book answers that name an editor,
a platform or a course site in passing ("In VSCode, how do I ...?"); the unknown-terms check
must not fire on them (the first six set its thresholds, the other twelve were written after).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from types import SimpleNamespace
from typing import Any

from _common import BENCH, OPENSTAX, RESULTS, SHARED_DATA, machine, versions

from ragbook.qa import QASet, load_qa  # noqa: E402  (after _common's offline setup)

SQUAD = SHARED_DATA / "squad2-dev-cs224n"
TEACHER = BENCH / "data" / "openstax-teacher.jsonl"
CACHE = BENCH / ".cache" / "trust"
INDEXES = BENCH / ".cache" / "indexes"
FIGURES = ("correct", "contains", "confidently_wrong", "wrong", "flagged_wrong", "abstention_recall",
           "false_abstentions", "cited", "citation_precision", "f1", "seconds_per_question")


# Template variants measured against the built-in ones: ``--variant NAME`` answers with the template's fields
# changed as below (scored as STRATEGY+NAME).
VARIANTS = {
    "factfirst": {"user": ("Course material:\n\n{passages}\n\nStudent question: {question}\n\n"
                           "Answer the question in a few sentences a student can follow, using only the course material "
                           "above. If it is a yes/no question, first say what the course material states about it, and "
                           "only then answer Yes or No as that statement implies. End each sentence with the number of "
                           "the passage it comes from, in square brackets, like [1]. If the material does not answer the "
                           "question, say: {no_answer}")},
    "words": {"user": ("Course material:\n\n{passages}\n\nStudent question: {question}\n\n"
                       "Answer the question in one to three short sentences, using only the course material above "
                       "and keeping its own words. End each sentence "
                       "with the number of the passage it comes from, in square brackets, like [1]. If the material "
                       "does not answer the question, say: {no_answer}")},
}


def index_for(name: str):
    """The set's index, built once and kept in benchmarks/.cache/indexes (gitignored)."""
    from ragbook.index import build, open_index

    name = name.split("-")[0]  # openstax-heldout, openstax-unseen: the OpenStax index
    folder = INDEXES / name
    if (folder / "manifest.json").is_file():
        return open_index(folder)
    if name == "openstax":
        return build(OPENSTAX, out=folder)
    from ragbook.embedding import Embedder
    from ragbook.evaluation import index_beir, load_beir

    index = index_beir(load_beir(SQUAD).corpus, Embedder())
    index.save(folder)
    return index


def questions_for(name: str, limit: int | None, kind: str | None = None) -> QASet:
    if name.startswith("openstax"):
        qa = load_qa(TEACHER if name == "openstax" else BENCH / "data" / f"{name}.jsonl")  # openstax-heldout...
        if kind:
            qa = QASet([q for q in qa if q.metadata.get("kind") == kind], name=qa.name)
        return qa.sample(limit, 0) if limit else qa
    return load_qa(SQUAD).sample(limit or 100, 0)


def _place(hit) -> dict:
    c = hit.chunk
    return {"source": c.source, "start": c.start, "end": c.end, "page": c.page, "section": list(c.section),
            "citation": hit.citation(), "id": c.id}


def answer_all(set_name: str, strategy: str, limit: int | None, llm: str | None, resume: bool = False,
               k: int | None = None, passage_tokens: int | None = None, kind: str | None = None) -> list[dict]:
    from ragbook.assistant import Assistant

    index = index_for(set_name)
    qa = questions_for(set_name, limit, kind)
    template: Any = re.split(r"-[kp]\d|\+|@", strategy)[0]
    if "+" in strategy:
        from ragbook.prompt import get_template

        template = get_template(template).edit(**VARIANTS[strategy.split("+", 1)[1].split("@")[0]])
    extra: dict = {"k": k} if k else {}
    if passage_tokens:
        extra["passage_tokens"] = passage_tokens
    bot = Assistant(index, llm=llm, template=template, verify=False, **extra)  # checks are replayed by --review
    _ = bot.llm  # loaded before the clock starts
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{set_name}-{strategy}.jsonl"
    records = load_cached(set_name, strategy) if resume and out.is_file() else []
    done = {r["id"] for r in records}
    with open(out, "a" if records else "w", encoding="utf-8") as f:
        for n, item in enumerate(qa, start=1):
            if item.id in done:
                continue
            t0 = time.perf_counter()
            answer = bot.ask(item.question)
            seconds = time.perf_counter() - t0
            record = {"id": item.id, "seconds": round(seconds, 3), "answer": answer.to_dict(),
                      "places": [_place(h) for h in answer.passages]}
            record["answer"]["raw_text"] = answer.raw_text
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            records.append(record)
            print(f"{n:>3}/{len(qa)} {seconds:5.1f} s {item.id}: {answer.text[:110]!r}", flush=True)
    return records


def review_all(set_name: str, strategy: str, mode: str, llm: str | None) -> list[dict]:
    """Re-check the cached answers of ``strategy`` as the assistant does (ragbook.grounding.review), with
    the rules only (``mode="rules"``) or with the model as verifier (``"verify"``); cached as
    ``<set>-<strategy>-<mode>.jsonl``.  Seconds are the answer's plus the checks'."""
    from ragbook.grounding import model_verdict, review
    from ragbook.prompt import get_template

    template = get_template(re.split(r"-[kp]\d|\+|@", strategy)[0])
    ask = None
    if mode == "verify":
        from ragbook.llm import default_model, load_llm

        model = load_llm(llm or default_model())
        ask = lambda prompt: model_verdict(model, prompt)  # noqa: E731
    out = CACHE / f"{set_name}-{strategy}-{mode}.jsonl"
    records = []
    with open(out, "w", encoding="utf-8") as f:
        for n, cached in enumerate(load_cached(set_name, strategy), start=1):
            data = cached["answer"]
            if data["mode"] != "llm":
                records.append(cached)
                f.write(json.dumps(cached, ensure_ascii=False) + "\n")
                continue
            passages = [SimpleNamespace(text=p["text"], chunk=SimpleNamespace(text=p["text"])) for p in data["passages"]]
            t0 = time.perf_counter()
            r = review(data["raw_text"], passages, data["question"], template, ask)
            seconds = time.perf_counter() - t0
            answer = {**data, "text": r.text, "withheld": r.withheld, "withheld_reason": r.why_withheld,
                      "model_checks": r.model_checks,
                      "grounding": r.grounding.to_dict() if r.grounding is not None else None,
                      "citations": [{"n": c.n, "valid": c.valid} for c in r.citations],
                      "checks": [{"sentence": c.sentence, "cites": c.cites, "flag": c.flag, "verified": c.verified}
                                 for c in r.checks]}
            record = {**cached, "seconds": round(cached["seconds"] + seconds, 3), "review_seconds": round(seconds, 3),
                      "answer": answer}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            records.append(record)
            print(f"{n:>3} {seconds:5.1f} s {cached['id']}: {r.text[:100]!r}", flush=True)
    return records


def with_terms_gate(set_name: str, entry: dict) -> dict:
    """A stored entry's rows as they are with the unknown-terms check (ragbook.coverage) in front.

    The check runs before the model, so where it does not fire the answer is the one stored
    (greedy decoding: the same prompt gives the same words), and where it fires the answer is
    "I don't know" at the check's cost.  Exact without generating again."""
    from ragbook.assistant import Assistant

    bot = Assistant(index_for(set_name), llm="extractive")
    qa = {item.id: item for item in questions_for(set_name, None if set_name.startswith("openstax") else 100)}
    rows, fired = [], []
    for row in entry["rows"]:
        t0 = time.perf_counter()
        unknown = bot.unknown_terms(qa[row["id"]].question)
        if unknown:
            fired.append({"id": row["id"], "terms": unknown, "was": "abstained" if row["abstained"] else
                          "confidently wrong" if row["confidently_wrong"] else "correct" if row["correct"] else "wrong"})
            row = {**row, "answer": f"(the documents never mention {unknown})", "abstained": True, "correct": False,
                   "contains": False if row["contains"] is not None else None, "flagged": False, "contradicted": [],
                   "confidently_wrong": False, "seconds": round(time.perf_counter() - t0, 3)}
        rows.append(row)
    answerable = [r for r in rows if not r["unanswerable"]]
    unanswerable = [r for r in rows if r["unanswerable"]]
    wrong = [r for r in rows if not r["correct"]]

    def mean(values: list) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    summary = {"questions": len(rows), "answerable": len(answerable), "unanswerable": len(unanswerable),
               "correct": mean([r["correct"] for r in answerable]),
               "contains": mean([r["contains"] for r in answerable if r["contains"] is not None]),
               "confidently_wrong": mean([r["confidently_wrong"] for r in rows]),
               "wrong": mean([not r["correct"] for r in rows]), "flagged_wrong": mean([r["flagged"] for r in wrong]),
               "abstention_recall": mean([r["abstained"] for r in unanswerable]),
               "false_abstentions": mean([r["abstained"] for r in answerable]),
               "seconds_per_question": round(sum(r["seconds"] for r in rows) / len(rows), 3)}
    seconds = sorted(r["seconds"] for r in rows)
    summary["median_seconds"] = seconds[len(seconds) // 2]
    if set_name == "openstax":  # answerable questions outside the set: where the check must stay quiet
        for name in ("openstax-questions", "openstax-incidental"):
            extra = load_qa(BENCH / "data" / f"{name}.jsonl")
            summary[f"fired_on_{name}"] = [q.id for q in extra if bot.unknown_terms(q.question)]
            summary[f"{name}_questions"] = len(extra)
    return {"summary": summary, "fired": fired, "replayed_from": entry.get("date"), "rows": rows}


def load_cached(set_name: str, strategy: str) -> list[dict]:
    with open(CACHE / f"{set_name}-{strategy}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def score(set_name: str, strategy: str, records: list[dict], limit: int | None) -> dict:
    from ragbook.answer import check_answer
    from ragbook.answer_metrics import score_answer, summarize
    from ragbook.prompt import NO_ANSWER

    qa = {item.id: item for item in questions_for(set_name, limit)}
    rows = []
    for r in records:
        answer = _said(r["answer"])
        if answer.mode == "llm" and "withheld" not in r["answer"]:  # today's checker on the saved text
            _, checks = check_answer(answer.text, [p.chunk for p in answer.passages], no_answer=NO_ANSWER)
            answer.checks = checks
        rows.append(score_answer(qa[r["id"]], answer, r["seconds"]))
        rows[-1]["contradicted"] = [c.flag for c in answer.checks if c.flag.startswith("contradicts")]
    summary = summarize(rows)
    flagged = [row for row in rows if row["contradicted"]]
    seconds = sorted(r["seconds"] for r in records)
    summary["median_seconds"] = round(seconds[len(seconds) // 2], 2) if seconds else None
    summary["model_checks_per_answer"] = round(sum(r["answer"].get("model_checks", 0) for r in records)
                                               / max(1, len(records)), 3)
    reviewed = [r["review_seconds"] for r in records if "review_seconds" in r]
    summary["check_seconds_per_answer"] = round(sum(reviewed) / len(reviewed), 3) if reviewed else None
    summary["withheld"] = sum(bool(r["answer"].get("withheld")) for r in records)
    summary["contradiction_flags"] = {"answers": len(flagged), "sentences": sum(len(r["contradicted"]) for r in rows),
                                      "on_correct_answers": sum(r["correct"] for r in flagged)}
    return {"summary": {k: (round(summary[k], 4) if isinstance(summary[k], float) else summary[k])
                        for k in ("questions", "answerable", "unanswerable", *FIGURES, "median_seconds",
                                  "model_checks_per_answer", "check_seconds_per_answer", "withheld",
                                  "contradiction_flags")},
            "by_kind": _by_kind(rows, qa),
            "rows": [{k: row[k] for k in ("id", "answer", "gold", "unanswerable", "abstained", "correct", "contains",
                                          "flagged", "contradicted", "confidently_wrong", "seconds")} for row in rows]}


def _said(data: dict) -> SimpleNamespace:
    """What scoring reads of a saved answer (Answer.to_dict): its text, mode, citations and flags."""
    from ragbook.documents import Chunk

    passages = [SimpleNamespace(chunk=Chunk(text=p["text"], source=p["source"], page=p.get("page")), also_in=())
                for p in data["passages"]]
    citations = [SimpleNamespace(n=c["n"], valid=c["valid"],
                                 hit=passages[c["n"] - 1] if c["valid"] else None,
                                 text=passages[c["n"] - 1].chunk.text if c["valid"] else "")
                 for c in data["citations"]]
    checks = [SimpleNamespace(flag=c["flag"]) for c in data["checks"]]
    return SimpleNamespace(text=data["text"], mode=data["mode"], citations=citations, checks=checks, passages=passages)


def _by_kind(rows: list[dict], qa: dict) -> dict:
    from ragbook.answer_metrics import summarize

    kinds: dict[str, list[dict]] = {}
    for row in rows:
        kinds.setdefault(qa[row["id"]].metadata.get("kind", "all"), []).append(row)
    out = {}
    for kind, group in sorted(kinds.items()):
        s = summarize(group)
        out[kind] = {k: (round(s[k], 3) if isinstance(s[k], float) else s[k])
                     for k in ("questions", "correct", "confidently_wrong", "abstention_recall")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="openstax,squad",
                        help="openstax, openstax-heldout, openstax-unseen, openstax-yesno, squad (comma-separated)")
    parser.add_argument("--strategy", default="tutor", help="template name(s), comma-separated")
    parser.add_argument("--limit", type=int, default=None, help="questions per set (default: all; SQuAD 100)")
    parser.add_argument("--llm", default=None, help="model (default: ragbook.llm.default_model())")
    parser.add_argument("--k", type=int, default=None,
                        help="passages per answer (default: the assistant's); scored as STRATEGY-kN")
    parser.add_argument("--passage-tokens", type=int, default=None,
                        help="each passage cut to its sentences closest to the question, up to N tokens (suffix -pN)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default=None,
                        help="answer with a variant of the template (VARIANTS; scored as STRATEGY+NAME)")
    parser.add_argument("--kind", default=None,
                        help="OpenStax: only the questions of this kind (yes/no, numeric...; scored as STRATEGY@KIND)")
    parser.add_argument("--rescore", action="store_true", help="score the cached answers again, no model")
    parser.add_argument("--resume", action="store_true", help="keep the cached answers and answer only the rest")
    parser.add_argument("--review", choices=("rules", "verify"), default=None,
                        help="re-check the cached answers as the assistant does: rules only, or with the model as "
                             "verifier (scored as STRATEGY-rules / STRATEGY-verify)")
    parser.add_argument("--terms-gate", action="store_true",
                        help="replay the stored entries SET/STRATEGY of trust.json with the unknown-terms check in "
                             "front (scored as STRATEGY+terms; no model)")
    args = parser.parse_args()
    results_file = RESULTS / "trust.json"
    results = json.loads(results_file.read_text(encoding="utf-8")) if results_file.is_file() else {
        "benchmark": "trust", "results": {}}
    for set_name in args.set.split(","):
        for strategy in args.strategy.split(","):
            if args.k:
                strategy = f"{strategy}-k{args.k}"
            if args.passage_tokens:
                strategy = f"{strategy}-p{args.passage_tokens}"
            if args.variant:
                strategy = f"{strategy}+{args.variant}"
            if args.kind:
                strategy = f"{strategy}@{args.kind.replace('/', '')}"
            if args.terms_gate:
                entry = with_terms_gate(set_name, results["results"][f"{set_name}/{strategy}"])
                entry["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                results["results"][f"{set_name}/{strategy}+terms"] = entry
                print(f"{set_name}/{strategy}+terms: {entry['summary']}  fired: {entry['fired']}", flush=True)
                results_file.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
                continue
            if args.review:
                records = review_all(set_name, strategy, args.review, args.llm)
                strategy = f"{strategy}-{args.review}"
            else:
                records = (load_cached(set_name, strategy) if args.rescore
                           else answer_all(set_name, strategy, args.limit, args.llm, args.resume, args.k,
                                           args.passage_tokens, args.kind))
            entry = score(set_name, strategy, records, args.limit)
            entry["machine"] = machine()
            entry["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            entry["versions"] = versions("llama-cpp-python", "sentence-transformers")
            results["results"][f"{set_name}/{strategy}"] = entry
            print(f"{set_name}/{strategy}: " + "  ".join(
                f"{k} {v}" for k, v in entry["summary"].items()), flush=True)
            results_file.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
