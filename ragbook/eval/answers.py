"""Answers scored without a judge model: exact match, token F1, citations, and abstention.

>>> report = evaluate_answers(bot, load_qa("questions.csv"))
>>> report.summary["f1"], report.summary["citation_precision"], report.summary["abstention_recall"]

Each answer is scored with :mod:`ragbook.eval.metrics`' formulas: SQuAD's exact match and
token F1 on the answer without its ``[n]`` markers (an abstention scores as the empty answer),
``contains`` (a gold answer appears as whole words), and ``correct``, the judge-free verdict
that credits paraphrase, numbers, yes/no and polarity (:func:`~ragbook.eval.metrics.is_correct`).
A citation is correct when the passage it names contains a gold answer (or, for a question
with a source but no answer, comes from that source).

``confidently_wrong`` is the share of questions the assistant answered (did not abstain),
citing a passage it was given, and got wrong; ``flagged_wrong`` is the share of wrong answers
that carry a warning (a sentence flagged unsupported, contradicted or wrongly cited), so that
a reader was told to check them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragbook._display import html_escape, html_table, shorten
from ragbook.answer import Flag
from ragbook.eval.datasets import QAItem, QASet, load_qa
from ragbook.eval.metrics import answer_text, contains_answer, exact_match, is_abstention, is_correct, token_f1
from ragbook.eval.report import Report, summary_text

if TYPE_CHECKING:
    from ragbook.answer import Answer, Citation

__all__ = ["score_answer", "evaluate_answers", "AnswerReport", "summarize"]

log = logging.getLogger(__name__)


def score_answer(item: QAItem, answer: Any, seconds: float = 0.0, no_answer: str = "") -> dict[str, Any]:
    """One question's report row: :func:`evaluate_answers`'s figures and the judge-free verdicts."""
    from ragbook.prompt import NO_ANSWER

    row = _score(item, answer, no_answer or NO_ANSWER, seconds)
    abstained = row["abstained"]
    correct = is_correct(answer_text(answer, no_answer), item.answers, unanswerable=item.unanswerable,
                         abstained=abstained)
    cited = any(c.valid for c in answer.citations)
    flagged = any(c.flag not in ("", Flag.NO_CITATION) for c in answer.checks)
    row.update(correct=correct, flagged=flagged, confidently_wrong=not abstained and cited and not correct)
    return row


def _citation_correct(citation: Citation, item: QAItem) -> bool:
    if citation.hit is None:
        return False
    if item.answers:
        return contains_answer(citation.text, item.answers)
    return any(item.matches(c) for c in (citation.hit.chunk, *citation.hit.also_in))


def _score(item: QAItem, answer: Answer, no_answer: str, seconds: float) -> dict[str, Any]:
    abstained = is_abstention(answer, no_answer)
    scored = item.unanswerable or bool(item.answers)
    said = answer_text(answer, no_answer)
    judge_citations = not abstained and not item.unanswerable and (bool(item.answers) or item.judged)
    correct = sum(_citation_correct(c, item) for c in answer.citations) if judge_citations else None
    retrieved = None
    if item.judged:
        retrieved = any(item.matches(c) for h in answer.passages for c in (h.chunk, *h.also_in))
    return {
        "id": item.id, "question": item.question, "answer": answer.text, "gold": " | ".join(item.answers),
        "unanswerable": item.unanswerable, "abstained": abstained,
        "em": exact_match(said, item.answers) if scored else None,
        "f1": token_f1(said, item.answers) if scored else None,
        "contains": contains_answer(said, item.answers) if item.answers else None,
        "citations": len(answer.citations), "correct_citations": correct, "retrieved": retrieved,
        "mode": answer.mode, "seconds": round(seconds, 3),
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's figures from its rows (``None`` where no question allows one)."""
    answerable = [r for r in rows if not r["unanswerable"]]
    gold = [r for r in answerable if r["contains"] is not None]
    unanswerable = [r for r in rows if r["unanswerable"]]
    abstained = [r for r in rows if r["abstained"]]
    answered = [r for r in answerable if not r["abstained"]]
    cited = [r for r in answered if r["citations"] and r["correct_citations"] is not None]
    seconds = sum(r["seconds"] for r in rows)
    judged = [r for r in rows if "correct" in r]
    wrong = [r for r in judged if not r["correct"]]
    return {
        "questions": len(rows), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "em": _mean([r["em"] for r in gold]), "f1": _mean([r["f1"] for r in gold]),
        "contains": _mean([float(r["contains"]) for r in gold]),
        "overall_em": _mean([r["em"] for r in rows if r["em"] is not None]),
        "overall_f1": _mean([r["f1"] for r in rows if r["f1"] is not None]),
        "citation_precision": _mean([r["correct_citations"] / r["citations"] for r in cited]),
        "cited": _mean([float(r["citations"] > 0) for r in answered]),
        "retrieved": _mean([float(r["retrieved"]) for r in answerable if r["retrieved"] is not None]),
        "abstention_recall": _mean([float(r["abstained"]) for r in unanswerable]),
        "abstention_precision": _mean([float(r["unanswerable"]) for r in abstained]) if unanswerable else None,
        "abstention_accuracy": _mean([float(r["abstained"] == r["unanswerable"]) for r in rows]) if unanswerable else None,
        "false_abstentions": _mean([float(r["abstained"]) for r in answerable]),
        "correct": _mean([float(r["correct"]) for r in judged if not r["unanswerable"]]),
        "confidently_wrong": _mean([float(r["confidently_wrong"]) for r in judged]),
        "wrong": _mean([1.0 - r["correct"] for r in judged]),
        "flagged_wrong": _mean([float(r["flagged"]) for r in wrong]),
        "seconds": round(seconds, 2), "seconds_per_question": round(seconds / len(rows), 3) if rows else None,
    }


