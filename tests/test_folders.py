"""Any folder: pipes, sockets, devices, files over the limit or still growing, huge single lines,
names that are not UTF-8 or that hold terminal escapes.  Everything here is real: real FIFOs,
sockets and device links, real subprocesses; a hang fails the test instead of blocking it."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest
from fakes import HashEmbedder

from ragbook.chunking import Chunker
from ragbook.documents import Document
from ragbook.errors import LoadError
from ragbook.index import Index
from ragbook.loaders import Problem, discover, load, load_file, register_loader
from ragbook.loaders.files import digest_limited, printable, read_limited
from ragbook.loaders.text import load_text

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and device files are POSIX")
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
GUARD_S = 30  # far longer than any of these calls takes; only a hang gets near it


def finishes(fn, *args, **kwargs):
    """``fn(*args)``, failing the test if it has not returned within GUARD_S seconds."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(GUARD_S)
    if worker.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} hung (still running after {GUARD_S} s)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def release_fifos(folder: Path) -> None:
    """Unblock anything stuck opening a FIFO for reading (only a failing run has one)."""
    for path in folder.rglob("*"):
        if path.is_fifo():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass


@pytest.fixture()
def hostile(tmp_path, monkeypatch):
    """A folder with one real note, a FIFO, a link to /dev/zero, a socket and a link to a FIFO."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nThe only real note in this folder.", encoding="utf-8")
    os.mkfifo(folder / "pipe.md")
    os.symlink("/dev/zero", folder / "zero.txt")
    os.symlink(folder / "pipe.md", folder / "pipe-link.txt")
    monkeypatch.chdir(folder)  # a socket path must be short: bind a relative one
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("sock.md")
    yield folder
    server.close()
    release_fifos(folder)


EXPECTED = {"pipe.md": "named pipe", "zero.txt": "symbolic link to a character device (/dev/zero)",
            "pipe-link.txt": "symbolic link to a named pipe", "sock.md": "socket"}


# --- special files: reported, never opened ----------------------------------------------------------


@posix_only
def test_discover_reports_pipes_devices_and_sockets_in_a_folder(hostile):
    files, problems = finishes(discover, hostile)
    assert [f.source for f in files] == ["docs/good.md"]
    reasons = {p.source: p.reason for p in problems}
    assert set(reasons) == {f"docs/{name}" for name in EXPECTED}
    for name, kind in EXPECTED.items():
        assert kind in reasons[f"docs/{name}"] and "not a regular file" in reasons[f"docs/{name}"]


@posix_only
def test_special_files_named_directly_or_by_glob_are_reported(hostile):
    for name, kind in EXPECTED.items():
        files, problems = finishes(discover, hostile / name)
        assert files == [] and len(problems) == 1 and kind in problems[0].reason, name
        with pytest.raises(LoadError, match="not a regular file"):
            finishes(load_file, hostile / name)
    files, problems = finishes(discover, str(hostile / "*.md"))
    assert [f.source for f in files] == ["docs/good.md"]
    assert {p.source for p in problems} == {"docs/pipe.md", "docs/sock.md"}
    # filters apply first: a special file nobody asked for is not news
    files, problems = finishes(discover, hostile, include="good.*")
    assert [f.source for f in files] == ["docs/good.md"] and problems == []


@posix_only
def test_index_add_finishes_and_reports_each_special_file(hostile):
    index = Index(HashEmbedder())
    report = finishes(index.add, hostile)
    assert report.added == ["docs/good.md"] and index.sources == ["docs/good.md"]
    assert {p.source for p in report.skipped} == {f"docs/{name}" for name in EXPECTED}
    # named one by one
    report = finishes(index.add, [hostile / name for name in EXPECTED])
    assert {p.source for p in report.skipped} == set(EXPECTED) and not report.added
    loaded = finishes(load, hostile)
    assert [d.source for d in loaded] == ["docs/good.md"] and len(loaded.errors) == len(EXPECTED)


@posix_only
def test_a_file_swapped_for_a_pipe_after_the_check_cannot_hang_a_read(tmp_path):
    # The check-then-open race, played out: the path passes os.stat as a regular file, then is
    # replaced by a FIFO before the open.  Opening is non-blocking and re-checked on the descriptor.
    path = tmp_path / "notes.txt"
    path.write_text("ordinary text", encoding="utf-8")
    assert stat.S_ISREG(os.stat(path).st_mode)
    path.unlink()
    os.mkfifo(path)
    try:
        for read in (read_limited, digest_limited, load_text):
            with pytest.raises(LoadError, match="named pipe"):
                finishes(read, path)
    finally:
        release_fifos(tmp_path)


# --- size limits: checked before reading, and while reading -----------------------------------------


def _atime_updates_on_read(path: Path) -> bool:
    os.utime(path, (0, os.stat(path).st_mtime))
    with open(path, "rb") as f:
        f.read(1)
    return os.stat(path).st_atime != 0


def test_a_file_over_the_limit_is_refused_without_being_read(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(48 * 2**20)  # sparse: 48 MB of zeros that take no disk space
    control = tmp_path / "control.txt"
    control.write_text("x", encoding="utf-8")
    index = Index(HashEmbedder())
    index.add(control)  # first use: lazy imports and caches stay out of the measurement
    tracemalloc.start()
    with pytest.raises(LoadError, match=r"file too large \(48.0 MB, the limit is max_file_mb=1\)"):
        load_file(big, max_file_mb=1)
    report = index.add(big, max_file_mb=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [p.source for p in report.skipped] == ["big.txt"] and "file too large" in report.skipped[0].reason
    assert peak < 4 * 2**20  # a read (or a hash buffer of the whole file) would show here
    if _atime_updates_on_read(control):  # the file system records reads: prove none happened
        os.utime(big, (0, os.stat(big).st_mtime))
        with pytest.raises(LoadError):
            load_file(big, max_file_mb=1)
        index.add(big, max_file_mb=1)
        assert os.stat(big).st_atime == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_reading_stops_at_the_limit_when_a_file_is_longer_than_it_said():
    # /proc files say they are 0 bytes long and then deliver more, just like a file that grows
    # between the size check and the read: reading must stop at the limit, not at the end.
    status = "/proc/self/status"
    assert os.stat(status).st_size == 0
    assert b"Name:" in read_limited(status, max_file_mb=1)
    tiny = 64 / 2**20  # 64 bytes
    for read in (read_limited, digest_limited):
        with pytest.raises(LoadError, match="grew past the limit"):
            read(status, max_file_mb=tiny)


# --- memory: bounded by a window, not by the file ---------------------------------------------------


def _prose(chars: int) -> str:
    """One line of varied English sentences, ``chars`` long."""
    words = ("the committee reviewed each proposal carefully before the final vote while members "
             "argued about budgets deadlines and the quality of evidence presented in earlier meetings").split()
    out, i = [], 0
    while sum(map(len, out)) + len(out) < chars:
        n = 6 + (i * 7) % 19
        out.append(" ".join(words[(i * 5 + k) % len(words)] for k in range(n)).capitalize() + ".")
        i += 1
    return " ".join(out)[:chars]


def _working_memory(chunker: Chunker, doc: Document) -> tuple[list, int]:
    """Chunks and the peak Python memory of the split beyond what its result keeps."""
    tracemalloc.start()
    chunks = chunker.split(doc)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return chunks, peak - current


def test_a_long_single_line_is_chunked_a_window_at_a_time(embedder_tokenizer):
    text = _prose(300_000)
    doc = Document(text=text, source="one-line.txt")
    windowed = Chunker(tokenizer=embedder_tokenizer, max_tokens=254)
    windowed._one_pass_chars = windowed._window_chars = 20_000
    whole = Chunker(tokenizer=embedder_tokenizer, max_tokens=254)
    chunks, windowed_bytes = _working_memory(windowed, doc)
    reference, whole_bytes = _working_memory(whole, doc)
    # the working memory is the window's: well under what one pass over the whole text takes
    assert windowed_bytes < 3 * 2**20 and windowed_bytes * 5 < whole_bytes
    # and windows leave no seams in a single line: the very same chunks
    assert [(c.start, c.end) for c in chunks] == [(c.start, c.end) for c in reference]
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert len(embedder_tokenizer.encode(c.text, add_special_tokens=False).ids) <= windowed.chunk_size


def test_windows_cover_everything_whatever_the_text(embedder_tokenizer):
    cases = {
        "paragraphs": "\n\n".join(_prose(3_000) for _ in range(40)),
        "no spaces": "abcdefghij" * 12_000,  # one unbroken run: windows cut anywhere
        "sparse words": ("word" + " " * 3_000) * 60,  # mostly whitespace: few tokens per window
    }
    for name, text in cases.items():
        chunker = Chunker(tokenizer=embedder_tokenizer, max_tokens=254)
        chunker._one_pass_chars = chunker._window_chars = 10_000
        chunks = finishes(chunker.split, Document(text=text, source="x"))
        assert chunks, name
        covered = "".join(text[a.end:b.start] for a, b in zip(chunks, chunks[1:]) if b.start > a.end)
        assert covered.strip() == "", f"{name}: text between chunks was dropped"
        assert chunks[0].start == len(text) - len(text.lstrip()) and chunks[-1].end == len(text.rstrip()), name
        for c in chunks:
            assert text[c.start:c.end] == c.text
            assert len(embedder_tokenizer.encode(c.text, add_special_tokens=False).ids) <= 254, name


def _without_utf8_cache(text: str) -> int:
    """The size ``text`` would have as a fresh str (no cached UTF-8 copy inside)."""
    return sys.getsizeof(text[:1] + text[1:])


def test_passages_keep_no_utf8_copy_from_the_tokenizer(embedder_tokenizer, embedder):
    # A Rust tokenizer leaves a UTF-8 copy inside every non-ASCII str it reads: on passages an
    # index keeps for life that is half as much memory again.
    text = "\n\n".join(f"Le café numéro {i} sert un thé très chaud, n'est-ce pas ? " * 9 for i in range(40))
    probe = text[:1] + text[1:]
    before = sys.getsizeof(probe)
    embedder_tokenizer.encode(probe)
    assert sys.getsizeof(probe) > before  # the effect is real on this Python
    chunks = Chunker(tokenizer=embedder_tokenizer, max_tokens=254, chunk_size=64).split(Document(text=text, source="x"))
    assert len(chunks) > 10
    assert all(sys.getsizeof(c.text) == _without_utf8_cache(c.text) for c in chunks)
    passages = [c.text for c in chunks[:8]]
    embedder.encode_documents(passages)
    assert all(sys.getsizeof(p) == _without_utf8_cache(p) for p in passages)


@pytest.fixture(scope="module")
def embedder_tokenizer():
    """The default model's tokenizer, without loading the model (no torch)."""
    from ragbook.embedding import Embedder

    return Embedder().tokenizer


