"""The Ray engine against an in-process build: the same files, the same 2 cores, one run.

Files: the three shared corpora (OpenStax, Gutenberg, inaugural addresses: 2.2 MB of text) and
the real-world documents (``realdocs``: PDFs, some hostile, Word, HTML, notebooks: 18 MB), else
the demo corpus.  Model: the default (all-MiniLM-L6-v2, the default encoder).

1. A Ray head is started here (``ray start --head --num-cpus=N``: a cluster that is already
   running, as a lab's would be; its start is timed apart).
2. In-process ``ragbook.build(files)`` and ``build(files, engine="ray", address=...)``
   alternate, twice; each loads its model (in the actor, for Ray) inside its time.
3. Throughput ratio = in-process seconds / Ray seconds (target >= 0.8: the engine's overhead
   stays small); time outside embedding = Ray wall time - the actors' embedding time / actors.
4. The two indexes are compared: the same chunk ids in the same order, cosines >= 0.999.
5. The pool's layout on these cores: one actor a core (single-threaded) against one actor of all threads.

    python benchmarks/cluster.py            # ~6-10 min on 2 cores
    python benchmarks/cluster.py --quick    # the demo corpus only
"""

from __future__ import annotations

import os
import secrets

# before Ray is imported: it reads its authentication settings once (the head and this driver share a token)
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from _common import DEMO_CORPUS, SHARED_DATA, Report, versions  # noqa: E402

TARGET_RATIO = 0.8


def files(quick: bool) -> list[Path]:
    corpora = SHARED_DATA / "corpora"
    if quick or not corpora.is_dir():
        return [DEMO_CORPUS]
    return [corpora / "openstax-intro-python" / "markdown", corpora / "gutenberg", corpora / "inaugural",
            SHARED_DATA / "realdocs"]


def start_head(cpus: int, temp: Path) -> tuple[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray = Path(sys.executable).with_name("ray")
    t0 = time.perf_counter()
    subprocess.run([str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={cpus}",
                    "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, capture_output=True, timeout=300)
    return f"127.0.0.1:{port}", time.perf_counter() - t0


def stop_head() -> None:
    subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], capture_output=True, timeout=300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the demo corpus only")
    parser.add_argument("--rounds", type=int, default=2, help="in-process / Ray pairs (default 2)")
    args = parser.parse_args(argv)

    import ragbook
    from ragbook.embedding import Embedder

    cores = os.cpu_count() or 1
    paths = files(args.quick)
    rep = Report("cluster", argv, corpus=[str(p) for p in paths], cores=cores, model="all-MiniLM-L6-v2",
                 versions=versions("ray", "faiss-cpu", "onnxruntime", "torch"))
    work = Path(tempfile.mkdtemp(prefix="rb-cluster-"))
    temp = Path(f"/tmp/rbbench-{os.getpid()}")
    try:
        address, t_start = start_head(cores, temp)
        rep.info("cluster_start_s", round(t_start, 1), f"`ray start --head` with {cores} CPUs: {t_start:.1f} s "
                 "(a lab's cluster is already running: not counted below)")
        # In-process and Ray alternate, twice: this shared machine's speed drifts by 2x over minutes
        # (the same in-process build took 26 s and 55 s), so each pair is measured side by side.
        from ragbook.cluster import RayPlan

        actors = RayPlan.for_resources(cores, 0).actors
        local_s, ray_s, outside_s = [], [], []
        local = got = None
        for round_ in range(args.rounds):
            rep.section(f"round {round_ + 1}: in-process, then Ray ({cores} actors x 1 thread, RayPlan's choice)")
            t0 = time.perf_counter()
            local = ragbook.build(paths, embedding_model=Embedder())
            local_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = ragbook.build(paths, engine="ray", address=address)
            ray_s.append(time.perf_counter() - t0)
            sec = got.last_report.seconds
            outside_s.append(ray_s[-1] - sec["cluster_embed"] / actors)  # the actors embed side by side
            rep.info(f"round_{round_ + 1}", {"in_process_s": round(local_s[-1], 1), "ray_s": round(ray_s[-1], 1),
                                             "actor_embedding_s": round(sec["cluster_embed"], 1),
                                             "outside_embedding_s": round(outside_s[-1], 1),
                                             "in_process_seconds": {k: round(v, 1) for k, v in local.last_report.seconds.items()}},
                     f"in-process {local_s[-1]:.1f} s, Ray {ray_s[-1]:.1f} s (embedding {sec['cluster_embed']:.1f} s in "
                     f"{actors} actors, {outside_s[-1]:.1f} s outside it)")
        assert local is not None and got is not None
        n = len(local)
        rep.info("passages", n, f"{n} passages of {len(local.files)} files")
        same = [c.id for c in got.chunks] == [c.id for c in local.chunks]
        cos = float(np.min(np.sum(np.asarray(got.vectors.vectors) * np.asarray(local.vectors.vectors), axis=1))) if same else 0.0
        rep.check("same_index", int(same and cos >= 0.999), "1", same and cos >= 0.999,
                  f"the same chunk ids in the same order; lowest cosine to the in-process vector {cos:.5f}")
        ratio = sum(local_s) / sum(ray_s)
        rep.check("throughput_ratio", round(ratio, 3), f">= {TARGET_RATIO}", ratio >= TARGET_RATIO,
                  f"Ray / in-process throughput, same files and cores: {ratio:.2f}x "
                  f"({n * len(ray_s) / sum(ray_s):.0f} vs {n * len(local_s) / sum(local_s):.0f} passages/s)")
        rep.info("outside_embedding_s", round(float(np.mean(outside_s)), 1),
                 f"time outside embedding on Ray: {np.mean(outside_s):.1f} s a build")

        rep.section(f"the pool's layout: 1 actor x {cores} threads")
        t0 = time.perf_counter()
        ragbook.build(paths, engine="ray", address=address, ray_options={"actors": 1, "threads": cores})
        t1n = time.perf_counter() - t0
        rep.info("ray_one_actor_s", round(t1n, 1), f"1 actor x {cores} threads: {t1n:.1f} s ({cores} x 1: "
                 f"{ray_s[-1]:.1f} s in the round before)")
    finally:
        stop_head()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)
    rep.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
