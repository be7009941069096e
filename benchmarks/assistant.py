"""What retrieval and prompt building add to an answer, on a 10,000-chunk index.

An answer's time is retrieval (embed the question, search dense + BM25, fuse) plus prompt
building (template, count tokens with the model's own tokenizer, pack to the context window)
plus generation.  The first two are ragbook's; generation is the model's
(benchmarks/generation.py).  Target: retrieval + prompt building add <= 20 ms at 10k chunks.
The question's embedding is timed with the raw sentence-transformers call in the same run.
The figure checked is what ragbook adds on top of it, measured directly: search, fusion and
packing with the question's vector computed beforehand (``index.embed_query`` answered from a
dict, the rest of ragbook's code unchanged).  The end-to-end difference (ragbook with its own
encode minus the raw encode, median of per-question differences) is printed beside it: on a
busy 2-core machine a single encode through torch varies by tens of milliseconds (at load 6 it
took ~480 ms instead of ~10), which swamps a 20 ms budget measured as a difference.

    python benchmarks/assistant.py            # 10,000 chunks
    python benchmarks/assistant.py --quick    # 2,000 chunks
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from _common import OPENSTAX, SHARED_DATA, Report, summary_ms

QUESTIONS = [
    "What is a variable in Python?", "How do for loops work?", "What does a function return?",
    "How are strings indexed?", "What is a list comprehension?", "When should I use a dictionary?",
    "How do I read a file?", "What is an exception?", "What is recursion?", "How do classes work?",
    "What did the president say about liberty?", "How should the government treat debt?",
]


def passages(n: int) -> list[str]:
    """``n`` passages of ~30 words from the shared corpora (the demo corpus when absent)."""
    folders = [OPENSTAX, SHARED_DATA / "corpora" / "inaugural"]
    words: list[str] = []
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                words += re.findall(r"\S+", path.read_text(encoding="utf-8", errors="replace"))
    if not words:
        from _common import DEMO_CORPUS

        for path in sorted(DEMO_CORPUS.rglob("*.md")):
            words += re.findall(r"\S+", path.read_text(encoding="utf-8"))
    out = []
    for i in range(n):
        start = (i * 30) % max(len(words) - 30, 1)
        out.append(" ".join(words[start:start + 30]) + f" (passage {i})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--llm", default="smollm2-135m", help="model whose tokenizer and template build the prompt")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.chunks
    report = Report("assistant", chunks=n, llm=args.llm)

    from ragbook.assistant import Assistant
    from ragbook.documents import Document
    from ragbook.index import Index
    from ragbook.llm import load_llm
    from ragbook.prompt import pack

    report.section(f"index of {n:,} chunks")
    index = Index()
    t0 = time.perf_counter()
    index.add_documents([Document(text=t, source=f"p{i // 100}.txt") for i, t in enumerate(passages(n))])
    report.info("build_s", round(time.perf_counter() - t0, 1), f"built in {time.perf_counter() - t0:.0f} s")
    llm = load_llm(args.llm)
    bot = Assistant(index, llm=llm, k=5)
    model = index.embedder.model

    retrieval, prompt, encode_raw, total, paired = [], [], [], [], []
    prompt_tokens = 0
    for rep in range(3):
        for q in QUESTIONS:
            t0 = time.perf_counter()
            model.encode([q], batch_size=1, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            encode_raw.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hits = list(bot.retriever.search(q))
            t1 = time.perf_counter()
            packed = pack(bot.template, q, hits, render=llm.render, count_tokens=llm.count_tokens,
                          context_window=llm.context_window, answer_tokens=bot.max_answer_tokens)
            t2 = time.perf_counter()
            prompt_tokens = max(prompt_tokens, packed.prompt_tokens)
            if rep:  # the first round warms caches
                retrieval.append(t1 - t0)
                prompt.append(t2 - t1)
                total.append(t2 - t0)
                paired.append(total[-1] - encode_raw[-1])
    s_total, s_ret, s_prompt, s_enc = summary_ms(total), summary_ms(retrieval), summary_ms(prompt), summary_ms(encode_raw)
    report.info("retrieval_ms", s_ret, f"retrieval p50 {s_ret['p50_ms']:.1f} ms (p95 {s_ret['p95_ms']:.1f})")
    report.info("prompt_ms", s_prompt, f"prompt building p50 {s_prompt['p50_ms']:.1f} ms (p95 {s_prompt['p95_ms']:.1f}), "
                f"{prompt_tokens} prompt tokens")
    report.info("prompt_tokens", prompt_tokens)
    report.info("raw_query_encode_ms", s_enc, f"raw SentenceTransformer.encode of the question p50 {s_enc['p50_ms']:.1f} ms "
                f"(p95 {s_enc['p95_ms']:.1f})")
    report.info("retrieval_plus_prompt_ms", s_total,
                f"retrieval + prompt building p50 {s_total['p50_ms']:.1f} ms at {n:,} chunks, the question's "
                f"embedding included (that part is the model's, and depends on the machine's load)")
    diff = statistics.median(paired) * 1000
    report.info("end_to_end_minus_raw_encode_ms", round(diff, 2),
                f"end to end minus the raw encode, median of per-question differences: {diff:+.1f} ms "
                f"(difference of p50s: {s_total['p50_ms'] - s_enc['p50_ms']:+.1f} ms)")

    report.section("without encoding: the question's vector computed beforehand")
    cache = {q: index.embed_query(q) for q in QUESTIONS}
    index.embed_query = cache.__getitem__  # an instance attribute: the Retriever's code is unchanged
    own, own_search = [], []
    for rep in range(3):
        for q in QUESTIONS:
            t0 = time.perf_counter()
            hits = list(bot.retriever.search(q))
            t1 = time.perf_counter()
            pack(bot.template, q, hits, render=llm.render, count_tokens=llm.count_tokens,
                 context_window=llm.context_window, answer_tokens=bot.max_answer_tokens)
            t2 = time.perf_counter()
            if rep:
                own_search.append(t1 - t0)
                own.append(t2 - t0)
    del index.embed_query
    s_own, s_search = summary_ms(own), summary_ms(own_search)
    report.info("search_without_encode_ms", s_search, f"search + fusion p50 {s_search['p50_ms']:.2f} ms")
    report.check("ragbook_adds_p50_ms", round(s_own["p50_ms"], 2), "<= 20 ms", s_own["p50_ms"] <= 20,
                 f"ragbook adds {s_own['p50_ms']:.1f} ms (p50; p95 {s_own['p95_ms']:.1f}) to the question's embedding: "
                 f"search, fusion, prompt building and packing")
    report.write("-quick" if args.quick else "")


if __name__ == "__main__":
    main()
