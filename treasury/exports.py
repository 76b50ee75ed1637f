"""Tables as CSV files to download (reports and list exports): one way to write them.

- UTF-8 with a byte-order mark first, so that spreadsheet programs read the Chinese headers right;
- a text cell that a spreadsheet would run as a formula (a taxpayer's name "=HYPERLINK(...)" in a tax message)
  is written as text (`spreadsheets.csv_safe`), while numbers are written as they are: amounts go in as
  `yuan(fen)`, a Decimal, so that a negative amount stays a number;
- rows are written as they come (an iterator over a query), so a long export streams.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.http import HttpResponse, StreamingHttpResponse

from .spreadsheets import csv_safe


def yuan(fen: int | None) -> Decimal | str:
    """An amount in fen as yuan for a CSV cell (1234 -> 12.34, -5 -> -0.05); "" for none."""
    return "" if fen is None else Decimal(fen).scaleb(-2)


class _Line:
    """A file-like object whose write returns the line: csv.writer then hands back each line it writes."""

    def write(self, value: str) -> str:
        return value


def csv_lines(*, header: list[str], rows: Iterable[list], trailer: list | None = None) -> Iterator[str]:
    """The CSV text line by line: the mark, the header, every row, then an optional last line."""
    writer = csv.writer(_Line())
    yield "\ufeff" + writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_safe(cell) if isinstance(cell, str) else cell for cell in row])
    if trailer:
        yield writer.writerow([csv_safe(cell) if isinstance(cell, str) else cell for cell in trailer])


def csv_bytes(*, header: list[str], rows: Iterable[list], trailer: list | None = None) -> bytes:
    return "".join(csv_lines(header=header, rows=rows, trailer=trailer)).encode("utf-8")


def download(content: bytes, *, content_type: str, filename: str) -> HttpResponse:
    """Bytes made whole (a report's CSV or PDF) as an attachment."""
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _chunks(lines: Iterator[str], size: int = 65536) -> Iterator[bytes]:
    """Lines gathered into pieces of about `size` bytes: a piece per line would be a write per line."""
    piece, length = [], 0
    for line in lines:
        piece.append(line)
        length += len(line)
        if length >= size:
            yield "".join(piece).encode("utf-8")
            piece, length = [], 0
    if piece:
        yield "".join(piece).encode("utf-8")


def csv_download(*, filename: str, header: list[str], rows: Iterable[list]) -> StreamingHttpResponse:
    """A CSV attachment written while it is sent (rows read lazily: an export of a whole year does not wait
    for its last row, nor hold every row in memory)."""
    response = StreamingHttpResponse(_chunks(csv_lines(header=header, rows=rows)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
