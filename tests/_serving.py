"""Starting real ``ragbook serve`` servers (and the stand-in model server) for the tests, on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOKEN = "class-token-for-tests"
ADMIN = "teacher-token-for-tests"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAGBOOK_PROGRESS": "0",
       "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


class Served:
    """A running server: its URL, its process, and small HTTP helpers that never raise on a status."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.bodies: list[bytes] = []  # every response body, to look for leaked paths

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
                headers: dict[str, str] | None = None, raw: bytes | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h.setdefault("Authorization", f"Bearer {token}")
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            out = r.read()
            self.bodies.append(out)
            return r.status, {k.lower(): v for k, v in r.getheaders()}, out
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, out = self.request(method, path, body, **kw)
        return status, json.loads(out)

    def events(self, body: dict[str, Any], token: str | None = TOKEN) -> list[tuple[str, dict[str, Any]]]:
        status, headers, out = self.request("POST", "/api/ask", {**body, "stream": True}, token=token)
        assert status == 200, out
        assert headers["content-type"].startswith("text/event-stream")
        return parse_events(out)

    def raw_ask(self, question: str, *, timeout: float = 30, rcvbuf: int | None = None) -> socket.socket:
        """A socket that has sent a streamed question and not read a byte: for clients that read slowly, or leave."""
        body = json.dumps({"question": question, "stream": True}).encode()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.sendall(f"POST /api/ask HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        return s

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def parse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.decode("utf-8").split("\n\n"):
        kind, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((kind, json.loads("\n".join(data))))
    return events


def serve(bundle: Path, tmp: Path, *args: str, port: int | None = None, token: bool = True) -> Served:
    """``ragbook serve bundle`` on a free port (or ``port``), with the tests' tokens unless ``--open`` is among args."""
    port = port or free_port()
    log = tmp / f"serve-{port}-{time.monotonic_ns()}.log"
    access = ["--token", TOKEN] if token and "--open" not in args and "--tokens" not in args else []
    cmd = [sys.executable, "-m", "ragbook", "serve", str(bundle), "--port", str(port), "--admin-token", ADMIN,
           *access, *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=ENV, cwd=tmp)
    served = Served(proc, port, log)
    try:
        wait_for(f"{served.url}/api/health", proc, log)
    except BaseException:
        served.stop()
        raise
    return served


class Standin:
    """The stand-in model server (tests/standin_llm.py) as a process: ``kill()`` it, ``start()`` it again."""

    def __init__(self, port: int | None = None, *, delay: float = 0.0, words: int = 0) -> None:
        self.port = port or free_port()
        self.delay, self.words = delay, words
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def spec(self) -> str:
        return f"openai:http://127.0.0.1:{self.port}/v1#standin"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "standin_llm.py"), str(self.port),
                                      "--delay", str(self.delay), "--words", str(self.words)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert b"ready" in line, line

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return json.loads(r.read())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def read_until(s: socket.socket, marker: bytes) -> bytes:
    """Read from ``s`` until ``marker`` has come (the server must not close first)."""
    received = b""
    while marker not in received:
        more = s.recv(4096)
        assert more, received
        received += more
    return received


def course_bundle(root: Path, embedder: Any) -> Path:
    """The tests' small course (conftest.NOTES) under ``root``, as an extractive assistant saved to a file."""
    from conftest import NOTES

    from ragbook.assistant import Assistant
    from ragbook.index import Index

    for rel, text in NOTES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    index = Index(embedder)
    index.add(root / "notes")
    path = root / "biology.ragbook"
    Assistant(index, name="Biology 101", llm="extractive", verify=False).save(path)
    return path


def until(check, seconds: float = 20.0, every: float = 0.1) -> Any:
    """Wait for ``check()`` to be truthy; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
