"""One-page receipt PDFs (电子回单) with reportlab, and the A4 report pages (`ReportPages`) vouchers and daily
and reconciliation reports are drawn on; no database, no signing key.

Fonts: Chinese text uses reportlab's built-in CID font STSong-Light (Adobe-GB1, UniGB-UCS2-H). It needs
no font file, so a fresh machine with only Python and PyPI renders it, and pypdf (like any
viewer that knows the standard CMaps) extracts it as text. The font is referenced, not embedded:
viewers substitute their Song face, as they do for bank receipts made the same way. Latin-only
values (amounts, ids) use Helvetica, which carries ¥ in its standard encoding.

QR: segno's encoder computes the matrix (with placement cached per version, see qr.py); the dark modules are drawn as one path of merged horizontal runs
(one `re` per run) in a module-sized coordinate system, so the content stream stays small and the
drawing costs a few hundred string joins instead of reportlab's per-module widget objects.
segno's automatic mask choice scores all eight masks in pure Python and costs ~4x the rest of the
encoding; a fixed mask is valid QR (every decoder reads all eight) and keeps issuing fast.

Embedded data: the receipt's structured data (JSON) and its signature are PDF file attachments
(/Names /EmbeddedFiles, AFRelationship /Data), so accounting systems read the receipt without OCR.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from reportlab import rl_config
from reportlab.lib.pagesizes import A4, A5, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.pdfdoc import PDFArray, PDFDictionary, PDFName, PDFStream, PDFString
from reportlab.pdfgen import canvas as rl_canvas

from .qr import matrix_for

_DARK_RUN = re.compile(rb"\x01+")

CJK_FONT = "STSong-Light"
LATIN_FONT = "Helvetica"
LATIN_BOLD_FONT = "Helvetica-Bold"
PAGE_SIZE = landscape(A5)  # 595 x 420 pt, the usual bank e-receipt format
QR_MASK = 2  # any of 0-7 is valid; fixed for speed (see module docstring)

REPORT_MARGIN = 40  # points around an A4 report page's text
_SMALLEST_SIZE = 5.5  # a report cell's text is set no smaller than this to fit its column
_WIDEST_GLYPH = 1.02  # ems: Helvetica's widest (@); a CJK glyph is 1

PAYLOAD_ATTACHMENT = "receipt.json"
SIGNATURE_ATTACHMENT = "receipt.sig.json"

# ASCII85 around Flate only makes streams 25% bigger and, in reportlab's pure-Python encoder, costs
# more than the rest of a page; binary Flate streams are what every PDF reader expects anyway.
rl_config.useA85 = 0

_fonts_registered = False


def register_fonts() -> None:
    global _fonts_registered
    if not _fonts_registered:
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
        _fonts_registered = True


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes
    mime_type: str = "application/json"
    description: str = ""


@dataclass(frozen=True)
class ReceiptPage:
    """What one receipt page shows. Rows are (label, value); values are already masked."""

    title: str
    subtitle: str
    number: str
    rows: list[tuple[str, str]]
    footer_lines: list[str] = field(default_factory=list)
    verification_code: str = ""
    verification_url: str = ""  # empty: no QR code
    attachments: list[Attachment] = field(default_factory=list)
    author: str = ""


_NOT_LATIN = re.compile("[^\x00-\xff]")


def _is_latin(text: str) -> bool:
    return _NOT_LATIN.search(text) is None


def text_width(text: str, size: float) -> float:
    """How wide `PageText.put` draws `text` (not bold) at `size`, in points."""
    font = LATIN_FONT if _is_latin(text) else CJK_FONT
    return pdfmetrics.stringWidth(text, font, size)


class PageText:
    """All of a page's text in one text object, switching fonts only when the script changes."""

    def __init__(self, c):
        self.obj = c.beginText()
        self.font = None

    def put(self, x: float, y: float, text: str, size: float, *, bold: bool = False) -> None:
        if _is_latin(text):
            font = (LATIN_BOLD_FONT if bold else LATIN_FONT, size)
        else:
            font = (CJK_FONT, size)
        if font != self.font:
            self.obj.setFont(*font)
            self.font = font
        self.obj.setTextOrigin(x, y)
        self.obj.textOut(text)


def qr_runs(data: str) -> tuple[int, list[tuple[int, int, int]]]:
    """The QR symbol's size in modules (with its 4-module quiet zone) and its dark runs.

    Each run is (column, row-from-bottom, length): one rectangle per horizontal run of dark modules.
    """
    matrix = matrix_for(data, error="m", mask=QR_MASK)
    border = 4
    size = len(matrix) + 2 * border
    top = len(matrix) - 1 + border
    runs = []
    for r, row in enumerate(matrix):
        y = top - r
        runs.extend((m.start() + border, y, m.end() - m.start()) for m in _DARK_RUN.finditer(row))
    return size, runs


def draw_qr(c, data: str, *, x: float, y: float, side: float) -> None:
    """Draw a QR code for data with its lower-left corner at (x, y), side points wide (quiet zone included)."""
    size, runs = qr_runs(data)
    module = side / size
    # Integer coordinates in a module-sized space: short operators, no float formatting per module.
    ops = " ".join(["%d %d %d 1 re" % run for run in runs])
    c.saveState()
    c.setFillColorRGB(0, 0, 0)
    c.transform(module, 0, 0, module, x, y)
    c._code.append(ops + " f")  # one path, filled once
    c.restoreState()


