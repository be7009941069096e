"""Answers and their citations, checked against the passages the model was given.

A citation ``[n]`` must name a passage that was in the prompt; a sentence must be supported by
the passages it cites (most of its content words appear there), and must not say the opposite
of the passage sentence those words come from (a word it asserts that the passage negates, or
the other way round: "contradicts [n]", see :mod:`ragbook.polarity`).  ``Answer.evidence``
gives each cited sentence the passage sentence that backs it best, highlighted in the HTML.
Problems are flagged, not hidden: a person can see which claims to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Callable, Literal, Sequence

from ragbook._display import html_escape, shorten
from ragbook.lexical import Analyzer
from ragbook.polarity import CITATION_MARK
from ragbook.retrieval import Hit

__all__ = ["Answer", "AnswerMode", "Flag", "Citation", "Evidence", "SentenceCheck", "repair_citations", "attribute",
           "content_terms", "check_answer", "declines", "find_evidence", "best_evidence", "split_sentences",
           "without_citations", "looping", "ran_away", "without_repeats"]

_MARK = CITATION_MARK
_HEADING = re.compile(r"#{1,6}\s")  # a Markdown heading line in a passage
_QUESTION = re.compile(r"\?[\"”’»)]*$")  # a sentence that asks (an exercise, a heading as a question)
# how an answer was made: by the language model, from the documents' own sentences, or not at all
AnswerMode = Literal["llm", "extractive", "abstained"]


class Flag:
    """What a sentence check can say about a sentence ("" when nothing is wrong)."""

    INVALID_CITATION = "invalid citation"  # it cites a passage the model was not given
    UNSUPPORTED = "unsupported"  # no passage it cites shares enough of its words (or the model said no)
    NO_CITATION = "no citation"  # supported, but it cites nothing (not a warning)
    COPIED_EXAMPLE = "copied example"  # the template's worked example, repeated
    CONTRADICTS = "contradicts"  # "contradicts [n]": it says the opposite of passage n's sentence

    WARNINGS = (INVALID_CITATION, UNSUPPORTED, COPIED_EXAMPLE)

    @staticmethod
    def contradicts(n: int) -> str:
        return f"{Flag.CONTRADICTS} [{n}]"

    @staticmethod
    def contradicted(flag: str) -> int:
        """The passage number a :meth:`contradicts` flag names: ``"contradicts [2]"`` -> 2."""
        return int(flag[len(Flag.CONTRADICTS):].strip(" []"))

    @staticmethod
    def is_warning(flag: str) -> bool:
        return flag in Flag.WARNINGS or flag.startswith(Flag.CONTRADICTS)
# A sentence ends at . ! ? or a line break; a point inside a word or number ("16.91", "Python 3.11",
# "notes.md") does not end it, so a citation is never added in the middle of a number; nor does one inside inline
# code ("`with open(...) as f:`", "`a?b`"), so a citation never lands in the middle of code (a span holding ". C"
# is taken for two stray backticks around a sentence end, as a line break inside code leaves them).
_SENTENCE = re.compile(r"(?:`(?:[^`\n.!?]|[.!?](?!\s+[A-Z]))*`|[^.!?\n]|[.!?]+(?=\w))+"
                       r"(?:[.!?]+[\"”’»)]*|\n|$)(?:\s*\[[\d,;\s–-]+\])*")
_ANALYZER = Analyzer()
_SUPPORTED = 0.5  # a sentence is backed when the passages it cites hold at least half its content words
# A polarity conflict counts only against a passage sentence holding this much of the claim: at 0.5, 3 of
# 42 correct OpenStax answers were flagged (a sentence about something else that happens to say "create");
# at 0.6, 1 of them, and 7 of the 8 SQuAD flags (all in wrong answers) stay.
_CONTRADICTION_SUPPORT = 0.6


def _numbers(group: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", group):
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            lo, hi = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            out.extend(range(lo, hi + 1) if 0 < hi - lo < 20 else [lo, hi])
        elif part.strip().isdigit():
            out.append(int(part))
    return out


def split_sentences(text: str) -> list[str]:
    return [m.group().strip() for m in _SENTENCE.finditer(text) if m.group().strip(" \n[]0123456789,.")]


# A small model decoding greedily can fall into a loop, writing one sentence (or two in turn) until its token
# budget runs out.  LOOP_TIMES copies in a row of a sentence of at least LOOP_WORDS content words (or of two sentences
# in turn) outside code blocks is such a loop: an answer says a thing once, a code listing's short lines ("print(x)")
# are too short to count, and a program's output shown in a code block is the program's.
LOOP_TIMES = 3
LOOP_WORDS = 3
_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_LIST_MARK = re.compile(r"\s*(?:\d{1,3}[.)]|[-*\u2022])\s*")


def _in_code(text: str) -> Callable[[int], bool]:
    """Whether a position of ``text`` falls inside a ``` code block (an unclosed one runs to the end)."""
    fences = [m.span() for m in _FENCE.finditer(text)]
    return lambda pos: any(a <= pos < b for a, b in fences)


def _loop_copies(text: str) -> list[re.Match[str]]:
    """The sentences of ``text`` that repeat a loop's first cycle: in a run of :data:`LOOP_TIMES` cycles or
    more of one sentence or of two in turn, every copy after the first cycle."""
    in_code = _in_code(text)
    said = [(m, _copy_key(m.group())) for m in _SENTENCE.finditer(text) if not in_code(m.start())]
    said = [(m, key) for m, key in said if len(content_terms(key)) >= LOOP_WORDS]  # list numbers, short lines: skipped
    copies: dict[int, re.Match[str]] = {}
    for period in (1, 2):
        run = 0  # how many sentences in a row repeat the one `period` before
        for i in range(period, len(said) + 1):
            if i < len(said) and said[i][1] == said[i - period][1]:
                run += 1
                continue
            if run >= (LOOP_TIMES - 1) * period:
                for m, _ in said[i - run:i]:
                    copies[m.start()] = m
            run = 0
    return [copies[k] for k in sorted(copies)]


# A runaway: a few characters over and over ("The factorial of 17 is 35568742809284349023220898436902008176640000000…",
# "ha ha ha …").  It never ends a sentence, so only the token budget stopped it.  A unit of up to 16 characters repeated
# at least 8 times over RUNAWAY_CHARS characters is one; in a code block, where a program's output may repeat a line
# ("Hello!\n" ten times), over RUNAWAY_CODE_CHARS.  Whitespace alone (indentation) is never one.
_RUNAWAY = re.compile(r"(.{1,16}?)\1{7,}", re.DOTALL)
RUNAWAY_CHARS = 96
RUNAWAY_CODE_CHARS = 256


def _runaway(text: str, start: int = 0) -> re.Match[str] | None:
    """The first runaway in ``text`` from ``start`` on, or None."""
    in_code = _in_code(text)
    for m in _RUNAWAY.finditer(text, start):
        if not m.group(1).isspace() and m.end() - m.start() >= (RUNAWAY_CODE_CHARS if in_code(m.start())
                                                                else RUNAWAY_CHARS):
            return m
    return None


def ran_away(text: str) -> bool:
    """Whether the end of a growing ``text`` (a model's stream) runs away (:func:`_runaway`); cheap at every piece."""
    return _runaway(text, max(0, len(text) - 2 * RUNAWAY_CODE_CHARS)) is not None


def looping(text: str) -> bool:
    """Whether ``text`` has fallen into a loop: a sentence or two said again and again (:func:`_loop_copies`) or a
    run of a few characters over and over at its end (:func:`ran_away`)."""
    return ran_away(text) or bool(_loop_copies(text))


def without_repeats(text: str) -> str:
    """``text`` with a loop said once: the copies after its first cycle go, with their list numbers, and so does a
    last copy cut off mid-way; other text is left as it is (a thing said twice on purpose stays).  A sentence that
    ran away into a few characters over and over says nothing and goes whole ("Yes. Yes. Yes. ..." is said once)."""
    while (run := _runaway(text)) is not None:
        if re.search(r"[.!?]", run.group(1)):  # a short sentence over and over
            text = (text[:run.start()] + run.group(1).strip() + " " + text[run.end():].lstrip()).strip()
            continue
        held = next((m for m in _SENTENCE.finditer(text) if m.start() <= run.start() < m.end()), run)
        text = (text[:held.start()].rstrip() + " " + text[max(run.end(), held.end()):].lstrip()).strip()
    copies = _loop_copies(text)
    if not copies:
        return text
    looped = {_copy_key(m.group()) for m in copies}
    tail = list(_SENTENCE.finditer(text))[-1]
    if not re.search(r"[.!?\]]\s*$", tail.group()) and any(k.startswith(_copy_key(tail.group())) for k in looped):
        text = text[:tail.start()]  # the loop's next copy, cut off mid-way by the token budget
    out, pos = [], 0
    for m in copies:
        before = text[pos:m.start()]
        mark = re.search(r"(?:^|\n)" + _LIST_MARK.pattern + r"$", before)  # "2. " left in front of a copy
        out.append(before[:mark.start()] if mark else before.rstrip(" "))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out).strip()


@dataclass
class Citation:
    """``[n]`` in an answer, resolved to the passage it names (``None`` if no such passage)."""

    n: int
    hit: Hit | None

    @property
    def valid(self) -> bool:
        return self.hit is not None

    @property
    def source(self) -> str | None:
        return self.hit.source if self.hit else None

    @property
    def page(self) -> int | None:
        return self.hit.page if self.hit else None

    @property
    def text(self) -> str:
        return self.hit.text if self.hit else ""

    def reference(self) -> str:
        return f"[{self.n}] {self.hit.citation()}" if self.hit else f"[{self.n}] (no such passage was given)"

    def __repr__(self) -> str:
        return f"Citation({self.reference()!r})"


@dataclass
class SentenceCheck:
    sentence: str
    cites: list[int]
    support: float  # share of the sentence's content words found in the passages it cites
    flag: str = ""  # "" or one of Flag's
    attributed: bool = False  # the citation was added by ragbook, not written by the model
    quote: str = ""  # for "contradicts [n]": the sentence of passage n that says otherwise
    evidence: Evidence | None = None  # the cited passages' sentence that backs it best
    verified: bool | None = None  # the model's own verdict on it, where the rules were unsure (ragbook.grounding)


# On the five question sets' cached answers this moves 5 citations (SQuAD's "Scotland was invaded by William in 1072"
# from a passage holding half its words to the one holding them all, which the model's check then confirms) and
# changes no other answer.
CLEARLY_BACKED = 0.9
CLEARLY_BETTER = 0.4


def repair_citations(text: str, passages: list[Hit], *, min_support: float = 0.6) -> tuple[str, set[str]]:
    """Cite the passage that clearly backs a sentence the model left uncited or cited wrongly.

    Small models often answer correctly but forget to cite, or cite the wrong number (one shown
    a worked example that cites ``[2]`` first tends to write ``[2]`` first).  A sentence gets the
    passage holding most of its content words (at least ``min_support`` of them) when it has no
    citation, or when the passages it cites hold fewer than half of them (what
    :func:`check_answer` would flag as unsupported) and that passage is not among them, or when that
    passage holds nearly all of them (:data:`CLEARLY_BACKED`) and clearly more than the cited ones
    (:data:`CLEARLY_BETTER`); a wrong number is replaced.  Returns the new text and the sentences
    whose citation is ragbook's (as :func:`check_answer` sees them, markers removed); the model's
    own words stay in ``Answer.raw_text``.
    """
    passage_terms = [content_terms(h.text) for h in passages]
    out, pos, added = [], 0, set()
    for m in _SENTENCE.finditer(text):
        sentence = m.group()
        words = content_terms(sentence)
        cites = _cites(sentence)
        # a short sentence ("The error is an OverflowError [2].") is re-cited only to a passage holding all its words
        short = len(words) < 3
        if not words or not passage_terms or (short and not cites):
            continue
        support = [len(words & terms) / len(words) for terms in passage_terms]
        best = max(range(len(support)), key=lambda i: (support[i], -i))
        if support[best] < (1.0 if short else min_support):
            continue
        if not cites:
            end = m.start() + len(sentence.rstrip())
            out.append(text[pos:end] + f" [{best + 1}]")
            pos = end
            added.add(sentence.strip())
            continue
        valid = [n for n in cites if 1 <= n <= len(passages)]
        held = _support(words, passage_terms, valid)
        # cited a passage holding half of it while another holds (nearly) all: "one less than the length of the list
        # [2]" against [2]'s "the length of the list" and [1]'s "end at one less than the length of the sequence"
        clearly = not short and support[best] >= CLEARLY_BACKED and support[best] - held >= CLEARLY_BETTER
        if best + 1 in cites or held >= (1.0 if short else _SUPPORTED) and not clearly:
            continue
        first = next(_MARK.finditer(sentence))  # the sentence cites, so it holds a mark
        fixed = (sentence[:first.start()] + f"[{best + 1}]"
                 + re.sub(r"\s*" + _MARK.pattern, "", sentence[first.end():]))
        out.append(text[pos:m.start()] + fixed)
        pos = m.end()
        added.add(_MARK.sub("", fixed).strip())
    out.append(text[pos:])
    return "".join(out), added



attribute = repair_citations  # its old name

def without_citations(sentence: str) -> str:
    """``sentence`` with its ``[n]`` markers removed and no space left before its punctuation."""
    return re.sub(r"\s+([.,;:!?])", r"\1", _MARK.sub("", sentence)).strip()


def declines(text: str, no_answer: str) -> bool:
    """Whether ``text`` gives the template's "I don't know" sentence (``no_answer``)."""
    return bool(no_answer) and no_answer.lower().rstrip(".") in text.lower()


def _cites(sentence: str) -> list[int]:
    return [n for mark in _MARK.finditer(sentence) for n in _numbers(mark.group(1))]


def _support(words: set[str], passage_terms: list[set[str]], numbers: Any) -> float:
    """The share of ``words`` found in the passages numbered ``numbers`` (1-based)."""
    pool = set().union(*(passage_terms[n - 1] for n in numbers))
    return len(words & pool) / len(words)


def _copy_key(sentence: str) -> str:
    """A sentence without its citations, case or spacing, to spot one repeated from the example."""
    return " ".join(_MARK.sub(" ", sentence).lower().split()).rstrip(".!?")


def content_words(text: str) -> list[str]:
    """The stemmed content words of ``text`` in order, repeats kept, its ``[n]`` markers left out."""
    return list(_ANALYZER(_MARK.sub(" ", text)))


def content_terms(text: str) -> set[str]:
    """The stemmed content words of ``text``, its ``[n]`` markers left out: what support is counted in."""
    return set(content_words(text))


def check_answer(text: str, passages: list[Hit], *, no_answer: str = "", attributed: AbstractSet[str] = frozenset(),
                 example: str = "") -> tuple[list[Citation], list[SentenceCheck]]:
    """Resolve every ``[n]`` and check each sentence against what it cites.

    ``example`` is the template's worked answer: a sentence repeated from it is flagged
    "copied example" (a model too small to tell the example from the question does that).
    """
    copied = {_copy_key(s) for s in split_sentences(example)} - {""}
    cited: dict[int, Citation] = {}
    for m in _MARK.finditer(text):
        for n in _numbers(m.group(1)):
            if n not in cited:
                cited[n] = Citation(n, passages[n - 1] if 1 <= n <= len(passages) else None)
    passage_terms = [content_terms(h.text) for h in passages]
    checks = []
    for sentence in split_sentences(text):
        words = content_terms(sentence)
        cites = _cites(sentence)
        valid = [n for n in cites if 1 <= n <= len(passages)]
        if _copy_key(sentence) in copied:
            checks.append(SentenceCheck(sentence, cites, 0.0, Flag.COPIED_EXAMPLE))
            continue
        if len(valid) < len(cites):
            checks.append(SentenceCheck(sentence, cites, 0.0, Flag.INVALID_CITATION))
            continue
        found = {n: find_evidence(sentence, passages[n - 1].text) for n in dict.fromkeys(valid)}
        evidence = _best_evidence(sentence, passages, found)
        if declines(sentence, no_answer) or len(words) < 3:
            # the template's "I don't know", and "Yes.", headings, list numbers: too short to judge
            checks.append(SentenceCheck(sentence, cites, 1.0, evidence=evidence))
            continue
        support = _support(words, passage_terms, valid or range(1, len(passages) + 1))  # uncited: any passage
        flag = ("" if cites else Flag.NO_CITATION) if support >= _SUPPORTED else Flag.UNSUPPORTED
        quote = ""
        if flag == "":
            flag, quote = _contradiction(sentence, passages, found)
        if flag == "" and cites and not _compared(sentence, [passages[n - 1].text[a:b] for n, (a, b, _) in found.items()]):
            flag = Flag.UNSUPPORTED  # "Python is not slower than Java [2]" from "... four years before Java"
        by_ragbook = _MARK.sub("", sentence).strip() in attributed
        checks.append(SentenceCheck(sentence, cites, round(support, 3), flag, by_ragbook, quote, evidence))
    return sorted(cited.values(), key=lambda c: c.n), checks


@dataclass
class Evidence:
    """The sentence of a cited passage that best backs a sentence of the answer.

    ``start``/``end`` are offsets into the passage's text, so ``passage.text[start:end] == quote``;
    ``support`` is the share of the answer sentence's content words the quote holds.
    """

    sentence: str
    n: int
    quote: str
    start: int
    end: int
    support: float

    def to_dict(self) -> dict[str, Any]:
        return {"sentence": self.sentence, "n": self.n, "quote": self.quote, "start": self.start, "end": self.end,
                "support": self.support}

    def __repr__(self) -> str:
        return f"Evidence([{self.n}] {shorten(self.quote, 60)!r}, support={self.support})"


def find_evidence(sentence: str, text: str) -> tuple[int, int, float]:
    """``(start, end, support)`` of the sentence of ``text`` holding most of ``sentence``'s content words.

    Ties go to the shorter sentence (the more precise quote); headings and questions are never
    quoted (a title or an exercise's "what is the value of each expression?" states nothing); two
    adjacent sentences are quoted
    together only when they hold more of the words than either alone ("The Calvin cycle fixes
    carbon. It runs in the stroma." for "The Calvin cycle runs in the stroma").  ``support`` is
    0.0 when no sentence shares a word.
    """
    words = content_terms(sentence)
    spans = []
    for m in _SENTENCE.finditer(text):
        quote = m.group()
        start, end = m.start() + len(quote) - len(quote.lstrip()), m.start() + len(quote.rstrip())
        if end > start and not _HEADING.match(text, start) and not _QUESTION.search(text, start, end):
            spans.append((start, end, content_terms(quote)))
    if not words or not spans:
        return 0, 0, 0.0

    def support(terms: set[str]) -> float:
        return len(words & terms) / len(words)

    start, end, terms = min(spans, key=lambda s: (-support(s[2]), s[1] - s[0]))
    best = (start, end, support(terms))
    for (a, _, first), (_, b, second) in zip(spans, spans[1:]):
        both = support(first | second)
        if both > best[2] and both > max(support(first), support(second)):
            best = (a, b, both)
    return best[0], best[1], round(best[2], 3) if best[2] else 0.0


def best_evidence(text: str, passages: Sequence[Any]) -> Evidence | None:
    """The sentence of any of ``passages`` holding most of ``text``'s content words (the lower passage
    number on a tie), or None when none holds any: what a withheld answer shows as the closest."""
    found = {n: find_evidence(text, p.text) for n, p in enumerate(passages, start=1)}
    return _best_evidence(text, list(passages), found)


def _best_evidence(sentence: str, passages: list[Hit], found: dict[int, tuple[int, int, float]]) -> Evidence | None:
    """The cited passage sentence with the most support (the lower passage number on a tie), or None."""
    scored = [(support, -n, n, start, end) for n, (start, end, support) in found.items() if support]
    if not scored:
        return None
    support, _, n, start, end = max(scored)
    return Evidence(sentence, n, passages[n - 1].text[start:end], start, end, support)


# A sentence that compares ("slower than Java", "more than 100 universities") rests on a passage sentence that
# compares too; sharing the things compared ("Python", "Java") is not enough.
_COMPARES = re.compile(r"\b(?:(more|less|fewer)\s+(?:\w+\s+){0,2}?|(?!rather\b|other\b)(\w{3,}er)\s+)than\b",
                       re.IGNORECASE)  # "slower than", "more times than"; not "rather than"


def _compared(sentence: str, quotes: Sequence[str]) -> bool:
    """False when ``sentence`` compares ("slower than", "more than 100") and none of ``quotes`` (the passage
    sentences backing it) does: none says "than", the same comparative, or uses <, >, ≤, ≥."""
    words = {(m.group(1) or m.group(2)).lower() for m in _COMPARES.finditer(sentence)}
    if not words:
        return True
    said = re.compile(r"\bthan\b|[<>≤≥]|\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
    return any(said.search(q) for q in quotes)


def _contradiction(sentence: str, passages: list[Hit], found: dict[int, tuple[int, int, float]]) -> tuple[str, str]:
    """``("contradicts [n]", quote)`` when the sentence of passage n that backs the sentence's words says the
    opposite (see :mod:`ragbook.polarity`); ``("", "")`` otherwise.  ``found``: :func:`find_evidence` per cited n.

    On 100 SQuAD 2.0 answers of the default model it flags 7 sentences, all in wrong answers (to
    questions the passages do not answer); on 42 OpenStax answers, 1 sentence of a correct answer
    ("0.1 is not stored exactly" against "Computers store information using 0's and 1's", no longer
    flagged since a negation of degree keeps its verb asserted): see benchmarks/trust.py.
    """
    from ragbook.polarity import conflicts, opposites, other_numbers, other_result

    for n, (start, end, support) in found.items():
        quote = passages[n - 1].text[start:end]
        if support >= _CONTRADICTION_SUPPORT and (conflicts(sentence, quote) or opposites(sentence, quote)
                                                  or other_numbers(sentence, quote)):
            return Flag.contradicts(n), quote
    for n in found:  # "math.floor(-7.4) → -7" where the passage's table says "math.floor(-7.4) → -8"
        stated = other_result(sentence, passages[n - 1].text)
        if stated is not None:
            return Flag.contradicts(n), passages[n - 1].text[stated[0]:stated[1]]
    return "", ""


CLOSEST = "The closest the documents come"  # how a withheld answer shows the passage sentence nearest to it (grounding)
# why an answer was withheld (ragbook.grounding.review), also read back for answers saved before the reason was kept
NOT_ANSWERING = "asked again, the model judged that the sentence it rests on does not answer the question"
REPEATS_EXAMPLE = "it repeats the template's worked example instead of answering"
COPIED_HINT = ("the model repeated the template's worked example instead of answering: it is too small to tell "
               "the example from the question; use a larger model, or a template without it (template.edit(example=None))")


@dataclass
class Answer:
    """What an assistant said, what it was shown, and how each claim is backed."""

    question: str
    text: str
    passages: list[Hit] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    checks: list[SentenceCheck] = field(default_factory=list)
    prompt: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    llm: str = ""  # the language model's name ("extractive" without one)
    mode: AnswerMode = "llm"
    raw_text: str = ""  # the model's own words, before ragbook added missing citations
    query: str = ""  # what was searched: the question, or its standalone rewrite in a chat
    dropped: list[Hit] = field(default_factory=list)  # passages that did not fit the context
    timings: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    # the text stops before the model finished: the server cut the stream, or max_answer_tokens ran out
    incomplete: bool = False
    incomplete_reason: str = ""
    grounding: Any = None  # quote-then-answer templates: the model's quote and how it was checked (ragbook.grounding)
    model_checks: int = 0  # how many sentences were put to the model as a verifier (ragbook.grounding)
    withheld: str = ""  # the model's answer when ragbook showed another (the passage's sentence, or "I don't know")
    withheld_reason: str = ""  # why it was withheld, in words (ragbook.grounding.review)
    unknown_terms: list[str] = field(default_factory=list)  # abstained: the question's terms no document uses

    @property
    def model(self) -> str:
        """The old name of :attr:`llm`."""
        import warnings

        warnings.warn("Answer.model is now Answer.llm (the old name goes in the next release)", DeprecationWarning,
                      stacklevel=2)
        return self.llm

    @property
    def abstained(self) -> bool:
        return self.mode == "abstained"

    @property
    def invalid_citations(self) -> list[int]:
        return [c.n for c in self.citations if not c.valid]

    @property
    def flagged(self) -> list[str]:
        """Sentences with a warning: unsupported, contradicted, citing a passage it was not given, or copied."""
        return [c.sentence for c in self.checks if Flag.is_warning(c.flag)]

    @property
    def unsupported(self) -> list[str]:
        """The old name of :attr:`flagged` (it always held more than unsupported sentences)."""
        return self.flagged

    @property
    def evidence(self) -> list[Evidence]:
        """For each cited sentence, the sentence of its passages that backs it best (a claim checked in a second).

        Sentences flagged "invalid citation" or "copied example", and those whose passages share
        no word with them, have none.
        """
        return [c.evidence for c in self.checks if c.evidence is not None]

    @property
    def ragbook_cited(self) -> list[str]:
        """Sentences whose citation ragbook added or corrected (the model's own text is ``raw_text``)."""
        return [c.sentence for c in self.checks if c.attributed]

    def _notes(self) -> list[tuple[str, bool]]:
        """What to tell the reader under the flags, each with whether it is a warning."""
        notes = [(f"incomplete: {self.incomplete_reason or 'the answer was cut off'}", True)] if self.incomplete else []
        if any(c.flag == Flag.COPIED_EXAMPLE for c in self.checks):
            notes.append((COPIED_HINT, True))
        g = self.grounding
        if self.withheld and (g is None or not g.fallback):
            why = self.withheld_reason or (NOT_ANSWERING if CLOSEST in self.text
                                           else REPEATS_EXAMPLE if not self.citations
                                           else "it says the opposite of its passage")
            notes.append((f"ragbook withheld the model's answer \u201c{shorten(self.withheld, 160)}\u201d: {why}", True))
        if g is not None and g.fallback:
            notes.append((f"the model answered \u201c{shorten(g.answer, 120)}\u201d, but {g.reason}: the passage's "
                          "sentence is shown instead", True))
        elif g is not None and g.reason == "quote not in the passages":
            notes.append((f"the model's quote \u201c{shorten(g.model_quote, 120)}\u201d is not in the passages: "
                          "check the answer against them", True))
        if n := len(self.ragbook_cited):
            notes.append((f"ragbook cited {n} sentence{'s' * (n != 1)} the model left uncited or cited wrongly; "
                          "its own words are in answer.raw_text", False))
        return notes

    @property
    def ok(self) -> bool:
        """True when every citation names a given passage and no sentence is unsupported."""
        return not self.invalid_citations and not self.flagged

    def __str__(self) -> str:
        lines = [self.text, ""]
        lines += [c.reference() for c in self.citations]
        for check in self.checks:
            if check.flag:
                lines.append(f"! {check.flag}: {shorten(check.sentence, 90)}")
            if check.quote:
                lines.append(f"  the passage says: \u201c{shorten(check.quote, 200)}\u201d")
        lines += [f"! {note}" if warning else f"({note})" for note, warning in self._notes()]
        return "\n".join(lines).rstrip()

    def __repr__(self) -> str:
        ms = self.timings.get("total", 0.0) * 1000
        return (f"Answer(text={shorten(self.text, 60)!r}, citations={[c.n for c in self.citations]}, "
                f"passages={len(self.passages)}, mode={self.mode!r}, llm={self.llm!r}, ms={ms:.0f}"
                + (", incomplete=True)" if self.incomplete else ")"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question, "query": self.query, "text": self.text, "mode": self.mode, "llm": self.llm,
            "citations": [{"n": c.n, "valid": c.valid, "source": c.source, "page": c.page} for c in self.citations],
            "passages": [h.to_dict() for h in self.passages],
            "checks": [{"sentence": c.sentence, "cites": c.cites, "support": c.support, "flag": c.flag, "quote": c.quote,
                        "verified": c.verified} for c in self.checks],
            "evidence": [e.to_dict() for e in self.evidence],
            "prompt": self.prompt, "timings": self.timings, "tokens": self.tokens,
            "incomplete": self.incomplete, "incomplete_reason": self.incomplete_reason,
            "grounding": self.grounding.to_dict() if self.grounding is not None else None,
            "model_checks": self.model_checks, "withheld": self.withheld, "withheld_reason": self.withheld_reason,
            "unknown_terms": self.unknown_terms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        """The answer :meth:`to_dict` describes (as ``ragbook serve`` sends it), citations and checks resolved
        to its passages again; ``grounding`` (a quote-then-answer template's record) is not rebuilt."""
        passages = [Hit.from_dict(p) for p in data.get("passages") or []]
        evidence = {(e.get("n"), e.get("sentence")): Evidence(str(e.get("sentence", "")), int(e.get("n", 0)),
                                                             str(e.get("quote", "")), int(e.get("start", 0)),
                                                             int(e.get("end", 0)), float(e.get("support", 0.0)))
                    for e in data.get("evidence") or []}
        citations = [Citation(int(c["n"]), passages[int(c["n"]) - 1] if 1 <= int(c["n"]) <= len(passages) else None)
                     for c in data.get("citations") or []]
        checks = []
        for c in data.get("checks") or []:
            cites = [int(n) for n in c.get("cites") or []]
            found = next((evidence[(n, c.get("sentence"))] for n in cites if (n, c.get("sentence")) in evidence), None)
            checks.append(SentenceCheck(str(c.get("sentence", "")), cites, float(c.get("support") or 0.0),
                                        str(c.get("flag") or ""), quote=str(c.get("quote") or ""), evidence=found,
                                        verified=c.get("verified")))
        mode: AnswerMode = data["mode"] if data.get("mode") in ("llm", "extractive", "abstained") else "llm"
        return cls(question=str(data.get("question", "")), text=str(data.get("text", "")), passages=passages,
                   citations=citations, checks=checks, prompt=str(data.get("prompt") or ""), llm=str(data.get("llm", "")),
                   mode=mode, query=str(data.get("query") or ""), timings=dict(data.get("timings") or {}),
                   tokens=dict(data.get("tokens") or {}), incomplete=bool(data.get("incomplete")),
                   incomplete_reason=str(data.get("incomplete_reason") or ""), model_checks=int(data.get("model_checks") or 0),
                   withheld=str(data.get("withheld") or ""), withheld_reason=str(data.get("withheld_reason") or ""),
                   unknown_terms=list(data.get("unknown_terms") or []))

    def _repr_html_(self) -> str:
        evidence = self.evidence
        quotes = {(e.n, e.sentence): e.quote for e in evidence}
        spans = [(s.start(), s.end(), s.group().strip()) for s in _SENTENCE.finditer(self.text)]

        def marker(m: re.Match[str]) -> str:
            nums = _numbers(m.group(1))
            sentence = next((said for start, end, said in spans if start <= m.start() < end), "")
            tips = []
            for n in nums:
                hit = self.passages[n - 1] if 1 <= n <= len(self.passages) else None
                said = quotes.get((n, sentence))
                shown = f"\u201c{shorten(said, 300)}\u201d" if said else shorten(hit.text, 300) if hit else ""
                tips.append(f"[{n}] {hit.citation()}: {shown}" if hit else f"[{n}] no such passage")
            bad = any(not (1 <= n <= len(self.passages)) for n in nums)
            style = "color:#b00020" if bad else "color:#1a5fb4"
            return (f"<sup><abbr style='{style};text-decoration:none' title='{html_escape(' | '.join(tips))}'>"
                    f"{html_escape(m.group(0))}</abbr></sup>")

        body, pos = [], 0
        for m in _MARK.finditer(self.text):
            body.append(html_escape(self.text[pos:m.start()]))
            body.append(marker(m))
            pos = m.end()
        body.append(html_escape(self.text[pos:]))
        flags = "".join(f"<li>{html_escape(c.flag)}: {html_escape(shorten(c.sentence, 120))}"
                        + (f"<br><small>the passage says: <q>{html_escape(shorten(c.quote, 300))}</q></small>"
                           if c.quote else "") + "</li>"
                        for c in self.checks if c.flag)
        for note, warning in self._notes():
            style = "" if warning else " style='color:#555'"
            flags += f"<li{style}>{html_escape(note)}</li>"
        sources = "".join(
            f"<details><summary>[{n}] {html_escape(h.citation())}</summary>"
            f"<blockquote style='white-space:pre-wrap'>{_marked(h.text, [e for e in evidence if e.n == n])}"
            f"</blockquote></details>"
            for n, h in enumerate(self.passages, start=1)
        )
        timing = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.timings.items())
        return (f"<div class='ragbook-answer'><div style='white-space:pre-wrap'>{''.join(body)}</div>"
                + (f"<ul style='color:#b00020'>{flags}</ul>" if flags else "")
                + f"<div><small>{html_escape(' · '.join(dict.fromkeys([self.llm, self.mode, timing])))}</small></div>"
                + sources + "</div>")


def _marked(text: str, evidence: list[Evidence]) -> str:
    """A passage's text, escaped, with the sentences quoted as evidence highlighted."""
    spans = sorted({(e.start, e.end) for e in evidence})
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue
        out += [html_escape(text[pos:start]), f"<mark>{html_escape(text[start:end])}</mark>"]
        pos = end
    out.append(html_escape(text[pos:]))
    return "".join(out)
