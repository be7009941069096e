"""Quote-then-answer, and the model as its own verifier.

A small model answers a yes/no question about ``range(start, stop)`` with "Yes, the stop value is
included" while the passage it cites says "up to but not including".  Two remedies, both cheap:

* **Quote first.**  The ``quote`` template has the model copy the passage sentence that answers
  (``Quote [n]: "..."``) before it writes ``Answer: ...``.  ragbook finds the quote in passage n
  (:func:`locate`: verbatim up to spacing, case and quoting marks, or a near copy); a quote that is
  not there is reported, not shown as evidence.
* **Ask again, narrowly.**  A yes/no question is put to the model a second time with only the
  quoted sentence (:data:`YES_NO_PROMPT`, one word back), and a claim the rules are unsure of is
  put to it as "does this sentence state that ...?" (:data:`CLAIM_PROMPT`).  Each is one short
  prompt and one or two generated tokens (about a second on a laptop CPU with the default model).

:func:`settle` turns the model's raw output, the passages and those verdicts into the answer
shown: the answer line when the quote backs it, the passage's own sentence ("The passage says:
“...” [n]") when the answer's yes or no disagrees with it.  It is a pure function of its inputs
(the verdicts come through ``ask``), so a benchmark can replay it on saved outputs.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ragbook.answer import (
    CLOSEST,
    NOT_ANSWERING,
    REPEATS_EXAMPLE,
    Flag,
    best_evidence,
    check_answer,
    content_terms,
    content_words,
    declines,
    find_evidence,
    repair_citations,
    split_sentences,
    without_citations,
    without_repeats,
)
from ragbook.polarity import polarity_terms

__all__ = ["Grounding", "Reviewed", "review", "parse_quoted", "locate", "is_yes_no_question", "yes_or_no", "settle",
           "verify_checks", "unsure", "model_verdict", "grounded", "addresses", "restates", "is_request", "YES_NO_PROMPT",
           "CLAIM_PROMPT", "ANSWERS_PROMPT"]

log = logging.getLogger(__name__)

_QUOTE_LINE = re.compile(r"^[\s>*_-]*quote\s*(?:\[(\d+)\])?[*_]*\s*:?[*_\s]*(.*)$", re.IGNORECASE)
ANSWER_LINE = re.compile(r"^[\s>*_-]*answer[*_]*\s*:[*_ \t]*", re.IGNORECASE | re.MULTILINE)
_QUOTE_CHARS = "\"'“”‘’«»"
_YES_NO_START = re.compile(
    r"^\s*(?:am|is|isn't|are|aren't|was|wasn't|were|do|does|doesn't|don't|did|didn't|can|can't|could|will|won't|"
    r"would|should|shall|has|hasn't|have|haven't|had|may|might|must)\b", re.IGNORECASE)
_WH = re.compile(r"\b(?:what|which|who|whom|whose|when|where|why|how)\b", re.IGNORECASE)
_AUX_SUBJECT = re.compile(
    r"\b(?:is|isn't|are|aren't|does|doesn't|do|don't|did|can|can't|will|won't|would|should|has|have)\s+"
    r"(?:it|i|you|we|they|he|she|this|that|these|those|there|the|a|an|my|your|python)\b", re.IGNORECASE)
_OPENER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
# "Can you write me a function that ...?", "Could you explain recursion?": a request to the assistant, not a yes/no
# question; "Yes, you can write a function that checks if a number is prime [1]." does not answer it.  A verb that
# anyone can do ("Can you create a list inside a tuple?") asks for something only when it is for "me" or "us".
_REQUEST = re.compile(
    r"^\W*(?:(?:hey|hi|please|ok|okay)\W+)*(?:can|could|would|will)\s+(?:you|u)\s+(?:please\s+|just\s+|quickly\s+|"
    r"briefly\s+)?(?:(?:explain|describe|summari[sz]e|teach|help|walk|go\s+over|break\s+down|suggest|recommend|"
    r"provide|elaborate|clarify|illustrate)\b|(?:write|show|give|tell|make|create|define|compare|find|list|generate|"
    r"code|fix|rewrite|draw|build)\s+(?:me|us)\b)", re.IGNORECASE)
# Near copies: a quote the model shortened or re-spaced still counts when a passage sentence holds this
# share of its content words (a made-up "quote" shares far fewer).
NEAR_COPY = 0.8

YES_NO_PROMPT = ("Sentence from a document:\n\"{quote}\"\n\nQuestion: {question}\n\n"
                 "Going only by the sentence above, answer with one word: Yes or No.")
CLAIM_PROMPT = ("Sentence from a document:\n\"{quote}\"\n\nClaim: {claim}\n\n"
                "Does the sentence above state the claim (the same fact, not its opposite)? "
                "Answer with one word: Yes or No.")
_VERIFIER_SYSTEM = "You check statements against a document. You answer with one word: Yes or No."


@dataclass
class Grounding:
    """What quote-then-answer found: the model's quote, where it is, and the checks made on the answer.

    ``n``/``start``/``end`` place the quote in passage n (``exact``: found verbatim up to spacing,
    case and quoting marks; otherwise a near copy).  ``n`` is None when the model's quote is in no
    passage.  ``yes_no`` is the model's one-word reading of the quote for a yes/no question;
    ``fallback`` is True when the answer shown is the quote itself because the answer's yes or no
    disagreed with it.
    """

    quote: str = ""
    n: int | None = None
    start: int = 0
    end: int = 0
    exact: bool = False
    model_quote: str = ""
    answer: str = ""
    yes_no: str | None = None
    fallback: bool = False
    reason: str = ""
    verdicts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"quote": self.quote, "n": self.n, "start": self.start, "end": self.end, "exact": self.exact,
                "model_quote": self.model_quote, "answer": self.answer, "yes_no": self.yes_no,
                "fallback": self.fallback, "reason": self.reason, "verdicts": dict(self.verdicts)}


def parse_quoted(raw: str) -> tuple[list[tuple[int | None, str]], str]:
    """``([(n, quote), ...], answer)`` from ``Quote [n]: "..."`` lines and an ``Answer: ...`` part.

    Output without an ``Answer:`` line is all answer (a model that skipped the format still answers).
    """
    m = ANSWER_LINE.search(raw)
    head, answer = (raw[:m.start()], raw[m.end():]) if m else (raw, raw)
    quotes = []
    for line in head.splitlines():
        q = _QUOTE_LINE.match(line)
        if q and q.group(2).strip():
            text = without_citations(q.group(2)).strip("*_ ").strip(_QUOTE_CHARS).strip()
            quotes.append((int(q.group(1)) if q.group(1) else None, text))
    if not m:
        lines = [line for line in raw.splitlines() if not _QUOTE_LINE.match(line)]
        answer = "\n".join(lines) if quotes else raw
    return quotes, answer.strip()


def _normalised(text: str) -> tuple[str, list[int]]:
    """Lower-cased ``text`` with quoting marks and ``>`` dropped and spaces collapsed, and each
    kept character's offset in ``text``."""
    out: list[str] = []
    where: list[int] = []
    space = False
    for i, ch in enumerate(text):
        if ch in _QUOTE_CHARS or ch == ">":
            continue
        if ch.isspace():
            space = bool(out)
            continue
        if space:
            out.append(" ")
            where.append(i)
            space = False
        out.append(ch.lower())
        where.append(i)
    return "".join(out), where


