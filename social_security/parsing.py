"""Declaration files (CSV, XLSX): one insured employee a line, to validated plain rows. No database.

Built on treasury/spreadsheets.py like payroll and payee files: the file is read with size limits (zip bombs,
formulas and encodings are its business), every line is checked and every problem collected with its line,
column, code and "中文 (English)" reason.

Format (a blank template: `template_csv()` / `template_xlsx()`):

    单位统一社会信用代码 | 91350100M000100Y43     header block, optional: checked against the employer
    费款所属期          | 2026-03                 optional: checked against the declaration's period
    人数               | 2                       optional: checked against the lines
    (blank row)
    姓名 | 身份证号 | 缴费基数                      column header row, then one line per employee
    张三 | 11010519491231002X | 8000.00            base in yuan (the previous year's average monthly wage)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from treasury import spreadsheets
from treasury.spreadsheets import (
    CONTROL_CHARACTER,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_PROBLEMS,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    FORMULA_START,
    BadValue,
    LineChecker,
    LineProblem,
    ParsedSheet,
    SeenTable,
    SheetLayout,
    SheetTemplate,
    amount_to_fen,
    check_file,
    compact_text,
    normalize_text,
    read_line_count,
    resident_id_key,
)

__all__ = ["COLUMNS", "DeclarationFileRefused", "DeclarationRow", "LineProblem", "ParsedDeclaration",
           "parse_declaration_file", "template_csv", "template_xlsx", "write_error_report"]

DeclarationFileRefused = spreadsheets.SpreadsheetRefused
NAME_MAX_CHARS = 100
MAX_ROWS = 200_000  # a large employer's month; the bench declares 1,000 a file

HEADER_KEYS: dict[str, tuple[str, ...]] = {
    "employer_uscc": ("单位统一社会信用代码", "统一社会信用代码", "employer_uscc"),
    "period": ("费款所属期", "所属期", "period"),
    "line_count": ("人数", "总人数", "line_count"),
}
COLUMNS: dict[str, tuple[tuple[str, ...], bool]] = {
    "name": (("姓名", "name"), True),
    "resident_id": (("身份证号", "公民身份号码", "身份证号码", "resident_id"), True),
    "base": (("缴费基数", "申报基数", "base"), True),
}
LAYOUT = SheetLayout(columns=COLUMNS, header_items=HEADER_KEYS,
                     ignored_columns=("序号", "no", "错误说明", "错误", "errors"), sheet_title="社保申报")

_PERIOD = re.compile(r"([0-9]{4})[-/.年]?([0-9]{1,2})月?")
_MESSAGES = {
    **spreadsheets.MESSAGES,
    "name_format": f"姓名超过{NAME_MAX_CHARS}字或以= + - @开头 (name longer than {NAME_MAX_CHARS} characters or "
                   "starts with = + - @)",
    "base_not_positive": "缴费基数必须大于零 (base must be more than zero)",
    "duplicate_resident_id": "身份证号重复 (resident ID repeats)",
    "period_format": "费款所属期应为YYYY-MM，如2026-03 (period must be YYYY-MM, e.g. 2026-03)",
}


def _period(text: str) -> str:
    match = _PERIOD.fullmatch(compact_text(text))
    # The premium message carries the period as (19|20)YYMM: another year could be declared but never sent.
    if match and 1 <= int(match.group(2)) <= 12 and 1990 <= int(match.group(1)) <= 2099:
        return f"{match.group(1)}-{int(match.group(2)):02d}"
    raise BadValue(_MESSAGES["period_format"], "period_format")


_HEADER_READERS = {
    "employer_uscc": lambda text: compact_text(text).upper(),
    "period": _period,
    "line_count": read_line_count,
}


@dataclass(slots=True)
class DeclarationRow:
    line: int  # as the clerk sees it in the file
    name: str
    resident_id: str  # normalised, 18 characters
    base_fen: int
    warnings: tuple[str, ...] = ()


@dataclass
class ParsedDeclaration(ParsedSheet):
    employer_uscc: str | None
    period: str | None
    line_count: int | None


def parse_declaration_file(data, *, filename: str, max_bytes: int = DEFAULT_MAX_BYTES, max_rows: int = MAX_ROWS,
                           max_problems: int = DEFAULT_MAX_PROBLEMS) -> ParsedDeclaration:
    """Read a declaration file (CSV in UTF-8/GBK/GB18030 or XLSX), check every line, keep the valid rows.

    Raises DeclarationFileRefused (with `.code`) for a file that cannot be read as a declaration file at all
    (not_a_spreadsheet, file_too_large, too_many_rows, zip_bomb, formula, encoding, no_header_row, ...).
    """
    checked = check_file(_LineChecker, data=data, filename=filename, line_sink=None, keep_lines=True,
                         max_bytes=max_bytes, max_rows=max_rows, max_problems=max_problems,
                         max_uncompressed_bytes=DEFAULT_MAX_UNCOMPRESSED_BYTES,
                         max_compression_ratio=DEFAULT_MAX_COMPRESSION_RATIO)
    values = checked.header_values
    return ParsedDeclaration(**checked.sheet_fields(), employer_uscc=values.get("employer_uscc"),
                             period=values.get("period"), line_count=values.get("line_count"))


class _LineChecker(LineChecker):
    layout = LAYOUT
    messages = _MESSAGES
    header_readers = _HEADER_READERS
    bytes_per_line = 48

    def __init__(self, sheet, *, expected_lines: int, line_sink, keep_lines: bool):
        super().__init__(sheet, expected_lines=expected_lines, line_sink=line_sink, keep_lines=keep_lines)
        self.column_index = tuple(sheet.index.get(name, -1) for name in ("name", "resident_id", "base"))
        self.seen_ids = SeenTable(expected_lines)

    def check(self, line: int, cells: list[str]) -> None:
        problems, labels = self.problems, self.labels
        before = problems.count
        i_name, i_id, i_base = self.column_index

        # A column the header lacks is one problem of the header row (column_missing), not one of every line.
        name = normalize_text(cells[i_name]) if i_name >= 0 else ""
        if i_name < 0:
            pass
        elif not name:
            problems.add(line, labels["name"], "required")
        elif len(name) > NAME_MAX_CHARS or name.startswith(FORMULA_START):
            problems.add(line, labels["name"], "name_format")
        elif not name.isprintable() and CONTROL_CHARACTER.search(name):
            problems.add(line, labels["name"], "control_character")

        resident = self.read_identifier(line, cells, i_id, "resident_id", self.check_resident_id)
        resident_id, warnings = resident or ("", ())
        if resident:
            earlier = self.seen_ids.add(resident_id_key(resident_id), line)
            if earlier is not None:
                problems.add(line, labels["resident_id"], "duplicate_resident_id",
                             f"身份证号与第{earlier}行重复 (resident ID repeats line {earlier})")

        base = 0
        raw_base = cells[i_base] if i_base >= 0 else ""
        if i_base < 0:
            pass
        elif not raw_base or raw_base.isspace():
            problems.add(line, labels["base"], "required")
        else:
            try:
                base = amount_to_fen(raw_base)
                if base == 0:
                    problems.add(line, labels["base"], "base_not_positive")
            except BadValue as exc:
                problems.add(line, labels["base"], exc.code, str(exc))

        if problems.count != before:
            self.invalid_lines += 1
            return
        self.accept(DeclarationRow(line, name, resident_id, base, warnings))


write_error_report = LAYOUT.write_error_report

EXAMPLE_USCC = "91350100M000100Y43"
_TEMPLATE = SheetTemplate(
    sheet_title="社保申报",
    header_block=[["单位统一社会信用代码", EXAMPLE_USCC], ["费款所属期", "2026-03"], ["人数", "2"], []],
    columns=["姓名", "身份证号", "缴费基数"],
    examples=[["张三", "110101199003071233", "8000.00"], ["李四", "310104198511124567", "3500.00"]],
    text_columns=frozenset({"姓名", "身份证号"}),
    widths={"姓名": 16, "身份证号": 22, "缴费基数": 14},
    notes=[["列 (column)", "英文别名 (English alias)", "必填 (required)"],
           ["姓名", "name", "是 (yes)"], ["身份证号", "resident_id", "是 (yes)"],
           ["缴费基数", "base", "是 (yes): 元，上年度月平均工资 (yuan, last year's average monthly wage)"], []],
)
template_csv = _TEMPLATE.csv
template_xlsx = _TEMPLATE.xlsx
