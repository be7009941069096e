"""Language models for ragbook's assistants: one :class:`LLM` interface over three backends.

>>> from ragbook.llm import load_llm, list_models
>>> print(list_models())                    # presets, installed or not
>>> llm = load_llm()                        # the best installed preset that fits in memory
>>> llm.chat([{"role": "user", "content": "What is RAG?"}]).text

``load_llm`` takes a preset name (``"qwen2.5-coder-1.5b"``), a ``.gguf`` file (llama.cpp),
a folder with ``config.json`` or ``"hf:org/name"`` (transformers), ``"openai:http://host:port/v1"``
(an OpenAI-compatible server; ``#model`` or ``model=`` picks the model), or the dict from
``llm.info()`` (the same model again, its files' sha256 checked).  Importing this package
imports none of torch, transformers or llama_cpp: each backend imports its library on load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ragbook.llm.base import LLM, Generation, LLMError
from ragbook.llm.presets import PRESETS, ModelInfo, default_model, format_models, list_models

__all__ = ["LLM", "Generation", "LLMError", "ModelInfo", "load_llm", "list_models", "format_models",
           "default_model", "PRESETS", "LlamaCppLLM", "HFLLM", "OpenAILLM"]

_BACKENDS = {"LlamaCppLLM": "ragbook.llm.llamacpp", "HFLLM": "ragbook.llm.hf", "OpenAILLM": "ragbook.llm.openai"}


def __getattr__(name: str) -> Any:
    if name in _BACKENDS:
        import importlib

        return getattr(importlib.import_module(_BACKENDS[name]), name)
    raise AttributeError(f"module 'ragbook.llm' has no attribute {name!r}")


def load_llm(spec: str | os.PathLike[str] | LLM | dict[str, Any] | None = None, **kwargs: Any) -> LLM:
    """A ready chat model from a preset name, a file or folder, a URL, or an ``LLM.info()`` dict.

    Keyword arguments go to the backend (``n_ctx=``, ``adapter=``, ``timeout=``...).
    """
    if isinstance(spec, LLM):
        if kwargs:
            raise ValueError("load_llm(llm) returns that model as it is; settings cannot be changed on it")
        return spec
    if spec is None:
        spec = default_model()
    if isinstance(spec, dict):
        return _from_info(spec, **kwargs)
    text = os.fspath(spec)
    if text.startswith("openai:"):
        from ragbook.llm.openai import OpenAILLM

        url, _, model = text[len("openai:"):].partition("#")
        if model:
            kwargs.setdefault("model", model)
        return OpenAILLM(url, **kwargs)
    if text.startswith("hf:"):
        from ragbook.llm.hf import HFLLM

        return HFLLM(text, **kwargs)
    if text in PRESETS:
        preset = PRESETS[text]
        if preset.backend == "transformers":
            from ragbook.llm.hf import HFLLM

            kwargs.setdefault("name", text)
            return HFLLM(f"hf:{preset.hub}", **kwargs)
        from ragbook.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(text, **kwargs)
    path = Path(text).expanduser()
    if path.is_file():
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise LLMError(f"{path} is not a GGUF file (it does not start with 'GGUF'); for transformers give "
                           f"the folder that holds config.json")
        from ragbook.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(path, **kwargs)
    if path.is_dir():
        if (path / "config.json").is_file():
            from ragbook.llm.hf import HFLLM

            return HFLLM(path, **kwargs)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            from ragbook.llm.llamacpp import LlamaCppLLM

            return LlamaCppLLM(ggufs[0], **kwargs)
        found = f"{len(ggufs)} .gguf files (give one)" if ggufs else "no config.json and no .gguf file"
        raise LLMError(f"{path} has {found}")
    raise LLMError(_unknown(text))


def _unknown(text: str) -> str:
    import difflib

    if text.endswith(".gguf") or os.sep in text and not text.count("/") == 1:
        return f"model file not found: {text}"
    close = difflib.get_close_matches(text, PRESETS, n=1)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    hub = f"For a Hugging Face model write 'hf:{text}'. " if text.count("/") == 1 else ""
    return (f"unknown model {text!r}: not a preset, a file or a folder. {hint}{hub}Presets: {', '.join(PRESETS)} "
            f"(see ragbook.llm.list_models()); or 'openai:http://127.0.0.1:8000/v1' for a server.")


def _from_info(info: dict[str, Any], **kwargs: Any) -> LLM:
    """The model an ``LLM.info()`` dict describes, refusing files whose sha256 changed."""
    backend = info.get("backend")
    if "model" not in info:
        raise LLMError(f"not a model description from LLM.info(): {info!r}")
    model = info["model"]
    recorded = info.get("sha256") or {}
    if backend == "llama.cpp":
        from ragbook.llm.llamacpp import LlamaCppLLM

        for key in ("n_ctx", "seed", "cache_prompt", "sampling"):
            if key in info:
                kwargs.setdefault(key, info[key])
        kwargs.setdefault("name", info.get("name"))
        sha = next(iter(recorded.values()), None)
        return LlamaCppLLM(model, sha256=sha, **kwargs)
    if backend == "transformers":
        from ragbook.llm import presets
        from ragbook.llm.hf import HFLLM, _weight_files

        if recorded and not str(model).startswith("hf:"):
            folder = Path(model)
            if not folder.is_dir():
                raise LLMError(f"model folder not found: {folder}")
            _check_hashes(recorded, {p.name: presets.file_sha256(p) for p in _weight_files(folder)}, folder)
        if info.get("adapter"):
            adapter = Path(info["adapter"])
            if not adapter.is_dir():
                raise LLMError(f"adapter folder not found: {adapter}")
            _check_hashes(info.get("adapter_sha256") or {},
                          {p.name: presets.file_sha256(p) for p in _weight_files(adapter)}, adapter)
            kwargs.setdefault("adapter", adapter)
        for key in ("context_window", "seed", "name", "revision"):
            if key in info:
                kwargs.setdefault(key, info[key])
        return HFLLM(model, **kwargs)
    if backend == "openai":
        from ragbook.llm.openai import OpenAILLM

        for key in ("api_key_env", "timeout", "context_window", "name"):
            if key in info:
                kwargs.setdefault(key, info[key])
        return OpenAILLM(info["url"], model=model, **kwargs)
    raise LLMError(f"unknown backend {backend!r} in {info!r}: expected llama.cpp, transformers or openai")


def _check_hashes(recorded: dict[str, str], actual: dict[str, str], where: Path) -> None:
    if recorded == actual:
        return
    changed = sorted(set(recorded) ^ set(actual) | {k for k in recorded if k in actual and recorded[k] != actual[k]})
    raise LLMError(f"the weights in {where} are not the recorded ones (sha256 differs for: {', '.join(changed)}): "
                   f"the model was changed or retrained since it was saved; load it by path to accept the new weights.")
