"""Whether an answer's sentence says the opposite of the passage sentence it rests on.

Counting shared words (what backs a sentence in :mod:`ragbook.answer`) is blind to negation:
"a slice includes the character at index 5" shares every word with "the slice goes up to but
not including index 5".  Here each content word of a text is *asserted* or *negated*: negated
when it follows a negation cue ("not", "never", "cannot", "n't", "without", ...) within the same
clause and at most :data:`SCOPE` words after it.  Two texts conflict when a word one asserts
the other negates (and neither says it both ways).  A leading "Yes"/"No" is the answer to the
question, not part of the claim, and is set aside.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["polarity_terms", "conflicts", "SCOPE"]

SCOPE = 4  # words after a cue that it negates: "not including index 5", "cannot be changed later"
_CUES = frozenset({"not", "no", "never", "cannot", "without", "neither", "nor", "excluding", "except", "none",
                   "nothing", "nobody", "nowhere"})
_CLAUSES = re.compile(r"[,;:.!?()\[\]\n]|\bbut\b|\bwhile\b|\bwhereas\b|\bhowever\b")
_WORD = re.compile(r"[a-z0-9_]+(?:'t)?")
_ANSWER_WORD = re.compile(r"^\s*(?:yes|no)\b[\s,.:;!-]*", re.IGNORECASE)
_MARK = re.compile(r"\[\d+(?:\s*(?:,|;|-|–|and)\s*\d+)*\]")


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    terms = _analyzer()(word)
    return terms[0] if terms else ""


@lru_cache(maxsize=1)
def _analyzer():
    from ragbook.lexical import Analyzer

    return Analyzer()


def polarity_terms(text: str) -> tuple[set[str], set[str]]:
    """``(asserted, negated)``: the stems of ``text``'s content words, by whether a negation governs them."""
    text = _MARK.sub(" ", _ANSWER_WORD.sub("", text)).lower().replace("\u2019", "'")
    asserted: set[str] = set()
    negated: set[str] = set()
    for clause in _CLAUSES.split(text):
        left = 0  # words still under the last cue
        for word in _WORD.findall(clause):
            if word in _CUES or word.endswith("n't"):  # "doesn't include": the verb follows the cue
                left = SCOPE
                continue
            stem = _stem(word)
            if stem:
                (negated if left else asserted).add(stem)
            if left:
                left -= 1
    return asserted, negated


def conflicts(claim: str, passage_sentence: str) -> set[str]:
    """The words ``claim`` asserts that ``passage_sentence`` negates, or the other way round."""
    said, said_not = polarity_terms(claim)
    says, says_not = polarity_terms(passage_sentence)
    one_way = (said - said_not) & (says_not - says)
    other_way = (said_not - said) & (says - says_not)
    return one_way | other_way
