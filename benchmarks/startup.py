"""How long ``import ragbook`` takes, and that it imports none of the heavy libraries.

Measures the median wall time of ``python -c "import ragbook"`` over fresh subprocesses minus
the median of ``python -c "pass"`` (interpreter start-up), alternating the two so that load
from other jobs hits both alike.  Also reports ``from ragbook import Index`` (what a notebook
user types next; it pulls numpy but still no torch/faiss) and, when over target, the top
offenders from ``python -X importtime``.

Then a saved assistant in a fresh process, as in another notebook: ``ragbook.load(file)`` to
the first (extractive) answer, against the raw libraries doing the same work in a fresh
process (load the sentence-transformers model, read the FAISS index, encode the question,
search), each in fresh subprocesses, alternated.

Then the first search in a fresh process, ``open_index(path).search(q)`` and ``ragbook search
PATH q``, with ragbook's default CPU encoder (ONNX Runtime, which needs no torch once its export
is cached) against the same with the torch encoder (what every search paid before): target at
most 0.3x, and no torch imported.

    python benchmarks/startup.py            # 7 runs each (~10 s)
    python benchmarks/startup.py --quick    # 5 runs each
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _common import REPO, Report, median

HEAVY = ("torch", "sentence_transformers", "faiss", "transformers", "llama_cpp")
TARGET_S = 0.3
FIRST_SEARCH_TARGET = 0.3  # issue 14: a fresh process's first result, default encoder / torch encoder

CHECK_HEAVY = (
    "import sys, json, ragbook\n"
    f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    "from ragbook import Index, Retriever, build\n"
    f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure with .pyc files, as a user runs it
    return env


def wall(code: str, extra: tuple[str, ...] = ()) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *extra, "-c", code], check=True, env=_env(), cwd=REPO,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def importtime(code: str, top: int = 12, depth: int = 1) -> list[tuple[float, str]]:
    """The ``top`` modules by cumulative import time (seconds, name), nested at most ``depth`` deep.

    Nested imports are indented by two spaces per level in ``-X importtime`` output; the
    ``depth`` 0 rows (what the code imported itself) add up to the whole import.
    """
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=_env(), cwd=REPO,
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cum_us, name = line.split(":", 1)[1].split("|")
        level = (len(name) - len(name.lstrip()) - 1) // 2
        if level <= depth:
            rows.append((int(cum_us) / 1e6, "  " * level + name.strip()))
    rows.sort(reverse=True)
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="subprocesses per measurement (default 7, 5 with --quick)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 7)
    rep = Report("startup", argv if argv is not None else sys.argv[1:], runs=runs, quick=args.quick)

    codes = {"pass": "pass", "import ragbook": "import ragbook",
             "from ragbook import Index, build": "from ragbook import Index, build"}
    for code in codes.values():  # warm the page cache and write .pyc files
        wall(code)
    samples: dict[str, list[float]] = {k: [] for k in codes}
    for _ in range(runs):  # alternate so that a burst of load hits every kind alike
        for key, code in codes.items():
            samples[key].append(wall(code))
    med = {k: median(v) for k, v in samples.items()}
    net = med["import ragbook"] - med["pass"]
    net_index = med["from ragbook import Index, build"] - med["pass"]

    rep.section(f"import time ({runs} fresh subprocesses each, medians)")
    rep.info("python_pass_s", round(med["pass"], 4), f"python -c pass:                     {med['pass'] * 1000:7.1f} ms")
    rep.info("import_ragbook_raw_s", round(med["import ragbook"], 4),
             f"python -c 'import ragbook':        {med['import ragbook'] * 1000:7.1f} ms (raw)")
    rep.info("from_ragbook_import_index_raw_s", round(med["from ragbook import Index, build"], 4),
             f"python -c 'from ragbook import Index, build': {med['from ragbook import Index, build'] * 1000:7.1f} ms (raw)")
    rep.info("samples_s", {k: [round(x, 4) for x in v] for k, v in samples.items()})
    rep.check("import_ragbook_net_s", round(net, 4), f"< {TARGET_S} s", net < TARGET_S,
              f"import ragbook, net of interpreter start-up: {net * 1000:.1f} ms")
    rep.info("from_ragbook_import_index_net_s", round(net_index, 4),
             f"   from ragbook import Index, build, net: {net_index * 1000:.1f} ms (numpy and ragbook's own modules; no target)")

    rep.section("heavy modules after import")
    out = subprocess.run([sys.executable, "-c", CHECK_HEAVY], env=_env(), cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    after_import, after_index = out[0], out[1]
    rep.check("heavy_after_import", after_import, "[]", after_import == "[]",
              f"heavy modules in sys.modules after `import ragbook`: {after_import} (checked: {', '.join(HEAVY)})")
    rep.check("heavy_after_from_import_index", after_index, "[]", after_index == "[]",
              f"heavy modules after `from ragbook import Index, Retriever, build`: {after_index}")

    for label, code in (("import ragbook", "import ragbook"), ("from ragbook import Index, build", "from ragbook import Index, build")):
        rows = importtime(code)
        over = (net if code == "import ragbook" else net_index) >= TARGET_S
        rep.info(f"importtime_top[{label}]", [{"module": n, "cumulative_s": round(s, 4)} for s, n in rows])
        if over or code == "from ragbook import Index, build":
            print(f"   python -X importtime -c '{code}': top cumulative, imports two levels deep{'' if over else ' (for reference)'}")
            for s, n in rows[:10]:
                print(f"     {s * 1000:7.1f} ms  {n}")
    saved_assistant(rep, runs=3 if args.quick else 5)
    first_search(rep, runs=3 if args.quick else 5)
    rep.write()
    return 0


LOAD_AND_ANSWER = """
import time, json
t0 = time.perf_counter()
import ragbook
bot = ragbook.load({path!r}, llm="extractive")
t1 = time.perf_counter()
answer = bot.ask({question!r})
t2 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "answer": t2 - t1, "total": t2 - t0, "cited": bool(answer.citations)}}))
"""

RAW_LOAD_AND_SEARCH = """
import time, json
t0 = time.perf_counter()
import faiss
from sentence_transformers import SentenceTransformer
from ragbook.embedding import resolve_model
model = SentenceTransformer(str(resolve_model("default")[1]), device="cpu")
index = faiss.read_index({faiss_path!r})
t1 = time.perf_counter()
q = model.encode([{question!r}], normalize_embeddings=True)
index.search(q, 5)
t2 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "answer": t2 - t1, "total": t2 - t0}}))
"""


def saved_assistant(rep: Report, runs: int) -> None:
    """A saved assistant opened in a fresh process, to its first answer, vs the raw libraries' load + search."""
    import json
    import tempfile
    import zipfile
    from pathlib import Path

    import ragbook

    question = "How many times can I submit a lab to the autograder?"
    rep.section("a saved assistant in a fresh process: ragbook.load to the first answer (extractive)")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "demo.ragbook")
        ragbook.Assistant(ragbook.build(REPO / "corpora"), llm="extractive").save(path)
        with zipfile.ZipFile(path) as z:  # the raw side reads a FAISS file of the same vectors
            import faiss
            import numpy as np

            vectors = np.load(z.extract(next(n for n in z.namelist() if n.endswith("vectors.npy")), tmp))
            flat = faiss.IndexFlatIP(vectors.shape[1])
            flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
            faiss_path = str(Path(tmp) / "dense.faiss")
            faiss.write_index(flat, faiss_path)
        codes = {"ragbook": LOAD_AND_ANSWER.format(path=path, question=question),
                 "raw": RAW_LOAD_AND_SEARCH.format(faiss_path=faiss_path, question=question)}
        got: dict[str, list[dict]] = {"ragbook": [], "raw": []}
        for _ in range(runs):
            for label, code in codes.items():
                out = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=REPO, capture_output=True,
                                     text=True, check=True).stdout.strip().splitlines()[-1]
                got[label].append(json.loads(out))
    med = {label: {k: median([r[k] for r in rows]) for k in ("load", "answer", "total")} for label, rows in got.items()}
    for label in ("ragbook", "raw"):
        m = med[label]
        print(f"   {label:8} load {m['load']:.2f} s, first answer {m['answer'] * 1000:.0f} ms, total {m['total']:.2f} s")
    ratio = med["ragbook"]["total"] / med["raw"]["total"]
    rep.info("saved_assistant_s", med, f"   ragbook / raw, load to first answer: {ratio:.2f}x "
             "(ragbook also checks the file, loads BM25 and chunks, and picks sentences to quote)")
    rep.info("saved_assistant_ratio", round(ratio, 3))
    rep.check("saved_assistant_cited", all(r["cited"] for r in got["ragbook"]), "True",
              all(r["cited"] for r in got["ragbook"]), "the first answer of the loaded assistant cites its passages")


