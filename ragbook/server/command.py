"""``ragbook serve``: the options of the server's command and what they make (ragbook.cli runs it)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ragbook.errors import SettingsError

__all__ = ["add_serve_command", "server_config", "banner"]

TOKEN_ENV = "RAGBOOK_SERVE_TOKEN"


def add_serve_command(sub: Any) -> None:
    from ragbook.server.app import DEFAULT_ANSWER_TIMEOUT, DEFAULT_MAX_QUESTION_CHARS, DEFAULT_MAX_WAITING, DEFAULT_RATE

    sv = sub.add_parser("serve", help="serve an assistant to a class: a web page, a JSON API, an OpenAI-compatible API",
                        description="One process holds the index and the language model; students open the link it "
                                    "prints, connect from a notebook (ragbook.connect), or use any OpenAI client.")
    sv.add_argument("file", help="a .ragbook assistant file")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for the whole network)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--llm", help="the model: a preset, .gguf file, folder, or openai:http://HOST:PORT/v1 (vLLM, "
                                  "llama.cpp's server, Ollama) for a large class")
    sv.add_argument("--extractive", action="store_true", help="answer with quotes from the documents, no model")
    sv.add_argument("--trust-llm", action="store_true", help="use the model the assistant file names (see ragbook ask)")
    sv.add_argument("--token", help=f"the class token (default: ${TOKEN_ENV}, else a random one, printed)")
    sv.add_argument("--tokens", metavar="FILE", help="one 'label token' pair a line: a token per section or group")
    sv.add_argument("--open", action="store_true", help="no token needed: anyone who can reach the server can ask")
    sv.add_argument("--admin-token", help="the teacher's token for /stats (default: a random one, printed)")
    sv.add_argument("--parallel", type=int, help="answers written at once (default 1 for a local model, 8 for openai:)")
    sv.add_argument("--max-waiting", type=int, default=DEFAULT_MAX_WAITING,
                    help=f"questions in line before new ones get 429 (default {DEFAULT_MAX_WAITING})")
    sv.add_argument("--rate", default=DEFAULT_RATE,
                    help=f"questions per token, like 60/min or 500/hour; 0 for no limit (default {DEFAULT_RATE})")
    sv.add_argument("--max-question-chars", type=int, default=DEFAULT_MAX_QUESTION_CHARS,
                    help=f"longest question accepted (default {DEFAULT_MAX_QUESTION_CHARS})")
    sv.add_argument("--answer-timeout", type=float, default=DEFAULT_ANSWER_TIMEOUT,
                    help=f"seconds an answer may take once started (default {DEFAULT_ANSWER_TIMEOUT:g})")
    sv.add_argument("--log", metavar="FILE", help="write each question, its outcome and cited passages to this JSONL file")
    sv.add_argument("--cors", action="append", metavar="ORIGIN",
                    help="let pages from this origin call the API (repeatable; off by default)")


def server_config(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """:class:`ServerConfig`'s fields from the options (all but ``parallel``, which depends on the model), and
    the token to print in the link (a tokens file's are the teacher's to hand out)."""
    from ragbook.server.access import Tokens, new_token

    if args.open and (args.token or args.tokens):
        raise SettingsError("--open serves without a token: drop --token/--tokens, or drop --open")
    token: str | None = None
    if args.tokens:
        tokens, token = Tokens.from_file(args.tokens), "TOKEN"
    elif args.open:
        tokens = Tokens()
    else:
        token = args.token or os.environ.get(TOKEN_ENV) or new_token()
        tokens = Tokens({"class": token})
    config = dict(tokens=tokens, admin_token=args.admin_token or new_token(), open_access=args.open,
                  max_waiting=args.max_waiting, rate=args.rate, max_question_chars=args.max_question_chars,
                  answer_timeout=args.answer_timeout, log_path=args.log, cors_origins=tuple(args.cors or ()))
    return config, token


def banner(args: argparse.Namespace, assistant: Any, config: dict[str, Any], token: str | None) -> str:
    """What the teacher reads at start: the links to share, the stats page, the notebook and OpenAI settings."""
    parallel = config["parallel"]
    every_address = args.host in ("0.0.0.0", "::")
    base = f"http://{'127.0.0.1' if every_address else args.host}:{args.port}"
    lines = [f"ragbook serve: {assistant.name!r} ({assistant.llm_name}, {len(assistant.index):,} passages, "
             f"{parallel} answer{'s' if parallel != 1 else ''} at a time)",
             f"  students:        {base}/" + (f"#token={token}" if token else "  (open: no token)"),
             f"  teacher's stats: {base}/stats?token={config['admin_token']}",
             f"  notebooks:       ragbook.connect({base!r}" + (f", token={token!r})" if token else ")"),
             f"  OpenAI clients:  base_url={base}/v1  api_key={token or 'any'}"]
    if every_address:
        lines.append("  (listening on every address: share this machine's own name or address instead of 127.0.0.1)")
    if args.log:
        lines.append(f"  question log:    {args.log}")
    return "\n".join(lines)
