"""ragbook.cluster: building on a real Ray cluster that the tests start on 127.0.0.1.

The cluster is `ray start --head` with 2 CPUs (as CI's machine has), joined with ``address=``.
Builds on it are compared with in-process builds of the same files: same chunk ids in the same
order, vectors equal within float tolerance, same search results, same build report.  Faults
are real: a worker process killed with SIGKILL mid-run, a driver process killed mid-run.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ragbook.index import Index, build
from ragbook.testing import HashEmbedder

if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads its settings (the token's) on import
    pytest.skip("the Ray tests need ragbook[ray]", allow_module_level=True)
psutil = pytest.importorskip("psutil")

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")

WORDS = ("river mountain photosynthesis volcano algebra grammar python loop function theorem cell protein "
         "market budget climate ocean glacier poem novel rhythm circuit voltage magnet orbit planet galaxy "
         "enzyme atom molecule fraction matrix vector history empire treaty harbour bridge castle").split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _token():
    """Ray's token authentication, with a token of these tests' own (given to the drivers and the head alike)."""
    import secrets

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "token")
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield


@pytest.fixture(scope="module")
def cluster(_token):
    """A 2-CPU Ray head on 127.0.0.1, started for these tests and stopped after them."""
    temp = Path(f"/tmp/rbray-{os.getpid()}")  # short: Ray's socket paths live under it
    port = _free_port()
    env = dict(os.environ)
    subprocess.run([str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, env=env, timeout=180, capture_output=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, timeout=120, capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)


def _library(root: Path, n: int = 240, seed: int = 0) -> Path:
    """``n`` real files in three formats (Markdown, text, HTML), plus the demo corpus (PDF, Word, notebooks)."""
    rng = np.random.default_rng(seed)
    shutil.copytree(REPO / "corpora", root / "demo", ignore=shutil.ignore_patterns("*.py", "README.md"))
    for i in range(n):
        paras = [" ".join(rng.choice(WORDS, size=int(rng.integers(20, 60)))).capitalize() + "." for _ in range(3)]
        paras[1] += " Every file shares this closing sentence about the library."  # and one passage is shared
        kind = ("md", "txt", "html")[i % 3]
        if kind == "md":
            text = f"# Note {i}\n\n{paras[0]}\n\n## Details\n\n{paras[1]}\n\n{paras[2]}\n"
        elif kind == "txt":
            text = "\n\n".join(paras) + "\n"
        else:
            text = f"<html><head><title>Page {i}</title></head><body><h1>Page {i}</h1>" + "".join(
                f"<p>{p}</p>" for p in paras) + "</body></html>"
        (root / "notes" / f"{i % 7}").mkdir(parents=True, exist_ok=True)
        (root / "notes" / f"{i % 7}" / f"n{i:03}.{kind}").write_text(text, encoding="utf-8")
    (root / "notes" / "broken.pdf").write_bytes(b"%PDF-1.4\n\x00\x01 not really a pdf")
    return root


def _same_index(a: Index, b: Index, atol: float = 1e-5) -> None:
    assert [c.id for c in a.chunks] == [c.id for c in b.chunks]
    assert [(c.source, c.page, c.section, c.start, c.end) for c in a.chunks] == \
           [(c.source, c.page, c.section, c.start, c.end) for c in b.chunks]
    np.testing.assert_array_equal(a.vectors.ids, b.vectors.ids)
    np.testing.assert_allclose(np.asarray(a.vectors.vectors), np.asarray(b.vectors.vectors), atol=atol)
    ra, rb = a.last_report, b.last_report
    if ra is None or rb is None:  # one was loaded from its folder: only its content is compared
        return
    for field in ("added", "updated", "removed", "unchanged", "embedded", "reused", "chunks_added", "chunks_removed"):
        assert getattr(ra, field) == getattr(rb, field), field
    assert [(p.source, p.reason, p.severity) for p in ra.problems] == [(p.source, p.reason, p.severity) for p in rb.problems]


def _actor_pids() -> list[int]:
    """The embedding actors' processes (Ray names them after the class)."""
    return [p.pid for p in psutil.process_iter(["cmdline"]) if any("_EmbedActor" in part for part in (p.info["cmdline"] or []))]


def _shards(folder: Path) -> int:
    return len(list((folder / ".shards").glob("*.json"))) if (folder / ".shards").exists() else 0


