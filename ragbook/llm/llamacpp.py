"""GGUF models on llama.cpp (``llama-cpp-python``): the offline default on a CPU.

The chat template is the one stored in the GGUF file (``tokenizer.chat_template``), applied by
llama_cpp's own ``Jinja2ChatFormatter``; the same formatter object both renders prompts for
:meth:`LlamaCppLLM.render` and is installed as the ``Llama``'s chat handler, so what ``render``
returns is, to the character, what ``create_chat_completion`` tokenizes and feeds the model.
(llama_cpp would otherwise swap a recognised template for a built-in one that can differ,
e.g. in a default system prompt.)

Every RAG prompt starts with the same system message and worked example; by default
(``prefix_cache="disk"``) the llama.cpp state of such a recurring start is kept between calls
(:mod:`ragbook.llm.prefix_cache`, also on disk for the next process) and only what follows it
is read: the first token comes sooner, and a prompt is always read as [kept start] + [rest]
whatever was asked before, so the same question still gets the same answer at temperature 0.
``prefix_cache="memory"`` keeps states in this process only; ``"off"`` (or ``False``) reads
every prompt from an empty context.  ``cache_prompt=True`` (older, for multi-turn chats)
instead lets llama_cpp reuse whatever part of the last prompt and answer matches, which makes
an answer depend on what came before (llama.cpp's numbers can differ slightly between reading a
prompt in one batch and reusing an arbitrary part of a cached one).

``prompt_lookup=N`` drafts up to N tokens from the prompt itself (llama_cpp's
``LlamaPromptLookupDecoding``): answers that quote their passages can then take several tokens
a step.  It is off by default: see benchmarks/generation.py for what it gained here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator, Sequence, cast

from ragbook._files import cache_dir
from ragbook.errors import MissingDependencyError, SettingsError
from ragbook.llm import presets
from ragbook.llm.base import LLM, LLMError, Params, StopTrimmer, Usage, check_deadline, normalize_messages, physical_cores
from ragbook.llm.prefix_cache import PrefixCache

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

__all__ = ["LlamaCppLLM", "DEFAULT_N_CTX", "PREFIX_CACHE_MODES"]

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 4096
# Where the state of a recurring prompt start is kept: on disk too (the next process starts warm),
# in this process only, or nowhere.
PREFIX_CACHE_MODES = ("disk", "memory", "off")

# Used only when a GGUF file carries no chat template (rare for instruction-tuned models).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingDependencyError(
            "the llama.cpp backend needs llama-cpp-python: "
            'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" pip install llama-cpp-python '
            "(it compiles, ~5 min; add -DGGML_CUDA=on for an NVIDIA GPU)"
        ) from exc
    return llama_cpp


def gpu_offload_supported() -> bool:
    """Whether this llama-cpp-python build can put layers on a GPU (CUDA, Metal, Vulkan...)."""
    llama_cpp = _import_llama_cpp()
    try:
        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # very old builds
        return False


class LlamaCppLLM(LLM):
    """A GGUF chat model run by llama.cpp.

    ``model`` is a path to a ``.gguf`` file, or a preset name (``"smollm2-135m"``...).  ``n_ctx``
    defaults to the smaller of the model's trained context and 4096; threads to the physical
    cores; every layer goes to the GPU when the build has one (``n_gpu_layers=-1``).
    ``sha256`` (hex) is checked before loading; presets always are.  Sampling settings other
    than temperature (``top_k``, ``top_p``, ``min_p``, ``repeat_penalty``...) can be given as
    ``sampling={...}`` and are passed to ``create_chat_completion``.  ``deadline`` (seconds, none
    by default) bounds each answer, checked between tokens.  ``prefix_cache``
    (:data:`PREFIX_CACHE_MODES`, ``True``/``False`` for ``"disk"``/``"off"``) keeps the fixed start of
    the prompts read between calls (see the module's docstring); ``prompt_lookup`` (draft tokens
    a step, 0 for none) turns on prompt-lookup decoding.
    """

    backend = "llama.cpp"
    _context_kwarg = "n_ctx"

    @classmethod
    def from_info(cls, info: dict[str, Any], **kwargs: Any) -> LlamaCppLLM:
        for key in ("n_ctx", "seed", "cache_prompt", "prefix_cache", "prompt_lookup", "sampling"):
            if key in info:
                kwargs.setdefault(key, info[key])
        kwargs.setdefault("name", info.get("name"))
        sha = next(iter((info.get("sha256") or {}).values()), None)
        return cls(info["model"], sha256=sha, **kwargs)

    def __init__(self, model: str | os.PathLike[str], *, name: str | None = None, n_ctx: int | None = None,
                 n_threads: int | None = None, n_gpu_layers: int | None = None, seed: int = 0,
                 sha256: str | None = None, cache_prompt: bool = False, sampling: dict[str, Any] | None = None,
                 check_memory: bool = True, deadline: float | None = None, prefix_cache: str | bool = "disk",
                 prompt_lookup: int = 0, **llama_kwargs: Any) -> None:
        self.deadline = check_deadline(deadline)
        text = os.fspath(model)
        self.preset = text if text in presets.PRESETS else None
        if self.preset is not None:
            preset = presets.PRESETS[self.preset]
            if preset.backend != "llama.cpp":
                raise LLMError(f"{self.preset} is a {preset.backend} preset; load it with load_llm({self.preset!r})")
            if check_memory:  # before joining 1 GB of parts for nothing
                presets.check_memory(preset.ram_mb, self.preset)
            path = presets.preset_path(self.preset)
            if sha256 and sha256.lower() != preset.sha256:
                raise LLMError(f"{self.preset} has sha256 {preset.sha256}, not the {sha256} asked for: "
                               f"this installed preset is a different file from the one recorded.")
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise LLMError(f"model file not found: {path}. Give the path to a .gguf file, or a preset: "
                               f"{', '.join(p for p, v in presets.PRESETS.items() if v.backend == 'llama.cpp')}")
            if sha256:
                presets.verify_file(path, sha256, what="the file recorded for this model")
            if check_memory:
                # weights + KV cache and scratch buffers at the default context
                presets.check_memory(int(path.stat().st_size / presets.MB * 1.15) + 150, path.name)
        self.path = path.resolve()
        self.name = name or self.preset or self.path.stem
        self.seed = seed
        self.cache_prompt = cache_prompt
        self.prefix_cache_mode = _prefix_mode(prefix_cache)
        if isinstance(prompt_lookup, bool) or not isinstance(prompt_lookup, int) or not 0 <= prompt_lookup <= 64:
            raise SettingsError(f"prompt_lookup is the number of tokens drafted a step (0: off, at most 64), "
                                f"not {prompt_lookup!r}")
        self.prompt_lookup = prompt_lookup
        self.sampling = dict(sampling or {})
        clash = set(self.sampling) & {"messages", "max_tokens", "temperature", "seed", "stop", "stream"}
        if clash:
            raise SettingsError(f"sampling= cannot set {', '.join(sorted(clash))}: pass those to chat()/stream()")
        self.n_threads = n_threads or physical_cores()
        llama_cpp = _import_llama_cpp()
        if n_gpu_layers is None:
            n_gpu_layers = -1 if gpu_offload_supported() else 0
        self.n_gpu_layers = n_gpu_layers
        self._llama_kwargs = dict(llama_kwargs)
        self._llm = self._load(llama_cpp, n_ctx or DEFAULT_N_CTX)
        trained = self._trained_context()
        if n_ctx is None and 0 < trained < DEFAULT_N_CTX:
            self._llm.close()
            self._llm = self._load(llama_cpp, trained)
        self.context_window = int(self._llm.n_ctx())
        self.trained_context = trained
        self._setup_template()
        self.prefix_cache = self._make_prefix_cache()
        self.last_generation = None

    def _load(self, llama_cpp: Any, n_ctx: int) -> Any:
        kwargs = dict(self._llama_kwargs)
        if self.prompt_lookup:
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

            kwargs.setdefault("draft_model", LlamaPromptLookupDecoding(num_pred_tokens=self.prompt_lookup))
            # llama_cpp turns logits_all on for a draft model but sizes its logits array by this
            # flag: without it, a prompt longer than a batch fails (llama-cpp-python 0.3.x).  The
            # array (n_ctx x vocabulary floats) is committed only as far as tokens are read.
            kwargs.setdefault("logits_all", True)
        try:
            return llama_cpp.Llama(
                model_path=str(self.path), n_ctx=n_ctx, n_threads=self.n_threads, n_threads_batch=self.n_threads,
                n_gpu_layers=self.n_gpu_layers, seed=self.seed, verbose=False, **kwargs,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMError(
                f"llama.cpp cannot load {self.path}: {exc}. Is it a complete GGUF file of an architecture this "
                f"llama-cpp-python supports? (a damaged download fails like this; check its sha256)"
            ) from exc

    def _make_prefix_cache(self) -> PrefixCache | None:
        """The prefix cache, or None when off, when ``cache_prompt`` reuses prompts its own way, or
        for models whose memory cannot drop a tail (recurrent and hybrid ones)."""
        llm = self._llm
        if self.prefix_cache_mode == "off" or self.cache_prompt or llm._is_recurrent or llm._is_hybrid:
            return None
        if self.prefix_cache_mode == "memory":
            return PrefixCache(llm)
        sha = (presets.PRESETS[self.preset].sha256 if self.preset else None) or presets.file_sha256(self.path)
        return PrefixCache(llm, folder=cache_dir() / "prefix-states", model_sha256=sha)

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (for what ragbook does not wrap)."""
        if self._llm is None:
            raise LLMError(f"{self.name} was closed: load it again with load_llm({self.name!r})")
        return self._llm

    def _trained_context(self) -> int:
        meta = self._llm.metadata
        value = meta.get(f"{meta.get('general.architecture', '')}.context_length")
        if value is None:
            return int(self._llm._model.n_ctx_train())
        return int(value)

    def _setup_template(self) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self._llm
        self.chat_template = llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
        if "tokenizer.chat_template" not in llm.metadata:
            log.warning("%s has no chat template in its metadata: using ChatML", self.path.name)

        def token_text(token_id: int) -> str:
            return llm._model.token_get_text(token_id) if token_id != -1 else ""

        eos, bos = llm.token_eos(), llm.token_bos()
        # Exactly as llama_cpp builds its handler from GGUF metadata (llama.py, Llama.__init__).
        self._formatter = Jinja2ChatFormatter(template=self.chat_template, eos_token=token_text(eos),
                                              bos_token=token_text(bos), stop_token_ids=[eos])
        llm.chat_handler = self._formatter.to_chat_handler()

    # -- the LLM interface -----------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens as the prompt is tokenized: no BOS added, special-token text read as special tokens."""
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def render(self, messages: str | Sequence[dict[str, Any]]) -> str:
        try:
            # normalize_messages gives plain {"role", "content"} dicts, the shape of llama_cpp's message TypedDicts
            msgs = cast("list[ChatCompletionRequestMessage]", normalize_messages(messages))
            return self._formatter(messages=msgs).prompt
        except Exception as exc:  # jinja errors, raise_exception() in the template
            raise LLMError(f"the chat template of {self.name} rejected these messages: {exc}") from exc

    def _generate(self, messages: list[dict[str, str]], params: Params, streaming: bool) -> Generator[str, None, Usage]:
        llm = self.llama
        prompt = self.render(messages)
        # the chat handler tokenizes the same way (no BOS added, special tokens read as such)
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        n_prompt = len(tokens)
        max_tokens = self._check_fits(n_prompt, params)
        if self.prefix_cache is not None:
            self.prefix_cache.prepare(tokens)
        elif not self.cache_prompt:
            llm.reset()
        # Stop strings are cut here, not by llama_cpp, so that "stop" from llama_cpp always means
        # the model's end token; the token counts below depend on knowing which one it was.
        trimmer = StopTrimmer(params.stop)
        try:
            chunks = llm.create_chat_completion(
                messages=messages, max_tokens=max_tokens, temperature=params.temperature,
                seed=params.seed, stream=True, **self.sampling,
            )
        except ValueError as exc:
            raise LLMError(f"llama.cpp refused the request: {exc}") from exc
        finish = "length"
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                piece = choice.get("delta", {}).get("content")
                if piece:
                    out, hit = trimmer.feed(piece)
                    if out:
                        yield out
                    if hit:
                        finish = "stop_string"
                        break
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            if finish != "stop_string":
                rest = trimmer.flush()
                if rest:
                    yield rest
        except RuntimeError as exc:
            raise LLMError(f"llama.cpp failed while generating: {exc}") from exc
        finally:
            chunks.close()
        # llm.n_tokens counts the tokens evaluated: the prompt, then every answer token but the
        # last one sampled; an end token (finish "stop" from llama_cpp) is sampled, not counted.
        n_answer = llm.n_tokens - n_prompt + (0 if finish == "stop" else 1)
        return Usage(n_prompt, max(n_answer, 0), "stop" if finish == "stop_string" else finish)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.preset or str(self.path),
            "name": self.name,
            "path": str(self.path),
            "sha256": {self.path.name: presets.file_sha256(self.path)},
            "n_ctx": self.context_window,
            "n_gpu_layers": self.n_gpu_layers,
            "seed": self.seed,
            "cache_prompt": self.cache_prompt,
            "prefix_cache": self.prefix_cache_mode,
            "prompt_lookup": self.prompt_lookup,
            "sampling": self.sampling,
        }

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "n_threads": self.n_threads, "n_gpu_layers": self.n_gpu_layers,
                "path": self.path.name, "prefix_cache": self.prefix_cache_mode,
                "prompt_lookup": self.prompt_lookup or None}

    def close(self) -> None:
        """Free the model's memory now rather than when it is garbage-collected."""
        llm, self._llm = getattr(self, "_llm", None), None
        self.prefix_cache = None
        if llm is not None:
            llm.close()


def _prefix_mode(value: str | bool) -> str:
    """``prefix_cache=`` as one of :data:`PREFIX_CACHE_MODES` (``True``: "disk", ``False``: "off")."""
    if value is True or value is False:
        return "disk" if value else "off"
    if value not in PREFIX_CACHE_MODES:
        raise SettingsError(f"prefix_cache must be one of {', '.join(PREFIX_CACHE_MODES)} (or True/False), not {value!r}")
    return str(value)
