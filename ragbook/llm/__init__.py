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

A model reference read from a shared file is not the user's own choice: :func:`packaged_reference`
says whether it names only a packaged, hash-checked preset (safe to load), :func:`shareable_reference`
strips secrets and the names of secrets from one, and :func:`describe_reference` says in words what
it would use.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ragbook._display import shorten
from ragbook.errors import SettingsError
from ragbook.llm.base import LLM, Generation, LLMError
from ragbook.llm.presets import PRESETS, ModelInfo, default_model, format_models, list_models

__all__ = ["LLM", "Generation", "LLMError", "ModelInfo", "load_llm", "list_models", "format_models",
           "default_model", "PRESETS", "LlamaCppLLM", "HFLLM", "OpenAILLM", "register_backend", "backend",
           "packaged_reference",
           "shareable_reference", "describe_reference"]

# backend name (an LLM's ``backend``, an info() dict's "backend") -> its class, imported on first use
_BACKENDS: dict[str, str | type[LLM]] = {
    "llama.cpp": "ragbook.llm.llamacpp:LlamaCppLLM",
    "transformers": "ragbook.llm.hf:HFLLM",
    "openai": "ragbook.llm.openai:OpenAILLM",
}
_CLASSES = {"LlamaCppLLM": "llama.cpp", "HFLLM": "transformers", "OpenAILLM": "openai"}


def register_backend(name: str, cls: type[LLM] | str) -> None:
    """Make ``load_llm`` know a backend: ``cls`` (an :class:`LLM` subclass, or ``"module:Class"``) serves the
    info() dicts whose "backend" is ``name``, and the strings that start with its ``prefix``."""
    if not isinstance(name, str) or not name:
        raise SettingsError("a backend needs a name, such as 'vllm' or 'my-server'")
    if not (isinstance(cls, str) and ":" in cls or isinstance(cls, type) and issubclass(cls, LLM)):
        raise SettingsError(f"a backend is an LLM subclass or 'module:Class', not {cls!r}")
    _BACKENDS[name] = cls


def backend(name: str) -> type[LLM]:
    """The class registered for a backend name."""
    where = _BACKENDS.get(name)
    if where is None:
        raise LLMError(f"unknown backend {name!r}: expected one of {', '.join(_BACKENDS)} (ragbook.llm.register_backend "
                       "adds one)")
    if isinstance(where, str):
        import importlib

        module, _, attr = where.partition(":")
        where = _BACKENDS[name] = getattr(importlib.import_module(module), attr)
    return where


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return backend(_CLASSES[name])
    raise AttributeError(f"module 'ragbook.llm' has no attribute {name!r}")


def load_llm(spec: str | os.PathLike[str] | LLM | dict[str, Any] | None = None, **kwargs: Any) -> LLM:
    """A ready chat model from a preset name, a file or folder, a URL, or an ``LLM.info()`` dict.

    Keyword arguments go to the backend (``n_ctx=``, ``adapter=``, ``timeout=``...).
    """
    if isinstance(spec, LLM):
        if kwargs:
            raise SettingsError("load_llm(llm) returns that model as it is; settings cannot be changed on it")
        return spec
    if spec is None:
        spec = default_model()
    if isinstance(spec, dict):
        if "model" not in spec:
            raise LLMError(f"not a model description from LLM.info(): {spec!r}")
        return backend(str(spec.get("backend"))).from_info(spec, **kwargs)
    text = os.fspath(spec)
    for name in list(_BACKENDS):  # the backends' modules import their libraries only when a model loads
        cls = backend(name)
        if cls.prefix and text.startswith(cls.prefix):
            return cls.from_spec(text, **kwargs)
    if text in PRESETS:
        preset = PRESETS[text]
        if preset.backend == "transformers":
            kwargs.setdefault("name", text)
            return backend("transformers")(f"hf:{preset.hub}", **kwargs)  # type: ignore[call-arg]
        return backend(preset.backend)(text, **kwargs)  # type: ignore[call-arg]
    path = Path(text).expanduser()
    if path.is_file():
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise LLMError(f"{path} is not a GGUF file (it does not start with 'GGUF'); for transformers give "
                           f"the folder that holds config.json")
        return backend("llama.cpp")(path, **kwargs)  # type: ignore[call-arg]
    if path.is_dir():
        if (path / "config.json").is_file():
            return backend("transformers")(path, **kwargs)  # type: ignore[call-arg]
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return backend("llama.cpp")(ggufs[0], **kwargs)  # type: ignore[call-arg]
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


