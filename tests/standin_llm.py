"""A stand-in OpenAI-compatible model server, run as its own process by the server tests.

``python tests/standin_llm.py PORT [--delay SECONDS] [--words N]`` answers chat completions the
way :class:`ragbook.testing.FakeLLM` does (the first passage's first sentence, cited), followed
by ``N`` filler words, one streamed chunk per word every ``delay`` seconds.  ``GET /stats``
says how many answers ran, finished, and were cut off by the client closing the connection (so
a test can see that a student who leaves stops the model working for them).  Kill the process
to play a backend that dies; start it again on the same port to bring it back.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragbook.testing import FakeLLM  # noqa: E402

COUNTS = {"started": 0, "finished": 0, "cut": 0, "active": 0, "words": 0}
LOCK = threading.Lock()


def count(key: str, n: int = 1) -> None:
    with LOCK:
        COUNTS[key] += n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _json(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        if self.path.endswith("/stats"):
            with LOCK:
                return self._json(200, dict(COUNTS))
        if self.path.endswith("/models"):
            return self._json(200, {"object": "list", "data": [{"id": "standin", "max_model_len": 8192}]})
        self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self.path.endswith("/chat/completions"):  # no tokenizer endpoint: ragbook estimates instead
            return self._json(404, {"error": {"message": "not found"}})
        words = FakeLLM().answer(request["messages"]).split(" ") + [f"filler{i}" for i in range(self.server.words)]
        if not request.get("stream"):
            text = " ".join(words)
            time.sleep(self.server.delay * len(words))
            return self._json(200, {"choices": [{"message": {"role": "assistant", "content": text},
                                                 "finish_reason": "stop"}],
                                    "usage": {"prompt_tokens": 10, "completion_tokens": len(words)}})
        count("started")
        count("active")
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
                count("words")
                time.sleep(self.server.delay)
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 10, "completion_tokens": len(words)}}
            self.wfile.write(b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n")
            self.wfile.flush()
            count("finished")
        except (BrokenPipeError, ConnectionResetError):
            count("cut")
        finally:
            count("active", -1)
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # a client that left is expected here
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--words", type=int, default=0)
    args = p.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.delay, server.words = args.delay, args.words
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
