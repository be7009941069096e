"""LaTeX sources: the text a reader sees, sections as the heading path, math kept as its source.

A small single-pass converter rather than ``pylatexenc``: measured on a 400 KB paper, pylatexenc
(pure Python too) converted 68,000 characters a second, hit ``RecursionError`` at 500 nested
braces, crashed on ``\\href`` (IndexError) and turned every ``\\cite`` into ``<cit.>``.  This one
keeps no recursion (a brace stack, and closing positions found once per needle), so unbalanced
or deeply nested input costs linear time.

What becomes of the source:

- ``\\part`` ... ``\\subparagraph`` (starred too) give the section path; ``abstract`` is the
  section ``("Abstract",)``, ``thebibliography`` (and a ``\\bibliography`` compiled into the
  ``.bbl`` next to the file) ``("References",)``.  The preamble is not indexed.
- Math stays as its TeX source without delimiters (``$E=mc^2$`` -> ``E=mc^2``), lists become
  ``- item`` / ``1. item`` lines, tables rows of cells joined by `` | ``, figure captions
  lines; ``\\cite{a,b}`` -> ``[a, b]``, ``\\ref{sec:x}`` -> ``sec:x``; comments (``%`` but not
  ``\\%``) and unknown commands vanish, their brace arguments' text stays.
- ``\\input``/``\\include`` are followed inside the main file's folder only (``.tex`` added,
  at most :data:`MAX_INCLUDE_DEPTH` deep, cycles cut); a refused include is a warning.
- A file without ``\\documentclass`` that a main file nearby includes is skipped with the
  reason ``included by main.tex`` (its text is indexed as part of main.tex, once); pass
  ``latex_skip_included=False`` to index it on its own as well.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Any

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, max_bytes, read_limited
from ragbook.loaders.text import decode_text

__all__ = ["MAX_INCLUDE_DEPTH", "latex_to_text", "load_latex"]

MAX_INCLUDE_DEPTH = 16
_MAX_NESTING = 64  # open environments followed; deeper ones are read as plain text
_SIBLING_SCAN = 200  # .tex files looked at per folder when asking "does a main file include me?"

# an escaped character (\% or \\) is matched first and kept, so "\\%" still starts a comment
_COMMENT = re.compile(r"(\\.)|^[ \t]*%[^\n]*\n?|%[^\n]*", re.MULTILINE | re.DOTALL)
_INPUT = re.compile(r"\\(input|include|subfile)(?![A-Za-z@])\s*(?:\{([^{}\n]*)\}|([^\s{}\\%]+))")
_BIBLIOGRAPHY = re.compile(r"\\bibliography(?![A-Za-z@])\s*\{[^{}\n]*\}")
_TOKEN = re.compile(r"\\([A-Za-z@]+\*?)|\\(.)|(\$\$?)|(\n[ \t]*\n\s*)|([{}&~]|``|''|---|--)", re.DOTALL)
_BRACES = re.compile(r"\\.|[{}]", re.DOTALL)
_DOLLAR = re.compile(r"(?<!\\)\$")

_SECTIONS = {"part": 1, "chapter": 2, "section": 3, "subsection": 4, "subsubsection": 5, "paragraph": 6,
             "subparagraph": 7}
_CITES = frozenset({"cite", "citep", "citet", "citealp", "citealt", "citeauthor", "citeyear", "parencite",
                    "textcite", "autocite", "footcite", "supercite", "Cite", "Citep", "Citet", "cites"})
_REFS = frozenset({"ref", "autoref", "cref", "Cref", "pageref", "nameref", "vref", "Vref", "eqref", "hyperref"})
# commands dropped with this many brace arguments (optional [...] arguments around them too)
_DROP = {
    "label": 1, "includegraphics": 1, "vspace": 1, "hspace": 1, "bibliographystyle": 1, "bibliography": 1,
    "usepackage": 1, "RequirePackage": 1, "documentclass": 1, "setcounter": 2, "addtocounter": 2, "setlength": 2,
    "addtolength": 2, "thispagestyle": 1, "pagestyle": 1, "pagenumbering": 1, "addcontentsline": 3, "index": 1,
    "nocite": 1, "input": 1, "include": 1, "subfile": 1, "hyphenation": 1, "color": 1, "textcolor": 1,
    "colorbox": 1, "fontsize": 2, "graphicspath": 1, "definecolor": 3, "newtheorem": 2, "title": 1, "author": 1,
    "date": 1, "thanks": 1, "keywords": 0, "cline": 1, "cmidrule": 1, "multicolumn": 2, "multirow": 2,
    "href": 1, "rule": 2, "raisebox": 1, "resizebox": 2, "scalebox": 1, "enlargethispage": 1,
    "newenvironment": 3, "renewenvironment": 3, "DeclareMathOperator": 2, "IEEEauthorblockA": 1, "inst": 1,
    "orcid": 1, "email": 1, "affiliation": 1, "institute": 1, "acmConference": 1,
}
_SYMBOLS = {
    "LaTeX": "LaTeX", "TeX": "TeX", "LaTeXe": "LaTeX2e", "ldots": "…", "dots": "…", "textbackslash": "\\",
    "ss": "ß", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "aa": "å", "AA": "Å", "l": "ł", "L": "Ł", "i": "ı",
    "oe": "œ", "OE": "Œ", "S": "§", "P": "¶", "copyright": "©", "textregistered": "®", "texttrademark": "™",
    "euro": "€", "pounds": "£", "textendash": "–", "textemdash": "—", "textasciitilde": "~", "textunderscore": "_",
    "textbar": "|", "textless": "<", "textgreater": ">", "newline": "\n", "linebreak": "\n", "par": "\n\n",
    "quad": " ", "qquad": " ", "enspace": " ", "hfill": " ", "and": ",", "AND": ",", "And": ",", "today": "",
    "textdegree": "°", "times": "×", "dag": "†", "ddag": "‡", "slash": "/", "appendix": "\n\n",
}
_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
            ".": "\u0307", "c": "\u0327", "v": "\u030c", "u": "\u0306", "H": "\u030b", "r": "\u030a",
            "k": "\u0328", "d": "\u0323", "b": "\u0331"}
_MATH_ENVS = frozenset({"equation", "align", "gather", "multline", "eqnarray", "displaymath", "math", "flalign",
                        "alignat", "dmath", "split", "subequations"})
_VERBATIM_ENVS = frozenset({"verbatim", "Verbatim", "lstlisting", "minted", "alltt", "comment", "code"})
_LIST_ENVS = frozenset({"itemize", "enumerate", "description", "compactitem", "compactenum", "inparaenum"})
_TABLE_ENVS = {"tabular": 1, "tabular*": 2, "tabularx": 2, "tabulary": 2, "longtable": 1, "array": 1,
               "supertabular": 1, "xtabular": 1}
_THEOREMS = frozenset({"theorem", "lemma", "corollary", "proposition", "definition", "example", "remark",
                       "conjecture", "claim", "exercise", "problem", "solution", "note", "proof", "observation"})
_ENV_ARGS = {"minipage": 1, "multicols": 1, "wrapfigure": 2, "thebibliography": 1, "minted": 1}
_RULES = frozenset({"hline", "toprule", "midrule", "bottomrule", "endhead", "endfirsthead", "endfoot",
                    "endlastfoot", "centering", "raggedright", "raggedleft", "noindent", "maketitle",
                    "tableofcontents", "listoffigures", "listoftables", "newpage", "clearpage", "cleardoublepage",
                    "printbibliography", "nonumber", "notag", "small", "footnotesize", "large", "Large", "tiny"})
_LANGUAGES = {"english": "en", "british": "en-GB", "american": "en-US", "ngerman": "de", "german": "de",
              "french": "fr", "francais": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
              "brazil": "pt-BR", "brazilian": "pt-BR", "dutch": "nl", "russian": "ru", "polish": "pl",
              "swedish": "sv", "danish": "da", "norsk": "no", "finnish": "fi", "greek": "el", "czech": "cs",
              "catalan": "ca", "turkish": "tr", "ukrainian": "uk", "japanese": "ja", "chinese": "zh"}
_MONTHS = {m: i for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july", "august",
                                       "september", "october", "november", "december"), 1)}
_SPACES = re.compile(r"[ \t\u00a0]+")
_NEWLINE_SPACE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")


def strip_comments(text: str) -> str:
    """``text`` without ``%`` comments (``\\%`` is a percent sign); a line that is only a comment goes whole."""
    return _COMMENT.sub(lambda m: m.group(1) or "", text)


def _normalize(text: str) -> str:
    text = _NEWLINE_SPACE.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _accent(mark: str, arg: str) -> str:
    arg = arg.strip().lstrip("{").rstrip("}").strip()
    base, rest = (arg[1], arg[2:]) if arg[:2] in ("\\i", "\\j") else (arg[:1], arg[1:])
    if not base:
        return ""
    base = {"ı": "i", "ȷ": "j"}.get(base, base)
    return unicodedata.normalize("NFC", base + _ACCENTS[mark]) + rest


class _Converter:
    """One pass over LaTeX source: ``sections`` as ``[(section path, text)]``, in order."""

    def __init__(self, src: str, headings: bool = True) -> None:
        self.src = src
        self.headings = headings
        self.sections: list[tuple[tuple[str, ...], list[str]]] = [((), [])]
        self.path: list[tuple[int, str]] = []
        self.out = self.sections[0][1]
        self.envs: list[tuple[str, Any]] = []  # (name, state): a list counter, a saved section path...
        self.marks: list[tuple[str, int] | None] = []  # per open brace: (action, where its text starts)
        self.actions = 0  # marks with an action, open now
        self.match: dict[int, int] = {}  # position of "{" -> position of its "}"
        stack: list[int] = []
        for m in _BRACES.finditer(src):
            if m.group() == "{":
                stack.append(m.start())
            elif m.group() == "}" and stack:
                self.match[stack.pop()] = m.start()
        self.found: dict[str, tuple[int, int]] = {}  # needle -> (searched from, next position or -1)

    # -- finding things ahead, each needle scanned once ---------------------------------------------

    def _find(self, needle: str, pos: int) -> int:
        known = self.found.get(needle)
        if known is not None and known[0] <= pos and (known[1] < 0 or known[1] >= pos):
            return known[1]
        if needle == "$":
            m = _DOLLAR.search(self.src, pos)
            at = m.start() if m else -1
        else:
            at = self.src.find(needle, pos)
        self.found[needle] = (pos, at)
        return at

    def _space(self, pos: int) -> int:
        while pos < len(self.src) and self.src[pos] in " \t\n":
            pos += 1
        return pos

    def _group(self, pos: int) -> tuple[str, int] | None:
        """The raw text of a ``{...}`` argument at ``pos`` (spaces skipped) and the position after it."""
        start = self._space(pos)
        end = self.match.get(start)
        return (self.src[start + 1:end], end + 1) if end is not None else None

    def _option(self, pos: int) -> tuple[str, int] | None:
        """The raw text of a ``[...]`` argument right at ``pos``, and the position after it."""
        start = self._space(pos)
        if self.src[start:start + 1] != "[":
            return None
        end = self._find("]", start)
        if end < 0 or end - start > 2000 or "\n\n" in self.src[start:end]:
            return None
        return self.src[start + 1:end], end + 1

    def _skip(self, pos: int, groups: int) -> int:
        """Skip optional arguments and ``groups`` brace arguments."""
        while (opt := self._option(pos)) is not None:
            pos = opt[1]
        for _ in range(groups):
            group = self._group(pos)
            if group is None:
                break
            pos = group[1]
            while (opt := self._option(pos)) is not None:
                pos = opt[1]
        return pos

    # -- output ------------------------------------------------------------------------------

    def _section(self, path: tuple[str, ...], title: str = "") -> None:
        self.out = [title + "\n\n"] if title else []
        self.sections.append((path, self.out))

    def _inside(self, kinds: frozenset[str] | dict[str, int]) -> str | None:
        for name, _ in reversed(self.envs):
            if name in kinds:
                return name
            if name in _LIST_ENVS or name in _TABLE_ENVS:
                return None
        return None

    def _math(self, body: str, display: bool) -> None:
        body = re.sub(r"\\(?:label|tag)\s*\{[^{}]*\}|\\(?:nonumber|notag)(?![A-Za-z])", "", body)
        if display:
            lines = [" ".join(line.replace("&", " ").split()) for line in re.split(r"\\\\(?:\[[^\]]*\])?", body)]
            self.out.append("\n" + "\n".join(line for line in lines if line) + "\n")
        else:
            self.out.append(" ".join(body.split()))

    # -- the pass ----------------------------------------------------------------------------

    def run(self) -> list[tuple[tuple[str, ...], str]]:
        src, pos = self.src, 0
        while True:
            m = _TOKEN.search(src, pos)
            if m is None:
                self.out.append(src[pos:].replace("\n", " "))
                break
            if m.start() > pos:
                self.out.append(src[pos:m.start()].replace("\n", " "))
            pos = m.end()
            if m.group(1):
                pos = self._command(m.group(1), pos)
            elif m.group(2):
                pos = self._symbol(m.group(2), pos)
            elif m.group(3):
                pos = self._dollar(m.group(3), pos)
            elif m.group(4):
                self.out.append("\n\n")
            else:
                self._special(m.group(5), pos)
        return [(path, _normalize("".join(pieces))) for path, pieces in self.sections]

    def _special(self, token: str, pos: int) -> None:
        if token == "{":
            self.marks.append(None)
        elif token == "}":
            if self.marks and (mark := self.marks.pop()) is not None:
                self.actions -= 1
                self._close(*mark)
        elif token == "&":
            self.out.append(" | " if self._inside(_TABLE_ENVS) else " ")
        else:
            self.out.append({"~": " ", "``": '"', "''": '"', "---": "—", "--": "–"}[token])

    def _open(self, action: str, pos: int) -> int:
        """Consume the ``{`` at ``pos`` (after spaces); ``action`` is applied to its text at the ``}``."""
        start = self._space(pos)
        if start not in self.match:
            return pos
        # a footnote in a caption in a title is real; thousands deep would copy their text again at each level
        if self.actions < _MAX_NESTING:
            self.actions += 1
            self.marks.append((action, len(self.out)))
        else:
            self.marks.append(None)
        return start + 1

    def _close(self, action: str, at: int) -> None:
        text = "".join(self.out[at:])
        del self.out[at:]
        if action == "footnote":
            self.out.append(f" ({text.strip()})")
        elif action == "line":
            self.out.append(f"\n{text}\n")
        elif action.startswith("heading:"):
            level, title = int(action[8:]), " ".join(text.split())
            while self.path and self.path[-1][0] >= level:
                self.path.pop()
            self.path.append((level, title))
            self._section(tuple(t for _, t in self.path), title)

    def _symbol(self, char: str, pos: int) -> int:
        src = self.src
        if char == "\\":
            self.out.append("\n")
            return self._skip(pos + (src[pos:pos + 1] == "*"), 0)
        if char in "%&$#_{}":
            self.out.append(char)
        elif char in " \n\t":
            self.out.append(" ")
        elif char in "[(":
            close = self._find("\\]" if char == "[" else "\\)", pos)
            if close < 0:
                return pos
            self._math(src[pos:close], display=char == "[")
            return close + 2
        elif char in _ACCENTS:
            if src[pos:pos + 1] == "{" and pos in self.match:
                self.out.append(_accent(char, src[pos + 1:self.match[pos]]))
                return self.match[pos] + 1
            self.out.append(_accent(char, src[pos:pos + 2] if src[pos:pos + 2] in ("\\i", "\\j") else src[pos:pos + 1]))
            return pos + (2 if src[pos:pos + 2] in ("\\i", "\\j") else 1)
        elif char not in ",;:!>-/@":
            self.out.append(char)
        return pos

    def _dollar(self, token: str, pos: int) -> int:
        close = self._find(token if token == "$$" else "$", pos)
        if close < 0 or (token == "$" and close - pos > 5000):
            self.out.append(token)  # a lone dollar sign, as TeX would not have it either
            return pos
        self._math(self.src[pos:close], display=token == "$$")
        return close + len(token)

    def _command(self, name: str, pos: int) -> int:
        base = name.rstrip("*")
        if base == "begin":
            return self._begin(pos)
        if base == "end":
            group = self._group(pos)
            if group is None:
                return pos
            self._end(group[0].strip())
            return group[1]
        if base in _SECTIONS and self.headings:
            return self._open(f"heading:{_SECTIONS[base]}", self._skip(pos, 0))
        if base == "item":
            return self._item(pos)
        if base in _CITES or base in _REFS:
            return self._citation(base, pos)
        if base == "bibitem":
            return self._bibitem(pos)
        if base in ("url", "path", "nolinkurl"):
            return self._url(pos)
        if base == "verb":
            return self._verb(pos)
        if base == "footnote":
            return self._open("footnote", self._skip(pos, 0))
        if base in ("caption", "subcaption"):
            return self._open("line", self._skip(pos, 0))
        if base in _DROP:
            return self._skip(pos, _DROP[base])
        if base in ("newcommand", "renewcommand", "providecommand", "def", "gdef", "edef", "let"):
            return self._definition(base, pos)
        if base in _ACCENTS and len(base) == 1:
            group = self._group(pos)
            if group is not None:
                self.out.append(_accent(base, group[0]))
                return group[1]
        if name in _SYMBOLS:
            self.out.append(_SYMBOLS[name])
            return pos
        if base in _RULES:
            return pos
        # an unknown command: it vanishes, a [...] right after it too; its {...} text stays
        return self._skip(pos, 0) if self.src[pos:pos + 1] == "[" else pos

    def _item(self, pos: int) -> int:
        option = self._option(pos)
        label, pos = (option[0], option[1]) if option else ("", pos)
        kind = next((n for n, _ in reversed(self.envs) if n in _LIST_ENVS), "")
        depth = sum(n in _LIST_ENVS for n, _ in self.envs)
        if kind in ("enumerate", "compactenum", "inparaenum"):
            counter = next(state for n, state in reversed(self.envs) if n == kind)
            counter[0] += 1
            bullet = f"{counter[0]}. "
        else:
            bullet = "- "
        self.out.append("\n" + "  " * max(depth - 1, 0) + bullet + (f"{_Converter(label, False).text()} " if label else ""))
        return pos

    def _citation(self, base: str, pos: int) -> int:
        end = self._skip(pos, 0)
        group = self._group(end)
        if group is None:
            return end
        keys = ", ".join(k.strip() for k in group[0].split(",") if k.strip())
        self.out.append(f"[{keys}]" if base in _CITES else f"({keys})" if base == "eqref" else keys)
        return group[1]

    def _bibitem(self, pos: int) -> int:
        option = self._option(pos)
        group = self._group(option[1] if option else pos)
        if group is None:
            return pos
        self.out.append(f"\n[{group[0].strip()}] ")
        return group[1]

    def _url(self, pos: int) -> int:
        group = self._group(pos)
        if group is None:
            return pos
        self.out.append(group[0])
        return group[1]

    def _verb(self, pos: int) -> int:
        src = self.src
        delimiter = src[pos:pos + 1]
        close = src.find(delimiter, pos + 1, pos + 1000) if delimiter else -1
        if close < 0:
            return pos
        self.out.append(src[pos + 1:close])
        return close + 1

    def _definition(self, base: str, pos: int) -> int:
        src = self.src
        if base == "let":
            m = re.compile(r"\s*\\[A-Za-z@]+\s*=?\s*(?:\\[A-Za-z@]+|.)", re.DOTALL).match(src, pos)
            return m.end() if m else pos
        if base in ("newcommand", "renewcommand", "providecommand"):
            pos = self._space(pos + (src[pos:pos + 1] == "*"))
            if src[pos:pos + 1] == "{":
                group = self._group(pos)
                pos = group[1] if group else pos
            else:
                m = re.compile(r"\\[A-Za-z@]+|\\.").match(src, pos)
                pos = m.end() if m else pos
            return self._skip(pos, 1)
        # \def\name#1#2{body}: the parameter text runs up to the body's brace
        brace = src.find("{", pos, pos + 200)
        if brace < 0 or brace not in self.match:
            return pos
        return self.match[brace] + 1

    def _begin(self, pos: int) -> int:
        group = self._group(pos)
        if group is None:
            return pos
        name, pos = group[0].strip(), group[1]
        base = name.rstrip("*")
        if base in _MATH_ENVS or base in _VERBATIM_ENVS:
            needle = f"\\end{{{name}}}"
            close = self._find(needle, pos)
            if close < 0:
                close = len(self.src)
            if base in _MATH_ENVS:
                self._math(self.src[self._skip(pos, 1 if base == "alignat" else 0):close], display=True)
            elif base != "comment":
                start = self._skip(pos, _ENV_ARGS.get(base, 0))
                self.out.append("\n" + self.src[start:close].strip("\n") + "\n")
            return close + len(needle)
        state: Any = None
        if base == "abstract":
            state = tuple(t for _, t in self.path)
            self._section(("Abstract",))
        elif base == "thebibliography":
            state = tuple(t for _, t in self.path)
            self._section(("References",))
        elif base in _LIST_ENVS:
            state = [0]
        elif base in _THEOREMS:
            option = self._option(pos)
            label = name.capitalize() + (f" ({_Converter(option[0], False).text()})" if option else "")
            pos = option[1] if option else pos
            state = f"{label}. "
        if len(self.envs) < _MAX_NESTING:  # deeper than any real document: kept as plain text, in linear time
            self.envs.append((name, state))
        self.out.append("\n" + (state if base in _THEOREMS else ""))
        return self._skip(pos, _TABLE_ENVS.get(name, _ENV_ARGS.get(base, 0)))

    def _end(self, name: str) -> None:
        if not any(n == name for n, _ in self.envs):
            return  # an \end without its \begin
        while self.envs:
            env, state = self.envs.pop()
            if env == name:
                break
        if name in ("abstract", "thebibliography"):
            self._section(state)
        self.out.append("\n")

    def text(self) -> str:
        return " ".join(" ".join(text.split()) for _, text in self.run() if text)


def latex_to_text(source: str) -> list[tuple[tuple[str, ...], str]]:
    """LaTeX ``source`` (comments already removed) as ``[(section path, text)]`` in order, empty ones dropped."""
    return [(path, text) for path, text in _Converter(source).run() if text]


# --- includes -------------------------------------------------------------------------------


class _Includes:
    """Follows ``\\input``/``\\include`` from a main file, inside its folder only."""

    def __init__(self, main: Path, max_file_mb: float | None) -> None:
        self.main = main
        self.root = main.parent.resolve()
        self.max_file_mb = max_file_mb
        self.budget = max_bytes(max_file_mb) or 1 << 62  # characters of all included text together
        self.included: list[Path] = []
        self.warnings: list[str] = []

    def expand(self, text: str, stack: tuple[Path, ...]) -> str:
        text = _BIBLIOGRAPHY.sub(lambda m: self._bbl(stack) or "", text) if len(stack) == 1 else text
        pieces: list[str] = []
        pos = 0
        for m in _INPUT.finditer(text):
            pieces.append(text[pos:m.start()])
            pos = m.end()
            name = (m.group(2) if m.group(2) is not None else m.group(3)).strip()
            included = self._follow(f"\\{m.group(1)}{{{name}}}", name, stack)
            if included is not None:
                # \include starts a new page, \input is pasted in place (its last line ending is a space)
                pieces.append(f"\n\n{included}\n\n" if m.group(1) == "include" else f"{included.rstrip()} ")
        pieces.append(text[pos:])
        return "".join(pieces)

    def _bbl(self, stack: tuple[Path, ...]) -> str | None:
        # \bibliography{refs} prints the compiled .bbl (a thebibliography environment) in its place
        bbl = self.main.with_suffix(".bbl")
        if not bbl.is_file():
            return None
        return self._follow(f"the bibliography {bbl.name}", bbl.name, stack)

    def _follow(self, what: str, name: str, stack: tuple[Path, ...]) -> str | None:
        if not name:
            return None
        if os.path.isabs(name) or name.startswith("~") or re.match(r"^[A-Za-z]:", name):
            self.warnings.append(f"refused {what}: an absolute path; only files inside {self.root.name}/ are read")
            return None
        candidates = [name] if name.endswith((".tex", ".bbl", ".latex")) else [name + ".tex", name]
        target = next((self.root / c for c in candidates if (self.root / c).exists()), None)
        if target is None:
            self.warnings.append(f"{what}: file not found next to {self.main.name}; its text is missing")
            return None
        resolved = target.resolve()
        if not resolved.is_relative_to(self.root):
            self.warnings.append(f"refused {what}: it leads outside the folder of {self.main.name}")
            return None
        if resolved in stack:
            chain = " -> ".join(p.name for p in (*stack, resolved))
            self.warnings.append(f"include cycle ({chain}); not followed again")
            return None
        if len(stack) > MAX_INCLUDE_DEPTH:
            self.warnings.append(f"{what}: includes nested more than {MAX_INCLUDE_DEPTH} deep; not followed")
            return None
        try:
            text, notes = decode_text(read_limited(resolved, self.max_file_mb))
        except LoadError as exc:
            self.warnings.append(f"{what} skipped: {exc}")
            return None
        self.budget -= len(text)
        if self.budget < 0:
            self.warnings.append(f"{what} not followed: the included files together pass max_file_mb={self.max_file_mb}")
            return None
        self.warnings.extend(f"{target.name}: {note}" for note in notes)
        self.included.append(resolved)
        return self.expand(strip_comments(text), (*stack, resolved))


_INCLUDED_CACHE: dict[tuple[str, int, int], frozenset[Path]] = {}


def _includes_of(main: Path, max_file_mb: float | None) -> frozenset[Path]:
    """The files that ``main`` (a file with ``\\documentclass``) includes, or an empty set."""
    try:
        info = main.stat()
        key = (str(main), info.st_mtime_ns, info.st_size)
        if key in _INCLUDED_CACHE:
            return _INCLUDED_CACHE[key]
        text = strip_comments(decode_text(read_limited(main, max_file_mb))[0])
    except (LoadError, OSError):
        return frozenset()
    found: frozenset[Path] = frozenset()
    if "\\documentclass" in text:
        includes = _Includes(main, max_file_mb)
        includes.expand(text, (main.resolve(),))
        found = frozenset(includes.included)
    if len(_INCLUDED_CACHE) > 512:
        _INCLUDED_CACHE.clear()
    _INCLUDED_CACHE[key] = found
    return found


def _included_by(path: Path, max_file_mb: float | None) -> Path | None:
    """A main file in this folder or up to two above that includes ``path``, if any."""
    resolved = path.resolve()
    for folder in list(resolved.parents)[:3]:
        try:
            names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".tex", ".latex")))[:_SIBLING_SCAN]
        except OSError:
            continue
        for name in names:
            main = folder / name
            if main != resolved and resolved in _includes_of(main, max_file_mb):
                return main
    return None


# --- metadata -------------------------------------------------------------------------------


def _arguments(text: str, command: str) -> list[str]:
    """The raw brace argument of each ``\\command[...]{...}`` in ``text``."""
    out = []
    for m in re.finditer(rf"\\{command}(?![A-Za-z@])\s*(?:\[[^\]]*\]\s*)?\{{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth and i - m.end() < 20_000:
            depth += {"{": 1, "}": -1}.get(text[i], 0) if text[i - 1] != "\\" else 0
            i += 1
        if not depth:
            out.append(text[m.end():i - 1])
    return out


def _iso_date(text: str) -> str:
    text = " ".join(text.replace(",", " ").split())
    if m := re.fullmatch(r"(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?", text):
        return "-".join(f"{int(g):02d}" if i else g for i, g in enumerate(m.groups()) if g)
    words = text.lower().split()
    year = next((w for w in words if re.fullmatch(r"\d{4}", w)), None)
    month = next((_MONTHS[w] for w in words if w in _MONTHS), None)
    day = next((int(w) for w in words if re.fullmatch(r"\d{1,2}", w)), None)
    if year and month:
        return f"{year}-{month:02d}" + (f"-{day:02d}" if day else "")
    return text


def _metadata(text: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if titles := _arguments(text, "title"):
        meta["title"] = _Converter(titles[0], False).text()
    authors: list[str] = []
    for raw in _arguments(text, "author"):
        for part in re.split(r"\\(?:and|AND|And)(?![A-Za-z])", raw):
            lines = [line.strip() for line in "\n".join(
                t for _, t in _Converter(part, False).run()).split("\n") if line.strip()]
            # footnote marks after a name: $^{1}$, $^*$, \textsuperscript{a,b}, 1,2
            name = re.sub(r"(?:\^\{?[\w,*†‡∗ ]*\}?|[\s\d,*†‡∗])+$", "", lines[0]) if lines else ""
            if name:
                authors.append(name)
    if authors:
        meta["authors"] = list(dict.fromkeys(authors))
    dates = _arguments(text, "date")
    if dates and (date := _Converter(dates[0], False).text()):
        meta["date"] = _iso_date(date)
    babel = re.search(r"\\usepackage\s*\[([^\]]*)\]\s*\{babel\}", text)
    language = (babel.group(1).split(",")[-1].strip().split("=")[-1] if babel else "")
    poly = re.search(r"\\setmainlanguage\s*(?:\[[^\]]*\])?\s*\{(\w+)\}", text)
    language = poly.group(1) if poly else language
    if language.lower() in _LANGUAGES:
        meta["language"] = _LANGUAGES[language.lower()]
    return meta


# --- the loader ------------------------------------------------------------------------------


def load_latex(path: Path, **options: Any) -> Document:
    """A LaTeX file (and what it includes) as text with one segment per section."""
    max_mb = options.get("max_file_mb", DEFAULT_MAX_FILE_MB)
    raw, warnings = decode_text(read_limited(path, max_mb))
    if not raw.strip():
        raise LoadError("empty file")
    source = strip_comments(raw)
    if "\\documentclass" not in source and options.get("latex_skip_included", True):
        main = _included_by(path, max_mb)
        if main is not None:
            shown = os.path.relpath(main, path.resolve().parent)
            raise LoadError(f"included by {shown}: indexed as part of it, not twice "
                            "(pass latex_skip_included=False to index this file on its own as well)")
    includes = _Includes(path, max_mb)
    source = includes.expand(source, (path.resolve(),))
    warnings.extend(includes.warnings)
    meta = _metadata(source)
    begin = re.search(r"\\begin\s*\{document\}", source)
    body = source[begin.end():] if begin else source
    end = re.search(r"\\end\s*\{document\}", body)
    body = body[:end.start()] if end else body

    pieces: list[str] = []
    segments: list[Segment] = []
    offset = 0
    for section, text in latex_to_text(body):
        if pieces:
            pieces.append("\n\n")
            offset += 2
        pieces.append(text)
        segments.append(Segment(offset, offset + len(text), section=section))
        offset += len(text)
    if not pieces:
        raise LoadError("no text found in the LaTeX file (only a preamble or commands?)")
    headed = (s.section[-1] for s in segments if s.section and s.section[0] not in ("Abstract", "References"))
    title = meta.pop("title", "") or next(headed, "")
    metadata: dict[str, Any] = {"format": "latex", **meta}
    if includes.included:
        root = path.resolve().parent
        metadata["included"] = [p.relative_to(root).as_posix() for p in includes.included]
    return Document(text="".join(pieces), source=path.name, title=title, segments=segments,
                    metadata=metadata, warnings=warnings)
