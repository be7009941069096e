"""The ONNX Runtime encoders: export once into the cache, a damaged cache rebuilt, the same vectors as
torch (float) or close to them (int8), the automatic choice, and a search in a fresh process that
never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ragbook import onnx_embedding
from ragbook.embedding import Embedder, resolve_model
from ragbook.errors import MissingDependencyError, ModelMismatchError, SettingsError
from ragbook.index import FINGERPRINT_TOLERANCE, Index, open_index

pytestmark = pytest.mark.skipif(not onnx_embedding.available(), reason="onnxruntime is not installed")

FOLDER = Path(resolve_model("default")[1])
PASSAGES = [
    "The light-dependent reactions take place in the thylakoid membranes of the chloroplast.",
    "Shield volcanoes have gentle slopes built by fluid basalt lava, like Mauna Loa in Hawaii.",
    "A for loop repeats its body once for each item of a sequence; range(5) gives 0 to 4.",
    "The final exam counts for 45 percent of the grade, homework for 30 percent.",
    "Pyroclastic flows are fast avalanches of hot gas and ash: the deadliest volcanic hazard. " * 6,
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache folder of this module's own, with both exports made once (about 7 s each)."""
    folder = tmp_path_factory.mktemp("ragbook-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAGBOOK_CACHE", str(folder))
    for quantize in onnx_embedding.QUANTIZATIONS:
        onnx_embedding.OnnxEncoder(FOLDER, quantize=quantize)
    yield folder
    mp.undo()


