"""CSV exports (treasury.exports): the mark, formula-safe text, amounts as numbers, rows streamed."""
from __future__ import annotations

import csv
import io

from treasury.exports import csv_bytes, csv_download, yuan


def read(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_text_a_spreadsheet_would_run_is_written_as_text_and_amounts_stay_numbers():
    data = csv_bytes(header=["名称 name", "金额 amount", "笔数 count"],
                     rows=[["=HYPERLINK(\"http://x.example\")", yuan(-1_234_56), 3],
                           ["+1", yuan(5), 0], ["@SUM(A1)", yuan(None), 1], ["-2+3", yuan(0), 2]],
                     trailer=["合计 total", yuan(-1_234_51), 6])
    header, *rows = read(data.decode("utf-8"))
    assert header == ["名称 name", "金额 amount", "笔数 count"]
    assert rows == [["'=HYPERLINK(\"http://x.example\")", "-1234.56", "3"], ["'+1", "0.05", "0"],
                    ["'@SUM(A1)", "", "1"], ["'-2+3", "0.00", "2"], ["合计 total", "-1234.51", "6"]]


def test_a_download_is_written_while_it_is_sent():
    """Rows are read as the file is sent, in pieces of about 64 KB: not all before the first byte, nor a piece a
    line."""
    taken = []

    def rows():
        for i in range(10_000):
            taken.append(i)
            yield [f"行{i}", yuan(i * 100)]

    response = csv_download(filename="x.csv", header=["名称", "金额"], rows=rows())
    assert response.streaming and taken == []  # nothing read before the response is sent
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'
    chunks = iter(response.streaming_content)
    first = next(chunks)
    assert 0 < len(taken) < 10_000 and len(first) >= 65536
    rows_read = read(b"".join([first, *chunks]).decode("utf-8"))
    assert rows_read[:3] == [["名称", "金额"], ["行0", "0.00"], ["行1", "1.00"]]
    assert len(rows_read) == 10_001 and rows_read[-1] == ["行9999", "9999.00"]
