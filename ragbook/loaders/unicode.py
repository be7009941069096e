"""Unicode normalisation, so that what people type matches what the file holds.

A PDF may hold the ligature "ﬁ" where a user types "fi", a Japanese page full-width
"ＡＢＣ１２３", an Arabic one presentation forms, a Mac file "é" as ``e`` plus a combining
accent.  :func:`normalize` folds those, and only those:

* NFKC on the blocks whose compatibility forms are pure presentation: alphabetic
  presentation forms (Latin, Armenian and Hebrew ligatures, U+FB00-FB4F), Arabic presentation
  forms (U+FB50-FDFF, U+FE70-FEFF), full-width and half-width forms (U+FF00-FFEF; half-width
  katakana become ordinary katakana, with their voicing marks joined);
* compatibility spaces (no-break, en, em, thin, ideographic...) become a plain space;
* soft hyphens and zero-width characters (U+00AD, U+200B-200D, U+2060, U+FEFF) go;
* NFC everywhere (``e`` + U+0301 -> ``é``).

Superscripts, subscripts, fractions, ™, circled numbers and mathematical letters keep their
form: NFKC would turn "x²" into "x2" and "ℝ" into "R", which changes what the text says.

Loaders compute segments before normalisation, so :func:`normalize_document` rewrites a
document's text and moves every segment's offsets to match.  Pure ASCII costs one check; other
text is changed piece by piece, only where a rule applies.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

from ragbook.documents import Document, Segment

__all__ = ["normalize", "normalize_document"]

_COMPAT_RANGES = ((0xFB00, 0xFB4F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF), (0xFF00, 0xFFEF))
_SPACES = "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_REMOVED = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
# Where decompositions and combining marks can be: planes 0-2 less the ideograph, Hangul
# syllable, surrogate and private-use blocks, which hold none (skipping them halves the setup).
_MARK_RANGES = ((0x80, 0x33FF), (0xA000, 0xABFF), (0xD7B0, 0xD7FF), (0xF900, 0x1FFFF), (0x2F800, 0x2FA1F))
_HANGUL_VOWELS_AND_TAILS = ((0x1161, 0x1175), (0x11A8, 0x11C2))


class _Tables(NamedTuple):
    compat: dict[int, str]  # str.translate table: compatibility folding, spaces, removals
    compat_run: re.Pattern[str]  # a run of characters the table changes
    joining: frozenset[str]  # characters that, folded and NFC-ed, may join the one before


def normalize(text: str) -> str:
    """``text`` with presentation forms folded, odd spaces plain, invisible characters gone, NFC."""
    if _settled(text):
        return text
    # folding first, so that NFC joins what it yields (half-width katakana and their voicing
    # marks) with its neighbours; runs are translated, not the whole text (5x faster when sparse)
    tables = _tables()
    folded = tables.compat_run.sub(lambda m: m.group().translate(tables.compat), text)
    return unicodedata.normalize("NFC", folded)


def _settled(text: str) -> bool:
    """Whether :func:`normalize` leaves ``text`` as it is (one C-speed pass or two)."""
    return text.isascii() or (unicodedata.is_normalized("NFC", text) and not _tables().compat_run.search(text))


def normalize_document(doc: Document) -> None:
    """Normalise ``doc.text`` and its title in place, moving segments so they cover the same content.

    The text is normalised in pieces cut at every segment boundary (moved, where it falls
    between a character and a mark that joins it, to either side of the sequence): pieces
    normalise independently, so their new lengths give the new offsets.
    """
    doc.title = normalize(doc.title)
    text = doc.text
    if _settled(text):
        return
    joining = _tables().joining
    cuts = {0, len(text)}
    spans: dict[int, tuple[int, int]] = {}  # offset -> the stable cuts around it
    for pos in {p for seg in doc.segments for p in (seg.start, seg.end)}:
        lo = hi = min(max(pos, 0), len(text))
        while 0 < lo < len(text) and text[lo] in joining:
            lo -= 1
        while hi < len(text) and text[hi] in joining:
            hi += 1
        cuts.update((lo, hi))
        spans[pos] = (lo, hi)
    parts: list[str] = []
    new_offset: dict[int, int] = {}
    length = 0
    for a, b in pairwise(sorted(cuts)):
        new_offset[a] = length
        parts.append(normalize(text[a:b]))
        length += len(parts[-1])
    new_offset[len(text)] = length

    def moved(pos: int, end: bool) -> int:
        lo, hi = spans[pos]
        if lo == hi:
            return new_offset[lo]
        if new_offset[hi] - new_offset[lo] == hi - lo:  # same length: offsets inside still hold
            return new_offset[lo] + pos - lo
        return new_offset[hi] if end else new_offset[lo]  # never lose content

    segments = []
    for seg in doc.segments:
        start, end = moved(seg.start, end=False), moved(seg.end, end=True)
        if end > start:  # a span of zero-width characters only is gone
            segments.append(replace(seg, start=start, end=end))
    doc.text = "".join(parts)
    if not segments and doc.text:
        segments = [Segment(0, len(doc.text))]
    doc.segments = segments


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    """Built once, on the first non-ASCII text (0.1-0.2 s), from this Python's Unicode data."""
    compat: dict[int, str] = {}
    for lo, hi in _COMPAT_RANGES:
        for cp in range(lo, hi + 1):
            folded = unicodedata.normalize("NFKC", chr(cp))
            if folded != chr(cp):
                compat[cp] = folded
    compat.update({ord(c): " " for c in _SPACES})
    compat.update({ord(c): "" for c in _REMOVED})

    combining: set[str] = {chr(cp) for lo, hi in _HANGUL_VOWELS_AND_TAILS for cp in range(lo, hi + 1)}
    for cp in (cp for lo, hi in _MARK_RANGES for cp in range(lo, hi + 1)):
        c = chr(cp)
        if unicodedata.combining(c):
            combining.add(c)
        decomposition = unicodedata.decomposition(c)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                combining.add(chr(int(parts[1], 16)))  # the second of a pair NFC composes
    # what folds to a mark (the half-width voicing marks) joins too, and so does what is
    # removed: "e", ZWSP, U+0301 becomes "é"
    joining = combining | {chr(cp) for cp, out in compat.items() if not out or out[0] in combining}
    return _Tables(
        compat=compat,
        compat_run=re.compile(f"[{_char_class(chr(cp) for cp in compat)}]+"),
        joining=frozenset(joining),
    )


def _char_class(chars: Iterable[str]) -> str:
    """A regex character class body (ranges) for a set of characters."""
    cps = sorted({ord(c) for c in chars})
    out: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = cps[i], cps[j]
        out.append(_escape(lo) if lo == hi else f"{_escape(lo)}-{_escape(hi)}")
        i = j + 1
    return "".join(out)


def _escape(cp: int) -> str:
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"