# --- names: not UTF-8, control characters -----------------------------------------------------------


def _make(folder: Path, raw_name: bytes, text: str) -> None:
    try:
        with open(os.path.join(os.fsencode(folder), raw_name), "wb") as f:
            f.write(text.encode("utf-8"))
    except OSError as exc:  # macOS and Windows file systems refuse such names
        pytest.skip(f"this file system refuses the name {raw_name!r}: {exc}")


def test_a_name_that_is_not_utf8_is_indexed_saved_and_loaded(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    _make(folder, b"caf\xe9.txt", "Espresso is brewed by forcing hot water through ground coffee.")
    _make(folder, b"plain.md", "# Plain\n\nAn ordinary note.")
    index = Index(HashEmbedder())
    report = index.add(folder)
    assert report.ok and sorted(report.added) == ["docs/caf\\xe9.txt", "docs/plain.md"]
    hit = index.search("espresso coffee", k=1)[0]
    assert hit.chunk.source == "docs/caf\\xe9.txt" and hit.chunk.title == "caf\\xe9"
    str(report).encode("utf-8")  # printable without errors

    out = tmp_path / "ix"
    index.save(out)
    manifest = (out / "manifest.json").read_bytes()
    json.loads(manifest.decode("utf-8"))  # strict UTF-8 JSON
    back = Index.load(out, embedding_model=HashEmbedder())
    assert back.files == index.files and back.sources == index.sources
    # the record still leads to the real file: an update finds it unchanged, an edit re-reads it
    assert back.add().unchanged == ["docs/caf\\xe9.txt", "docs/plain.md"]
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "ab") as f:
        f.write(b" Ristretto is shorter.")
    assert back.add().updated == ["docs/caf\\xe9.txt"]
    # named directly, as bytes or as the str Python makes of them
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.txt")
    assert load_file(raw)[0].source == "caf\\xe9.txt"
    assert Index(HashEmbedder()).add(raw).added == ["caf\\xe9.txt"]
    assert Index(HashEmbedder()).add(os.fsdecode(raw)).added == ["caf\\xe9.txt"]