OPEN_AND_SEARCH = """
import time, json, sys
t0 = time.perf_counter()
import ragbook
hits = ragbook.open_index({path!r}).search({question!r}, k=5)
t1 = time.perf_counter()
print(json.dumps({{"total": t1 - t0, "top": hits[0].source if hits else None,
                  "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def first_search(rep: Report, runs: int) -> None:
    """A fresh process's first search of a saved index, with the default encoder and with torch's."""
    import json
    import tempfile
    from pathlib import Path

    import ragbook

    question = "How many times can I submit a lab to the autograder?"
    rep.section("first search in a fresh process: open_index(...).search(q) and `ragbook search PATH q`")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "index")
        ragbook.build(REPO / "corpora", out=path)
        encoders = {"default": {}, "torch": {"RAGBOOK_EMBEDDING_BACKEND": "torch"}}
        api = {label: [] for label in encoders}
        cli = {label: [] for label in encoders}
        code = OPEN_AND_SEARCH.format(path=path, question=question, heavy=HEAVY)
        for i in range(runs + 1):  # the first round warms the file cache (and makes the ONNX export once)
            for label, extra in encoders.items():
                env = {**_env(), **extra}
                out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                                     text=True, check=True).stdout.strip().splitlines()[-1]
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "ragbook", "search", path, question], env=env, cwd=REPO,
                               capture_output=True, text=True, check=True)
                if i:
                    api[label].append(json.loads(out))
                    cli[label].append(time.perf_counter() - t0)
    med = {label: median([r["total"] for r in rows]) for label, rows in api.items()}
    med_cli = {label: median(rows) for label, rows in cli.items()}
    heavy = sorted({m for r in api["default"] for m in r["heavy"]})
    for label in encoders:
        print(f"   {label:8} open_index + search {med[label]:.2f} s; ragbook search {med_cli[label]:.2f} s  "
              f"(top: {api[label][0]['top']})")
    rep.info("first_search_s", {"open_index_search": med, "cli": med_cli})
    rep.check("first_search_ratio", round(med["default"] / med["torch"], 3), f"<= {FIRST_SEARCH_TARGET}",
              med["default"] / med["torch"] <= FIRST_SEARCH_TARGET,
              f"open_index + search, default encoder / torch encoder: {med['default'] / med['torch']:.3f}")
    rep.check("first_search_cli_ratio", round(med_cli["default"] / med_cli["torch"], 3), f"<= {FIRST_SEARCH_TARGET}",
              med_cli["default"] / med_cli["torch"] <= FIRST_SEARCH_TARGET,
              f"`ragbook search`, default encoder / torch encoder: {med_cli['default'] / med_cli['torch']:.3f}")
    rep.check("first_search_heavy", str(heavy), "no torch", not {"torch", "sentence_transformers", "transformers"} & set(heavy),
              f"heavy modules imported by the default first search: {heavy}")


if __name__ == "__main__":
    raise SystemExit(main())
