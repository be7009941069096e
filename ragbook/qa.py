"""Question sets a teacher writes, and how well retrieval finds the passages that answer them.

A set is a CSV, JSONL or JSON file, one question a row::

    question,source,page,answer,unanswerable
    How many grace days do we get?,00-syllabus.md,,four|4,
    How often can I run the autograder?,handbook.pdf,4,6 times,
    Who won the 1998 world cup?,,,,true

>>> qa = load_qa("questions.csv")
>>> evaluate_qa_retrieval(index, qa, k=5)          # hit@5, recall@5, MRR@5, nDCG@5
RetrievalReport(questions=2, k=5, mode='hybrid', hit@5=1.0, recall@5=1.0, mrr@5=0.75, ndcg@5=0.8155)

Columns (JSON keys): ``question`` (required); ``source``: a file name, a path ending or a
glob (``00-syllabus.md``, ``notes/*.md``), several separated by ``|`` (a list in JSON);
``page``: a page number or a range ``3-5``; ``answer`` (or ``answers``): gold answers,
several separated by ``|`` (a list in JSON); ``unanswerable``: true when the documents do
not answer the question; ``id``.  SQuAD's own keys (``is_impossible``, ``gold_doc_ids``)
are read too.  Other columns are kept in each item's ``metadata``.

Retrieval is scored on the ``k`` passages retrieved, in order.  A passage is relevant to an
expected source when its source matches it (and its page is one of the pages, when given);
each expected source counts once, at the first passage that matches it.  With that ranking,
the formulas are the standard ones of :mod:`ragbook.evaluation`: hit@k (a relevant passage
in the top k), recall@k (share of the expected sources found), MRR@k, and nDCG@k with
binary gains.  Questions without a source, and unanswerable ones, are not scored.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from ragbook._display import html_escape, html_table, shorten
from ragbook.errors import DataFormatError, MissingDependencyError, NotFoundError, SettingsError
from ragbook.evaluation import hit_rate_at_k, mrr_at_k, ndcg_at_k, queries_cached, recall_at_k

if TYPE_CHECKING:
    from ragbook.documents import Chunk

__all__ = ["QAItem", "QASet", "load_qa", "evaluate_qa_retrieval", "RetrievalReport", "source_matches", "format_table"]

log = logging.getLogger(__name__)

_KNOWN = {"id", "question", "source", "sources", "page", "pages", "answer", "answers", "unanswerable",
          "is_impossible", "gold_doc_ids"}
_TRUE = {"true", "yes", "y", "1", "x"}
_FALSE = {"false", "no", "n", "0", ""}
_PAGE_RANGE = re.compile(r"^\s*(\d+)\s*(?:[-–]\s*(\d+))?\s*$")
_MAX_PAGE_RANGE = 2000


@dataclass
class QAItem:
    """One question, where its answer is, and what the answer is (each part optional)."""

    question: str
    id: str
    sources: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()
    answers: tuple[str, ...] = ()
    unanswerable: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def judged(self) -> bool:
        """Whether retrieval can be scored on it: answerable, with a source or a page."""
        return not self.unanswerable and bool(self.sources or self.pages)

    def targets(self) -> list[str]:
        """The expected sources, each one relevant unit (``*`` when only pages are given)."""
        return list(self.sources) if self.sources else ["*"] if self.pages else []

    def matches(self, chunk: Chunk, target: str | None = None) -> bool:
        """Whether ``chunk`` comes from the expected place (from ``target`` only, when given)."""
        if self.pages and chunk.page not in self.pages:
            return False
        wanted = [target] if target is not None else self.targets()
        return any(t == "*" or source_matches(chunk.source, t) for t in wanted)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "sources": list(self.sources), "pages": list(self.pages),
                "answers": list(self.answers), "unanswerable": self.unanswerable, **self.metadata}

    def __repr__(self) -> str:
        where = "|".join(self.sources) + (f" p.{_pages_text(self.pages)}" if self.pages else "")
        return (f"QAItem(id={self.id!r}, question={shorten(self.question, 50)!r}, where={where!r}, "
                f"answers={len(self.answers)}, unanswerable={self.unanswerable})")


def _pages_text(pages: Sequence[int]) -> str:
    if not pages:
        return ""
    if len(pages) > 1 and list(pages) == list(range(pages[0], pages[-1] + 1)):
        return f"{pages[0]}-{pages[-1]}"
    return ",".join(map(str, pages))


def source_matches(source: str, pattern: str) -> bool:
    """Whether a chunk's ``source`` is the file ``pattern`` names (case-insensitive).

    ``pattern`` may be the whole source, its last path parts (``handbook.pdf``,
    ``course-notes/00-syllabus.md``), or a glob of either; leading ``./`` and ``../`` are
    dropped, so a path written relative to a notebook's folder matches too.
    """
    src = source.replace("\\", "/").lower()
    pat = re.sub(r"^(?:\.{1,2}/)+", "", pattern.strip().replace("\\", "/").lower())
    if not pat:
        return False
    if fnmatch.fnmatchcase(src, pat):
        return True
    tail = "/".join(src.split("/")[-(pat.count("/") + 1):])
    return fnmatch.fnmatchcase(tail, pat)


@dataclass
class QASet:
    """Questions to evaluate an assistant on; iterable, indexable, and displayable."""

    items: list[QAItem]
    name: str = ""
    path: str = ""

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[QAItem]:
        return iter(self.items)

    def __getitem__(self, i: int) -> QAItem:
        return self.items[i]

    @property
    def unanswerable(self) -> int:
        return sum(1 for q in self.items if q.unanswerable)

    def sample(self, n: int | None, seed: int = 0) -> QASet:
        """At most ``n`` questions picked at random but reproducibly, in file order."""
        if n is None or n >= len(self.items):
            return self
        if n < 1:
            raise SettingsError(f"the sample size must be at least 1, not {n}")
        picked = sorted(random.Random(seed).sample(range(len(self.items)), n))
        return QASet([self.items[i] for i in picked], self.name, self.path)

    def to_pandas(self) -> Any:
        return _pandas("QASet.to_pandas").DataFrame([q.to_dict() for q in self.items])

    def __repr__(self) -> str:
        return (f"QASet(name={self.name!r}, questions={len(self)}, unanswerable={self.unanswerable}, "
                f"with_source={sum(1 for q in self.items if q.judged)}, "
                f"with_answer={sum(1 for q in self.items if q.answers)})")

    def _repr_html_(self) -> str:
        rows: list[list[object]] = [
            [q.id, shorten(q.question, 120), " | ".join(q.sources), _pages_text(q.pages),
             shorten(" | ".join(q.answers), 80), "yes" if q.unanswerable else ""] for q in self.items[:50]]
        more = f"<div>… and {len(self) - 50} more questions</div>" if len(self) > 50 else ""
        return (f"<div class='ragbook-qaset'><b>{html_escape(self.name or 'questions')}</b>: {len(self)} questions, "
                f"{self.unanswerable} unanswerable"
                + html_table(["id", "question", "source", "page", "answer", "unanswerable"], rows) + more + "</div>")


# -- loading ------------------------------------------------------------------------------------


def load_qa(path: str | Path) -> QASet:
    """Read a question set: ``.csv`` / ``.tsv``, ``.jsonl``, ``.json`` (a list), or a SQuAD-style folder.

    A bad row raises ``ValueError`` naming the file and line.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / "questions.jsonl").is_file():
            raise NotFoundError(f"{path}: a folder of questions needs questions.jsonl (SQuAD-style); "
                                    "otherwise give a .csv, .jsonl or .json file")
        path = path / "questions.jsonl"
    if not path.is_file():
        raise NotFoundError(f"no such question file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        rows = _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    elif suffix == ".json":
        rows = _json_rows(path)
    else:
        raise DataFormatError(f"{path}: unknown question file type {suffix!r}; use .csv, .tsv, .jsonl or .json")
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        item = _item(row, line, len(items) + 1, path)
        if item.id in seen:
            raise DataFormatError(f"{path}, line {line}: id {item.id!r} is used twice (first on line {seen[item.id]})")
        seen[item.id] = line
        items.append(item)
    if not items:
        raise DataFormatError(f"{path}: no questions found")
    extra = sorted({k for q in items for k in q.metadata})
    if extra:
        log.info("%s: columns kept as metadata, not scored: %s", path.name, ", ".join(extra))
    return QASet(items, name=path.name, path=str(path))


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        text = f.read()
    first = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else max(",;\t", key=first.count)
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    if "question" not in header:
        raise DataFormatError(f"{path}, line 1: no 'question' column (the header has: {', '.join(header) or 'nothing'}); "
                         "the first line must name the columns, e.g. question,source,page,answer")
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise DataFormatError(f"{path}, line 1: column {dupes[0]!r} appears twice")
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
            raise DataFormatError(f"{path}, line {line}: {len(values)} values for {len(header)} columns "
                             f"(a {delimiter!r} inside a value needs the value in double quotes)")
        row = {h: v for h, v in zip(header, values) if h}
        yield line, {k: _split_bar(v) if k in ("source", "sources", "answer", "answers", "gold_doc_ids") else v
                     for k, v in row.items()}


def _split_bar(value: str) -> list[str]:
    return [part.strip() for part in value.split("|") if part.strip()]


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}, line {number}: not JSON ({exc.msg})") from None
            yield number, row


