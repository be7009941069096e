"""The assistant's app: chat, inspector, compare, template editor and builder as tabs of one panel."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ragbook._display import html_escape
from ragbook.errors import SettingsError
from ragbook.widgets._common import Panel, guarded

__all__ = ["App"]


class App(Panel):
    """Everything about one assistant in one panel (``assistant.panel()``); also serves as a Voila page."""

    title = "ragbook"

    def __init__(self, assistant: Any, *, question: str = "") -> None:
        from ragbook.widgets.builder import Builder
        from ragbook.widgets.chat import Chat, model_choices
        from ragbook.widgets.compare import Compare
        from ragbook.widgets.inspector import Inspector
        from ragbook.widgets.template_editor import TemplateEditor

        self.assistant = assistant
        models = model_choices("extractive" if assistant.extractive else assistant.llm_name)
        self.chat = Chat(assistant, models=models)
        self.inspector = Inspector(assistant, question)
        self.compare = Compare(assistant, question=question, models=models)
        self.template_editor = TemplateEditor(assistant, question=question or "What is this about?")
        self.builder = Builder(assistant.index)
        self.builder.on_build(self._on_build)
        self.panels = [self.chat, self.inspector, self.compare, self.template_editor, self.builder]
        self.tabs = w.Tab(children=self.panels)
        for i, panel in enumerate(self.panels):
            self.tabs.set_title(i, panel.title)
        self.header = w.HTML()
        self.save_path = w.Text(value=f"{_slug(assistant.name)}.ragbook", description="Save as",
                                layout=w.Layout(width="40%"))
        self.save_button = w.Button(description="Save", icon="save", tooltip="one .ragbook file: ragbook.load(path)")
        self.save_button.on_click(self._on_save)
        super().__init__([self.header, self.tabs, w.HBox([self.save_path, self.save_button])])
        self._show_header()

    def _show_header(self) -> None:
        a = self.assistant
        stats = a.index.stats()
        self.header.value = (f"<div style='font-size:1.2em'><b>{html_escape(a.name)}</b> "
                             f"<small style='color:#555'>{stats['files']} files · {stats['chunks']:,} passages · "
                             f"model {html_escape(a.llm_name)} · template {html_escape(a.template.name)}</small></div>")

    def _on_build(self, index: Any) -> None:
        for a in {id(x): x for x in (self.assistant, self.compare.left.base, self.compare.right.base)}.values():
            a.index = index
            a.retriever = a.retriever.copy(index)
        for side in (self.compare.left, self.compare.right):
            side._variants.clear()
            side.assistant = side.base
        self.inspector.set_index(index)
        self._show_header()

    @guarded
    def _on_save(self, _button: Any = None) -> None:
        path = self.save_path.value.strip()
        if not path:
            raise SettingsError("type a file name to save to, like course.ragbook")
        saved = self.assistant.save(path)
        self.say(f"saved to {saved}; open it anywhere with ragbook.load({str(saved)!r})")

    def __repr__(self) -> str:
        return f"App(assistant={self.assistant.name!r}, tabs={[p.title for p in self.panels]})"


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^\w-]+", "-", name).strip("-").lower() or "assistant"
