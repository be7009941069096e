"""Filters: which passages a search may return, and the checks that make a bad filter an error.

A filter is a dict from a key to what is wanted: a chunk's place (``source``, ``title``,
``section``, ``page``, ``cell``, ``slide``), ``format``, any document-metadata key the index
holds (``authors``, ``date``...), or ``where`` (a function of the chunk).  A value is a glob or
value, a ``(low, high)`` range, a list of those ("any of"), ``{"not": one of those}``, or a
function.  A filter that can never match, or a threshold that compares false with everything
(NaN), used to return nothing without a word: they are refused with what would be valid.
"""

from __future__ import annotations

import fnmatch
import math
import numbers
import re
import weakref
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ragbook.documents import Chunk
from ragbook.errors import SettingsError

if TYPE_CHECKING:
    from ragbook.index import Index

__all__ = ["check_filters", "check_number", "check_whole", "filter_mask", "location_ok", "LOCATION_KEYS",
           "STANDARD_METADATA"]


def _matches(value: Any, wanted: Any) -> bool:
    if callable(wanted):
        return bool(wanted(value))
    if isinstance(wanted, dict):  # {"not": ...}, the only dict check_filters lets through
        return not _matches(value, wanted["not"])
    if isinstance(wanted, (list, set, frozenset)):
        return any(_matches(value, w) for w in wanted)
    if isinstance(value, (tuple, list)):  # a section path (or a list of tags) matches if any item does
        whole = isinstance(wanted, str) and _matches(" > ".join(map(str, value)), wanted)
        return whole or any(_matches(v, wanted) for v in value)
    if isinstance(wanted, tuple):
        lo, hi = wanted
        try:
            return value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)
        except TypeError:  # a document whose value is text where the range is numbers: not in it
            return False
    if isinstance(wanted, str) and isinstance(value, str):
        return fnmatch.fnmatchcase(value.lower(), wanted.lower())
    return value == wanted


def location_ok(chunk: Chunk, filters: dict[str, Any]) -> bool:
    for key, wanted in filters.items():
        if key == "where":
            if not wanted(chunk):
                return False
            continue
        value = getattr(chunk, key) if key in LOCATION_KEYS else chunk.metadata.get(key)
        if not _matches(value, wanted):
            return False
    return True


def filter_mask(index: Index, filters: dict[str, Any]) -> np.ndarray:
    return np.fromiter((any(location_ok(c, filters) for c in index.locations(r)) for r in range(len(index))),
                       dtype=bool, count=len(index))


# -- checking settings (when a Retriever is made, so also on every ``search(**overrides)``) -----

# What every chunk knows about its own place; a filter on any other key reads document metadata.
LOCATION_KEYS = {"source": "text", "title": "text", "doc_id": "text", "section": "text", "page": "whole", "cell": "whole",
                 "slide": "whole"}
# Metadata every loader writes, so a filter on it is valid before anything is indexed.
STANDARD_METADATA = {"format": "text"}
# Document metadata the chunker does not copy onto chunks ("source" is the file's name to filter on).
_NOT_ON_CHUNKS = {"path": "source"}


_RANGE = re.compile(r"\s*(\d*)\s*([-\u2013])?\s*(\d*)\s*")


def parse_range(text: str) -> int | tuple[int | None, int | None]:
    """``"4"`` -> 4; ``"3-10"`` (or an en dash) -> (3, 10); ``"3-"`` and ``"-10"`` -> open ranges.

    How a person writes pages, cells or slides in a filter box, a command line or a question file;
    a :class:`SettingsError` says how to write one when ``text`` is none of these.
    """
    m = _RANGE.fullmatch(text or "")
    if m is None or not (m.group(1) or m.group(3)) or (not m.group(2) and not m.group(1)):
        raise SettingsError(f"{text!r} is not a number or a range: write 4, or 3-10 (3- and -10 leave an end open)")
    lo, dash, hi = m.groups()
    if not dash:
        return int(lo)
    return (int(lo) if lo else None, int(hi) if hi else None)


