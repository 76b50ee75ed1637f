"""The blank payee file template (optional header block, column headers, two example payees) as CSV and XLSX.

The layout follows fiscal_disbursement/PAYEES.md; the example rows pass `payees.parse_payee_file`.
"""
from __future__ import annotations

import csv
import io

from fiscal_disbursement.payees import COLUMNS, HEADER_KEYS

# Chinese header of each column, in template order; 序号 (line number) is for the clerk and ignored.
TEMPLATE_COLUMNS = ["序号"] + [aliases[0] for aliases, _required in COLUMNS.values()]
_TEXT_COLUMNS = {"序号", "收款人", "证件号码", "钱包编号", "用途", "类别"}

# A person and an organisation; amounts in yuan as text.
EXAMPLE_ROWS = [
    ["1", "张三", "11010519491231002X", "2000000000000001", "1200.00", "2026年高龄津贴", "个人"],
    ["2", "示范养老服务有限公司", "91350100M000100Y43", "2000000000000002", "35000.50", "2026年养老机构运营补贴", "单位"],
]
EXAMPLE_TOTAL = "36200.50"


def _header_block() -> list[list[str]]:
    return [
        [HEADER_KEYS["line_count"][0], str(len(EXAMPLE_ROWS))],
        [HEADER_KEYS["total_amount"][0], EXAMPLE_TOTAL],
        [],
    ]


def template_csv() -> bytes:
    """The template as CSV in UTF-8 with a BOM (so Excel opens the Chinese headers correctly)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerows(_header_block())
    writer.writerow(TEMPLATE_COLUMNS)
    writer.writerows(EXAMPLE_ROWS)
    return buffer.getvalue().encode("utf-8-sig")


def template_xlsx() -> bytes:
    """The template as XLSX: identifiers formatted as text (Excel would round an 18-digit number),
    amounts as numbers with two decimals; a second sheet explains the columns."""
    from decimal import Decimal

    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "收款人"
    bold = Font(bold=True)
    for row in _header_block():
        sheet.append(row)
    for row_number in (1, 2):
        sheet.cell(row=row_number, column=1).font = bold
        sheet.cell(row=row_number, column=2).number_format = "@"
    sheet.append(TEMPLATE_COLUMNS)
    header_row = sheet.max_row
    fill = PatternFill("solid", fgColor="DDEBF7")
    widths = {"序号": 6, "收款人": 28, "证件号码": 22, "钱包编号": 20, "金额": 14, "用途": 30, "类别": 8}
    for index, title in enumerate(TEMPLATE_COLUMNS, start=1):
        cell = sheet.cell(row=header_row, column=index)
        cell.font = bold
        cell.fill = fill
        sheet.column_dimensions[get_column_letter(index)].width = widths[title]
    for example in EXAMPLE_ROWS:
        # float ok: Excel keeps numbers as floats; the parser reads them back exactly
        sheet.append([value if title in _TEXT_COLUMNS else float(Decimal(value))
                      for title, value in zip(TEMPLATE_COLUMNS, example)])
        for index, title in enumerate(TEMPLATE_COLUMNS, start=1):
            sheet.cell(row=sheet.max_row, column=index).number_format = "@" if title in _TEXT_COLUMNS else "#,##0.00"
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)

    notes = workbook.create_sheet("说明 (notes)")
    notes.append(["列 (column)", "别名 (aliases)", "必填 (required)"])
    notes.append(["序号", "no", "否，不读取 (no, not read)"])
    for aliases, required in COLUMNS.values():
        notes.append([aliases[0], ", ".join(aliases[1:]), "是 (yes)" if required else "否 (no)"])
    notes.append([])
    notes.append(["证件号码：个人填18位身份证号，单位填统一社会信用代码。 "
                  "(ID number: a resident ID for a person, the unified social credit code for an organization.)"])
    notes.append(["类别：个人或单位，可不填；填写时须与证件号码一致。 "
                  "(Category: 个人 or 单位, optional; when given it must agree with the ID number.)"])
    notes.append(["总笔数、金额合计可不填；填写时须与明细一致。 "
                  "(Line count and total amount are optional; when given they must match the lines.)"])
    notes.append(["只读取第一个工作表；请填写数值，不要使用公式。 (Only the first sheet is read; enter values, not formulas.)"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
