"""LaTeX loader: real .tex files written here (a paper, a multi-file book, hostile includes and input)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import one, write

from ragbook.documents import Document, LoadError
from ragbook.loaders import load, load_file
from ragbook.loaders.latex import MAX_INCLUDE_DEPTH, latex_to_text, strip_comments

PAPER = r"""\documentclass[11pt]{article}
\usepackage[T1]{fontenc}
\usepackage[ngerman,british]{babel}
\newcommand{\R}{\mathbb{R}}
\newcommand{\secretmacro}{PREAMBLE-ONLY TEXT}
\title{Retrieval for \LaTeX{} Papers\thanks{Funded by nobody.}}
\author{Ada Lovelace\\ Analytical Engines Ltd \and Kurt G\"odel$^{1}$ \and Paul Erd\H{o}s}
\date{March 4, 2021}
% \input{secret}
\begin{document}
\maketitle
\begin{abstract}
We show that $E=mc^2$ holds for 50\% of retrievers. % a comment that must vanish
\end{abstract}
\section{Introduction}\label{sec:intro}
Retrieval~\cite{knuth84, lamport94} is old; see Section~\ref{sec:method} and Eq.~\eqref{eq:1}.
A footnote\footnote{With \emph{emphasis}.} here, \href{http://x.org}{our site} and \url{http://y.org/a_b}.
\subsection*{Lists}
\begin{itemize}
  \item First point
  \item[Note:] Second point
\end{itemize}
\begin{enumerate}\item one \item two\end{enumerate}
\section{Method}
\begin{equation}\label{eq:1}
  \sum_{i=1}^{n} x_i = \frac{1}{2}
\end{equation}
\begin{table}[h]\centering
\begin{tabular}{|l|r|}\hline
Model & Score \\ \hline
BM25 & 0.71 \\
Dense & 0.78 \\ \hline
\end{tabular}
\caption{Scores of two models.}\label{tab:1}
\end{table}
\begin{figure}[t]\includegraphics[width=0.5\textwidth]{plot.pdf}\caption[short]{A plot of recall.}\end{figure}
\begin{theorem}[Main] Every $x \in \R$ is real. \end{theorem}
``Quoted'' text --- with dashes -- and \verb|code_here|.
\begin{thebibliography}{9}
\bibitem{knuth84} D. Knuth. \emph{The \TeX book}. 1984.
\bibitem[Lam94]{lamport94} L. Lamport. LaTeX. 1994.
\end{thebibliography}
\end{document}
"""


def sections(doc: Document) -> dict[tuple[str, ...], str]:
    previous = 0
    for seg in doc.segments:
        assert previous <= seg.start < seg.end <= len(doc.text) and doc.text[seg.start:seg.end].strip()
        previous = seg.end
    json.dumps(doc.metadata)
    return {s.section: doc.text[s.start:s.end] for s in doc.segments}


def test_paper_metadata_sections_and_text(tmp_path):
    doc = one(write(tmp_path / "paper.tex", PAPER))
    assert doc.title == "Retrieval for LaTeX Papers"
    assert doc.metadata["authors"] == ["Ada Lovelace", "Kurt Gödel", "Paul Erdős"]
    assert (doc.metadata["date"], doc.metadata["language"], doc.metadata["format"]) == ("2021-03-04", "en-GB", "latex")
    found = sections(doc)
    assert list(found) == [("Abstract",), ("Introduction",), ("Introduction", "Lists"), ("Method",), ("References",)]
    assert found[("Abstract",)] == "We show that E=mc^2 holds for 50% of retrievers."
    assert found[("Introduction",)] == (
        "Introduction\n\nRetrieval [knuth84, lamport94] is old; see Section sec:method and Eq. (eq:1). "
        "A footnote (With emphasis.) here, our site and http://y.org/a_b.")
    assert found[("Introduction", "Lists")] == "Lists\n\n- First point\n- Note: Second point\n\n1. one\n2. two"
    method = found[("Method",)]
    assert "\\sum_{i=1}^{n} x_i = \\frac{1}{2}" in method  # math kept as its source, delimiters gone
    assert "Model | Score\nBM25 | 0.71\nDense | 0.78" in method
    assert "Scores of two models." in method and "A plot of recall." in method
    assert "Theorem (Main). Every x \\in \\R is real." in method
    assert '"Quoted" text — with dashes – and code_here.' in method
    assert found[("References",)] == "[knuth84] D. Knuth. The TeX book. 1984.\n[lamport94] L. Lamport. LaTeX. 1994."
    # the preamble, comments and layout commands are not text
    for absent in ("PREAMBLE-ONLY", "fontenc", "comment that", "secret", "plot.pdf", "width", "tab:1", "\\label",
                   "hline", "|l|r|", "Funded"):
        assert absent not in doc.text


def test_comments_but_not_escaped_percent_are_removed():
    source = "100\\% sure % not this\n% a whole comment line\nnext line\\\\% after a line break\nlast"
    assert strip_comments(source) == "100\\% sure \nnext line\\\\\nlast"
    (only,) = latex_to_text(strip_comments(source))
    assert only == ((), "100% sure next line\nlast")


def test_book_follows_includes_and_the_parts_are_not_indexed_twice(tmp_path):
    folder = tmp_path / "book"
    write(folder / "main.tex", "\\documentclass{book}\n\\title{The Loop Book}\n\\begin{document}\n"
                               "\\include{chapters/loops}\n\\input{chapters/functions.tex}\n\\end{document}\n")
    write(folder / "chapters" / "loops.tex", "\\chapter{Loops}\nLoops repeat.\n\\section{For}\n"
                                             "A for loop walks a sequence.\n\\input{chapters/snippet}\n")
    write(folder / "chapters" / "snippet.tex", "\\subsection{Range}\nrange(3) counts to two.\n")
    write(folder / "chapters" / "functions.tex", "\\chapter{Functions}\nFunctions name code.\n")
    doc = one(folder / "main.tex")
    assert doc.title == "The Loop Book"
    assert sections(doc) == {
        ("Loops",): "Loops\n\nLoops repeat.", ("Loops", "For"): "For\n\nA for loop walks a sequence.",
        ("Loops", "For", "Range"): "Range\n\nrange(3) counts to two.",
        ("Functions",): "Functions\n\nFunctions name code."}
    assert doc.metadata["included"] == ["chapters/loops.tex", "chapters/snippet.tex", "chapters/functions.tex"]

    loaded = load(folder)
    assert [Path(d.source).name for d in loaded] == ["main.tex"]
    skipped = {Path(p.source).name: p.reason for p in loaded.errors}
    assert set(skipped) == {"loops.tex", "snippet.tex", "functions.tex"}
    assert skipped["loops.tex"].startswith("included by ../main.tex")
    # asked for on its own, a part loads when the caller says so
    alone = one(folder / "chapters" / "functions.tex", latex_skip_included=False)
    assert alone.title == "Functions" and "Functions name code." in alone.text
    # a file that no main file includes is an ordinary document
    write(folder / "notes.tex", "\\section{Loose notes}\nNot included anywhere.\n")
    assert one(folder / "notes.tex").title == "Loose notes"


def test_include_cycles_and_depth_are_cut_with_a_warning(tmp_path):
    write(tmp_path / "a.tex", "\\documentclass{article}\\begin{document}Alpha text.\n\\input{b}\n\\end{document}")
    write(tmp_path / "b.tex", "Beta text.\n\\input{a}\n\\input{b}\n")
    doc = one(tmp_path / "a.tex")
    assert doc.text == "Alpha text. Beta text."
    assert sorted(w for w in doc.warnings if "cycle" in w) == [
        "include cycle (a.tex -> b.tex -> a.tex); not followed again",
        "include cycle (a.tex -> b.tex -> b.tex); not followed again"]

    deep = tmp_path / "deep"
    write(deep / "main.tex", "\\documentclass{article}\\begin{document}level main \\input{f1}\\end{document}")
    for i in range(1, 30):
        write(deep / f"f{i}.tex", f"level{i} \\input{{f{i + 1}}}")
    doc = one(deep / "main.tex")
    assert f"level{MAX_INCLUDE_DEPTH}" in doc.text and f"level{MAX_INCLUDE_DEPTH + 2}" not in doc.text
    assert any(f"more than {MAX_INCLUDE_DEPTH} deep" in w for w in doc.warnings)


def test_includes_never_leave_the_folder(tmp_path):
    write(tmp_path / "secret.tex", "TOPSECRET outside the project")
    project = tmp_path / "project"
    os.symlink(tmp_path / "secret.tex", write(project / "x", "").parent / "link.tex")
    os.symlink(tmp_path, project / "up")
    write(project / "main.tex", "\\documentclass{article}\\begin{document}Kept text.\n"
                                "\\input{../secret}\n\\input{/etc/passwd}\n\\include{~/secret}\n\\input{link}\n"
                                "\\input{up/secret}\n\\input{missing}\n\\input{C:/Windows/win.ini}\n\\end{document}")
    doc = one(project / "main.tex")
    assert doc.text == "Kept text." and "TOPSECRET" not in doc.text and "root:" not in doc.text
    reasons = "\n".join(doc.warnings)
    assert reasons.count("leads outside the folder") == 3  # ../secret, the link, the linked folder
    assert reasons.count("an absolute path") == 3  # /etc/passwd, ~/secret, C:/...
    assert "\\input{missing}: file not found" in reasons


def test_an_include_that_is_not_text_is_a_warning(tmp_path):
    write(tmp_path / "main.tex", "\\documentclass{article}\\begin{document}Body.\\input{blob}\\end{document}")
    write(tmp_path / "blob.tex", b"\x00\x01\x02 binary" * 100)
    doc = one(tmp_path / "main.tex")
    assert doc.text == "Body." and any("\\input{blob} skipped: binary data" in w for w in doc.warnings)


def test_bibliography_comes_from_the_compiled_bbl(tmp_path):
    write(tmp_path / "paper.tex", "\\documentclass{article}\\begin{document}\\section{Intro}See \\cite{k}.\n"
                                  "\\bibliographystyle{plain}\\bibliography{refs}\\end{document}")
    write(tmp_path / "paper.bbl", "\\begin{thebibliography}{1}\n\\bibitem{k}\nD.~Knuth.\n\\newblock The Art.\n"
                                  "\\end{thebibliography}\n")
    found = sections(one(tmp_path / "paper.tex"))
    assert found[("References",)] == "[k] D. Knuth. The Art."
    assert found[("Intro",)] == "Intro\n\nSee [k]."


def test_encodings_empty_and_preamble_only_files(tmp_path):
    legacy = write(tmp_path / "legacy.tex", "\\section{Caf\u00e9}Cr\u00e8me br\u00fbl\u00e9e.".encode("cp1252"))
    doc = one(legacy)
    assert doc.text == "Café\n\nCrème brûlée." and any("Windows-1252" in w for w in doc.warnings)
    with pytest.raises(LoadError, match="empty file"):
        load_file(write(tmp_path / "empty.tex", ""))
    with pytest.raises(LoadError, match="empty file"):
        load_file(write(tmp_path / "blank.tex", "\n  \n"))
    with pytest.raises(LoadError, match="no text found"):
        load_file(write(tmp_path / "pre.tex", "\\documentclass{article}\\usepackage{x}\\begin{document}"
                                               "\\maketitle\\end{document}"))
    with pytest.raises(LoadError, match="binary data"):
        load_file(write(tmp_path / "bin.tex", b"\x00\x01\x02 binary \x00\x03" * 200))


@pytest.mark.parametrize("source, expected", [
    ("{" * 100_000 + "deep" + "}" * 100_000, "deep"),
    ("{{{ unbalanced \\textbf{bold", "unbalanced bold"),
    ("}}} closing } only", "closing only"),
    ("\\begin{itemize}\\item never closed", "- never closed"),
    ("\\end{itemize} stray end", "stray end"),
    ("price $5 and no closing dollar", "price $5 and no closing dollar"),
    # nested actions past 64 deep are read as plain text (their text once, not copied at every level)
    ("\\footnote{" * 5000 + "note" + "}" * 5000, "(" * 64 + "note" + ")" * 64),
    ("\\begin{enumerate}" * 3000 + "\\item x" * 3, "1. x\n2. x\n3. x"),
    ("\\section{" * 3000 + "title", "title"),
])
def test_pathological_input_is_linear_and_keeps_the_text(source, expected):
    started = time.perf_counter()
    text = "\n\n".join(t for _, t in latex_to_text(source))
    assert time.perf_counter() - started < 5
    assert text == expected


def test_throughput_of_a_one_megabyte_paper(tmp_path):
    paragraph = ("We study \\emph{retrieval} with $E=mc^2$ and claims~\\cite{knuth84}; see Section~\\ref{sec:a} "
                 "for $\\sum_{i=1}^n x_i \\le \\alpha$. 50\\% of words are plain text, as in a paper. % note\n")
    body = "".join(f"\\section{{Part {i}}}\n" + paragraph * 25 + "\\begin{itemize}\\item a\\item b\\end{itemize}\n"
                   "\\begin{tabular}{ll} x & y \\\\ z & w \\end{tabular}\n" for i in range(220))
    path = write(tmp_path / "big.tex", "\\documentclass{article}\\begin{document}\n" + body + "\\end{document}\n")
    size = path.stat().st_size
    assert size > 1_000_000
    started = time.perf_counter()
    doc = one(path)
    seconds = time.perf_counter() - started
    assert len(doc.segments) == 220 and doc.segments[-1].section == ("Part 219",)
    assert "x | y\nz | w" in doc.text
    print(f"\nLaTeX: {size:,} source chars in {seconds:.2f}s: {size / seconds:,.0f} chars/s")
    assert seconds < 30
