"""The metric formulas, as pure functions of a ranking or an answer's text (no ragbook import).

Ranking metrics follow trec_eval as BEIR and MTEB call it through pytrec_eval: nDCG uses the
relevance grade itself as gain (not ``2**rel - 1``) with a ``log2(rank + 1)`` discount and the
ideal ranking of every judged document; a document counts as relevant for recall, MRR and hit
rate when its grade is above 0.

Exact match and token F1 are SQuAD's: both texts are normalised (lower case, ASCII punctuation
removed, the articles a/an/the removed, white space squeezed); EM is 1 when they are equal,
F1 is the harmonic mean of the shares of shared tokens, each taking the best gold answer.
An assistant's answer is scored without its ``[n]`` markers; an abstention scores as the
empty answer, which is right only for an unanswerable question (SQuAD 2.0's convention).
``contains`` is laxer: a gold answer appears, as whole words, inside the answer.

:func:`is_correct` is the judge-free verdict that credits paraphrase: a question may list
several gold phrasings, and an answer is correct when

* the question is unanswerable and the answer abstains, or
* for a yes/no question (its first gold phrasing is "yes" or "no") the answer opens with the
  right "yes"/"no"; an answer that opens with neither is judged on the other phrasings; or
* one of its sentences contains a gold phrasing as whole words, or shares enough of one
  (token F1 of at least ``0.6`` between the gold and the sentence's words), with number words
  read as digits ("four" = "4", "4.0" = "4") and, in both cases, the same polarity: a
  sentence that says "not" (or "n't", "never", "no") about a gold phrasing that does not, or
  the other way round, does not count ("includes 5" is not "does not include 5").
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Callable, Mapping, Protocol, Sequence

__all__ = ["ndcg_at_k", "recall_at_k", "mrr_at_k", "hit_rate_at_k", "RANKING_METRICS",
           "normalize_answer", "exact_match", "token_f1", "contains_answer", "is_abstention", "answer_text",
           "is_correct", "MIN_GOLD_F1"]


# -- ranking ----------------------------------------------------------------------------------------


def _top(ranked: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct ids (a repeated id would count twice otherwise)."""
    if k < 1:
        # ValueError, not ragbook's SettingsError: this module imports nothing from ragbook
        raise ValueError(f"k must be at least 1, not {k}")
    out: dict[str, None] = {}
    for doc in ranked:
        out.setdefault(doc)
        if len(out) == k:
            break
    return list(out)


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains (the grade itself), ``log2(rank + 1)`` discount, ideal from the judgments."""
    dcg = sum(max(relevant.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(_top(ranked, k)))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Share of the relevant documents (grade > 0) found in the top ``k``."""
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted.intersection(_top(ranked, k))) / len(wanted) if wanted else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document in the top ``k`` (0 if none)."""
    for i, d in enumerate(_top(ranked, k)):
        if relevant.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def hit_rate_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """1.0 if any relevant document is in the top ``k``, else 0.0."""
    return 1.0 if mrr_at_k(ranked, relevant, k) > 0 else 0.0


# the ranking metrics by the name their figures carry (``ndcg@10``...)
RANKING_METRICS: Mapping[str, Callable[[Sequence[str], Mapping[str, int], int], float]] = {
    "ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k, "hit": hit_rate_at_k}


# -- answers ----------------------------------------------------------------------------------------


class AnswerLike(Protocol):
    """What the answer metrics read from an assistant's answer (:class:`ragbook.answer.Answer`)."""

    @property
    def text(self) -> str: ...

    @property
    def mode(self) -> str: ...


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


def is_abstention(answer: AnswerLike | str, no_answer: str = "") -> bool:
    """Whether an answer declines: ragbook abstained, or the text says it does not know.

    ``no_answer`` is the template's sentence for it ("I don't know: my documents don't
    cover that."); its first clause counts as well as "I don't know" / "I do not know".
    """
    if not isinstance(answer, str) and answer.mode == "abstained":
        return True
    said = f" {normalize_answer(answer if isinstance(answer, str) else answer.text)} "
    phrases = [*_DONT_KNOW, normalize_answer(re.split(r"[:.;!]", no_answer, maxsplit=1)[0]) if no_answer else ""]
    return any(p and f" {p} " in said for p in phrases)


def answer_text(answer: AnswerLike | str, no_answer: str = "") -> str:
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
NEGATION_SCOPE = 2  # words before a gold phrasing whose negation is about it ("does not include 5")


def _tokens(text: str) -> list[str]:
    """Normalised words, number words and ``4.0`` read as digits (the SQuAD normalisation first)."""
    text = re.sub(r"(\d)\.0\b", r"\1", _MARKER.sub("", str(text)).replace("n't", "nt").replace("\u2019", "'"))
    return [_NUMBER_WORDS.get(w, w) for w in normalize_answer(text.replace("'", "")).split()]


def _position(words: list[str], phrase: list[str]) -> int:
    """Where ``phrase`` starts in ``words`` as whole words, or -1."""
    n = len(phrase)
    return next((i for i in range(len(words) - n + 1) if words[i:i + n] == phrase), -1)


def _negated(words: list[str]) -> bool:
    return any(w in _NEGATION for w in words)


def _says(sentence: list[str], gold: list[str]) -> bool:
    """Whether a sentence's words say a gold phrasing: whole words, or token F1, with the same polarity.

    Where the phrasing stands in the sentence word for word, only a negation right before it (or in
    it) counts: "a file that doesn't exist raises FileNotFoundError" says "FileNotFoundError";
    "does not include 5" does not say "include 5".  A paraphrase is judged on the whole sentence.
    """
    if not gold:
        return False
    at = _position(sentence, gold)
    if at >= 0:
        return _negated(sentence[max(0, at - NEGATION_SCOPE):at + len(gold)]) == _negated(gold)
    if _negated(sentence) != _negated(gold):
        return False
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
