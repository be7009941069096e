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

    python benchmarks/generation.py                           # SmolLM2-135M, ~2 min
    python benchmarks/generation.py --model qwen2.5-coder-1.5b  # ~5-8 min
    python benchmarks/generation.py --quick                   # 3 repeats, 32 tokens
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from _common import Report, corpus_folder, median, versions

OVERHEAD_TARGET_PCT = 5.0
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
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.max_tokens = 3, 32

    from ragbook.llm import load_llm

    report = Report("generation", argv, model=args.model, repeats=args.repeats, max_tokens=args.max_tokens,
                    prompt_tokens=args.prompt_tokens, order="ABBA")
    report.data["versions"] = versions("llama-cpp-python", "ragbook")
    report.section(f"load {args.model}")
    t0 = time.perf_counter()
    llm = load_llm(args.model)
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

    def med(rows, key):
        return median([r[key] for r in rows])

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
    report.write("" if args.model == "smollm2-135m" else f"-{re.sub(r'[^A-Za-z0-9.]+', '-', str(args.model))}")


if __name__ == "__main__":
    main()