def locate(quote: str, text: str) -> tuple[int, int, bool] | None:
    """``(start, end, exact)`` of ``quote`` in ``text``, or None when it is not there.

    Exact means verbatim up to spacing, case and quoting marks; otherwise the sentence (or two
    adjacent ones) of ``text`` that holds at least :data:`NEAR_COPY` of the quote's content words.
    """
    hay, where = _normalised(text)
    for needle in dict.fromkeys((_normalised(quote)[0], _normalised(quote.rstrip(".…").rstrip())[0])):
        i = hay.find(needle) if len(needle) >= 8 else -1
        if i >= 0:
            return where[i], where[i + len(needle) - 1] + 1, True
    start, end, support = find_evidence(quote, text)
    return (start, end, False) if support >= NEAR_COPY and end > start else None


def _clauses(question: str) -> list[str]:
    return re.split(r"[,;:]", question)


def is_request(question: str) -> bool:
    """"Can you explain recursion?", "Could you write me a function that ...?": the assistant is asked to do
    something; a "yes" does not do it."""
    clauses = _clauses(question)
    asked = next((i for i, clause in enumerate(clauses) if _REQUEST.match(clause)), None)
    if asked is None:
        return False
    # "Could you tell me, is a tuple mutable?", "Can you tell me if ...": a yes/no question, politely put
    rest = " ".join(clauses[asked:])
    return not (re.search(r"\b(?:if|whether)\b", rest, re.IGNORECASE) and re.search(r"\b(?:tell|show)\b", rest,
                                                                                       re.IGNORECASE)
                or any(_YES_NO_START.match(clause) for clause in clauses[asked + 1:]))


