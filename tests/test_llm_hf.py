"""The transformers backend on tiny, randomly initialised models of six architectures.

Each model is built from its config at a toy size (hidden 32, 1-2 layers, 300-token vocab),
saved with ``save_pretrained`` beside a small byte-level BPE tokenizer trained here, and loaded
back through ``load_llm(folder)``: offline, a second or two per family.
"""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402

from ragbook.llm import LLMError, load_llm  # noqa: E402
from ragbook.llm.hf import HFLLM, SIMPLE_TEMPLATE  # noqa: E402

VOCAB = 300
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
MESSAGES = [
    {"role": "system", "content": "Answer from the notes."},
    {"role": "user", "content": "Where do the light reactions take place?"},
]


def make_tokenizer(chat_template: str | None = TEMPLATE):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["Plants turn light into chemical energy in the thylakoid membranes of the chloroplast.",
              "Shield volcanoes have gentle slopes; stratovolcanoes are steep and explosive."] * 20
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", additional_special_tokens=specials[1:])
    fast.chat_template = chat_template
    return fast


def tiny_config(family: str):
    import transformers as tf

    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                  num_key_value_heads=1, max_position_embeddings=256, eos_token_id=0, bos_token_id=None,
                  pad_token_id=None, tie_word_embeddings=False)
    if family == "llama":
        return tf.LlamaConfig(num_hidden_layers=1, **common)
    if family == "mistral":
        return tf.MistralConfig(num_hidden_layers=1, sliding_window=64, **common)
    if family == "mixtral":  # mixture of experts
        return tf.MixtralConfig(num_hidden_layers=1, num_local_experts=4, num_experts_per_tok=2, **common)
    if family == "qwen2":
        return tf.Qwen2Config(num_hidden_layers=1, **common)
    if family == "gemma3":
        return tf.Gemma3TextConfig(num_hidden_layers=2, head_dim=16, sliding_window=32, **common)
    if family == "deepseek_v3":  # multi-head latent attention + routed experts
        common.update(num_key_value_heads=2)
        return tf.DeepseekV3Config(num_hidden_layers=2, first_k_dense_replace=1, n_routed_experts=4,
                                   num_experts_per_tok=2, n_shared_experts=1, n_group=1, topk_group=1,
                                   moe_intermediate_size=16, kv_lora_rank=16, q_lora_rank=None,
                                   qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, **common)
    raise ValueError(family)


FAMILIES = ["llama", "mistral", "mixtral", "qwen2", "gemma3", "deepseek_v3"]


