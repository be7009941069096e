"""Whether an answer's sentence says the opposite of the passage sentence it rests on.

Counting shared words (what backs a sentence in :mod:`ragbook.answer`) is blind to negation:
"a slice includes the character at index 5" shares every word with "the slice goes up to but
not including index 5".  Here each content word of a text is *asserted* or *negated*: negated
when it follows a negation cue ("not", "never", "cannot", "n't", "without", ...) within the same
clause and at most :data:`SCOPE` words after it, unless the negation is about degree ("not
stored exactly", "not always sorted": stored and sorted stay asserted).  Two texts conflict when a
word one asserts the other negates (and neither says it both ways).  A leading "Yes"/"No" is the answer to the
question, not part of the claim, and is set aside.

What a sentence supposes is not what it asserts.  Words in a condition ("if the substring does not
exist, -1 is returned") are compared only with words in a condition, so "index() assumes the
substring exists" does not contradict it, while "if the substring exists, -1 is returned" does.  A
sentence that opens with an action as its subject ("Explicitly defining a subclass's __init__()
involves defining instance attributes") describes a way of doing things without saying it is
done: its subject and its other -ing words are neither asserted nor negated.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["polarity_terms", "conflicts", "opposites", "other_numbers", "other_result", "SCOPE", "CITATION_MARK"]

SCOPE = 2  # words after a cue that it negates: "not including index", "cannot be changed" (the verb, not its object)
_CUES = frozenset({"not", "no", "never", "cannot", "without", "neither", "nor", "excluding", "except", "none",
                   "nothing", "nobody", "nowhere"})
_CLAUSES = re.compile(r"[,;:.!?()\[\]\n]|\bbut\b|\bwhile\b|\bwhereas\b|\bhowever\b")
# A condition runs from one of these to the end of its clause, or to a "then": "if the key does not exist", "-1 is
# returned when the substring does not exist", "if P != NP then there are problems neither in P nor NP-complete".
_CONDITIONS = frozenset({"if", "unless", "whether", "when", "whenever", "assuming", "supposing"})
CONDITION = "if:"  # how polarity_terms marks the stem of a word inside a condition
# A sentence whose subject is an action: an -ing word first, after at most a few adverbs ("Explicitly defining X
# involves Y"); its words up to the verb that follows are named, not asserted.
_GERUND_SUBJECT = re.compile(r"^\s*(?:[a-z]+ly\s+){0,2}(?!during\b|string\b|\w*thing\b)[a-z]+ing\s+"
                             r"(?:a|an|the|its|their|your|each|every|all|this|that|these|those)\b[^,;:.!?]*?\s(?=(?:involves|involve|requires|"
                             r"require|means|mean|is|are|was|were|can|may|must|should|helps|help|lets|let|makes|"
                             r"make|takes|take|uses|use|needs|need|allows|allow)\b)")
_WORD = re.compile(r"[a-z0-9_]+(?:'t)?")
_ANSWER_WORD = re.compile(r"^\s*(?:yes|no)\b[\s,.:;!-]*", re.IGNORECASE)
# a citation marker: [1], [2, 3], [1-3], [4 and 5], [1][2] (ragbook.answer reads the numbers from its group); right
# after a name, a closing parenthesis or a backtick it is code, not a citation: "word[0] = 'J'", "f(x)[1]", "`x`[1]"
CITATION_MARK = re.compile(r"(?<![\w)`])\[(\d+(?:\s*(?:,|;|-|–|and)\s*\d+)*)\]")
_MARK = CITATION_MARK


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    terms = _analyzer()(word)
    return terms[0] if terms else ""


@lru_cache(maxsize=1)
def _analyzer():
    from ragbook.lexical import Analyzer

    return Analyzer()


# A negation that reaches one of these is about how much, not whether: "not stored exactly" is stored, and "not
# always sorted", "not only lists" deny the degree, not the verb or its object.
_DEGREE_AFTER = frozenset({"exactly", "precisely", "always", "entirely", "completely", "fully", "necessarily"})
_DEGREE_FIRST = frozenset({"always", "only", "just", "necessarily", "entirely", "completely", "fully", "all"})
# An auxiliary right before a cue only carries the negated verb: "have not had a return statement" asserts no "have"
# (so "it does not have a return statement" agrees with it), nor does "must not be disproportionate" deny a "must".
_AUXILIARIES = frozenset({"am", "are", "is", "was", "were", "be", "been", "do", "does", "did", "have", "has", "had",
                          "can", "could", "will", "would", "shall", "should", "may", "might", "must"})


def _named(sentence: str) -> str:
    """``sentence`` without the actions it only names: with an action as its subject ("Explicitly defining X
    involves defining Y") it describes a way of doing things, so its subject and its other -ing words go."""
    subject = _GERUND_SUBJECT.match(sentence)
    return re.sub(r"\b[a-z]+ing\b", " ", sentence[subject.end():]) if subject else sentence


def polarity_terms(text: str) -> tuple[set[str], set[str]]:
    """``(asserted, negated)``: the stems of ``text``'s content words, by whether a negation governs them.

    A word inside a condition is marked (``"if:exist"``): it is compared only with words in conditions.
    A sentence that opens with an action ("Explicitly defining ... involves defining ...") loses its -ing words."""
    text = _MARK.sub(" ", _ANSWER_WORD.sub("", text)).lower().replace("\u2019", "'")
    text = " ".join(_named(sentence) for sentence in re.split(r"(?<=[.!?])\s+", text))
    asserted: set[str] = set()
    negated: set[str] = set()
    pieces = re.split(f"({_CLAUSES.pattern})", text)
    for clause, end in zip(pieces[::2], [*pieces[1::2], ""]):
        left = 0  # words still under the last cue
        scoped: list[str] = []  # the stems the last cue negated so far
        mark = ""  # CONDITION from a word such as "if" to the clause's end
        words = _WORD.findall(clause)
        # "If the list is empty the loop runs.": a condition that opens a sentence's last clause, with no comma or
        # "then" after it, ends nobody knows where, so its words are read as said
        unclear = bool(words) and words[0] in _CONDITIONS and end.strip() in (".", "!", "?", "") and "then" not in words
        before = ""  # the stem of the auxiliary just read, when this clause was first to assert it
        for word in words:
            if not unclear and (word in _CONDITIONS or word == "then" and mark):  # "if P != NP then": it ends
                mark, left, scoped, before = CONDITION if word != "then" else "", 0, [], ""
                continue
            if word in _CUES or word.endswith("n't"):  # "doesn't include": the verb follows the cue
                asserted.discard(before)  # "have not had": the auxiliary says neither
                left, scoped, before = SCOPE, [], ""
                continue
            if left and (word in _DEGREE_AFTER and scoped or word in _DEGREE_FIRST and not scoped):
                for stem in scoped:  # "not stored exactly": the negation was about "exactly"
                    negated.discard(stem)
                    asserted.add(stem)
                left, scoped = 0, []
                continue
            stem = _stem(word)
            before = ""
            if stem:
                stem = mark + stem
                if word in _AUXILIARIES and not left and stem not in asserted:
                    before = stem
                (negated if left else asserted).add(stem)
                if left:
                    scoped.append(stem)
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


# Words that say the opposite of each other in the same frame ("the least onerous" / "the most onerous").
# Stems as the lexical Analyzer makes them are compared, so each pair is listed once in plain words.
_OPPOSITE_PAIRS = """
include exclude, inclusive exclusive, mutable immutable, before after, first last, earliest latest, increase decrease,
more less, more fewer, most least, higher lower, highest lowest, high low, larger smaller, largest smallest,
large small, greater less, greater smaller, maximum minimum, max min, true false, local global, public private,
inside outside, inner outer, internal external, import export, upper lower, left right, open close, start end,
begin end, north south, east west, eastern western, northern southern, rise fall, gain lose, win lose, accept reject,
allow forbid, allow prevent, permit forbid, grant deny, granted denied, appreciate depreciate, strong weak,
common rare, often rarely, always never, many few, hidden exposed, hide expose, keep overwrite, kept overwritten,
keep delete, add remove, append remove, success failure, succeed fail, successful failed, valid invalid,
same different, similar different, positive negative, legal illegal, possible impossible, ascending descending,
sorted unsorted, synchronous asynchronous, static dynamic, explicit implicit, optional required, optional mandatory,
lowercase uppercase, odd even, old new, older newer, oldest newest, young old, long short, longer shorter,
faster slower, fast slow, early late, earlier later, input output, read write, above below, over under,
horizontal vertical, row column, encode decode, encrypt decrypt, compile interpret, ancient modern, war peace,
victory defeat, win defeat, birth death, born died, arrive depart, enter leave, present absent, heavy light,
majority minority, send receive, sender receiver, source destination, upload download, online offline, buy sell,
buyer seller, rich poor, urban rural, male female, hot cold, wet dry, top bottom, push pull, cheap expensive,
safe dangerous, easy difficult, empty full, ally enemy, friend enemy, domestic foreign, winner loser, profit loss,
credit debit, increase reduce, permanent temporary, asleep awake, dead alive
"""
_PREFIXES = ("un", "in", "im", "il", "ir", "non", "dis", "non-")


@lru_cache(maxsize=1)
def _opposites() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for pair in _OPPOSITE_PAIRS.replace("\n", " ").split(","):
        words = pair.split()
        if len(words) != 2:
            continue
        a, b = (_stem(w) for w in words)
        if a and b and a != b:
            table.setdefault(a, set()).add(b)
            table.setdefault(b, set()).add(a)
    return {k: frozenset(v) for k, v in table.items()}


def opposites(claim: str, passage_sentence: str) -> set[str]:
    """Words of ``claim`` whose opposite ``passage_sentence`` uses instead ("most" where it says "least",
    "inconsistent" where it says "consistent"); a sentence that uses both words of a pair is no evidence."""
    said = _words(claim)
    says = _words(passage_sentence)
    said_stems, says_stems = {_stem(w) for w in said} - {""}, {_stem(w) for w in says} - {""}
    table = _opposites()
    found = {s for s in said_stems - says_stems if table.get(s, frozenset()) & (says_stems - said_stems)}
    for a, b in ((said, says), (says, said)):  # a prefix that negates: "consistent" / "inconsistent"
        for word in a - b:
            for prefix in _PREFIXES:
                if word.startswith(prefix) and len(word) > len(prefix) + 3 and word[len(prefix):] in b - a:
                    found.add(word)
    return found


_NUMBER_TOKEN = re.compile(r"\d+(?:[.,]\d+)*%?|[a-z]+")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_MONTHS = frozenset("january february march april may june july august september october november december".split())
# Words after a number that name no unit: "7 // 4 evaluates to 1", "3 is", "2 and 3".
_NOT_UNITS = frozenset("is are was were be to and or of in on at by for from with as than the a an it that this "
                       "gives give returns return evaluates results equals means".split())


def _words(text: str) -> set[str]:
    return set(_WORD.findall(_MARK.sub(" ", _ANSWER_WORD.sub("", text)).lower().replace("\u2019", "'")))


def _counted(text: str) -> tuple[dict[str, set[str]], set[str], set[str]]:
    """``({unit: numbers}, years, all numbers)``: "256 characters", "40%", "October 6", "in 1985"."""
    tokens = _NUMBER_TOKEN.findall(_MARK.sub(" ", text).lower().replace(",", ""))
    units: dict[str, set[str]] = {}
    years: set[str] = set()
    numbers: set[str] = set()
    for i, token in enumerate(tokens):
        number = _NUMBER_WORDS.get(token, token)
        if not number[0].isdigit():
            continue
        value = number.rstrip("%")
        value = value[:-2] if value.endswith(".0") else value
        numbers.add(value)
        if number.endswith("%"):
            units.setdefault("%", set()).add(value)
        elif len(value) == 4 and value.isdigit() and 1000 <= int(value) <= 2100:
            years.add(value)
        if i + 1 < len(tokens) and tokens[i + 1].isalpha() and tokens[i + 1] not in _NOT_UNITS:
            units.setdefault(_stem(tokens[i + 1]) or tokens[i + 1], set()).add(value)
        if i and tokens[i - 1] in _MONTHS:
            units.setdefault(tokens[i - 1], set()).add(value)
    return units, years, numbers


def other_numbers(claim: str, passage_sentence: str) -> set[str]:
    """Numbers of ``claim`` where ``passage_sentence`` gives another for the same thing: another count of
    the same unit ("five museums" / "three museums", "40%" / "60%"), day of the same month, or year."""
    said_units, said_years, _ = _counted(claim)
    says_units, says_years, says_numbers = _counted(passage_sentence)
    found = {n for unit, ns in said_units.items() for n in ns
             if n not in says_numbers and says_units.get(unit, set()) - ns}
    if said_years - says_numbers and says_years - said_years:
        found |= said_years - says_numbers
    return found


# "math.floor(-7.4) → -8", "int(5.9) produces 5", "7 // 4 evaluates to 1": an expression and the value it gives
_EXPRESSION = r"(?:[A-Za-z_][\w.]*\([^()\n]*\)|-?[\w.]+(?:\s*(?:\*\*|//|[-+*/%])\s*-?[\w.]+)+)"
_RESULT = re.compile(r"`?(" + _EXPRESSION + r")`?\s*(?:→|->|=>|==|returns|gives|evaluates to|produces|is|=)\s*`?"
                     r"(-?\d+(?:\.\d+)?|True|False|None)(?!\.?\d|\w)`?")


def _results(text: str) -> dict[str, list[tuple[str, int, int]]]:
    """Each expression's stated values, with where the statement is: ``{"math.floor(-7.4)": [("-8", start, end)]}``."""
    found: dict[str, list[tuple[str, int, int]]] = {}
    for m in _RESULT.finditer(text):
        found.setdefault(re.sub(r"\s+", "", m.group(1)), []).append((m.group(2), m.start(), m.end()))
    return found


def _same_value(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def other_result(claim: str, passage: str) -> tuple[int, int] | None:
    """Where ``passage`` gives another value for an expression whose value ``claim`` states: the claim
    "math.floor(-7.4) → -7" against a passage's "math.floor(-7.4) → -8".  A value the model computed for an
    expression the passage does not show is not judged here (the passage has nothing to say about it)."""
    says = _results(passage)
    for expression, values in _results(claim).items():
        stated = says.get(expression, [])
        if stated and not any(_same_value(v, s) for v, _, _ in values for s, _, _ in stated):
            return stated[0][1], stated[0][2]
    return None
