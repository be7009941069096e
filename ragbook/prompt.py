"""Prompt templates: how retrieved passages and a question become the messages an LLM reads.

A :class:`Template` is plain data (strings), so it saves to JSON and a person can edit it.
Passages are numbered ``[1]..[n]`` with their source and page; the instruction to cite comes
*after* the question, which small open models follow far more reliably (measured: see
../shared/MODELS.md).  :func:`pack` fits the passages into the model's context window,
dropping the lowest-ranked first and saying which it dropped: nothing is cut silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from ragbook._display import html_escape, shorten

__all__ = ["Template", "TEMPLATES", "get_template", "Packed", "pack", "format_passages"]


@dataclass(frozen=True)
class Template:
    """System and user message templates.

    ``user`` may use ``{passages}`` and ``{question}``; ``passage`` formats one passage with
    ``{n}``, ``{citation}`` and ``{text}``.
    """

    name: str
    system: str
    user: str
    passage: str = "[{n}] {citation}\n{text}"
    no_answer: str = "I don't know: my documents don't cover that."
    description: str = ""

    def edit(self, **changes: Any) -> Template:
        """A copy with some fields changed, e.g. ``TEMPLATES['tutor'].edit(system='...')``."""
        return replace(self, **changes)

    def messages(self, question: str, passages: Sequence[Any], history: Sequence[dict[str, str]] = ()) -> list[dict[str, str]]:
        """The chat messages for ``question`` with ``passages`` (hits or chunks, best first)."""
        text = format_passages(passages, self.passage) or "(no passages)"
        user = self.user.format(passages=text, question=question.strip(), no_answer=self.no_answer)
        return [{"role": "system", "content": self.system.format(no_answer=self.no_answer)}, *history,
                {"role": "user", "content": user}]

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Template:
        fields = {k: str(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        template = cls(**fields)
        template.check()
        return template

    def check(self) -> None:
        """Fail early, with the reason, on a template that cannot render."""
        try:
            self.user.format(passages="", question="", no_answer="")
            self.system.format(no_answer="")
            self.passage.format(n=1, citation="", text="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"template {self.name!r} has an unknown placeholder or stray brace ({exc!r}); use "
                "{passages} and {question} in user, {n} {citation} {text} in passage, and {{ }} for literal braces"
            ) from None
        if "{passages}" not in self.user or "{question}" not in self.user:
            raise ValueError(f"template {self.name!r}: the user message needs both {{passages}} and {{question}}")

    def __repr__(self) -> str:
        return f"Template(name={self.name!r}, system={shorten(self.system, 50)!r})"

    def _repr_html_(self) -> str:
        return (f"<div class='ragbook-template'><b>Template {html_escape(self.name)}</b> "
                f"<small>{html_escape(self.description)}</small>"
                f"<pre style='white-space:pre-wrap'><b>system</b>\n{html_escape(self.system)}\n\n"
                f"<b>user</b>\n{html_escape(self.user)}</pre></div>")


_CITE = ("After each sentence, cite the numbers of the passages it comes from in square brackets, "
         "for example: \"Labs are due on Fridays [2].\"")

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template(
            name="tutor",
            description="explains for students, step by step, from the course material",
            system=("You are a patient teaching assistant for a course. You explain clearly and simply, "
                    "for a student, using only the course material you are given."),
            user=("Course material:\n\n{passages}\n\nStudent question: {question}\n\n"
                  "Answer the question in a few sentences a student can follow, using only the course material "
                  f"above. {_CITE} If the material does not answer the question, say: {{no_answer}}"),
        ),
        Template(
            name="research",
            description="precise, every claim cited, notes disagreements between sources",
            system=("You are a careful research assistant. You are precise, you never claim more than the "
                    "sources say, and you cite every claim."),
            user=("Sources:\n\n{passages}\n\nQuestion: {question}\n\n"
                  f"Answer precisely from the sources above. {_CITE} Every sentence must carry a citation. "
                  "If sources disagree, say so. If the sources do not answer the question, say: {no_answer}"),
        ),
        Template(
            name="strict",
            description="answers only from the passages, otherwise says it does not know",
            system="You answer strictly from the given passages and never from your own knowledge.",
            user=("Passages:\n\n{passages}\n\nQuestion: {question}\n\n"
                  "Answer ONLY with facts stated in the passages above; do not add anything else. "
                  f"{_CITE} If the passages do not contain the answer, reply exactly: {{no_answer}}"),
        ),
    ]
}


def get_template(template: str | Template | dict[str, Any]) -> Template:
    if isinstance(template, Template):
        template.check()
        return template
    if isinstance(template, dict):
        return Template.from_dict(template)
    try:
        return TEMPLATES[template]
    except KeyError:
        raise ValueError(f"unknown template {template!r}; built-in ones: {', '.join(TEMPLATES)}") from None


def _citation_and_text(passage: Any) -> tuple[str, str]:
    chunk = getattr(passage, "chunk", passage)
    return chunk.citation(), chunk.text


def format_passages(passages: Sequence[Any], fmt: str = "[{n}] {citation}\n{text}") -> str:
    blocks = []
    for n, passage in enumerate(passages, start=1):
        citation, text = _citation_and_text(passage)
        blocks.append(fmt.format(n=n, citation=citation, text=text.strip()))
    return "\n\n".join(blocks)


@dataclass
class Packed:
    """Messages that fit the model, the passages in them, and those left out (and why)."""

    messages: list[dict[str, str]]
    prompt: str
    passages: list[Any]
    dropped: list[Any] = field(default_factory=list)
    prompt_tokens: int = 0


def pack(template: Template, question: str, passages: Sequence[Any], *, render: Callable[[list[dict[str, str]]], str],
         count_tokens: Callable[[str], int], context_window: int, answer_tokens: int,
         history: Sequence[dict[str, str]] = ()) -> Packed:
    """Keep the best passages that fit ``context_window - answer_tokens`` tokens of prompt.

    Drops the lowest-ranked passages first.  A question too long to fit even without
    passages is an error that says by how much.
    """
    budget = context_window - answer_tokens
    kept = list(passages)
    dropped: list[Any] = []
    while True:
        messages = template.messages(question, kept, history)
        prompt = render(messages)
        used = count_tokens(prompt)
        if used <= budget:
            return Packed(messages, prompt, kept, dropped, used)
        if not kept:
            raise ValueError(
                f"the question (with the conversation so far) needs {used} tokens, but the model reads "
                f"{context_window} and {answer_tokens} are kept for the answer; shorten the question or "
                "clear the chat history"
            )
        dropped.insert(0, kept.pop())
