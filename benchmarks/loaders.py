"""Loading throughput per format, against the time to embed the same text in the same run.

    python benchmarks/loaders.py            # -> benchmarks/results/loaders.json
    python benchmarks/loaders.py --quick    # small files only (smoke run) -> loaders-quick.json

Per sample file: ``ragbook.loaders.load_file`` (median of 3 runs, fewer when one run of a big
file already took over a minute), its units (pages of a PDF, slides of a deck, chapters of an
EPUB, segments otherwise) and characters; then the documents are chunked with the index's
chunker and their passages embedded once with the index's embedder (model loaded and warmed up
first).  The figure that matters is the load share ``load / (load + embed)``: loading should
stay a small share of a build (target <= 0.2 for every format).  When embedding a whole big
file would take more than ~3 minutes here, only a fixed share of it is embedded (the first 50
pages of a PDF, the leading chunks worth about a minute of embedding for other files) and the
load time is scaled to the same share; the JSON says so.  A scanned PDF read by OCR is reported apart ("OCR pages/s"): OCR is
slower than embedding by nature, so it is not held to the 0.2 target.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from _common import DEMO_CORPUS, SHARED_DATA, Report, median, versions  # noqa: E402  (offline env first)

REALDOCS = SHARED_DATA / "realdocs"
TARGET_SHARE = 0.2
EMBED_BUDGET_S = 180.0   # embed a capped share of a file when all of it would take longer
CAP_EMBED_S = 60.0       # ...a share of about this many seconds of embedding (or the first CAP_PAGES pages)
CAP_PAGES = 50
RUNS = 3
RUN_BUDGET_S = 60.0      # no further load runs once the runs so far took this long

# (path, small?) -- the small ones make up --quick
SAMPLES: list[tuple[Path, bool]] = [
    (REALDOCS / "pdf-good" / "acl2020-s2orc-two-column.pdf", False),
    (REALDOCS / "pdf-good" / "book-free-culture-352p.pdf", False),
    (REALDOCS / "docx" / "doj-chapter13-trustee-handbook-large.docx", False),
    (REALDOCS / "docx" / "page-breaks-haystack.docx", True),
    (REALDOCS / "html" / "google-sre-book-chapter.html", True),
    (REALDOCS / "ipynb" / "nbconvert-library-tutorial.ipynb", True),
    (DEMO_CORPUS / "course-notes" / "07-guest-lecture.pptx", True),
    (DEMO_CORPUS / "lab-safety-and-conduct.docx", True),
    (DEMO_CORPUS / "course-notes" / "02-pandas.md", True),
    (DEMO_CORPUS / "handbook.pdf", True),
]
SCAN = REALDOCS / "pdf-hostile" / "scan-no-text-huckfinn-p22.pdf"

WORDS = ("retrieval index passage embedding query answer citation chapter section model vector "
         "document corpus student lecture notebook table figure result method evaluation").split()


def prose(seed: int, sentences: int) -> str:
    """Deterministic English-looking sentences (varied enough that chunks differ)."""
    out = []
    for s in range(sentences):
        n = 8 + (seed * 7 + s * 3) % 11
        words = [WORDS[(seed * 31 + s * 17 + k * 13) % len(WORDS)] for k in range(n)]
        out.append(" ".join(words).capitalize() + f" (note {seed}.{s}).")
    return " ".join(out)


# -- generated samples ------------------------------------------------------------------------


def make_deck(path: Path, slides: int = 100) -> Path:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    deck = Presentation()
    layout = deck.slide_layouts[1]  # title and content
    for i in range(slides):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = f"Slide {i + 1}: {WORDS[i % len(WORDS)].title()} in practice"
        body = slide.placeholders[1].text_frame
        body.text = prose(i, 1)
        for b in range(4):
            para = body.add_paragraph()
            para.text = prose(i * 5 + b, 1)
            para.level = b % 2
        box = slide.shapes.add_textbox(Inches(1), Inches(6.5), Inches(8), Inches(0.5))
        box.text_frame.text = f"Source: lecture {i // 10 + 1}"
        box.text_frame.paragraphs[0].runs[0].font.size = Pt(10)
        slide.notes_slide.notes_text_frame.text = prose(i + 1000, 3)
    deck.core_properties.title = "A hundred slides"
    deck.core_properties.author = "Benchmark"
    deck.save(path)
    return path


_CONTAINER = ('<?xml version="1.0"?>\n<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
              '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
              "</rootfiles></container>")


def make_epub(path: Path, chapters: int = 20) -> Path:
    names = [f"ch{i + 1:02d}.xhtml" for i in range(chapters)]
    items = "".join(f'<item id="c{i}" href="{n}" media-type="application/xhtml+xml"/>' for i, n in enumerate(names))
    items += '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(chapters))
    package = f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:benchmark</dc:identifier><dc:title>A Benchmark Book</dc:title>
    <dc:creator>Ada Lovelace</dc:creator><dc:language>en</dc:language><dc:date>2021-03-04</dc:date>
  </metadata>
  <manifest>{items}</manifest>
  <spine>{spine}</spine>
</package>"""
    links = "".join(f'<li><a href="{n}">Chapter {i + 1}</a></li>' for i, n in enumerate(names))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", _CONTAINER, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("OEBPS/content.opf", package, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("OEBPS/nav.xhtml", _xhtml("Contents", f'<nav xmlns:epub="http://www.idpf.org/2007/ops" '
                                              f'epub:type="toc"><ol>{links}</ol></nav>'),
                    compress_type=zipfile.ZIP_DEFLATED)
        for i, name in enumerate(names):
            body = f"<h1>Chapter {i + 1}</h1>"
            for s in range(4):
                body += f"<h2>Part {s + 1}</h2>" + "".join(f"<p>{prose(i * 100 + s * 10 + p, 5)}</p>" for p in range(6))
            zf.writestr(f"OEBPS/{name}", _xhtml(f"Chapter {i + 1}", body), compress_type=zipfile.ZIP_DEFLATED)
    return path


