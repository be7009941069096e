"""Builder panel: pick files (upload, or a path or glob), chunking and model; build or update an index."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import ipywidgets as w

from ragbook._display import html_escape, html_table
from ragbook._files import atomic_write
from ragbook.errors import NotFoundError, SettingsError
from ragbook.widgets._common import Panel, card, guarded, inside, safe_filename

__all__ = ["Builder"]

MAX_UPLOAD_MB = 200


class Builder(Panel):
    """Build an index from uploaded files and/or a folder, file or glob; update it incrementally.

    ``builder.index`` is the index built (or the one given); ``on_build(fn)`` calls ``fn(index)``
    after every build or update.  Uploads are saved under ``upload_dir`` with sanitised names.
    """

    title = "Build"

    def __init__(self, index: Any = None, *, paths: str = "", out: str | os.PathLike[str] | None = None,
                 upload_dir: str | os.PathLike[str] | None = None, embedding_model: str | None = None,
                 model: str | None = None) -> None:
        from ragbook._compat import renamed
        from ragbook.chunking import DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP
        from ragbook.embedding import DEFAULT_MODEL
        from ragbook.loaders import extensions

        model = renamed(embedding_model, model, "model", "embedding_model", "Builder()")
        self.index = index
        self.upload_dir = Path(upload_dir) if upload_dir else Path(tempfile.mkdtemp(prefix="ragbook-uploads-"))
        self.uploaded: list[Path] = []
        self._listeners: list[Callable[[Any], None]] = []
        roots = ", ".join(index.roots) if index is not None and getattr(index, "roots", None) else ""
        self.upload = w.FileUpload(accept=",".join(extensions()), multiple=True, description="Upload files")
        self.paths = w.Text(value=paths or roots, placeholder="a folder, a file or a glob like notes/**/*.md; several: a, b",
                            description="Files", layout=w.Layout(width="95%"))
        self.chunk_size = w.BoundedIntText(value=getattr(index, "chunk_size", DEFAULT_CHUNK_SIZE), min=16, max=4096,
                                           step=16, description="Chunk size", tooltip="in the model's tokens")
        self.overlap = w.BoundedIntText(value=getattr(index, "overlap", DEFAULT_OVERLAP), min=0, max=1024, step=8,
                                        description="Overlap")
        current = getattr(getattr(index, "embedder", None), "name", None)
        self.model = w.Text(value=model or current or DEFAULT_MODEL, description="Embedding model",
                            style={"description_width": "initial"}, layout=w.Layout(width="60%"))
        self.out = w.Text(value=str(out or getattr(index, "path", "") or ""),
                          placeholder="folder to save the index in (optional)",
                          description="Save to", layout=w.Layout(width="95%"))
        self.build_button = w.Button(description="Build", button_style="primary", icon="cogs",
                                     tooltip="index these files from scratch with these settings")
        self.update_button = w.Button(description="Update", icon="refresh",
                                      tooltip="re-read changed files only, keep everything else")
        self.bar = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="60%", visibility="hidden"))
        self.bar_label = w.Label()
        self.uploads = w.HTML()
        self.report = w.HTML()
        self.stats = w.HTML()
        self.upload.observe(self._on_upload, names="value")
        self.build_button.on_click(self._on_build)
        self.update_button.on_click(self._on_update)
        super().__init__([
            w.HBox([self.upload, self.uploads]), self.paths,
            w.HBox([self.chunk_size, self.overlap]), self.model, self.out,
            w.HBox([self.build_button, self.update_button]), w.HBox([self.bar, self.bar_label]),
            self.report, self.stats,
        ])
        self._show_stats()

    def on_build(self, fn: Callable[[Any], None]) -> None:
        self._listeners.append(fn)

    # -- uploads -------------------------------------------------------------------------------

    @guarded
    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"] or ()
        if not files:
            return
        self.save_uploads(files)

    def save_uploads(self, files: Any) -> list[Path]:
        """Write uploaded files (FileUpload's value) into the upload folder; bad ones are reported."""
        from ragbook.loaders import loader_for

        saved, problems = [], []
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        for item in files:
            raw_name = item.get("name", "") if isinstance(item, dict) else getattr(item, "name", "")
            content = item.get("content", b"") if isinstance(item, dict) else getattr(item, "content", b"")
            try:
                name = safe_filename(raw_name)
                target = inside(self.upload_dir, name)
                if loader_for(target) is None:
                    raise SettingsError(f"{name}: ragbook cannot read this kind of file (it reads PDF, Markdown, text, "
                                     "HTML and notebooks)")
                data = bytes(content)
                if not data:
                    raise SettingsError(f"{name}: the file is empty")
                if len(data) > MAX_UPLOAD_MB * 2**20:
                    raise SettingsError(f"{name}: larger than {MAX_UPLOAD_MB} MB; index it from a path instead")
                with atomic_write(target) as f:
                    f.write(data)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if target not in self.uploaded:
                self.uploaded.append(target)
            saved.append(target)
        rows = "".join(f"<li>{html_escape(p.name)}</li>" for p in self.uploaded)
        self.uploads.value = f"<small>uploaded:</small><ul style='margin:0'>{rows}</ul>" if rows else ""
        if problems:
            self.fail(ValueError("some uploads were refused:\n" + "\n".join(problems)))
        else:
            self.say(f"{len(saved)} file(s) uploaded; press Build or Update to index them")
        return saved

    # -- building ------------------------------------------------------------------------------

    def _targets(self) -> list[str]:
        targets = [p.strip() for p in self.paths.value.split(",") if p.strip()]
        for t in targets:
            if not glob.has_magic(t) and not Path(t).expanduser().exists():
                raise NotFoundError(f"{t} does not exist; give a folder, a file or a glob (relative to {os.getcwd()})")
        if self.uploaded:
            targets.append(str(self.upload_dir))
        if not targets:
            raise SettingsError("nothing to index: upload files or type a folder, file or glob under Files")
        return targets

    def _progress(self, what: str, done: int, total: int | None) -> None:
        self.bar.layout.visibility = "visible"
        self.bar.max = max(total or 1, 1)
        self.bar.value = min(done, self.bar.max)
        self.bar_label.value = f"{what}: {done}/{total}" if total else f"{what}: {done}"

    def _run(self, build: Callable[[], Any], verb: str) -> Any:
        from ragbook.progress import report_to

        self.build_button.disabled = self.update_button.disabled = True
        self.say(f"{verb}...", busy=True)
        try:
            with report_to(self._progress):
                report = build()
        finally:
            self.build_button.disabled = self.update_button.disabled = False
            self.bar.layout.visibility = "hidden"
            self.bar_label.value = ""
        if self.out.value.strip():
            self.index.save(self.out.value.strip())
        self.report.value = report._repr_html_()
        self._show_stats()
        saved = f"; saved to {self.out.value.strip()}" if self.out.value.strip() else ""
        self.say(f"{verb} done: {report.summary()}{saved}")
        for fn in self._listeners:
            fn(self.index)
        return report

    @guarded
    def _on_build(self, _button: Any = None) -> Any:
        from ragbook.index import Index

        targets = self._targets()
        model = self.model.value.strip() or None
        old = self.index
        same_model = old is not None and model in (None, getattr(old.embedder, "name", None))
        index = Index(old.embedder if same_model else model, chunk_size=self.chunk_size.value, overlap=self.overlap.value)

        def build() -> Any:
            return index.add(targets)

        self.index = index
        try:
            return self._run(build, "Building")
        except BaseException:
            self.index = old  # a failed build leaves the previous index in place
            raise

    @guarded
    def _on_update(self, _button: Any = None) -> Any:
        if self.index is None or not len(self.index):
            return self._on_build()
        if (self.chunk_size.value, self.overlap.value) != (self.index.chunk_size, self.index.overlap):
            raise SettingsError("the chunk settings changed: press Build to re-index everything with them "
                             f"(the index uses {self.index.chunk_size}/{self.index.overlap})")
        targets = self._targets()
        return self._run(lambda: self.index.add(targets), "Updating")

    def _show_stats(self) -> None:
        if self.index is None:
            self.stats.value = "<small>no index yet</small>"
            return
        s = self.index.stats()
        rows = [["files", s["files"]], ["documents", s["documents"]], ["chunks", f"{s['chunks']:,}"],
                ["distinct passages", f"{s['unique_chunks']:,}"], ["vector index", s["index_type"]],
                ["chunk size / overlap", f"{self.index.chunk_size} / {self.index.overlap} tokens"],
                ["embedding model", getattr(self.index.embedder, "name", "?")]]
        self.stats.value = card("Index", html_table(["", ""], rows))

    def __repr__(self) -> str:
        n = len(self.index) if self.index is not None else 0
        return f"Builder(paths={self.paths.value!r}, chunks={n}, uploaded={len(self.uploaded)})"
