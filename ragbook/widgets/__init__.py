"""ipywidgets panels: build, inspect, chat, compare and edit templates, alone or as one app.

>>> from ragbook.widgets import Inspector
>>> Inspector(index)              # a live retrieval inspector in the notebook
>>> assistant.panel()             # every panel of an assistant, as tabs

Each panel keeps its state in plain Python attributes (``inspector.results``, ``chat.answers``),
so tests drive them without a browser.  Errors from user input are shown in the panel.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["App", "Builder", "Chat", "Compare", "Inspector", "TemplateEditor"]

_WHERE = {"App": "app", "Builder": "builder", "Chat": "chat", "Compare": "compare", "Inspector": "inspector",
          "TemplateEditor": "template_editor"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"ragbook.widgets.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ragbook.widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
