"""Build throughput and update cost of a ragbook index, against raw sentence-transformers.

(a) Build: ragbook indexes a folder of real files end to end (discover + read + chunk + embed
    + FAISS + BM25, through ``Index.add``); raw ``SentenceTransformer.encode`` embeds the SAME
    chunk texts (``batch_size=32, normalize_embeddings=True``, same model folder, same device,
    same torch threads), model loaded on both sides.  Whole runs take a minute or more, long
    enough for other jobs on a shared machine to land on one side only, so the verdict comes
    from finer interleaving: the passages in blocks of 64, each block embedded by ragbook's
    ``Embedder.encode_documents`` and by raw ``encode`` back to back (order alternating), plus
    the non-embedding part of the build (load, chunk, index, discover), measured directly.
    Target: ragbook's throughput >= 2.0x the raw library's with its default CPU encoder (ONNX
    Runtime, int8: ``ragbook.onnx_embedding``), >= 0.9x with ``--backend torch`` (the same encoder
    as raw: ragbook's own overhead).  The one-off cost of importing
    sentence-transformers and loading the model is reported separately.
(b) Update: after a full build, append a paragraph to one file and time ``index.add(folder)``
    again; the ratio update / full build should be about 0.01 (<= 0.02 given fixed overheads).
    A rescan with no change is timed too: it is the fixed part of every update.

Works on a temporary copy of the corpus (default: the OpenStax Python book, 115 Markdown files,
from ../shared/data; the demo corpus in corpora/ when that is absent).

    python benchmarks/ingest.py            # all 115 files (~1.5 min idle, longer on a busy machine)
    python benchmarks/ingest.py --quick    # 30 files (~30 s idle)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _common import Report, clock, corpus_folder, median, versions

RATIO_TARGET = 2.0  # the default CPU encoder against raw torch (issue 14)
RATIO_TARGET_TORCH = 0.9  # --backend torch: the same encoder on both sides, so only ragbook's overhead
BLOCK = 64  # passages per interleaved block (a few seconds each)
UPDATE_TARGET = 0.02

PARAGRAPH = (
    "\n\nA note added while revising this section (edit {i}): when a program reads numbers from "
    "a file, each line arrives as a string, so convert it with int() or float() before doing "
    "arithmetic, and strip the trailing newline first. Testing the conversion on a few sample "
    "lines, including an empty one, catches most mistakes before they reach the rest of the code.\n"
)


def copy_corpus(src: Path, dst: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".json")
    if limit:
        files = files[:limit]
    out = []
    for f in files:
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        out.append(target)
    return out



def raw_with_context(raw, texts, contexts):
    """The same work with raw sentence-transformers: each passage, and each distinct context line
    (title > section) once, the passage's vector moved towards its line's (ragbook.index.CONTEXT_WEIGHT)."""
    import numpy as np
    from ragbook.index import CONTEXT_WEIGHT

    vectors = raw.encode(texts, batch_size=32, normalize_embeddings=True)
    lines = sorted({c for c in contexts if c})
    if lines:
        line_vectors = raw.encode(lines, batch_size=32, normalize_embeddings=True)
        at = {line: i for i, line in enumerate(lines)}
        rows = [i for i, c in enumerate(contexts) if c]
        vectors[rows] += CONTEXT_WEIGHT * line_vectors[[at[contexts[i]] for i in rows]]
        vectors[rows] /= np.linalg.norm(vectors[rows], axis=1, keepdims=True)
    return vectors

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help="corpus folder (default: OpenStax Markdown, else corpora/)")
    parser.add_argument("--files", type=int, default=None, help="use the first N files (default all; 30 with --quick)")
    parser.add_argument("--reps", type=int, default=1, help="end-to-end builds and raw encodes each (default 1)")
    parser.add_argument("--quick", action="store_true", help="~1 minute variant for CI")
    parser.add_argument("--backend", default="auto", help="ragbook's encoder: auto (default), torch, onnx, onnx-int8")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch threads for both sides (default: torch's own choice, as ragbook ships; "
                             "1 is steadier when other jobs share the cores)")
    args = parser.parse_args(argv)
    folder = (args.folder or corpus_folder()).resolve()
    limit = args.files or (30 if args.quick else None)
    reps = args.reps
    rep = Report("ingest", argv if argv is not None else sys.argv[1:], folder=str(folder), files=limit, reps=reps,
                 quick=args.quick, backend=args.backend, versions=versions("ragbook", "sentence-transformers", "torch", "onnxruntime", "faiss-cpu", "numpy"))

    tmp = Path(tempfile.mkdtemp(prefix="ragbook-bench-ingest-"))
    try:
        corpus = tmp / "corpus"
        files = copy_corpus(folder, corpus, limit)
        rep.info("files", len(files), f"corpus: {len(files)} files from {folder} ({sum(f.stat().st_size for f in files) / 1e3:.0f} kB), copied to a temp folder")

        # -- one-off costs: imports and model load ----------------------------------------
        rep.section("first use (paid once per process, not part of the ratio)")
        t_import, _ = clock(lambda: __import__("sentence_transformers"))
        import torch
        from sentence_transformers import SentenceTransformer

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)

        import ragbook
        from ragbook.embedding import DEFAULT_MODEL, resolve_model

        emb = ragbook.Embedder(backend=args.backend)
        t_load, _ = clock(lambda: emb.model if emb.backend == "torch" else emb.onnx)
        target = resolve_model(DEFAULT_MODEL)[1]
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the "Loading weights" bar; ragbook hides it the same way
        t_raw_load, raw = clock(lambda: SentenceTransformer(target, device=emb.device))
        rep.info("import_sentence_transformers_s", round(t_import, 2), f"import sentence_transformers (+torch, transformers): {t_import:.2f} s")
        rep.info("model_load_ragbook_s", round(t_load, 2), f"ragbook Embedder().model load: {t_load:.2f} s; raw SentenceTransformer(path) load: {t_raw_load:.2f} s")
        rep.info("device", emb.device, f"device {emb.device}, ragbook's encoder {emb.backend}, torch threads "
                 f"{torch.get_num_threads()}, model {target}")
        rep.info("encoder", emb.backend)
        rep.info("torch_threads", torch.get_num_threads())
        # first calls pay one-off allocations; keep them out of both sides
        warm = ["warm-up text number %d about files, loops and functions" % i for i in range(64)]
        emb.encode_documents(warm)
        raw.encode(warm, batch_size=32, normalize_embeddings=True)

        # -- (a) build throughput ------------------------------------------------------------
        rep.section(f"(a) build end to end: {reps} ragbook build(s) and {reps} raw encode(s) of the same passages, alternating")
        order = []
        for i in range(reps):  # A B B A ...: drift in machine load cancels
            order += ["ragbook", "raw"] if i % 2 == 0 else ["raw", "ragbook"]
        builds, raws, reports = [], [], []
        index = texts = contexts = None
        for side in order:
            if side == "ragbook":
                index = ragbook.Index(emb)
                seconds, report = clock(lambda: index.add(corpus))
                builds.append(seconds)
                reports.append(report)
                if texts is None:
                    texts = [index.text(r) for r in range(len(index))]
                    contexts = [index.locations(r)[0].context for r in range(len(index))]
            else:
                seconds, vecs = clock(lambda: raw_with_context(raw, texts, contexts))
                raws.append(seconds)
            print(f"   {side:8} {seconds:6.2f} s", flush=True)
        n = len(texts)
        chunks = sum(len(index.locations(r)) for r in range(len(index)))
        import numpy as np

        # same vectors? (index rows are in first-seen order, as are the texts)
        ours, theirs = np.asarray(index.vectors.vectors), np.asarray(vecs, dtype=np.float32)
        same = float(np.abs(ours - theirs).max())
        cosine = (ours * theirs).sum(axis=1)
        rep.info("chunks", chunks, f"{chunks} chunks, {n} distinct passages embedded per build; ragbook vs raw vectors: "
                 f"max |difference| {same:.1e}, cosine mean {cosine.mean():.5f} min {cosine.min():.5f}")
        rep.info("vector_max_abs_diff", same)
        rep.info("vector_cosine", {"mean": round(float(cosine.mean()), 5), "min": round(float(cosine.min()), 5)})
        b_med, r_med = median(builds), median(raws)
        e2e_ratio = sum(raws) / sum(builds)
        rep.info("build_seconds", [round(x, 3) for x in builds])
        rep.info("raw_encode_seconds", [round(x, 3) for x in raws])
        rep.info("ragbook_chunks_per_s", round(n / b_med, 2), f"ragbook build (load+chunk+embed+index): {n / b_med:6.1f} passages/s  ({b_med:.2f} s)")
        rep.info("raw_chunks_per_s", round(n / r_med, 2), f"raw SentenceTransformer.encode:        {n / r_med:6.1f} passages/s  ({r_med:.2f} s)")
        rep.info("end_to_end_ratio", round(e2e_ratio, 3), f"end-to-end ratio ragbook/raw: {e2e_ratio:.3f} "
                 "(whole runs of a minute each: on a shared machine a burst of load on one side moves this by +-20%)")
        keys = ["load", "chunk", "embed", "index"]
        parts = {k: median([r.seconds.get(k, 0.0) for r in reports]) for k in keys}
        parts["other"] = median([r.seconds["total"] - sum(r.seconds.get(k, 0.0) for k in keys) for r in reports])
        total = sum(parts.values())
        rep.info("build_breakdown_s", {k: round(v, 4) for k, v in parts.items()},
                 "where ragbook's build time went: " + ", ".join(f"{k} {v:.3f} s ({100 * v / total:.1f}%)" for k, v in parts.items())
                 + "  [other = discover, stat, sha256, model check]")
        not_embed = total - parts["embed"]

        # the embedding itself, interleaved finely: blocks of passages, ragbook and raw back to back
        rep.section(f"(a) embedding, interleaved: blocks of {BLOCK} passages, Embedder.encode_documents vs raw encode, order alternating")
        perm = np.random.default_rng(0).permutation(n)
        t_rb, t_raw = [], []
        for i, lo in enumerate(range(0, n, BLOCK)):
            block = [texts[j] for j in perm[lo : lo + BLOCK]]
            sides = [("rb", lambda: emb.encode_documents(block)),
                     ("raw", lambda: raw.encode(block, batch_size=32, normalize_embeddings=True))]
            for name, fn in (sides if i % 2 == 0 else sides[::-1]):
                (t_rb if name == "rb" else t_raw).append(clock(fn)[0])
        block_ratios = [r / b for r, b in zip(t_raw, t_rb)]
        embed_ratio = sum(t_raw) / sum(t_rb)
        rep.info("embed_block_seconds", {"ragbook": [round(x, 3) for x in t_rb], "raw": [round(x, 3) for x in t_raw]})
        rep.info("embed_ratio", round(embed_ratio, 4), f"{len(t_rb)} blocks: ragbook {sum(t_rb):.1f} s, raw {sum(t_raw):.1f} s; "
                 f"embedding ratio {embed_ratio:.3f} (median per block {median(block_ratios):.3f})")
        # build = embedding + the rest; the rest (load, chunk, index, discover) is measured directly
        ratio = sum(t_raw) / (sum(t_rb) + not_embed)
        goal = RATIO_TARGET_TORCH if emb.backend == "torch" else RATIO_TARGET
        rep.check("build_ratio", round(ratio, 3), f">= {goal}", ratio >= goal,
                  f"ragbook build / raw encode throughput: {ratio:.3f} (interleaved embedding ratio with the "
                  f"{not_embed:.2f} s of non-embedding build work added to ragbook's side)")
        t_save, _ = clock(lambda: index.save(tmp / "index"))
        rep.info("save_s", round(t_save, 3), f"index.save(): {t_save:.3f} s (not in the build time)")

        # -- (b) update cost ----------------------------------------------------------------
        rep.section("(b) update: append a paragraph to one file, index.add(folder) again")
        t_scan, rescan = clock(lambda: index.add(corpus))
        assert rescan.embedded == 0 and not rescan.updated, rescan
        from ragbook.loaders import discover

        t_discover, _ = clock(lambda: discover([corpus]))
        rep.info("rescan_nochange_s", round(t_scan, 4), f"rescan with nothing changed: {t_scan * 1000:.1f} ms (discover {t_discover * 1000:.1f} ms, index step {rescan.seconds.get('index', 0) * 1000:.1f} ms)")
        updates, ureports, edit_raw = [], [], []
        for i in range(3):
            victim = files[(len(files) // 2 + 7 * i) % len(files)]
            with open(victim, "a", encoding="utf-8") as f:
                f.write(PARAGRAPH.format(i=i))
            seconds, report = clock(lambda: index.add(corpus))
            assert report.updated and not report.added, report
            updates.append(seconds)
            ureports.append(report)
            # the same passages through raw encode: the part of the update that scales with the edit
            new_rows = range(len(index) - report.embedded, len(index))
            fresh = [index.text(r) for r in new_rows]
            fresh_contexts = [index.locations(r)[0].context for r in new_rows]
            edit_raw.append(median([clock(lambda: raw_with_context(raw, fresh, fresh_contexts))[0] for _ in range(3)]))
            print(f"   update {i + 1}: {seconds * 1000:7.1f} ms  {victim.name}: {report.embedded} passages embedded, "
                  f"{report.reused} reused, {report.chunks_removed} dropped; "
                  + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in report.seconds.items() if k != "total"), flush=True)
        u_med = median(updates)
        uratio = u_med / b_med
        rep.info("update_seconds", [round(x, 4) for x in updates])
        rep.check("update_ratio", round(uratio, 4), f"<= {UPDATE_TARGET} (ideal ~0.01)", uratio <= UPDATE_TARGET,
                  f"update / full build: {uratio:.4f} ({u_med * 1000:.0f} ms / {b_med:.1f} s)")
        uparts = {k: median([r.seconds.get(k, 0.0) for r in ureports]) for k in keys}
        uparts["other"] = median([r.seconds["total"] - sum(r.seconds.get(k, 0.0) for k in keys) for r in ureports])
        embedded = median([r.embedded for r in ureports])
        t_edit = median(edit_raw)
        rep.info("update_breakdown_s", {k: round(v, 4) for k, v in uparts.items()},
                 "update time (medians): " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in uparts.items())
                 + f"; raw encode of the same new passage(s) ({embedded:g} per update): {t_edit * 1000:.1f} ms")
        rep.info("update_raw_encode_s", round(t_edit, 4))
        fixed = u_med - t_edit
        rep.info("update_fixed_overhead_s", round(fixed, 4),
                 f"fixed overhead per update (update minus raw encode of the new passages): {fixed * 1000:.1f} ms "
                 f"= {fixed / b_med:.4f} of a full build")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    variant = ("-quick" if args.quick else "") + (f"-f{args.files}" if args.files else "")
    variant += "-custom" if args.folder else ""  # a non-default run never overwrites the default files
    variant += f"-{args.backend}" if args.backend != "auto" else ""
    rep.write(variant + (f"-t{args.torch_threads}" if args.torch_threads else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
