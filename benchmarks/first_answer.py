"""The README's demo answer, timed: first token and whole answer, before and after issue 14.

The demo assistant (``corpora/``, the default template and model) answers the README's
question.  "Before" is how every answer was read until now: the whole prompt from an empty
context (``prefix_cache="off"``) with 5 passages (the assistant's default until then; 3 now).
Then the same answer with the fixed start
of the prompt (system message and worked example) kept between questions, learnt from two
other questions first, with 5, 4, 3 and 2 passages (the passages after the best focused to
``PASSAGE_TOKENS``, the default), 3 whole passages, and the first question of a fresh process
that finds the kept start on disk.  Each answer is compared with the "before" one, word for
word, and its citations are listed.

Targets (issue 14): first token <= 0.4x and whole answer <= 0.5x of "before", same answer.

    python benchmarks/first_answer.py                          # default model, ~5 min on 2 idle cores
    python benchmarks/first_answer.py --llm qwen2.5-coder-0.5b # the Binder model
    python benchmarks/first_answer.py --threads 1,2            # also compare thread counts
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, Report, versions  # noqa: E402  (offline environment first)

from ragbook.cli import DEMO_QUESTION  # noqa: E402
from ragbook.settings import ANSWER_PASSAGES, PASSAGE_TOKENS  # noqa: E402

TTFT_TARGET, TOTAL_TARGET = 0.4, 0.5
WARM_UP = ["How many grace days do students get?", "What is the late policy for labs?"]

FRESH = """
import json, sys
import ragbook
from ragbook.llm.llamacpp import LlamaCppLLM
llm = LlamaCppLLM({llm!r}, prefix_cache="disk", n_threads={threads})
bot = ragbook.Assistant(ragbook.open_index({index!r}), llm=llm)
kept = []
prepare = llm.prefix_cache.prepare
llm.prefix_cache.prepare = lambda tokens: kept.append(prepare(tokens)) or kept[-1]
a = bot.ask({question!r})
print(json.dumps({{"first": a.timings["first_token"], "total": a.timings["total"], "text": a.text,
                  "reused": kept[0], "disk_loads": llm.prefix_cache.stats.disk_loads}}))