def test_text_a_loader_returns_with_lone_surrogates_does_not_sink_the_save(tmp_path, monkeypatch):
    import ragbook.loaders

    monkeypatch.setattr(ragbook.loaders, "_LOADERS", dict(ragbook.loaders._LOADERS))
    register_loader(".raw", lambda path: Document(text=path.read_bytes().decode("utf-8", "surrogateescape"),
                                                  source=path.name, title="t\udcff", metadata={"k": "v\udcfe"}))
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "bad.raw").write_bytes(b"broken \xff bytes from a custom loader")
    index = Index(HashEmbedder())
    report = index.add(folder)
    assert report.added == ["docs/bad.raw"]
    assert any("lone surrogates" in w.reason for w in report.warnings)
    assert index.text(0) == "broken \ufffd bytes from a custom loader"
    index.save(tmp_path / "ix")
    assert Index.load(tmp_path / "ix", embedding_model=HashEmbedder()).text(0) == index.text(0)


HOSTILE_NAMES = {"a\x1b[31mred.md": "a\\x1b[31mred.md", "new\nline.md": "new\\x0aline.md",
                 "bell\x07\x9b2J.md": "bell\\x07\\x9b2J.md", "rtl\u202egnp.md": "rtl\\u202egnp.md"}


def test_problems_and_reports_print_names_on_one_escaped_line():
    for raw, shown in HOSTILE_NAMES.items():
        problem = Problem(raw, "broken\nreason \x1b[2J")
        assert str(problem) == f"{shown}: broken\\x0areason \\x1b[2J"
        assert printable(raw) == shown
    assert printable("caf\udce9.txt") == "caf\\xe9.txt" and printable("ordinary name.md") == "ordinary name.md"


