"""Payroll files (CSV, XLSX) to plain validated rows. No database; the format is in payroll/README.md.

Reading the file safely (size limits, CSV or XLSX, encodings, zip bombs, formulas), normalising what
people type, amounts, duplicate tables, running every line through the checks and the error report live
in treasury/spreadsheets.py; this module holds the payroll format and its checks.

- `parse_payroll_file` reads a file row by row and checks every line, collecting every problem (line
  number and column as the user sees them, a code, a bilingual reason). Memory stays bounded: lines
  are handed to `line_sink` as they are read (or kept only when asked), and duplicate detection keeps
  12 bytes a slot per key, not the rows.
- A file that is not what it claims raises `PayrollFileRefused` (the shared `SpreadsheetRefused`).
- `iter_original_rows` + `write_error_report` give back the file as typed, with an error column, as
  CSV (formula-injection safe) or XLSX, ready to fix and upload again.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter

from treasury import spreadsheets
from treasury.identifiers import validate_uscc
from treasury.money import fen_to_yuan_str
from treasury.spreadsheets import (
    CONTROL_CHARACTER,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_PROBLEMS,
    DEFAULT_MAX_ROWS,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    FORMULA_START,
    BadValue,
    LineChecker,
    LineProblem,
    ParsedSheet,
    SeenTable,
    SheetLayout,
    SheetReader,
    amount_to_fen,
    check_file,
    compact_text,
    iter_original_rows,
    normalize_text,
    read_line_count,
    resident_id_key,
)

__all__ = [
    "COLUMNS", "DEDUCTIONS", "HEADER_KEYS", "PAY_COMPONENTS", "LineProblem", "ParsedPayroll", "PayrollFileRefused",
    "PayrollHeader", "PayrollLine", "PayrollTotals", "iter_original_rows", "parse_payroll_file", "write_error_report",
]

# Payroll code has always caught this name; it is the shared refusal.
PayrollFileRefused = spreadsheets.SpreadsheetRefused


# ---------------------------------------------------------------------------------------------
# Format: header block keys and columns (Chinese name first, then accepted aliases).
# ---------------------------------------------------------------------------------------------
HEADER_KEYS: dict[str, tuple[str, ...]] = {
    "employer_uscc": ("单位统一社会信用代码", "统一社会信用代码", "社会信用代码", "employer_uscc", "uscc"),
    "period": ("工资所属期", "所属期", "工资月份", "period", "pay_period"),
    "line_count": ("总笔数", "笔数", "line_count"),
    "total_net": ("实发合计", "实发总额", "total_net"),
}

# field -> (aliases, required column)
COLUMNS: dict[str, tuple[tuple[str, ...], bool]] = {
    "employee_no": (("工号", "员工编号", "职工编号", "employee_no", "employee_number"), True),
    "name": (("姓名", "name"), True),
    "resident_id": (("身份证号", "身份证号码", "身份证", "resident_id"), True),
    "wallet_id": (("数字人民币钱包", "数字人民币钱包编号", "钱包编号", "钱包id", "wallet_id"), True),
    "basic_wage": (("基本工资", "basic_wage"), False),
    "allowances": (("津贴", "allowances"), False),
    "subsidies": (("补贴", "subsidies"), False),
    "bonus": (("奖金", "bonus"), False),
    "other_pay": (("其他应发", "other_pay"), False),
    "gross": (("应发合计", "应发工资", "gross"), True),
    "social_insurance": (("个人社保", "个人社会保险", "social_insurance"), False),
    "housing_fund": (("住房公积金", "公积金", "housing_fund"), False),
    "income_tax": (("个人所得税", "个税", "income_tax"), False),
    "union_dues": (("工会会费", "union_dues"), False),
    "other_deductions": (("其他扣款", "other_deductions"), False),
    "net": (("实发金额", "实发工资", "net"), True),
}
PAY_COMPONENTS = ("basic_wage", "allowances", "subsidies", "bonus", "other_pay")
DEDUCTIONS = ("social_insurance", "housing_fund", "income_tax", "union_dues", "other_deductions")
AMOUNT_FIELDS = PAY_COMPONENTS + ("gross",) + DEDUCTIONS + ("net",)
_GROSS = AMOUNT_FIELDS.index("gross")
_NET = AMOUNT_FIELDS.index("net")
_COMPONENT_BITS = sum(1 << AMOUNT_FIELDS.index(name) for name in PAY_COMPONENTS)
_DEDUCTION_BITS = sum(1 << AMOUNT_FIELDS.index(name) for name in DEDUCTIONS)

LAYOUT = SheetLayout(
    columns=COLUMNS,
    header_items=HEADER_KEYS,
    required_header_items=HEADER_KEYS,
    ignored_columns=("错误说明", "错误", "errors", "备注", "remarks", "序号", "no"),
    sheet_title="工资表",
)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
# Not frozen: a frozen dataclass's __init__ costs about 1 µs more a line, a tenth of the parsing time.
@dataclass(slots=True)
class PayrollLine:
    line: int
    employee_no: str
    name: str
    resident_id: str
    wallet_id: str
    basic_wage_fen: int
    allowances_fen: int
    subsidies_fen: int
    bonus_fen: int
    other_pay_fen: int
    gross_fen: int
    social_insurance_fen: int
    housing_fund_fen: int
    income_tax_fen: int
    union_dues_fen: int
    other_deductions_fen: int
    net_fen: int
    warnings: tuple[str, ...] = ()


@dataclass
class PayrollHeader:
    employer_uscc: str | None = None
    period: str | None = None  # "YYYY-MM"
    line_count: int | None = None  # as declared in the file
    total_net_fen: int | None = None  # as declared in the file


@dataclass
class PayrollTotals:
    """Sums over the valid lines (what would be paid), in fen."""

    lines: int = 0
    gross_fen: int = 0
    net_fen: int = 0
    components_fen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PAY_COMPONENTS, 0))
    deductions_fen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEDUCTIONS, 0))


@dataclass
class ParsedPayroll(ParsedSheet):
    """The file's facts and problems (see ParsedSheet), with the payroll header and sums."""

    lines: list[PayrollLine]  # filled only with keep_lines=True
    header: PayrollHeader
    file_net_fen: int  # sum of every line's readable net, valid or not
    totals: PayrollTotals


