"""Payee files of fiscal disbursements (CSV, XLSX) to validated payee lines. No database; the format
is in fiscal_disbursement/PAYEES.md.

Built on treasury/spreadsheets.py, like payroll files: the file is read row by row with size limits
(zip bombs, formulas, encodings are its business), every line is checked and every problem collected
with its line, column, code and "中文 (English)" reason. Valid lines go to `line_sink` as they are
read, so memory stays bounded for subsidy runs of tens of thousands of payees.

- `parse_payee_file(data, filename=...)` -> `ParsedPayees` with `PayeeLine`s (integer fen).
- A file that is not a spreadsheet at all raises `PayeeFileRefused` (the shared `SpreadsheetRefused`).
- `iter_original_rows` + `write_error_report` give back the file as typed with an error column.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from treasury import spreadsheets
from treasury.identifiers import InvalidIdentifier, validate_uscc
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
    header_key,
    iter_original_rows,
    normalize_text,
    read_line_count,
    resident_id_key,
)

__all__ = [
    "COLUMNS", "HEADER_KEYS", "LineProblem", "ParsedPayees", "PayeeFileRefused", "PayeeHeader", "PayeeLine",
    "PayeeTotals", "iter_original_rows", "parse_payee_file", "write_error_report",
]

PayeeFileRefused = spreadsheets.SpreadsheetRefused

RESIDENT = "resident"  # 个人: an 18-character resident ID (GB 11643)
USCC = "uscc"  # 单位: a unified social credit code (GB 32100)
NAME_MAX_CHARS = 200  # the longest registered organisation names stay well under this
MEMO_MAX_CHARS = 140  # what a transfer's memo carries
# Control characters XML 1.0 cannot carry, escaped or not: a name or memo holding one could never be written into
# the payment voucher (adapters.budget.messages refuses it), so the file is refused instead, at the line.

# ---------------------------------------------------------------------------------------------
# Format: header block keys (all optional) and columns (Chinese name first, then accepted aliases).
# ---------------------------------------------------------------------------------------------
HEADER_KEYS: dict[str, tuple[str, ...]] = {
    "line_count": ("总笔数", "笔数", "line_count"),
    "total_amount": ("金额合计", "合计金额", "总金额", "total_amount"),
}

# field -> (aliases, required column)
COLUMNS: dict[str, tuple[tuple[str, ...], bool]] = {
    "name": (("收款人", "姓名", "名称", "收款人名称", "payee", "name"), True),
    "id_number": (("证件号码", "身份证号", "身份证号码", "统一社会信用代码", "id_number"), True),
    "wallet_id": (("钱包编号", "数字人民币钱包", "数字人民币钱包编号", "钱包id", "wallet_id"), True),
    "amount": (("金额", "amount"), True),  # "金额(元)" too: a unit in brackets is ignored
    "memo": (("用途", "附言", "备注", "memo"), False),
    "category": (("类别", "category"), False),
}

LAYOUT = SheetLayout(
    columns=COLUMNS,
    header_items=HEADER_KEYS,
    ignored_columns=("序号", "no", "错误说明", "错误", "errors"),
    sheet_title="收款人",
)

# 类别 as typed (header_key form: case, spaces and a bracketed translation dropped) -> ID kind.
_CATEGORIES = {"个人": RESIDENT, "person": RESIDENT, "单位": USCC, "organization": USCC, "organisation": USCC}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
# Not frozen: a frozen dataclass's __init__ costs about 1 µs more a line, a tenth of the parsing time.
@dataclass(slots=True)
class PayeeLine:
    line: int  # row number as the clerk sees it
    name: str
    id_kind: str  # "resident" | "uscc"
    id_number: str  # normalised: upper case, 18 characters
    wallet_id: str
    amount_fen: int
    memo: str
    warnings: tuple[str, ...] = ()  # e.g. a resident ID's unknown region


@dataclass
class PayeeHeader:
    line_count: int | None = None  # as declared in the file
    total_amount_fen: int | None = None  # as declared in the file


@dataclass
class PayeeTotals:
    """Over the valid lines (what would be paid)."""

    lines: int = 0
    amount_fen: int = 0


@dataclass
class ParsedPayees(ParsedSheet):
    """The file's facts and problems (see ParsedSheet), with the payee header and sums."""

    lines: list[PayeeLine]  # filled only with keep_lines=True
    header: PayeeHeader
    file_amount_fen: int  # sum of every line's readable amount, valid or not
    totals: PayeeTotals