@pytest.mark.slow
def test_a_cluster_build_equals_an_in_process_one_with_the_real_model(cluster, embedder, tmp_path):
    """A few hundred real files through `ragbook index --engine ray --address`: the same index as in-process."""
    lib = _library(tmp_path / "lib")
    out = tmp_path / "ray-index"
    env = {**os.environ, "RAGBOOK_PROGRESS": "0"}
    run = subprocess.run([sys.executable, "-m", "ragbook", "index", str(lib), "--out", str(out), "--engine", "ray",
                          "--address", cluster], capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    local = build(lib, embedding_model=embedder)
    files = len(local.last_report.added)
    assert files > 240 and f"{files} added" in run.stdout and "broken.pdf" in run.stdout  # reported; the rest goes on
    remote = Index.load(out, embedding_model=embedder)
    assert len(remote.files) == files and len(remote) == len(local) > 400
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["last_build"]["seconds"]["cluster"] > 0 and not (out / ".shards").exists()  # the save took the shards
    assert manifest["embedding"]["encoder"] == embedder.backend
    report = local.last_report.to_dict()  # the same build report, as the manifest records it
    for field in ("added", "updated", "removed", "unchanged", "embedded", "reused", "chunks_added", "problems"):
        assert manifest["last_build"][field] == report[field], field
    # int8 ONNX quantises each batch's activations on their own range: a passage embedded in
    # another batch moves by ~1e-3, far inside the fingerprint tolerance (0.015)
    _same_index(local, remote, atol=0.01)
    cos = np.sum(np.asarray(local.vectors.vectors) * np.asarray(remote.vectors.vectors), axis=1)
    assert cos.min() > 0.999
    for q in ("volcano magma and glacier", "python loop function", "lab safety goggles", "treaty of the empire"):
        hl, hr = local.search(q, k=5), remote.search(q, k=5)
        assert [h.chunk.id for h in hl][:3] == [h.chunk.id for h in hr][:3]
        assert len({h.chunk.id for h in hl} & {h.chunk.id for h in hr}) >= 4


def test_a_worker_killed_mid_run_is_retried_and_the_result_is_complete(cluster, tmp_path):
    lib = _library(tmp_path / "lib", n=90)
    out = tmp_path / "ix"
    killed = []

    def kill_an_actor():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = _actor_pids()
            if pids and _shards(out) >= 8:  # it has started: some files are done, most are not
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_an_actor)
    killer.start()
    got = build(lib, out=out, embedding_model=HashEmbedder(delay=0.03), engine="ray", address=cluster)
    killer.join()
    assert killed, "no actor was found to kill"
    want = build(lib, embedding_model=HashEmbedder())
    _same_index(want, got, atol=1e-6)
    assert len(Index.load(out, embedding_model=HashEmbedder())) == len(want)


def test_a_killed_driver_loses_nothing_and_the_next_run_takes_its_shards(cluster, tmp_path, caplog):
    lib = _library(tmp_path / "lib", n=90)
    out = tmp_path / "ix"
    first = build(lib / "demo", out=out, embedding_model=HashEmbedder())  # the index before
    script = (f"import ragbook; from ragbook.testing import HashEmbedder; "
              f"ragbook.build({str(lib)!r}, out={str(out)!r}, embedding_model=HashEmbedder(delay=0.02), "
              f"engine='ray', address={cluster!r})")
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while _shards(out) < 20 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
    driver.kill()
    driver.wait()
    written = _shards(out)
    assert 20 <= written < 90  # of 90 notes (broken.pdf's failure is not kept: it is tried again)
    before = Index.load(out, embedding_model=HashEmbedder())  # the previous index, as it was
    assert before.sources == first.sources and len(before) == len(first)
    with caplog.at_level(logging.INFO, logger="ragbook.cluster"):
        again = build(lib, out=out, embedding_model=HashEmbedder(), engine="ray", address=cluster)
    taken = [r.getMessage() for r in caplog.records if "from shards" in r.getMessage()]
    reused = int(taken[0].split(": ")[1].split()[0])
    assert reused >= written - 4  # all but any being written when it died (a damaged one is read again)
    build(lib / "demo", out=tmp_path / "local", embedding_model=HashEmbedder())  # the same two steps, in-process
    want = build(lib, out=tmp_path / "local", embedding_model=HashEmbedder())
    assert [c.id for c in again.chunks] == [c.id for c in want.chunks]
    np.testing.assert_allclose(np.asarray(again.vectors.vectors), np.asarray(want.vectors.vectors), atol=1e-6)
    assert again.last_report.added == want.last_report.added and again.last_report.embedded == want.last_report.embedded
    assert not (out / ".shards").exists()


