"""Answer generation through ragbook against calling llama_cpp.Llama directly, same prompt, same settings.

The prompt is what a RAG assistant sends: a system instruction, ~700 tokens of passages from
the shared OpenStax Python book (a different set each repeat), and a question.  Both sides run
on the SAME ``Llama`` object in the same process, greedy (temperature 0, seed 0), streaming,
from an empty context (ragbook resets the context before each call by default; the direct
call is given ``llm.reset()`` too, else it would reuse the previous prompt's cache), in the
order A B B A each repeat so that drift in machine load hits both alike:

  A ragbook   ``llm.stream(messages, max_tokens=N)``  (render, token count, stop trimming, timings)
  B direct    ``Llama.create_chat_completion(messages, max_tokens=N, temperature=0, seed=0, stream=True)``

Figures are medians: time to first token, total time, and decode speed (answer tokens after
the first, per second after the first).  On a shared 2-core machine the run-to-run noise of a
multi-second generation is larger than the overhead being measured, so the verdict uses the
overhead measured directly as well: ragbook's own work per call (rendering the template and
counting the prompt's tokens) and per piece (its generator, stop-string trimming and
bookkeeping, replayed over the pieces of a real answer), as a share of the direct call's
median time.  The end-to-end difference is printed beside it.

The second part measures the prefix cache (ragbook.llm.prefix_cache) on ragbook's real
prompts: the tutor template (system message + worked example, fixed) with ``--passages``
passages from the book and a question, a different question and passages each time:

  cold     llama_cpp from an empty context (``Llama.reset()`` + ``create_chat_completion``): raw llama.cpp
  cached   ragbook with the fixed start kept (learnt on two warm-up questions first)
  lookup   the same, with prompt-lookup decoding (``prompt_lookup=N``: drafts from the prompt)

Time to first token, decode speed and whole-answer time are medians over the questions; the
answers (greedy, temperature 0) are compared with the cold ones, word for word.

    python benchmarks/generation.py                           # SmolLM2-135M, ~2 min
    python benchmarks/generation.py --model qwen2.5-coder-1.5b  # ~10 min on 2 cores
    python benchmarks/generation.py --quick                   # 3 repeats, 32 tokens
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from _common import Report, corpus_folder, median, versions

OVERHEAD_TARGET_PCT = 5.0
TTFT_TARGET = 0.4  # cached first token / cold first token
DECODE_TARGET = 0.95  # cached decode speed / raw llama.cpp's (>= raw, within the noise of a shared machine)
QUESTIONS = [
    "How do you define a function in Python, and what does return do?",
    "What is the difference between a list and a tuple?",
    "How does a for loop iterate over a string?",
    "What happens when an exception is raised inside a try block?",
    "How do you read a text file line by line?",
    "What does the len() function return for a dictionary?",
    "How are default parameter values used?",
]
SYSTEM = ("You answer questions about the course using only the numbered passages. Cite passages like [2]. "
          "If the passages do not contain the answer, say so.")


def passages(words: int = 110) -> list[str]:
    """~110-word passages from the corpus, in file order."""
    out: list[str] = []
    for path in sorted(corpus_folder().glob("*.md")):
        text = re.sub(r"[#*`|>_\[\]()]+", " ", path.read_text(encoding="utf-8"))
        tokens = text.split()
        out.extend(" ".join(tokens[i:i + words]) for i in range(0, len(tokens) - words, words))
    return out


def prompts(llm, n: int, target_tokens: int) -> list[list[dict[str, str]]]:
    """``n`` different RAG prompts of about ``target_tokens`` tokens each."""
    pool = passages()
    step = max(1, len(pool) // (n + 1))
    result = []
    for i in range(n):
        chosen, start = [], (i * step) % len(pool)
        while True:
            chosen.append(pool[(start + len(chosen) * 7) % len(pool)])
            context = "\n\n".join(f"[{k + 1}] {p}" for k, p in enumerate(chosen))
            messages = [{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {QUESTIONS[i % len(QUESTIONS)]}"}]
            if llm.count_tokens(llm.render(messages)) >= target_tokens:
                break
        result.append(messages)
    return result


def run_ragbook(llm, messages, max_tokens):
    pieces = list(llm.stream(messages, max_tokens=max_tokens))
    g = llm.last_generation
    return {"first": g.first_token_s, "total": g.total_s, "tokens": g.completion_tokens, "text": "".join(pieces),
            "pieces": pieces}


def run_direct(raw, messages, max_tokens):
    raw.reset()
    start = time.perf_counter()
    first, parts = None, []
    for chunk in raw.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, seed=0, stream=True):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            if first is None:
                first = time.perf_counter() - start
            parts.append(piece)
    total = time.perf_counter() - start
    return {"first": first if first is not None else total, "total": total, "text": "".join(parts)}


def tok_s(tokens: int, first: float, total: float) -> float:
    return (tokens - 1) / (total - first) if tokens > 1 and total > first else 0.0


def own_work(llm, messages, pieces, reps: int = 30) -> tuple[float, float]:
    """Seconds ragbook spends per call outside llama.cpp: (per call, per piece)."""
    from ragbook.llm.base import LLM, StopTrimmer, Usage

    class Replay(LLM):  # ragbook's streaming wrapper and stop trimming, over the pieces of a real answer
        name, backend, context_window = "replay", "replay", 1 << 20

        def count_tokens(self, text): return 0
        def render(self, m): return ""
        def info(self): return {}

        def _generate(self, m, params, streaming):
            trimmer = StopTrimmer(params.stop)
            for piece in pieces:
                out, _ = trimmer.feed(piece)
                if out:
                    yield out
            return Usage(0, len(pieces), "stop")

    # per call: what ragbook does before llama.cpp sees the prompt (template, token count)
    t0 = time.perf_counter()
    for _ in range(reps):
        llm.count_tokens(llm.render(messages))
    per_call = (time.perf_counter() - t0) / reps

    replay = Replay()
    t0 = time.perf_counter()
    for _ in range(reps):
        for _piece in replay.stream(messages, max_tokens=1 << 20, stop=["\n\nQuestion:"]):
            pass
    per_piece = (time.perf_counter() - t0) / reps / max(len(pieces), 1)
    return per_call, per_piece


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="a llama.cpp preset or a .gguf path")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=700)
    parser.add_argument("--quick", action="store_true", help="3 repeats, 32 answer tokens")
    parser.add_argument("--passages", type=int, default=4, help="passages in each prefix-cache prompt")
    parser.add_argument("--passage-words", type=int, default=80)
    parser.add_argument("--questions", type=int, default=4, help="measured questions for the prefix cache")
    parser.add_argument("--lookup", type=int, default=10, help="prompt-lookup draft tokens (0: skip)")
    parser.add_argument("--skip-overhead", action="store_true", help="only the prefix-cache part")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.max_tokens = 3, 32

    from ragbook.llm import load_llm

    report = Report("generation", argv, model=args.model, repeats=args.repeats, max_tokens=args.max_tokens,
                    prompt_tokens=args.prompt_tokens, order="ABBA", passages=args.passages,
                    passage_words=args.passage_words, questions=args.questions, lookup=args.lookup)
    report.data["versions"] = versions("llama-cpp-python", "ragbook")
    if not args.skip_overhead:
        overhead(report, args, load_llm)
    prefix_cache(report, args)
    suffix = "" if args.model == "smollm2-135m" else f"-{re.sub(r'[^A-Za-z0-9.]+', '-', str(args.model))}"
    report.write(suffix + ("-prefix" if args.skip_overhead else ""))


def overhead(report, args, load_llm) -> None:
    """ragbook's own work around llama.cpp, every prompt read from an empty context on both sides."""
    report.section(f"load {args.model}")
    t0 = time.perf_counter()
    llm = load_llm(args.model, prefix_cache="off")
    report.info("load_s", round(time.perf_counter() - t0, 2), f"{llm!r} in {time.perf_counter() - t0:.1f} s")
    raw = llm.llama  # the same llama_cpp.Llama object

    msgs = prompts(llm, args.repeats + 1, args.prompt_tokens)
    sizes = [llm.count_tokens(llm.render(m)) for m in msgs]
    report.info("prompt_tokens", sizes, f"prompts of {min(sizes)}-{max(sizes)} tokens, answers up to {args.max_tokens}")
    run_ragbook(llm, msgs[-1], 8)  # warm-up, not measured
    run_direct(raw, msgs[-1], 8)

    report.section("A ragbook vs B direct llama_cpp, order ABBA")
    rb, dr, same = [], [], 0
    for i in range(args.repeats):
        m = msgs[i]
        a1 = run_ragbook(llm, m, args.max_tokens)
        b1 = run_direct(raw, m, args.max_tokens)
        b2 = run_direct(raw, m, args.max_tokens)
        a2 = run_ragbook(llm, m, args.max_tokens)
        for a in (a1, a2):
            a["tok_s"] = tok_s(a["tokens"], a["first"], a["total"])
        for b in (b1, b2):
            b["tok_s"] = tok_s(a1["tokens"], b["first"], b["total"])  # same tokens at temperature 0
        rb += [a1, a2]
        dr += [b1, b2]
        same += (a1["text"] == b1["text"] == b2["text"] == a2["text"])
        print(f"   repeat {i + 1}: ragbook {a1['total']:.2f}/{a2['total']:.2f} s, direct {b1['total']:.2f}/{b2['total']:.2f} s, "
              f"{a1['tokens']} tokens", flush=True)

    figures = {side: {"first_token_s": round(med(rows, "first"), 4), "total_s": round(med(rows, "total"), 4),
                      "tokens_per_s": round(med(rows, "tok_s"), 2)} for side, rows in (("ragbook", rb), ("direct", dr))}
    report.info("ragbook", figures["ragbook"], f"ragbook: first token {figures['ragbook']['first_token_s']:.2f} s, "
                f"total {figures['ragbook']['total_s']:.2f} s, {figures['ragbook']['tokens_per_s']:.1f} tok/s")
    report.info("direct", figures["direct"], f"direct:  first token {figures['direct']['first_token_s']:.2f} s, "
                f"total {figures['direct']['total_s']:.2f} s, {figures['direct']['tokens_per_s']:.1f} tok/s")
    end_to_end = (figures["ragbook"]["total_s"] / figures["direct"]["total_s"] - 1) * 100
    first_ratio = figures["ragbook"]["first_token_s"] / figures["direct"]["first_token_s"]
    report.info("end_to_end_overhead_pct", round(end_to_end, 2),
                f"end to end: ragbook/direct total {1 + end_to_end / 100:.3f}, first token {first_ratio:.3f}, "
                f"decode speed {figures['ragbook']['tokens_per_s'] / max(figures['direct']['tokens_per_s'], 1e-9):.3f} "
                f"(noise: direct totals spread {statistics.pstdev([r['total'] for r in dr]) / med(dr, 'total') * 100:.1f}%)")
    report.check("same_answers", same, f"{args.repeats}/{args.repeats}", same == args.repeats,
                 f"identical answers from both sides in {same}/{args.repeats} repeats")

    per_call, per_piece = own_work(llm, msgs[0], rb[0]["pieces"])
    pieces = median([len(r["pieces"]) for r in rb])
    own = per_call + per_piece * pieces
    pct = own / figures["direct"]["total_s"] * 100
    report.info("own_work_ms", {"per_call": round(per_call * 1000, 3), "per_piece": round(per_piece * 1000, 4)},
                f"ragbook's own work: {per_call * 1000:.2f} ms a call (template + token count), "
                f"{per_piece * 1e6:.1f} µs a piece x {pieces:.0f} pieces")
    report.check("overhead_pct", round(pct, 3), f"<= {OVERHEAD_TARGET_PCT}%", pct <= OVERHEAD_TARGET_PCT,
                 f"ragbook overhead {own * 1000:.1f} ms = {pct:.2f}% of a {figures['direct']['total_s']:.2f} s answer "
                 f"(end to end {end_to_end:+.1f}%)")
    llm.close()


