"""Chat panel: a conversation with streamed tokens, cited answers, the prompt on demand, model and template pickers."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ragbook._display import html_escape, shorten
from ragbook.widgets._common import Panel, Throttle, guarded

__all__ = ["Chat", "model_choices"]

EXTRACTIVE_LABEL = "extractive (no model: the documents' own sentences)"
DRAFT = "the model's draft: checked against the passages when it ends, and withheld if they do not back it"


def model_choices(current: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs: installed presets, the current model, and the extractive mode."""
    from ragbook.llm.presets import list_models

    options: list[tuple[str, str]] = []
    for m in list_models():
        if m.installed:
            options.append((f"{m.name} ({m.params}, {m.backend})", m.name))
    values = {v for _, v in options}
    if current and current not in values and current != "extractive":
        options.insert(0, (current, current))
    options.append((EXTRACTIVE_LABEL, "extractive"))
    return options


class Chat(Panel):
    """Talk to an assistant: answers stream in, citations show their passage, the prompt is one click away.

    ``chat.answers`` holds every :class:`~ragbook.answer.Answer` of the conversation.
    """

    title = "Chat"

    def __init__(self, assistant: Any, *, models: list[tuple[str, str]] | None = None) -> None:
        from ragbook.prompt import TEMPLATES

        self.assistant = assistant
        self.answers: list[Any] = []
        self._turns: list[str] = []
        self.transcript = w.HTML(layout=w.Layout(max_height="520px", overflow="auto"))
        self.live = w.HTML()
        self.question = w.Textarea(placeholder=f"Ask {assistant.name} about its documents...",
                                   layout=w.Layout(width="80%", height="4.5em"))
        self.ask_button = w.Button(description="Ask", button_style="primary", icon="paper-plane")
        self.reset_button = w.Button(description="New conversation", icon="eraser", layout=w.Layout(width="auto"))
        current = assistant.llm_name if not assistant.extractive else "extractive"
        options = models if models is not None else model_choices(current)
        values = [v for _, v in options]
        self.model = w.Dropdown(options=options, value=current if current in values else values[0],
                                description="Model", layout=w.Layout(width="45%"))
        names = list(TEMPLATES)
        if assistant.template.name not in names:
            names.insert(0, assistant.template.name)
        self.template = w.Dropdown(options=names, value=assistant.template.name, description="Template")
        if getattr(assistant, "remote", False):  # a served assistant: its model and template are the server's
            self.model.disabled = self.template.disabled = True
        self.show_prompt = w.Checkbox(value=False, description="Show the prompt", indent=False)
        self.prompt = w.HTML(layout=w.Layout(display="none"))
        self.ask_button.on_click(self._on_ask)
        self.reset_button.on_click(self._on_reset)
        self.model.observe(self._on_model, names="value")
        self.template.observe(self._on_template, names="value")
        self.show_prompt.observe(self._on_show_prompt, names="value")
        super().__init__([
            w.HBox([self.model, self.template]),
            self.transcript, self.live,
            w.HBox([self.question, w.VBox([self.ask_button, self.reset_button])]),
            self.show_prompt, self.prompt,
        ])
        self.say(f"{assistant.name}: {len(assistant.index):,} passages from {len(assistant.index.files)} files")

    # -- pickers -------------------------------------------------------------------------------

    @guarded
    def _on_model(self, change: dict[str, Any]) -> None:
        self.assistant.llm = change["new"]
        self.say(f"model: {change['new']} (loaded on the next question)")

    @guarded
    def _on_template(self, change: dict[str, Any]) -> None:
        from ragbook.prompt import TEMPLATES

        if change["new"] in TEMPLATES:
            self.assistant.template = TEMPLATES[change["new"]]
            self.say(f"template: {change['new']} ({self.assistant.template.description})")

    def _on_show_prompt(self, change: dict[str, Any]) -> None:
        self.prompt.layout.display = "" if change["new"] else "none"

    # -- asking --------------------------------------------------------------------------------

    def ask(self, question: str | None = None) -> Any:
        """Answer ``question`` (or the text box's) in the conversation, streaming into the panel."""
        text = (question if question is not None else self.question.value).strip()
        self.ask_button.disabled = True
        def live(reply_html: str) -> None:  # the question and the reply so far, until the answer is checked
            self.live.value = _bubble("you", html_escape(text)) + _bubble(self.assistant.name, reply_html)

        # the model's words as they come are a draft: the checks that follow may withhold them ("I don't know")
        shown = Throttle(lambda t: live(f"<div style='white-space:pre-wrap;color:#555'>{html_escape(t)}&#9612;</div>"
                                        f"<div style='color:#999;font-size:smaller'><i>{DRAFT}</i></div>"))

        def stage(name: str, line: str) -> None:  # what happens before the first words, in the status line
            if name != "done":
                self.say(line, busy=True)
            if name in ("searching", "reading"):
                live(f"<div style='color:#777'><i>{html_escape(line)}</i></div>")

        try:
            stream = self.assistant.stream(text, chat=True, on_stage=stage)
            pieces: list[str] = []
            for piece in stream:
                pieces.append(piece)
                shown("".join(pieces))
            shown.flush()
            answer = stream.answer
        finally:
            self.ask_button.disabled = False
            self.live.value = ""
        self.answers.append(answer)
        self._turns.append(_bubble("you", html_escape(text)) + _bubble(self.assistant.name, answer._repr_html_()))
        self.transcript.value = "".join(self._turns)
        self.prompt.value = ("<details open><summary>The prompt the model read</summary>"
                             f"<pre style='white-space:pre-wrap'>{html_escape(answer.prompt or '(no model: extractive)')}"
                             "</pre></details>")
        self.question.value = ""
        t = answer.timings
        ms = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in t.items())
        flags = f"; {len(answer.flagged)} sentence(s) flagged" if answer.flagged else ""
        self.say(f"{answer.mode} answer from {answer.llm}: {ms}{flags}")
        return answer

    @guarded
    def _on_ask(self, _button: Any = None) -> None:
        self.ask()

    @guarded
    def _on_reset(self, _button: Any = None) -> None:
        self.assistant.reset()
        self.answers.clear()
        self._turns.clear()
        self.transcript.value = ""
        self.prompt.value = ""
        self.say("new conversation")

    def __repr__(self) -> str:
        last = shorten(self.answers[-1].text, 40) if self.answers else ""
        return f"Chat(assistant={self.assistant.name!r}, model={self.model.value!r}, answers={len(self.answers)}, last={last!r})"


def _bubble(who: str, body_html: str) -> str:
    colour = "#f1f3f5" if who == "you" else "#e7f0fd"
    return (f"<div style='background:{colour};border-radius:6px;padding:4px 8px;margin:4px 0'>"
            f"<small><b>{html_escape(who)}</b></small><div>{body_html}</div></div>")
