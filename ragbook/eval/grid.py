"""Compare configurations: chunk size, k, dense/BM25/hybrid, template and model, over a grid.

>>> result = compare(index, "questions.csv", {"mode": ["dense", "bm25", "hybrid"], "k": [3, 5]})
>>> result                    # Comparison(configurations=6, ..., best={'mode': 'hybrid', 'k': 5})
>>> result.to_pandas()        # one row per configuration
>>> result.plot("ndcg")       # a matplotlib Figure

Keys that change the index (``chunk_size``, ``overlap``) rebuild it, once per distinct value;
retrieval keys (``k``, ``mode``, ``fusion``, ``weight``, ``candidates``, ``mmr``...) reuse it,
and each question is embedded once for the whole grid.  Keys that change answers
(``template``, ``llm``, ``min_relevance``, ``max_answer_tokens``) need ``answers=True``.
Configurations run in the grid's order (the product of its values, last key fastest), and
search is deterministic, so the same grid on the same index gives the same table.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from ragbook._display import Markup, html_escape, html_table
from ragbook.errors import MissingDependencyError, SettingsError
from ragbook.eval.answers import evaluate_answers
from ragbook.eval.datasets import BeirData, QASet, load_qa
from ragbook.eval.report import format_table, import_pandas, summary_text
from ragbook.eval.retrieval import evaluate_qa_retrieval, evaluate_retrieval

__all__ = ["compare", "Comparison", "INDEX_KEYS", "ANSWER_KEYS"]

log = logging.getLogger(__name__)

INDEX_KEYS = ("chunk_size", "overlap")
# the assistant settings a grid may vary (the others: verify, temperature... are the base assistant's)
ANSWER_KEYS = ("template", "llm", "min_relevance", "max_answer_tokens")
RETRIEVAL_METRICS = ("hit", "recall", "mrr", "ndcg")
ANSWER_METRICS = ("em", "f1", "contains", "citation_precision", "abstention_recall", "false_abstentions")


def _retrieval_keys() -> tuple[str, ...]:
    from ragbook.settings import RETRIEVAL_KEYS

    return RETRIEVAL_KEYS


def _label(value: Any) -> Any:
    """How a setting's value is shown: its name for templates and models, else as it is."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(getattr(value, "name", value))


