"""PDF reading order and speed: pypdf plain vs layout mode (vs pypdfium2 when installed).

Correctness: sentences that cross a line break inside one column (read off the PDFs) must come
out contiguous, whitespace-normalised, with ligatures spelled out.  Two-column and three-column
papers plus a single-column report.  Speed: seconds per file, and ragbook's ``load_pdf`` pages/s
on two long books (the loader adds header, hyphenation, form and reference passes to plain mode).

    python benchmarks/pdf_layout.py
"""

from __future__ import annotations

import logging
import sys
import time

from _common import SHARED_DATA, Report

from ragbook.loaders.pdf import _compat, load_pdf

GOOD = SHARED_DATA / "realdocs" / "pdf-good"

SENTENCES = {
    "acl2020-s2orc-two-column.pdf": [  # two columns (pdfTeX)
        "Academic papers are an increasingly important textual domain for natural language processing (NLP) research.",
        "Different types of resources have been used to support research over academic papers.",
        "To address these issues, we introduce S2ORC,7 the Semantic Scholar8 Open Re",
        "a large publicly-available collection of 81.1M academic papers covering dozens of academic disciplines.",
        "Details for these steps are provided below.",
        "The output of this pipeline is visualized in Figure 1.",
        "There are around 31.3M PDFs associated with approximately 200M initial paper clusters, and 30.5M PDFs",
        "We use SCIENCEPARSE to extract title and authors from each PDF.",
        "False positives are detected using regular expressions and removed from GROBID output.",
        "Our processing pipeline is described below.",
    ],
    "federal-register-2020-17221-3col.pdf": [  # three columns (iText, Government Publishing Office)
        "This section of the FEDERAL REGISTER contains notices to the public of the proposed issuance of rules and regulations.",
        "The FAA proposes to supersede Airworthiness Directive (AD) 2018–23–51, which applies to all The Boeing Company",
        "The FAA is proposing this AD to address the unsafe condition on these products.",
        "The most helpful comments reference a specific portion of the proposal, explain the reason for any recommended change, and include supporting data.",
        "The Runaway Stabilizer checklist of the AFM is used when there is undesired movement of the airplane’s horizontal stabilizer.",
        "The revised checklist would include an explicit recall item that instructs the flightcrew to use their",
        "The checklist would also include a recall item to use the control column and thrust levers to control the airplane’s pitch attitude and airspeed.",
        "The AD docket contains this NPRM, any comments received, and other information.",
        "Comments will be available in the AD docket shortly after receipt.",
        "The FAA invites you to participate in this rulemaking by submitting written comments, data, or views about this proposal.",
    ],
    "gao-23-106826-cybersecurity.pdf": [],  # single column: timed only
    "iop-jpcs-2022-word-cc-by-3.pdf": [],
}
THROUGHPUT = ["book-free-culture-352p.pdf", "irs-irm-2.3.59-400p.pdf"]


def flat(text: str) -> str:
    return " ".join(_compat(text).split())


def engines() -> dict:
    from pypdf import PdfReader

    out = {
        "pypdf-plain": lambda path: [p.extract_text() for p in PdfReader(path).pages],
        "pypdf-layout": lambda path: [p.extract_text(extraction_mode="layout") for p in PdfReader(path).pages],
    }
    try:
        import pypdfium2
    except ImportError:
        print("   (pypdfium2 not installed: pip install pypdfium2 to compare it)")
        return out

    def pdfium(path):
        pdf = pypdfium2.PdfDocument(str(path))
        try:
            return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
        finally:
            pdf.close()

    out["pypdfium2"] = pdfium
    return out


def main() -> None:
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    report = Report("pdf-layout")
    if not GOOD.is_dir():
        sys.exit(f"{GOOD} is not available")
    report.section("reading order: sentences that cross a line break inside a column, found contiguous")
    for name, engine in engines().items():
        for file, sentences in SENTENCES.items():
            start = time.perf_counter()
            pages = engine(GOOD / file)
            seconds = time.perf_counter() - start
            text = flat("\n".join(pages))
            found = sum(flat(s) in text for s in sentences)
            key = f"{engine_key(name)}.{file.split('-')[0]}"
            report.info(f"{key}.seconds", round(seconds, 2))
            if sentences:
                report.info(f"{key}.found", found)
            shown = f"{found}/{len(sentences)} sentences contiguous, " if sentences else ""
            report.info(f"{key}.pages_per_s", round(len(pages) / seconds, 1),
                        f"{name:13} {file:40} {shown}{seconds:.2f} s ({len(pages) / seconds:.0f} pages/s)")
    plain = [report.data["figures"][f"pypdf_plain.{f.split('-')[0]}.found"] for f, s in SENTENCES.items() if s]
    report.check("pypdf_plain.found_share", sum(plain) / sum(len(s) for s in SENTENCES.values()), ">= 0.9",
                 sum(plain) >= 0.9 * sum(len(s) for s in SENTENCES.values()),
                 f"plain mode (what load_pdf uses) keeps {sum(plain)} of {sum(len(s) for s in SENTENCES.values())} sentences whole")

    report.section("load_pdf throughput (plain mode + headers, hyphenation, forms, references)")
    for file in THROUGHPUT:
        start = time.perf_counter()
        doc = load_pdf(GOOD / file)
        seconds = time.perf_counter() - start
        rate = doc.metadata["pages"] / seconds
        report.info(f"load_pdf.{file.split('-')[1]}.pages_per_s", round(rate, 1),
                    f"{file:40} {doc.metadata['pages']} pages in {seconds:.1f} s: {rate:.0f} pages/s")
    report.write()


def engine_key(name: str) -> str:
    return name.replace("-", "_")


if __name__ == "__main__":
    main()