# ---------------------------------------------------------------------------------------------
# Messages (with the shared ones: required, amount_*, column_*, header_missing, line_count_format)
# ---------------------------------------------------------------------------------------------
_MESSAGES = {
    **spreadsheets.MESSAGES,
    "no_pay_component": "至少需要一列工资项目，如基本工资 (at least one pay component column is needed, e.g. 基本工资)",
    "net_not_positive": "实发金额必须大于零 (net must be more than zero)",
    "name_format": "姓名格式无效 (name is not a valid name)",
    "employee_no_format": "工号过长或含非法字符 (employee number is too long or starts with = + - @)",
    "period_format": "工资所属期应为YYYY-MM，如2025-06 (pay period must be YYYY-MM, e.g. 2025-06)",
}
# Texts of amounts -> fen, the first ones seen: at most a few MB, and a payroll repeats its
# amounts (pay grades, the same allowance for everyone).
_AMOUNT_CACHE_SIZE = 65_536
_HAS_DIGIT = re.compile(r"\d").search

_PERIOD = re.compile(r"(\d{4})\s*(?:[-/.年]\s*)?(\d{1,2})(?:\s*月)?(?:[-/.](0?1)(?:日)?)?")


def _period(text: str) -> str:
    match = _PERIOD.fullmatch(compact_text(text))
    if match:
        year, month = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12 and 1990 <= year <= 2099:
            return f"{year:04d}-{month:02d}"
    raise BadValue(_MESSAGES["period_format"], "period_format")


