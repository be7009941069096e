"""The assistant: retrieval, a prompt template and an open LLM, answering with checked citations.

>>> bot = ragbook.Assistant(index, name="DATA 101", template="tutor")     # best local model
>>> answer = bot.ask("How many grace days do we get?")
>>> answer.text, answer.citations, answer.prompt
>>> bot.save("data101.ragbook")        # one file; ragbook.load("data101.ragbook") elsewhere

``llm="extractive"`` answers with the documents' own sentences and no model at all.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Sequence

from ragbook._compat import renamed
from ragbook._display import html_escape, html_table, shorten, timed
from ragbook.answer import Answer, check_answer, looping, ran_away
from ragbook.errors import BundleError, SettingsError
from ragbook.grounding import ANSWER_LINE, model_verdict, review
from ragbook.llm.base import ChatModel
from ragbook.prompt import Template, get_template, pack
from ragbook.retrieval import Hit, Results, Retriever
from ragbook.settings import EXTRACTIVE, RETRIEVAL_KEYS, AssistantConfig

__all__ = ["Assistant", "AnswerStream", "StagedStream", "load_assistant", "EXTRACTIVE", "DEFAULT_MIN_RELEVANCE"]

log = logging.getLogger(__name__)
_SENTENCE_END = re.compile(r"[.!?\n\]]")  # where a piece may complete a sentence
_DEFAULTS = AssistantConfig()
# Relevance of the best passage (Hit.relevance: 0..1, the same scale for every question and
# retrieval mode) below which the assistant says it has nothing: few answerable questions fall
# below it and no made-up query reaches it (figures: benchmarks/README.md, "Why the defaults").
DEFAULT_MIN_RELEVANCE = _DEFAULTS.min_relevance
_FOLLOWUP = re.compile(r"\b(it|its|it's|they|them|their|this|that|these|those|he|she|his|her|there|then|the same|"
                       r"what about|how about|and)\b", re.IGNORECASE)
MAX_QUESTION_CHARS = 4000
MAX_NAMED_TERMS = 3


@dataclass
class _Turn:
    question: str
    answer: str


class Assistant:
    """An index, retrieval settings, a prompt template and a model, behind ``ask``."""

    def __init__(self, index: Any, *, name: str = _DEFAULTS.name, llm: Any = None,
                 template: str | Template | dict[str, Any] = _DEFAULTS.template,
                 min_relevance: float | None = _DEFAULTS.min_relevance, max_answer_tokens: int = _DEFAULTS.max_answer_tokens,
                 temperature: float = _DEFAULTS.temperature, history_turns: int = _DEFAULTS.history_turns,
                 verify: bool = _DEFAULTS.verify, require_support: bool = _DEFAULTS.require_support,
                 abstain_unknown_terms: bool = _DEFAULTS.abstain_unknown_terms,
                 passage_tokens: int | None = _DEFAULTS.passage_tokens, **retrieval: Any) -> None:
        """Each setting is described in :class:`ragbook.settings.AssistantConfig` (and ``RetrievalConfig`` for
        the retrieval ones: ``k``, ``mode``, ``filters``...), which checks them."""
        self.template = get_template(template)
        reference = llm if llm is None or isinstance(llm, (str, dict)) else None  # a model object is not data
        AssistantConfig(name=name, llm=reference, template=self.template.to_dict(), min_relevance=min_relevance,
                        max_answer_tokens=max_answer_tokens, temperature=temperature, history_turns=history_turns,
                        verify=verify, require_support=require_support, abstain_unknown_terms=abstain_unknown_terms,
                        passage_tokens=passage_tokens)
        self.index = index
        self.name = name
        self.min_relevance = min_relevance
        self.max_answer_tokens = max_answer_tokens
        self.temperature = temperature
        self.history_turns = history_turns
        self.passage_tokens = passage_tokens  # of each passage after the best, its best sentences up to this many tokens
        # put to the model what the citation rules cannot settle (ragbook.grounding.review): fewer cited wrong
        # answers for some lost good ones; the trade is measured in benchmarks/README.md (trust.py)
        self.verify = verify
        # an answer no passage it cites backs is withheld ("I don't know" and the closest sentence; ragbook.grounding)
        self.require_support = require_support
        # say "I don't know" before any model runs when the question is about a term no document uses (ragbook.coverage)
        self.abstain_unknown_terms = abstain_unknown_terms
        if "config" not in retrieval:  # fewer passages than a search shows (settings.ANSWER_PASSAGES)
            retrieval.setdefault("k", _DEFAULTS.retrieval.k)
        self.retriever = Retriever(index, **retrieval)
        self._llm_spec = llm  # None: the machine's choice, resolved at use (see _spec)
        self._llm: Any = llm if isinstance(llm, ChatModel) else None
        self.history: list[_Turn] = []
        # Set by ragbook.load: in words, by part ("llm", "reranker", "embedding"), what the file named
        # that is not used (or is, on trust); and the model reference it named, when not used.
        self.notes: dict[str, str] = {}
        self.suggested_llm: Any = None

    # -- the model -------------------------------------------------------------------------

    def _spec(self) -> Any:
        """The model asked for; with none, ``$RAGBOOK_LLM`` (a preset, a path, "extractive"...), else the best
        installed one.  Read at use, so a saved assistant keeps "the machine's choice" rather than this machine's."""
        if self._llm_spec is None:
            from ragbook.llm.presets import llm_from_environment

            return llm_from_environment()
        return self._llm_spec

    @property
    def extractive(self) -> bool:
        return self._spec() == EXTRACTIVE

    @property
    def llm(self) -> Any:
        """The language model, loaded on first use (``None`` in extractive mode)."""
        if self.extractive:
            return None
        if self._llm is None:
            from ragbook.llm import load_llm

            self._llm = load_llm(self._spec())
        return self._llm

    @llm.setter
    def llm(self, value: Any) -> None:
        self._llm_spec = value
        self._llm = value if isinstance(value, ChatModel) else None
        self.suggested_llm = None  # the user chose: a saved file's suggestion no longer applies
        self.notes.pop("llm", None)

    @property
    def model_name(self) -> str:
        """The old name of :attr:`llm_name`."""
        return self.llm_name

    @property
    def llm_name(self) -> str:
        """The language model's name, without loading it."""
        if self.extractive:
            return EXTRACTIVE
        if self._llm is not None:
            return self._llm.name
        spec = self._spec()
        if isinstance(spec, dict):  # a saved model reference: its preset or file name, not the whole record
            return str(spec.get("name") or Path(str(spec.get("model") or spec.get("path") or "?")).name)
        return str(spec or "default")

    # -- asking ----------------------------------------------------------------------------

    def _verdict(self, prompt: str) -> str | None:
        """The model's one-word yes/no to a verifier prompt (ragbook.grounding)."""
        return model_verdict(self.llm, prompt)

    def unknown_terms(self, question: str, hits: list[Hit] | None = None) -> list[str]:
        """The specific terms (names, technical words) the question is about that no document uses.

        A term no document uses counts only when the question without it finds no passage that
        answers it well (ragbook.coverage): "In VSCode, how do I ...?" is still answered.
        ``hits``: the question's own search results, when already at hand.
        """
        from ragbook.coverage import incidental, unknown_terms, without

        terms = unknown_terms(question, self.index.bm25, self._rare)
        if not terms:
            return []
        rest = without(question, terms)
        hits = list(self.retriever.search(question)) if hits is None else hits
        best = max((h.relevance for h in hits if h.relevance is not None), default=None)
        best_rest = max((h.relevance for h in self.retriever.search(rest) if h.relevance is not None),
                        default=None) if rest else None
        return [] if incidental(best, best_rest) else terms

    @cached_property
    def _rare(self) -> Callable[[str], bool] | None:
        """Which words are rare in general text: the embedding model's own subword tokenizer says (ragbook.coverage)."""
        from ragbook.coverage import rare_by_tokenizer

        try:
            tokenizer = self.index.embedder.tokenizer
            _ = tokenizer.encode("word", add_special_tokens=False).ids  # a tokenizers.Tokenizer, or fail here
        except Exception:  # an embedder without one (a test double, a custom model): the check stays off
            return None
        return rare_by_tokenizer(tokenizer)

    def search(self, question: str) -> Results:
        return self.retriever.search(question)

    def ask(self, question: str, *, chat: bool = False) -> Answer:
        """Answer one question from the documents, with citations (``chat=True``: in the conversation)."""
        stream = self.stream(question, chat=chat)
        for _ in stream:
            pass
        answer = stream.answer
        assert answer is not None  # every way out of a stream that runs to its end sets the answer
        return answer

    def stream(self, question: str, *, chat: bool = False, history: Sequence[tuple[str, str]] | None = None,
               on_stage: Callable[[str, str], None] | None = None) -> AnswerStream:
        """Like :meth:`ask`, but iterate to get the answer's text as it is generated.

        ``history``: the conversation so far as ``(question, answer)`` pairs, when it is kept
        elsewhere (a server's client sends its own): follow-ups are read in it, and it is not
        changed.  ``chat=True`` uses and extends the assistant's own :attr:`history` instead.

        ``on_stage(stage, text)`` hears what happens while nothing is written yet: ``"searching"``,
        ``"reading"`` (the model reads the passages: most of the wait on a CPU), ``"writing"``
        (the first words arrived), ``"checking"`` and ``"done"``, each with a line to show.
        """
        if chat and history is not None:
            raise SettingsError("give history= or chat=True, not both: chat=True uses the assistant's own history")
        stream = AnswerStream(self, question, self.history if chat else None)
        if history is not None:
            stream.history = [_Turn(str(q), str(a)) for q, a in history]
        stream.on_stage = on_stage
        return stream

    def chat(self, question: str) -> Answer:
        """Answer in a conversation: follow-ups are rewritten into standalone questions first."""
        return self.ask(question, chat=True)

    def reset(self) -> None:
        """Forget the conversation."""
        self.history.clear()

    def _check_question(self, question: str) -> str:
        if not isinstance(question, str) or not question.strip():
            raise SettingsError("the question is empty: ask something about your documents")
        if len(question) > MAX_QUESTION_CHARS:
            raise SettingsError(f"the question is {len(question):,} characters long; keep it under {MAX_QUESTION_CHARS:,} "
                             "(ask about a passage by quoting a sentence, not the whole text)")
        return question.strip()

    def standalone(self, question: str, history: list[_Turn]) -> str:
        """The question to search with: follow-ups ("and its limits?") made standalone."""
        if not history:
            return question
        last = history[-1]
        llm = self.llm
        if llm is not None:
            convo = "\n".join(f"User: {t.question}\nAssistant: {t.answer[:600]}" for t in history[-self.history_turns:])
            messages = [
                {"role": "system", "content": "You rewrite follow-up questions so they can be understood alone."},
                {"role": "user", "content": f"Conversation:\n{convo}\n\nFollow-up question: {question}\n\n"
                 "Rewrite the follow-up question as one standalone question that names what it refers to. "
                 "Reply with the rewritten question only."},
            ]
            try:
                text = llm.chat(messages, max_tokens=64, temperature=0.0).text.strip().strip('"').splitlines()
                rewritten = text[0].strip() if text else ""
                if 3 <= len(rewritten) <= 4 * len(question) + 200:
                    return rewritten
            except Exception:  # a failed rewrite must not lose the question
                pass
        if _FOLLOWUP.search(question) or len(question.split()) <= 5:
            return f"{last.question} {question}"
        return question

    def copy(self, **changes: Any) -> Assistant:
        """Another assistant on the same index (and loaded model), with some settings changed.

        ``bot.copy(name="bm25", mode="bm25", k=3, template="strict")``: the conversation is not copied.
        """
        settings: dict[str, Any] = {key: getattr(self.retriever, key) for key in RETRIEVAL_KEYS}
        settings.update(name=self.name, llm=self._llm if self._llm is not None else self._llm_spec,
                        template=self.template, min_relevance=self.min_relevance,
                        max_answer_tokens=self.max_answer_tokens, temperature=self.temperature,
                        history_turns=self.history_turns, verify=self.verify, require_support=self.require_support,
                        abstain_unknown_terms=self.abstain_unknown_terms, passage_tokens=self.passage_tokens)
        unknown = set(changes) - set(settings)
        if unknown:
            raise SettingsError(f"unknown setting(s) {', '.join(sorted(unknown))}; they are {', '.join(settings)}")
        settings.update(changes)
        return Assistant(self.index, **settings)

    # -- display and persistence -------------------------------------------------------------

    @property
    def config(self) -> AssistantConfig:
        """The settings as data (:class:`ragbook.settings.AssistantConfig`): what a saved file holds."""
        template = self.template.to_dict()
        return AssistantConfig(name=self.name, llm=self._llm_reference(), template=template,
                               min_relevance=self.min_relevance, max_answer_tokens=self.max_answer_tokens,
                               temperature=self.temperature, history_turns=self.history_turns, verify=self.verify,
                               require_support=self.require_support, abstain_unknown_terms=self.abstain_unknown_terms,
                               passage_tokens=self.passage_tokens, retrieval=self.retriever.config)

    def settings(self) -> dict[str, Any]:
        """The settings as JSON-ready data (``config.to_dict()``)."""
        return self.config.to_dict()

    def _llm_reference(self) -> Any:
        """The model as a saved file names it: a preset, a path, "extractive", a description, or None."""
        if self._llm_spec == EXTRACTIVE:
            return EXTRACTIVE
        if self._llm_spec is None and self.suggested_llm is not None:
            return self.suggested_llm  # the author's choice passes on, still only a suggestion to whoever opens it
        if self._llm_spec is None and self._spec() is not None:
            return None  # this machine's $RAGBOOK_LLM is not the assistant's own choice
        if self._llm is not None:
            return self._llm.info()
        return self._llm_spec if isinstance(self._llm_spec, (str, dict, type(None))) else str(self._llm_spec)

    def save(self, path: str | os.PathLike[str]) -> str:
        """Save index and settings into one ``.ragbook`` file (models are referenced, not embedded)."""
        from ragbook.bundle import save_bundle

        return save_bundle(path, self.index, self.settings())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, trust_llm: bool = False, **overrides: Any) -> Assistant:
        """See :func:`load_assistant` (``trust_llm``: use the models the file names)."""
        return load_assistant(path, trust_llm=trust_llm, **overrides)

    def panel(self, question: str = "") -> Any:
        """The assistant's app in the notebook: chat, retrieval inspector, compare, template editor, builder."""
        from ragbook.widgets.app import App

        return App(self, question=question)

    def __repr__(self) -> str:
        r = self.retriever
        return (f"Assistant(name={self.name!r}, llm={self.llm_name!r}, template={self.template.name!r}, "
                f"k={r.k}, mode={r.mode!r}, chunks={len(self.index)}"
                + (f", note={shorten(' '.join(self.notes.values()), 300)!r}" if self.notes else "") + ")")

    def _repr_html_(self) -> str:
        r = self.retriever
        rows = [["language model", self.llm_name], ["template", f"{self.template.name}: {self.template.description}"],
                ["retrieval", f"{r.mode} ({r.fusion}), k={r.k}" + (f", mmr={r.mmr}" if r.mmr is not None else "")],
                ["documents", f"{self.index.stats()['files']} files, {len(self.index.chunks):,} chunks"],
                ["says it doesn't know below", f"relevance {self.min_relevance}"],
                *(["note", note] for note in self.notes.values())]
        return f"<div class='ragbook-assistant'><b>{html_escape(self.name)}</b>{html_table(['', ''], rows)}</div>"


