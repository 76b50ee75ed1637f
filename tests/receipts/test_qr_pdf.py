import io
import random
import string

import pypdf
import pytest
import segno

from treasury.money import fen_to_capitals
from treasury.receipts import pdf
from treasury.receipts.qr import matrix_for

# DOMAIN.md vectors: the capitals printed on every receipt.
CAPITALS = [
    (0, "零元整"), (100, "壹元整"), (1000, "壹拾元整"), (1050, "壹拾元伍角整"), (10005, "壹佰元零伍分"),
    (100500, "壹仟零伍元整"), (123456, "壹仟贰佰叁拾肆元伍角陆分"), (10000000, "壹拾万元整"),
    (10000000000, "壹亿元整"), (1234567, "壹万贰仟叁佰肆拾伍元陆角柒分"),
]


@pytest.mark.parametrize("fen,expected", CAPITALS)
def test_capitals_vectors(fen, expected):
    assert fen_to_capitals(fen) == expected


def _random_inputs():
    rng = random.Random(20250314)
    yield "https://pay.example.gov.cn/receipts/verify/R202503140000012345/?c=ABCDEFGHJK"
    yield "12345678901234567890"  # numeric mode
    yield "HTTPS://EXAMPLE/R2025 $%*+-./:"  # alphanumeric mode
    yield "电子回单 收款人 张*三"  # byte mode, UTF-8
    for _ in range(60):
        length = rng.randint(1, 400)  # versions 1 to ~15
        yield "".join(rng.choice(string.printable[:94]) for _ in range(length))


@pytest.mark.parametrize("error", ["l", "m", "q", "h"])
def test_fast_qr_matrix_equals_segno(error):
    for data in _random_inputs():
        for mask in (0, pdf.QR_MASK, 7):
            fast = matrix_for(data, error=error, mask=mask)
            reference = segno.make_qr(data, error=error, mask=mask, boost_error=False).matrix
            assert [bytes(r) for r in fast] == [bytes(r) for r in reference], (data, error, mask)


def test_qr_runs_cover_exactly_the_dark_modules():
    data = "https://pay.example.gov.cn/receipts/verify/R202503140000012345/?c=ABCDEFGHJK"
    size, runs = pdf.qr_runs(data)
    matrix = segno.make_qr(data, error="m", mask=pdf.QR_MASK, boost_error=False).matrix
    n = len(matrix)
    assert size == n + 8
    drawn = set()
    for col, row, length in runs:
        for c in range(col, col + length):
            assert (c, row) not in drawn
            drawn.add((c, row))
    dark = {(j + 4, n - 1 - i + 4) for i, r in enumerate(matrix) for j, v in enumerate(r) if v}
    assert drawn == dark
    assert len(runs) < len(dark)  # runs are merged, not one rectangle per module


def test_rendered_page_text_and_attachments():
    page = pdf.ReceiptPage(
        title="数字人民币电子回单", subtitle="e-CNY payment receipt", number="R202503140000000001",
        rows=[("收款人", "张*三"), ("金额（大写）", "人民币壹万贰仟叁佰肆拾伍元陆角柒分"), ("金额（小写）", "¥12,345.67")],
        verification_code="ABCDEFGHJK", verification_url="https://pay.example.gov.cn/receipts/verify/x/?c=1",
        attachments=[pdf.Attachment("receipt.json", b'{"a":1}'), pdf.Attachment("receipt.sig.json", b'{"s":2}')],
    )
    data = pdf.render_receipt(page)
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    for expected in ("数字人民币电子回单", "R202503140000000001", "张*三", "壹万贰仟叁佰肆拾伍元陆角柒分", "¥12,345.67",
                     "ABCDEFGHJK"):
        assert expected in text
    assert reader.attachments["receipt.json"] == [b'{"a":1}']
    assert reader.attachments["receipt.sig.json"] == [b'{"s":2}']


def test_a_report_cell_too_long_for_its_column_is_set_smaller_to_fit():
    pages = pdf.ReportPages(title="t", subject="s")
    pages.new_page("t")
    drawn = []
    pages.text.put = lambda x, y, text, size: drawn.append((x, text, size))
    label = "自行缴税与运营机构相符 (own payment, matched with the operator)"
    pages.row([(0, label), (200, "1"), (250, "128.00")])
    (_, _, size), (_, _, one), (_, _, amount) = drawn
    assert size < 8.5 and pdf.text_width(label, size) <= 200 - 4
    assert one == amount == 8.5  # short texts keep the row's size
    pages.row([(0, label), (300, "1")])
    assert drawn[-2][2] == 8.5  # room enough: unchanged
