"""A sentence-transformers model run by ONNX Runtime on a CPU: the same vectors, about 2.5x faster.

The model is exported from its local folder once (that step alone needs torch), its weight
matrices quantised to int8, and the result kept in the user cache
(``~/.cache/ragbook/encoders/<model>-<key>/``) with its SHA-256, so a damaged file is noticed
and rebuilt (hashed again whenever it changed, as the language models' files are).
Afterwards encoding needs only ``onnxruntime``, ``tokenizers`` and numpy: a fresh process
searches an index without importing torch.

What the exported graph computes is the model's own module chain (transformer, then pooling),
traced from sentence-transformers, so it matches ``SentenceTransformer.encode`` for any model
of that shape; a model with other modules is reported as unsupported and keeps torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ragbook._files import atomic_write, cache_dir, file_sha256, remember_sha256, remembered_sha256
from ragbook.errors import MissingDependencyError

__all__ = ["OnnxEncoder", "available", "unsupported_reason", "export", "QUANTIZATIONS"]

log = logging.getLogger(__name__)

EXPORT_VERSION = 2  # bump when what export() writes changes: old cache entries are then ignored
QUANTIZATIONS = ("int8", "none")
# The feed-forward output matrices stay float when quantising: they carry most of the error int8
# adds (benchmarks/encoders.py: all int8, cosine to torch 0.986 on average; these kept float,
# 0.993, with nDCG@10 within 0.001 of torch; 2.75x torch's speed instead of 3.5x).
FLOAT_MATMULS = re.compile(r"layer\.\d+/output/dense/MatMul$")
# Model types whose graph ONNX Runtime's transformer optimizer fuses (attention, layer norm,
# GELU into single kernels): float 1.95x torch instead of 1.5x, the same vectors.
_FUSABLE = {"bert"}



def available() -> bool:
    """Whether ONNX Runtime is installed (looked up without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def _module_kinds(folder: Path) -> list[str]:
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        return [str(m.get("type", "")) for m in modules]
    except (OSError, ValueError, AttributeError):
        return []


def unsupported_reason(folder: Path) -> str | None:
    """Why this model folder cannot run through ONNX Runtime here, or ``None`` when it can."""
    if not available():
        return "onnxruntime is not installed (pip install onnxruntime)"
    if not (folder / "tokenizer.json").is_file():
        return "the model folder has no tokenizer.json (a fast tokenizer)"
    kinds = _module_kinds(folder)
    if not kinds:
        return "the model folder has no readable modules.json"
    names = [k.rsplit(".", 1)[-1] for k in kinds]
    if names[:2] != ["Transformer", "Pooling"] or any(n not in {"Transformer", "Pooling", "Normalize"} for n in names):
        return f"its modules ({', '.join(names)}) are not a transformer followed by pooling"
    for pooling in folder.glob("*Pooling*/config.json"):
        config = json.loads(pooling.read_text(encoding="utf-8"))
        if config.get("include_prompt") is False:
            return "its pooling leaves the prompt out, which the exported graph does not do"
    return None


def _source_key(folder: Path, quantize: str) -> str:
    """Identifies the model folder's files (names, sizes, times) and how they are exported."""
    import onnxruntime

    stamp: list[Any] = [EXPORT_VERSION, quantize, FLOAT_MATMULS.pattern, onnxruntime.__version__.split(".")[:2]]
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and "onnx" not in p.parts):
        st = f.stat()
        stamp.append([f.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]


def cache_folder(folder: Path, quantize: str) -> Path:
    """The cache entry for a model folder: named after the folder, keyed by its files."""
    label = folder.parent.name if folder.name in ("model", "") else folder.name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label)[:60] or "model"
    return cache_dir() / "encoders" / f"{slug}-{quantize}-{_source_key(folder, quantize)}"


def _read_entry(target: Path) -> dict[str, Any] | None:
    """The cache entry's description if its model file is whole (the SHA-256 it was written with; hashed
    again only when the file changed since, as for the language models' files)."""
    try:
        meta = json.loads((target / "encoder.json").read_text(encoding="utf-8"))
        if remembered_sha256(target / "model.onnx") == meta["sha256"]:
            return meta
        log.warning("the cached encoder %s is damaged (its SHA-256 changed): exporting it again", target)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("the cached encoder %s cannot be read (%s): exporting it again", target, exc)
    return None


