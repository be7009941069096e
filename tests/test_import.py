"""`import ragbook` must stay cheap: no heavy library is imported until it is needed."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["torch", "sentence_transformers", "transformers", "faiss", "pypdf", "tqdm"]


def test_import_does_not_load_heavy_libraries():
    code = (
        "import sys, ragbook; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules)); "
        "ragbook.Index; ragbook.Retriever; ragbook.load; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    at_import, after_names = out.splitlines()
    assert at_import == ""
    assert after_names == "", "naming ragbook's classes must not import heavy libraries either"


def test_public_names_resolve():
    import ragbook

    for name in ragbook.__all__:
        assert getattr(ragbook, name) is not None
    assert "Index" in dir(ragbook)
