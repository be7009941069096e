"""A process killed in the middle of a save must leave the previous index loadable."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fakes import HashEmbedder

from ragbook.documents import Document
from ragbook.index import Index

TESTS = Path(__file__).resolve().parent

SAVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from fakes import HashEmbedder
    from ragbook.documents import Document
    from ragbook.index import Index

    out = sys.argv[1]
    index = Index.load(out, embedding_model=HashEmbedder(256), verify=False)
    i = 0
    print("ready", flush=True)
    while True:  # save new generations until killed
        i += 1
        index.add_documents([Document(text=f"generation {{i}} adds this passage", source=f"gen{{i}}.txt")])
        index.save(out)
    """
)


def _big_index(path: Path) -> int:
    # ~60 MB of vectors, so a save takes long enough to be cut in the middle
    docs = [Document(text=f"passage {i} " + " ".join(f"w{(i * 31 + j) % 5003}" for j in range(12)), source=f"d{i // 50}.txt")
            for i in range(60_000)]
    index = Index(HashEmbedder(256), chunk_size=2000, overlap=0)
    index.add_documents(docs)
    index.save(path)
    return len(index)


@pytest.mark.slow
def test_kill_during_save_leaves_a_loadable_index(tmp_path):
    out = tmp_path / "ix"
    base = _big_index(out)
    script = tmp_path / "saver.py"
    script.write_text(SAVER.format(tests=str(TESTS)), encoding="utf-8")
    rng = random.Random(7)
    seen_counts = set()
    cut_mid_save = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        # Time the kill from the moment a save is under way (not from start-up, whose length
        # varies with the machine's load): early in the data writing, or anywhere later.
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".tmp-data-") for p in out.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.2) if attempt % 2 == 0 else rng.uniform(0.2, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cut_mid_save += any(p.name.startswith(".tmp-data-") for p in out.iterdir())
        index = Index.load(out, embedding_model=HashEmbedder(256))  # verifies every checksum
        stats = index.stats()
        assert stats["unique_chunks"] == len(index.vectors) == len(index.bm25)
        assert stats["unique_chunks"] >= base
        seen_counts.add(stats["unique_chunks"])
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert (out / manifest["data"]).is_dir()
    assert cut_mid_save >= 2, "the kills never landed inside a save; the test proved nothing"
    # the next save cleans up whatever the killed processes left behind
    Index.load(out, embedding_model=HashEmbedder(256)).save(out)
    leftovers = [p.name for p in out.iterdir() if p.name not in ("manifest.json", ".lock") and not p.name.startswith("data-")]
    assert leftovers == [] and len([p for p in out.iterdir() if p.name.startswith("data-")]) == 1


def test_save_is_a_single_switch_of_the_manifest(tmp_path, monkeypatch):
    """Whatever happens before os.replace, readers see the old manifest and its data."""
    import os

    out = tmp_path / "ix"
    index = Index(HashEmbedder())
    index.add_documents([Document(text="first version", source="a.txt")])
    index.save(out)
    index.add_documents([Document(text="second version", source="b.txt")])

    real_replace = os.replace

    def crash_before_switch(src, dst):
        if str(dst).endswith("manifest.json"):
            raise KeyboardInterrupt("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_before_switch)
    with pytest.raises(KeyboardInterrupt):
        index.save(out)
    monkeypatch.setattr(os, "replace", real_replace)
    back = Index.load(out, embedding_model=HashEmbedder())
    assert back.sources == ["a.txt"]
