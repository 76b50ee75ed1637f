"""The blank payroll template (header block, column headers, two example rows) as CSV and XLSX bytes.

The layout follows payroll/README.md; the example rows pass `payroll.parsing.parse_payroll_file`.
"""
from __future__ import annotations

from payroll.parsing import COLUMNS, HEADER_KEYS
from treasury.spreadsheets import SheetTemplate

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


_TEMPLATE = SheetTemplate(
    sheet_title="工资表",
    header_block=_header_block(),
    columns=TEMPLATE_COLUMNS,
    examples=EXAMPLE_ROWS,
    text_columns=frozenset(COLUMNS[name][0][0] for name in _TEXT_COLUMNS),
    widths={aliases[0]: 20 if name in _TEXT_COLUMNS else 12 for name, (aliases, _required) in COLUMNS.items()},
    notes=[["列 (column)", "英文别名 (English alias)", "必填 (required)"]]
    + [[aliases[0], name, "是 (yes)" if required else "否，空白视为0 (no, blank is 0)"]
       for name, (aliases, required) in COLUMNS.items()]
    + [[]],
)
# The template as CSV (UTF-8 with a BOM) and as XLSX (identifiers as text, amounts as numbers, a notes sheet).
template_csv = _TEMPLATE.csv
template_xlsx = _TEMPLATE.xlsx
