"""What the class asks and how it went: an opt-in question log and the numbers behind the stats page.

The log (``ragbook serve --log questions.jsonl``) is one JSON record a line: the time, the token's
label (never a student's name or address), the question, how it was answered, which passages
were cited and how long it took.  The stats are kept in memory, for the last
:data:`KEEP` questions, whether the log is on or not.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragbook._display import html_escape, html_table

__all__ = ["Record", "Stats", "QuestionLog"]

KEEP = 10_000  # records kept in memory for the stats page: a term's questions, bounded
SHORTFALLS = 20  # the latest questions the documents could not answer, shown to the teacher


@dataclass(slots=True)  # thousands are kept: no per-record __dict__
class Record:
    """One question as the log and the stats see it."""

    time: float
    label: str
    question: str
    outcome: str  # "answered", "abstained", "error", "cancelled", "timeout"
    mode: str = ""
    cited: list[dict[str, Any]] = field(default_factory=list)  # {"n", "source", "page"}
    first_token_s: float | None = None
    total_s: float | None = None
    waited_s: float | None = None
    status: int = 200


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


class Stats:
    """Counters over the last :data:`KEEP` questions."""

    def __init__(self) -> None:
        self._records: deque[Record] = deque(maxlen=KEEP)
        self._lock = threading.Lock()
        self.started = time.time()

    def add(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            records = list(self._records)
        now = time.time()
        done = [r for r in records if r.outcome in ("answered", "abstained")]
        totals = [r.total_s for r in done if r.total_s is not None]
        firsts = [r.first_token_s for r in done if r.first_token_s is not None]
        hours: dict[str, int] = {}
        for r in records:
            if now - r.time < 24 * 3600:
                hour = time.strftime("%Y-%m-%d %H:00", time.localtime(r.time))
                hours[hour] = hours.get(hour, 0) + 1
        outcomes: dict[str, int] = {}
        for r in records:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        return {
            "since": time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started)),
            "questions": len(records), "outcomes": outcomes,
            "abstention_rate": round(outcomes.get("abstained", 0) / len(done), 3) if done else None,
            "answer_s": {"p50": _percentile(totals, 0.5), "p95": _percentile(totals, 0.95)},
            "first_token_s": {"p50": _percentile(firsts, 0.5), "p95": _percentile(firsts, 0.95)},
            "per_hour": dict(sorted(hours.items())),
            "labels": sorted({r.label for r in records}),
            "not_in_documents": [r.question for r in reversed(records) if r.outcome == "abstained"][:SHORTFALLS],
        }

    def html(self, name: str) -> str:
        """The teacher's page: plain, static, every question escaped."""
        s = self.summary()

        def fmt(x: Any) -> str:
            return "-" if x is None else f"{x:.2f} s" if isinstance(x, float) else str(x)

        rows = [["questions", s["questions"]], ["since", s["since"]],
                *([k, v] for k, v in sorted(s["outcomes"].items())),
                ["abstained (share of answers)", "-" if s["abstention_rate"] is None else f"{s['abstention_rate']:.0%}"],
                ["answer time p50 / p95", f"{fmt(s['answer_s']['p50'])} / {fmt(s['answer_s']['p95'])}"],
                ["first words p50 / p95", f"{fmt(s['first_token_s']['p50'])} / {fmt(s['first_token_s']['p95'])}"]]
        hours = html_table(["hour", "questions"], [[h, n] for h, n in s["per_hour"].items()]) if s["per_hour"] else ""
        missing = "".join(f"<li>{html_escape(q)}</li>" for q in s["not_in_documents"])
        return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><meta http-equiv='refresh' content='60'>"
                f"<title>{html_escape(name)}: questions</title><style>body{{font-family:system-ui,sans-serif;"
                "max-width:52rem;margin:2rem auto;padding:0 1rem}} td,th{{padding:2px 10px;text-align:left}}</style>"
                f"</head><body><h1>{html_escape(name)}</h1>{html_table(['', ''], rows)}"
                f"<h2>Questions per hour</h2>{hours or '<p>none yet</p>'}"
                "<h2>Not in the documents</h2><p>The latest questions the assistant could not answer from them: "
                f"where the material may fall short.</p><ul>{missing or '<li>none yet</li>'}</ul></body></html>")


class QuestionLog:
    """Appends one JSON line per question to ``path`` (opt-in: ``ragbook serve --log``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with open(self.path, "a", encoding="utf-8"):  # fail at start, not at the first question
            pass

    def write(self, record: Record) -> None:
        line = json.dumps({**asdict(record), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.time))},
                          ensure_ascii=False)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
