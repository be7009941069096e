"""The ``ragbook`` command: build, search and inspect indexes from a terminal."""

from __future__ import annotations

import argparse
import errno
import io
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main"]

# Document text and file names are untrusted, and a terminal obeys escape sequences: an ESC or a
# CSI byte in a PDF could retitle the window, rewrite the screen or (OSC 52) fill the clipboard.
# Everything ragbook prints goes through _TerminalSafe, which shows such characters as escapes.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with control and bidirectional-override characters shown as ``\\uXXXX`` escapes."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


class _TerminalSafe(io.TextIOBase):
    """A stdout wrapper that escapes control characters (valid inside JSON strings too)."""

    def __init__(self, stream) -> None:  # noqa: ANN001 - any text stream
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal_safe(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")


def _paths_exist(paths: Sequence[str], what: str) -> None:
    """A path the user typed that does not exist is an error (a glob may match nothing: it is reported)."""
    from ragbook.errors import NotFoundError

    for raw in paths:
        if not os.path.lexists(os.path.expanduser(raw)) and not re.search(r"[*?[]", raw):
            raise NotFoundError(f"{what} {raw!r} does not exist (relative paths start at {os.getcwd()}); check the path")


def _parse_filter(items: list[str] | None) -> dict[str, object] | None:
    """``source=notes/*.md``, ``page=3-10``, ``page=4``, ``format=pdf``, ``section!=References`` -> a filters dict."""
    if not items:
        return None
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        negated = key.endswith("!")
        key = key[:-1] if negated else key
        if not sep or not key:
            raise SystemExit(f"ragbook: --filter expects KEY=VALUE or KEY!=VALUE (e.g. source='notes/*.md', "
                             f"page=3-10 or section!=References), got {item!r}")
        wanted: object = value
        if key in ("page", "cell", "slide"):
            from ragbook.filters import parse_range

            try:
                wanted = parse_range(value)
            except ValueError:
                raise SystemExit(f"ragbook: --filter {key} needs a number or a range like 3-10, got {value!r}") from None
        out[key] = {"not": wanted} if negated else wanted
    return out


def _parse_vector(items: list[str] | None) -> dict[str, int]:
    """``--vector ef_search=200`` -> ``{"ef_search": 200}`` (checked by IndexConfig, like any index setting)."""
    from ragbook.settings import VECTOR_KEYS

    out: dict[str, int] = {}
    for item in items or []:
        key, _, value = item.partition("=")
        if key not in VECTOR_KEYS or not value.strip().isdigit():
            raise SystemExit(f"ragbook: --vector expects KEY=N with KEY one of {', '.join(VECTOR_KEYS)}, got {item!r}")
        out[key] = int(value)
    return out


def _cmd_index(args: argparse.Namespace) -> int:
    from ragbook.index import build

    _paths_exist(args.paths, "the path")

    settings: dict[str, object] = {"include": args.include, "exclude": args.exclude, "hidden": args.hidden}
    for key in ("embedding_model", "chunk_size", "overlap", "index_type"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    settings.update(_parse_vector(args.vector))
    if args.engine != "local" or args.address:
        settings.update(engine=args.engine, address=args.address)
    index = build(args.paths, out=args.out, **settings)
    report = index.last_report
    print(f"Indexed into {args.out}: {index.stats()['files']} files, {len(index.chunks)} chunks")
    print(report)
    if args.strict and report is not None and report.skipped:
        return 1
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from ragbook.index import Index

    index = Index.load(args.index, embedding_model=args.embedding_model)
    if args.documents:
        return _search_documents(index, args)
    results = index.search(
        args.query, k=args.k, mode=args.mode, fusion=args.fusion, weight=args.weight, mmr=args.mmr,
        filters=_parse_filter(args.filter), min_score=args.min_score, reranker=args.rerank,
    )
    if _print_results(results, args, "results") and args.explain:
        print()
        for hit in results:
            print(f"{hit.rank}. {hit.citation()}: {hit.explain()}")
    return 0


def _search_documents(index, args: argparse.Namespace) -> int:
    """``search --documents``: the k best files, one line each with its best passage's citation."""
    from ragbook.errors import SettingsError

    if args.mmr is not None:
        raise SettingsError("--mmr does not apply with --documents: the documents are distinct already; leave it out")
    results = index.retriever(
        mode=args.mode, fusion=args.fusion, weight=args.weight, filters=_parse_filter(args.filter),
        min_score=args.min_score, reranker=args.rerank,
    ).search_documents(args.query, k=args.k)
    if _print_results(results, args, "documents") and args.explain:
        print()
        for doc in results:
            for hit in doc.hits:
                print(f"{doc.rank}. {hit.citation()} (passage #{hit.rank}): {hit.explain()}")
    return 0


def _print_results(results: Any, args: argparse.Namespace, what: str) -> bool:
    """Print search results as JSON or a table; True when a table of some results was printed."""
    if args.json:
        print(json.dumps([r.to_dict() for r in results], ensure_ascii=False, indent=2))
        return False
    if not len(results):
        print(f"No {what}. Try other words, a lower --min-score, or fewer filters.")
        return False
    print(results.to_table(width=int(os.environ.get("COLUMNS", "0")) or 120))
    return True


DEMO_QUESTION = "How many times can I run a lab through the autograder?"


def _print_answer(answer, stream=None, *, show_prompt: bool = False, evidence: bool = False) -> None:
    """Print one answer, as ragbook's checks left it (the model's own words are ``answer.raw_text``), then its
    sources and notes.  While the model writes (``stream``), a terminal shows the last words on one line."""
    if stream is not None:
        live = sys.stderr.isatty()
        width = max(20, min(120, _terminal_width()) - 6)
        seen = ""
        if live:  # before the first words: what is happening (searching, the model reading the passages)
            def stage(name: str, line: str) -> None:
                if name in ("searching", "reading", "checking"):
                    sys.stderr.write("\r\x1b[K  " + terminal_safe(line)[:width])
                    sys.stderr.flush()

            stream.on_stage = stage
        for piece in stream:
            if live:
                seen = " ".join((seen + piece).split())[-width:]
                sys.stderr.write("\r\x1b[K  \u2026 " + terminal_safe(seen))
                sys.stderr.flush()
        if live:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
        answer = stream.answer
    print(answer.text)
    if show_prompt and answer.prompt:
        print("\n--- prompt ---\n" + answer.prompt + "\n--------------")
    grounding = getattr(answer, "grounding", None)
    if grounding is not None and grounding.quote:
        print(f"\n  the model quoted [{grounding.n}]: \u201c{grounding.quote}\u201d"
              + ("" if grounding.exact else " (a near copy of the passage's sentence)"))
    if answer.citations:
        print()
        for c in answer.citations:
            print(f"  {c.reference()}")
    elif answer.passages and not answer.abstained:
        print("\n  (no citations; closest passages:)")
        for n, hit in enumerate(answer.passages[:3], start=1):
            print(f"  [{n}] {hit.citation()}")
    for note, warning in answer._notes() if hasattr(answer, "_notes") else ():
        print(f"  {'! ' if warning else ''}{note}")
    if evidence and answer.evidence:
        print("\n  evidence (each cited sentence, then the passage's sentence that backs it best):")
        for e in answer.evidence:
            print(f"  - {e.sentence}\n      [{e.n}] \u201c{e.quote}\u201d (holds {e.support:.0%} of its words)")
    for check in answer.checks:
        if check.flag:
            print(f"  ! {check.flag}: {check.sentence[:100]}")
        if check.quote:
            print(f"      the passage says: \u201c{check.quote}\u201d")
    t = answer.timings
    parts = [f"{k} {v:.2f} s" for k, v in t.items()]
    print(f"\n  ({answer.llm}, {answer.mode}; {', '.join(parts)})")


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns


def _assistant_llm(args: argparse.Namespace):
    return "extractive" if getattr(args, "extractive", False) else getattr(args, "llm", None)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ragbook.assistant import Assistant
    from ragbook.errors import NotFoundError
    from ragbook.index import build

    corpus = Path(args.corpus)
    if not corpus.is_dir():
        raise NotFoundError(f"demo corpus folder {corpus} not found; run from the ragbook checkout or pass --corpus")
    print(f"Building the demo index from {corpus}/ into {args.out}/ (offline, all-MiniLM-L6-v2) ...")
    index = build(corpus, out=args.out)
    print(index.last_report)
    bot = Assistant(index, name="DATA 101 course assistant", llm=_assistant_llm(args), template="tutor")
    if not bot.extractive:
        from ragbook.llm import LLMError

        try:
            print(f"Loading the language model ({bot.llm_name}) ...")
            _ = bot.llm  # load now, with the message above, not in the middle of the answer
        except LLMError as exc:
            print(f"No language model available ({exc}).\nAnswering in extractive mode (quotes from the documents).")
            bot.llm = "extractive"
    print(f"\nQ: {args.question}\nA: ", end="", flush=True)
    _print_answer(None, bot.stream(args.question), show_prompt=args.show_prompt)
    if args.save:
        saved = bot.save(args.save)
        print(f"\nSaved the assistant to {saved}: `ragbook ask {saved} \"...\"`, or ragbook.load({saved!r}) in a notebook.")
    return 0


def _load_assistant(args: argparse.Namespace):
    from ragbook.assistant import load_assistant

    overrides = {}
    llm = _assistant_llm(args)
    if llm is not None:
        overrides["llm"] = llm
    if getattr(args, "k", None):
        overrides["k"] = args.k
    if getattr(args, "template", None):
        overrides["template"] = args.template
    if getattr(args, "no_verify", False):
        overrides["verify"] = False
    return load_assistant(args.file, trust_llm=args.trust_llm, **overrides)  # its notes are logged as warnings


def _cmd_ask(args: argparse.Namespace) -> int:
    bot = _load_assistant(args)
    if args.json:
        print(json.dumps(bot.ask(args.question).to_dict(), ensure_ascii=False, indent=2))
        return 0
    _print_answer(None, bot.stream(args.question), show_prompt=args.show_prompt, evidence=args.evidence)
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    from ragbook.errors import RagbookError

    bot = _load_assistant(args)
    print(f"{bot.name}: ask about its documents. Commands: /reset (new topic), /prompt (last prompt), /quit.")
    last = None
    while True:
        try:
            line = input("\nyou> ").strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line == "/reset":
            bot.reset()
            print("(conversation cleared)")
            continue
        if line == "/prompt":
            print(last.prompt if last is not None and last.prompt else "(no prompt yet)")
            continue
        try:
            stream = bot.stream(line, chat=True)
            print(f"{bot.name}> ", end="", flush=True)
            _print_answer(None, stream)
            last = stream.answer
        except (RagbookError, OSError) as exc:  # a failed answer ends the answer, not the conversation
            print(f"\nragbook: {_error_line(exc)}\n(ask again, /reset, or /quit)", flush=True)


def _cmd_serve(args: argparse.Namespace) -> int:
    from ragbook.server import default_parallel, load_for_serving, need_web_stack, serve
    from ragbook.server.command import banner, server_config

    need_web_stack()
    config, token = server_config(args)
    print(f"Loading {args.file} ...", file=sys.stderr, flush=True)
    assistant = load_for_serving(args.file, llm=_assistant_llm(args), trust_llm=args.trust_llm)
    config["parallel"] = args.parallel or default_parallel(assistant)
    print(banner(args, assistant, config, token), file=sys.stderr, flush=True)
    logging.getLogger("ragbook").setLevel(logging.INFO)
    serve(assistant, host=args.host, port=args.port, log_level="warning", **config)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from ragbook.llm import format_models, list_models

    print(format_models(list_models()))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ragbook.storage import read_manifest

    manifest, _ = read_manifest(Path(args.index), verify=False)
    if args.json:
        print(json.dumps({k: v for k, v in manifest.items() if k != "files" or args.files}, indent=2, ensure_ascii=False))
        return 0
    emb, chunking, vec, counts = manifest["embedding"], manifest["chunking"], manifest["vectors"], manifest["counts"]
    print(f"index       {args.index} (format {manifest['format_version']}, ragbook {manifest['ragbook_version']}, "
          f"saved {manifest['saved']})")
    print(f"model       {emb['model']} ({emb['dimension']} dimensions, normalized={emb['normalize']}, "
          f"reads {emb['max_seq_length']} tokens)")
    print(f"chunking    {chunking['chunk_size']} tokens, overlap {chunking['overlap']}")
    print(f"vectors     {vec['in_use']} (requested {vec['kind']})")
    bm = manifest["bm25"]
    print(f"bm25        k1={bm['k1']} b={bm['b']} stemmer={bm['stemmer']}")
    print(f"contents    {counts['files']} files, {counts['documents']} documents, {counts['chunks']} chunks "
          f"({counts['unique_chunks']} distinct)")
    for root in manifest.get("roots", []):
        print(f"root        {root}")
    problems = (manifest.get("last_build") or {}).get("problems", [])
    for p in problems:
        print(f"{p['severity']:<11} {p['source']}: {p['reason']}")
    if args.files:
        for source, rec in sorted(manifest["files"].items()):
            print(f"  {source}  [{rec['format']}] {rec['chunks']} chunks")
    return 0


def _parse_grid(items: list[str] | None) -> dict[str, list[object]]:
    """``mode=dense,bm25`` and ``k=3,5`` -> ``{"mode": ["dense", "bm25"], "k": [3, 5]}``."""
    grid: dict[str, list[object]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not values.strip():
            raise SystemExit(f"ragbook: --grid expects KEY=VALUE,VALUE (e.g. mode=dense,bm25,hybrid or k=3,5), "
                             f"got {item!r}")
        grid[key] = [_grid_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def _grid_value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def _print_figures(title: str, summary: dict, keys: list[str]) -> None:
    print(title)
    print("  " + "  ".join(f"{k} {summary[k]:.4f}" for k in keys if summary.get(k) is not None))


def _eval_answers_figures(report) -> None:
    s = report.summary
    _print_figures(f"\nAnswers ({report.settings['model']}): {s['questions']} questions, "
                   f"{s['unanswerable']} unanswerable, {s['seconds_per_question']:.2f} s each",
                   s, ["correct", "confidently_wrong", "em", "f1", "contains", "citation_precision", "retrieved",
                       "abstention_recall", "abstention_precision", "false_abstentions"])


def _cmd_eval(args: argparse.Namespace) -> int:
    from ragbook.errors import SettingsError
    from ragbook.evaluation import compare, evaluate_answers, evaluate_qa_retrieval, load_qa

    target = Path(args.target)
    _paths_exist([args.target] + ([args.questions] if args.questions else []), "the path")
    grid = _parse_grid(args.grid)
    if (target / "corpus.jsonl").is_file():
        if args.questions:
            raise SettingsError(f"{target} is a data set with its own questions; leave out {args.questions}")
        return _eval_dataset(args, target, grid)
    if not args.questions:
        raise SettingsError("which questions? ragbook eval TARGET QUESTIONS (a .csv, .jsonl or .json file), "
                         "or ragbook eval DATASET_FOLDER for a BEIR folder")
    qa = load_qa(args.questions).sample(args.limit)
    overrides: dict[str, Any] = {k: v for k, v in (("k", args.k), ("mode", args.mode)) if v is not None}
    llm = _assistant_llm(args)
    if llm is not None:
        overrides["llm"] = llm
    if target.is_file() and target.suffix == ".ragbook":
        from ragbook.assistant import load_assistant

        bot = load_assistant(target, trust_llm=args.trust_llm, **overrides)
    else:
        from ragbook.assistant import Assistant
        from ragbook.index import Index, build

        index = Index.load(target) if (target / "manifest.json").is_file() else build(args.target)
        bot = Assistant(index, **overrides)
    out: dict[str, object] = {"target": str(target), "questions": str(args.questions), "sample": len(qa)}
    retrieval = evaluate_qa_retrieval(bot, qa)
    if len(retrieval):
        k = retrieval.k
        _print_figures(f"Retrieval on {qa.name}: {len(retrieval)} questions with a source, "
                       f"{retrieval.settings['mode']}, k={k}", retrieval.summary,
                       [f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg")])
        misses = retrieval.misses()
        for row in misses[:10]:
            print(f"  missed {row['id']}: {row['question'][:70]!r} (expected {row['expected']}; top: {row['top']})")
        if len(misses) > 10:
            print(f"  ... and {len(misses) - 10} more missed (--json OUT lists every question)")
        out["retrieval"] = retrieval.to_dict()
    else:
        print(f"Retrieval: not scored (no question in {qa.name} names a source or page)")
    if args.answers:
        report = evaluate_answers(bot, qa)
        _eval_answers_figures(report)
        out["answers"] = report.to_dict()
    if grid:
        result = compare(bot, qa, grid, answers=args.answers)
        print(f"\nGrid: {len(result)} configurations\n{result.to_table()}")
        out["grid"] = result.to_dict()
    return _write_eval_json(args, out)


def _eval_dataset(args: argparse.Namespace, folder: Path, grid: dict[str, list[object]]) -> int:
    """``ragbook eval`` on a BEIR (or SQuAD-style) folder: index its corpus, score its questions."""
    from ragbook.assistant import Assistant
    from ragbook.errors import DataFormatError
    from ragbook.evaluation import beir_documents, compare, evaluate_answers, evaluate_retrieval, index_beir, load_beir, load_qa

    data = load_beir(folder).sample(args.limit)
    print(f"{data!r}\nIndexing {len(data.corpus):,} documents ...")
    index = index_beir(data.corpus)
    k = args.k or 10
    mode = args.mode or "hybrid"
    result = evaluate_retrieval(index, data.queries, data.qrels, k=k, mode=mode)
    _print_figures(f"Retrieval: {result['queries']} queries, {mode}, k={k}", result,
                   [f"{m}@{k}" for m in ("hit", "recall", "mrr", "ndcg")])
    out: dict[str, object] = {"target": str(folder), "sample": result["queries"],
                              "retrieval": {key: v for key, v in result.items() if key != "per_query"}}
    qa = None
    if args.answers:
        if not (folder / "questions.jsonl").is_file():
            raise DataFormatError(f"{folder} has no gold answers (questions.jsonl, SQuAD-style): answers cannot be scored")
        qa = load_qa(folder).sample(args.limit)
        bot = Assistant(index, llm=_assistant_llm(args), k=args.k or 5, mode=mode)
        report = evaluate_answers(bot, qa)
        _eval_answers_figures(report)
        out["answers"] = report.to_dict()
    if grid:
        grid = {"k": [k], **grid} if "k" not in grid else grid
        compared = compare(index, qa if qa is not None else data, grid, answers=args.answers,
                           documents=beir_documents(data.corpus))
        print(f"\nGrid: {len(compared)} configurations\n{compared.to_table()}")
        out["grid"] = compared.to_dict()
    return _write_eval_json(args, out)


def _write_eval_json(args: argparse.Namespace, out: dict[str, object]) -> int:
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def _parser() -> argparse.ArgumentParser:
    from ragbook import __version__

    p = argparse.ArgumentParser(prog="ragbook", description="Retrieval-augmented assistants over your own documents, offline.")
    p.add_argument("--version", action="version", version=f"ragbook {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens; show the traceback of an error")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = p.add_subparsers(dest="command", required=True)
    from ragbook.server.command import add_serve_command

    for add in (_index_command, _search_command, _demo_command, _ask_and_chat_commands, _other_commands,
                _eval_command, add_serve_command):
        add(sub)
    sub.choices["serve"].set_defaults(func=_cmd_serve)
    for command in {id(c): c for c in sub.choices.values()}.values():  # -v after the command too (aliases once)
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log what happens; show the traceback of an error")
    return p


def _about(name: str) -> str:
    """A retrieval setting's description: the command line's help is the settings' own (ragbook.settings)."""
    from ragbook.settings import RetrievalConfig, describe

    return describe(RetrievalConfig)[name][1]


def _index_command(sub: Any) -> None:
    from ragbook.vectors import KINDS as VECTOR_KINDS

    ix = sub.add_parser("index", help="build or update an index from files, folders or globs")
    ix.add_argument("paths", nargs="+", help="files, folders (recursive) or globs")
    ix.add_argument("--out", "-o", required=True, help="index folder to create or update")
    ix.add_argument("--include", action="append", help="only files matching this glob (repeatable)")
    ix.add_argument("--exclude", action="append", help="skip files matching this glob (repeatable)")
    ix.add_argument("--hidden", action="store_true", help="include hidden files and folders")
    ix.add_argument("--embedding-model", "--model", dest="embedding_model",
                    help="embedding model: name or local folder (default all-MiniLM-L6-v2; --model is its old name)")
    ix.add_argument("--chunk-size", type=int, help="chunk size in model tokens")
    ix.add_argument("--overlap", type=int, help="overlap between chunks in tokens")
    ix.add_argument("--index-type", choices=list(VECTOR_KINDS), help="vector index kind")
    ix.add_argument("--vector", action="append", metavar="KEY=N",
                    help="vector index tuning, e.g. ef_search=200, nprobe=16, hnsw_m=32, pq_m=48, refine=10 (repeatable)")
    ix.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="who reads, chunks and embeds: this process (default), or a Ray cluster (pip install 'ragbook[ray]')")
    ix.add_argument("--address", help="with --engine ray: the cluster to join (HOST:PORT or auto; default: start Ray here)")
    ix.add_argument("--strict", action="store_true", help="exit with status 1 if any file was skipped")
    ix.set_defaults(func=_cmd_index)


def _search_command(sub: Any) -> None:
    from ragbook.settings import FUSIONS, MODES, RetrievalConfig

    RETRIEVAL = RetrievalConfig()  # the command line's defaults are the settings' own
    se = sub.add_parser("search", help="search an index")
    se.add_argument("index", help="index folder")
    se.add_argument("query", help="what to look for")
    se.add_argument("-k", type=int, default=RETRIEVAL.k,
                    help=f"number of results: passages, or documents with --documents (default {RETRIEVAL.k})")
    se.add_argument("--mode", choices=MODES, default=RETRIEVAL.mode, help=_about("mode"))
    se.add_argument("--fusion", choices=FUSIONS, default=RETRIEVAL.fusion, help=_about("fusion"))
    se.add_argument("--weight", type=float, default=RETRIEVAL.weight, help=_about("weight"))
    se.add_argument("--mmr", type=float, default=RETRIEVAL.mmr, metavar="LAMBDA", help=_about("mmr"))
    se.add_argument("--filter", action="append", metavar="KEY=VALUE",
                    help="e.g. source='*.pdf', page=3-10, section!=References (repeatable)")
    se.add_argument("--min-score", type=float, default=RETRIEVAL.min_score, help=_about("min_score"))
    se.add_argument("--rerank", metavar="FOLDER", help="cross-encoder model folder to rerank with")
    se.add_argument("--embedding-model", "--model", dest="embedding_model",
                    help="where to find the index's embedding model, if not where it was (--model: its old name)")
    se.add_argument("--explain", action="store_true", help="show why each passage was picked")
    se.add_argument("--json", action="store_true", help="print results as JSON")
    se.add_argument("--documents", action="store_true",
                    help="list the k best documents (files) instead of passages, each with its best passage")
    se.set_defaults(func=_cmd_search)


def _demo_command(sub: Any) -> None:
    de = sub.add_parser("demo", help="build the demo assistant from corpora/ and answer a question with citations")
    de.add_argument("question", nargs="?", default=DEMO_QUESTION)
    de.add_argument("--corpus", default="corpora", help="folder to index (default: corpora)")
    de.add_argument("--out", default=".ragbook-demo", help="index folder (default: .ragbook-demo)")
    de.add_argument("--save", default="data101.ragbook", help="save the assistant to this file ('' to skip)")
    de.add_argument("--llm", help="model preset, .gguf file, model folder, or openai:URL (default: best installed)")
    de.add_argument("--extractive", action="store_true", help="answer with quotes from the documents, no model")
    de.add_argument("--show-prompt", action="store_true", help="print the prompt the model was given")
    de.set_defaults(func=_cmd_demo)


def _ask_and_chat_commands(sub: Any) -> None:
    from ragbook.prompt import TEMPLATES

    for name, help_text in (("ask", "answer one question with a saved assistant"), ("chat", "talk with a saved assistant")):
        cp = sub.add_parser(name, help=help_text)
        cp.add_argument("file", help="a .ragbook assistant file")
        if name == "ask":
            cp.add_argument("question")
            cp.add_argument("--json", action="store_true", help="print the whole answer as JSON")
            cp.add_argument("--show-prompt", action="store_true", help="print the prompt the model was given")
            cp.add_argument("--evidence", action="store_true",
                            help="show, for each cited sentence, the sentence of its passage that backs it")
        cp.add_argument("--llm", help="use another model: preset, .gguf file, folder, or openai:URL")
        cp.add_argument("--extractive", action="store_true", help="answer with quotes from the documents, no model")
        cp.add_argument("--trust-llm", action="store_true",
                        help="use the model (server, file or folder) the assistant file names; by default a shared "
                             "file only suggests one and this machine's model answers")
        cp.add_argument("-k", type=int, help="passages to retrieve")
        cp.add_argument("--template", choices=list(TEMPLATES), help="prompt template")
        cp.add_argument("--no-verify", action="store_true",
                        help="skip the model's own checks of its answer (a second or two each; the rules still apply)")
        cp.set_defaults(func=_cmd_ask if name == "ask" else _cmd_chat)


def _other_commands(sub: Any) -> None:
    mo = sub.add_parser("llms", aliases=["models"],
                        help="list the language models ragbook knows, and which are installed (models: its old name)")
    mo.set_defaults(func=_cmd_models)

    inf = sub.add_parser("info", help="show an index's model, settings and contents")
    inf.add_argument("index", help="index folder")
    inf.add_argument("--files", action="store_true", help="list the indexed files")
    inf.add_argument("--json", action="store_true", help="print the manifest as JSON")
    inf.set_defaults(func=_cmd_info)


def _eval_command(sub: Any) -> None:
    from ragbook.settings import MODES, RetrievalConfig

    RETRIEVAL = RetrievalConfig()
    ev = sub.add_parser("eval", help="evaluate retrieval and answers on a question set, or compare settings",
                        description="Score an assistant (.ragbook), an index folder or a documents folder on a "
                                    "question set (CSV/JSONL/JSON: question, source, page, answer, unanswerable), "
                                    "or index a BEIR/SQuAD-style folder and score its own questions.")
    ev.add_argument("target", help=".ragbook file, index folder, documents folder, or a BEIR folder")
    ev.add_argument("questions", nargs="?", help="question set file (not needed for a BEIR folder)")
    ev.add_argument("--k", type=int, help="passages retrieved per question (default: the assistant's own, 3 unless it was saved "
                         "with another; 10 on BEIR)")
    ev.add_argument("--mode", choices=MODES, help=f"retrieval mode (default {RETRIEVAL.mode})")
    ev.add_argument("--answers", action="store_true", help="also answer every question and score the answers")
    ev.add_argument("--llm", help="model for --answers: preset, .gguf file, folder, or openai:URL")
    ev.add_argument("--extractive", action="store_true", help="answer with quotes from the documents, no model")
    ev.add_argument("--trust-llm", action="store_true", help="use the model a .ragbook target names (see ragbook ask)")
    ev.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                    help="compare settings, e.g. mode=dense,bm25,hybrid k=3,5 chunk_size=100,200 (repeatable)")
    ev.add_argument("--limit", type=int, help="score a fixed random sample of this many questions (seed 0)")
    ev.add_argument("--json", metavar="OUT", help="write the figures and per-question rows to this JSON file")
    ev.set_defaults(func=_cmd_eval)


def _error_line(exc: BaseException) -> str:
    """One line that says what went wrong, for an error ragbook raised or one the system did."""
    if isinstance(exc, OSError) and not str(exc).startswith("ragbook") and exc.errno is not None:
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"the disk is full{where}; free some space (or choose another folder) and run the command again"
        reason = exc.strerror or os.strerror(exc.errno)
        hints = {errno.EACCES: "check its permissions", errno.EPERM: "check its permissions",
                 errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EROFS: "choose a writable folder",
                 errno.ENOENT: "check the path", errno.EEXIST: "choose another name"}
        hint = hints.get(exc.errno)
        return f"{reason}{where}" + (f"; {hint}" if hint else "")
    if isinstance(exc, MemoryError):
        return "out of memory; close other programs, or index fewer or smaller files at a time"
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    from ragbook.errors import RagbookError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.no_progress:
        from ragbook.progress import set_progress

        set_progress(False)
    stdout = sys.stdout
    if not isinstance(stdout, _TerminalSafe):
        sys.stdout = _TerminalSafe(stdout)
    try:
        return args.func(args)
    except (RagbookError, OSError, MemoryError) as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"ragbook: error: {terminal_safe(_error_line(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ragbook: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout.flush()
        sys.stdout = stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