# ---------------------------------------------------------------------------------------------
# Messages (with the shared ones: required, amount_*, column_*, line_count_format)
# ---------------------------------------------------------------------------------------------
_MESSAGES = {
    **spreadsheets.MESSAGES,
    "name_format": f"收款人名称超过{NAME_MAX_CHARS}字或以= + - @开头 "
                   f"(payee name is longer than {NAME_MAX_CHARS} characters or starts with = + - @)",
    "id_number_format": "证件号码应为18位身份证号或统一社会信用代码 "
                        "(ID number must be an 18-character resident ID or unified social credit code)",
    "amount_not_positive": "金额必须大于零 (amount must be more than zero)",
    "memo_too_long": f"用途最多{MEMO_MAX_CHARS}个字 (memo must be at most {MEMO_MAX_CHARS} characters)",
    "category_format": "类别应为“个人”或“单位” (category must be 个人/person or 单位/organization)",
}
_CATEGORY_MISMATCH = {
    RESIDENT: "类别为个人，证件号码却是统一社会信用代码 (category is person, but the ID number is a unified social credit code)",
    USCC: "类别为单位，证件号码却是身份证号 (category is organization, but the ID number is a resident ID)",
}

# A subsidy run pays the same few amounts to thousands of people: their texts are read once (a few MB at most).
_AMOUNT_CACHE_SIZE = 65_536

_HEADER_READERS = {
    "line_count": read_line_count,
    "total_amount": lambda text: amount_to_fen(compact_text(text)),
}


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
def parse_payee_file(
    data,
    *,
    filename: str,
    line_sink: Callable[[PayeeLine], None] | None = None,
    keep_lines: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO,
) -> ParsedPayees:
    """Read a payee file (CSV in UTF-8/GBK/GB18030 or XLSX) and check every line.

    `data` is bytes or a binary file-like object; `filename` decides the claimed type (.csv or .xlsx),
    which the content must confirm. Every problem of every line is collected (up to `max_problems`
    stored; `problem_count` counts all). Valid lines go to `line_sink` as they are read, and into
    `.lines` only with `keep_lines=True` (small files, tests); otherwise nothing per line is kept
    apart from the duplicate tables (12 bytes a slot).

    Raises PayeeFileRefused (with `.code`) for a file that cannot be read as a payee file:
    file_too_large, too_many_rows, not_a_spreadsheet, unsupported_format, damaged_file, zip_bomb,
    formula, encoding, malformed_csv, no_header_row.
    """
    checked = check_file(_LineChecker, data=data, filename=filename, line_sink=line_sink, keep_lines=keep_lines,
                         max_bytes=max_bytes, max_rows=max_rows, max_problems=max_problems,
                         max_uncompressed_bytes=max_uncompressed_bytes, max_compression_ratio=max_compression_ratio)
    values, checker = checked.header_values, checked.checker
    header = PayeeHeader(line_count=values.get("line_count"), total_amount_fen=values.get("total_amount"))
    if checker.all_amounts_read:
        checked.sheet.check_declared_total("total_amount", header.total_amount_fen, checker.file_amount_fen,
                                           code="total_amount_mismatch", total_zh="金额合计", sum_zh="各行金额之和",
                                           total_en="total amount")
    return ParsedPayees(
        **checked.sheet_fields(),
        header=header,
        file_amount_fen=checker.file_amount_fen,
        totals=PayeeTotals(lines=checker.valid_lines, amount_fen=checker.amount_fen),
    )


def _looks_like_resident_id(number: str) -> bool:
    if len(number) == 18:
        return number[:17].isdigit() and (number[17].isdigit() or number[17] == "X")
    return len(number) == 15 and number.isdigit()  # an old 15-digit number, converted by the foundation


def _looks_like_uscc(number: str) -> bool:
    return len(number) == 18 and number.isascii() and number.isalnum()