def check_number(name: str, value: Any, lo: float, hi: float | None, meaning: str) -> None:
    """A finite real number in ``lo..hi`` (NaN compares false with everything and would drop every hit)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, not {value!r}: {meaning}")
    # typeshed's numbers.Real declares < and <= but not >; any Real compares with a float either way round
    if value < lo or (hi is not None and cast(float, value) > hi):
        span = f"between {lo:g} and {hi:g}" if hi is not None else f"at least {lo:g}"
        raise SettingsError(f"{name} must be {span}, not {value!r}: {meaning}")


def check_whole(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise SettingsError(f"{name} must be a whole number of at least {lo}, not {value!r}")


def check_filters(filters: Any, index: Index | None) -> None:
    """Raise :class:`SettingsError` unless ``filters`` can mean something for ``index``.

    Valid keys are the chunk's location (:data:`LOCATION_KEYS`), ``format``, ``where`` (a
    function of the chunk), and any document-metadata key the index holds.  Each value must be
    of a kind the key holds: text globs for text, whole numbers for pages and cells, and so on.
    """
    if filters is None:
        return
    if not isinstance(filters, dict):
        raise SettingsError(f"filters must be a dict such as {{'source': '*.pdf', 'page': (3, 10)}}, "
                            f"not {type(filters).__name__}")
    metadata: dict[str, set[str]] | None = None  # read from the index only if a filter needs it
    for key, wanted in filters.items():
        if key == "where":
            if not callable(wanted):
                raise SettingsError("filters['where'] must be a function that takes a chunk and returns True to keep it")
            continue
        if not isinstance(key, str):
            raise SettingsError(f"filter keys are names such as 'source' or 'page', not {key!r}")
        if key in LOCATION_KEYS:
            kinds = {LOCATION_KEYS[key]}
        else:
            if metadata is None:
                metadata = _metadata_kinds(index)
            if key not in metadata and key not in STANDARD_METADATA:
                raise SettingsError(_unknown_key(key, metadata))
            kinds = metadata.get(key) or {STANDARD_METADATA[key]}
        _check_value(key, wanted, kinds)


def _unknown_key(key: str, metadata: dict[str, set[str]]) -> str:
    import difflib

    known = [*LOCATION_KEYS, *sorted(set(metadata) | set(STANDARD_METADATA)), "where"]
    close = [_NOT_ON_CHUNKS[key]] if key in _NOT_ON_CHUNKS else difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (f"unknown filter key {key!r}: no passage has it, so the filter would match nothing.{hint} "
            f"Valid keys here: {', '.join(known)}")


# Per index: (what it looked like, its metadata keys); searches with a filter check it every time.
_METADATA_SEEN: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], dict[str, set[str]]]] = weakref.WeakKeyDictionary()


def _metadata_kinds(index: Index | None) -> dict[str, set[str]]:
    """Each document-metadata key in the index, with the kinds of value it holds."""
    files = getattr(index, "files", None)
    if index is None or not isinstance(files, dict):
        return {}
    # every add() leaves a new report and remove() changes the file count: either means rescan
    stamp = (getattr(index, "last_report", None), len(files), len(index))
    try:
        seen = _METADATA_SEEN.get(index)
    except TypeError:  # not weak-referenceable: no cache
        seen = None
    if seen is not None and seen[0][0] is stamp[0] and seen[0][1:] == stamp[1:]:
        return seen[1]
    out: dict[str, set[str]] = {}
    for record in files.values():
        documents = record.get("documents") if isinstance(record, dict) else None
        for doc in documents.values() if isinstance(documents, dict) else ():
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            for key, value in meta.items() if isinstance(meta, dict) else ():
                if key in _NOT_ON_CHUNKS:
                    continue
                kinds = out.setdefault(str(key), set())
                for item in value if isinstance(value, list) else [value]:  # a list of tags holds its items' kinds
                    kinds.add(_kind(item))
    try:
        _METADATA_SEEN[index] = (stamp, out)
    except TypeError:
        pass
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Real):
        return "number"
    return "text" if isinstance(value, str) else "other"


_KIND_WORDS = {"text": "text", "whole": "whole numbers", "number": "numbers", "bool": "True/False", "other": "other values"}


def _check_value(key: str, wanted: Any, kinds: set[str], inside: str = "") -> None:
    """One filter value: a glob or value, a ``(low, high)`` range, a list of those, or a function."""
    holds = " or ".join(_KIND_WORDS[k] for k in sorted(kinds))
    where = f"filter {key!r}{inside}"
    if callable(wanted):
        return
    if isinstance(wanted, dict):
        if set(wanted) != {"not"} or inside.startswith(" (after"):
            raise SettingsError(f"{where}: the one dict a filter takes is {{'not': value}} (e.g. "
                                "{'section': {'not': 'References'}}), not " + repr(wanted)[:100])
        _check_value(key, wanted["not"], kinds, " (after 'not')")
        return
    if wanted is None:
        raise SettingsError(f"{where} is None, which is not a filter: leave the key out to allow every value")
    if isinstance(wanted, (list, set, frozenset)):
        if inside:
            raise SettingsError(f"{where}: a list of allowed values holds values or ranges, not more lists")
        if not wanted:
            raise SettingsError(f"{where} is an empty list, which allows nothing: list the values to keep")
        for item in wanted:
            _check_value(key, item, kinds, " (in its list)")
        return
    if isinstance(wanted, tuple):
        _check_range(key, wanted, kinds, where, holds)
        return
    kind = _kind(wanted)
    if kind == "number" and not math.isfinite(wanted):
        raise SettingsError(f"{where} is {wanted}, which matches nothing: give a finite number")
    if not _fits(kind, wanted, kinds):
        raise SettingsError(f"{where} holds {holds}, so {wanted!r} ({type(wanted).__name__}) can never match"
                            + (": give a whole number, a (low, high) range or a list" if "whole" in kinds else ""))


def _fits(kind: str, value: Any, kinds: set[str]) -> bool:
    if "whole" in kinds:
        # typeshed's numbers.Integral declares no >= (nor int a <= that takes one); any Integral compares with 0
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and cast(int, value) >= 0
    return kind in kinds and kind != "other"


def _check_range(key: str, wanted: tuple, kinds: set[str], where: str, holds: str) -> None:
    if len(wanted) != 2:
        raise SettingsError(f"{where}: a tuple means a (low, high) range, but it has {len(wanted)} items; "
                            "for a set of allowed values use a list")
    if "text" in kinds and key in LOCATION_KEYS:
        raise SettingsError(f"{where}: a (low, high) range does not apply to {key}; "
                            "give a glob such as 'notes/*.md' or a list of them")
    lo, hi = wanted
    for bound in (lo, hi):
        if bound is None:
            continue
        kind = _kind(bound)
        if kind == "number" and not math.isfinite(bound):
            raise SettingsError(f"{where}: the range bound {bound} is not a number to compare with; "
                                "use None for an open end, e.g. (3, None)")
        if kind not in ("number", "text") or not _fits(kind, bound, kinds):
            raise SettingsError(f"{where} holds {holds}, so the range bound {bound!r} can never match")
    if lo is not None and hi is not None:
        if _kind(lo) != _kind(hi):
            raise SettingsError(f"{where}: the range ({lo!r}, {hi!r}) mixes text and numbers")
        if lo > hi:
            raise SettingsError(f"{where}: the range ({lo!r}, {hi!r}) is reversed, so nothing is in it; "
                                f"write ({hi!r}, {lo!r})")
