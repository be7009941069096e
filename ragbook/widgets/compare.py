"""Compare panel: two assistant configurations answer the same question side by side."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ragbook._display import html_escape, shorten
from ragbook.widgets._common import Panel, guarded

__all__ = ["Compare"]


class _Side(w.VBox):
    """One configuration: its controls, its answer and its passages."""

    def __init__(self, label: str, assistant: Any, models: list[tuple[str, str]]) -> None:
        from ragbook.prompt import TEMPLATES
        from ragbook.retrieval import MODES

        self.label = label
        self.base = self.assistant = assistant
        self._variants: dict[tuple[Any, ...], Any] = {}
        self.answer: Any = None
        r = assistant.retriever
        self.mode = w.Dropdown(options=list(MODES), value=r.mode, description="Mode")
        self.k = w.BoundedIntText(value=r.k, min=1, max=30, description="k")
        templates = list(TEMPLATES)
        if assistant.template.name not in templates:
            templates.insert(0, assistant.template.name)
        self.template = w.Dropdown(options=templates, value=assistant.template.name, description="Template")
        current = "extractive" if assistant.extractive else assistant.llm_name
        values = [v for _, v in models]
        if current not in values:
            models = [(current, current), *models]
        self.model = w.Dropdown(options=models, value=current, description="Model")
        self.output = w.HTML()
        super().__init__([w.HTML(f"<b>{html_escape(label)}</b>"), self.mode, self.k, self.template, self.model,
                          self.output], layout=w.Layout(width="50%", padding="0 6px"))

    def configured(self) -> Any:
        """The assistant with this side's controls applied (one copy per distinct setting, so a model loads once)."""
        from ragbook.prompt import TEMPLATES

        base = self.base
        changes: dict[str, Any] = {}
        if self.mode.value != base.retriever.mode:
            changes["mode"] = self.mode.value
        if self.k.value != base.retriever.k:
            changes["k"] = self.k.value
        if self.template.value in TEMPLATES and self.template.value != base.template.name:
            changes["template"] = TEMPLATES[self.template.value]
        if self.model.value != ("extractive" if base.extractive else base.llm_name):
            changes["llm"] = self.model.value
        key = tuple(sorted((k, getattr(v, "name", v)) for k, v in changes.items()))
        if key not in self._variants:
            self._variants[key] = base.copy(**changes) if changes else base
        self.assistant = self._variants[key]
        return self.assistant

    def describe(self) -> str:
        a = self.assistant
        return f"{a.llm_name} · {a.template.name} · {a.retriever.mode} k={a.retriever.k}"

    def show(self, answer: Any) -> None:
        self.answer = answer
        self.output.value = f"<div><small>{html_escape(self.describe())}</small></div>{answer._repr_html_()}"


class Compare(Panel):
    """Ask two configurations the same question and read their answers and passages side by side.

    ``Compare(bot)`` starts both sides from ``bot``; ``Compare(bot, other)`` takes another
    assistant, or a dict of changed settings (``{"mode": "bm25", "template": "strict"}``).
    """

    title = "Compare"

    def __init__(self, a: Any, b: Any = None, *, question: str = "", models: list[tuple[str, str]] | None = None) -> None:
        from ragbook.widgets.chat import model_choices

        if b is None:
            b = a.copy(name=f"{a.name} (B)")
        elif isinstance(b, dict):
            b = a.copy(**{"name": f"{a.name} (B)", **b})
        options = models if models is not None else model_choices()
        self.left = _Side("A", a, options)
        self.right = _Side("B", b, options)
        self.question = w.Text(value=question, placeholder="one question for both", description="Question",
                               layout=w.Layout(width="80%"))
        self.ask_button = w.Button(description="Ask both", button_style="primary", icon="columns")
        self.ask_button.on_click(self._on_ask)
        super().__init__([w.HBox([self.question, self.ask_button]), w.HBox([self.left, self.right])])

    @property
    def answers(self) -> tuple[Any, Any]:
        return self.left.answer, self.right.answer

    def ask(self, question: str | None = None) -> tuple[Any, Any]:
        text = (question if question is not None else self.question.value).strip()
        self.question.value = text
        self.ask_button.disabled = True
        try:
            for side in (self.left, self.right):
                self.say(f"{side.label} is answering...", busy=True)
                side.show(side.configured().ask(text))
        finally:
            self.ask_button.disabled = False
        same = {h.chunk.id for h in self.left.answer.passages} & {h.chunk.id for h in self.right.answer.passages}
        self.say(f"{len(same)} passage(s) in common; A {self.left.answer.timings.get('total', 0) * 1000:.0f} ms, "
                 f"B {self.right.answer.timings.get('total', 0) * 1000:.0f} ms")
        return self.answers

    @guarded
    def _on_ask(self, _button: Any = None) -> None:
        self.ask()

    def __repr__(self) -> str:
        return (f"Compare(A={self.left.describe()!r}, B={self.right.describe()!r}, "
                f"question={shorten(self.question.value, 40)!r})")
