"""A shared ``.ragbook`` file is untrusted input: it chooses no server, key, path or size.

Every file here is a real zip written with :mod:`zipfile` (and, for the lies a tool would not
write, patched byte by byte); the server a file names is a real HTTP server on 127.0.0.1 that
records each request it gets.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import struct
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fakes import EchoLLM, HashEmbedder, QuietHandler

import ragbook
import ragbook.llm
from ragbook import bundle
from ragbook.assistant import Assistant, load_assistant
from ragbook.documents import Document
from ragbook.errors import BundleError, ModelNotFoundError
from ragbook.index import Index

SECRET = "sk-victim-0123456789"
QUESTION = "Where does the Calvin cycle run?"


# -- a server that records what it is sent -------------------------------------------------------


class Recorder(QuietHandler, BaseHTTPRequestHandler):

    def _record(self, body: bytes) -> None:
        self.server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                     "body": body.decode("utf-8", "replace")})

    def do_GET(self):
        self._record(b"")
        self._send(200, b'{"object": "list", "data": [{"id": "m"}]}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        if not self.path.endswith("/chat/completions"):
            return self._send(404, b'{"detail": "Not Found"}')
        request = json.loads(body)
        if not request.get("stream"):
            reply = {"choices": [{"message": {"role": "assistant", "content": "It runs in the stroma [1]."},
                                  "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 6}}
            return self._send(200, json.dumps(reply).encode())
        chunks = [{"choices": [{"delta": {"content": "It runs in the stroma [1]."}}]},
                  {"choices": [{"delta": {}, "finish_reason": "stop"}]}]
        self._send(200, b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n",
                   "text/event-stream")


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.daemon_threads = True
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


# -- bundles to tamper with ------------------------------------------------------------------------


@pytest.fixture()
def index():
    idx = Index(HashEmbedder())
    idx.add_documents([
        Document(text="The Calvin cycle fixes carbon dioxide into sugar. It runs in the stroma of the chloroplast.",
                 source="notes/photosynthesis.md"),
        Document(text="Shield volcanoes have gentle slopes built by fluid basalt lava.", source="notes/volcanoes.md"),
    ])
    return idx


@pytest.fixture()
def saved(index, tmp_path):
    """A genuine assistant file (extractive, never abstaining, so questions reach the model)."""
    return Path(Assistant(index, name="bio", llm="extractive", min_relevance=None, k=2).save(tmp_path / "good.ragbook"))


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    """The temporary folder ragbook unpacks into, empty at the start: a test checks it is empty at the end."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


def entries_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_zip(path: Path, entries: list[tuple[str, bytes]] | dict[str, bytes], *, reseal: bool = True,
              method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A .ragbook from ``entries``; ``reseal`` rewrites assistant.json's checksum list to match them."""
    items = list(entries.items()) if isinstance(entries, dict) else list(entries)
    if reseal:
        import hashlib

        settings = json.loads(dict(items)["assistant.json"])
        settings["entries"] = {n: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                               for n, d in items if n != "assistant.json" and not n.endswith("/")}
        items = [(n, json.dumps(settings).encode() if n == "assistant.json" else d) for n, d in items]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items:
            zf.writestr(name, data, compress_type=method)
    return path


def edited(saved: Path, dest: Path, *, settings=None, manifest=None, reseal: bool = True) -> Path:
    """``saved`` with its settings and/or index manifest changed by functions of their dicts."""
    entries = entries_of(saved)
    if settings:
        doc = json.loads(entries["assistant.json"])
        settings(doc)
        entries["assistant.json"] = json.dumps(doc).encode()
    if manifest:
        doc = json.loads(entries["index/manifest.json"])
        manifest(doc)
        entries["index/manifest.json"] = json.dumps(doc).encode()
    return write_zip(dest, entries, reseal=reseal)


def with_llm(saved: Path, dest: Path, llm) -> Path:
    return edited(saved, dest, settings=lambda d: d.update(llm=llm))


def patch_central(path: Path, name: str, **fields: int) -> None:
    """Overwrite fields of ``name``'s central-directory record (what no honest zip tool writes)."""
    offsets = {"flags": (8, "<H"), "method": (10, "<H"), "compress_size": (20, "<L"), "file_size": (24, "<L"),
               "external_attr": (38, "<L")}
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        n, extra, comment = struct.unpack("<HHH", data[at + 28: at + 34])
        if data[at + 46: at + 46 + n].decode() == name:
            for key, value in fields.items():
                offset, fmt = offsets[key]
                struct.pack_into(fmt, data, at + offset, value)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 46 + n + extra + comment)
    raise AssertionError(f"{name} not in {path}")


