"""Words of a question that no document uses: checked before any model runs.

Asked about "tkinter" or "JSON", a Python textbook that never mentions either still returns its
nearest passages (on windows, on files), and a small model answers from them, citing one,
wrongly.  When a question names a specific term (a word the embedding model's tokenizer splits
into pieces: rare in general text, so a name or a technical term, not "straight" or "nobody")
and no document uses that term, nor a word a typo or a prefix away ("Colab" for
"Colaboratory"), the documents cannot answer it: the assistant says so and names the term.

A term can also be incidental: "In VSCode, how do I delete an entry from a dictionary?" names
an editor the documents never mention, yet they answer it.  So the question is searched again
without its unknown terms, and they count only when what is left finds no passage that answers
it well (relevance under ``ANSWERED``) and no clearly better one than the whole question did
(a gain under ``GAIN``): dropping an incidental name leaves a question the documents answer.

Words inside quotes or backticks (an error message, a string the student typed), a pasted error
line ("TypeError: can only concatenate str (not "int") to str") and
identifiers with digits or underscores (``total_cost``, ``x2``) are the question's own and are
not looked for; nor is the way students type ("python wont care right?", "whats", "dunno"):
contractions without their apostrophe and chat words are rare to a tokenizer but name nothing.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

__all__ = ["unknown_terms", "rare_by_tokenizer", "without", "incidental", "ANSWERED", "GAIN"]

# Between the relevance of answerable questions and that of questions about a term the documents
# lack, asked without it (figures: benchmarks/README.md, "Why the defaults").
ANSWERED = 0.5
GAIN = 0.07

_QUOTED = re.compile(r"`[^`]*`|\"[^\"]*\"|\u201c[^\u201d]*\u201d|(?<!\w)'[^']*'(?!\w)|\u2018[^\u2019]*\u2019"
                     r"|\b[A-Z]\w*(?:Error|Exception|Warning|Interrupt|Exit):[^\n]*")  # a pasted error message, to its line's end
_RAW = re.compile(r"\S+")
_WORD = re.compile(r"[^\W\d_]{4,}")
# How students type, not what they ask about: contractions without their apostrophe ("dont", "whatre",
# "wouldve"), and chat words.
_AUX_NT = frozenset("ai are ca could did do does had has have is might must need sha should was were wo would".split())
_CONTRACTED = frozenset("i you we they he she it that what who where how why when there here this these those "
                        "could would should might must".split())
_CHAT = frozenset("dunno gimme lemme kinda sorta outta wanna gotta gonna yknow thanx thnx tysm smth idek bcuz thru "
                  "coulda woulda shoulda".split())


def _informal(word: str) -> bool:
    """A contraction typed without its apostrophe ("wont", "whats", "weve") or a chat word ("dunno")."""
    w = word.lower()
    if w in _CHAT or w.endswith("nt") and w[:-2] in _AUX_NT:
        return True
    return any(w.endswith(end) and w[:-len(end)] in _CONTRACTED for end in ("re", "ve", "ll", "d", "s"))


def _candidates(question: str) -> list[str]:
    words: dict[str, None] = {}
    for raw in _RAW.findall(_QUOTED.sub(" ", question)):
        if any(c.isdigit() or c == "_" for c in raw):
            continue  # the student's own identifier or value
        for word in _WORD.findall(raw):
            if not _informal(word):
                words.setdefault(word)
    return list(words)


def _near(a: str, b: str, limit: int) -> bool:
    """Levenshtein distance of ``a`` and ``b`` is at most ``limit`` (a banded check, stopping early)."""
    if abs(len(a) - len(b)) > limit:
        return False
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
        if min(current) > limit:
            return False
        previous = current
    return previous[-1] <= limit


def _used(term: str, vocabulary: Iterable[str]) -> bool:
    """A document uses ``term``, or a word a typo away from it (one edit; two from 8 letters), or one it begins."""
    limit = 2 if len(term) >= 8 else 1 if len(term) >= 5 else 0
    for known in vocabulary:
        if len(term) >= 4 and known.startswith(term):
            return True
        if limit and (known[:1] == term[:1] or known[1:2] == term[1:2]) and _near(term, known, limit):
            return True
    return False


def unknown_terms(question: str, bm25: Any, rare: Callable[[str], bool] | None) -> list[str]:
    """The question's specific words (as typed) that no document uses; ``[]`` when every one is used.

    ``bm25``: the index's :class:`ragbook.lexical.BM25` (its analyzer and postings say which terms
    occur in some chunk); ``rare(word)``: true for a word rare in general text.  Without ``rare``
    every unused word would count, everyday words included, so nothing is reported.
    """
    if rare is None or len(bm25) == 0:
        return []
    vocab, indptr = bm25.vocab, bm25.indptr

    def occurs(term: str) -> bool:
        tid = vocab.get(term)
        return tid is not None and indptr[tid + 1] > indptr[tid]

    missing: list[str] = []
    used: list[str] = []
    for word in _candidates(question):
        terms = bm25.analyzer(word)
        if not terms or any(occurs(t) for t in terms) or not rare(word):
            continue
        used = used or [t for t, tid in vocab.items() if indptr[tid + 1] > indptr[tid]]
        # a misspelt word escapes the stemmer ("strngs" stays whole): its plural "s" is tried off too
        if not any(_used(form, used) for t in terms for form in {t, t[:-1] if t.endswith("s") else t}):
            missing.append(word)
    return missing


def without(question: str, terms: list[str]) -> str:
    """The question with the given words taken out."""
    for term in terms:
        question = re.sub(rf"(?<!\w){re.escape(term)}(?!\w)", " ", question)
    return " ".join(question.split())


def incidental(best: float | None, best_without: float | None) -> bool:
    """Unknown terms are incidental when the question without them finds a passage that answers it well."""
    if best_without is None:
        return False
    return best_without >= ANSWERED or (best is not None and best_without - best >= GAIN)


def rare_by_tokenizer(tokenizer: Any) -> Callable[[str], bool]:
    """``rare(word)`` from a subword tokenizer (``tokenizers.Tokenizer``): a word it keeps whole is common text.

    WordPiece, byte-level BPE and SentencePiece vocabularies all hold the common words of their
    training text as single pieces; a word split into several is rare there (a name, a
    technical term, a typo).  Both spellings with and without a leading space are tried, since
    byte-level BPE keeps the space inside the piece.
    """
    def rare(word: str) -> bool:
        for form in (word.lower(), " " + word.lower()):
            if len(tokenizer.encode(form, add_special_tokens=False).ids) <= 1:
                return False
        return True

    return rare