def _json_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}, line {exc.lineno}: not JSON ({exc.msg})") from None
    depth = 2
    if isinstance(data, dict) and isinstance(data.get("questions"), list):
        data, depth = data["questions"], 3
    if not isinstance(data, list):
        raise DataFormatError(f"{path}, line 1: expected a list of questions (or {{\"questions\": [...]}})")
    starts = _object_lines(text, depth)
    for i, row in enumerate(data):
        yield starts[i] if i < len(starts) else 1, row


def _object_lines(text: str, depth_of_items: int) -> list[int]:
    """The line where each object at ``depth_of_items`` starts (for messages about JSON files)."""
    lines, depth, line, in_string, escaped = [], 0, 1, False, False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if ch == "{" and depth == depth_of_items:
                lines.append(line)
        elif ch in "]}":
            depth -= 1
    return lines


def _item(row: Any, line: int, position: int, path: Path) -> QAItem:
    where = f"{path}, line {line}"
    if not isinstance(row, dict):
        raise DataFormatError(f"{where}: expected an object with a \"question\", got {type(row).__name__}")
    row = {str(k).strip().lower(): v for k, v in row.items()}
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DataFormatError(f"{where}: the question is empty or missing")
    qid = str(row.get("id") if row.get("id") not in (None, "") else f"q{position}").strip()
    if "answer" in row and "answers" in row:
        raise DataFormatError(f"{where}: give 'answer' or 'answers', not both")
    answers = _strings(row.get("answer", row.get("answers")), "answer", where)
    sources = _strings(row.get("source", row.get("sources", row.get("gold_doc_ids"))), "source", where)
    pages = _pages(row.get("page", row.get("pages")), where)
    unanswerable = _flag(row.get("unanswerable", row.get("is_impossible")), where)
    if unanswerable and answers:
        raise DataFormatError(f"{where}: the question is marked unanswerable but has an answer; remove one of them")
    metadata = {k: v for k, v in row.items() if k not in _KNOWN and v not in (None, "")}
    return QAItem(question.strip(), qid, tuple(sources), pages, tuple(answers), unanswerable, metadata)