def save_tiny(folder, family: str, tokenizer=None):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(family))
    with torch.no_grad():  # sharper logits than the 0.02-std init: less-repetitive greedy text
        for p in model.parameters():
            p.mul_(8.0) if p.dim() > 1 else None
    model.generation_config.eos_token_id = 0
    model.save_pretrained(folder)
    (tokenizer or make_tokenizer()).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Hashes of these throw-away models go to a temporary cache, not ~/.cache/ragbook."""
    monkeypatch.setenv("RAGBOOK_CACHE", str(tmp_path_factory.getbasetemp() / "ragbook-cache"))


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="module")
def llama_llm(llama_dir):
    return load_llm(llama_dir)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_chat_stream_render_count(tmp_path, family):
    llm = load_llm(save_tiny(tmp_path / family, family))
    assert isinstance(llm, HFLLM) and llm.backend == "transformers"
    assert llm.device == "cpu" and llm.dtype == "float32"
    assert llm.context_window == 256

    gen = llm.chat(MESSAGES, max_tokens=12)
    assert isinstance(gen.text, str)
    prompt = llm.render(MESSAGES)
    assert "Answer from the notes." in prompt and "light reactions" in prompt and prompt.endswith("<|assistant|>")
    assert gen.prompt_tokens == llm.count_tokens(prompt) == len(llm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert 0 < gen.completion_tokens <= 12
    assert gen.finish_reason in {"stop", "length"}
    assert (gen.finish_reason == "length") == (gen.completion_tokens == 12)
    assert 0 <= gen.first_token_s <= gen.total_s

    pieces = list(llm.stream(MESSAGES, max_tokens=12))
    assert "".join(pieces) == gen.text
    last = llm.last_generation
    assert last.text == gen.text and last.completion_tokens == gen.completion_tokens
    assert last.prompt_tokens == gen.prompt_tokens and last.finish_reason == gen.finish_reason


def test_completion_tokens_match_generate(llama_llm):
    """Counts and text agree with calling model.generate directly."""
    llm = llama_llm
    gen = llm.chat(MESSAGES, max_tokens=10)
    ids = llm.tokenizer(llm.render(MESSAGES), add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = llm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
                             pad_token_id=0, eos_token_id=0)
    new = out[0, ids.shape[1]:].tolist()
    if 0 in new:
        new = new[: new.index(0)]
    assert gen.completion_tokens == len(new)
    assert gen.text == llm.tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def test_stop_strings_cut_chat_and_stream(llama_llm):
    full = llama_llm.chat(MESSAGES, max_tokens=16).text
    if len(full) < 6:
        pytest.skip("the random model's answer is too short to cut")
    stop = full[3:5]
    expected = full[: full.find(stop)]
    gen = llama_llm.chat(MESSAGES, max_tokens=16, stop=[stop])
    assert gen.text == expected and gen.finish_reason == "stop"
    assert "".join(llama_llm.stream(MESSAGES, max_tokens=16, stop=stop)) == expected


def test_stream_stopped_early_stops_generation(llama_llm):
    stream = llama_llm.stream(MESSAGES, max_tokens=50)
    first = next(stream)
    stream.close()
    assert first and llama_llm.last_generation.finish_reason == "cancelled"
    # the model is free again at once
    assert llama_llm.chat(MESSAGES, max_tokens=3).completion_tokens <= 3


def test_fallback_template_when_tokenizer_has_none(tmp_path):
    llm = load_llm(save_tiny(tmp_path / "plain", "qwen2", make_tokenizer(chat_template=None)))
    prompt = llm.render([{"role": "user", "content": "hello"}])
    assert llm._template == SIMPLE_TEMPLATE
    assert prompt == "<|user|>\nhello\n<|assistant|>\n"
    assert llm.chat("hello", max_tokens=4).prompt_tokens == llm.count_tokens(prompt)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # peft calling transformers
def test_lora_adapter_changes_the_model(tmp_path, llama_dir):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(llama_dir)
    torch.manual_seed(1)
    config = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft.get_peft_model(base, config).save_pretrained(tmp_path / "adapter")

    plain = load_llm(llama_dir)
    tuned = load_llm(llama_dir, adapter=tmp_path / "adapter")
    assert tuned.adapter == str((tmp_path / "adapter").resolve())
    ids = plain.tokenizer(plain.render(MESSAGES), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = plain.model(ids).logits, tuned.model(ids).logits
    assert (a - b).abs().max().item() > 1e-3
    assert isinstance(tuned.chat(MESSAGES, max_tokens=6).text, str)
    info = tuned.info()
    assert info["adapter"] and set(info["adapter_sha256"]) == {"adapter_model.safetensors"}
    again = load_llm(info)
    assert again.adapter == tuned.adapter
    with pytest.raises(LLMError, match="not a PEFT adapter"):
        load_llm(llama_dir, adapter=tmp_path)


def test_info_round_trip_and_changed_weights(tmp_path, llama_dir, llama_llm):
    info = llama_llm.info()
    assert info["backend"] == "transformers" and info["model"] == str(llama_dir.resolve())
    assert set(info["sha256"]) == {"model.safetensors"}
    again = load_llm(info)
    assert again.chat(MESSAGES, max_tokens=8).text == llama_llm.chat(MESSAGES, max_tokens=8).text

    copy = tmp_path / "copy"
    shutil.copytree(llama_dir, copy)
    moved = dict(info, model=str(copy))
    assert load_llm(moved).name  # same bytes elsewhere: accepted
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(LLMError, match="sha256 differs for: model.safetensors"):
        load_llm(moved)


def test_prompt_longer_than_context_is_a_clear_error(llama_llm):
    long = [{"role": "user", "content": "light energy " * 400}]
    with pytest.raises(LLMError, match="reads at most 256"):
        llama_llm.chat(long)


def test_max_tokens_shrinks_to_the_room_left(llama_llm):
    messages = [{"role": "user", "content": "light " * 40}]
    n = llama_llm.count_tokens(llama_llm.render(messages))
    assert 100 < n < 250
    gen = llama_llm.chat(messages, max_tokens=500)
    assert gen.completion_tokens <= 256 - n


def test_hub_name_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LLMError, match="huggingface-cli download"):
        load_llm("hf:ragbook-tests/no-such-model")


def test_not_a_model_folder(tmp_path):
    with pytest.raises(LLMError, match="no config.json and no .gguf"):
        load_llm(tmp_path)
    with pytest.raises(LLMError, match="no config.json"):
        HFLLM(tmp_path)


def test_repr_and_html(llama_llm):
    text = repr(llama_llm)
    assert text.startswith("HFLLM(name=") and "backend='transformers'" in text and "0x" not in text
    assert "<table" in llama_llm._repr_html_()