def med(rows, key):
    return median([r[key] for r in rows])


def rag_prompts(n: int, n_passages: int, words: int) -> list[list[dict[str, str]]]:
    """``n`` prompts as ragbook builds them: the tutor template, ``n_passages`` book passages, a question."""
    from ragbook.prompt import get_template

    template = get_template("tutor")
    pool = passages(words)
    step = max(1, len(pool) // (n * n_passages + 1))
    out = []
    for i in range(n):
        chosen = [pool[(i * n_passages + k) * step % len(pool)] for k in range(n_passages)]
        hits = [(f"python-book.md, part {(i * n_passages + k) * step}", text) for k, text in enumerate(chosen)]
        out.append(template.messages(QUESTIONS[i % len(QUESTIONS)], hits))
    return out


def run_cached(llm, messages, max_tokens):
    text = "".join(llm.stream(messages, max_tokens=max_tokens))
    g = llm.last_generation
    return {"first": g.first_token_s, "total": g.total_s, "tokens": g.completion_tokens, "text": text,
            "tok_s": tok_s(g.completion_tokens, g.first_token_s, g.total_s),
            "reused": llm.prefix_cache.stats.last_reused if llm.prefix_cache is not None else 0}


def prefix_cache(report, args) -> None:
    """First token, decode speed and whole answer: cold raw llama.cpp vs ragbook with the fixed start kept."""
    from ragbook.llm.llamacpp import LlamaCppLLM

    report.section(f"prefix cache: {args.model}, tutor template, {args.passages} passages of ~{args.passage_words} words")
    llm = LlamaCppLLM(args.model, prefix_cache="memory")
    msgs = rag_prompts(args.questions + 2, args.passages, args.passage_words)
    full = [llm.count_tokens(llm.render(m)) for m in msgs]
    fixed = llm.count_tokens(llm.render(msgs[0][:3]))  # system + worked example (user, assistant)
    report.info("rag_prompt_tokens", {"fixed": fixed, "whole": full},
                f"prompts of {min(full)}-{max(full)} tokens, of which {fixed} fixed "
                f"({fixed / median(full) * 100:.0f}% of the median prompt)")
    for m in msgs[:2]:  # warm-up: the fixed start is learnt on the second
        run_cached(llm, m, 4)
    rows = []
    for i, m in enumerate(msgs[2:]):
        cold = run_direct(llm.llama, m, args.max_tokens)
        cached = run_cached(llm, m, args.max_tokens)
        cold["tok_s"] = tok_s(cached["tokens"], cold["first"], cold["total"])
        rows.append({"cold": cold, "cached": cached})
        print(f"   question {i + 1}: first token cold {cold['first']:.2f} s, cached {cached['first']:.2f} s "
              f"({cached['reused']} tokens kept); total {cold['total']:.2f} / {cached['total']:.2f} s; "
              f"same answer: {cold['text'] == cached['text']}", flush=True)
    llm.close()
    lookup = run_lookup(args, msgs) if args.lookup else None
    prefix_figures(report, rows, lookup, fixed, full)


def run_lookup(args, msgs) -> list[dict]:
    from ragbook.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM(args.model, prefix_cache="memory", prompt_lookup=args.lookup)
    for m in msgs[:2]:
        run_cached(llm, m, 4)
    out = [run_cached(llm, m, args.max_tokens) for m in msgs[2:]]
    llm.close()
    return out


def prefix_figures(report, rows, lookup, fixed, full) -> None:
    def mid(side, key):
        return median([r[side][key] for r in rows])

    n = len(rows)
    figures = {side: {"first_token_s": round(mid(side, "first"), 3), "total_s": round(mid(side, "total"), 3),
                      "tokens_per_s": round(mid(side, "tok_s"), 2)} for side in ("cold", "cached")}
    same = sum(r["cold"]["text"] == r["cached"]["text"] for r in rows)
    if lookup:
        figures["lookup"] = {"first_token_s": round(median([r["first"] for r in lookup]), 3),
                             "total_s": round(median([r["total"] for r in lookup]), 3),
                             "tokens_per_s": round(median([r["tok_s"] for r in lookup]), 2)}
    for side, f in figures.items():
        report.info(f"prefix_{side}", f, f"{side:6}: first token {f['first_token_s']:.2f} s, total {f['total_s']:.2f} s, "
                    f"{f['tokens_per_s']:.1f} tok/s")
    ratio = figures["cached"]["first_token_s"] / figures["cold"]["first_token_s"]
    report.check("ttft_cached_over_cold", round(ratio, 3), f"<= {TTFT_TARGET}", ratio <= TTFT_TARGET,
                 f"first token with the fixed start kept: {ratio:.2f}x cold ({fixed} of a median "
                 f"{median(full):.0f} prompt tokens fixed)")
    speed = figures["cached"]["tokens_per_s"] / max(figures["cold"]["tokens_per_s"], 1e-9)
    report.check("decode_over_raw", round(speed, 3), f">= {DECODE_TARGET}", speed >= DECODE_TARGET,
                 f"decode speed through ragbook {speed:.2f}x raw llama.cpp on the same prompts")
    report.info("whole_answer_cached_over_cold", round(figures["cached"]["total_s"] / figures["cold"]["total_s"], 3),
                f"whole answer {figures['cached']['total_s'] / figures['cold']['total_s']:.2f}x cold")
    report.check("cached_same_answers", same, f"{n}/{n}", same == n,
                 f"cached answers word for word the cold ones in {same}/{n} questions")
    if lookup:
        same_lookup = sum(r["cold"]["text"] == x["text"] for r, x in zip(rows, lookup))
        faster = figures["lookup"]["total_s"] / figures["cached"]["total_s"]
        report.info("lookup_same_answers", f"{same_lookup}/{n}", f"prompt lookup: same answers in {same_lookup}/{n}, "
                    f"whole answer {faster:.2f}x the cached one without it")
        report.info("lookup_total_over_cached", round(faster, 3))


if __name__ == "__main__":
    main()
