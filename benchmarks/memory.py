"""Peak resident memory of indexing one large single-line text file, against the file's size.

A single 199 MB line once got ragbook killed at 21.9 GB (the tokenizer's offsets over the
whole text, ~170 bytes per character at its peak); a 20 MB one reached 2.9 GB.  Each stage runs
in a fresh subprocess that reports its own peak RSS (``ru_maxrss``) before and after the
work, so the figure is the work's, not the imports' or the model's:

- ``model``: the baseline: ``import ragbook`` and the default embedding model loaded (one text
  encoded).  The targets are "beyond the loaded model".
- ``chunk``: ``load_file`` + ``Chunker.split`` with the model's real tokenizer (torch not loaded).
- ``standin``: ``Index.add`` end to end (load, chunk, embed, FAISS, BM25) with a stand-in embedder
  that has the real tokenizer but returns random 384-d vectors: embedding 200 MB of text with the
  real model on 2 cores would take many hours.  The vectors alone are 1.5 KB per passage
  (~600 MB for 200 MB of text), and FAISS holds a second copy.
- ``real``: ``Index.add`` with the real model, on the smallest file only (20 MB: ~30k passages,
  10-40 minutes of embedding on 2 cores).

Files are P&P's sentences (from ../shared/data) on one line, reshuffled on every pass through
the book so that passages do not repeat: English prose with curly quotes, so Python holds it at
2 bytes a character.  Target: the ``standin`` stage stays
within ~1 GB beyond the loaded model for 200 MB of text, plus what the vectors need (two copies
while they are added), and load + chunk within ~1 GB; no stage grows faster than the text
(the ratio to the file size falls or stays level as files grow).

    python benchmarks/memory.py              # 20, 100, 200 MB; real model on 20 MB (~1.5 h on a busy box)
    python benchmarks/memory.py --no-real    # the same without the real model (~1 h)
    python benchmarks/memory.py --quick      # 2 and 10 MB, real model on 2 MB (~3 min)
    python benchmarks/memory.py --sizes 5    # 5 MB, real model included (~5 min): results/memory-5mb.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, SHARED_DATA, Report, versions

SOURCE = SHARED_DATA / "corpora" / "gutenberg" / "pg1342_pride_and_prejudice.txt"
DIMENSION = 384
BUDGET_MB = 1024  # beyond the loaded model, for the largest file, vectors excluded


def make_file(path: Path, megabytes: float) -> Path:
    """A single-line text file of about ``megabytes`` MB (UTF-8).

    The book's sentences, reshuffled for every pass through it: a file that repeated the book
    verbatim would chunk into the same passages again and again, which an index stores once.
    """
    if SOURCE.exists():
        text = SOURCE.read_text(encoding="utf-8", errors="replace")
    else:  # the shared data is absent: any prose will do
        text = (REPO / "README.md").read_text(encoding="utf-8")
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    rng = random.Random(0)
    target = int(megabytes * 2**20)
    written = 0
    with open(path, "wb") as f:
        while written < target:
            rng.shuffle(sentences)
            data = (" ".join(sentences) + " ").encode("utf-8")[: target - written]
            data = data.decode("utf-8", "ignore").encode("utf-8")  # never end inside a character
            f.write(data)
            written += len(data)
    return path


# -- the child: one stage, one fresh process ---------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


class RandomEmbedder:
    """The real model's tokenizer, random unit vectors: chunking is real, embedding is free."""

    name = "benchmark/random-vectors"
    normalize = True

    def __init__(self) -> None:
        import numpy as np

        from ragbook.embedding import Embedder

        real = Embedder()
        self.tokenizer = real.tokenizer
        self.max_tokens = real.max_tokens
        self.dimension = DIMENSION
        self._rng = np.random.default_rng(0)

    def encode_documents(self, texts, *, show_progress=None):
        import numpy as np

        out = self._rng.standard_normal((len(texts), self.dimension), dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def encode_queries(self, texts):
        return self.encode_documents([texts] if isinstance(texts, str) else texts)

    def fingerprint(self):
        return [0.0] * 8

    def info(self):
        return {"model": self.name, "dimension": self.dimension, "normalize": True,
                "max_seq_length": self.max_tokens + 2, "fingerprint": self.fingerprint()}


def child(stage: str, file: str | None) -> dict:
    os.environ.setdefault("RAGBOOK_PROGRESS", "0")
    result: dict = {"stage": stage}
    t0 = time.perf_counter()
    if stage == "model":
        from ragbook.embedding import Embedder

        result["before_mb"] = _peak_mb()  # python + ragbook's imports
        Embedder().encode_documents(["one passage to load the model"])
        result["after_mb"] = _peak_mb()
        return result
    if stage == "chunk":
        from ragbook.chunking import Chunker
        from ragbook.embedding import Embedder
        from ragbook.loaders import load_file

        emb = Embedder()
        chunker = Chunker(tokenizer=emb.tokenizer, max_tokens=emb.max_tokens)
        result["before_mb"] = _peak_mb()
        docs = load_file(file, max_file_mb=None)
        result["after_load_mb"] = _peak_mb()
        chunks = [c for doc in docs for c in chunker.split(doc)]
        result["chunks"] = len(chunks)
        result["chars"] = sum(len(doc.text) for doc in docs)
    elif stage in ("standin", "real"):
        from ragbook.index import Index

        if stage == "real":
            from ragbook.embedding import Embedder

            embedder = Embedder()
            embedder.encode_documents(["one passage to load the model"])
        else:
            embedder = RandomEmbedder()
        index = Index(embedder, index_type="flat")
        result["before_mb"] = _peak_mb()
        report = index.add(file, max_file_mb=None)
        result["chunks"] = index.stats()["chunks"]
        result["unique_chunks"] = len(index)
        result["seconds_by_step"] = {k: round(v, 1) for k, v in report.seconds.items()}
        result["problems"] = [str(p) for p in report.problems]
        search = index.search("Mr. Darcy and Elizabeth", k=3)  # the index works
        result["hits"] = len(search)
    else:
        raise SystemExit(f"unknown stage {stage}")
    result["after_mb"] = _peak_mb()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def run_stage(stage: str, file: Path | None, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", stage] + ([str(file)] if file else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        return {"stage": stage, "failed": f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the parent -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=float, nargs="+", default=None, help="file sizes in MB (default 20 100 200)")
    parser.add_argument("--quick", action="store_true", help="2 and 10 MB files (~2 min)")
    parser.add_argument("--no-real", action="store_true", help="skip the real-model stage")
    parser.add_argument("--stages", nargs="+", choices=["chunk", "standin", "real"], default=None,
                        help="run only these stages")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1] if len(args.child) > 1 else None)), flush=True)
        return 0

    sizes = args.sizes or ([2, 10] if args.quick else [20, 100, 200])
    # a run other than the default one gets a file of its own
    suffix = (("-quick" if args.quick else "") + ("-" + "-".join(f"{s:g}" for s in args.sizes) + "mb" if args.sizes else "")
              + ("-" + "-".join(args.stages) if args.stages else ""))
    rep = Report("memory" + suffix, argv if argv is not None else sys.argv[1:],
                 sizes_mb=sizes, source=str(SOURCE), real_model_on_mb=None if args.no_real else min(sizes),
                 versions=versions("ragbook", "tokenizers", "sentence-transformers", "torch", "faiss-cpu", "numpy"),
                 note=("chunk = load_file + Chunker.split (real tokenizer); standin = Index.add with the real "
                       "tokenizer and random 384-d vectors (the real model would take hours on 200 MB); real = "
                       "Index.add with all-MiniLM-L6-v2, smallest file only. Peak RSS per fresh process, "
                       "beyond its own state before the work."))
    rep.section("baseline: ragbook imported, default model loaded")
    base = run_stage("model", None, 600)
    if "failed" in base:
        print(base["failed"])
        return 1
    model_mb = base["after_mb"]
    rep.info("model_rss_mb", round(model_mb), f"python + ragbook + all-MiniLM-L6-v2 loaded: {model_mb:.0f} MB peak RSS "
                                              f"(imports alone {base['before_mb']:.0f} MB)")
    rep.info("imports_rss_mb", round(base["before_mb"]))

    stages = [stage for stage in args.stages or ["chunk", "standin"] if stage != "real"]
    with_real = not args.no_real and (args.stages is None or "real" in args.stages)
    worst_ratio: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for size in sizes:
            file = make_file(Path(tmp) / f"line-{size:g}mb.txt", size)
            mb = file.stat().st_size / 2**20
            rep.section(f"{mb:.0f} MB single-line text file")
            plan = stages + (["real"] if with_real and size == min(sizes) else [])
            for stage in plan:
                result = run_stage(stage, file, 7200)
                key = f"{stage}_{size:g}mb"
                if "failed" in result:
                    rep.info(key, result, f"{stage:8} FAILED: {result['failed']}")
                    continue
                grew = result["after_mb"] - result["before_mb"]
                ratio = grew / mb
                worst_ratio[stage] = max(worst_ratio.get(stage, 0.0), ratio)
                result.update(file_mb=round(mb, 1), grew_mb=round(grew), ratio=round(ratio, 2))
                extra = ""
                if stage in ("standin", "real"):
                    vectors_mb = result["unique_chunks"] * DIMENSION * 4 / 2**20
                    result["vectors_mb"] = round(vectors_mb)
                    extra = f"; the vectors alone {vectors_mb:.0f} MB (x2 with FAISS's copy)"
                text = (f"{stage:8} peak +{grew:6.0f} MB over its start = {ratio:5.2f}x the file "
                        f"({result['chunks']:,} chunks, {result['seconds']:.0f} s{extra})")
                rep.info(key, result, text)
                if stage == "standin" and size == max(sizes):
                    # what the build needs beyond the model: everything but the two copies of the vectors
                    beyond = grew - 2 * result["vectors_mb"]
                    rep.check("standin_largest_beyond_vectors_mb", round(beyond), f"<= {BUDGET_MB} MB",
                              beyond <= BUDGET_MB,
                              f"{mb:.0f} MB file, Index.add peak beyond the model, less 2x the vectors: {beyond:.0f} MB")
            file.unlink()
    for stage, ratio in worst_ratio.items():
        rep.info(f"worst_ratio_{stage}", round(ratio, 2), f"{stage}: at most {ratio:.2f}x the file size "
                 "(before: ~140x for load + chunk, 2.9 GB for 20 MB; killed at 21.9 GB for 199 MB)")
    largest = rep.data["figures"].get(f"chunk_{max(sizes):g}mb", {})
    if "grew_mb" in largest:
        rep.check("chunk_largest_mb", largest["grew_mb"], f"<= {BUDGET_MB} MB", largest["grew_mb"] <= BUDGET_MB,
                  f"{largest['file_mb']:.0f} MB file, load + chunk peak beyond its start: {largest['grew_mb']} MB")
    rep.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
