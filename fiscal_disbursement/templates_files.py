"""The blank payee file template (optional header block, column headers, two example payees) as CSV and XLSX.

The layout follows fiscal_disbursement/PAYEES.md; the example rows pass `payees.parse_payee_file`.
"""
from __future__ import annotations

from fiscal_disbursement.payees import COLUMNS, HEADER_KEYS
from treasury.spreadsheets import SheetTemplate

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


_TEMPLATE = SheetTemplate(
    sheet_title="收款人",
    header_block=_header_block(),
    columns=TEMPLATE_COLUMNS,
    examples=EXAMPLE_ROWS,
    text_columns=frozenset(_TEXT_COLUMNS),
    widths={"序号": 6, "收款人": 28, "证件号码": 22, "钱包编号": 20, "金额": 14, "用途": 30, "类别": 8},
    notes=[["列 (column)", "别名 (aliases)", "必填 (required)"], ["序号", "no", "否，不读取 (no, not read)"]]
    + [[aliases[0], ", ".join(aliases[1:]), "是 (yes)" if required else "否 (no)"] for aliases, required in COLUMNS.values()]
    + [[],
       ["证件号码：个人填18位身份证号，单位填统一社会信用代码。 "
        "(ID number: a resident ID for a person, the unified social credit code for an organization.)"],
       ["类别：个人或单位，可不填；填写时须与证件号码一致。 "
        "(Category: 个人 or 单位, optional; when given it must agree with the ID number.)"],
       ["总笔数、金额合计可不填；填写时须与明细一致。 "
        "(Line count and total amount are optional; when given they must match the lines.)"]],
)
# The template as CSV (UTF-8 with a BOM) and as XLSX (identifiers as text, amounts as numbers, a notes sheet).
template_csv = _TEMPLATE.csv
template_xlsx = _TEMPLATE.xlsx
