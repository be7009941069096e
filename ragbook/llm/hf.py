"""Any causal language model transformers can load: a local folder, or a hub name; LoRA adapters.

On a CUDA GPU the model runs in bfloat16 (float16 where bf16 is missing) with PyTorch's SDPA
attention, or FlashAttention 2 when ``flash_attn`` is installed; on a CPU in float32.

The prompt is the tokenizer's chat template rendered to text (:meth:`HFLLM.render`) and then
tokenized without adding special tokens, which is what ``apply_chat_template(tokenize=True)``
does: ``render`` is what the model reads.  Tokenizers without a template (tiny test models,
base models) get :data:`SIMPLE_TEMPLATE`.

Answer text comes from one streamer class used by both ``chat`` and ``stream``: it decodes the
whole answer after every token and hands on what was added, holding back an incomplete
character, so the streamed pieces always join into exactly the text ``chat`` returns.
(``TextIteratorStreamer`` restarts its decoding after each newline, which on some tokenizers
changes spaces.)
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Sequence, cast

from ragbook.errors import MissingDependencyError, SettingsError
from ragbook.llm.base import (
    LLM,
    LLMError,
    Params,
    StopTrimmer,
    Usage,
    check_deadline,
    check_hashes,
    deadline_error,
    normalize_messages,
)

__all__ = ["HFLLM", "SIMPLE_TEMPLATE"]

log = logging.getLogger(__name__)

SIMPLE_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_DECODE = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}


@contextmanager
def _quiet() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar and per-call advice while loading."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if was_on:
            hf_logging.enable_progress_bar()


def _importable(module: str) -> bool:
    """Whether ``module`` imports (flash_attn is often installed but built for another CUDA)."""
    if importlib.util.find_spec(module) is None:
        return False
    try:
        importlib.import_module(module)
    except Exception:  # ImportError, OSError from a missing .so, RuntimeError from CUDA checks
        return False
    return True


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin", ".pt"} and p.is_file())


class HFLLM(LLM):
    """A transformers causal LM with its tokenizer's chat template.

    ``model`` is a folder with ``config.json``, or a hub name (``"hf:Qwen/Qwen2.5-1.5B-Instruct"``
    or plain ``"Qwen/Qwen2.5-1.5B-Instruct"``; offline it must be in the Hugging Face cache).
    ``adapter`` is a folder saved by PEFT (a LoRA), applied on top.  ``device`` / ``dtype``
    override the automatic choice; ``context_window`` caps the model's own limit.  ``deadline``
    (seconds, none by default) bounds each answer, checked between tokens.
    """

    backend = "transformers"
    prefix = "hf:"

    @classmethod
    def from_info(cls, info: dict[str, Any], **kwargs: Any) -> HFLLM:
        from ragbook.llm import presets

        model, recorded = info["model"], info.get("sha256") or {}
        if recorded and not str(model).startswith("hf:"):
            folder = Path(model)
            if not folder.is_dir():
                raise LLMError(f"model folder not found: {folder}")
            check_hashes(recorded, {p.name: presets.file_sha256(p) for p in _weight_files(folder)}, folder)
        if info.get("adapter"):
            adapter = Path(info["adapter"])
            if not adapter.is_dir():
                raise LLMError(f"adapter folder not found: {adapter}")
            check_hashes(info.get("adapter_sha256") or {},
                         {p.name: presets.file_sha256(p) for p in _weight_files(adapter)}, adapter)
            kwargs.setdefault("adapter", adapter)
        for key in ("context_window", "seed", "name", "revision"):
            if key in info:
                kwargs.setdefault(key, info[key])
        return cls(model, **kwargs)
    # transformers' model for the checkpoint (its type with generate() has no public name), a peft
    # PeftModel forwarding to it once an adapter is applied, or None once closed
    model: Any

    def __init__(self, model: str | os.PathLike[str], *, name: str | None = None, adapter: str | os.PathLike[str] | None = None,
                 device: str | None = None, dtype: str | None = None, context_window: int | None = None,
                 attn_implementation: str | None = None, revision: str | None = None, seed: int = 0,
                 deadline: float | None = None) -> None:
        self.deadline = check_deadline(deadline)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError("the transformers backend needs torch and transformers: "
                              "pip install torch==2.13.0 transformers") from exc
        text = os.fspath(model)
        hub = text[3:] if text.startswith("hf:") else None
        path = Path(text).expanduser()
        if hub is None and path.is_dir():
            if not (path / "config.json").is_file():
                raise LLMError(f"{path} has no config.json: it is not a transformers model folder")
            self.source, target = str(path.resolve()), str(path.resolve())
        else:
            hub = hub or text
            self.source, target = f"hf:{hub}", hub
        self.name = name or (hub or path.name)
        self.seed = seed
        self._choose_device(torch, device, dtype, attn_implementation)
        self._load(torch, AutoModelForCausalLM, AutoTokenizer, target, hub, path, text, revision)
        self.revision = revision or (getattr(self.model.config, "_commit_hash", None) if hub else None)
        self.adapter: str | None = None
        if adapter is not None:
            self._apply_adapter(Path(adapter).expanduser())
        self.model.to(self.device)
        self.model.eval()
        self._template = None if self.tokenizer.chat_template else SIMPLE_TEMPLATE
        self.context_window = self._context_limit(context_window)
        gen_eos = self.model.generation_config.eos_token_id
        eos = gen_eos if gen_eos is not None else self.tokenizer.eos_token_id
        self._eos = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
        self._pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else next(iter(self._eos), 0)
        self.last_generation = None

    def _choose_device(self, torch: Any, device: str | None, dtype: str | None, attn: str | None) -> None:
        """The GPU when there is one, in half precision (bfloat16 where it runs), with the fastest attention."""
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if self.device.startswith("cuda") else "float32"
        if dtype not in ("float32", "float16", "bfloat16"):
            raise SettingsError(f"dtype must be 'float32', 'float16' or 'bfloat16', not {dtype!r}")
        self.dtype = dtype
        if attn is None and self.device.startswith("cuda"):
            attn = "flash_attention_2" if _importable("flash_attn") else "sdpa"
        self.attn_implementation = attn

    def _load(self, torch: Any, model_class: Any, tokenizer_class: Any, target: str, hub: str | None, path: Path,
              text: str, revision: str | None) -> None:
        """The tokenizer and the weights, with an error that says what to do when they cannot be had."""
        load_kwargs: dict[str, Any] = {"revision": revision} if revision else {}
        try:
            with _quiet():
                self.tokenizer = tokenizer_class.from_pretrained(target, **load_kwargs)
                extra: dict[str, Any] = {"attn_implementation": self.attn_implementation} if self.attn_implementation else {}
                if self.device != "cpu" and importlib.util.find_spec("accelerate"):
                    extra["device_map"] = self.device  # load straight onto the GPU, not through CPU memory
                self.model = model_class.from_pretrained(target, dtype=getattr(torch, self.dtype), **extra, **load_kwargs)
        except OSError as exc:
            if hub is not None:
                raise LLMError(
                    f"cannot load {hub!r} from the Hugging Face hub: {exc}. Offline (HF_HUB_OFFLINE=1, no network), "
                    f"a hub model must already be in the local cache: run `huggingface-cli download {hub}` once on a "
                    f"machine with a network, or use an offline preset (ragbook llms)."
                ) from exc
            raise LLMError(f"cannot load the model in {path}: {exc}") from exc
        except ValueError as exc:  # unknown architecture, missing flash_attn kernels...
            raise LLMError(f"transformers cannot load {text}: {exc}") from exc

    def _apply_adapter(self, folder: Path) -> None:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise MissingDependencyError("LoRA adapters need peft: pip install peft") from exc
        if not (folder / "adapter_config.json").is_file():
            raise LLMError(f"{folder} is not a PEFT adapter folder (no adapter_config.json)")
        try:
            self.model = PeftModel.from_pretrained(self.model, str(folder))
        except (ValueError, KeyError, RuntimeError) as exc:
            raise LLMError(f"the adapter in {folder} does not fit {self.name}: {exc}") from exc
        self.adapter = str(folder.resolve())

    def _context_limit(self, cap: int | None) -> int:
        cfg = self.model.config
        cfg = getattr(cfg, "get_text_config", lambda: cfg)()
        limits = [getattr(cfg, k, None) for k in ("max_position_embeddings", "n_positions", "max_sequence_length")]
        limits.append(getattr(self.tokenizer, "model_max_length", None))
        found = [int(v) for v in limits if isinstance(v, int) and 0 < v < 10_000_000]
        limit = min(found) if found else 2048
        return min(limit, cap) if cap else limit

    # -- the LLM interface -----------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def render(self, messages: str | Sequence[dict[str, Any]]) -> str:
        try:
            # with tokenize=False the rendered text; the stubs return the union of every mode
            return cast(str, self.tokenizer.apply_chat_template(normalize_messages(messages), tokenize=False,
                                                                add_generation_prompt=True, chat_template=self._template))
        except Exception as exc:  # jinja errors, raise_exception() in the template
            raise LLMError(f"the chat template of {self.name} rejected these messages: {exc}") from exc

    def _generate(self, messages: list[dict[str, str]], params: Params, streaming: bool) -> Generator[str, None, Usage]:
        import torch

        start = time.perf_counter()
        ids = self.tokenizer(self.render(messages), add_special_tokens=False, return_tensors="pt")["input_ids"]
        n_prompt = int(ids.shape[1])
        max_new = self._check_fits(n_prompt, params)
        pieces: queue.Queue = queue.Queue()
        streamer = _Streamer(self.tokenizer, self._eos, StopTrimmer(params.stop), pieces.put, start)
        kwargs = self._generate_kwargs(ids.to(self.device), max_new, params, streamer)
        torch.manual_seed(params.seed)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
                streamer.finish()
            except BaseException as exc:  # handed to the reading thread
                errors.append(exc)
            finally:
                pieces.put(None)

        thread = None
        if streaming:
            thread = threading.Thread(target=work, name="ragbook-generate", daemon=True)
            thread.start()
        else:
            work()  # a plain chat call needs no thread
        try:
            while (piece := pieces.get()) is not None:
                yield piece
        finally:
            streamer.cancel.set()  # stops generate() if the reader stopped early
            if thread is not None:
                thread.join()
        if errors:
            raise LLMError(f"generation with {self.name} failed: {errors[0]!r}") from errors[0]
        if streamer.expired:
            raise deadline_error(self.name, params.deadline or 0, len(streamer.sent))
        finish = "stop" if streamer.stopped else "length"
        return Usage(n_prompt, streamer.n_tokens, finish, None if streaming else streamer.first_token_s)

    def _generate_kwargs(self, ids: Any, max_new: int, params: Params, streamer: "_Streamer") -> dict[str, Any]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                import torch

                if params.remaining() < 0:  # also for chat(), which reads no pieces until the end
                    streamer.expired = True
                    streamer.cancel.set()
                return torch.full((input_ids.shape[0],), streamer.cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        kwargs: dict[str, Any] = {
            "input_ids": ids, "attention_mask": ids.new_ones(ids.shape), "max_new_tokens": max_new,
            "streamer": streamer, "pad_token_id": self._pad, "stopping_criteria": StoppingCriteriaList([Cancelled()]),
        }
        if self._eos:
            kwargs["eos_token_id"] = sorted(self._eos)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature)
        else:  # greedy; clear sampling defaults from generation_config so transformers does not warn
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def info(self) -> dict[str, Any]:
        from ragbook.llm import presets

        out: dict[str, Any] = {"backend": self.backend, "model": self.source, "name": self.name}
        folder = Path(self.source) if not self.source.startswith("hf:") else None
        out["sha256"] = {p.name: presets.file_sha256(p) for p in _weight_files(folder)} if folder else {}
        if self.revision:  # a hub model is pinned by its commit instead
            out["revision"] = self.revision
        if self.adapter:
            out["adapter"] = self.adapter
            out["adapter_sha256"] = {p.name: presets.file_sha256(p) for p in _weight_files(Path(self.adapter))}
        out.update(dtype=self.dtype, device=self.device, context_window=self.context_window, seed=self.seed)
        return out

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "device": self.device, "dtype": self.dtype, "adapter": self.adapter}

    def close(self) -> None:
        self.model = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


class _Streamer:
    """Receives token ids from ``generate`` and hands on answer text (a transformers streamer)."""

    def __init__(self, tokenizer: Any, eos: set[int], trimmer: StopTrimmer, emit: Callable[[str], None], start: float) -> None:
        self.tokenizer, self.eos, self.trimmer, self.emit, self.start = tokenizer, eos, trimmer, emit, start
        self.ids: list[int] = []
        self.sent = ""            # decoded text handed to the trimmer so far
        self.prompt_seen = False
        self.n_tokens = 0
        self.first_token_s: float | None = None
        self.stopped = False      # the model's end token or a stop string
        self.expired = False      # stopped at the deadline
        self.cancel = threading.Event()

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() first puts the prompt
            self.prompt_seen = True
            return
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.start
        for token in value.reshape(-1).tolist():
            if token in self.eos:
                self.stopped = True
                self.cancel.set()
                return
            self.n_tokens += 1
            self.ids.append(token)
        text = self.tokenizer.decode(self.ids, **_DECODE)
        while text.endswith("\ufffd"):  # part of a multi-byte character: wait for the rest
            text = text[:-1]
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self._hand_on(text[len(self.sent):])
            self.sent = text

    def _hand_on(self, piece: str) -> None:
        out, hit = self.trimmer.feed(piece)
        if out:
            self.emit(out)
        if hit:
            self.stopped = True
            self.cancel.set()

    def finish(self) -> None:
        if self.trimmer.stopped:
            return
        text = self.tokenizer.decode(self.ids, **_DECODE)
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self._hand_on(text[len(self.sent):])
        rest = self.trimmer.flush()
        if rest:
            self.emit(rest)

    def end(self) -> None:  # called by generate(); the text is finished in finish()
        pass