def attach_files(c, attachments: list[Attachment]) -> None:
    doc = c._doc
    names = []
    for item in sorted(attachments, key=lambda a: a.name):  # a name tree's keys must be sorted
        stream = PDFStream(
            PDFDictionary(
                {
                    "Type": PDFName("EmbeddedFile"),
                    "Subtype": PDFName(item.mime_type.replace("/", "#2F")),
                    "Params": PDFDictionary({"Size": len(item.data)}),
                }
            ),
            content=item.data,
        )
        spec = PDFDictionary(
            {
                "Type": PDFName("Filespec"),
                "F": PDFString(item.name),
                "UF": PDFString(item.name),
                "Desc": PDFString(item.description or item.name),
                "AFRelationship": PDFName("Data"),
                "EF": PDFDictionary({"F": doc.Reference(stream)}),
            }
        )
        names += [PDFString(item.name), doc.Reference(spec)]
    doc.Catalog.Names = PDFDictionary({"EmbeddedFiles": PDFDictionary({"Names": PDFArray(names)})})


def render_receipt(page: ReceiptPage) -> bytes:
    """The receipt as PDF bytes: one landscape A5 page, QR code, attachments."""
    register_fonts()
    buffer = io.BytesIO()
    c = rl_canvas.Canvas(buffer, pagesize=PAGE_SIZE, pageCompression=1)
    c.setTitle(f"{page.title} {page.number}")
    if page.author:
        c.setAuthor(page.author)
    c.setSubject(page.subtitle)
    width, height = PAGE_SIZE
    margin = 36

    text = PageText(c)
    # Frame and title.
    c.setLineWidth(0.8)
    c.rect(margin - 8, margin - 8, width - 2 * (margin - 8), height - 2 * (margin - 8))
    text.put(margin, height - margin - 14, page.title, 16)
    text.put(margin, height - margin - 30, page.subtitle, 8)
    text.put(margin, height - margin - 48, "回单编号", 9)
    text.put(margin + 40, height - margin - 48, page.number, 10, bold=True)

    # QR code in the top right corner, the verification code under it.
    qr_side = 92.0
    qr_x, qr_y = width - margin - qr_side + 6, height - margin - qr_side + 6
    if page.verification_url:
        draw_qr(c, page.verification_url, x=qr_x, y=qr_y, side=qr_side)
    if page.verification_code:
        text.put(qr_x + 6, qr_y - 6, "验证码", 7)
        text.put(qr_x + 32, qr_y - 6, page.verification_code, 8, bold=True)

    # Label/value rows with a thin rule under each (shorter beside the QR code).
    top = height - margin - 66
    row_height = 16.5
    label_x, value_x = margin, margin + 92
    rules = []
    for index, (label, value) in enumerate(page.rows):
        y = top - index * row_height
        text.put(label_x, y, label, 9)
        text.put(value_x, y, value, 9)
        right = width - margin - (qr_side if y > qr_y - 12 else 0)
        rules.append("%.2f %.2f m %.2f %.2f l" % (margin, y - 5, right, y - 5))
    c.setLineWidth(0.3)
    # One stroked path, written directly: reportlab's per-number formatting is the slow part of a page.
    c._code.append(" ".join(rules) + " S")

    y = top - len(page.rows) * row_height - 6
    for line in page.footer_lines:
        text.put(margin, y, line, 7)
        y -= 10
    c.drawText(text.obj)

    if page.attachments:
        attach_files(c, page.attachments)
    c.showPage()
    c.save()
    return buffer.getvalue()


class ReportPages:
    """A4 pages of text rows for reports and vouchers: a heading and the page number on each, rows of cells at
    their x, rules. The caller starts a page when `y` runs low (and repeats its table header there)."""

    def __init__(self, *, title: str, subject: str):
        register_fonts()
        self.buffer = io.BytesIO()
        self.c = rl_canvas.Canvas(self.buffer, pagesize=A4, pageCompression=1)
        self.c.setTitle(title)
        self.c.setSubject(subject)
        self.width, self.height = A4
        self.page_no = 0
        self.text = None
        self.y = 0.0

    def new_page(self, heading: str) -> None:
        if self.text is not None:
            self.finish_page()
        self.page_no += 1
        self.text = PageText(self.c)
        self.text.put(REPORT_MARGIN, self.height - REPORT_MARGIN, heading, 14)
        self.text.put(self.width - REPORT_MARGIN - 40, self.height - REPORT_MARGIN, f"{self.page_no}", 9)
        self.y = self.height - REPORT_MARGIN - 28

    def row(self, cells: list[tuple[float, str]], *, size: float = 8.5, gap: float = 13.0) -> None:
        """Cells at their x; a text too long for the room before the next cell is set smaller to fit
        (measured only when it could be too long, at `_WIDEST_GLYPH` ems a character)."""
        for i, (x, value) in enumerate(cells):
            cell_size = size
            room = (cells[i + 1][0] if i + 1 < len(cells) else self.width - 2 * REPORT_MARGIN) - x - 4
            if len(value) * size * _WIDEST_GLYPH > room:
                width = text_width(value, size)
                if width > room:
                    cell_size = max(_SMALLEST_SIZE, size * room / width)
            self.text.put(REPORT_MARGIN + x, self.y, value, cell_size)
        self.y -= gap

    def rule(self) -> None:
        self.c.setLineWidth(0.3)
        self.c.line(REPORT_MARGIN, self.y + 9, self.width - REPORT_MARGIN, self.y + 9)

    def finish_page(self) -> None:
        self.c.drawText(self.text.obj)
        self.c.showPage()
        self.text = None

    def close(self, attachments: list[Attachment] = ()) -> bytes:
        if self.text is not None:
            self.c.drawText(self.text.obj)
        if attachments:
            attach_files(self.c, list(attachments))
        self.c.showPage()
        self.c.save()
        return self.buffer.getvalue()
