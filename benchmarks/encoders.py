"""Embedding encoders compared: torch (sentence-transformers) against ONNX Runtime, float and int8.

For each encoder, on the SQuAD 2.0 set (the CS224N half of dev, as ``quality.py``): the chunked
index ragbook builds, its nDCG@10 dense and hybrid (the default), and passages embedded per
second.  Then the mixed cases a user meets (an index built by one encoder, searched or updated
with another) and how far each encoder's vectors, and its fingerprint, are from torch's: the
figures behind the tolerance an index applies when the encoder changes.

Target (issue 14): nDCG@10 of the default CPU encoder within 0.005 of torch's, dense and hybrid.

    python benchmarks/encoders.py                 # ~5 min on 2 idle cores
    python benchmarks/encoders.py --queries 500   # a reproducible sample of the questions
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from _common import SHARED_DATA, Report, versions  # noqa: E402  (sets the offline environment first)

import numpy as np  # noqa: E402

from ragbook import onnx_embedding  # noqa: E402
from ragbook.embedding import Embedder  # noqa: E402
from ragbook.evaluation import evaluate_retrieval, index_beir, load_beir  # noqa: E402

TARGET = 0.005
MODES = {"dense": {"mode": "dense"}, "hybrid": {"mode": "hybrid"}}
# name -> (backend, matrices kept float when quantising: None = ragbook's choice)
ENCODERS = {
    "torch": ("torch", None),
    "onnx": ("onnx", None),
    "onnx-int8": ("onnx-int8", None),
    "onnx-int8-all": ("onnx-int8", "$^"),  # every weight matrix int8
}


def make(backend: str, keep_float: str | None) -> Embedder:
    onnx_embedding.FLOAT_MATMULS = re.compile(keep_float) if keep_float else DEFAULT_FLOAT
    emb = Embedder(backend=backend)
    emb.encode_documents(["warm-up"] * 8)  # export (once, cached) and load outside the timings
    return emb


def ndcg(index, data, k: int = 10) -> dict[str, float]:
    return {mode: round(evaluate_retrieval(index, data.queries, data.qrels, k=k, **settings)[f"ndcg@{k}"], 4)
            for mode, settings in MODES.items()}


def searched_with(index, embedder):
    """The same index with its queries embedded by another encoder (as after open_index elsewhere)."""
    index.embedder, index._model_checked = embedder, False
    return index


DEFAULT_FLOAT = onnx_embedding.FLOAT_MATMULS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=None, help="a reproducible sample of this many questions")
    args = parser.parse_args(argv)
    rep = Report("encoders", argv if argv is not None else sys.argv[1:], queries=args.queries,
                 versions=versions("ragbook", "sentence-transformers", "torch", "onnxruntime", "onnx"))
    data = load_beir(SHARED_DATA / "squad2-dev-cs224n").sample(args.queries)
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in data.corpus.values()]
    rep.info("data", data.name, f"{data!r}")

    rep.section("each encoder: build, nDCG@10, passages/s (the corpus' documents embedded whole)")
    indexes, embedders, figures, vectors = {}, {}, {}, {}
    for name, (backend, keep_float) in ENCODERS.items():
        emb = embedders[name] = make(backend, keep_float)
        started = time.perf_counter()
        vectors[name] = emb.encode_documents(texts)
        speed = len(texts) / (time.perf_counter() - started)
        indexes[name] = index_beir(data.corpus, emb)
        figures[name] = {**ndcg(indexes[name], data), "passages_per_s": round(speed, 1)}
        rep.info(f"{name}", figures[name], f"{name:<14} nDCG@10 dense {figures[name]['dense']:.4f}  "
                 f"hybrid {figures[name]['hybrid']:.4f}  {speed:6.1f} passages/s")
    base = figures["torch"]
    for name in ENCODERS:
        if name == "torch":
            continue
        cos = (vectors[name] * vectors["torch"]).sum(axis=1)
        fp = np.abs(np.subtract(embedders[name].fingerprint(), embedders["torch"].fingerprint())).max()
        rep.info(f"{name}_vs_torch", {"cosine_mean": round(float(cos.mean()), 5), "cosine_min": round(float(cos.min()), 5),
                                      "fingerprint_max_diff": round(float(fp), 4),
                                      "speed_ratio": round(figures[name]["passages_per_s"] / base["passages_per_s"], 2)},
                 f"{name:<14} vs torch: cosine mean {cos.mean():.5f} min {cos.min():.5f}; fingerprint max |diff| "
                 f"{fp:.4f}; speed {figures[name]['passages_per_s'] / base['passages_per_s']:.2f}x")

    rep.section("mixed: an index built by one encoder, its questions embedded by another")
    for docs, queries in (("torch", "onnx-int8"), ("onnx-int8", "torch"), ("torch", "onnx")):
        mixed = ndcg(searched_with(indexes[docs], embedders[queries]), data)
        rep.info(f"mixed_{docs}_docs_{queries}_queries", mixed,
                 f"vectors {docs:<10} questions {queries:<10} dense {mixed['dense']:.4f}  hybrid {mixed['hybrid']:.4f}")
        searched_with(indexes[docs], embedders[docs])

    rep.section("target: the default CPU encoder (onnx-int8) within 0.005 nDCG@10 of torch")
    for mode in MODES:
        diff = figures["onnx-int8"][mode] - base[mode]
        rep.check(f"onnx_int8_{mode}_ndcg_diff", round(diff, 4), f">= -{TARGET}", diff >= -TARGET,
                  f"{mode}: {figures['onnx-int8'][mode]:.4f} vs torch {base[mode]:.4f} ({diff:+.4f})")
    rep.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
