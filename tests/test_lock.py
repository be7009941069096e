"""One writer at a time: real processes contend for an index folder's lock.

Every holder here is a separate Python process, so the lock under test is the operating
system's, and "killed" means SIGKILL: nothing of the holder's runs after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fakes import HashEmbedder

from ragbook.documents import Document
from ragbook.errors import IndexFormatError, IndexLockedError, SettingsError
from ragbook.index import Index
from ragbook.storage import index_lock

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ragbook.storage import index_lock

    with index_lock(sys.argv[1]):
        (Path(sys.argv[1]) / ".tmp-data-inuse").mkdir()  # as a save in progress would have
        print("held", flush=True)
        time.sleep(120)
    """
)

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from fakes import HashEmbedder
    from ragbook.index import build

    out, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    while not go.exists():  # start together with the other writer
        time.sleep(0.005)
    for i in range(4):
        folder = Path(sys.argv[4]) / f"{{name}}-round{{i}}"
        folder.mkdir(parents=True)
        (folder / f"{{name}}-{{i}}.md").write_text(f"# Round {{i}}\\n\\nWriter {{name}} wrote passage {{i}}.\\n",
                                                  encoding="utf-8")
        build(folder, out=out, embedding_model=HashEmbedder(), lock_timeout=120)
    print("done", flush=True)
    """
)


def _small_index(path: Path, text: str = "Tides follow the moon.", source: str = "tides.txt") -> Index:
    index = Index(HashEmbedder())
    index.add_documents([Document(text=text, source=source)])
    index.save(path)
    return index


def _start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.fixture()
def holder(tmp_path):
    """A separate process holding the lock of an existing index folder, killed at the end."""
    out = tmp_path / "ix"
    _small_index(out)
    proc = _start(HOLDER, str(out))
    assert proc.stdout.readline().strip() == b"held", proc.stderr.read().decode()
    yield out, proc
    proc.kill()
    proc.wait()


def test_a_held_lock_stops_a_writer_naming_the_holder(holder, monkeypatch):
    out, proc = holder
    index = _small_index(out.parent / "other")
    with pytest.raises(IndexLockedError) as info:
        index.save(out, lock_timeout=0.3)
    message = str(info.value)
    assert f"pid {proc.pid} (" in message and "since" in message and "waited 0.3 s" in message
    assert isinstance(info.value, TimeoutError)
    monkeypatch.setenv("RAGBOOK_LOCK_TIMEOUT", "0.2")  # the default wait, from the environment
    with pytest.raises(IndexLockedError, match="waited 0.2 s"):
        index.save(out)
    # the holder's save in progress is left alone, and readers need no lock
    assert (out / ".tmp-data-inuse").is_dir()
    assert Index.load(out, embedding_model=HashEmbedder()).sources == ["tides.txt"]


def test_a_killed_holder_frees_the_lock_and_its_leftovers_go(holder):
    out, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    index = _small_index(out.parent / "other", "Neap tides are weaker.", "neap.txt")
    index.save(out, lock_timeout=5)
    assert Index.load(out, embedding_model=HashEmbedder()).sources == ["neap.txt"]
    assert not (out / ".tmp-data-inuse").exists()  # the dead save's temporary folder is removed
    assert (out / ".lock").read_bytes() == b""  # nobody holds it: it names no one


def test_two_processes_building_one_folder_lose_nothing(tmp_path):
    out, go = tmp_path / "ix", tmp_path / "go"
    writers = [_start(WRITER.format(tests=str(TESTS)), str(out), name, str(go), str(tmp_path / "docs"))
               for name in ("a", "b")]
    time.sleep(0.5)  # let both import ragbook and wait on the go file
    go.touch()
    for proc in writers:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0 and stdout.strip() == b"done", stderr.decode()
    index = Index.load(out, embedding_model=HashEmbedder())
    names = sorted(Path(source).name for source in index.sources)
    assert names == sorted(f"{w}-{i}.md" for w in "ab" for i in range(4))  # each build kept the other's files
    assert sorted(p.name for p in out.iterdir() if p.name != "manifest.json") == [".lock", index_data(out)]


def index_data(out: Path) -> str:
    import json

    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))["data"]


def test_readers_need_no_lock_while_a_writer_saves_again_and_again(tmp_path):
    out = tmp_path / "ix"
    _small_index(out)
    saver = textwrap.dedent(
        """
        import sys, time
        sys.path.insert(0, {tests!r})
        from fakes import HashEmbedder
        from ragbook.documents import Document
        from ragbook.index import Index

        index = Index.load(sys.argv[1], embedding_model=HashEmbedder())
        for i in range(15):
            index.add_documents([Document(text=f"Passage {{i}} about tides and the moon.", source=f"p{{i}}.txt")])
            index.save(sys.argv[1])
            time.sleep(0.02)
        """
    ).format(tests=str(TESTS))
    proc = _start(saver, str(out))
    loads = 0
    while proc.poll() is None or loads == 0:
        index = Index.load(out, embedding_model=HashEmbedder())  # each load sees one complete generation
        assert len(index) == len(index.vectors) == len(index.bm25) == len(index.files)
        loads += 1
    assert proc.wait() == 0, proc.stderr.read().decode()
    assert len(Index.load(out, embedding_model=HashEmbedder()).files) == 16


def test_threads_of_one_process_take_turns(tmp_path):
    out = tmp_path / "ix"
    _small_index(out)
    errors = []

    def saver(name):
        index = Index(HashEmbedder())
        for i in range(5):
            index.add_documents([Document(text=f"{name} passage {i}", source=f"{name}{i}.txt")])
            try:
                index.save(out, lock_timeout=60)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=saver, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(Index.load(out, embedding_model=HashEmbedder()).files) == 5  # the last save, whole


def test_the_lock_is_reentrant_for_its_holder_and_excludes_other_threads(tmp_path):
    out = tmp_path / "ix"
    index = _small_index(out)
    with index_lock(out, timeout=0.2):
        index.save(out, lock_timeout=0.2)  # the same thread: no deadlock
        failures = []
        other = threading.Thread(target=lambda: _save_expecting_lock(index, out, failures))
        other.start()
        other.join()
        assert [type(e) for e in failures] == [IndexLockedError]
        assert "another thread of this process" in str(failures[0])
    index.save(out, lock_timeout=0.2)  # released


def _save_expecting_lock(index, out, failures):
    try:
        index.save(out, lock_timeout=0.2)
    except IndexLockedError as exc:
        failures.append(exc)


@pytest.mark.skipif(sys.platform == "win32", reason="links and FIFOs need POSIX")
def test_a_planted_lock_link_folder_or_fifo_is_refused(tmp_path):
    out = tmp_path / "ix"
    index = _small_index(out)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    (out / ".lock").unlink()
    os.symlink(victim, out / ".lock")
    with pytest.raises(IndexFormatError, match="symbolic link"):
        index.save(out)
    assert victim.read_text(encoding="utf-8") == "precious"
    (out / ".lock").unlink()
    (out / ".lock").mkdir()
    with pytest.raises(IndexFormatError, match="is a folder"):
        index.save(out)
    (out / ".lock").rmdir()
    os.mkfifo(out / ".lock")
    with pytest.raises(IndexFormatError, match="not a regular file"):
        index.save(out)


def test_no_lock_file_is_made_in_a_folder_that_is_not_an_index(tmp_path):
    precious = tmp_path / "my-documents"
    precious.mkdir()
    (precious / "thesis.md").write_text("do not touch", encoding="utf-8")
    index = Index(HashEmbedder())
    index.add_documents([Document(text="Tides follow the moon.", source="t.txt")])
    with pytest.raises(IndexFormatError, match="not a ragbook index"):
        index.save(precious)
    assert sorted(p.name for p in precious.iterdir()) == ["thesis.md"]


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_lock_timeout_is_a_settings_error(tmp_path, monkeypatch, value):
    monkeypatch.setenv("RAGBOOK_LOCK_TIMEOUT", value)
    with pytest.raises(SettingsError, match="RAGBOOK_LOCK_TIMEOUT"):
        _small_index(tmp_path / "ix")
    with pytest.raises(SettingsError, match="lock_timeout"):
        with index_lock(tmp_path / "iy", timeout=-2):
            pass
