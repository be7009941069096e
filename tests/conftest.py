"""Shared fixtures: offline settings, one real embedding model per session, tiny corpora."""

from __future__ import annotations

import os

# Offline before anything imports huggingface_hub: a stray hub lookup fails at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAGBOOK_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def embedder():
    """The packaged default model (all-MiniLM-L6-v2) with the default encoder, loaded once for the whole run."""
    from ragbook.embedding import Embedder

    emb = Embedder(device="cpu")
    emb.encode_queries(["warm-up"])  # load now (and export, the first time), so first uses are not special
    return emb


@pytest.fixture()
def make_index(embedder):
    """A factory for empty indexes that share the session's model."""
    from ragbook.index import Index

    def factory(**kwargs):
        return Index(embedder, **kwargs)

    return factory


NOTES = {
    "notes/photosynthesis.md": """# Photosynthesis

Plants turn light into chemical energy.

## Light reactions

The light-dependent reactions take place in the thylakoid membranes of the chloroplast.
Water is split and oxygen is released as a by-product.

## Calvin cycle

The Calvin cycle fixes carbon dioxide into sugar using ATP and NADPH. It runs in the stroma.
""",
    "notes/volcanoes.md": """# Volcanoes

## Types

Shield volcanoes have gentle slopes built by fluid basalt lava, like Mauna Loa in Hawaii.
Stratovolcanoes are steep and explosive, like Mount Fuji.

## Hazards

Pyroclastic flows are fast avalanches of hot gas and ash; they are the deadliest hazard.
""",
    "notes/syllabus.txt": """Course syllabus.
The final exam counts for 45 percent of the grade. Homework counts for 30 percent.
Office hours are on Tuesdays at 14:00 in room 204.
""",
}


@pytest.fixture()
def notes_dir(tmp_path):
    """A small folder of course notes in two formats."""
    root = tmp_path / "course"
    for rel, text in NOTES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def _callback_exceptions_fail():
    """Exceptions swallowed inside widget callbacks surface as warnings: make them errors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*Exception in.*callback.*")
        yield


@pytest.fixture()
def tiny_disk(tmp_path):
    """A real size-limited disk (tmpfs) that fills up: ``tiny_disk("1m")`` mounts one; needs root, as in CI."""
    import subprocess

    mounted: list[Path] = []

    def mount(size: str = "1m") -> Path:
        disk = tmp_path / f"disk-{len(mounted)}"
        disk.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# -- helpers the loader tests share ---------------------------------------------------------------


def write(path: Path, content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8) to ``path``, making its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def one(path: Path, **options):
    """The one Document ``path`` loads as."""
    from ragbook.loaders import load_file

    (doc,) = load_file(path, **options)
    return doc