def is_yes_no_question(question: str) -> bool:
    """"Is ...?", "Does ...?", "Can I ...?", "if I loop over it, does it reach 10?", "If my function has no return,
    does calling it give a value?": answered by yes or no.  A request ("Can you explain ...?") is not one."""
    if is_request(question):
        return False
    if any(_YES_NO_START.match(clause) for clause in _clauses(question)):
        return True
    return not _WH.search(question) and bool(_AUX_SUBJECT.search(question))


def yes_or_no(text: str) -> str | None:
    """"yes" or "no" when ``text`` opens with it, else None."""
    m = _OPENER.match(text)
    return m.group(1).lower() if m else None


def model_verdict(llm: Any, prompt: str) -> str | None:
    """The model's one-word "yes"/"no" to ``prompt`` (greedy, a few tokens), or None when it says neither.

    A check is advice: when the model fails (a server that cuts the answer off, a timeout) the
    answer stands as the rules left it, and the failure is logged.
    """
    from ragbook.errors import LLMError

    messages = [{"role": "system", "content": _VERIFIER_SYSTEM}, {"role": "user", "content": prompt}]
    try:
        generation = llm.chat(messages, max_tokens=3, temperature=0.0)
    except (LLMError, OSError) as exc:
        log.warning("the model's check of its answer failed (%s); the answer is shown as the rules left it", exc)
        return None
    if getattr(generation, "incomplete", False):
        return None
    return yes_or_no(generation.text)


def _prompt(template: str, **fields: str) -> str:
    """A verifier prompt; document text and questions are untrusted: defused and kept on one line."""
    from ragbook.prompt import defuse

    return template.format(**{k: " ".join(defuse(v).split()) for k, v in fields.items()})