def _xhtml(title: str, body: str) -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>{title}</title></head><body>{body}</body></html>")


def make_latex(path: Path, kilobytes: int = 100) -> Path:
    head = (r"\documentclass[11pt]{article}" "\n" r"\usepackage{amsmath}" "\n"
            r"\title{Retrieval at Scale}" "\n" r"\author{Ada Lovelace \and Alan Turing}" "\n"
            r"\date{March 4, 2021}" "\n" r"\begin{document}" "\n" r"\maketitle" "\n"
            r"\begin{abstract}" + prose(0, 3) + r"\end{abstract}" "\n")
    parts = [head]
    size, s = len(head), 0
    while size < kilobytes * 1000:
        s += 1
        sec = [f"\\section{{Section {s}}}\\label{{sec:{s}}}\n"]
        for sub in range(3):
            sec.append(f"\\subsection{{Part {s}.{sub + 1}}}\n{prose(s * 10 + sub, 6)} See Section~\\ref{{sec:{s}}} "
                       f"and~\\cite{{ref{s}}}; \\emph{{emphasis}} % a comment\n")
        sec.append("\\begin{itemize}\n" + "".join(f"  \\item {prose(s * 7 + k, 1)}\n" for k in range(3))
                   + "\\end{itemize}\n")
        sec.append(f"\\begin{{equation}} x_{s} = \\frac{{1}}{{{s}}} \\end{{equation}}\n")
        text = "".join(sec)
        parts.append(text)
        size += len(text)
    parts.append("\\end{document}\n")
    path.write_text("".join(parts), encoding="utf-8")
    return path


# -- measuring --------------------------------------------------------------------------------


def units_of(docs: list[Any], suffix: str) -> tuple[int, str]:
    meta = docs[0].metadata if docs else {}
    if suffix == ".pdf":
        return sum(int(d.metadata.get("pages", 0)) for d in docs), "pages"
    if suffix == ".pptx":
        return sum(int(d.metadata.get("slides", 0)) for d in docs), "slides"
    if suffix == ".epub" and "chapters" in meta:
        chapters = meta["chapters"]
        return (len(chapters) if isinstance(chapters, (list, dict)) else int(chapters)), "chapters"
    return sum(len(d.segments) for d in docs), "segments"


def time_load(path: Path, **options: Any) -> tuple[list[float], list[Any]]:
    from ragbook.loaders import load_file

    runs: list[float] = []
    docs: list[Any] = []
    while len(runs) < RUNS and (not runs or sum(runs) < RUN_BUDGET_S):
        t0 = time.perf_counter()
        docs = load_file(path, **options)
        runs.append(time.perf_counter() - t0)
    return runs, docs


