"""IPython magics: pick an assistant once, then ask in a cell.

>>> %load_ext ragbook
>>> %ragbook use course.ragbook          # or the name of an Assistant variable
>>> %%ask
... How is the final project graded?

``%ragbook`` alone shows the assistant in use; ``%ragbook llms`` lists the language models;
``%ragbook panel`` opens its app; ``%ask question`` is the one-line form.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from ragbook.errors import MagicError

__all__ = ["RagbookMagics", "load_ipython_extension"]

_USAGE = """usage:
  %ragbook use PATH_OR_VARIABLE [--model NAME] [--trust-llm]
                                                  pick the assistant (a .ragbook file or an Assistant variable);
                                                  --trust-llm uses the model the file names
  %ragbook use URL [--token TOKEN]                use an assistant a `ragbook serve` server shares (the link your
                                                  teacher gave, with its #token=; no model is loaded here)
  %ragbook                                        show the assistant in use
  %ragbook llms                                   list the language models and where they come from
  %ragbook panel                                  open the assistant's app
  %%ask [-k N] [--mode hybrid|dense|bm25] [--prompt]   answer the cell's question (%ask QUESTION on one line)"""




@magics_class
class RagbookMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.assistant: Any = None

    @line_magic
    def ragbook(self, line: str) -> Any:
        args = shlex.split(line)
        if not args:
            if self.assistant is None:
                raise MagicError("no assistant in use yet: %ragbook use course.ragbook\n\n" + _USAGE)
            return self.assistant
        command, rest = args[0], args[1:]
        if command == "use":
            return self.use(rest)
        if command in ("llms", "models"):  # models: its old name
            from ragbook.llm import list_models

            return list_models()
        if command == "panel":
            return self._current().panel()
        raise MagicError(f"unknown %ragbook command {command!r}\n\n{_USAGE}")

    def use(self, args: list[str]) -> Any:
        if args and args[0].startswith(("http://", "https://")):
            return self._use_server(args)
        model = None
        trust = "--trust-llm" in args  # use the model a shared file names (see ragbook.load)
        args = [a for a in args if a != "--trust-llm"]
        if "--model" in args:
            i = args.index("--model")
            if i + 1 >= len(args):
                raise MagicError("--model needs a name, like --model qwen2.5-coder-0.5b or --model extractive")
            model = args[i + 1]
            args = args[:i] + args[i + 2:]
        if len(args) != 1:
            raise MagicError("%ragbook use takes one .ragbook file or one variable name\n\n" + _USAGE)
        target = args[0]
        value = self.shell.user_ns.get(target) if self.shell is not None else None
        if value is not None and hasattr(value, "ask"):
            assistant = value
            if model is not None:
                assistant.llm = model
        elif Path(target).expanduser().exists():
            from ragbook.assistant import load_assistant

            assistant = load_assistant(Path(target).expanduser(), trust_llm=trust, **({"llm": model} if model else {}))
        else:
            raise MagicError(f"{target!r} is neither a file nor an assistant variable; save one with "
                             "bot.save('course.ragbook') or build one with ragbook.Assistant(index)")
        self.assistant = assistant
        return assistant

    def _use_server(self, args: list[str]) -> Any:
        import os

        from ragbook.remote import connect

        url, rest = args[0], args[1:]
        token = None
        if rest[:1] == ["--token"] and len(rest) == 2:
            token = rest[1]
        elif rest:
            raise MagicError("%ragbook use URL takes only --token TOKEN (or the link with #token=)\n\n" + _USAGE)
        self.assistant = connect(url, token=token or os.environ.get("RAGBOOK_TOKEN"))
        return self.assistant

    def _current(self) -> Any:
        if self.assistant is None:
            raise MagicError("pick an assistant first: %ragbook use course.ragbook")
        return self.assistant

    @line_cell_magic
    def ask(self, line: str, cell: str | None = None) -> Any:
        args = shlex.split(line) if cell is not None else []
        question = cell if cell is not None else line
        options: dict[str, Any] = {}
        show_prompt = False
        while args:
            flag = args.pop(0)
            if flag == "--prompt":
                show_prompt = True
            elif flag in ("-k", "--k", "--mode") and args:
                value = args.pop(0)
                options["k" if flag != "--mode" else "mode"] = int(value) if flag != "--mode" else value
            else:
                raise MagicError(f"unknown or incomplete option {flag!r} for %%ask\n\n{_USAGE}")
        assistant = self._current()
        if options:
            assistant = assistant.copy(**options)
        answer = assistant.ask(question.strip())
        if show_prompt:
            from IPython.display import HTML, display

            from ragbook._display import html_escape

            display(HTML(f"<details><summary>prompt</summary><pre style='white-space:pre-wrap'>"
                         f"{html_escape(answer.prompt or '(no model: extractive)')}</pre></details>"))
        return answer


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(RagbookMagics(ipython))