"""


def answer(bot, question: str) -> dict:
    """One answer's figures; ``reused``: prompt tokens the answer's own prompt did not read again
    (the verification prompt that follows is a call of its own)."""
    cache = getattr(bot.llm, "prefix_cache", None)
    kept: list[int] = []
    if cache is not None:
        prepare = cache.prepare
        cache.prepare = lambda tokens: kept.append(prepare(tokens)) or kept[-1]
    try:
        a = bot.ask(question)
    finally:
        if cache is not None:
            del cache.prepare
    return {"first": a.timings["first_token"], "total": a.timings["total"], "text": a.text,
            "prompt_tokens": a.tokens.get("prompt"), "passages": len(a.passages),
            "cited": sorted({c.n for c in a.citations}), "reused": kept[0] if kept else 0}


def main(argv: list[str] | None = None) -> int:
    import ragbook
    from ragbook.llm import default_model
    from ragbook.llm.llamacpp import LlamaCppLLM

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default=None, help="llama.cpp preset (default: ragbook's default model)")
    parser.add_argument("--threads", default=None, help="thread counts to compare, e.g. 1,2 (default: ragbook's)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="times the checked answers (before, and today's default) are timed; medians are checked")
    parser.add_argument("--passage-tokens", default="",
                        help="also with the passages after the best focused to N tokens, e.g. 96,128 "
                             f"(the default, {PASSAGE_TOKENS}, is the kept-kN rows; whole passages are measured too)")
    args = parser.parse_args(argv)
    name = args.llm or default_model()
    rep = Report("first_answer", argv if argv is not None else sys.argv[1:], llm=name, question=DEMO_QUESTION,
                 versions=versions("ragbook", "llama-cpp-python", "onnxruntime"))
    tmp = Path(tempfile.mkdtemp(prefix="ragbook-first-answer-"))
    index = ragbook.build(REPO / "corpora", out=tmp / "index")
    threads = [int(t) for t in args.threads.split(",")] if args.threads else [None]
    rows: dict[str, dict] = {}
    for n_threads in threads:
        tag = f"@{n_threads}t" if n_threads else ""
        cold = LlamaCppLLM(name, prefix_cache="off", n_threads=n_threads)
        rep.section(f"{name}{tag}: the demo question, prompt read whole (before)")
        rows["before" + tag] = before = answer(ragbook.Assistant(index, llm=cold, k=5, passage_tokens=None),
                                               DEMO_QUESTION)
        show(rep, "before" + tag, before, before)
        cold.close()
        for _ in range(args.repeat - 1):  # this shared machine's speed drifts: a cold model again, timed again
            again = LlamaCppLLM(name, prefix_cache="off", n_threads=n_threads)
            res = answer(ragbook.Assistant(index, llm=again, k=5, passage_tokens=None), DEMO_QUESTION)
            before.setdefault("firsts", [before["first"]]).append(res["first"])
            before.setdefault("totals", [before["total"]]).append(res["total"])
            again.close()
        warm = LlamaCppLLM(name, prefix_cache="memory", n_threads=n_threads)
        for k in (5, 4, 3, 2):
            bot = ragbook.Assistant(index, llm=warm, k=k)
            for q in WARM_UP:
                bot.ask(q)
            rows[f"kept-k{k}{tag}"] = row = answer(bot, DEMO_QUESTION)
            for _ in range(args.repeat - 1 if k == ANSWER_PASSAGES else 0):  # as the first time: nothing of it kept
                warm.prefix_cache.clear()  # (a question asked again is answered from its own kept start)
                for q in WARM_UP:
                    bot.ask(q)
                again = answer(bot, DEMO_QUESTION)
                row.setdefault("firsts", [row["first"]]).append(again["first"])
                row.setdefault("totals", [row["total"]]).append(again["total"])
            show(rep, f"kept-k{k}{tag}", row, before)
        for budget in [None, *(int(b) for b in args.passage_tokens.split(",") if b)]:
            bot = ragbook.Assistant(index, llm=warm, passage_tokens=budget)
            for q in WARM_UP:
                bot.ask(q)
            key = f"kept-k{ANSWER_PASSAGES}-{f'p{budget}' if budget else 'whole'}{tag}"
            rows[key] = row = answer(bot, DEMO_QUESTION)
            show(rep, key, row, before)
        warm.close()
    tag = f"@{threads[-1]}t" if threads[-1] else ""  # the figures checked: the last thread count's
    rep.section("a fresh process's first question, the kept start read from disk")
    code = FRESH.format(llm=name, threads=threads[-1], index=str(tmp / "index"), question=DEMO_QUESTION)
    # an earlier session: its second question shares the first one's start, which is then learnt and written
    primer = FRESH.format(llm=name, threads=threads[-1], index=str(tmp / "index"), question=WARM_UP[0])
    primer = primer.replace("a = bot.ask(", f"bot.ask({WARM_UP[1]!r})\na = bot.ask(")
    subprocess.run([sys.executable, "-c", primer], check=True, capture_output=True, cwd=REPO)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    fresh_key = f"fresh-process-k{ANSWER_PASSAGES}{tag}"
    rows[fresh_key] = fresh = json.loads(out.stdout.strip().splitlines()[-1])
    show(rep, fresh_key, fresh, rows["before" + tag])
    rep.info("answers", rows)
    before = rows["before" + tag]
    best = min((r for key, r in rows.items() if key.startswith("kept-") and key.endswith(tag) and r["same_words"]),
               key=lambda r: r["first"], default=None)
    for key in (f"kept-k5{tag}", f"kept-k{ANSWER_PASSAGES}-whole{tag}"):  # 5 passages as before, and 3 whole: figures
        r = rows[key]
        rep.info(f"{key}_ratios", {"first_token": round(r["first"] / before["first"], 3),
                                   "total": round(r["total"] / before["total"], 3), "same_words": r["same_words"]})
    for r in rows.values():  # the checked rows were timed --repeat times: their medians are the figures
        if "firsts" in r:
            r["first_single"], r["first"] = r["first"], sorted(r["firsts"])[len(r["firsts"]) // 2]
        if "totals" in r:
            r["total_single"], r["total"] = r["total"], sorted(r["totals"])[len(r["totals"]) // 2]
    for key in (f"kept-k{ANSWER_PASSAGES}{tag}", fresh_key):  # today's defaults: the targets
        r = rows[key]
        rep.check(f"{key}_first_token_ratio", round(r["first"] / before["first"], 3), f"<= {TTFT_TARGET}",
                  r["first"] / before["first"] <= TTFT_TARGET and r["same_words"],
                  f"{key}: first token {r['first']:.2f} s vs {before['first']:.2f} s before "
                  f"({r['first'] / before['first']:.2f}x), same answer: {r['text'] == before['text']} "
                  f"(same words: {r['same_words']})")
        rep.check(f"{key}_total_ratio", round(r["total"] / before["total"], 3), f"<= {TOTAL_TARGET}",
                  r["total"] / before["total"] <= TOTAL_TARGET,
                  f"{key}: whole answer {r['total']:.2f} s vs {before['total']:.2f} s ({r['total'] / before['total']:.2f}x)")
    if best is not None:
        rep.info("fastest_same_answer", {"first": round(best["first"], 3), "passages": best["passages"]},
                 f"fastest with the same answer: {best['passages']} passages, first token {best['first']:.2f} s")
    rep.write("" if name == default_model() else f"-{name}")
    return 0


def words(text: str) -> str:
    """The answer's words, citation marks and their spacing aside ("6 times [1]." = "6 times. [1]")."""
    return " ".join(re.sub(r"\[\d+\]", " ", text).split()).replace(" .", ".").rstrip(".")


def show(rep: Report, key: str, row: dict, before: dict) -> None:
    row["same_words"] = words(row["text"]) == words(before["text"])
    same = "same answer" if row["text"] == before["text"] else (
        "same words, citations placed differently" if row["same_words"] else "DIFFERENT answer")
    print(f"   {key:18} first token {row['first']:6.2f} s  whole {row['total']:6.2f} s  prompt {row.get('prompt_tokens')} "
          f"tokens, {row.get('reused', 0)} kept; {same}; cites {row.get('cited')}: {row['text'][:90]!r}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