def measure(path: Path, idx: Any, chunks_per_s: float) -> dict[str, Any] | None:
    from ragbook.errors import LoadError

    try:
        runs, docs = time_load(path)
    except LoadError as exc:
        print(f"   {path.name}: not read ({exc})", flush=True)
        return {"file": path.name, "error": str(exc)}
    load_s = median(runs)
    suffix = path.suffix.lower()
    units, unit_name = units_of(docs, suffix)
    chars = sum(len(d.text) for d in docs)
    chunks = [c for d in docs for c in idx.chunker.split(d)]
    rec: dict[str, Any] = {
        "file": path.name, "format": suffix.lstrip("."), "unit": unit_name, "units": units, "chars": chars,
        "load_runs_s": [round(r, 4) for r in runs], "load_s": round(load_s, 4),
        "units_per_s": round(units / load_s, 2) if load_s else None, "chunks": len(chunks),
    }
    # cap the embedding of a big file to a share that fits the budget, and scale the load alike
    share, embed_chunks, cap = 1.0, chunks, None
    if len(chunks) / chunks_per_s > EMBED_BUDGET_S:
        if suffix == ".pdf" and units > CAP_PAGES:
            embed_chunks = [c for c in chunks if c.page is not None and c.page <= CAP_PAGES]
            share, cap = CAP_PAGES / units, f"first {CAP_PAGES} of {units} pages"
        else:
            n = max(1, int(CAP_EMBED_S * chunks_per_s))
            embed_chunks = chunks[:n]
            share = sum(len(c.text) for c in embed_chunks) / max(1, sum(len(c.text) for c in chunks))
            cap = f"first {n} of {len(chunks)} chunks ({share:.1%} of the text)"
    t0 = time.perf_counter()
    idx.embedder.encode_documents([c.text for c in embed_chunks])
    embed_s = time.perf_counter() - t0
    load_cmp = load_s * share
    rec.update(embedded_chunks=len(embed_chunks), embed_s=round(embed_s, 3),
               load_compared_s=round(load_cmp, 4), load_share=round(load_cmp / (load_cmp + embed_s), 4))
    if cap:
        rec["capped"] = f"embedded the {cap}; load time scaled to the same share ({share:.3f})"
    print(f"   {path.name}: {units} {unit_name}, {chars:,} chars, load {load_s:.3f} s "
          f"({rec['units_per_s']} {unit_name}/s, runs {len(runs)}), embed {len(embed_chunks)} chunks "
          f"{embed_s:.2f} s, load share {rec['load_share']:.3f}{' [capped: ' + cap + ']' if cap else ''}", flush=True)
    return rec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the small files (smoke run)")
    args = parser.parse_args()

    import ragbook
    from ragbook.loaders import ocr

    report = Report("loaders", quick=args.quick, target_share=TARGET_SHARE, embed_budget_s=EMBED_BUDGET_S,
                    cap_embed_s=CAP_EMBED_S,
                    cap_pages=CAP_PAGES, runs=RUNS, run_budget_s=RUN_BUDGET_S)
    report.data["versions"] = versions("pypdf", "pdfminer.six", "pypdfium2", "python-docx", "python-pptx",
                                       "sentence-transformers", "torch", "tesserocr")
    idx = ragbook.Index()
    report.data["settings"].update(model=idx.embedder.name, chunker=repr(idx.chunker))

    report.section("embedder warm-up")
    warm = [prose(i, 8) for i in range(64)]
    idx.embedder.encode_documents(warm[:8])            # load the model
    t0 = time.perf_counter()
    idx.embedder.encode_documents(warm)
    chunks_per_s = len(warm) / (time.perf_counter() - t0)
    report.info("warmup_chunks_per_s", round(chunks_per_s, 1), f"{chunks_per_s:.1f} chunks/s on warm-up passages")

    samples = [p for p, small in SAMPLES if small or not args.quick]
    absent = [str(p.relative_to(p.parents[2])) for p in samples if not p.exists()]
    samples = [p for p in samples if p.exists()]
    tmp = tempfile.TemporaryDirectory(prefix="ragbook-loaders-")
    made = Path(tmp.name)
    samples += [make_deck(made / "deck-100-slides.pptx", 10 if args.quick else 100),
                make_epub(made / "book-20-chapters.epub", 3 if args.quick else 20),
                make_latex(made / "paper-100kb.tex", 10 if args.quick else 100)]
    if absent:
        report.info("absent", absent, f"absent (skipped): {', '.join(absent)}")

    report.section("load vs embed, per file")
    files = [rec for p in samples if (rec := measure(p, idx, chunks_per_s)) is not None]
    report.data["files"] = files

    report.section("load share per format")
    by_format: dict[str, list[dict[str, Any]]] = {}
    for rec in files:
        if "error" not in rec:
            by_format.setdefault(rec["format"], []).append(rec)
    for fmt, recs in sorted(by_format.items()):
        worst = max(recs, key=lambda r: r["load_share"])
        units = ", ".join(f"{r['file']} {r['units_per_s']} {r['unit']}/s share {r['load_share']:.3f}" for r in recs)
        report.check(f"load_share_{fmt}", worst["load_share"], f"<= {TARGET_SHARE}",
                     worst["load_share"] <= TARGET_SHARE, f"{fmt:6} worst load share {worst['load_share']:.3f} ({units})")

    report.section("OCR (apart from the target)")
    why = ocr.missing()
    if why is not None:
        report.info("ocr", {"skipped": why}, f"OCR not measured: {why}")
    elif args.quick or not SCAN.exists():
        report.info("ocr", {"skipped": "quick run" if args.quick else "scan absent"}, "OCR not measured")
    else:
        rec = measure(SCAN, idx, chunks_per_s)
        if rec and "error" not in rec:
            rec["ocr_pages_per_s"] = rec.pop("units_per_s")
            rec["ocr_engine"] = ocr.engine_version()
            report.info("ocr", rec, f"OCR pages/s: {rec['ocr_pages_per_s']} ({rec['ocr_engine']}); "
                                    f"load share {rec['load_share']:.3f} (not held to the target)")
        else:
            report.info("ocr", rec, "OCR scan not read")
    tmp.cleanup()
    report.write("-quick" if args.quick else "")


if __name__ == "__main__":
    main()
