"""The blank payroll template (header block, column headers, two example rows) as CSV and XLSX bytes.

The layout follows payroll/README.md; the example rows pass `payroll.parsing.parse_payroll_file`.
"""
from __future__ import annotations

import csv
import io

from payroll.parsing import COLUMNS, HEADER_KEYS

EXAMPLE_USCC = "91350100M000100Y43"
EXAMPLE_PERIOD = "2025-06"

# Chinese header of each column, in template order.
TEMPLATE_COLUMNS = [aliases[0] for aliases, _required in COLUMNS.values()]
_TEXT_COLUMNS = {"employee_no", "name", "resident_id", "wallet_id"}

# Two example employees; amounts in yuan as text. Gross = components; net = gross - deductions.
EXAMPLE_ROWS = [
    ["E0001", "张三", "110101199003071233", "1001000000000001",
     "8000.00", "500.00", "300.00", "1000.00", "0.00", "9800.00",
     "800.00", "960.00", "245.00", "40.00", "0.00", "7755.00"],
    ["E0002", "李四", "310104198511124567", "1001000000000002",
     "6500.50", "300.00", "200.00", "0.00", "0.00", "7000.50",
     "560.00", "700.00", "56.30", "32.50", "0.00", "5651.70"],
]
EXAMPLE_TOTAL_NET = "13406.70"


def _header_block() -> list[list[str]]:
    names = {key: aliases[0] for key, aliases in HEADER_KEYS.items()}
    return [
        [names["employer_uscc"], EXAMPLE_USCC],
        [names["period"], EXAMPLE_PERIOD],
        [names["line_count"], str(len(EXAMPLE_ROWS))],
        [names["total_net"], EXAMPLE_TOTAL_NET],
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
    sheet.title = "工资表"
    bold = Font(bold=True)
    for row in _header_block():
        sheet.append(row)
    for row_number in range(1, 5):
        sheet.cell(row=row_number, column=1).font = bold
        sheet.cell(row=row_number, column=2).number_format = "@"
    sheet.append(TEMPLATE_COLUMNS)
    header_row = sheet.max_row
    fill = PatternFill("solid", fgColor="DDEBF7")
    fields = list(COLUMNS)
    for index, title in enumerate(TEMPLATE_COLUMNS, start=1):
        cell = sheet.cell(row=header_row, column=index)
        cell.font = bold
        cell.fill = fill
        sheet.column_dimensions[get_column_letter(index)].width = 20 if fields[index - 1] in _TEXT_COLUMNS else 12
    for example in EXAMPLE_ROWS:
        values = []
        for field_name, value in zip(fields, example):
            values.append(value if field_name in _TEXT_COLUMNS else float(Decimal(value)))  # float ok: Excel keeps numbers as floats; the parser reads them back exactly
        sheet.append(values)
        row_number = sheet.max_row
        for index, field_name in enumerate(fields, start=1):
            cell = sheet.cell(row=row_number, column=index)
            cell.number_format = "@" if field_name in _TEXT_COLUMNS else "#,##0.00"
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)

    notes = workbook.create_sheet("说明 (notes)")
    notes.append(["列 (column)", "英文别名 (English alias)", "必填 (required)"])
    for field_name, (aliases, required) in COLUMNS.items():
        notes.append([aliases[0], field_name, "是 (yes)" if required else "否，空白视为0 (no, blank is 0)"])
    notes.append([])
    notes.append(["只读取第一个工作表；请填写数值，不要使用公式。 (Only the first sheet is read; enter values, not formulas.)"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
