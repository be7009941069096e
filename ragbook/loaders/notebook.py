"""Jupyter notebooks (nbformat 3 and 4) read as plain JSON, one segment per cell.

Headings in Markdown cells give the following cells their section, so an answer can cite
"lab2.ipynb, cell 7 > Loops".  Outputs are left out unless asked for, and images never
make it into the text: a base64 PNG is noise to a retriever.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ragbook.documents import Document, LoadError, Segment
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited
from ragbook.loaders.text import decode_text, markdown_headings

__all__ = ["load_notebook"]

_MAX_OUTPUT_CHARS = 2000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_DEFAULT_REPR = re.compile(r"^<[\w.]+(?: object)? at 0x[0-9a-fA-F]+>$")


def _join(source: Any) -> str:
    """Cell sources and output texts are a string or a list of lines."""
    if isinstance(source, list):
        return "".join(str(part) for part in source)
    return source if isinstance(source, str) else ""


def _terminal_text(text: str) -> str:
    """What a terminal would show: colours dropped, ``\\r``-redrawn progress bars collapsed."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _output_texts(outputs: Any) -> list[str]:
    texts: list[str] = []
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, dict):
            continue
        kind = output.get("output_type")
        data = output.get("data")
        if not isinstance(data, dict):
            data = output  # v3 puts the mime types on the output itself
        if kind == "stream":
            text = _join(output.get("text"))
        elif kind == "error" or kind == "pyerr":
            text = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
        elif "application/vnd.jupyter.widget-view+json" in data:
            continue  # its text/plain is a repr of the widget, not content
        else:
            text = _join(data.get("text/plain", data.get("text")))
            if _DEFAULT_REPR.match(text.strip()):
                continue
        text = _terminal_text(text).strip()
        if len(text) > _MAX_OUTPUT_CHARS:
            text = text[:_MAX_OUTPUT_CHARS] + " [output truncated]"
        if text:
            texts.append(text)
    return texts


def _cells(notebook: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The cells in nbformat-4 shape (``cell_type``, ``source``, ``outputs``) and the language."""
    version = notebook.get("nbformat")
    meta = notebook.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    language = (meta.get("language_info") or {}).get("name") or (meta.get("kernelspec") or {}).get("language") or ""
    if version == 4 or (version is None and isinstance(notebook.get("cells"), list)):
        cells = notebook.get("cells")
        if not isinstance(cells, list):
            raise LoadError("not a Jupyter notebook (no 'cells' list)")
        return [c for c in cells if isinstance(c, dict)], language
    if version == 3:
        cells = []
        for sheet in notebook.get("worksheets") or []:
            for cell in (sheet.get("cells") or []) if isinstance(sheet, dict) else []:
                if not isinstance(cell, dict):
                    continue
                kind = cell.get("cell_type")
                if kind == "heading":
                    level = cell.get("level")
                    if not isinstance(level, int):
                        level = 1
                    text = " ".join(_join(cell.get("source")).split())
                    cells.append({"cell_type": "markdown", "source": f"{'#' * min(max(level, 1), 6)} {text}"})
                elif kind == "code":
                    language = language or cell.get("language") or ""
                    cells.append({"cell_type": "code", "source": cell.get("input"), "outputs": cell.get("outputs")})
                else:
                    cells.append(cell)
        return cells, language
    raise LoadError(f"unsupported nbformat {version}; open and re-save it in a current Jupyter")


def load_notebook(path: Path, **options: Any) -> Document:
    """A notebook's Markdown and code cells; ``notebook_outputs=True`` adds text outputs."""
    raw, warnings = decode_text(read_limited(path, options.get("max_file_mb", DEFAULT_MAX_FILE_MB)))
    try:
        notebook = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LoadError(f"not a Jupyter notebook (invalid JSON at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(notebook, dict):
        raise LoadError("not a Jupyter notebook (the JSON is not an object)")
    cells, language = _cells(notebook)
    with_outputs = bool(options.get("notebook_outputs", False))

    parts: list[str] = []
    segments: list[Segment] = []
    path_stack: list[tuple[int, str]] = []
    title = ""
    offset = 0
    for number, cell in enumerate(cells, start=1):
        kind = cell.get("cell_type")
        if kind not in ("markdown", "code"):
            continue  # raw cells hold export directives, not prose
        text = _join(cell.get("source")).strip()
        headings = markdown_headings(text) if kind == "markdown" else []
        if with_outputs and kind == "code":
            text = "\n".join([text, *_output_texts(cell.get("outputs"))]).strip()
        if not text:
            continue
        # A cell that opens with a heading belongs under it; later headings in the cell
        # only move the path for the cells that follow.
        section = tuple(t for _, t in path_stack)
        for index, (start, level, heading) in enumerate(headings):
            while path_stack and path_stack[-1][0] >= level:
                path_stack.pop()
            path_stack.append((level, heading))
            if index == 0 and not text[:start].strip():
                section = tuple(t for _, t in path_stack)
            if level == 1 and not title:
                title = heading
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(text)
        segments.append(Segment(offset, offset + len(text), cell=number, section=section))
        offset += len(text)

    if not segments:
        raise LoadError("empty notebook: no cell has any text")
    meta = notebook.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    title = title or str(meta.get("title") or meta.get("name") or "").strip() or path.stem
    metadata: dict[str, Any] = {"format": "notebook", "cells": len(cells), "nbformat": notebook.get("nbformat")}
    if language:
        metadata["kernel"] = str(language)
    return Document(text="".join(parts), source=path.name, title=title, segments=segments,
                    metadata=metadata, warnings=warnings)