class _Indexes:
    """The base index, and one rebuilt index per distinct (chunk_size, overlap)."""

    def __init__(self, base: Any, documents: Any) -> None:
        self.base = base
        self.documents = documents
        self.built: dict[tuple[int, int], Any] = {(base.chunk_size, base.overlap): base}

    def overlap_for(self, chunk_size: int) -> int:
        # the base's overlap in proportion (10-20% of a chunk is what the chunking benchmark favours)
        base = self.base
        return min(round(base.overlap * chunk_size / base.chunk_size), chunk_size // 2)

    def get(self, chunk_size: int | None, overlap: int | None) -> Any:
        from ragbook.index import Index

        chunk_size = chunk_size or self.base.chunk_size
        overlap = self.overlap_for(chunk_size) if overlap is None else overlap
        key = (chunk_size, overlap)
        if key not in self.built:
            source = self.documents if self.documents is not None else self.base.roots
            if not source:
                raise SettingsError("this index was built from documents in memory, so it cannot be rebuilt with another "
                                 "chunk_size: pass documents= (the documents or their paths) to compare()")
            bm25 = self.base.bm25.settings()
            index = Index(self.base.embedder, chunk_size=chunk_size, overlap=overlap,
                          index_type=self.base.info()["vectors"].get("kind", "auto"),
                          bm25_k1=bm25["k1"], bm25_b=bm25["b"], stemmer=bm25["stemmer"])
            log.info("building an index with chunk_size=%d, overlap=%d", chunk_size, overlap)
            if isinstance(source, (str, os.PathLike)) or (isinstance(source, (list, tuple)) and source
                                                          and isinstance(source[0], (str, os.PathLike))):
                index.add(source)
            else:
                index.add_documents(source)
            self.built[key] = index
        return self.built[key]


def _configurations(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys = list(grid)
    values = [v if isinstance(v, (list, tuple)) else [v] for v in grid.values()]
    empty = [k for k, v in zip(keys, values) if not v]
    if empty:
        raise SettingsError(f"the grid gives no values for {', '.join(empty)}")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def compare(target: Any, questions: Any, grid: Mapping[str, Any], *, answers: bool = False,
            documents: Any = None, limit: int | None = None, seed: int = 0) -> Comparison:
    """Evaluate every configuration of ``grid`` on ``questions``; one row each in a :class:`Comparison`.

    ``target``: an :class:`~ragbook.index.Index`, an :class:`~ragbook.assistant.Assistant`
    (its settings are the starting point) or documents' paths (indexed with the defaults).
    ``questions``: a :class:`~ragbook.eval.datasets.QASet`, a question file, or a
    :class:`~ragbook.eval.datasets.BeirData` (retrieval only; graded relevance by document).
    ``grid``: setting -> values, e.g. ``{"mode": ["dense", "bm25", "hybrid"], "k": [3, 5]}``.
    ``answers=True`` also asks every question and scores the answers, with the assistant's
    model (for an index: the default model), unless the grid names ``llm``; slow with a model.
    ``documents``: what to index again when ``chunk_size`` changes (default: the index's folders).
    ``limit`` evaluates a reproducible sample of that many questions (``seed``).
    """
    retrieval_keys = _retrieval_keys()
    _check_keys(grid, answers, retrieval_keys)
    data, qa, name = _questions(questions, answers, limit, seed)
    base_assistant, index, documents, base_retrieval = _starting_point(target, documents, retrieval_keys)
    indexes = _Indexes(index, documents)
    keys = _row_keys(grid)
    configs = _configurations(grid)
    _check(configs, indexes, base_retrieval, retrieval_keys)
    run = _Run(indexes, base_assistant, base_retrieval, retrieval_keys, data, qa, answers)
    rows = []
    for n, config in enumerate(configs, start=1):
        log.info("configuration %d of %d: %s", n, len(configs), config)
        rows.append(run.row(config, keys))
    metrics = [m for m in (*RETRIEVAL_METRICS, *ANSWER_METRICS) if rows and m in rows[0]]
    return Comparison(rows, keys, metrics, name)


def _check_keys(grid: Mapping[str, Any], answers: bool, retrieval_keys: Sequence[str]) -> None:
    """Refuse a setting the grid cannot vary, and answer settings when only retrieval is scored."""
    unknown = [k for k in grid if k not in (*INDEX_KEYS, *ANSWER_KEYS, *retrieval_keys)]
    if unknown:
        raise SettingsError(f"unknown setting(s) in the grid: {', '.join(unknown)}; known: "
                         f"{', '.join((*INDEX_KEYS, *retrieval_keys, *ANSWER_KEYS))}")
    if not answers and any(k in grid for k in ANSWER_KEYS):
        raise SettingsError(f"{', '.join(k for k in grid if k in ANSWER_KEYS)} change the answers, not retrieval: "
                         "pass answers=True to evaluate answers")


def _questions(questions: Any, answers: bool, limit: int | None,
               seed: int) -> tuple[BeirData | None, QASet | None, str]:
    """The BEIR set or the question set to run (a sample of it), and its name; refused if nothing can be scored."""
    if isinstance(questions, BeirData):
        if answers:
            raise SettingsError("answers need a question set with gold answers (load_qa), not a BEIR data set")
        data = questions.sample(limit, seed)
        return data, None, data.name
    qa = (questions if isinstance(questions, QASet) else load_qa(questions)).sample(limit, seed)
    if not answers and not any(q.judged for q in qa):
        raise SettingsError(f"nothing to score in {qa.name or 'the questions'}: no question names a source or page "
                         "(for retrieval), and answers=False")
    return None, qa, qa.name


def _starting_point(target: Any, documents: Any,
                    retrieval_keys: Sequence[str]) -> tuple[Any, Any, Any, dict[str, Any]]:
    """The base assistant (or None), the index, the documents to index again, and the base retrieval settings."""
    from ragbook.assistant import Assistant

    if isinstance(target, Assistant):
        return target, target.index, documents, {k: getattr(target.retriever, k) for k in retrieval_keys}
    if isinstance(target, (str, os.PathLike, list, tuple)):  # documents' paths
        from ragbook.index import Index

        index = Index()
        index.add(target)
        return None, index, target if documents is None else documents, {}
    return None, target, documents, {}


def _row_keys(grid: Mapping[str, Any]) -> list[str]:
    """The settings each row shows: the grid's, ``k`` always, and ``overlap`` beside ``chunk_size``."""
    keys = list(grid) + ([] if "k" in grid else ["k"])
    if "chunk_size" in grid and "overlap" not in grid:
        keys.insert(keys.index("chunk_size") + 1, "overlap")
    return keys


@dataclass
class _Run:
    """What every configuration of one :func:`compare` shares; :meth:`row` evaluates one configuration."""

    indexes: _Indexes
    base_assistant: Any
    base_retrieval: dict[str, Any]
    retrieval_keys: Sequence[str]
    data: BeirData | None
    qa: QASet | None
    answers: bool
    llms: dict[str, Any] = field(default_factory=dict)  # models loaded once, shared by every row

    def row(self, config: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
        """One configuration's settings and figures."""
        ix = self.indexes.get(config.get("chunk_size"), config.get("overlap"))
        retrieval = {**self.base_retrieval, **{k: v for k, v in config.items() if k in self.retrieval_keys}}
        k = retrieval.setdefault("k", 10 if self.data is not None else 5)
        row: dict[str, Any] = {key: _label(config[key]) if key in config else None for key in keys}
        row["k"] = k
        if "overlap" in row and "overlap" not in config:
            row["overlap"] = ix.overlap
        if self.data is not None:
            result = evaluate_retrieval(ix, self.data.queries, self.data.qrels, **retrieval)
            row.update({m: result[f"{m}@{k}"] for m in RETRIEVAL_METRICS})
        elif self.qa is not None and any(q.judged for q in self.qa):
            found = evaluate_qa_retrieval(ix, self.qa, **retrieval)
            row.update({m: found.summary[f"{m}@{k}"] for m in RETRIEVAL_METRICS})
        if self.answers and self.qa is not None:  # (answers without a question set were refused above)
            said = _answers(self.base_assistant, ix, self.qa, config, retrieval, self.llms)
            row.update({m: said.summary[m] for m in ANSWER_METRICS})
            row["seconds_per_question"] = said.summary["seconds_per_question"]
        return row


def _check(configs: list[dict[str, Any]], indexes: _Indexes, base: dict[str, Any],
           retrieval_keys: Sequence[str]) -> None:
    """Fail before the first configuration runs, not halfway through a long grid."""
    from ragbook.chunking import Chunker
    from ragbook.retrieval import Retriever

    for config in configs:
        if "chunk_size" in config or "overlap" in config:
            size = config.get("chunk_size") or indexes.base.chunk_size
            Chunker(chunk_size=size, overlap=indexes.overlap_for(size) if config.get("overlap") is None
                    else config["overlap"])
        retrieval = {**base, **{k: v for k, v in config.items() if k in retrieval_keys}}
        if isinstance(retrieval.get("reranker"), (str, os.PathLike)):
            retrieval.pop("reranker")  # a model folder: loaded when its configuration runs
        Retriever(indexes.base, **retrieval)


def _answers(base: Any, index: Any, qa: QASet, config: Mapping[str, Any], retrieval: dict[str, Any],
             llms: dict[str, Any]) -> Any:
    """Answer the questions with an assistant set up as ``config`` says (models loaded once)."""
    from ragbook.assistant import Assistant

    settings: dict[str, Any] = {}
    if base is not None:
        settings = {"name": base.name, "template": base.template, "min_relevance": base.min_relevance,
                    "max_answer_tokens": base.max_answer_tokens, "temperature": base.temperature}
    settings.update({k: v for k, v in config.items() if k in ANSWER_KEYS})
    if "llm" not in config and base is not None:
        settings["llm"] = "extractive" if base.extractive else base.llm  # loaded once, shared by every row
    spec = settings.get("llm")
    if spec is None or isinstance(spec, (str, os.PathLike)):
        name = "default" if spec is None else os.fspath(spec)
        if name not in llms:
            bot = Assistant(index, llm=spec)
            llms[name] = "extractive" if bot.extractive else bot.llm
        settings["llm"] = llms[name]
    return evaluate_answers(Assistant(index, **settings, **retrieval), qa)


@dataclass
class Comparison:
    """One row per configuration: its settings (``keys``) and the figures (``metrics``)."""

    rows: list[dict[str, Any]]
    keys: list[str]
    metrics: list[str]
    name: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]

    def _default_metric(self) -> str | None:
        return next((m for m in ("ndcg", "f1") if m in self.metrics), self.metrics[0] if self.metrics else None)

    def best(self, metric: str | None = None) -> dict[str, Any]:
        """The row with the highest ``metric`` (nDCG, else F1, by default); the first one on a tie."""
        metric = metric or self._default_metric()
        if metric not in self.metrics:
            raise SettingsError(f"no figure {metric!r} here; the figures are {', '.join(self.metrics)}")
        scored = [r for r in self.rows if r.get(metric) is not None]
        if not scored:
            raise SettingsError(f"no configuration has a value for {metric!r}")
        return max(scored, key=lambda r: r[metric])

    def varied(self) -> list[str]:
        """The settings that take more than one value."""
        return [k for k in self.keys if len({str(r.get(k)) for r in self.rows}) > 1]

    def to_pandas(self) -> Any:
        return import_pandas("Comparison.to_pandas").DataFrame(self.rows, columns=[*self.keys, *self._columns()])

    def _columns(self) -> list[str]:
        extra = [c for c in (self.rows[0] if self.rows else {}) if c not in self.keys and c not in self.metrics]
        return [*self.metrics, *extra]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keys": self.keys, "metrics": self.metrics, "rows": self.rows}

    def to_table(self) -> str:
        """A plain-text table, one line per configuration."""
        return format_table(self.rows, [*self.keys, *self._columns()])

    def __str__(self) -> str:
        return self.to_table()

    def __repr__(self) -> str:
        metric = self._default_metric()
        best = ""
        if metric and self.rows and any(r.get(metric) is not None for r in self.rows):
            top = self.best(metric)
            best = f", best={ {k: top[k] for k in (self.varied() or self.keys)} }, {summary_text(top, [metric])}"
        return f"Comparison(name={self.name!r}, configurations={len(self)}, varied={self.varied()}{best})"

    def _repr_html_(self) -> str:
        columns = [*self.keys, *self._columns()]
        tops = {m: max((r[m] for r in self.rows if r.get(m) is not None), default=None) for m in self.metrics}
        body = []
        for r in self.rows:
            cells: list[Any] = []
            for c in columns:
                value = r.get(c)
                text = "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
                if c in tops and value is not None and value == tops[c]:
                    cells.append(Markup(f"<b>{html_escape(text)}</b>"))
                else:
                    cells.append(text)
            body.append(cells)
        title = html_escape(f"{len(self)} configurations on {self.name or 'the questions'}")
        return (f"<div class='ragbook-comparison'><b>{title}</b> <small>(best in bold)</small>"
                f"{html_table(columns, body)}</div>")

    def plot(self, metrics: str | Sequence[str] | None = None, x: str | None = None) -> Any:
        """Bars of ``metrics`` (one panel each) over the values of ``x``, one bar per other setting.

        Returns a matplotlib ``Figure``: a notebook shows it as the cell's result, and
        ``fig.savefig("grid.png")`` writes it to a file.  ``x`` defaults to the first setting
        that varies.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise MissingDependencyError("Comparison.plot needs matplotlib: pip install matplotlib "
                              "(or pip install 'ragbook[eval]')") from exc
        names = [metrics] if isinstance(metrics, str) else list(metrics or self.metrics[:2])
        missing = [m for m in names if m not in self.metrics]
        if missing or not names:
            raise SettingsError(f"cannot plot {', '.join(missing) or 'nothing'}; the figures are {', '.join(self.metrics)}")
        varied = self.varied()
        x = x or (varied[0] if varied else self.keys[0])
        if x not in self.keys:
            raise SettingsError(f"x must be one of the settings {', '.join(self.keys)}, not {x!r}")
        groups = [k for k in varied if k != x]
        xs = list(dict.fromkeys(str(r.get(x)) for r in self.rows))
        series = list(dict.fromkeys(tuple(str(r.get(k)) for k in groups) for r in self.rows))
        width = 0.8 / len(series)
        fig = plt.figure(figsize=(max(4.0, 0.5 * len(xs) * len(series) + 2) * len(names), 3.6), layout="constrained")
        plt.close(fig)  # shown once, as the cell's result, and not kept by pyplot
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, metric in zip(axes, names):
            for j, s in enumerate(series):
                values = []
                for xv in xs:
                    match = [r.get(metric) for r in self.rows
                             if str(r.get(x)) == xv and tuple(str(r.get(k)) for k in groups) == s]
                    values.append(math.nan if not match or match[0] is None else match[0])
                label = ", ".join(f"{k}={v}" for k, v in zip(groups, s)) or None
                ax.bar([i - 0.4 + width * (j + 0.5) for i in range(len(xs))], values, width, label=label)
            ax.set_xticks(range(len(xs)), xs)
            ax.set_xlabel(x)
            ax.set_title(metric)
            top = max((v for r in self.rows if isinstance(v := r.get(metric), (int, float))), default=1.0)
            ax.set_ylim(0, 1.05 if top <= 1 else top * 1.1)
            ax.grid(axis="y", alpha=0.3)
        if len(series) > 1:
            fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize="small")
        fig.suptitle(self.name or "comparison", fontsize="medium")
        return fig