@pytest.fixture()
def in_cache(cache, monkeypatch):
    monkeypatch.setenv("RAGBOOK_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def torch_vectors():
    return Embedder(backend="torch").encode_documents(PASSAGES)


def test_float_export_gives_torchs_vectors_and_int8_stays_close(in_cache, torch_vectors):
    float_vecs = Embedder(backend="onnx").encode_documents(PASSAGES)
    np.testing.assert_allclose(float_vecs, torch_vectors, atol=2e-5)
    int8 = Embedder(backend="onnx-int8")
    vecs = int8.encode_documents(PASSAGES)
    cosine = (vecs * torch_vectors).sum(axis=1)
    assert vecs.shape == (5, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert cosine.min() > 0.97, cosine
    # what matters for search: each passage's nearest neighbour is itself under both encoders
    assert (np.argmax(vecs @ torch_vectors.T, axis=1) == np.arange(5)).all()
    fp = np.abs(np.subtract(int8.fingerprint(), Embedder(backend="torch").fingerprint())).max()
    assert 0 < fp < FINGERPRINT_TOLERANCE


def test_a_text_gets_the_same_vector_whatever_its_batch(in_cache):
    emb = Embedder(backend="onnx-int8")
    together = emb.encode_documents(PASSAGES)
    alone = np.stack([emb.encode_documents([p])[0] for p in PASSAGES])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_the_export_is_made_once_and_reused(in_cache, monkeypatch):
    entries = sorted((in_cache / "encoders").iterdir())
    assert len(entries) == 2 and all((e / "model.onnx").is_file() for e in entries)
    meta = json.loads((entries[0] / "encoder.json").read_text(encoding="utf-8"))
    assert meta["dimension"] == 384 and meta["inputs"][:2] == ["input_ids", "attention_mask"]

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds it")

    monkeypatch.setattr(onnx_embedding, "export", no_export)
    assert onnx_embedding.OnnxEncoder(FOLDER).encode(["cached"]).shape == (1, 384)


def test_a_damaged_cache_entry_is_noticed_and_rebuilt(tmp_path, monkeypatch, caplog, torch_vectors):
    monkeypatch.setenv("RAGBOOK_CACHE", str(tmp_path))
    first = onnx_embedding.OnnxEncoder(FOLDER, quantize="none")
    model = first.target / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64  # flipped bytes inside the weights
    model.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="ragbook.onnx_embedding"):
        again = Embedder(backend="onnx")
        vecs = again.encode_documents(PASSAGES)
    assert "damaged" in caplog.text
    np.testing.assert_allclose(vecs, torch_vectors, atol=2e-5)
    (first.target / "encoder.json").write_text("{not json", encoding="utf-8")
    with caplog.at_level("WARNING", logger="ragbook.onnx_embedding"):
        assert onnx_embedding.OnnxEncoder(FOLDER, quantize="none").encode(["x"]).shape == (1, 384)
    assert "cannot be read" in caplog.text


def test_auto_takes_onnx_int8_on_a_cpu_and_the_environment_overrides(in_cache, monkeypatch):
    monkeypatch.delenv("RAGBOOK_EMBEDDING_BACKEND", raising=False)
    assert Embedder().backend == "onnx-int8"
    assert Embedder(device="cuda").backend == "torch"
    monkeypatch.setenv("RAGBOOK_EMBEDDING_BACKEND", "torch")
    assert Embedder().backend == "torch"
    assert Embedder(backend="onnx").backend == "onnx"  # an explicit choice beats the environment
    monkeypatch.setenv("RAGBOOK_EMBEDDING_BACKEND", "tensorrt")
    with pytest.raises(SettingsError, match="RAGBOOK_EMBEDDING_BACKEND"):
        _ = Embedder().backend
    with pytest.raises(SettingsError, match="backend must be one of"):
        Embedder(backend="gpu")


def test_a_model_onnx_cannot_run_keeps_torch_or_says_why(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    for f in FOLDER.iterdir():
        if f.name != "tokenizer.json":
            (folder / f.name).symlink_to(f)
    assert "tokenizer.json" in onnx_embedding.unsupported_reason(folder)
    monkeypatch.delenv("RAGBOOK_EMBEDDING_BACKEND", raising=False)
    assert Embedder(folder).backend == "torch"
    with pytest.raises(MissingDependencyError, match="tokenizer.json"):
        _ = Embedder(folder, backend="onnx-int8").backend


def test_the_index_records_its_encoder_and_searches_with_a_matching_one(in_cache, notes_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("RAGBOOK_EMBEDDING_BACKEND", raising=False)
    index = Index(Embedder(backend="torch"))
    index.add(notes_dir)
    index.save(tmp_path / "torch-built")
    manifest = json.loads((tmp_path / "torch-built" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedding"]["encoder"] == "torch"
    opened = open_index(tmp_path / "torch-built")
    top = opened.search("where does the Calvin cycle run?", k=1)
    assert opened.embedder.backend == "onnx"  # torch's vectors exactly, without torch
    assert top[0].source.endswith("photosynthesis.md")

    monkeypatch.setenv("RAGBOOK_EMBEDDING_BACKEND", "torch")  # the environment still decides over the index
    assert open_index(tmp_path / "torch-built").embedder.backend == "torch"
    monkeypatch.delenv("RAGBOOK_EMBEDDING_BACKEND")

    int8 = Index(Embedder(backend="onnx-int8"))
    int8.add(notes_dir)
    int8.save(tmp_path / "int8-built")
    assert open_index(tmp_path / "int8-built").embedder.backend == "onnx-int8"
    # mixing within the measured tolerance is allowed: torch questions on int8 vectors
    mixed = Index.load(tmp_path / "int8-built", embedding_model=Embedder(backend="torch"))
    assert mixed.search("deadliest volcanic hazard", k=1)[0].source.endswith("volcanoes.md")


def test_an_encoder_beyond_the_tolerance_is_refused_like_another_model(in_cache, notes_dir, tmp_path):
    index = Index(Embedder(backend="onnx-int8"))
    index.add(notes_dir)
    index.save(tmp_path / "idx")
    path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    # as if the vectors came from an encoder 3x further from torch than int8 is
    manifest["embedding"]["fingerprint"][0] += 3 * FINGERPRINT_TOLERANCE
    manifest["embedding"]["encoder"] = "torch"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    opened = Index.load(tmp_path / "idx", embedding_model=Embedder(backend="onnx-int8"), verify=False)
    with pytest.raises(ModelMismatchError, match=r"'torch' encoder .*Embedder\(backend='torch'\)"):
        opened.search("volcano")


SEARCH_WITHOUT_TORCH = textwrap.dedent("""
    import sys, ragbook
    hits = ragbook.open_index(sys.argv[1]).search("where does the Calvin cycle run?", k=2)
    heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
    print(hits[0].source, heavy)
""")


def test_a_fresh_process_searches_without_importing_torch(in_cache, notes_dir, tmp_path):
    index = Index(Embedder(backend="onnx-int8"))
    index.add(notes_dir)
    index.save(tmp_path / "idx")
    env = {**os.environ, "RAGBOOK_CACHE": str(in_cache)}
    env.pop("RAGBOOK_EMBEDDING_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", SEARCH_WITHOUT_TORCH, str(tmp_path / "idx")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("photosynthesis.md []"), out.stdout
    # the command line too
    cli = subprocess.run([sys.executable, "-X", "importtime", "-m", "ragbook", "search", str(tmp_path / "idx"),
                          "Calvin cycle"], env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "photosynthesis" in cli.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in cli.stderr.splitlines() if line.startswith("import time:")}
    assert not {"torch", "sentence_transformers", "transformers"} & imported


def test_what_onnx_cannot_export_is_named(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    assert "modules.json" in onnx_embedding.unsupported_reason(folder)
    modules = [{"type": "sentence_transformers.models.Transformer"}, {"type": "sentence_transformers.models.Pooling"},
               {"type": "sentence_transformers.models.Dense"}]
    (folder / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    assert "Transformer, Pooling, Dense" in onnx_embedding.unsupported_reason(folder)
    (folder / "modules.json").write_text(json.dumps(modules[:2]), encoding="utf-8")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"include_prompt": false}', encoding="utf-8")
    assert "prompt" in onnx_embedding.unsupported_reason(folder)
    (folder / "1_Pooling" / "config.json").write_text('{"include_prompt": true}', encoding="utf-8")
    assert onnx_embedding.unsupported_reason(folder) is None


def test_an_automatic_choice_whose_export_fails_falls_back_to_torch(tmp_path, monkeypatch, caplog, torch_vectors):
    monkeypatch.setenv("RAGBOOK_CACHE", str(tmp_path))  # an empty cache: the export must run, and fails
    monkeypatch.delenv("RAGBOOK_EMBEDDING_BACKEND", raising=False)

    def broken(*args, **kwargs):
        raise RuntimeError("the exporter of this torch build is missing")

    monkeypatch.setattr(onnx_embedding, "export", broken)
    emb = Embedder()
    with caplog.at_level("WARNING", logger="ragbook.embedding"):
        vecs = emb.encode_documents(PASSAGES)
    assert emb.backend == "torch" and "using torch instead" in caplog.text and "exporter" in caplog.text
    np.testing.assert_allclose(vecs, torch_vectors, atol=1e-5)
    with pytest.raises(RuntimeError, match="exporter"):  # asked for by name: no quiet fallback
        Embedder(backend="onnx-int8").encode_documents(PASSAGES)