def settle(raw: str, passages: Sequence[Any], question: str, *, no_answer: str,
           ask: Callable[[str], str | None] | None = None) -> tuple[str, Grounding]:
    """The answer to show for a quote-then-answer output, and what was found on the way.

    ``ask(prompt)`` is the model's one-word verdict (see :func:`model_verdict`); without it no
    yes/no reading is made and only the rules apply.
    """
    quotes, answer = parse_quoted(raw)
    g = Grounding(answer=answer)
    if declines(raw, no_answer):
        g.reason = "no answer"
        return no_answer, g
    for n, text in quotes:
        g.model_quote = g.model_quote or text
        order = [n] if n and 1 <= n <= len(passages) else []
        order += [i for i in range(1, len(passages) + 1) if i not in order]
        for i in order:
            found = locate(text, _text(passages[i - 1]))
            if found:
                g.n, (g.start, g.end, g.exact) = i, found
                g.quote = _text(passages[i - 1])[g.start:g.end]
                break
        if g.n:
            break
    if quotes and g.n is None:
        g.reason = "quote not in the passages"
    if not answer:  # the model quoted and stopped: the quote is the answer
        answer = f"The passage says: \u201c{g.quote}\u201d [{g.n}]" if g.n else ""
    if not g.n or not is_yes_no_question(question):
        return answer, g
    said = yes_or_no(answer)
    from ragbook.polarity import conflicts

    if ask is not None:
        g.yes_no = ask(_prompt(YES_NO_PROMPT, quote=g.quote, question=question))
        g.verdicts["yes_no"] = g.yes_no
    if said and ((g.yes_no and g.yes_no != said) or conflicts(answer, g.quote)):
        g.fallback = True
        g.reason = (f"the answer says {said!r}, the quoted sentence reads as {g.yes_no!r}" if g.yes_no and g.yes_no != said
                    else "the answer says the opposite of the quoted sentence")
        return f"The passage says: \u201c{g.quote}\u201d [{g.n}]", g
    return answer, g


def _text(passage: Any) -> str:
    return getattr(getattr(passage, "chunk", passage), "text", "")


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\w)")
_NAME = re.compile(r"(?<=[a-z,;:] )[A-Z][\w'-]+")
# A claim the rules pass is still put to the model when its best passage sentence holds less than this
# share of its content words, or when it names a number or a capitalised name that sentence lacks.
SURE_SUPPORT = 0.75
MAX_MODEL_CHECKS = 3  # per answer: each is a prompt of ~100 tokens and one or two tokens out


def _numbers(text: str) -> set[str]:
    return {n.lstrip("-") for n in _NUMBER.findall(text)}


def unsure(check: Any) -> bool:
    """Whether the rules' pass on a sentence (``SentenceCheck``) is worth a model check."""
    ev = check.evidence
    if check.flag or ev is None:
        return False
    claim = without_citations(check.sentence)
    missing_numbers = _numbers(claim) - _numbers(ev.quote)
    missing_names = {w for w in _NAME.findall(claim) if w.lower() not in ev.quote.lower()}
    return ev.support < SURE_SUPPORT or bool(missing_numbers) or bool(missing_names)


def _lead_sentence(checks: Sequence[Any]) -> Any:
    """The sentence an answer rests on: its first that a passage backs (its ``SentenceCheck``), or None.

    Not the sentence a passage backs best: "6 times [1]. After the sixth run, uploads are graded by
    hand." rests on the first.  The model's checks read this one's evidence (does it answer the
    question; does it say yes or no)."""
    return next((c for c in checks if c.evidence is not None), None)


def verify_checks(question: str, checks: list[Any], ask: Callable[[str], str | None], *, yes_no: bool = True) -> int:
    """Put to the model what the rules cannot settle; returns how many model checks were made.

    * An answer that opens with yes or no to a yes/no question: the model reads the question
      against the first sentence's evidence alone; a different yes/no makes the sentence
      "contradicts [n]", with the evidence beside it.
    * A sentence the rules pass but are unsure of (:func:`unsure`): "does this sentence state
      the claim?"; a "no" makes it "unsupported".

    Each check's ``verified`` records the model's verdict (True, False, or None when not asked).
    """
    made = 0
    first = _lead_sentence(checks)
    if yes_no and first is not None and is_yes_no_question(question) and not first.flag.startswith(Flag.CONTRADICTS):
        said = yes_or_no(without_citations(first.sentence))
        if said:
            verdict = ask(_prompt(YES_NO_PROMPT, quote=first.evidence.quote, question=question))
            made += 1
            if verdict:
                first.verified = verdict == said
                if verdict != said:
                    first.flag, first.quote = Flag.contradicts(first.evidence.n), first.evidence.quote
    for check in checks:
        if made >= MAX_MODEL_CHECKS:
            break
        if check.verified is None and unsure(check):
            claim = without_citations(check.sentence)
            verdict = ask(_prompt(CLAIM_PROMPT, quote=check.evidence.quote, claim=claim))
            made += 1
            if verdict:
                check.verified = verdict == "yes"
                if verdict == "no":
                    check.flag = Flag.UNSUPPORTED
    return made