_HEADER_READERS = {
    "employer_uscc": lambda text: validate_uscc(compact_text(text).upper()),
    "period": _period,
    "line_count": read_line_count,
    "total_net": lambda text: amount_to_fen(compact_text(text)),
}


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
def parse_payroll_file(
    *,
    data,
    filename: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    line_sink: Callable[[PayrollLine], None] | None = None,
    keep_lines: bool = False,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO,
) -> ParsedPayroll:
    """Read a payroll file (CSV in UTF-8/GBK/GB18030 or XLSX) and check every line.

    `data` is bytes or a binary file-like object; `filename` decides the claimed type (.csv or .xlsx),
    which the content must confirm. Every problem of every line is collected (up to `max_problems`
    stored; `problem_count` counts all). Valid lines go to `line_sink` as they are read, and into
    `.lines` only with `keep_lines=True` (small files, tests); otherwise nothing per line is kept
    apart from the duplicate tables.

    Raises PayrollFileRefused (with `.code`) for a file that cannot be read as a payroll file:
    file_too_large, too_many_rows, not_a_spreadsheet, unsupported_format, damaged_file, zip_bomb,
    formula, encoding, malformed_csv, no_header_row.
    """
    checked = check_file(_LineChecker, data=data, filename=filename, line_sink=line_sink, keep_lines=keep_lines,
                         max_bytes=max_bytes, max_rows=max_rows, max_problems=max_problems,
                         max_uncompressed_bytes=max_uncompressed_bytes, max_compression_ratio=max_compression_ratio)
    values, checker = checked.header_values, checked.checker
    header = PayrollHeader(employer_uscc=values.get("employer_uscc"), period=values.get("period"),
                           line_count=values.get("line_count"), total_net_fen=values.get("total_net"))
    if checker.all_nets_read:
        checked.sheet.check_declared_total("total_net", header.total_net_fen, checker.file_net_fen,
                                           code="total_net_mismatch", total_zh="实发合计", sum_zh="各行实发金额之和",
                                           total_en="total net")
    sums = checker.sums
    return ParsedPayroll(
        **checked.sheet_fields(),
        header=header,
        file_net_fen=checker.file_net_fen,
        totals=PayrollTotals(
            lines=checker.valid_lines,
            gross_fen=sums[_GROSS],
            net_fen=sums[_NET],
            components_fen={name: sums[AMOUNT_FIELDS.index(name)] for name in PAY_COMPONENTS},
            deductions_fen={name: sums[AMOUNT_FIELDS.index(name)] for name in DEDUCTIONS},
        ),
    )


