"""Does the model cite by itself? The demo corpus's 15 gold questions through each template.

For every gold question in ``corpora/.questions.json`` the assistant (demo index, ``k=5``,
temperature 0, the template under test) answers, and the model's own words (``Answer.raw_text``,
before ragbook's attribution adds markers) are checked:

- **cited**: the share of answers whose raw text has at least one valid ``[n]`` (a passage that
  was in the prompt);
- **on source**: the share of the raw text's citations (each distinct ``[n]`` of an answer once,
  pooled over answers) that name a passage from the gold answer's source file (``on page``: and
  its page, when the gold answer has one); **on passage**: the gold answer's own passage, i.e.
  also its section (the passage's last heading) when the gold answer names one;
- **correct**: the model's answer states the gold answer's key facts: every number of its first clause
  (the text before the first ``;`` or ``,``; numbers written as words count, leading zeros
  ignored) and at least half of that clause's words (stemmed, stop words dropped; the whole
  gold answer when the clause has fewer than two words); and no sentence contradicts a negative
  clause of the gold answer (gold "grace days do not apply", answer "You can use grace days on it");
- the same cited and on-source shares after attribution (``Answer.text``), for comparison.

Each answer is written to the results file with its raw text, so a person can read them.  Answers
are also journaled as they come (``$TMPDIR/ragbook-citing[-suffix].jsonl``): a run killed half
way, on a busy machine where 45 answers take 30-60 minutes, picks up where it stopped.

    python benchmarks/citing.py                                # Qwen2.5-Coder-1.5B, 3 templates (~15-40 min)
    python benchmarks/citing.py --model qwen2.5-coder-0.5b     # -> results/citing-qwen2.5-coder-0.5b.json
    python benchmarks/citing.py --templates tutor -n 5 --suffix=-try   # a quick look
    python benchmarks/citing.py --rescore benchmarks/results/citing.json  # judge saved answers again
    python benchmarks/citing.py --model qwen2.5-coder-0.5b --prompts-from benchmarks/results/citing-before.json \
        --suffix=-qwen2.5-coder-0.5b-before                    # an earlier run's templates on another model
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DEMO_CORPUS, Report, versions

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
QUESTIONS = DEMO_CORPUS / ".questions.json"
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_NUMBER = re.compile(r"\d+(?:[.:]\d+)?")


def _normalise(text: str) -> str:
    """Number words as digits, leading zeros dropped ("Lab 07" and "lab 7" match)."""
    text = re.sub(r"[A-Za-z]+", lambda m: _NUMBER_WORDS.get(m.group().lower(), m.group()), text)
    return re.sub(r"(?<![\d.:])0+(?=\d)", "", text)


def _analyse(text: str) -> set[str]:
    """The stemmed content words of ``text`` (ragbook's BM25 analyser), numbers as digits."""
    global _ANALYZER
    if _ANALYZER is None:
        from ragbook.lexical import Analyzer

        _ANALYZER = Analyzer()
    return set(_ANALYZER(_normalise(text)))


_ANALYZER = None


def key_facts(gold: str) -> tuple[set[str], set[str]]:
    """The numbers and the words an answer must state to count as correct (see the docstring)."""
    clause = re.split(r"[;,]", gold, maxsplit=1)[0]
    words = _analyse(clause)
    if len(words) < 2:
        clause, words = gold, _analyse(gold)
    numbers = set(_NUMBER.findall(_normalise(clause))) or set(_NUMBER.findall(_normalise(gold)))
    return numbers, words


_NEGATION = re.compile(r"\b(?:not|no|never|cannot|none)\b|n't\b", re.IGNORECASE)


def contradicts(answer: str, gold: str) -> bool:
    """Whether the answer states the opposite of one of the gold answer's negative clauses.

    For a clause like "grace days do not apply", a sentence that shares most of its words
    ("grace days") but says nothing negative ("You can use grace days on it") contradicts it.
    """
    from ragbook.answer import split_sentences

    for clause in re.split(r"[;,]", gold):
        words = _analyse(clause)
        if not _NEGATION.search(clause) or len(words) < 2:
            continue
        for sentence in split_sentences(answer):
            shared = words & _analyse(sentence)
            if len(shared) >= max(2, len(words) / 2) and not _NEGATION.search(sentence):
                return True
    return False


def is_correct(answer: str, gold: str) -> bool:
    numbers, words = key_facts(gold)
    found = set(_NUMBER.findall(_normalise(answer)))
    terms = _analyse(answer)
    return numbers <= found and len(words & terms) >= len(words) / 2 and not contradicts(answer, gold)


def _from_source(hit: Any, gold: dict[str, Any], *, page: bool = False) -> bool:
    if hit is None or not hit.source.endswith(gold["source"].removeprefix("corpora/")):
        return False
    return not page or gold.get("page") is None or hit.page == gold["page"]


def on_gold_passage(citation: str, gold: dict[str, Any]) -> bool:
    """Whether a passage's citation (``source, page 4`` / ``source, cell 13 > Heading > Sub``) is the gold one."""
    where, _, sections = citation.partition(" > ")
    source, *places = where.split(", ")
    if not source.endswith(gold["source"].removeprefix("corpora/")):
        return False
    if gold.get("page") is not None and f"page {gold['page']}" not in places:
        return False
    return not gold.get("section") or sections.split(" > ")[-1] == gold["section"]


def judge(answer: Any, gold: dict[str, Any]) -> dict[str, Any]:
    """What one answer did: citations in the model's own text and after attribution, correctness."""
    from ragbook.answer import check_answer

    raw_citations, _ = check_answer(answer.raw_text or answer.text, answer.passages)
    row = {
        "question": gold["question"], "gold": gold["answer"], "mode": answer.mode,
        "raw_text": answer.raw_text, "text": answer.text,
        "passages": [h.citation() for h in answer.passages],
        "gold_retrieved": any(_from_source(h, gold) for h in answer.passages),
        "raw_citations": [c.n for c in raw_citations],
        "raw_valid": [c.n for c in raw_citations if c.valid],
        "raw_on_source": [c.n for c in raw_citations if _from_source(c.hit, gold)],
        "raw_on_page": [c.n for c in raw_citations if _from_source(c.hit, gold, page=True)],
        "raw_on_passage": [c.n for c in raw_citations if c.hit is not None and on_gold_passage(c.hit.citation(), gold)],
        "citations": [c.n for c in answer.citations],
        "valid": [c.n for c in answer.citations if c.valid],
        "on_source": [c.n for c in answer.citations if _from_source(c.hit, gold)],
        "correct": is_correct(answer.raw_text or answer.text, gold["answer"]),
        "seconds": round(answer.timings.get("total", 0.0), 2),
        "completion_tokens": answer.tokens.get("completion"),
    }
    return row


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    raw_cites = sum(len(r["raw_citations"]) for r in rows)
    cites = sum(len(r["citations"]) for r in rows)
    return {
        "answers": n,
        "cited_by_model": _share(sum(bool(r["raw_valid"]) for r in rows), n),
        "model_citations": raw_cites,
        "model_citations_valid": _share(sum(len(r["raw_valid"]) for r in rows), raw_cites),
        "model_citations_on_source": _share(sum(len(r["raw_on_source"]) for r in rows), raw_cites),
        "model_citations_on_page": _share(sum(len(r["raw_on_page"]) for r in rows), raw_cites),
        "model_citations_on_passage": _share(sum(len(r["raw_on_passage"]) for r in rows), raw_cites),
        "correct": _share(sum(r["correct"] for r in rows), n),
        "cited_after_attribution": _share(sum(bool(r["valid"]) for r in rows), n),
        "citations_on_source_after_attribution": _share(sum(len(r["on_source"]) for r in rows), cites),
        "gold_source_retrieved": _share(sum(r["gold_retrieved"] for r in rows), n),
        "abstained": sum(r["mode"] == "abstained" for r in rows),
        "seconds_p50": round(statistics.median(r["seconds"] for r in rows), 1) if rows else None,
    }


def demo_index(folder: Path) -> Any:
    """The demo's index, built the way ``ragbook demo`` builds it."""
    from ragbook.index import build

    return build(DEMO_CORPUS, out=folder)


def _load_done(journal: Path | None, key: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Answers an interrupted run of the same model and prompts already judged (see ``run``)."""
    done: dict[tuple[str, str], dict[str, Any]] = {}
    if journal is None or not journal.is_file():
        return done
    for line in journal.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["key"] == key:
            done[entry["template"], entry["row"]["question"]] = entry["row"]
    return done


def run(llm: Any, index: Any, templates: list[Any], questions: list[dict[str, Any]],
        report: Report | None = None, journal: Path | None = None, k: int = 5) -> dict[str, Any]:
    """Answer every question with every template; per-template summaries and answers.

    Each judged answer is appended to ``journal`` (JSON lines) as it comes, so that a run
    killed half way (an hour of CPU on a shared machine) resumes where it stopped.
    """
    from ragbook.assistant import Assistant

    key = json.dumps([llm.name, [t.to_dict() for t in templates], k], sort_keys=True)
    done = _load_done(journal, key)
    out: dict[str, Any] = {}
    for template in templates:
        bot = Assistant(index, llm=llm, template=template, temperature=0.0, k=k)
        rows = []
        for gold in questions:
            if (bot.template.name, gold["question"]) in done:
                rows.append(done[bot.template.name, gold["question"]])
                continue
            rows.append(judge(bot.ask(gold["question"]), gold))
            if journal is not None:
                with open(journal, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "template": bot.template.name, "row": rows[-1]}) + "\n")
            r = rows[-1]
            print(f"   [{bot.template.name}] {'C' if r['raw_valid'] else '-'}{'+' if r['correct'] else '-'} "
                  f"{r['seconds']:5.1f} s  {gold['question'][:50]!r}: {r['raw_text'][:110]!r}", flush=True)
        summary = summarise(rows)
        out[bot.template.name] = {"summary": summary, "answers": rows}
        line = (f"{bot.template.name:8} cited by the model {summary['cited_by_model']}, its citations on the gold "
                f"source {summary['model_citations_on_source']} (passage {summary['model_citations_on_passage']}), "
                f"correct {summary['correct']}; after attribution cited {summary['cited_after_attribution']}")
        if report is not None:
            report.info(f"{bot.template.name}", summary, line)
        else:
            print(line, flush=True)
    return out


def rescore(path: Path) -> None:
    """Judge the answers saved in a results file again (after a change to the judging; no model)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    golds = {g["question"]: g for g in json.loads(QUESTIONS.read_text(encoding="utf-8"))}
    for name, rows in data["answers"].items():
        for row in rows:
            row["correct"] = is_correct(row["raw_text"] or row["text"], row["gold"])
            row["raw_on_passage"] = [n for n in row["raw_valid"]
                                     if on_gold_passage(row["passages"][n - 1], golds[row["question"]])]
        data["figures"][name] = summarise(rows)
        print(f"{name:8} correct {data['figures'][name]['correct']}, citations on the gold passage "
              f"{data['figures'][name]['model_citations_on_passage']}")
    data["rescored"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="preset name or GGUF path")
    parser.add_argument("--templates", nargs="+", default=["tutor", "research", "strict"])
    parser.add_argument("-n", type=int, default=None, help="only the first N questions")
    parser.add_argument("--k", type=int, default=5, help="passages a prompt (default 5, as the recorded runs; "
                                                          "the assistant's own default is 3)")
    parser.add_argument("--suffix", default=None, help="results file suffix (default: -MODEL unless the default model)")
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp threads (1: on a shared 2-core machine one thread reads the prompt faster "
                             "than two; greedy answers are the same)")
    parser.add_argument("--prompts-from", type=Path, metavar="JSON",
                        help="use the templates recorded in an earlier results file (e.g. the before run), "
                             "or in a JSON object of Template.to_dict() by name")
    parser.add_argument("--rescore", type=Path, metavar="JSON", help="judge a results file's saved answers again")
    args = parser.parse_args()
    if args.rescore:
        rescore(args.rescore)
        return

    from ragbook.llm import load_llm
    from ragbook.prompt import Template, get_template

    questions = json.loads(QUESTIONS.read_text(encoding="utf-8"))[: args.n]
    if args.prompts_from:
        recorded = json.loads(args.prompts_from.read_text(encoding="utf-8"))
        recorded = recorded["settings"]["prompts"] if "settings" in recorded else recorded  # a results file, or templates
        templates = [Template.from_dict(recorded[t]) for t in args.templates]
    else:
        templates = [get_template(t) for t in args.templates]
    report = Report("citing", model=args.model, templates=args.templates, questions=len(questions), k=args.k,
                    temperature=0.0, threads=args.threads, prompts_from=args.prompts_from,
                    prompts={t.name: t.to_dict() for t in templates})
    report.data["versions"] = versions("llama-cpp-python", "sentence-transformers", "torch")
    suffix = args.suffix if args.suffix is not None else ("" if args.model == DEFAULT_MODEL else f"-{Path(args.model).name}")
    journal = Path(tempfile.gettempdir()) / f"ragbook-citing{suffix}.jsonl"  # answers so far, to resume a killed run
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = demo_index(Path(tmp) / "demo-index")
        llm = load_llm(args.model, n_threads=args.threads)
        report.info("setup_s", round(time.perf_counter() - t0, 1), f"index and model ready in {time.perf_counter() - t0:.0f} s")
        results = run(llm, index, templates, questions, report, journal, k=args.k)
    report.data["answers"] = {name: r["answers"] for name, r in results.items()}
    report.write(suffix)
    journal.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
