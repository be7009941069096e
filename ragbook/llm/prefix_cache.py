"""Keeping the fixed start of ragbook's prompts read between questions (llama.cpp).

Every RAG prompt starts the same way (a system message and a worked example, ~300 tokens) and
only then has the passages and the question.  Reading that start again for every question is
most of the wait before the first token on a CPU.  :class:`PrefixCache` keeps llama.cpp's KV
state of such a start and, before each answer, puts the context back at it, so that only what
follows is read.

Which start is "fixed" is learnt, not declared: when a prompt shares at least ``min_tokens``
tokens with one of the last few prompts, their common start, cut just before the last turn
marker (a control token such as ``<|im_start|>``) inside it, is read on its own and its state
kept.  Cutting at a turn keeps the state useful for every question (the common start of two
prompts may run into a passage both happened to get first); remembering several prompts keeps
it learnt when other prompts (a verification, another template) come in between.

Answers stay those of a cold start at temperature 0 as far as llama.cpp's numbers allow: a
prompt is always read as [kept start, read from an empty context in one go] + [the rest], the
same way whatever was asked before, and a kept state is always loaded rather than trusted to
still be in the context.  (llama.cpp on a CPU computes a token's row the same way whatever batch
it is in as long as it has the same place in a group of 4 rows: kept starts end at a multiple of
:data:`ALIGN` tokens.  benchmarks/generation.py measures how often answers differ from a cold start.)

States can also be kept on disk (``folder``), so that a new process's first question is fast:
the state's bytes, its tokens as ``.npy`` (read with ``allow_pickle=False``) and a JSON file
with a format version, the model's sha256 and the bytes' sha256; nothing is unpickled, and a
damaged or foreign file is ignored (and replaced when the state is next saved).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ragbook._files import atomic_write
from ragbook.llm.base import LLMError

__all__ = ["PrefixCache", "PrefixStats", "DEFAULT_MAX_STATES", "DEFAULT_MIN_TOKENS", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

DEFAULT_MAX_STATES = 4  # kept in memory, least recently used dropped first (~10 MB each for a 1.5B model)
DEFAULT_MIN_TOKENS = 32  # a shorter common start is not worth a state
DEFAULT_RECENT = 8  # prompts remembered to find common starts in
DEFAULT_MAX_FILES = 8  # states kept on disk per model, oldest dropped first
# A kept start ends at a multiple of this many tokens.  llama.cpp's CPU kernels for repacked
# quantized weights (Q4_K on x86) multiply rows in groups of 4 and the rest one by one: a token
# read in a different group position gives (slightly) different numbers.  Cut at a multiple of
# 32, every token of the rest sits where a cold read puts it (measured on Qwen2.5-Coder-1.5B
# Q4_K_M: a cut at 320 or 344 gives the cold logits bit for bit, a cut at 337 does not).
ALIGN = 32
FORMAT_VERSION = 1


@dataclass
class PrefixStats:
    """What the cache did: counters for tests and benchmarks, no timings."""

    hits: int = 0  # answers that started from a kept state
    saves: int = 0  # states read and kept
    disk_loads: int = 0  # states found on disk
    reused_tokens: int = 0  # prompt tokens not read again, over all answers
    last_reused: int = 0  # prompt tokens not read again for the last answer

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _State:
    tokens: tuple[int, ...]
    data: bytes

    @property
    def digest(self) -> str:
        return _token_digest(self.tokens)


def _token_digest(tokens: Sequence[int] | np.ndarray) -> str:
    return hashlib.sha256(np.asarray(tokens, dtype="<i4").tobytes()).hexdigest()


def _common_length(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


class PrefixCache:
    """KV states of recurring prompt starts for one ``llama_cpp.Llama``, kept between answers.

    Call :meth:`prepare` with a prompt's tokens right before ``create_chat_completion``: it
    leaves the context holding the longest kept start of the prompt (or empty), and llama_cpp's
    ``generate`` then reads only the rest.  ``folder`` (optional) keeps states on disk for the
    model whose sha256 is ``model_sha256``.
    """

    def __init__(self, llama: Any, *, max_states: int = DEFAULT_MAX_STATES, min_tokens: int = DEFAULT_MIN_TOKENS,
                 recent: int = DEFAULT_RECENT, folder: str | Path | None = None, model_sha256: str = "") -> None:
        if max_states < 1 or min_tokens < 1 or recent < 1:
            raise LLMError("the prefix cache needs max_states, min_tokens and recent of at least 1")
        if folder is not None and not model_sha256:
            raise LLMError("a prefix cache on disk needs the model's sha256 to tell its states from other models'")
        import llama_cpp

        self._lib = llama_cpp
        self.llama = llama
        self.max_states = max_states
        self.min_tokens = min_tokens
        self.folder = Path(folder) / model_sha256[:16] if folder is not None else None
        self.model_sha256 = model_sha256
        self.stats = PrefixStats()
        self._states: OrderedDict[tuple[int, ...], _State] = OrderedDict()
        self._recent: deque[np.ndarray] = deque(maxlen=recent)
        vocab = llama._model.vocab
        self._is_control = lambda token: bool(llama_cpp.llama_vocab_is_control(vocab, int(token)))

    def __repr__(self) -> str:
        lengths = [len(t) for t in self._states]
        return f"PrefixCache(states={lengths}, hits={self.stats.hits}, saves={self.stats.saves})"

    def __len__(self) -> int:
        return len(self._states)

    @property
    def prefixes(self) -> list[tuple[int, ...]]:
        """The kept starts' tokens, least recently used first."""
        return list(self._states)

    def clear(self) -> None:
        """Forget the states in memory and the prompts seen (files on disk stay)."""
        self._states.clear()
        self._recent.clear()

    # -- before an answer ------------------------------------------------------------------------

    def prepare(self, tokens: Sequence[int]) -> int:
        """Put the context at the longest kept start of ``tokens``; the number of tokens it holds (0: empty)."""
        prompt = np.asarray(tokens, dtype=np.intc)
        state = self._find(prompt)
        stable = self._stable_length(prompt)
        self._recent.append(prompt)
        self.stats.last_reused = 0
        if stable > (len(state.tokens) if state else 0):
            self._read_and_keep(prompt[:stable], state)  # the context now holds it, read the way a kept one is
            return stable
        if state is None or not self._restore(state):
            self.llama.reset()
            return 0
        self.stats.hits += 1
        self.stats.last_reused = len(state.tokens)
        self.stats.reused_tokens += len(state.tokens)
        return len(state.tokens)

    def _find(self, prompt: np.ndarray) -> _State | None:
        """The longest kept state (memory, then disk) whose tokens start ``prompt`` and leave some to read."""
        best: _State | None = None
        for key, state in self._states.items():
            n = len(key)
            if n < len(prompt) and (best is None or n > len(best.tokens)) and np.array_equal(prompt[:n], key):
                best = state
        if best is None and self.folder is not None:
            best = self._load_file(prompt)
        if best is not None:
            self._states[best.tokens] = best
            self._states.move_to_end(best.tokens)
            self._trim()
        return best

    def _stable_length(self, prompt: np.ndarray) -> int:
        """The common start with a recent prompt, cut before its last turn marker and down to a multiple of
        :data:`ALIGN`; 0 when under ``min_tokens``."""
        common = max((_common_length(prompt, seen) for seen in self._recent), default=0)
        common = min(common, len(prompt) - 1)  # always leave a token to read: its logits are the first answer token's
        for end in range(common, self.min_tokens - 1, -1):
            if self._is_control(prompt[end]):
                end = end // ALIGN * ALIGN
                return end if end >= self.min_tokens else 0
        return 0

    def _read_and_keep(self, start: np.ndarray, base: _State | None = None) -> _State:
        """Read ``start`` and keep its state (in memory, and on disk).

        From ``base``, a kept state it begins with, when there is one: both end at a multiple of
        :data:`ALIGN`, so the tokens after it sit where a read from an empty context puts them, and
        only those are read.  (Reading it all again made a repeated question 1.6x slower than a new
        one: 9.9 s against 6.2 s to the first token on the demo, Qwen 1.5B, 2 cores.)
        """
        llama = self.llama
        if base is not None and self._restore(base):
            llama.eval(start[len(base.tokens):].tolist())
        else:
            llama.reset()
            llama._ctx.kv_cache_seq_rm(0, 0, -1)
            llama.eval(start.tolist())
        state = _State(tuple(int(t) for t in start), self._state_bytes())
        self._states[state.tokens] = state
        self._trim()
        self.stats.saves += 1
        log.debug("kept the state of a %d-token prompt start (%d bytes)", len(state.tokens), len(state.data))
        if self.folder is not None:
            self._save_file(state)
        return state

    def _trim(self) -> None:
        while len(self._states) > self.max_states:
            self._states.popitem(last=False)

    # -- llama.cpp state -------------------------------------------------------------------------

    def _state_bytes(self) -> bytes:
        """Sequence 0's KV cells: what the context remembers of the tokens read (no logits, no sampler)."""
        ctx = self.llama.ctx
        size = int(self._lib.llama_state_seq_get_size(ctx, 0))
        buffer = (ctypes.c_uint8 * size)()
        written = int(self._lib.llama_state_seq_get_data(ctx, buffer, size, 0))
        if written <= 0 or written > size:
            raise LLMError(f"llama.cpp could not copy its context state ({written} of {size} bytes)")
        return bytes(buffer)[:written]

    def _restore(self, state: _State) -> bool:
        """Load ``state`` into the context and tell llama_cpp's bookkeeping which tokens it holds.

        False (and the state dropped) when llama.cpp refuses it: a state from another context size.
        """
        llama = self.llama
        llama._ctx.kv_cache_seq_rm(0, 0, -1)
        buffer = (ctypes.c_uint8 * len(state.data)).from_buffer_copy(state.data)
        if int(self._lib.llama_state_seq_set_data(llama.ctx, buffer, len(state.data), 0)) != len(state.data):
            log.warning("llama.cpp refused a kept %d-token prompt state; reading the prompt in full", len(state.tokens))
            self._states.pop(state.tokens, None)
            llama._ctx.kv_cache_seq_rm(0, 0, -1)
            return False
        n = len(state.tokens)
        llama.input_ids[:n] = state.tokens
        llama.n_tokens = n
        llama._requires_eval = True  # the logits are not this state's: generate() must read on
        return True

    # -- on disk ---------------------------------------------------------------------------------

    def _paths(self, digest: str) -> tuple[Path, Path, Path]:
        assert self.folder is not None
        stem = self.folder / digest[:24]
        return stem.with_suffix(".json"), stem.with_suffix(".tokens.npy"), stem.with_suffix(".state")

    def _save_file(self, state: _State) -> None:
        """Write the state's bytes and tokens, then its JSON (last: a file without one is never read)."""
        meta_path, tokens_path, data_path = self._paths(state.digest)
        meta = {"format": "ragbook-prefix-state", "version": FORMAT_VERSION, "model_sha256": self.model_sha256,
                "n_tokens": len(state.tokens), "tokens_sha256": state.digest, "n_ctx": int(self.llama.n_ctx()),
                "bytes": len(state.data), "bytes_sha256": hashlib.sha256(state.data).hexdigest()}
        try:
            with atomic_write(data_path, durable=False) as f:
                f.write(state.data)
            with atomic_write(tokens_path, durable=False) as f:
                np.save(f, np.asarray(state.tokens, dtype="<i4"), allow_pickle=False)
            with atomic_write(meta_path, "w", encoding="utf-8", durable=False) as f:
                json.dump(meta, f, indent=1)
            self._prune_files()
        except OSError as exc:  # a read-only or full disk: the cache in memory still works
            log.warning("could not keep a prompt state in %s: %s", self.folder, exc)

    def _prune_files(self) -> None:
        assert self.folder is not None
        metas = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in metas[DEFAULT_MAX_FILES:]:
            for path in self._paths(old.stem):
                path.unlink(missing_ok=True)

    def _load_file(self, prompt: np.ndarray) -> _State | None:
        """The longest state on disk that starts ``prompt``; a damaged or foreign one is skipped."""
        assert self.folder is not None
        found: _State | None = None
        for meta_path in self.folder.glob("*.json") if self.folder.is_dir() else ():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                n = int(meta["n_tokens"])
                if (meta.get("version") != FORMAT_VERSION or meta.get("model_sha256") != self.model_sha256
                        or not 0 < n < len(prompt) or (found is not None and n <= len(found.tokens))
                        or _token_digest(prompt[:n]) != meta["tokens_sha256"]):
                    continue
                found = self._read_file(meta_path, meta, prompt[:n]) or found
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.info("ignoring the damaged prompt state %s: %s", meta_path.name, exc)
        if found is not None:
            self.stats.disk_loads += 1
        return found

    def _read_file(self, meta_path: Path, meta: dict[str, Any], start: np.ndarray) -> _State | None:
        _, tokens_path, data_path = self._paths(meta_path.stem)
        tokens = np.load(tokens_path, allow_pickle=False)
        data = data_path.read_bytes()
        if (not np.array_equal(tokens, start) or len(data) != meta["bytes"]
                or hashlib.sha256(data).hexdigest() != meta["bytes_sha256"]):
            log.info("ignoring the prompt state %s: its files do not match its description", meta_path.name)
            return None
        return _State(tuple(int(t) for t in tokens), data)