ANSWERS_PROMPT = ("Sentence from a document:\n\"{quote}\"\n\nQuestion: {question}\n\n"
                  "Does the sentence above answer the question? Answer with one word: Yes or No.")


def grounded(checks: Sequence[Any], passages: Sequence[Any]) -> bool:
    """Whether an answer rests on its passages: some sentence of it cites a passage that holds at least half
    of its content words (all of them, for a sentence of one or two: "The error is an OverflowError [2]."),
    and says nothing its passage says the opposite of."""
    for c in checks:
        if c.flag or not c.cites:
            continue
        words = content_terms(c.sentence)
        if len(words) >= 3:
            return True
        held = set().union(*(content_terms(_text(passages[n - 1])) for n in c.cites if 1 <= n <= len(passages)))
        if words and words <= held:
            return True
    return False


def addresses(answer: str, question: str) -> bool:
    """Whether an answer to a yes/no question takes it up: it opens with yes or no, or its first sentence
    restates the question (two of its content words, or half of them), as "you cannot change a tuple's
    elements" does; "The value of each expression is [3]." to "Is bool("") True?" does not."""
    first = split_sentences(answer)[:1]
    if not first or yes_or_no(without_citations(first[0])):
        return True
    asked = content_terms(question)
    return len(asked & content_terms(first[0])) >= min(2, len(asked) / 2)


# Words any answer may add to the question's without saying anything ("You can ...", "it does ...").
_ANSWER_WORDS = content_terms("you your yours can could may might do does did will would should shall must need "
                              "i me my we our it its they them their this that these those there here how what "
                              "which when where why who whom whose use using used way has have had is are was were "
                              "yes sure certainly")


# An echo says back nearly all of its question: "Which is immutable, a list or a tuple?" answered "A tuple is
# immutable [1]." leaves "list" out, and picks.
ECHO_SHARE = 0.8


def restates(answer: str, question: str) -> bool:
    """Whether an answer to a wh-question ("how", "what", "which"...) or a request ("Can you write me a function
    that checks if a number is prime?") only says its question back: it holds
    nearly all of the question's words and adds none but the ones any answer uses.  "You can print 12345678
    as 12,345,678 with an f-string [1]." to "How do I print 12345678 as 12,345,678 with an f-string?" says
    nothing.  An answer that picks one of the question's options, gives again a value the question holds
    ("max(3, 7) returns 7"), or negates ("You can't change a character in a string") says something.
    Questions without an English wh-word (yes/no questions among them) are never judged, requests aside:
    "Yes, you can write a function that checks if a number is prime [1]." says nothing."""
    if not (_WH.search(question) or is_request(question)) or (polarity_terms(answer)[1]
                                                              and not polarity_terms(question)[1]):
        return False  # it denies what the question takes for granted
    said = Counter(content_words(re.sub(r"\bof course\b", " ", answer, flags=re.IGNORECASE)))
    asked = Counter(content_words(question))
    if not said or any(said[w] > asked[w] for w in said if w not in _ANSWER_WORDS):
        return False  # a word of its own, or one of the question's said again as the answer
    wanted = [w for w in asked if w not in _ANSWER_WORDS]
    return sum(w in said for w in wanted) >= ECHO_SHARE * len(wanted)