def load_assistant(path: str | os.PathLike[str], *, trust_llm: bool = False, **overrides: Any) -> Assistant:
    """Open a ``.ragbook`` file as a working :class:`Assistant` (``ragbook.load``).

    ``overrides`` replace saved settings, e.g. ``llm="extractive"`` or ``k=8``; ``embedding_model=``
    says where to find the embedding model if it is not where it was (``model=`` is its old name).

    The file's own model choices are used only where they name nothing outside it: a packaged
    preset, ``"extractive"``, the packaged embedding model.  Any other model it names (a server
    URL, a file or folder, a hub name, a reranker) is shown in ``assistant.notes`` and kept in
    ``assistant.suggested_llm``, and the assistant uses this machine's choice instead (as with
    no model saved: ``$RAGBOOK_LLM``, else the best installed preset).  ``trust_llm=True``
    uses what the file names, with a warning; keys are never taken from the file.
    """
    from ragbook.bundle import open_bundle

    model = renamed(overrides.pop("embedding_model", None), overrides.pop("model", None), "model", "embedding_model",
                    "load_assistant()")
    opened = open_bundle(path, trust_llm=trust_llm, model=model, chosen=overrides)
    saved = dict(opened.settings)
    settings = {**{k: v for k, v in saved.items() if k != "retrieval"}, **saved["retrieval"], **overrides}
    try:
        assistant = Assistant(opened.index, **settings)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{path}: its settings are invalid ({exc})") from None
    assistant.notes = opened.notes
    assistant.suggested_llm = opened.suggested_llm
    for note in opened.notes.values():
        log.warning("%s: %s", Path(path).name, note)
    return assistant