def evaluate_answers(assistant: Any, questions: QASet | str | Path, *, limit: int | None = None,
                     seed: int = 0) -> AnswerReport:
    """Ask ``assistant`` every question (each on its own, no chat history) and score the answers.

    ``limit`` asks a reproducible sample of that many questions (``seed``).  Returns an
    :class:`AnswerReport`: one row per question and the summary figures (see :func:`summarize`).
    """
    from ragbook.progress import progress

    qa = questions if isinstance(questions, QASet) else load_qa(questions)
    qa = qa.sample(limit, seed)
    no_answer = assistant.template.no_answer
    rows = []
    for item in progress(qa, desc="Answering", unit="question"):
        started = time.perf_counter()
        answer = assistant.ask(item.question)
        rows.append(score_answer(item, answer, time.perf_counter() - started, no_answer))
    r = assistant.retriever
    settings = {"model": assistant.llm_name, "template": assistant.template.name, "k": r.k, "mode": r.mode,
                "min_relevance": assistant.min_relevance}
    report = AnswerReport(rows, summarize(rows), settings, qa.name)
    log.info("answers on %s: %r", qa.name or "questions", report)
    return report


@dataclass
class AnswerReport(Report):
    """Per-question answers and scores (``rows``) and the figures over them (``summary``)."""

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "settings": self.settings, "rows": self.rows}

    def __repr__(self) -> str:
        head = summary_text({"questions": len(self.rows), "model": self.settings.get("model")}, ["questions", "model"])
        figures = summary_text(self.summary, ["em", "f1", "citation_precision", "abstention_recall", "false_abstentions"])
        return f"AnswerReport({head}{', ' if figures else ''}{figures})"

    def _repr_html_(self) -> str:
        s = self.summary
        labels = [("correct", "correct"), ("confidently_wrong", "confidently wrong"), ("em", "exact match"), ("f1", "F1"),
                  ("contains", "contains the answer"),
                  ("citation_precision", "citation precision"), ("abstention_recall", "abstains when it should"),
                  ("false_abstentions", "abstains when it should not")]
        head = ", ".join(f"{html_escape(label)} <b>{s[key]:.3f}</b>" for key, label in labels if s.get(key) is not None)
        rows = [[r["id"], shorten(r["question"], 90), shorten(r["answer"], 160), shorten(r["gold"], 60) or
                 ("(unanswerable)" if r["unanswerable"] else ""), "" if r["f1"] is None else f"{r['f1']:.2f}",
                 "" if r["correct_citations"] is None else f"{r['correct_citations']}/{r['citations']}",
                 "yes" if r["abstained"] else ""] for r in self.rows[:50]]
        more = f"<div>… and {len(self.rows) - 50} more questions</div>" if len(self.rows) > 50 else ""
        title = html_escape(f"Answers on {self.name or 'the questions'}: {s['questions']} questions "
                            f"({s['unanswerable']} unanswerable), {self.settings.get('model', '')}")
        return (f"<div class='ragbook-report'><b>{title}</b><div>{head}</div>"
                + html_table(["id", "question", "answer", "gold", "F1", "correct citations", "abstained"], rows)
                + more + "</div>")