class _LineChecker(LineChecker):
    """Checks one employee line after another and keeps the running sums and duplicate tables."""

    layout = LAYOUT
    messages = _MESSAGES
    header_readers = _HEADER_READERS
    bytes_per_line = 128

    def __init__(self, sheet: SheetReader, *, expected_lines: int, line_sink, keep_lines: bool):
        super().__init__(sheet, expected_lines=expected_lines, line_sink=line_sink, keep_lines=keep_lines)
        self.amount_columns = [(position, sheet.index[name], sheet.labels[name])
                               for position, name in enumerate(AMOUNT_FIELDS) if name in sheet.index]
        indices = [i for _, i, _ in self.amount_columns]
        self.every_amount_column = len(indices) == len(AMOUNT_FIELDS)
        if len(indices) > 1:
            self.amount_texts = itemgetter(*indices)
        else:  # itemgetter of one index gives the value, not a tuple
            self.amount_texts = lambda cells: tuple(cells[i] for i in indices)
        self.text_index = tuple(sheet.index.get(name, -1)
                                for name in ("employee_no", "name", "resident_id", "wallet_id"))
        # A missing gross or net column is reported once (column_missing); its lines' sums are not checked.
        self.missing_totals = sum(1 << position for position, name in ((_GROSS, "gross"), (_NET, "net"))
                                  if name not in sheet.index)
        self.has_components = any(name in sheet.index for name in PAY_COMPONENTS)
        if not self.has_components:
            self.problems.add(sheet.header_row, COLUMNS["basic_wage"][0][0], "no_pay_component")
        self.file_net_fen = 0
        self.all_nets_read = True
        self.sums = [0] * len(AMOUNT_FIELDS)  # over the valid lines
        self.seen_employees = SeenTable(expected_lines)
        self.seen_resident_ids = SeenTable(expected_lines)
        self.amount_cache: dict[str, int] = {}

    def check(self, line: int, cells: list[str]) -> None:
        problems = self.problems
        before = problems.count
        add = problems.add
        labels = self.labels
        i_employee, i_name, i_resident, i_wallet = self.text_index

        employee_no = compact_text(cells[i_employee]) if i_employee >= 0 else ""
        if employee_no:
            if len(employee_no) > 32 or employee_no.startswith(FORMULA_START):
                add(line, labels["employee_no"], "employee_no_format")
            elif not employee_no.isprintable() and CONTROL_CHARACTER.search(employee_no):
                add(line, labels["employee_no"], "control_character")
        elif i_employee >= 0:
            add(line, labels["employee_no"], "required")

        name = normalize_text(cells[i_name]) if i_name >= 0 else ""
        if name:
            if len(name) > 64 or name.startswith(FORMULA_START) or _HAS_DIGIT(name):
                add(line, labels["name"], "name_format")
            elif not name.isprintable() and CONTROL_CHARACTER.search(name):
                add(line, labels["name"], "control_character")
        elif i_name >= 0:
            add(line, labels["name"], "required")

        resident = self.read_identifier(line, cells, i_resident, "resident_id", self.check_resident_id)
        resident_ok = bool(resident)
        resident_id, warnings = resident or ("", ())

        wallet_id = self.read_wallet(line, cells, i_wallet)

        # Amounts repeat a lot in a payroll (same allowance for everyone): a bounded cache of
        # text -> fen saves most of the parsing.
        # All twelve looked up at once (itemgetter and map loop in C); only the texts not yet cached
        # (blank, new or wrong) go through the column loop, in column order as before.
        cache = self.amount_cache
        texts = self.amount_texts(cells)
        values = list(map(cache.get, texts))
        unread = self.missing_totals  # bit per position that could not be read
        if None in values:
            for k, (position, _, label) in enumerate(self.amount_columns):
                if values[k] is not None:
                    continue
                raw = texts[k]
                values[k] = 0
                if not raw or raw.isspace():
                    if position == _GROSS or position == _NET:
                        add(line, label, "required")
                        unread |= 1 << position
                    continue  # a blank component or deduction is 0
                try:
                    value = amount_to_fen(raw)
                except BadValue as exc:
                    add(line, label, exc.code, str(exc))
                    unread |= 1 << position
                    continue
                if len(cache) < _AMOUNT_CACHE_SIZE:  # full: keep the amounts seen first (the common ones)
                    cache[raw] = value
                values[k] = value
        if self.every_amount_column:
            amounts = values  # AMOUNT_FIELDS order: 5 components, gross, 5 deductions, net
        else:
            amounts = [0] * 12
            for (position, _, _), value in zip(self.amount_columns, values):
                amounts[position] = value

        gross = amounts[_GROSS]
        net = amounts[_NET]
        gross_read = not unread & (1 << _GROSS)
        net_read = not unread & (1 << _NET)
        if net_read:
            self.file_net_fen += net
            if net == 0:
                add(line, labels["net"], "net_not_positive")
        else:
            self.all_nets_read = False
        if gross_read and self.has_components and not unread & _COMPONENT_BITS:
            total = amounts[0] + amounts[1] + amounts[2] + amounts[3] + amounts[4]
            if total != gross:
                add(line, labels["gross"], "gross_mismatch",
                    f"应发合计{fen_to_yuan_str(gross)}不等于各工资项目之和{fen_to_yuan_str(total)} "
                    f"(gross {fen_to_yuan_str(gross)} does not equal the sum of pay components {fen_to_yuan_str(total)})")
        if gross_read and net_read and not unread & _DEDUCTION_BITS:
            after = gross - amounts[6] - amounts[7] - amounts[8] - amounts[9] - amounts[10]
            if after != net:
                add(line, labels["net"], "net_mismatch",
                    f"应发合计减扣款合计为{fen_to_yuan_str(after)}，与实发金额{fen_to_yuan_str(net)}不符 "
                    f"(gross minus deductions is {fen_to_yuan_str(after)}, not the net {fen_to_yuan_str(net)})")

        # Duplicates: the first occurrence stays valid, each later one names it.
        if employee_no:
            earlier = self.seen_employees.add(hash(employee_no), line)
            if earlier is not None:
                add(line, labels["employee_no"], "duplicate_employee",
                    f"工号与第{earlier}行重复 (employee number repeats line {earlier})")
        if resident_ok:
            earlier = self.seen_resident_ids.add(resident_id_key(resident_id), line)
            if earlier is not None:
                add(line, labels["resident_id"], "duplicate_resident_id",
                    f"身份证号与第{earlier}行重复 (resident ID repeats line {earlier})")
        if wallet_id:
            self.check_duplicate_wallet(line, wallet_id)

        if problems.count != before:
            self.invalid_lines += 1
            return
        # Twelve additions in place: a new list of sums a line (map over both) cost 1 µs, a tenth of the checks.
        sums = self.sums
        sums[0] += amounts[0]; sums[1] += amounts[1]; sums[2] += amounts[2]; sums[3] += amounts[3]
        sums[4] += amounts[4]; sums[5] += amounts[5]; sums[6] += amounts[6]; sums[7] += amounts[7]
        sums[8] += amounts[8]; sums[9] += amounts[9]; sums[10] += amounts[10]; sums[11] += amounts[11]
        self.accept(PayrollLine(line, employee_no, name, resident_id, wallet_id, *amounts, warnings))


# The uploaded payroll file with an error column, as CSV or XLSX (see spreadsheets.write_error_report).
write_error_report = LAYOUT.write_error_report
