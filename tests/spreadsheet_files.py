"""What the tests of every spreadsheet format build or read the same way: a zip bomb made from a real
workbook, and the CSV or XLSX error report a parser writes."""
import csv
import io
import zipfile


def zip_bomb(xlsx: bytes) -> bytes:
    """The workbook with 50 MB of zeros added as one member: about 50 KB zipped, far over any sane ratio."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in source.infolist():
            bomb.writestr(item.filename, source.read(item.filename))
        bomb.writestr("xl/media/padding.bin", bytes(50 * 1024 * 1024))
    data = buffer.getvalue()
    assert len(data) < 200 * 1024
    return data


def forbid_opening_workbooks(monkeypatch) -> None:
    """Make openpyxl fail the test if a parser hands it a workbook."""
    import openpyxl

    def must_not_open(*args, **kwargs):
        raise AssertionError("openpyxl opened a zip bomb")

    monkeypatch.setattr(openpyxl, "load_workbook", must_not_open)


def csv_report_rows(report: bytes) -> list[list[str]]:
    """A CSV error report's rows; it is UTF-8 with a BOM so that Excel shows the Chinese text."""
    assert report.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(report.decode("utf-8-sig"))))


def assert_no_formula_cells(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def first_sheet(xlsx: bytes):
    import openpyxl

    return openpyxl.load_workbook(io.BytesIO(xlsx)).worksheets[0]
