"""The data evaluation runs on: question sets a teacher writes, and BEIR-style retrieval sets.

A question set is a CSV, JSONL or JSON file, one question a row::

    question,source,page,answer,unanswerable
    How many grace days do we get?,00-syllabus.md,,four|4,
    How often can I run the autograder?,handbook.pdf,4,6 times,
    Who won the 1998 world cup?,,,,true

>>> qa = load_qa("questions.csv")

Columns (JSON keys): ``question`` (required); ``source``: a file name, a path ending or a
glob (``00-syllabus.md``, ``notes/*.md``), several separated by ``|`` (a list in JSON);
``page``: a page number or a range ``3-5``; ``answer`` (or ``answers``): gold answers,
several separated by ``|`` (a list in JSON); ``unanswerable``: true when the documents do
not answer the question; ``id``.  SQuAD's own keys (``is_impossible``, ``gold_doc_ids``)
are read too.  Other columns are kept in each item's ``metadata``.

A BEIR folder holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` (which
documents answer which query, with a relevance grade):

>>> data = load_beir("scifact")
"""

from __future__ import annotations

import csv
import fnmatch
import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ragbook._display import html_escape, html_table, shorten
from ragbook._listing import Listing
from ragbook.errors import DataFormatError, NotFoundError, SettingsError
from ragbook.eval.report import import_pandas
from ragbook.filters import parse_range

if TYPE_CHECKING:
    from ragbook.documents import Chunk, Document

__all__ = ["QAItem", "QASet", "load_qa", "source_matches", "BeirData", "load_beir", "beir_documents"]

log = logging.getLogger(__name__)

_KNOWN = {"id", "question", "source", "sources", "page", "pages", "answer", "answers", "unanswerable",
          "is_impossible", "gold_doc_ids"}
_TRUE = {"true", "yes", "y", "1", "x"}
_FALSE = {"false", "no", "n", "0", ""}
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
        where = "|".join(self.sources) + (f" p.{pages_text(self.pages)}" if self.pages else "")
        return (f"QAItem(id={self.id!r}, question={shorten(self.question, 50)!r}, where={where!r}, "
                f"answers={len(self.answers)}, unanswerable={self.unanswerable})")


def pages_text(pages: Sequence[int]) -> str:
    """Pages as a person writes them: ``3-5`` for a run, else ``3,7``."""
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
class QASet(Listing[QAItem]):
    """Questions to evaluate an assistant on; iterable, indexable, and displayable."""

    _items = "items"

    items: list[QAItem]
    name: str = ""
    path: str = ""

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
        return import_pandas("QASet.to_pandas").DataFrame([q.to_dict() for q in self.items])

    def __repr__(self) -> str:
        return (f"QASet(name={self.name!r}, questions={len(self)}, unanswerable={self.unanswerable}, "
                f"with_source={sum(1 for q in self.items if q.judged)}, "
                f"with_answer={sum(1 for q in self.items if q.answers)})")

    def _repr_html_(self) -> str:
        rows: list[list[object]] = [
            [q.id, shorten(q.question, 120), " | ".join(q.sources), pages_text(q.pages),
             shorten(" | ".join(q.answers), 80), "yes" if q.unanswerable else ""] for q in self.items[:50]]
        more = f"<div>… and {len(self) - 50} more questions</div>" if len(self) > 50 else ""
        return (f"<div class='ragbook-qaset'><b>{html_escape(self.name or 'questions')}</b>: {len(self)} questions, "
                f"{self.unanswerable} unanswerable"
                + html_table(["id", "question", "source", "page", "answer", "unanswerable"], rows) + more + "</div>")


# -- loading a question set ---------------------------------------------------------------------


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


def _page_range(text: str) -> tuple[int, int] | None:
    """``"4"`` or ``"3-5"`` as ``(first, last)``; None for anything else (an open range names no pages)."""
    try:
        pages = parse_range(text)
    except SettingsError:
        return None
    if isinstance(pages, int):
        return (pages, pages)
    return None if pages[0] is None or pages[1] is None else (pages[0], pages[1])


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
    elif isinstance(value, str) and isinstance(pages := _page_range(value), tuple):
        lo, hi = pages
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


