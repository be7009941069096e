"""Answer quality on SQuAD 2.0 with no judge model: EM, token F1, citation precision, abstention.

The SQuAD 2.0 dev half of ``../shared/data/squad2-dev-cs224n`` (646 paragraphs, 6,078
questions of which 3,168 unanswerable) is indexed as ragbook indexes any text (one document per
paragraph, default chunking).  Then:

* retrieval: nDCG@10, recall@10, MRR@10 and hit@10 for dense, BM25 and hybrid on every
  answerable question (``ragbook.evaluation.compare`` over BEIR-style judgments: the gold
  paragraph is the relevant document);
* answers: a fixed random sample of 200 questions (answerable and unanswerable, as drawn;
  seed 0) asked to an Assistant in extractive mode, and a random 30 of them (same seed) asked
  to the default model (``ragbook.llm.default_model()``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M
  through llama.cpp, greedy), the extractive figures being given on those 30 too.  Both
  assistants use ragbook's defaults (hybrid search, template "tutor", abstention below a
  dense relevance of 0.4) with k=3 passages (extractive mode quotes from the top 3 whatever
  k is; fewer passages keep the model's prompt near 500 tokens) and at most 96 answer tokens.
  Scored by ``ragbook.evaluation.evaluate_answers``.

EM and F1 compare the whole answer (citations removed) with SQuAD's short gold spans, so a
correct answer written as a sentence scores F1 well below 1; ``contains`` (the gold span
appears in the answer) is the fairer figure for an assistant that explains.  Results go to
``benchmarks/results/answers.json`` (``answers-quick.json`` with ``--quick``).

    python benchmarks/answers.py                   # ~5 min extractive; the model: 10-40 s a question idle, minutes when busy
    python benchmarks/answers.py --no-llm --questions 500
    python benchmarks/answers.py --quick           # 10 questions, 3 for the model
"""

from __future__ import annotations

import argparse
import time

from _common import SHARED_DATA, Report, versions

from ragbook.answer_metrics import evaluate_answers, summarize  # noqa: E402  (after _common's offline setup)
from ragbook.qa import QASet  # noqa: E402

DATA = SHARED_DATA / "squad2-dev-cs224n"
ANSWER_FIGURES = ("em", "f1", "contains", "overall_em", "overall_f1", "citation_precision", "cited", "retrieved",
                  "abstention_recall", "abstention_precision", "abstention_accuracy", "false_abstentions",
                  "seconds_per_question")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=200, help="questions answered in extractive mode (default 200)")
    parser.add_argument("--llm-questions", type=int, default=30,
                        help="how many of them the model answers too (default 30: minutes each on a busy 2-core CPU)")
    parser.add_argument("--k", type=int, default=3, help="passages per answer (default 3, what extractive mode quotes from)")
    parser.add_argument("--max-answer-tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-llm", action="store_true", help="extractive mode only")
    parser.add_argument("--llm", default=None, help="model for the LLM run (default: ragbook.llm.default_model())")
    parser.add_argument("--quick", action="store_true", help="10 questions, retrieval on 300 queries")
    args = parser.parse_args()
    n = 10 if args.quick else args.questions
    if args.quick:
        args.llm_questions = 3

    from ragbook.assistant import Assistant
    from ragbook.embedding import Embedder
    from ragbook.evaluation import compare, index_beir, load_beir, load_qa
    from ragbook.llm import default_model

    llm_name = None if args.no_llm else (args.llm or default_model())
    report = Report("answers", questions=n, llm_questions=args.llm_questions, seed=args.seed, llm=llm_name,
                    k=args.k, max_answer_tokens=args.max_answer_tokens, data=str(DATA),
                    versions=versions("llama-cpp-python", "sentence-transformers", "faiss-cpu"))

    report.section("index")
    data = load_beir(DATA)
    t0 = time.perf_counter()
    index = index_beir(data.corpus, Embedder())
    stats = index.stats()
    report.info("index", {**stats, "chunk_size": index.chunk_size, "overlap": index.overlap,
                          "seconds": round(time.perf_counter() - t0, 1)},
                f"{stats['documents']} paragraphs -> {stats['chunks']} chunks in {time.perf_counter() - t0:.0f} s")

    report.section(f"retrieval, k=10, {'300 sampled' if args.quick else 'all'} answerable questions")
    judged = data.sample(300, args.seed) if args.quick else data
    grid = compare(index, judged, {"mode": ["dense", "bm25", "hybrid"], "k": [10]})
    print(grid.to_table())
    report.info("retrieval", {r["mode"]: {f"{m}@10": round(r[m], 4) for m in ("ndcg", "recall", "mrr", "hit")}
                              for r in grid}, f"{len(judged.queries)} questions")

    qa = load_qa(DATA).sample(n, args.seed)
    subset = qa.sample(min(args.llm_questions, len(qa)), args.seed)
    report.section(f"answers: {len(qa)} questions ({qa.unanswerable} unanswerable), seed {args.seed}; "
                   f"the model answers {len(subset)} of them ({subset.unanswerable} unanswerable)")
    report.info("sample", {"questions": len(qa), "unanswerable": qa.unanswerable, "seed": args.seed,
                           "llm_questions": len(subset), "llm_unanswerable": subset.unanswerable,
                           "llm_ids": [q.id for q in subset]})
    settings = {"k": args.k, "max_answer_tokens": args.max_answer_tokens}
    extractive = answer_all(Assistant(index, llm="extractive", **settings), qa)
    record(report, "extractive", extractive)
    in_subset = {q.id for q in subset}
    record(report, "extractive_on_llm_questions", [r for r in extractive if r["id"] in in_subset])
    if llm_name:
        bot = Assistant(index, llm=llm_name, **settings)
        t0 = time.perf_counter()
        bot.llm  # load now, so that the first answer's time is the model's work only
        seconds = time.perf_counter() - t0
        report.info("llm_load_s", round(seconds, 1), f"{llm_name} loaded in {seconds:.0f} s")
        record(report, llm_name, answer_all(bot, subset, verbose=True))
    report.write("-quick" if args.quick else "")


def answer_all(bot, qa, verbose: bool = False) -> list[dict]:
    """The report rows of ``evaluate_answers``, one question at a time so that progress shows."""
    rows = []
    for n, item in enumerate(qa, start=1):
        row = evaluate_answers(bot, QASet([item], qa.name)).rows[0]
        rows.append(row)
        if verbose:
            verdict = "abstained" if row["abstained"] else f"F1 {row['f1']:.2f}"
            print(f"   {n:>3}/{len(qa)} {row['seconds']:6.1f} s  {'unanswerable' if row['unanswerable'] else 'answerable  '}"
                  f"  {verdict}", flush=True)
    return rows


def record(report: Report, name: str, rows: list[dict]) -> None:
    s = summarize(rows)
    report.info(f"answers_{name}", {key: _round(s[key]) for key in ANSWER_FIGURES},
                f"{name:<30} n={s['questions']:<4} EM {_fmt(s['em'])}  F1 {_fmt(s['f1'])}  contains {_fmt(s['contains'])}  "
                f"cit.prec {_fmt(s['citation_precision'])}  abst.recall {_fmt(s['abstention_recall'])}  "
                f"false abst. {_fmt(s['false_abstentions'])}  ({s['seconds_per_question']:.1f} s/question)")
    keep = ("id", "answer", "gold", "unanswerable", "abstained", "em", "f1", "contains", "citations",
            "correct_citations", "seconds")
    report.info(f"rows_{name}", [{k: r[k] for k in keep} for r in rows])


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