# -- references read from shared files ----------------------------------------------------------

# A key that holds a secret or says where to find one (api_key, api_key_env, token, headers...).
# Nothing in an LLM.info() dict matches by accident: its keys are backend, model, name, path,
# sha256, url, timeout, context_window, n_ctx, seed, sampling, revision, adapter, dtype, device.
_SECRET_KEY = re.compile(r"key|token|secret|passw|auth|credential|cookie|header|bearer", re.IGNORECASE)

# What a shared file may set on a packaged llama.cpp preset: plain numbers in sane ranges, so it
# cannot make a small model allocate a huge context or hand llama.cpp arbitrary arguments.
MAX_SHARED_N_CTX = 32_768
_SHARED_SAMPLING = ("top_p", "top_k", "min_p", "typical_p", "repeat_penalty", "presence_penalty",
                    "frequency_penalty", "tfs_z", "mirostat_mode", "mirostat_tau", "mirostat_eta")


def shareable_reference(ref: Any) -> Any:
    """``ref`` (a model spec or an ``LLM.info()`` dict) without secrets or the names of secrets.

    Drops every secret-like key (``api_key_env`` included: a file that names an environment
    variable can make ragbook send its value), and user names, passwords and secret-like query
    parameters from URLs.  Applied when an assistant is saved and again when one is loaded.
    """
    if isinstance(ref, dict):
        return {k: shareable_reference(v) for k, v in ref.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(ref, (list, tuple)):
        return [shareable_reference(v) for v in ref]
    if isinstance(ref, str) and "://" in ref:
        return _without_credentials(ref)
    return ref


def _without_credentials(text: str) -> str:
    prefix = "openai:" if text.startswith("openai:") else ""
    try:
        parts = urlsplit(text[len(prefix):])
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _SECRET_KEY.search(k)]
        clean = parts._replace(netloc=parts.netloc.rpartition("@")[2], query=urlencode(query))
        return prefix + urlunsplit(clean)
    except ValueError:  # not a URL after all (urlsplit refuses e.g. a broken IPv6 host): nothing to strip
        return text


def packaged_reference(ref: Any) -> str | dict[str, Any] | None:
    """The packaged llama.cpp preset ``ref`` names, as a clean reference; ``None`` if it names anything else.

    Such a preset is safe to load from a file someone else wrote: its weights come from an
    installed package and are checked against the sha256 in :data:`PRESETS`, so the file
    chooses no path, no server and no download.  Hub presets are not: they may download.
    """
    name = ref.get("model") if isinstance(ref, dict) and ref.get("backend") == "llama.cpp" else ref
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None or preset.backend != "llama.cpp" or not preset.sha256:
        return None
    if not isinstance(ref, dict):
        return name
    out: dict[str, Any] = {"backend": "llama.cpp", "model": name, "name": name}
    if _is_int(ref.get("n_ctx")) and 256 <= ref["n_ctx"] <= MAX_SHARED_N_CTX:
        out["n_ctx"] = ref["n_ctx"]
    if _is_int(ref.get("seed")):
        out["seed"] = ref["seed"]
    if isinstance(ref.get("cache_prompt"), bool):
        out["cache_prompt"] = ref["cache_prompt"]
    sampling = ref.get("sampling")
    if isinstance(sampling, dict):
        out["sampling"] = {k: v for k, v in sampling.items() if k in _SHARED_SAMPLING and _is_number(v)}
    return out


def describe_reference(ref: Any) -> str:
    """A model reference in words, for a warning or a note: which model, and where ragbook would get it."""
    if isinstance(ref, dict):
        model = shorten(str(ref.get("model", "?")), 120)
        if ref.get("backend") == "openai":
            return f"the model {model!r} on the server {shorten(str(ref.get('url', '?')), 160)!r}"
        adapter = f" with the adapter {shorten(str(ref['adapter']), 160)!r}" if ref.get("adapter") else ""
        return f"the {shorten(str(ref.get('backend', '?')), 40)} model {model!r}{adapter}"
    return f"the model {shorten(str(ref), 160)!r}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