def _strings(value: Any, what: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = _split_bar(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [str(value)]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        raise DataFormatError(f"{where}: {what} must be text or a list of texts, not {shorten(json.dumps(value), 60)}")
    return [str(v).strip() for v in value if str(v).strip()]


def _pages(value: Any, where: str) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, bool):
        raise DataFormatError(f"{where}: page must be a number or a range like 3-5, not {value}")
    if isinstance(value, int):
        numbers = [value]
    elif isinstance(value, float) and value.is_integer():
        numbers = [int(value)]
    elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        numbers = list(value)
    elif isinstance(value, str) and (m := _PAGE_RANGE.match(value)):
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi - lo > _MAX_PAGE_RANGE:
            raise DataFormatError(f"{where}: page range {value!r} runs backwards or is too long")
        numbers = list(range(lo, hi + 1))
    else:
        raise DataFormatError(f"{where}: page {shorten(str(value), 40)!r} is not a page number (use 4, or 3-5 for a range)")
    if any(n < 1 for n in numbers):
        raise DataFormatError(f"{where}: pages are numbered from 1, not {min(numbers)}")
    return tuple(sorted(set(numbers)))


def _flag(value: Any, where: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataFormatError(f"{where}: unanswerable must be true or false (or yes/no, 1/0), not {shorten(str(value), 30)!r}")


# -- retrieval on a question set -------------------------------------------------------------------


def _retriever(target: Any, k: int | None, settings: Mapping[str, Any]) -> Any:
    """A Retriever for an Index or an Assistant (its own settings, overridden by ``settings``)."""
    from ragbook.retrieval import Retriever

    base = getattr(target, "retriever", None)
    if isinstance(base, Retriever):
        changes = dict(settings)
        if k is not None:
            changes["k"] = k
        return base.copy(**changes) if changes else base
    from ragbook.index import Index

    if not isinstance(target, Index):
        raise SettingsError(f"expected an Index or an Assistant, not {type(target).__name__}")
    return Retriever(target, k=k or 5, **settings)


def ranked_targets(item: QAItem, hits: Iterable[Any]) -> list[str]:
    """One id per retrieved passage: the expected source it is the first to match, else ``#rank``.

    With these ids as the ranking and each expected source as a relevant id, the standard
    formulas score what the module's docstring describes.
    """
    targets = item.targets()
    found: set[str] = set()
    ranked = []
    for rank, hit in enumerate(hits, start=1):
        places = (hit.chunk, *getattr(hit, "also_in", ()))
        new = next((t for t in targets if t not in found and any(item.matches(c, t) for c in places)), None)
        if new is None:
            ranked.append(f"#{rank}")
        else:
            found.add(new)
            ranked.append(new)
    return ranked


def evaluate_qa_retrieval(target: Any, questions: QASet | str | Path, k: int | None = None, *,
                          limit: int | None = None, seed: int = 0, **retriever_settings: Any) -> RetrievalReport:
    """Search every question that names a source and score the passages retrieved.

    ``target`` is an :class:`~ragbook.index.Index` (hybrid, k=5 unless told) or an
    :class:`~ragbook.assistant.Assistant` (its retrieval settings); ``k`` and keyword
    arguments (``mode=``, ``fusion=``, ``weight=``...) override them.  ``limit`` evaluates a
    reproducible sample of that many questions (``seed``).
    """
    from ragbook.progress import progress

    qa = questions if isinstance(questions, QASet) else load_qa(questions)
    qa = qa.sample(limit, seed)
    started = time.perf_counter()
    retriever = _retriever(target, k, retriever_settings)
    k = retriever.k
    judged = [q for q in qa if q.judged]
    if len(judged) < len(qa):
        log.info("%d of %d questions not scored for retrieval (unanswerable, or no source or page given)",
                 len(qa) - len(judged), len(qa))
    rows = []
    texts = [q.question for q in judged] if retriever.mode != "bm25" else []
    with queries_cached(retriever.index, texts):
        for item in progress(judged, desc="Searching", unit="question", min_total=50):
            hits = list(retriever.search(item.question))
            ranked = ranked_targets(item, hits)
            relevant = {t: 1 for t in item.targets()}
            first = next((h for h in hits if item.matches(h.chunk) or any(item.matches(c) for c in h.also_in)), None)
            rows.append({"id": item.id, "question": item.question, "expected": _expected(item),
                         f"hit@{k}": hit_rate_at_k(ranked, relevant, k), f"recall@{k}": recall_at_k(ranked, relevant, k),
                         f"mrr@{k}": mrr_at_k(ranked, relevant, k), f"ndcg@{k}": ndcg_at_k(ranked, relevant, k),
                         "rank": first.rank if first is not None else None,
                         "top": hits[0].citation() if hits else ""})
    metrics = [f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg")]
    summary = {m: (sum(r[m] for r in rows) / len(rows) if rows else 0.0) for m in metrics}
    summary.update(questions=len(rows), k=k, seconds=round(time.perf_counter() - started, 3))
    settings = {key: value for key, value in retriever.settings().items() if value is not None and key != "filters"}
    log.info("retrieval on %s: %s", qa.name or "questions", ", ".join(f"{m} {summary[m]:.3f}" for m in metrics))
    return RetrievalReport(rows, summary, settings, qa.name)


def _expected(item: QAItem) -> str:
    where = " | ".join(item.sources)
    return where + (f", page {_pages_text(item.pages)}" if item.pages else "")


# -- reports ----------------------------------------------------------------------------------------


def _pandas(what: str) -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependencyError(f"{what} needs pandas: pip install pandas (or pip install 'ragbook[eval]')") from exc
    return pd


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, width: int = 60) -> str:
    """A plain-text table of ``rows`` (numbers right-aligned, text cut at ``width``)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    cells = [[shorten(_cell(r.get(c)), width) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), *(line(row) for row in cells)])


def _summary_text(summary: Mapping[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={round(summary[k], 4)!r}" if isinstance(summary[k], float) else f"{k}={summary[k]!r}"
                     for k in keys if summary.get(k) is not None)


@dataclass
class Report:
    """Per-question rows and the figures over them: a row by position, a figure by name."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, key: int | str) -> Any:
        """A row by position, or a summary figure by name (``report["ndcg@5"]``, ``report["f1"]``)."""
        return self.summary[key] if isinstance(key, str) else self.rows[key]

    def to_pandas(self) -> Any:
        return _pandas(f"{type(self).__name__}.to_pandas").DataFrame(self.rows)


@dataclass
class RetrievalReport(Report):
    """Per-question retrieval scores (``rows``) and their means (``summary``)."""

    @property
    def k(self) -> int:
        return int(self.summary["k"])

    def misses(self) -> list[dict[str, Any]]:
        """The questions whose expected source is not among the passages retrieved."""
        return [r for r in self.rows if not r[f"hit@{self.k}"]]

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "settings": self.settings, "rows": self.rows}

    def __repr__(self) -> str:
        k = self.k
        head = _summary_text({"questions": self.summary["questions"], "k": k, "mode": self.settings.get("mode")},
                             ["questions", "k", "mode"])
        figures = _summary_text(self.summary, [f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg")])
        return f"RetrievalReport({head}, {figures})"

    def _repr_html_(self) -> str:
        k = self.k
        metrics = [f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg")]
        head = ", ".join(f"{m} <b>{self.summary[m]:.3f}</b>" for m in metrics)
        rows = [[r["id"], shorten(r["question"], 100), r["expected"], r["rank"] or "missed", shorten(r["top"], 60),
                 f"{r[f'ndcg@{k}']:.3f}"] for r in self.rows[:50]]
        more = f"<div>… and {len(self.rows) - 50} more questions</div>" if len(self.rows) > 50 else ""
        title = html_escape(f"Retrieval on {self.name or 'the questions'}: {self.summary['questions']} questions, "
                            f"{self.settings.get('mode', '')}, k={k}")
        return (f"<div class='ragbook-report'><b>{title}</b><div>{head}</div>"
                + html_table(["id", "question", "expected", "first relevant rank", "top passage", f"ndcg@{k}"], rows)
                + more + "</div>")