UNGROUNDED = "no sentence of it is backed by a passage it cites"
UNADDRESSED = "it says neither yes nor no to the question"
CONTRADICTED = "it says otherwise than its passage"
RESTATES = "it only restates the question"
UNCONFIRMED = "the model's checks rejected the sentences it rested on, and no other sentence of it is backed"


@dataclass
class Reviewed:
    """A model's raw answer after ragbook's checks: the text to show, its citations and checks, and why."""

    text: str
    citations: list[Any]
    checks: list[Any]
    grounding: Grounding | None = None
    model_checks: int = 0
    withheld: str = ""  # the model's answer, when ragbook showed "I don't know" instead (see review)
    why_withheld: str = ""


def review(raw: str, passages: Sequence[Any], question: str, template: Any,
           ask: Callable[[str], str | None] | None = None, *, require_support: bool = True) -> Reviewed:
    """Check a model's raw answer against its passages and decide what to show.

    1. A quote-then-answer output is settled (:func:`settle`); a plain one is taken as it is.
    2. Missing or wrong citations are repaired (:func:`ragbook.answer.repair_citations`) and every
       sentence is checked (:func:`ragbook.answer.check_answer`).
    3. With ``ask`` (the model as verifier): the sentence the answer rests on (the passage's sentence
       behind the answer's lead sentence) is put to it with
       the question, "does this sentence answer it?"; a "no" withholds the answer ("I don't
       know", with the passage sentence closest to the question and the answer shown as the
       closest the documents come).  Otherwise
       :func:`verify_checks` looks at yes/no answers and the claims the rules are unsure of.
    4. A template that answers only with what the passages state (``strict``, and the quote form)
       replaces a contradicted answer by the passage's own sentences.

    With ``require_support`` (the default) an answer that does not rest on its passages is withheld
    before any model check: "I don't know", with the passage sentence closest to the question and the
    answer, when
    no sentence of it is :func:`grounded`, when it does not take up a yes/no question
    (:func:`addresses`), or when it only :func:`restates` any other question.  A small model answering
    from what it knows, or echoing the question as "Yes, <the question>" or "You can <the question>",
    writes exactly such answers; a teacher forgives "I don't know" sooner than a confident wrong
    answer with a citation.  After the model's checks it is withheld too when they leave no sentence
    grounded, or when the model reads the passage behind a yes/no answer as the opposite yes or no.
    """
    no_answer = template.no_answer
    passages = list(passages)
    grounding = None
    raw = without_repeats(raw)  # a loop ("Tuples are immutable [1]." until the token budget ran out) said once
    text = raw
    if template.form == "quote":
        text, grounding = settle(raw, passages, question, no_answer=no_answer, ask=ask)
    text, added = repair_citations(text, passages)
    example = template.example.answer if template.example is not None else ""
    citations, checks = check_answer(text, passages, no_answer=no_answer, attributed=added, example=example)
    made = int(grounding is not None and grounding.yes_no is not None)
    if checks and all(c.flag == Flag.COPIED_EXAMPLE for c in checks):  # the worked example again, not an answer
        return _withheld(text, None, REPEATS_EXAMPLE, passages, no_answer, grounding, made)
    yes_no_question = is_yes_no_question(question)
    if require_support and not declines(text, no_answer):
        why = (UNGROUNDED if not grounded(checks, passages)
               else UNADDRESSED if yes_no_question and not addresses(text, question)
               else RESTATES if not yes_no_question and restates(text, question) else "")
        if why:
            return _unsupported(text, checks, why, passages, question, no_answer, grounding, made)
    if ask is None or declines(text, no_answer):
        return _fallback(Reviewed(text, citations, checks, grounding, made), passages, template)
    n: int | None
    lead = _lead_sentence(checks)
    if grounding is not None and grounding.n:
        n, quote = grounding.n, grounding.quote
    else:
        n, quote = (lead.evidence.n, lead.evidence.quote) if lead is not None else (None, "")
    # not for a yes/no question: the model reads "does this sentence answer it?" as "does it say yes?" (on the
    # OpenStax set it withheld 5 right "No, ..." answers that way); its yes/no reading below is the check there
    if quote and not yes_no_question:
        verdict = ask(_prompt(ANSWERS_PROMPT, quote=quote, question=question))
        made += 1
        if grounding is not None:
            grounding.verdicts["answers_question"] = verdict
        if verdict == "no" and n is not None:
            return _unsupported(text, checks, NOT_ANSWERING, passages, question, no_answer, grounding, made)
    made += verify_checks(question, checks, ask, yes_no=not (grounding is not None and grounding.yes_no is not None))
    r = _fallback(Reviewed(text, citations, checks, grounding, made), passages, template)
    overturned = (yes_no_question and lead is not None and lead.verified is False  # its yes/no reading said otherwise
                  and lead.flag.startswith(Flag.CONTRADICTS))
    if require_support and not r.withheld and (overturned or not grounded(checks, passages)):
        # the model read the passage as the opposite yes or no, or flagged every sentence the rules let through:
        # the answer no longer rests on its passages ("Yes, `Total` and `total` are the same variable [1]" against
        # "letter case matters", its other sentences only around it)
        return _unsupported(text, checks, UNCONFIRMED, passages, question, no_answer, grounding, made)
    return r