class _LineChecker(LineChecker):
    """Checks one payee line after another and keeps the running sums and duplicate tables."""

    layout = LAYOUT
    messages = _MESSAGES
    header_readers = _HEADER_READERS
    bytes_per_line = 64

    def __init__(self, sheet: SheetReader, *, expected_lines: int, line_sink, keep_lines: bool):
        super().__init__(sheet, expected_lines=expected_lines, line_sink=line_sink, keep_lines=keep_lines)
        self.column_index = tuple(sheet.index.get(name, -1)
                                  for name in ("name", "id_number", "wallet_id", "amount", "memo", "category"))
        self.amount_fen = 0
        self.file_amount_fen = 0
        self.all_amounts_read = True
        self.amount_cache: dict[str, int] = {}  # text -> fen of positive amounts, the first ones seen
        # One table for both kinds of ID: resident IDs are exact keys, credit codes their 64-bit hash.
        self.seen_ids = SeenTable(expected_lines)

    def read_id(self, number: str, expected_kind: str | None) -> tuple[str, str, tuple[str, ...]]:
        """-> (kind, number, warnings). An 18-digit number can look like both kinds: the category's
        kind is tried first, else a resident ID. Raises InvalidIdentifier (the first kind's reason)."""
        number = number.upper()
        kinds = (USCC, RESIDENT) if expected_kind == USCC else (RESIDENT, USCC)
        first_error = None
        for kind in kinds:
            try:
                if kind == RESIDENT and _looks_like_resident_id(number):
                    return (RESIDENT, *self.check_resident_id(number))
                if kind == USCC and _looks_like_uscc(number):
                    return USCC, validate_uscc(number), ()
            except InvalidIdentifier as exc:
                first_error = first_error or exc
        raise first_error or InvalidIdentifier(_MESSAGES["id_number_format"], "id_number_format")

    def check(self, line: int, cells: list[str]) -> None:
        problems = self.problems
        before = problems.count
        add = problems.add
        labels = self.labels
        i_name, i_id, i_wallet, i_amount, i_memo, i_category = self.column_index

        name = normalize_text(cells[i_name]) if i_name >= 0 else ""
        if name:
            # Digits are allowed (organisations have them); the operator matches the name to the wallet holder.
            if len(name) > NAME_MAX_CHARS or name.startswith(FORMULA_START):
                add(line, labels["name"], "name_format")
            elif not name.isprintable() and CONTROL_CHARACTER.search(name):
                add(line, labels["name"], "control_character")
        elif i_name >= 0:
            add(line, labels["name"], "required")

        expected_kind = None
        category = cells[i_category] if i_category >= 0 else ""
        if category and not category.isspace():
            expected_kind = _CATEGORIES.get(category) or _CATEGORIES.get(header_key(category))  # as typed: common
            if expected_kind is None:
                add(line, labels["category"], "category_format")

        payee_id = self.read_identifier(line, cells, i_id, "id_number", self.read_id, expected_kind)
        id_ok = bool(payee_id)
        id_kind, id_number, warnings = payee_id or ("", "", ())
        if id_ok and expected_kind is not None and id_kind != expected_kind:
            add(line, labels["category"], "category_mismatch", _CATEGORY_MISMATCH[expected_kind])

        wallet_id = self.read_wallet(line, cells, i_wallet)

        amount = 0
        raw = cells[i_amount] if i_amount >= 0 else ""
        cached = self.amount_cache.get(raw)
        if cached is not None:
            amount = cached
            self.file_amount_fen += amount
        elif raw and not raw.isspace():
            try:
                amount = amount_to_fen(raw)
                self.file_amount_fen += amount
                if amount == 0:
                    add(line, labels["amount"], "amount_not_positive")
                elif len(self.amount_cache) < _AMOUNT_CACHE_SIZE:
                    self.amount_cache[raw] = amount
            except BadValue as exc:
                add(line, labels["amount"], exc.code, str(exc))
                self.all_amounts_read = False
        elif i_amount >= 0:
            add(line, labels["amount"], "required")
            self.all_amounts_read = False

        memo = normalize_text(cells[i_memo]) if i_memo >= 0 else ""
        if len(memo) > MEMO_MAX_CHARS:
            add(line, labels["memo"], "memo_too_long")
        elif memo and not memo.isprintable() and CONTROL_CHARACTER.search(memo):
            add(line, labels["memo"], "control_character")

        # Duplicates: the first occurrence stays valid, each later one names it.
        if id_ok:
            key = resident_id_key(id_number) if id_kind == RESIDENT else hash(id_number)
            earlier = self.seen_ids.add(key, line)
            if earlier is not None:
                add(line, labels["id_number"], "duplicate_id_number",
                    f"证件号码与第{earlier}行重复 (ID number repeats line {earlier})")
        if wallet_id:
            self.check_duplicate_wallet(line, wallet_id)

        if problems.count != before:
            self.invalid_lines += 1
            return
        self.amount_fen += amount
        self.accept(PayeeLine(line, name, id_kind, id_number, wallet_id, amount, memo, warnings))


# The uploaded payee file with an error column, as CSV or XLSX (see spreadsheets.write_error_report).
write_error_report = LAYOUT.write_error_report