class StagedStream:
    """What an answer on its way offers: iterate for its text pieces; ``stage`` says what happens meanwhile,
    ``on_stage(stage, text)`` hears each change, ``close()`` stops it.  ``answer`` is set at the end."""

    _iter: Generator[str, None, None]
    stage: str
    on_stage: Callable[[str, str], None] | None
    answer: Answer | None

    def __iter__(self) -> Iterator[str]:
        return self._iter

    def __next__(self) -> str:
        return next(self._iter)

    def close(self) -> None:
        """Stop now: a model still writing stops (its generator is closed), and ``answer`` stays None."""
        self._iter.close()

    def _enter(self, stage: str, text: str) -> None:
        self.stage = stage
        if self.on_stage is not None:
            self.on_stage(stage, text)


class AnswerStream(StagedStream):
    """Iterate for the answer's text pieces as they arrive; ``.answer`` holds the whole Answer after.

    ``stage`` says what is happening now (see :meth:`Assistant.stream`); ``on_stage`` hears each change.
    """

    def __init__(self, assistant: Assistant, question: str, history: list[_Turn] | None) -> None:
        self.assistant = assistant
        self.stage = "waiting"
        self.on_stage = None
        self.question = assistant._check_question(question)
        self._conversation = history  # the assistant's own history in a chat: this turn is added to it
        self.history = list(history or [])
        self.answer = None
        self._iter = self._run()

    def _finish(self, answer: Answer) -> None:
        self.answer = answer
        if self._conversation is not None:
            self._conversation.append(_Turn(self.question, answer.text))
        self._enter("done", "")

    def _run(self) -> Generator[str, None, None]:
        """Search, then answer in one of three ways: say it doesn't know, quote the documents, or ask the model."""
        a = self.assistant
        self._t0 = time.perf_counter()
        self._timings: dict[str, float] = {}
        self._enter("searching", "searching the documents\u2026")
        with timed(self._timings, "rewrite"):
            query = a.standalone(self.question, self.history)
        if not self.history:
            del self._timings["rewrite"]  # a first question is not rewritten: no figure to show
        with timed(self._timings, "retrieval"):
            hits: list[Hit] = list(a.retriever.search(query))
        self._base: dict[str, Any] = dict(question=self.question, query=query, llm=a.llm_name)
        why_not = self._why_not_answered(query, hits)
        if why_not is not None:
            yield from self._abstain(hits, *why_not)
        elif a.extractive:
            yield from self._quote_the_documents(hits)
        else:
            yield from self._ask_the_model(hits)

    def _why_not_answered(self, query: str, hits: list[Hit]) -> tuple[str, list[str]] | None:
        """``(what to say, the unknown terms)`` when the documents cannot answer; None when they may."""
        a = self.assistant
        unknown = a.unknown_terms(query, hits) if a.abstain_unknown_terms else []
        if unknown:
            named = " or ".join(f"\u201c{w}\u201d" for w in unknown[:MAX_NAMED_TERMS])
            return f"{a.template.no_answer} (The documents never mention {named}.)", unknown
        best = max((h.relevance for h in hits if h.relevance is not None), default=None)
        if not hits or (a.min_relevance is not None and best is not None and best < a.min_relevance):
            closest = f" (The closest passage, {hits[0].citation()}, is not about this.)" if hits else ""
            return a.template.no_answer + closest, []
        return None

    def _abstain(self, hits: list[Hit], text: str, unknown: list[str]) -> Iterator[str]:
        yield text
        self._timings["total"] = time.perf_counter() - self._t0
        self._finish(Answer(text=text, passages=hits, mode="abstained", timings=self._timings, unknown_terms=unknown,
                            **self._base))

    def _quote_the_documents(self, hits: list[Hit]) -> Iterator[str]:
        from ragbook.extractive import extract

        text, used = extract(self.question, hits, self.assistant.index.embedder)
        yield text
        citations, checks = check_answer(text, used)
        self._timings["total"] = time.perf_counter() - self._t0
        self._finish(Answer(text=text, passages=used, citations=citations, checks=checks, mode="extractive",
                            timings=self._timings, **self._base))

    def _ask_the_model(self, hits: list[Hit]) -> Iterator[str]:
        """Stream the model's answer (for a quote-then-answer template, its answer part), then check it."""
        a, timings = self.assistant, self._timings
        llm = a.llm
        history = [m for t in self.history[-a.history_turns:] for m in (
            {"role": "user", "content": t.question}, {"role": "assistant", "content": t.answer})]
        views: list[Any] = list(hits)
        if a.passage_tokens and len(hits) > 1:  # the best passage whole; of the others, the sentences closest to it
            from ragbook.extractive import focus

            views = [hits[0], *focus(self.question, hits[1:], a.index.embedder, a.passage_tokens, llm.count_tokens)]
        packed = pack(a.template, self.question, views, render=llm.render, count_tokens=llm.count_tokens,
                      context_window=llm.context_window, answer_tokens=a.max_answer_tokens, history=history)
        packed.passages, packed.dropped = hits[:len(packed.passages)], hits[len(packed.passages):]  # the hits they show
        t2 = time.perf_counter()
        pieces: list[str] = []
        first = None
        stopped = ""  # why ragbook stopped the stream, when that cut something out of the answer
        answer_part = _AnswerPart() if a.template.form == "quote" else None  # the quote is checked, not streamed
        count, size = len(packed.passages), f" ({packed.prompt_tokens:,} tokens)" if packed.prompt_tokens else ""
        self._enter("reading", f"{llm.name} is reading {count} passage{'s' if count != 1 else ''}{size}\u2026")
        stream = llm.stream(packed.messages, max_tokens=a.max_answer_tokens, temperature=a.temperature)
        for piece in stream:
            if first is None:
                first = time.perf_counter() - t2
                self._enter("writing", f"{llm.name} is writing\u2026")
            pieces.append(piece)
            shown = answer_part.feed(piece) if answer_part is not None else piece
            if shown:
                yield shown
            text = "".join(pieces)
            away = ran_away(text)  # "40000000…" until the budget: the sentence it is in goes, and the answer says so
            if away or _SENTENCE_END.search(piece) and looping(text):  # the rest would be more of the same
                log.info("%s fell into a loop after %d characters; its answer is cut there", llm.name, len(text))
                stopped = RAN_AWAY if away else ""
                getattr(stream, "close", lambda: None)()  # a stand-in model may hand back a plain iterator
                break
        raw = "".join(pieces).strip()
        gen = getattr(llm, "last_generation", None)
        timings["first_token"] = first if first is not None else time.perf_counter() - t2
        timings["generation"] = time.perf_counter() - t2
        self._enter("checking", "checking the answer against the passages\u2026")
        # checked against the question as searched: a follow-up ("and with an f-string?") rewritten to stand alone
        r = review(raw, packed.passages, self._base["query"], a.template, a._verdict if a.verify else None,
                   require_support=a.require_support)
        if answer_part is not None and not answer_part.started:
            yield r.text  # the model wrote no "Answer:" line: what is shown is ragbook's reading of its output
        timings["total"] = time.perf_counter() - self._t0
        tokens = {"prompt": gen.prompt_tokens, "completion": gen.completion_tokens} if gen else {}
        if gen and gen.prompt_tokens < 0:  # a stream stopped early (a loop) has no counts from the backend: counted here
            tokens = {"prompt": packed.prompt_tokens or 0, "completion": llm.count_tokens(raw)}
        cut = _why_incomplete(gen, a.max_answer_tokens) or stopped
        self._finish(Answer(text=r.text, passages=packed.passages, citations=r.citations, checks=r.checks,
                            prompt=packed.prompt, messages=packed.messages, mode="llm", dropped=packed.dropped,
                            timings=timings, tokens=tokens, raw_text=raw, incomplete=bool(cut), incomplete_reason=cut,
                            grounding=r.grounding, model_checks=r.model_checks, withheld=r.withheld,
                            withheld_reason=r.why_withheld,
                            **{**self._base, "llm": llm.name}))


class _AnswerPart:
    """Passes on a quote-then-answer output from its ``Answer:`` on (the quote before it is checked, not shown)."""

    def __init__(self) -> None:
        self.buffer = ""
        self.started = False

    def feed(self, piece: str) -> str:
        if self.started:
            return piece
        self.buffer += piece
        m = ANSWER_LINE.search(self.buffer)
        if m is None or m.end() == len(self.buffer):  # "Answer:" may be followed by more spaces
            return ""
        self.started = True
        return self.buffer[m.end():]


RAN_AWAY = ("the model wrote the same few characters over and over; ragbook stopped it there and left that sentence "
            "out")


def _why_incomplete(gen: Any, max_tokens: int) -> str:
    """Why a model's answer stops before its end, or "" when it does not (``gen``: the model's last Generation)."""
    if getattr(gen, "incomplete", False):  # the backend was cut off: a server closed its stream early
        return getattr(gen, "incomplete_reason", "") or "the model's answer was cut off"
    if getattr(gen, "finish_reason", "") == "length":
        return (f"the answer used all the tokens it was allowed (max_answer_tokens={max_tokens}, or what the context "
                f"window left) and stops mid-way; raise max_answer_tokens, or retrieve fewer passages")
    return ""