def export(folder: Path, target: Path, *, quantize: str = "int8") -> dict[str, Any]:
    """Export the model in ``folder`` to ``target/model.onnx`` (quantised as asked) with its description.

    Needs torch and sentence-transformers (once); writes atomically, so a crash leaves no entry.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - checked by unsupported_reason first
        raise MissingDependencyError("pip install onnxruntime onnx") from exc

    # eager attention traces to the plain pattern that ONNX Runtime fuses into its Attention kernel
    st = SentenceTransformer(str(folder), device="cpu", model_kwargs={"attn_implementation": "eager"}).eval()
    tokenize = getattr(st, "preprocess", None) or st.tokenize
    sample = tokenize(["ragbook exports this model once", "and keeps it"])
    inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]

    class Chain(torch.nn.Module):  # the model's own modules, fed positional tensors
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: Any) -> Any:
            features = dict(zip(inputs, tensors))
            for module in self.st:
                if type(module).__name__ == "Normalize":
                    break  # ragbook normalises in numpy, as Embedder(normalize=...) asks
                features = module(features)
            return features["sentence_embedding"]

    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".export-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    try:
        float_path = tmp / "float.onnx"
        axes = {k: {0: "batch", 1: "tokens"} for k in inputs} | {"embedding": {0: "batch"}}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(Chain(), tuple(sample[k] for k in inputs), str(float_path), input_names=inputs,
                              output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
        _fuse(float_path, folder)
        final = float_path
        if quantize == "int8":
            final = tmp / "int8.onnx"
            _quantize(float_path, final)
        with atomic_write(target / "model.onnx") as out, open(final, "rb") as src:
            shutil.copyfileobj(src, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dimension = (getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()
    meta = {"format": "ragbook-encoder", "version": EXPORT_VERSION, "source": str(folder), "quantize": quantize,
            "inputs": inputs, "dimension": int(dimension or 0),
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "sha256": file_sha256(target / "model.onnx")}
    remember_sha256(target / "model.onnx", meta["sha256"])
    with atomic_write(target / "encoder.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    return meta


def _fuse(path: Path, folder: Path) -> None:
    """Rewrite the float graph with ONNX Runtime's fused transformer kernels, where it knows the model type."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8")) if (folder / "config.json").is_file() else {}
    if config.get("model_type") not in _FUSABLE:
        return
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(path), model_type=config["model_type"], num_heads=int(config["num_attention_heads"]),
                           hidden_size=int(config["hidden_size"]))
    log.debug("fused: %s", {k: v for k, v in fused.get_fused_operator_statistics().items() if v})
    fused.save_model_to_file(str(path))


def _quantize(source: Path, dest: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    keep_float = [n.name for n in graph.node if n.op_type == "MatMul" and FLOAT_MATMULS.search(n.name)]
    weighted = [n.name for n in graph.node if n.op_type in ("MatMul", "Attention") and n.input[1] in weights]
    log.debug("quantising %d matrices to int8, %d kept float", len(weighted) - len(keep_float), len(keep_float))
    # quantize_dynamic advises "pre-processing" through logging.warning(), which would also give
    # the root logger a handler (and so make every library's log lines print): give it a silent one
    root, guard = logging.getLogger(), logging.NullHandler()
    root.addHandler(guard)
    try:
        quantize_dynamic(str(source), str(dest), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=keep_float,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.removeHandler(guard)


class OnnxEncoder:
    """Encodes texts with an exported model: ``encode(texts) -> (n, dimension)`` float32, pooled.

    ``quantize="int8"`` (the default) or ``"none"`` (float, equal to torch within 1e-5).
    Creating one exports the model the first time (or when its cache entry is damaged).
    """

    def __init__(self, folder: str | os.PathLike[str], *, name: str | None = None, quantize: str = "int8",
                 max_seq_length: int | None = None, threads: int | None = None) -> None:
        if quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, not {quantize!r}")
        self.folder = Path(folder)
        reason = unsupported_reason(self.folder)
        if reason:
            raise MissingDependencyError(f"cannot run {self.folder.name} through ONNX Runtime: {reason}")
        self.quantize = quantize
        self.name = name or self.folder.name
        self.target = cache_folder(self.folder, quantize)
        self.meta = _read_entry(self.target) or self._export()
        self.dimension = int(self.meta["dimension"])
        self.max_seq_length = max_seq_length or self._st_config().get("max_seq_length") or 512
        self.prompts = self._prompts()
        self.session = self._session(threads)
        self._tokenizer = self._make_tokenizer()

    @property
    def kind(self) -> str:
        """What made the vectors: ``"onnx-int8"`` or ``"onnx"``; recorded in an index's manifest."""
        return "onnx-int8" if self.quantize == "int8" else "onnx"

    def __repr__(self) -> str:
        return f"OnnxEncoder(name={self.name!r}, kind={self.kind!r}, dimension={self.dimension})"

    def _export(self) -> dict[str, Any]:
        log.info("exporting %s to ONNX (%s), once: %s", self.name, self.quantize, self.target)
        return export(self.folder, self.target, quantize=self.quantize)

    def _st_config(self) -> dict[str, Any]:
        path = self.folder / "sentence_bert_config.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def _prompts(self) -> dict[str, str]:
        path = self.folder / "config_sentence_transformers.json"
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        prompts = {k: v for k, v in (config.get("prompts") or {}).items() if isinstance(v, str) and v}
        document = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), "")
        return {"query": prompts.get("query", ""), "document": document}

    def _session(self, threads: int | None) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        return ort.InferenceSession(str(self.target / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def _make_tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tok.enable_truncation(int(self.max_seq_length))
        tok.no_padding()
        return tok

    def encode(self, texts: Sequence[str], *, kind: str = "document") -> np.ndarray:
        """``(len(texts), dimension)`` float32, pooled as the model pools (not normalised).

        One text per run: int8 activations are scaled per run, so a text batched with others
        would get a slightly different vector (cosine 0.98) depending on its neighbours; alone it
        always gets the same one, and with no padding to compute it is also faster (measured:
        180 passages/s one by one, 115/s in batches of 32, 2 cores).
        """
        prompt = self.prompts.get(kind, "")
        encodings = self._tokenizer.encode_batch([prompt + t for t in texts] if prompt else list(texts))
        types = "token_type_ids" in self.meta["inputs"]
        out = np.empty((len(encodings), self.dimension), dtype=np.float32)
        for row, e in enumerate(encodings):
            ids = np.array([e.ids], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if types:
                feeds["token_type_ids"] = np.array([e.type_ids], dtype=np.int64)
            out[row] = self.session.run(None, feeds)[0][0]
        return out
