"""Payroll files built in tests: valid by default, easy to spoil one cell at a time."""
from __future__ import annotations

import csv
import io

from stdnum.cn import ric

from payroll.templates_files import EXAMPLE_USCC, TEMPLATE_COLUMNS

REGIONS = ("110101", "110102", "310104", "440304", "330106")


def resident_id(i: int) -> str:
    """A valid 18-character resident ID number, different for each i (up to 10 million)."""
    region = REGIONS[i % len(REGIONS)]
    year = 1960 + i % 40
    month = 1 + i // 40 % 12
    day = 1 + i // 480 % 28
    sequence = i // 13_440 % 1000
    base = f"{region}{year:04d}{month:02d}{day:02d}{sequence:03d}"
    return base + ric.calc_check_digit(base + "0")


def wallet_id(i: int) -> str:
    return f"100{i:013d}"


def employee_row(i: int) -> list[str]:
    """Columns in template order; gross = components, net = gross - deductions."""
    basic = 500_000 + (i % 97) * 1_001  # fen
    allowances, subsidies, bonus = 50_000, 30_000, (i % 5) * 10_000
    gross = basic + allowances + subsidies + bonus
    social, housing, tax, dues = 40_000, 60_000, 2_550 + i % 100, 2_500
    net = gross - social - housing - tax - dues
    amounts = [basic, allowances, subsidies, bonus, 0, gross, social, housing, tax, dues, 0, net]
    return [f"E{i:07d}", "张三", resident_id(i), wallet_id(i)] + [f"{a // 100}.{a % 100:02d}" for a in amounts]


def net_fen(row: list[str]) -> int:
    yuan, fen = row[-1].split(".")
    return int(yuan) * 100 + int(fen)


def header_block(rows: list[list[str]], *, uscc=EXAMPLE_USCC, period="2025-06", line_count=None, total_net=None):
    total = sum(net_fen(r) for r in rows) if total_net is None else total_net
    if isinstance(total, int):
        total = f"{total // 100}.{total % 100:02d}"
    return [
        ["单位统一社会信用代码", uscc],
        ["工资所属期", period],
        ["总笔数", str(len(rows) if line_count is None else line_count)],
        ["实发合计", total],
        [],
    ]


def payroll_rows(rows, *, columns=None, **header) -> list[list[str]]:
    return header_block(rows, **header) + [list(columns or TEMPLATE_COLUMNS)] + [list(r) for r in rows]


def to_csv(all_rows, *, encoding="utf-8-sig") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(all_rows)
    return buffer.getvalue().encode(encoding)


def to_xlsx(all_rows, *, as_numbers=True) -> bytes:
    """Amount-looking cells become numbers (as Excel users have them); identifiers stay text."""
    from decimal import Decimal

    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("工资表")
    for row in all_rows:
        out = []
        for index, value in enumerate(row):
            if as_numbers and index >= 4 and isinstance(value, str) and value.replace(".", "", 1).isdigit():
                value = float(Decimal(value))
            out.append(value)
        sheet.append(out)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
