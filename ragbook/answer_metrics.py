"""Answers scored without a judge model: exact match, token F1, citations, and abstention.

>>> report = evaluate_answers(bot, load_qa("questions.csv"))
>>> report.summary["f1"], report.summary["citation_precision"], report.summary["abstention_recall"]

Exact match and token F1 are SQuAD's: both texts are normalised (lower case, ASCII punctuation
removed, the articles a/an/the removed, white space squeezed); EM is 1 when they are equal,
F1 is the harmonic mean of the shares of shared tokens, each taking the best gold answer.
An assistant's answer is scored without its ``[n]`` markers; an abstention scores as the
empty answer, which is right only for an unanswerable question (SQuAD 2.0's convention).
``contains`` is laxer: a gold answer appears, as whole words, inside the answer.  A citation
is correct when the passage it names contains a gold answer (or, for a question with a
source but no answer, comes from that source).
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ragbook._display import html_escape, html_table, shorten
from ragbook.qa import QAItem, QASet, Report, _summary_text, load_qa

if TYPE_CHECKING:
    from ragbook.answer import Answer, Citation

__all__ = ["normalize_answer", "exact_match", "token_f1", "contains_answer", "is_abstention", "answer_text",
           "evaluate_answers", "AnswerReport", "summarize"]

log = logging.getLogger(__name__)

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_MARKER = re.compile(r"\s*\[\d+(?:\s*(?:,|;|-|–|and)\s*\d+)*\]")
_DONT_KNOW = ("i dont know", "i do not know")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no ASCII punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", str(text).lower().translate(_PUNCTUATION)).split())


def _golds(answers: str | Sequence[str]) -> list[str]:
    # no gold answer means the question is unanswerable: the empty answer is the right one
    return [answers] if isinstance(answers, str) else list(answers) or [""]


def exact_match(prediction: str, answers: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised gold answer, else 0.0."""
    said = normalize_answer(prediction)
    return float(any(said == normalize_answer(g) for g in _golds(answers)))


def _f1(said: list[str], gold: list[str]) -> float:
    if not said or not gold:
        return float(said == gold)
    shared = sum((Counter(said) & Counter(gold)).values())
    if not shared:
        return 0.0
    precision, recall = shared / len(said), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: str | Sequence[str]) -> float:
    """Token-overlap F1 between the normalised prediction and the best gold answer."""
    said = normalize_answer(prediction).split()
    return max(_f1(said, normalize_answer(g).split()) for g in _golds(answers))


def contains_answer(text: str, answers: str | Sequence[str]) -> bool:
    """Whether a (non-empty) gold answer appears as whole words in ``text``, both normalised."""
    padded = f" {normalize_answer(text)} "
    return any(gold and f" {gold} " in padded for gold in map(normalize_answer, _golds(answers)))


def is_abstention(answer: Answer | str, no_answer: str = "") -> bool:
    """Whether an answer declines: ragbook abstained, or the text says it does not know.

    ``no_answer`` is the template's sentence for it ("I don't know: my documents don't
    cover that."); its first clause counts as well as "I don't know" / "I do not know".
    """
    if not isinstance(answer, str) and answer.mode == "abstained":
        return True
    said = f" {normalize_answer(answer if isinstance(answer, str) else answer.text)} "
    phrases = [*_DONT_KNOW, normalize_answer(re.split(r"[:.;!]", no_answer, maxsplit=1)[0]) if no_answer else ""]
    return any(p and f" {p} " in said for p in phrases)


def answer_text(answer: Answer | str, no_answer: str = "") -> str:
    """What EM and F1 are computed on: the text without ``[n]`` markers, or "" for an abstention."""
    if is_abstention(answer, no_answer):
        return ""
    return _MARKER.sub("", answer if isinstance(answer, str) else answer.text).strip()


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
        rows.append(_score(item, answer, no_answer, time.perf_counter() - started))
    r = assistant.retriever
    settings = {"model": assistant.model_name, "template": assistant.template.name, "k": r.k, "mode": r.mode,
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
        head = _summary_text({"questions": len(self.rows), "model": self.settings.get("model")}, ["questions", "model"])
        figures = _summary_text(self.summary, ["em", "f1", "citation_precision", "abstention_recall", "false_abstentions"])
        return f"AnswerReport({head}{', ' if figures else ''}{figures})"

    def _repr_html_(self) -> str:
        s = self.summary
        labels = [("em", "exact match"), ("f1", "F1"), ("contains", "contains the answer"),
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