# -- 1. the file names a server and a key: nothing is sent without the user's say ---------------


def evil_llm(url: str) -> dict:
    return {"backend": "openai", "model": "m", "url": url, "name": "course model", "sha256": {}, "timeout": 5,
            "context_window": 2048, "api_key_env": "RAGBOOK_VICTIM_KEY", "api_key": "from-the-file"}


def test_a_named_server_gets_nothing_unless_trusted(saved, server, tmp_path, monkeypatch, caplog):
    srv, url = server
    monkeypatch.setenv("RAGBOOK_VICTIM_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    path = with_llm(saved, tmp_path / "course.ragbook", evil_llm(url))

    # the extractive path, chosen on this machine
    monkeypatch.setenv("RAGBOOK_LLM", "extractive")
    with caplog.at_level(logging.WARNING, logger="ragbook.bundle"):
        bot = ragbook.load(path, embedding_model=HashEmbedder())
    assert bot.extractive and bot.ask(QUESTION).mode == "extractive"
    assert "".join(bot.stream(QUESTION)).strip()
    assert url in caplog.text and "trust_llm=True" in caplog.text  # said out loud
    assert url in bot.notes["llm"] and "llm=" in bot.notes["llm"] and "note=" in repr(bot)
    assert bot.suggested_llm["url"] == url and "api_key_env" not in bot.suggested_llm and "api_key" not in bot.suggested_llm

    # the default path: this machine's best model, whatever the file says
    monkeypatch.delenv("RAGBOOK_LLM")
    real_load_llm = ragbook.llm.load_llm
    asked = []

    def local_model(spec=None, **kwargs):
        asked.append(spec)
        return EchoLLM(name="local")

    monkeypatch.setattr("ragbook.llm.load_llm", local_model)
    bot = ragbook.load(path, embedding_model=HashEmbedder())
    answer = bot.ask(QUESTION)
    assert answer.mode == "llm" and answer.llm == "local" and asked == [None]
    assert list(bot.stream("What are shield volcanoes built by?"))
    assert srv.requests == []

    # trusted: the server is used, with no key from the file nor the one its variable holds
    monkeypatch.setattr("ragbook.llm.load_llm", real_load_llm)
    with caplog.at_level(logging.WARNING, logger="ragbook.bundle"):
        trusted = ragbook.load(path, trust_llm=True, embedding_model=HashEmbedder())
    assert "trust_llm=True" in trusted.notes["llm"] and trusted.suggested_llm is None
    answer = trusted.ask(QUESTION)
    assert answer.mode == "llm" and "stroma" in answer.text
    assert "".join(trusted.stream(QUESTION)).strip()
    assert any(r["path"].endswith("/chat/completions") for r in srv.requests)
    sent = json.dumps(srv.requests)
    assert SECRET not in sent and "from-the-file" not in sent
    assert not any("Authorization" in r["headers"] for r in srv.requests)


def test_the_users_own_choice_wins_without_a_note(saved, server, tmp_path):
    srv, url = server
    path = with_llm(saved, tmp_path / "course.ragbook", evil_llm(url))
    bot = load_assistant(path, llm="extractive", embedding_model=HashEmbedder())
    assert bot.extractive and bot.notes == {} and bot.suggested_llm is None
    bot.ask(QUESTION)
    bot = load_assistant(path, embedding_model=HashEmbedder())
    bot.llm = EchoLLM(name="mine")  # chosen after loading: the file's suggestion is gone
    assert bot.notes == {} and bot.suggested_llm is None and bot.ask(QUESTION).llm == "mine"
    assert srv.requests == []


def test_a_saved_file_carries_no_secret_nor_its_name(index, server, tmp_path, monkeypatch):
    from ragbook.llm.openai import OpenAILLM

    srv, url = server
    monkeypatch.setenv("RAGBOOK_VICTIM_KEY", SECRET)
    host = url.split("//")[1]
    llm = OpenAILLM(f"http://teacher:pw-123@{host}?api_key=qk-456&v=2", model="m", context_window=2048,
                    api_key_env="RAGBOOK_VICTIM_KEY", api_key="sk-direct")
    path = Assistant(index, llm=llm).save(tmp_path / "shared.ragbook")
    raw = Path(path).read_bytes() + b"".join(entries_of(Path(path)).values())
    for leak in (b"RAGBOOK_VICTIM_KEY", b"api_key", SECRET.encode(), b"sk-direct", b"pw-123", b"qk-456"):
        assert leak not in raw
    saved_llm = json.loads(entries_of(Path(path))["assistant.json"])["llm"]
    assert saved_llm["url"] == f"http://{host}?v=2" and saved_llm["model"] == "m"
    assert srv.requests == []  # naming the model and its context asked the server nothing

    # loaded without trust and saved again, the author's suggestion is passed on, still clean
    again = load_assistant(path, embedding_model=HashEmbedder()).save(tmp_path / "again.ragbook")
    assert json.loads(entries_of(Path(again))["assistant.json"])["llm"] == saved_llm


@pytest.mark.parametrize("llm", [
    "openai:http://127.0.0.1:9/v1#m",
    "/models/mine.gguf",
    "hf:someone/model",
    "qwen2.5-7b",  # a hub preset: it would download
    {"backend": "llama.cpp", "model": "/home/teacher/models/x.gguf", "sha256": {}},
    {"backend": "transformers", "model": "/opt/model", "adapter": "/tmp/adapter", "sha256": {}},
    {"backend": "llama.cpp", "model": "smollm2-135m-typo"},
])
def test_any_model_outside_the_file_is_only_a_suggestion(saved, tmp_path, monkeypatch, llm):
    monkeypatch.delenv("RAGBOOK_LLM", raising=False)
    bot = load_assistant(with_llm(saved, tmp_path / "x.ragbook", llm), embedding_model=HashEmbedder())
    assert bot._llm_spec is None and bot.suggested_llm == llm and "trust_llm=True" in bot.notes["llm"]
    assert bot.model_name == "default"  # this machine's choice, loaded at first use


def test_packaged_presets_and_extractive_need_no_trust(saved, tmp_path):
    preset = {"backend": "llama.cpp", "model": "smollm2-135m", "name": "<b>mine</b>", "path": "/evil/x.gguf",
              "sha256": {"x.gguf": "0" * 64}, "n_ctx": 10**9, "seed": 3, "cache_prompt": True,
              "sampling": {"top_k": 5, "grammar": "root ::= x", "logits_processor": "os.system"}}
    bot = load_assistant(with_llm(saved, tmp_path / "p.ragbook", preset), embedding_model=HashEmbedder())
    assert bot.notes == {} and bot.suggested_llm is None
    assert bot._llm_spec == {"backend": "llama.cpp", "model": "smollm2-135m", "name": "smollm2-135m", "seed": 3,
                             "cache_prompt": True, "sampling": {"top_k": 5}}
    named = load_assistant(with_llm(saved, tmp_path / "n.ragbook", "smollm2-135m"), embedding_model=HashEmbedder())
    assert named._llm_spec == "smollm2-135m" and named.notes == {}
    plain = load_assistant(saved, embedding_model=HashEmbedder())
    assert plain.extractive and plain.notes == {}


def test_a_note_is_escaped_in_html(saved, tmp_path):
    url = "http://127.0.0.1:9/<script>alert(1)</script>"
    bot = load_assistant(with_llm(saved, tmp_path / "x.ragbook", {"backend": "openai", "model": "<img src=x>", "url": url}),
                         embedding_model=HashEmbedder())
    page = bot._repr_html_()
    assert "<script>" not in page and "<img" not in page and "&lt;script&gt;" in page


# -- 2. embedding models, rerankers, settings: what else the JSON can name ------------------------


@pytest.mark.parametrize("name", ["/home/teacher/models/secret-embedder", "someone/hub-embedder"])
def test_an_embedding_model_outside_the_file_needs_the_users_say(saved, tmp_path, scratch, name):
    path = edited(saved, tmp_path / "e.ragbook", manifest=lambda m: m["embedding"].update(model=name))
    with pytest.raises(BundleError, match="model=") as info:
        load_assistant(path)
    assert "trust_llm=True" in str(info.value) and list(scratch.iterdir()) == []
    assert len(load_assistant(path, embedding_model=HashEmbedder()).index) == 2  # named in the user's call (and checked)
    trusted = load_assistant(path, trust_llm=True)  # trusted: used as the file says (loaded at first use)
    assert trusted.index.embedder.name.endswith(name.rsplit("/", 1)[-1]) and "embedding" in trusted.notes


def test_the_packaged_embedding_model_must_be_installed_not_downloaded(saved, tmp_path, monkeypatch):
    import ragbook.embedding as embedding

    path = edited(saved, tmp_path / "d.ragbook",
                  manifest=lambda m: m["embedding"].update(model="sentence-transformers/all-MiniLM-L6-v2"))
    monkeypatch.setitem(embedding._PACKAGED, "sentence-transformers/all-MiniLM-L6-v2", ("no_such_package_xyz", "model"))
    with pytest.raises(ModelNotFoundError, match="pip install no-such-package-xyz"):
        load_assistant(path)


def test_a_reranker_named_by_the_file_is_a_suggestion(saved, tmp_path):
    path = edited(saved, tmp_path / "r.ragbook", settings=lambda d: d["retrieval"].update(reranker="/opt/cross-encoder"))
    bot = load_assistant(path, embedding_model=HashEmbedder())
    assert bot.retriever.reranker is None and "/opt/cross-encoder" in bot.notes["reranker"]
    trusted = load_assistant(path, embedding_model=HashEmbedder(), trust_llm=True)
    assert trusted.retriever.reranker.name == "/opt/cross-encoder"


def test_the_authors_folders_are_not_reindexed_here(saved, tmp_path):
    path = edited(saved, tmp_path / "roots.ragbook", manifest=lambda m: m.update(roots=["/home/someone/.ssh"]))
    bot = load_assistant(path, embedding_model=HashEmbedder())
    assert bot.index.roots == []
    with pytest.raises(ValueError, match="no paths given"):
        bot.index.add()


@pytest.mark.parametrize("change", [
    lambda d: d.update(temperature=float("nan")),
    lambda d: d.update(max_answer_tokens=10**9),
    lambda d: d.update(history_turns="2"),
    lambda d: d.update(name={"html": "<b>"}),
    lambda d: d.update(llm=42),
    lambda d: d.update(retrieval=["k", 3]),
    lambda d: d["retrieval"].update(k=10**12),
    lambda d: d["retrieval"].update(filters={"where": "lambda c: True"}),
    lambda d: d["retrieval"].update(filters={"source": {"$regex": ".*"}}),
    lambda d: d["retrieval"].update(mode="everything"),
    lambda d: d["retrieval"].update(surprise=1),
    lambda d: d.update(template={"name": "t", "system": "s", "user": "{question.__class__}{passages}"}),
    lambda d: d.update(template={"name": "t", "system": "s", "user": "{question}{passages}", "run": "rm -rf /"}),
])
def test_invalid_settings_are_refused(saved, tmp_path, scratch, change):
    with pytest.raises(BundleError, match="settings are invalid|template"):
        load_assistant(edited(saved, tmp_path / "s.ragbook", settings=change), embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


# -- 3. bounded before anything is read ------------------------------------------------------------


def test_only_listed_entries_are_accepted(saved, tmp_path, scratch):
    entries = entries_of(saved)
    data = next(n for n in entries if n.endswith("chunks.jsonl")).rsplit("/", 1)[0]
    for extra in ("index/notes.txt", f"{data}/payload.so", "README", "index/data-000099/chunks.jsonl"):
        with pytest.raises(BundleError, match="not part of a ragbook assistant"):
            load_assistant(write_zip(tmp_path / "extra.ragbook", {**entries, extra: b"x"}), embedding_model=HashEmbedder())
    # a folder entry is harmless, and tools that re-zip add them
    folders = {"index/": b"", **entries}
    bot = load_assistant(write_zip(tmp_path / "dirs.ragbook", folders), embedding_model=HashEmbedder())
    assert len(bot.index) == 2 and list(scratch.iterdir())  # open: its folder lives while the assistant does


def test_duplicate_names_are_refused(saved, tmp_path, scratch):
    items = list(entries_of(saved).items())
    manifest = next(d for n, d in items if n == "index/manifest.json")
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = write_zip(tmp_path / "dup.ragbook", items + [("index/manifest.json", manifest)], reseal=False)
    with pytest.raises(BundleError, match="appears twice"):
        load_assistant(path, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("name", ["/etc/cron.d/x", "index/../../x", "index\\..\\x", "C:/x", "index/./../x"])
def test_names_outside_the_folder_are_refused(saved, tmp_path, scratch, name):
    path = write_zip(tmp_path / "slip.ragbook", {**entries_of(saved), name: b"gotcha"}, reseal=False)
    with pytest.raises(BundleError, match="outside"):
        load_assistant(path, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == [] and not (tmp_path / "x").exists()


def test_links_encryption_and_other_compression_are_refused(saved, tmp_path, scratch):
    chunks = next(n for n in entries_of(saved) if n.endswith("chunks.jsonl"))
    for fields, message in [({"external_attr": 0o120777 << 16}, "symbolic link"), ({"flags": 0x1}, "encrypted")]:
        path = write_zip(tmp_path / "x.ragbook", entries_of(saved))
        patch_central(path, chunks, **fields)
        with pytest.raises(BundleError, match=message):
            load_assistant(path, embedding_model=HashEmbedder())
    bz = write_zip(tmp_path / "bz.ragbook", entries_of(saved), method=zipfile.ZIP_BZIP2)
    with pytest.raises(BundleError, match="compression method"):
        load_assistant(bz, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


def test_huge_declared_sizes_are_refused_before_reading(saved, tmp_path, scratch, monkeypatch):
    entries = entries_of(saved)
    chunks = next(n for n in entries if n.endswith("chunks.jsonl"))
    # a deflated entry claiming 2 GiB from a few hundred bytes: a zip bomb's ratio
    path = write_zip(tmp_path / "bomb.ragbook", entries)
    patch_central(path, chunks, file_size=2**31)
    with pytest.raises(BundleError, match="zip bomb"):
        load_assistant(path, embedding_model=HashEmbedder())
    # a stored entry whose declared size is not the bytes it occupies
    path = write_zip(tmp_path / "stored.ragbook", entries, method=zipfile.ZIP_STORED)
    patch_central(path, chunks, file_size=2**31)
    with pytest.raises(BundleError, match="declares"):
        load_assistant(path, embedding_model=HashEmbedder())
    # honest sizes, but more in total than ragbook unpacks
    monkeypatch.setattr(bundle, "MAX_UNPACKED", 1_000)
    with pytest.raises(BundleError, match="claims to unpack"):
        load_assistant(saved, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


def test_real_zip_bomb_data_is_refused(saved, tmp_path, scratch):
    entries = entries_of(saved)
    chunks = next(n for n in entries if n.endswith("chunks.jsonl"))
    path = write_zip(tmp_path / "zeros.ragbook", {**entries, chunks: b"\n" * (8 * 2**20)})  # deflates ~1000:1
    with pytest.raises(BundleError, match="zip bomb"):
        load_assistant(path, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


def test_a_lying_size_never_unpacks_more_than_declared(saved, tmp_path, scratch):
    entries = entries_of(saved)
    chunks = next(n for n in entries if n.endswith("chunks.jsonl"))
    path = write_zip(tmp_path / "liar.ragbook", entries)
    patch_central(path, chunks, file_size=10)
    with pytest.raises(BundleError, match="checksum list"):  # its recorded size differs
        load_assistant(path, embedding_model=HashEmbedder())
    # the checksum list lies too: the stream stops at the declared 10 bytes and fails its checks
    doc = json.loads(entries["assistant.json"])
    write_zip(tmp_path / "liar2.ragbook", {**entries, "assistant.json": json.dumps(doc).encode()})
    doc = json.loads(entries_of(tmp_path / "liar2.ragbook")["assistant.json"])
    doc["entries"][chunks]["bytes"] = 10
    path = write_zip(tmp_path / "liar2.ragbook", {**entries, "assistant.json": json.dumps(doc).encode()}, reseal=False)
    patch_central(path, chunks, file_size=10)
    with pytest.raises(BundleError):
        load_assistant(path, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


def test_too_many_entries_are_refused_from_the_end_record(saved, tmp_path, scratch):
    many = {**entries_of(saved), **{f"index/pad/{i}": b"" for i in range(bundle.MAX_ENTRIES + 1)}}
    with pytest.raises(BundleError, match="entries"):
        load_assistant(write_zip(tmp_path / "many.ragbook", many, reseal=False), embedding_model=HashEmbedder())
    forged = bytearray(saved.read_bytes())  # an end record that claims 65,000 entries
    at = forged.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", forged, at + 8, 65_000, 65_000)
    (tmp_path / "forged.ragbook").write_bytes(bytes(forged))
    with pytest.raises(BundleError, match="65,000 entries"):
        load_assistant(tmp_path / "forged.ragbook", embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


def test_oversized_json_parts_are_refused(saved, tmp_path, scratch, monkeypatch):
    entries = entries_of(saved)
    doc = json.loads(entries["assistant.json"])
    doc["padding"] = os.urandom(bundle.MAX_SETTINGS_BYTES // 2 + 1).hex()  # compresses 2:1, not like a bomb
    path = write_zip(tmp_path / "fat.ragbook", {**entries, "assistant.json": json.dumps(doc).encode()}, reseal=False)
    with pytest.raises(BundleError, match="reads at most"):
        load_assistant(path, embedding_model=HashEmbedder())
    deep = write_zip(tmp_path / "deep.ragbook", {**entries, "assistant.json": b"[" * 100_000 + b"]" * 100_000},
                     reseal=False)
    with pytest.raises(BundleError, match="damaged"):
        load_assistant(deep, embedding_model=HashEmbedder())
    monkeypatch.setattr(bundle, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(BundleError, match="manifest.json declares"):
        load_assistant(saved, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


def test_every_entry_is_covered_by_a_checksum(saved, tmp_path, scratch):
    entries = entries_of(saved)
    assert set(json.loads(entries["assistant.json"])["entries"]) == set(entries) - {"assistant.json"}
    for name in sorted(set(entries) - {"assistant.json"}):
        data = entries[name]
        flipped = data[:-1] + bytes([data[-1] ^ 0x01])  # one bit, same size: only a checksum notices
        path = write_zip(tmp_path / "t.ragbook", {**entries, name: flipped}, reseal=False)
        with pytest.raises(BundleError, match="sha256"):
            load_assistant(path, embedding_model=HashEmbedder())
    doc = json.loads(entries["assistant.json"])
    del doc["entries"][next(iter(doc["entries"]))]
    path = write_zip(tmp_path / "short.ragbook", {**entries, "assistant.json": json.dumps(doc).encode()}, reseal=False)
    with pytest.raises(BundleError, match="checksum list"):
        load_assistant(path, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


def test_files_saved_before_the_checksum_list_still_open(saved, tmp_path):
    entries = entries_of(saved)
    doc = json.loads(entries["assistant.json"])
    del doc["entries"]
    old = write_zip(tmp_path / "old.ragbook", {**entries, "assistant.json": json.dumps(doc).encode()}, reseal=False)
    assert load_assistant(old, embedding_model=HashEmbedder()).ask(QUESTION).mode == "extractive"
    chunks = next(n for n in entries if n.endswith("chunks.jsonl"))
    tampered = entries[chunks].replace(b"stroma", b"strOma")
    bad = write_zip(tmp_path / "old-bad.ragbook", {**entries, "assistant.json": json.dumps(doc).encode(),
                                                   chunks: tampered}, reseal=False)
    with pytest.raises(BundleError, match="sha256"):  # the index manifest's own checksums still cover it
        load_assistant(bad, embedding_model=HashEmbedder())


def test_the_manifest_names_only_plain_data_files(saved, tmp_path, scratch):
    for change in (lambda m: m.update(data="../../etc"),
                   lambda m: m["data_files"].update({"../x": {"bytes": 1, "sha256": "0" * 64}}),
                   lambda m: m["data_files"].update({"CHUNKS.jsonl": m["data_files"]["chunks.jsonl"]})):
        with pytest.raises(BundleError):
            load_assistant(edited(saved, tmp_path / "m.ragbook", manifest=change), embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


# -- 4. the temporary folder goes, whatever happens -------------------------------------------------


@pytest.mark.parametrize("exc", [MemoryError, KeyboardInterrupt, OSError])
def test_no_temporary_folder_is_left_behind(saved, scratch, monkeypatch, exc):
    real_read = zipfile.ZipExtFile.read

    def failing_read(self, n=-1):  # fails part-way through unpacking the data files
        if "/data-" in self.name:
            raise exc("injected")
        return real_read(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", failing_read)
    with pytest.raises(BundleError if exc is OSError else exc):
        load_assistant(saved, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("exc", [MemoryError, KeyboardInterrupt])
def test_no_temporary_folder_is_left_after_unpacking_either(saved, scratch, monkeypatch, exc):
    def failing_load(*args, **kwargs):
        assert any(scratch.rglob("chunks.jsonl"))  # it was all unpacked
        raise exc()

    monkeypatch.setattr(Index, "load", failing_load)
    with pytest.raises(exc):
        load_assistant(saved, embedding_model=HashEmbedder())
    assert list(scratch.iterdir()) == []


def test_an_open_assistants_folder_goes_with_it(saved, scratch):
    bot = load_assistant(saved, embedding_model=HashEmbedder())
    assert list(scratch.iterdir())
    del bot
    gc.collect()
    assert list(scratch.iterdir()) == []