def _unsupported(text: str, checks: Sequence[Any], why: str, passages: list[Any], question: str, no_answer: str,
                 grounding: Any, made: int) -> Reviewed:
    """Withhold an answer that does not rest on its passages.  Where a sentence of it contradicts its passage,
    that passage's own words are the closest the documents come ("→ -8" for "→ -7"), and the contradiction is
    the reason; otherwise the passage sentence holding most of the words of the question and the answer
    together.  The answer's words count because a model that phrased its answer its own way has often read
    the right sentence ("use `chr()`" to "how do I turn 97 back into a character?"): on the three OpenStax
    sets, 19 of 35 withheld answers to questions the passages answer showed the book's answering sentence
    this way, against 10 when the question's words alone chose it (and the sentence the model rejected)."""
    said = next((c for c in checks if c.flag.startswith(Flag.CONTRADICTS) and c.quote), None)
    if said is not None:
        near: tuple[int, str] | None = (Flag.contradicted(said.flag), " ".join(said.quote.split()))
        why = CONTRADICTED if why in (UNGROUNDED, UNCONFIRMED) else why
    else:
        closest = best_evidence(f"{question} {without_citations(text)}", passages)
        near = (closest.n, " ".join(closest.quote.split())) if closest else None
    return _withheld(text, near, why, passages, no_answer, grounding, made)


def _withheld(text: str, near: tuple[int, str] | None, why: str, passages: list[Any], no_answer: str, grounding: Any,
              made: int) -> Reviewed:
    """"I don't know", with the passage sentence ``near`` as the closest the documents come; the model's
    ``text`` is kept.  Only the "I don't know" is checked: the quoted sentence is the passage's own."""
    shown = f"{no_answer} ({CLOSEST}, in [{near[0]}]: \u201c{near[1]}\u201d)" if near else no_answer
    citations, _ = check_answer(shown, passages, no_answer=no_answer)
    _, checks = check_answer(no_answer, passages, no_answer=no_answer)
    return Reviewed(shown, citations, checks, grounding, made, withheld=text, why_withheld=why)


def _fallback(r: Reviewed, passages: list[Any], template: Any) -> Reviewed:
    contradicted = [c for c in r.checks if c.flag.startswith(Flag.CONTRADICTS)]
    if contradicted and (template.name == "strict" or template.form == "quote"):
        r.withheld = r.text
        r.text = " ".join(f"The passage says: \u201c{c.quote}\u201d [{Flag.contradicted(c.flag)}]" for c in contradicted)
        r.citations, r.checks = check_answer(r.text, passages, no_answer=template.no_answer)
    return r
