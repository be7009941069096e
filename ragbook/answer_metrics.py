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

``correct`` is the judge-free verdict that credits paraphrase (:func:`is_correct`): a question
may list several gold phrasings, and an answer is correct when

* the question is unanswerable and the answer abstains, or
* for a yes/no question (its first gold phrasing is "yes" or "no") the answer opens with the
  right "yes"/"no"; an answer that opens with neither is judged on the other phrasings; or
* one of its sentences contains a gold phrasing as whole words, or shares enough of one
  (token F1 of at least ``0.6`` between the gold and the sentence's words), with number words
  read as digits ("four" = "4", "4.0" = "4") and, in both cases, the same polarity: a
  sentence that says "not" (or "n't", "never", "no") about a gold phrasing that does not, or
  the other way round, does not count ("includes 5" is not "does not include 5").

``confidently_wrong`` is the share of questions the assistant answered (did not abstain),
citing a passage it was given, and got wrong; ``flagged_wrong`` is the share of wrong answers
that carry a warning (a sentence flagged unsupported, contradicted or wrongly cited), so that
a reader was told to check them.
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
           "is_correct", "score_answer", "evaluate_answers", "AnswerReport", "summarize"]

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


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NEGATION = frozenset({"not", "no", "never", "cannot", "cant", "dont", "doesnt", "isnt", "arent", "wasnt", "werent",
                       "wont", "none", "nothing", "neither", "nor", "without", "excluding", "excludes", "exclude"})
_FILLER = frozenset({"is", "are", "was", "were", "be", "of", "to", "in", "and", "or", "it", "its", "that", "this", "you",
                     "your", "can", "by", "for", "as", "with", "on", "at"})
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
MIN_GOLD_F1 = 0.6  # a sentence sharing this much (token F1) with a gold phrasing says it in other words


def _tokens(text: str) -> list[str]:
    """Normalised words, number words and ``4.0`` read as digits (the SQuAD normalisation first)."""
    text = re.sub(r"(\d)\.0\b", r"\1", _MARKER.sub("", str(text)).replace("n't", "nt").replace("\u2019", "'"))
    return [_NUMBER_WORDS.get(w, w) for w in normalize_answer(text.replace("'", "")).split()]


def _negated(words: list[str]) -> bool:
    return any(w in _NEGATION for w in words)


def _says(sentence: list[str], gold: list[str]) -> bool:
    """Whether a sentence's words say a gold phrasing: whole words, or token F1, with the same polarity."""
    if not gold or _negated(sentence) != _negated(gold):
        return False
    if f" {' '.join(gold)} " in f" {' '.join(sentence)} ":
        return True
    content = [w for w in gold if w not in _FILLER]
    if len(content) < 2:  # one word: only its exact occurrence counts, a partial match means nothing
        return False
    said = [w for w in sentence if w not in _FILLER]
    return _f1(said, content) >= MIN_GOLD_F1 or sum((Counter(content) & Counter(said)).values()) == len(content)


def is_correct(answer_text: str, answers: Sequence[str], *, unanswerable: bool = False, abstained: bool = False) -> bool:
    """The judge-free verdict on one answer (see the module's text): paraphrase, numbers, yes/no, polarity."""
    if unanswerable or not answers:
        return abstained
    if abstained:
        return False
    golds = [_tokens(g) for g in answers]
    words = _tokens(answer_text)
    if golds[0] in (["yes"], ["no"]):
        if words and words[0] in ("yes", "no"):
            return words[0] == golds[0][0]
        golds = golds[1:]
    sentences = [_tokens(s) for s in _SENTENCES.split(_MARKER.sub("", answer_text))] or [words]
    return any(_says(sentence, gold) for gold in golds for sentence in sentences)


def score_answer(item: QAItem, answer: Any, seconds: float = 0.0, no_answer: str = "") -> dict[str, Any]:
    """One question's report row: :func:`evaluate_answers`'s figures and the judge-free verdicts."""
    from ragbook.prompt import NO_ANSWER

    row = _score(item, answer, no_answer or NO_ANSWER, seconds)
    abstained = row["abstained"]
    correct = is_correct(answer_text(answer, no_answer), item.answers, unanswerable=item.unanswerable,
                         abstained=abstained)
    cited = any(c.valid for c in answer.citations)
    flagged = any(c.flag not in ("", "no citation") for c in answer.checks)
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
        head = _summary_text({"questions": len(self.rows), "model": self.settings.get("model")}, ["questions", "model"])
        figures = _summary_text(self.summary, ["em", "f1", "citation_precision", "abstention_recall", "false_abstentions"])
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
