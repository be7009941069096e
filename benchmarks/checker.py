"""How well ragbook's faithfulness checker tells supported answer sentences from bad ones.

``benchmarks/data/claims.jsonl`` holds answer sentences of the default model (Qwen2.5-Coder-1.5B)
to the SQuAD 2.0 and OpenStax teacher questions of ``benchmarks/trust.py``, each labelled by
reading it against the passages it cites:

* ``supported``: everything it claims is in its cited passage (paraphrase allowed; a "Yes"/"No"
  opener must agree with it);
* ``contradicted``: the cited passage says the opposite, or another number, date or name, for
  the same thing;
* ``unsupported``: neither (the model's own knowledge, a wrong passage, a made-up detail).

Besides the model's own sentences (``origin: model``) it holds flips made by hand from supported
ones (``origin: flip``: a negation added or removed, Yes <-> No, another number or name from the
same passage), all contradicted.  A line names its question and the chunk ids of the answer's
passages (in the indexes ``trust.py`` builds from ``../shared/data``), never their text.

The checker is :func:`ragbook.answer.check_answer` (rules: shared content words, citation
validity, polarity against the backing sentence) and, with ``--verify``, the model as verifier
where the rules are unsure (:func:`ragbook.grounding.verify_checks`).  A sentence counts as
flagged when the checker gives it any flag but "no citation".  Reported: precision and recall of
flagging bad (unsupported or contradicted) sentences, recall on each label and origin, the share
of supported sentences flagged, and the model checks made and their time.

    python benchmarks/checker.py              # rules only, seconds
    python benchmarks/checker.py --verify     # rules + the default model as verifier (~1 s a check on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace

from _common import BENCH, Report

from ragbook.answer import check_answer  # noqa: E402  (after _common's offline setup)
from ragbook.grounding import model_verdict, verify_checks  # noqa: E402

CLAIMS = BENCH / "data" / "claims.jsonl"
BAD = ("unsupported", "contradicted")


def load_claims() -> list[dict]:
    with open(CLAIMS, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def predicted(flag: str) -> str:
    if flag.startswith("contradicts"):
        return "contradicted"
    return "unsupported" if flag in ("unsupported", "invalid citation", "copied example") else "supported"


def judge(claims: list[dict], ask) -> list[dict]:
    from trust import index_for, questions_for

    chunks, questions = {}, {}
    for name in sorted({c["set"] for c in claims}):
        chunks.update({c.id: c for c in index_for(name).chunks})
        questions.update({q.id: q.question for q in questions_for(name, None)})
    rows = []
    for claim in claims:
        passages = [SimpleNamespace(text=chunks[i].text) for i in claim["passages"]]
        _, checks = check_answer(claim["sentence"], passages)
        check = max(checks, key=lambda c: len(c.sentence))  # the claim is one sentence; a stray fragment is not it
        rules = predicted(check.flag)
        made, seconds = 0, 0.0
        if ask is not None:
            t0 = time.perf_counter()
            made = verify_checks(questions.get(claim["question_id"], ""), [check], ask)
            seconds = time.perf_counter() - t0
        rows.append({"id": claim["id"], "label": claim["label"], "origin": claim["origin"], "rules": rules,
                     "verdict": predicted(check.flag), "verified": check.verified, "model_checks": made,
                     "seconds": round(seconds, 3)})
    return rows


def figures(rows: list[dict], key: str) -> dict:
    bad = [r for r in rows if r["label"] in BAD]
    flagged = [r for r in rows if r[key] in BAD]
    hit = [r for r in flagged if r["label"] in BAD]
    out = {"precision": round(len(hit) / len(flagged), 3) if flagged else None,
           "recall": round(len(hit) / len(bad), 3) if bad else None,
           "supported_flagged": round(sum(r[key] in BAD for r in rows if r["label"] == "supported")
                                      / max(1, sum(r["label"] == "supported" for r in rows)), 3)}
    for label in BAD:
        for origin in ("model", "flip"):
            group = [r for r in rows if r["label"] == label and r["origin"] == origin]
            if group:
                out[f"recall_{label}_{origin}"] = round(sum(r[key] in BAD for r in group) / len(group), 3)
    out["contradicted_named"] = round(sum(r[key] == "contradicted" for r in rows if r["label"] == "contradicted")
                                      / max(1, sum(r["label"] == "contradicted" for r in rows)), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verify", action="store_true", help="also put unsure sentences to the default model")
    parser.add_argument("--quick", action="store_true", help="the first 40 sentences (a smoke test)")
    args = parser.parse_args()
    claims = load_claims()[:40] if args.quick else load_claims()
    report = Report("checker" + ("-verify" if args.verify else "") + ("-quick" if args.quick else ""), verify=args.verify)
    ask = None
    if args.verify:
        from ragbook.llm import default_model, load_llm

        llm = load_llm(default_model())
        ask = lambda prompt: model_verdict(llm, prompt)  # noqa: E731
    rows = judge(claims, ask)
    counts = {f"{o}/{lab}": sum(r["origin"] == o and r["label"] == lab for r in rows)
              for o in ("model", "flip") for lab in ("supported", *BAD)}
    report.info("claims", counts, f"{len(rows)} labelled sentences: {counts}")
    for key, name in (("rules", "rules"), ("verdict", "rules + model")) if args.verify else (("rules", "rules"),):
        report.section(name)
        f = figures(rows, key)
        report.info(key, f, json.dumps(f))
    if args.verify:
        made = sum(r["model_checks"] for r in rows)
        report.info("model_checks", made, f"model checks: {made} on {len(rows)} sentences, "
                    f"{sum(r['seconds'] for r in rows) / max(1, made):.2f} s each")
    report.data["rows"] = rows
    report.write()


if __name__ == "__main__":
    sys.exit(main())
