"""What every backend inherits: validation, chat vs stream, timings, stop strings, display."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ragbook.llm import LLM, Generation, LLMError
from ragbook.llm.base import Params, StopTrimmer, Usage, normalize_messages, physical_cores


class ScriptLLM(LLM):
    """A backend that answers with fixed pieces: enough to drive the base class for real."""

    backend = "script"

    def __init__(self, pieces, *, finish="stop", fail_after=None, delay=0.0):
        self.name, self.context_window = "script", 100
        self.pieces, self.finish, self.fail_after, self.delay = pieces, finish, fail_after, delay
        self.closed = False

    def count_tokens(self, text):
        return len(text.split())

    def render(self, messages):
        return "".join(f"[{m['role']}] {m['content']}\n" for m in normalize_messages(messages))

    def _generate(self, messages, params, streaming):
        n_prompt = self.count_tokens(self.render(messages))
        max_tokens = self._check_fits(n_prompt, params)
        trimmer = StopTrimmer(params.stop)
        try:
            for i, piece in enumerate(self.pieces[:max_tokens]):
                if self.fail_after is not None and i == self.fail_after:
                    raise LLMError("the backend broke")
                time.sleep(self.delay)
                out, hit = trimmer.feed(piece)
                yield out
                if hit:
                    return Usage(n_prompt, i + 1, "stop")
            yield trimmer.flush()
        finally:
            self.closed = True
        return Usage(n_prompt, min(len(self.pieces), max_tokens), "length" if len(self.pieces) > max_tokens else self.finish)

    def info(self):
        return {"backend": self.backend, "model": self.name, "sha256": {}}


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello to the class"}]


def test_chat_and_stream_agree():
    llm = ScriptLLM(["Hel", "lo", ", class", "!"])
    gen = llm.chat(MESSAGES)
    assert isinstance(gen, Generation) and gen.text == "Hello, class!"
    assert (gen.prompt_tokens, gen.completion_tokens, gen.finish_reason, gen.model) == (9, 4, "stop", "script")
    assert list(llm.stream(MESSAGES)) == ["Hel", "lo", ", class", "!"]
    assert llm.last_generation.text == gen.text and llm.last_generation is not gen


def test_timings_are_measured():
    llm = ScriptLLM(["a", "b", "c"], delay=0.05)
    gen = llm.chat("hi")
    assert 0.04 < gen.first_token_s < gen.total_s and gen.total_s >= 0.15
    assert gen.tokens_per_s == pytest.approx(2 / (gen.total_s - gen.first_token_s))


def test_max_tokens_and_stop_strings():
    llm = ScriptLLM(["one", " two", " three", " four"])
    gen = llm.chat("count", max_tokens=2)
    assert gen.text == "one two" and gen.finish_reason == "length" and gen.completion_tokens == 2
    gen = llm.chat("count", stop=[" thr", "zzz"])
    assert gen.text == "one two" and gen.finish_reason == "stop"
    assert "".join(llm.stream("count", stop="o t")) == "one tw"  # "two three"


def test_stream_closed_early_and_backend_errors():
    llm = ScriptLLM(["a", "b", "c"])
    stream = llm.stream("hi")
    assert next(stream) == "a"
    stream.close()
    assert llm.closed and llm.last_generation.finish_reason == "cancelled" and llm.last_generation.text == "a"

    broken = ScriptLLM(["a", "b", "c"], fail_after=1)
    with pytest.raises(LLMError, match="broke"):
        list(broken.stream("hi"))
    assert broken.last_generation.finish_reason == "error" and broken.last_generation.text == "a"


def test_bad_arguments_fail_at_the_call():
    llm = ScriptLLM(["a"])
    with pytest.raises(ValueError, match="role"):
        llm.stream([{"role": "robot", "content": "hi"}])  # before any next()
    with pytest.raises(ValueError, match="content must be a string"):
        llm.chat([{"role": "user", "content": None}])
    with pytest.raises(ValueError, match="non-empty list"):
        llm.chat([])
    with pytest.raises(ValueError, match="max_tokens"):
        llm.chat("hi", max_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        llm.chat("hi", temperature=-1)
    with pytest.raises(ValueError, match="stop"):
        llm.chat("hi", stop=[""])


def test_prompt_too_long_is_an_llm_error():
    llm = ScriptLLM(["a"])
    with pytest.raises(LLMError, match="reads at most 100"):
        llm.chat("word " * 150)
    assert llm.chat("word " * 95, max_tokens=50).completion_tokens == 1  # max_tokens shrinks to the room left


def test_messages_are_normalised():
    assert normalize_messages("hi") == [{"role": "user", "content": "hi"}]
    extra = [{"role": "user", "content": "hi", "name": "x"}]
    assert normalize_messages(extra) == [{"role": "user", "content": "hi"}]
    assert Params.make(5, 0, "END", None) == Params(5, 0.0, ("END",), 0)


@pytest.mark.parametrize(
    "pieces, stops, expected",
    [
        (["yes", "\nQ", ": no"], ["\nQ:"], "yes"),
        (["ab", "c"], ["bc", "abc"], ""),            # the earliest match wins
        (["a\nQ", "uit"], ["\nQ:"], "a\nQuit"),       # a held-back prefix that was not a stop
        (["x"], [], "x"),
    ],
)
def test_stop_trimmer(pieces, stops, expected):
    t = StopTrimmer(stops)
    out = []
    for p in pieces:
        text, hit = t.feed(p)
        out.append(text)
        if hit:
            break
    out.append(t.flush())
    assert "".join(out) == expected


def test_generation_display_escapes_and_serialises():
    gen = Generation("<b>Paris</b> & more", 10, 5, 0.5, 1.5, "m", "stop")
    assert str(gen) == "<b>Paris</b> & more"
    assert repr(gen).startswith("Generation(text='<b>Paris</b> & more', prompt_tokens=10")
    html = gen._repr_html_()
    assert "&lt;b&gt;Paris&lt;/b&gt; &amp; more" in html and "<b>Paris" not in html
    assert json.loads(json.dumps(gen.to_dict()))["completion_tokens"] == 5
    assert gen.tokens_per_s == pytest.approx(4.0)


def test_llm_repr_and_html():
    llm = ScriptLLM(["a"])
    assert repr(llm) == "ScriptLLM(name='script', backend='script', context_window=100)"
    assert "<table" in llm._repr_html_() and "ScriptLLM" in llm._repr_html_()


def test_physical_cores():
    assert 1 <= physical_cores() <= (len(__import__("os").sched_getaffinity(0)))


def test_import_is_cheap():
    heavy = ["torch", "transformers", "llama_cpp", "peft", "numpy"]
    code = f"import sys, ragbook.llm; ragbook.llm.list_models(); print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"


def test_a_backend_registered_by_name_serves_its_prefix_and_its_saved_descriptions():
    from ragbook import llm as llm_package
    from ragbook.llm import backend, load_llm, register_backend
    from ragbook.llm.base import ChatModel

    class Echo(ScriptLLM):
        backend = "echo-server"
        prefix = "echo:"

        def __init__(self, pieces, **kwargs):
            super().__init__(pieces)
            self.spec = kwargs

        @classmethod
        def from_spec(cls, spec, **kwargs):
            return cls([spec.removeprefix("echo:")], **kwargs)

        @classmethod
        def from_info(cls, info, **kwargs):
            return cls([info["model"]], **kwargs)

        def info(self):
            return {"backend": self.backend, "model": self.pieces[0]}

    register_backend("echo-server", Echo)
    try:
        model = load_llm("echo:hello", name="x")
        assert isinstance(model, Echo) and model.chat("hi").text == "hello" and model.spec == {"name": "x"}
        again = load_llm(model.info())
        assert isinstance(again, Echo) and again.chat("hi").text == "hello" and isinstance(again, ChatModel)
        assert backend("openai").__name__ == "OpenAILLM" and llm_package.OpenAILLM is backend("openai")
        with pytest.raises(LLMError, match="unknown backend 'nope'.*echo-server"):
            load_llm({"backend": "nope", "model": "m"})
        with pytest.raises(Exception, match="LLM subclass"):
            register_backend("bad", object)  # type: ignore[arg-type]
    finally:
        llm_package._BACKENDS.pop("echo-server", None)