def test_an_updated_file_is_the_only_one_sent_to_the_cluster(cluster, tmp_path, caplog):
    lib = _library(tmp_path / "lib", n=30)
    out, local_out = tmp_path / "ix", tmp_path / "local"
    build(lib, out=out, embedding_model=HashEmbedder(), engine="ray", address=cluster)
    build(lib, out=local_out, embedding_model=HashEmbedder())
    note = lib / "notes" / "3" / "n003.md"
    note.write_text(note.read_text(encoding="utf-8") + "\nA new closing paragraph about tectonic plates.\n", encoding="utf-8")
    emb = HashEmbedder()
    with caplog.at_level(logging.INFO, logger="ragbook.cluster"):
        got = build(lib, out=out, embedding_model=emb, engine="ray", address=cluster)
    # the edited note, and broken.pdf (a file that failed is tried again each time, as in-process)
    assert any("2 changed files: 0 from shards a previous run wrote, 2 to the cluster" in r.getMessage()
               for r in caplog.records)
    assert emb.embedded == 0  # embedded on the cluster, not here
    want = build(lib, out=local_out, embedding_model=HashEmbedder())
    assert [s.endswith("n003.md") for s in got.last_report.updated] == [True]
    _same_index(want, got, atol=1e-6)
    assert got.last_report.embedded == want.last_report.embedded >= 1  # only its new passages


def test_ray_starts_on_this_machine_without_an_address(tmp_path, notes_dir):
    got = build(notes_dir, embedding_model=HashEmbedder(), engine="ray", ray_options={"num_cpus": 1})
    want = build(notes_dir, embedding_model=HashEmbedder())
    _same_index(want, got, atol=1e-6)
    import ray

    assert not ray.is_initialized()  # started for the build, stopped after it


def test_engine_settings_are_checked(notes_dir, monkeypatch):
    from ragbook.errors import MissingDependencyError, SettingsError

    with pytest.raises(SettingsError, match="engine must be one of local, ray"):
        build(notes_dir, embedding_model=HashEmbedder(), engine="spark")
    with pytest.raises(SettingsError, match="for engine='ray'"):
        build(notes_dir, embedding_model=HashEmbedder(), address="127.0.0.1:6379")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ragbook[ray] were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'ragbook\[ray\]'"):
        build(notes_dir, embedding_model=HashEmbedder(), engine="ray")


def test_the_pool_is_laid_out_from_the_cluster_resources():
    from ragbook.cluster import RayPlan

    two = RayPlan.for_resources(cpus=2, gpus=0)  # one single-threaded actor a core, a CPU left to read
    assert (two.actors, two.threads, two.cpus_per_actor, two.gpus_per_actor) == (2, 1, 0.5, 0.0)
    big = RayPlan.for_resources(cpus=64, gpus=0)
    assert big.actors == 64 and big.threads == 1 and big.actors * big.cpus_per_actor == 56  # 8 CPUs to read
    assert RayPlan.for_resources(cpus=8, gpus=0, actors=2, threads=2).cpus_per_actor == 2.0
    gpus = RayPlan.for_resources(cpus=32, gpus=4)
    assert (gpus.actors, gpus.gpus_per_actor) == (4, 1.0)
    assert RayPlan.for_resources(cpus=8, gpus=0, actors=3, threads=2).actors == 3


def test_a_damaged_shard_is_ignored(tmp_path):
    from ragbook.cluster import Shards, _npy_bytes
    from ragbook.index import PendingFile

    store = Shards(tmp_path, {"model": "m"})
    p = PendingFile("/x/a.md", "/x", "a.md", "0" * 64, 10, 1, False)
    result = {"chunks": [], "documents": {}, "format": "markdown", "warnings": ["w"], "load_s": 0.1, "chunk_s": 0.0}
    store.put(p, result, ["abc"], _npy_bytes(np.ones((1, 4), np.float32)), {"model": "m"})
    got, ids, vecs, info = store.get(p)
    assert (got.format, got.warnings, ids, vecs.shape, info) == ("markdown", ["w"], ["abc"], (1, 4), {"model": "m"})
    assert Shards(tmp_path, {"model": "other"}).get(p) is None  # other settings: another key
    npy = next(tmp_path.glob("*.npy"))
    npy.write_bytes(npy.read_bytes()[:-4] + b"\x00\x00\x80\x7f")  # one float changed
    assert store.get(p) is None
    next(tmp_path.glob("*.json")).write_text("{not json", encoding="utf-8")
    assert store.get(p) is None


def test_a_large_file_is_embedded_in_parts_and_put_back_together(cluster, tmp_path):
    from ragbook.cluster import PART

    rng = np.random.default_rng(3)
    big = tmp_path / "lib" / "big.md"
    big.parent.mkdir()
    paras = [" ".join(rng.choice(WORDS, size=30)) + f" paragraph {i}." for i in range(3 * PART + 10)]
    big.write_text("# A long book\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")
    (tmp_path / "lib" / "small.txt").write_text("One short note about a volcano.\n", encoding="utf-8")
    got = build(tmp_path / "lib", embedding_model=HashEmbedder(), chunk_size=40, overlap=0, engine="ray",
                address=cluster)
    want = build(tmp_path / "lib", embedding_model=HashEmbedder(), chunk_size=40, overlap=0)
    assert len(want) > 3 * PART  # four parts, spread over the two actors
    _same_index(want, got, atol=1e-6)
