"""Template editor: edit a prompt template and see the prompt it renders, live."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ragbook._display import html_escape
from ragbook.widgets._common import Panel, guarded

__all__ = ["TemplateEditor", "messages_html"]

_FIELDS = ("system", "user", "passage", "no_answer")


def messages_html(messages: list[dict[str, str]]) -> str:
    return "".join(
        f"<div style='margin:4px 0'><small><b>{html_escape(m['role'])}</b></small>"
        f"<pre style='white-space:pre-wrap;margin:0;background:#f8f9fa;padding:4px'>{html_escape(m['content'])}</pre></div>"
        for m in messages)


class TemplateEditor(Panel):
    """Edit the system and user messages of a prompt template with a live preview of the rendered prompt.

    Give it an assistant (the preview uses passages retrieved for the sample question, and "Use
    this template" gives the template to the assistant) or just a template.
    """

    title = "Template"

    def __init__(self, target: Any = "tutor", *, question: str = "What is this course about?") -> None:
        from ragbook.prompt import EXAMPLE, TEMPLATES, Template, get_template

        self.assistant = target if hasattr(target, "ask") else None
        start: Template = self.assistant.template if self.assistant is not None else get_template(target)
        self.template = start
        self._loading = False
        self._passages: tuple[str, list[Any]] = ("", [])
        names = list(TEMPLATES)
        if start.name not in names:
            names.insert(0, start.name)
        self.base = w.Dropdown(options=names, value=start.name, description="Start from")
        self.name = w.Text(value=start.name, description="Name")
        self.fields = {
            f: w.Textarea(value=getattr(start, f), description=f.replace("_", " "), continuous_update=True,
                          layout=w.Layout(width="98%", height="9em" if f == "user" else "4.5em"))
            for f in _FIELDS
        }
        self._example = start.example or EXAMPLE  # kept while the box is unticked, to tick it again
        self.example = w.Checkbox(value=start.example is not None, indent=False,
                                  description="Show the model a worked, cited example before the question")
        self.question = w.Text(value=question, description="Sample question", continuous_update=False,
                               style={"description_width": "initial"}, layout=w.Layout(width="80%"))
        self.use_button = w.Button(description="Use this template", button_style="primary", icon="check",
                                   layout=w.Layout(display="" if self.assistant is not None else "none"))
        self.preview = w.HTML()
        self.base.observe(self._on_base, names="value")
        for control in (self.name, self.question, self.example, *self.fields.values()):
            control.observe(self._on_edit, names="value")
        self.use_button.on_click(self._on_use)
        help_text = w.HTML("<small>Placeholders: <code>{passages}</code> and <code>{question}</code> in user, "
                           "<code>{n}</code> <code>{citation}</code> <code>{text}</code> in passage, "
                           "<code>{no_answer}</code> anywhere; write <code>{{</code> <code>}}</code> for braces.</small>")
        super().__init__([
            w.HBox([self.base, self.name]), *self.fields.values(), help_text, self.example, self.question, self.use_button,
            w.HTML("<b>Rendered prompt</b>"), self.preview,
        ])
        self.refresh()

    def _sample_passages(self) -> list[Any]:
        q = self.question.value.strip()
        if self.assistant is None or not q:
            from ragbook.documents import Chunk

            return [Chunk(text="(the text of the best passage)", source="notes.pdf", page=3),
                    Chunk(text="(the text of the next passage)", source="intro.md", section=("Overview",))]
        if self._passages[0] != q:
            self._passages = (q, list(self.assistant.retriever.search(q)))
        return self._passages[1]

    def refresh(self) -> Any:
        """Rebuild the template from the fields and show its rendered prompt; returns the template."""
        from ragbook.prompt import Template

        template = Template(name=self.name.value.strip() or "custom",
                            description=self.template.description if self.name.value == self.template.name else "edited",
                            example=self._example if self.example.value else None,
                            **{f: self.fields[f].value for f in _FIELDS})
        template.check()
        messages = template.messages(self.question.value or "(the question)", self._sample_passages())
        self.template = template
        chars = sum(len(m["content"]) for m in messages)
        llm = getattr(self.assistant, "_llm", None) if self.assistant is not None else None
        size = f"{llm.count_tokens(llm.render(messages)):,} tokens for {llm.name}" if llm is not None else f"{chars:,} characters"
        self.preview.value = messages_html(messages)
        self.say(f"template {template.name!r} renders to {size}")
        return template

    @guarded
    def _on_edit(self, change: dict[str, Any]) -> None:
        if not self._loading:
            self.refresh()

    @guarded
    def _on_base(self, change: dict[str, Any]) -> None:
        from ragbook.prompt import EXAMPLE, TEMPLATES

        base = TEMPLATES.get(change["new"])
        if base is None:
            return
        self._loading = True
        try:
            self._example = base.example or EXAMPLE
            self.example.value = base.example is not None
            self.name.value = base.name
            for f in _FIELDS:
                self.fields[f].value = getattr(base, f)
        finally:
            self._loading = False
        self.template = base
        self.refresh()

    @guarded
    def _on_use(self, _button: Any = None) -> None:
        template = self.refresh()
        if self.assistant is not None:
            self.assistant.template = template
            self.say(f"the assistant now uses template {template.name!r}")

    def __repr__(self) -> str:
        return f"TemplateEditor(template={self.template.name!r})"
