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


# The public surface, written out (as httpx pins its own): adding or dropping a name is a decision.
PUBLIC = {
    "__version__", "Answer", "Assistant", "BuildReport", "BundleError", "Chunk", "Chunker", "DataFormatError",
    "Document", "DocumentHit", "DocumentResults", "Embedder", "Hit", "Index", "IndexFormatError", "IndexLockedError",
    "LLMError", "LLMTimeoutError", "LoadError", "MagicError", "MissingDependencyError", "ModelMismatchError",
    "ModelNotFoundError", "NotFoundError", "QASet", "RagbookError", "Reranker", "Results", "Retriever", "Segment",
    "SettingsError", "Template", "TemplateError", "TEMPLATES", "build", "compare", "config", "discover",
    "evaluate_answers", "evaluate_qa_retrieval", "list_models", "load", "load_documents", "load_file", "load_llm",
    "load_qa", "open_index", "register_loader", "AssistantConfig", "RetrievalConfig", "set_progress",
    "connect", "ServerError",
}


def test_the_public_surface_is_pinned():
    import ragbook

    assert set(ragbook.__all__) == PUBLIC
    assert set(ragbook.__all__) - {"__version__"} == set(ragbook._EXPORTS)


def test_every_error_ragbook_raises_is_exported():
    import ragbook
    import ragbook.errors as errors

    raised = {name for name, value in vars(errors).items()
              if isinstance(value, type) and issubclass(value, errors.RagbookError)}
    assert raised <= set(ragbook.__all__), raised - set(ragbook.__all__)


def _imports(path):
    """The ragbook modules a file imports at run time: at the top and inside functions, not for type checkers."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(branch.test) for stmt in branch.body for node in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("ragbook."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("ragbook"):
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_import_cycles_inside_the_package():
    """ragbook's layers point one way (documents -> loaders -> ... -> assistant -> widgets, cli): no module
    imports, even lazily, one that imports it back.  (``ragbook`` itself, the lazy facade, is left out.)"""
    from pathlib import Path

    root = Path(ragbook_file()).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {m: {owner(n) for n in _imports(p)} - {m, "ragbook"} for m, p in modules.items()}
    cycles, state = [], {}

    def visit(m, trail):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(trail[trail.index(n):] + [n]))
            elif n not in state:
                visit(n, trail + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles
    assert len(modules) > 40 and graph["ragbook.assistant"] >= {"ragbook.retrieval", "ragbook.answer"}


def ragbook_file():
    import ragbook

    return ragbook.__file__


def test_no_module_imports_another_modules_private_names():
    import ast
    from pathlib import Path

    root = Path(ragbook_file()).parent
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ragbook"):
                found += [f"{path.relative_to(root)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, found
