"""What every evaluation report shares: rows and figures, a plain-text table, a lazy pandas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from ragbook._display import shorten
from ragbook.errors import MissingDependencyError

__all__ = ["Report", "format_table", "summary_text", "import_pandas"]


def import_pandas(what: str) -> Any:
    """The pandas module, or an error saying that ``what`` needs it and how to install it."""
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


def summary_text(summary: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``key=value`` for each of ``keys`` that has a value, floats rounded to 4 places (for reprs)."""
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
        return import_pandas(f"{type(self).__name__}.to_pandas").DataFrame(self.rows)