# -- BEIR-style retrieval sets -----------------------------------------------------------------


@dataclass
class BeirData:
    """A retrieval test set: documents, queries, and which documents answer which query.

    ``answers`` holds answer strings per query where the set has them (SQuAD), else is empty.
    """

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    answers: dict[str, list[str]] = field(default_factory=dict)
    name: str = ""
    split: str = ""

    def __repr__(self) -> str:
        judged = sum(1 for q in self.qrels if q in self.queries)
        return (f"BeirData(name={self.name!r}, split={self.split!r}, documents={len(self.corpus)}, "
                f"queries={len(self.queries)}, judged_queries={judged}, "
                f"judgments={sum(len(r) for r in self.qrels.values())})")

    def sample(self, n: int | None, seed: int = 0) -> BeirData:
        """The same corpus with at most ``n`` judged queries, picked at random but reproducibly."""
        judged = [q for q in self.qrels if q in self.queries]
        if n is None or n >= len(judged):
            return self
        picked = sorted(np.random.default_rng(seed).choice(len(judged), n, replace=False).tolist())
        keep = [judged[i] for i in picked]
        return BeirData(self.corpus, {q: self.queries[q] for q in keep}, {q: self.qrels[q] for q in keep},
                        {q: self.answers[q] for q in keep if q in self.answers}, self.name, self.split)


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(f"{path}, line {number}: not JSON ({exc.msg})") from exc


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < 3 or not line.strip():
                continue
            if number == 1 and not parts[-1].lstrip("-").isdigit():
                continue  # the header: query-id corpus-id score
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[-1]))
            except ValueError as exc:
                raise DataFormatError(f"{path}, line {number}: expected 'query-id<TAB>corpus-id<TAB>score'") from exc
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Read a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

    Also reads a SQuAD-style folder (``corpus.jsonl`` + ``questions.jsonl`` with ``id``,
    ``question``, ``answers``, ``is_impossible``, ``gold_doc_ids``): only answerable
    questions are kept, each with its gold paragraphs at relevance 1; ``split`` is ignored.
    """
    root = Path(folder).expanduser()
    if not (root / "corpus.jsonl").is_file():
        raise NotFoundError(f"{root}: no corpus.jsonl; expected a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    corpus = {str(d["_id"]): {"title": d.get("title") or "", "text": d.get("text") or ""}
              for d in _read_jsonl(root / "corpus.jsonl")}
    if (root / "qrels").is_dir():
        path = root / "qrels" / f"{split}.tsv"
        if not path.is_file():
            found = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
            raise NotFoundError(f"{root}: no qrels/{split}.tsv; splits here: {', '.join(found) or 'none'}")
        queries = {str(q["_id"]): q["text"] for q in _read_jsonl(root / "queries.jsonl")}
        return BeirData(corpus, queries, _read_qrels(path), name=root.name, split=split)
    if (root / "questions.jsonl").is_file():
        queries, qrels, answers = {}, {}, {}
        for q in _read_jsonl(root / "questions.jsonl"):
            if q.get("is_impossible") or not q.get("gold_doc_ids"):
                continue
            qid = str(q["id"])
            queries[qid] = q["question"]
            qrels[qid] = {str(d): 1 for d in q["gold_doc_ids"]}
            answers[qid] = list(q.get("answers", []))
        return BeirData(corpus, queries, qrels, answers, name=root.name, split="answerable")
    raise NotFoundError(f"{root}: found corpus.jsonl but neither qrels/ (BEIR) nor questions.jsonl (SQuAD-style)")


def beir_documents(corpus: Mapping[str, Mapping[str, str]]) -> list[Document]:
    """One Document per corpus entry: ``title + " " + text``, stripped (as MTEB joins them)."""
    from ragbook.documents import Document

    return [Document(text=(d.get("title", "") + " " + d.get("text", "")).strip(), source=doc_id,
                     title=d.get("title", "")) for doc_id, d in corpus.items()]