@posix_only
def test_cli_index_escapes_control_characters_in_names(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for raw in HOSTILE_NAMES:
        (folder / raw).write_text("# Note\n\nSome text about a topic.", encoding="utf-8")
    os.mkfifo(folder / "pipe\x1b]0;owned\x07\n.md")  # skipped, so its name is printed
    _make(folder, b"bad\xff\x1b[1m.txt", "Not UTF-8 and bold.")
    (folder / "empty\x1b[5m.md").write_text("", encoding="utf-8")  # skipped too
    # `python -m ragbook index`, with the fast stand-in embedder instead of the real model
    driver = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from fakes import HashEmbedder\n"
        "import ragbook.index\n"
        "ragbook.index.Embedder = lambda *args, **kwargs: HashEmbedder()\n"
        f"sys.argv = ['ragbook', '--no-progress', 'index', {str(folder)!r}, '--out', {str(tmp_path / 'ix')!r}]\n"
        "runpy.run_module('ragbook', run_name='__main__')\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, timeout=120, cwd=REPO,
                              env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    finally:
        release_fifos(folder)
    out = proc.stdout.decode("utf-8")  # strict: valid UTF-8
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    assert "5 added" in out and "2 skipped" in out
    for byte in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert byte not in out
    skipped = [line for line in out.splitlines() if line.strip().startswith("skipped")]
    assert len(skipped) == 2  # one line each, however many newlines their names hold
    assert any("docs/pipe\\x1b]0;owned\\x07\\x0a.md: a named pipe" in line for line in skipped)
    assert any("docs/empty\\x1b[5m.md: empty file" in line for line in skipped)
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text(encoding="utf-8"))
    assert "docs/bad\\xff\\x1b[1m.txt" in manifest["files"]
    assert {f"docs/{shown}" for shown in HOSTILE_NAMES.values()} <= set(manifest["files"])


def test_html_views_escape_names(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "<img src=x onerror=alert(1)>.md").write_text("", encoding="utf-8")
    report = Index(HashEmbedder()).add(folder)
    loaded = load(folder)
    for html in (report._repr_html_(), loaded._repr_html_()):
        assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.md" in html


# --- odd content that must not sink the index ---------------------------------------------------------


def test_a_file_holding_one_endless_word_indexes_saves_and_loads(tmp_path):
    path = tmp_path / "blob.txt"
    path.write_text("Intro words. " + "QUJD" * 30_000 + " closing words.", encoding="utf-8")
    index = Index(HashEmbedder())
    assert index.add(path).added == ["blob.txt"]
    index.save(tmp_path / "ix")  # a 120,000-character "word" is no BM25 term, so bm25.json stays loadable
    back = Index.load(tmp_path / "ix", embedding_model=HashEmbedder())
    assert len(back) == len(index) and "".join(back.text(r) for r in range(len(back))).count("QUJD") == 30_000


@posix_only
def test_symbolic_link_loops_are_reported_as_loops(tmp_path):
    os.symlink(tmp_path / "b.md", tmp_path / "a.md")
    os.symlink(tmp_path / "a.md", tmp_path / "b.md")
    files, problems = discover(tmp_path)
    assert files == [] and len(problems) == 2 and all("symbolic link loop" in p.reason for p in problems)
