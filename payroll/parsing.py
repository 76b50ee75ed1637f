"""Payroll files (CSV, XLSX) to plain validated rows. No database; the format is in payroll/README.md.

- `parse_payroll_file` reads a file row by row, normalises what people type, checks every line and
  collects every problem (line number and column as the user sees them, a code, a bilingual reason).
  Memory stays bounded: lines are handed to `line_sink` as they are read (or kept only when asked),
  and duplicate detection keeps 12 bytes a slot per key, not the rows.
- A file that is not what it claims (oversized, not a spreadsheet, a zip bomb, formulas, too many
  rows, undecodable) raises `PayrollFileRefused` with a clerk-readable message and a code.
- `iter_original_rows` + `write_error_report` give back the file as typed, with an error column, as
  CSV (formula-injection safe) or XLSX, ready to fix and upload again.
"""
from __future__ import annotations

import codecs
import csv
import datetime
import hashlib
import io
import re
import tempfile
import zipfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from stdnum.cn import ric

from treasury.identifiers import InvalidIdentifier, validate_resident_id, validate_uscc, validate_wallet_id
from treasury.money import fen_to_yuan_str

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_ROWS = 1_000_000  # data lines; the header block and blank rows get EXTRA_ROWS on top
EXTRA_ROWS = 10_000
DEFAULT_MAX_PROBLEMS = 10_000
DEFAULT_MAX_UNCOMPRESSED_BYTES = 2 * 1024 * 1024 * 1024
DEFAULT_MAX_COMPRESSION_RATIO = 200  # deflate tops out near 1030:1; real sheets stay well under 50:1
HEADER_SEARCH_ROWS = 50
MAX_ZIP_MEMBERS = 10_000
_SNIFF_BYTES = 64 * 1024
_CHUNK = 256 * 1024

ERROR_COLUMN_TITLE = "错误说明 (errors)"


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
_IGNORED_COLUMNS = ("错误说明", "错误", "errors", "备注", "remarks", "序号", "no")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
class PayrollFileRefused(ValueError):
    """The file as a whole cannot be read as a payroll file; `code` is for API clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int  # row number as the user sees it (spreadsheet row, CSV record)
    column: str  # header text as written in the file ("" for the whole line)
    code: str
    message: str  # "中文 (English)"


@dataclass(frozen=True, slots=True)
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

    @property
    def components_fen(self) -> dict[str, int]:
        return {name: getattr(self, name + "_fen") for name in PAY_COMPONENTS}

    @property
    def deductions_fen(self) -> dict[str, int]:
        return {name: getattr(self, name + "_fen") for name in DEDUCTIONS}


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
class ParsedPayroll:
    file_format: str  # "csv" | "xlsx"
    encoding: str | None  # "utf-8" | "gb18030" for CSV
    content_sha256: str
    header: PayrollHeader
    header_row: int | None  # line of the column header row
    columns: list[str]  # header row as written in the file
    ignored_columns: list[str]
    line_total: int  # data lines in the file (blank rows not counted)
    invalid_line_count: int
    file_net_fen: int  # sum of every line's readable net, valid or not
    totals: PayrollTotals
    problems: list[LineProblem]
    problem_count: int  # may exceed len(problems) when problems_truncated
    problems_truncated: bool
    lines: list[PayrollLine]  # filled only with keep_lines=True

    @property
    def is_valid(self) -> bool:
        return self.problem_count == 0


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
_MESSAGES = {
    "required": "必填项为空 (required value is missing)",
    "column_missing": "缺少必填列 (required column is missing)",
    "column_duplicate": "列重复出现 (column appears more than once)",
    "no_pay_component": "至少需要一列工资项目，如基本工资 (at least one pay component column is needed, e.g. 基本工资)",
    "header_missing": "表头缺少此项 (this header item is missing)",
    "amount_format": "金额格式无效，应为元，最多两位小数 (amount must be yuan with at most two decimals)",
    "amount_decimals": "金额最多两位小数 (amount has more than two decimals)",
    "amount_negative": "金额不能为负 (amount must not be negative)",
    "amount_too_large": "金额过大 (amount is too large)",
    "net_not_positive": "实发金额必须大于零 (net must be more than zero)",
    "name_format": "姓名格式无效 (name is not a valid name)",
    "employee_no_format": "工号过长或含非法字符 (employee number is too long or starts with = + - @)",
    "period_format": "工资所属期应为YYYY-MM，如2025-06 (pay period must be YYYY-MM, e.g. 2025-06)",
    "line_count_format": "总笔数应为整数 (line count must be a whole number)",
}


def _reason(code: str) -> str:
    return _MESSAGES[code]


# ---------------------------------------------------------------------------------------------
# Normalisation of what people type
# ---------------------------------------------------------------------------------------------
# Full-width ASCII (U+FF01..U+FF5E) to half-width, ideographic and no-break spaces to a space, full-width
# yuan/yen signs to "¥", invisible characters dropped. Deliberately not NFKC: NFKC also rewrites CJK
# compatibility ideographs, which would change some people's names.
_FOLD = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FOLD.update({0x3000: " ", 0x00A0: " ", 0x202F: " ", 0xFFE5: "¥", 0xFFE0: None, 0xFFE1: None})
_FOLD.update(dict.fromkeys([0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF], None))
_FOLD = str.maketrans(_FOLD)
_WHITESPACE = re.compile(r"\s+")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_HAS_DIGIT = re.compile(r"\d").search
_AMOUNT_CACHE_SIZE = 4_096


def normalize_text(value: str) -> str:
    """Half-width, trimmed, inner whitespace runs folded to one space."""
    if not value.isascii():
        value = value.translate(_FOLD)
    value = value.strip()
    if "  " in value or "\t" in value or "\n" in value:
        value = _WHITESPACE.sub(" ", value)
    return value


def _compact(value: str) -> str:
    """For identifiers and amounts: half-width, no spaces at all, no Excel text apostrophe."""
    if not value.isascii():
        value = value.translate(_FOLD)
    if " " in value or "\t" in value:
        value = _WHITESPACE.sub("", value)
    value = value.strip()
    if value.startswith("'"):
        value = value[1:]
    return value


def _header_key(value: str) -> str:
    """Header text to a lookup key: half-width, lower case, no spaces/underscores, unit suffix dropped."""
    key = normalize_text(value).casefold()
    key = re.sub(r"[(\[（【].*?[)\]）】]", "", key)  # 基本工资(元), 姓名 (name)
    key = key.rstrip(":：")
    return re.sub(r"[\s_\-*]", "", key)


def _alias_map(spec: dict) -> dict[str, str]:
    mapping = {}
    for name, entry in spec.items():
        aliases = entry[0] if isinstance(entry[0], tuple) else entry
        for alias in aliases:
            mapping[_header_key(alias)] = name
    return mapping


_HEADER_ALIASES = _alias_map(HEADER_KEYS)
_COLUMN_ALIASES = _alias_map(COLUMNS)
_IGNORED_KEYS = {_header_key(a) for a in _IGNORED_COLUMNS} | {_header_key(ERROR_COLUMN_TITLE)}


# ---------------------------------------------------------------------------------------------
# Amounts (exact: text or Decimal(repr(float)), never float arithmetic)
# ---------------------------------------------------------------------------------------------
class _BadValue(Exception):
    def __init__(self, code: str, message: str | None = None):
        super().__init__(code)
        self.code = code
        self.message = message or _reason(code)


_PLAIN_AMOUNT = re.compile(r"(\d{1,13})(?:\.(\d{1,2}))?")
_LOOSE_AMOUNT = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
_MAX_YUAN_DIGITS = 13


def _amount_slow(text: str) -> int:
    cleaned = _compact(text)
    if cleaned.startswith("(") and cleaned.endswith(")"):  # accounting style negative
        cleaned = "-" + cleaned[1:-1]
    cleaned = cleaned.replace("¥", "").replace("元", "").replace("RMB", "").replace("CNY", "")
    if cleaned.startswith("-¥") or cleaned.startswith("¥-"):
        cleaned = "-" + cleaned[2:]
    if "," in cleaned:
        if not _THOUSANDS.fullmatch(cleaned):
            raise _BadValue("amount_format")  # "8000,50" must never become 800050
        cleaned = cleaned.replace(",", "")
    match = _LOOSE_AMOUNT.fullmatch(cleaned)
    if not match:
        raise _BadValue("amount_format")
    sign, whole, fraction = match.groups()
    fraction = (fraction or "").rstrip("0")  # 8000.100 means 8000.10; what matters is the value
    if len(fraction) > 2:
        raise _BadValue("amount_decimals")
    if sign == "-" and (whole.strip("0") or fraction):
        raise _BadValue("amount_negative")
    if len(whole.lstrip("0")) > _MAX_YUAN_DIGITS:
        raise _BadValue("amount_too_large")
    return int(whole) * 100 + int(fraction.ljust(2, "0"))


def amount_to_fen(text: str) -> int:
    """Yuan as typed ("8,000.10", "８０００.1", "¥8000") to integer fen; raises on anything doubtful."""
    match = _PLAIN_AMOUNT.fullmatch(text)
    if match:
        whole, fraction = match.groups()
        if fraction is None:
            return int(whole) * 100
        return int(whole) * 100 + int(fraction) * (10 if len(fraction) == 1 else 1)
    return _amount_slow(text)


def _whole_number(text: str) -> int:
    cleaned = _compact(text).replace(",", "")
    if re.fullmatch(r"\d{1,9}", cleaned):
        return int(cleaned)
    if re.fullmatch(r"\d{1,9}\.0*", cleaned):
        return int(cleaned.split(".")[0])
    raise _BadValue("line_count_format")


_PERIOD = re.compile(r"(\d{4})\s*(?:[-/.年]\s*)?(\d{1,2})(?:\s*月)?(?:[-/.](0?1)(?:日)?)?")


def _period(text: str) -> str:
    match = _PERIOD.fullmatch(_compact(text))
    if not match:
        raise _BadValue("period_format")
    year, month = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and 1990 <= year <= 2099):
        raise _BadValue("period_format")
    return f"{year:04d}-{month:02d}"


# ---------------------------------------------------------------------------------------------
# Identifiers: the foundation's validators decide; a fast path skips stdnum's region lookup when the
# same region and birth year were already seen (the region note depends on nothing else).
# ---------------------------------------------------------------------------------------------
class _ResidentIdChecker:
    def __init__(self):
        self._region_notes: dict[str, tuple[str, ...]] = {}

    def __call__(self, text: str) -> tuple[str, tuple[str, ...]]:
        number = text.upper()
        if len(number) == 18 and number.isascii() and number[:17].isdigit() and (
            number[17].isdigit() or number[17] == "X"
        ):
            notes = self._region_notes.get(number[:10])
            if notes is not None and ric.calc_check_digit(number) == number[17]:
                try:
                    datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
                except ValueError:
                    pass  # let the foundation word the error
                else:
                    return number, notes
        checked = validate_resident_id(number)  # raises InvalidIdentifier
        if len(self._region_notes) > 200_000:
            self._region_notes.clear()
        self._region_notes[checked.number[:10]] = checked.warnings
        return checked.number, checked.warnings


# ---------------------------------------------------------------------------------------------
# Duplicate detection in bounded memory
# ---------------------------------------------------------------------------------------------
class _SeenTable:
    """Open-addressing table of 64-bit keys -> first line number, in two flat arrays (12 bytes a slot,
    at most 80% full: linear probing stays short at that load with a multiplicative hash).

    Keys are exact for wallet ids (16 digits fit in 63 bits) and Python's 64-bit string hash for
    employee numbers (a false duplicate needs a 64-bit collision: about 1 in 10^7 for a million lines).
    """

    _MULTIPLIER = 0x9E3779B97F4A7C15

    def __init__(self, expected: int = 1024):
        bits = 10
        while (1 << bits) * 0.8 < expected:
            bits += 1
        self._allocate(bits)

    def _allocate(self, bits: int) -> None:
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._shift = 64 - bits
        self._keys = array("q", bytes(8 << bits))
        self._lines = array("i", bytes(4 << bits))
        self._used = 0
        self._limit = int((1 << bits) * 0.8)

    def add(self, key: int, line: int) -> int | None:
        """Record key at line; return the earlier line if the key was already there."""
        key = (key & 0x7FFFFFFFFFFFFFFF) or 1  # 0 marks an empty slot
        keys = self._keys
        mask = self._mask
        slot = ((key * self._MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> self._shift
        while True:
            found = keys[slot]
            if found == 0:
                break
            if found == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        keys[slot] = key
        self._lines[slot] = line
        self._used += 1
        if self._used > self._limit:
            self._grow()
        return None

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        self._allocate(self._bits + 1)
        for key, line in zip(old_keys, old_lines):
            if key:
                self.add(key, line)


# ---------------------------------------------------------------------------------------------
# Reading bytes: size limit while reading, content hash of exactly what was read
# ---------------------------------------------------------------------------------------------
def _refuse_oversized(limit: int) -> PayrollFileRefused:
    return PayrollFileRefused(
        f"文件超过大小上限 {limit // (1024 * 1024)} MB (file is larger than the {limit // (1024 * 1024)} MB limit)",
        "file_too_large",
    )


class _MeteredReader(io.RawIOBase):
    def __init__(self, source, *, limit: int):
        self._source = source
        self._limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.size += n
        if self.size > self._limit:
            raise _refuse_oversized(self._limit)
        self.sha256.update(data)
        return n


@dataclass
class _Source:
    stream: io.BufferedIOBase  # seekable
    size: int | None


def _open_source(data, *, max_bytes: int) -> _Source:
    """Bytes or a file-like object -> a seekable binary stream, refusing oversized input up front."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > max_bytes:
            raise _refuse_oversized(max_bytes)
        return _Source(io.BytesIO(bytes(data)), len(data))
    stream = data
    size = getattr(data, "size", None)
    seekable = getattr(stream, "seekable", lambda: False)()
    if seekable:
        try:
            start = stream.tell()
            end = stream.seek(0, io.SEEK_END)
            stream.seek(start)
            size = end - start
        except (OSError, ValueError):
            seekable = False
    if size is not None and size > max_bytes:
        raise _refuse_oversized(max_bytes)
    if not seekable:  # spool once (limit enforced while copying) so the file can be read twice
        spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
        copied = 0
        while chunk := stream.read(_CHUNK):
            copied += len(chunk)
            if copied > max_bytes:
                raise _refuse_oversized(max_bytes)
            spool.write(chunk)
        spool.seek(0)
        return _Source(spool, copied)
    return _Source(stream, size)


# ---------------------------------------------------------------------------------------------
# Recognising what the file really is
# ---------------------------------------------------------------------------------------------
def _refuse_not_spreadsheet(detail_zh: str, detail_en: str) -> PayrollFileRefused:
    return PayrollFileRefused(
        f"不是有效的工资表文件：{detail_zh} (not a payroll spreadsheet: {detail_en})", "not_a_spreadsheet"
    )


def _sniff_kind(head: bytes, filename: str) -> str:
    name = (filename or "").lower()
    if head.startswith(b"%PDF"):
        raise _refuse_not_spreadsheet("这是PDF文件", "this is a PDF file")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise PayrollFileRefused(
            "这是旧版Excel(.xls)或加密的工作簿，请另存为不设密码的.xlsx "
            "(old .xls or password-protected workbook: save it as .xlsx without a password)",
            "unsupported_format",
        )
    is_zip = head.startswith(b"PK\x03\x04")
    if name.endswith(".xlsx"):
        if not is_zip:
            raise _refuse_not_spreadsheet("文件名为.xlsx但内容不是Excel工作簿", "named .xlsx but is not an Excel workbook")
        return "xlsx"
    if name.endswith(".csv") or name.endswith(".txt"):
        if is_zip:
            raise _refuse_not_spreadsheet("文件名为.csv但内容是压缩包或Excel工作簿", "named .csv but is a zip or Excel workbook")
        if b"\x00" in head:
            raise _refuse_not_spreadsheet("文件名为.csv但内容不是文本", "named .csv but is not text")
        return "csv"
    raise PayrollFileRefused(
        "只接受.csv或.xlsx文件 (only .csv and .xlsx files are accepted)", "unsupported_format"
    )


# ---------------------------------------------------------------------------------------------
# Row sources: yield (line_number, cells) with cells as text exactly as the user typed them
# ---------------------------------------------------------------------------------------------
def _detect_encoding(head: bytes, complete: bool) -> tuple[str, bool]:
    """-> (codec, ascii_only). UTF-8 (BOM or not) when the start decodes as UTF-8, else GB18030 (covers GBK)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        return "utf-8-sig", head.isascii()
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(head, final=complete)
    except UnicodeDecodeError:
        raise PayrollFileRefused(
            "无法识别文件编码，请保存为UTF-8或GBK编码的CSV (cannot decode the file: save the CSV as UTF-8 or GBK)",
            "encoding",
        )
    return "gb18030", False


class _RowReader:
    """Opens a payroll file and yields its rows; records what it learnt (format, encoding, hash)."""

    def __init__(self, data, *, filename: str, max_bytes: int, max_physical_rows: int,
                 max_uncompressed_bytes: int, max_compression_ratio: float):
        self.source = _open_source(data, max_bytes=max_bytes)
        self.filename = filename
        self.max_bytes = max_bytes
        self.max_physical_rows = max_physical_rows
        self.max_uncompressed_bytes = max_uncompressed_bytes
        self.max_compression_ratio = max_compression_ratio
        self.start = self.source.stream.tell()
        head = self.source.stream.read(_SNIFF_BYTES)
        self.source.stream.seek(self.start)
        self.kind = _sniff_kind(head, filename)
        self.encoding: str | None = None
        self.content_sha256 = ""
        self._head = head

    # CSV -----------------------------------------------------------------------------------
    def _csv_rows(self, codec: str) -> Iterator[tuple[int, list[str]]]:
        stream = self.source.stream
        stream.seek(self.start)
        meter = _MeteredReader(stream, limit=self.max_bytes)
        text = io.TextIOWrapper(io.BufferedReader(meter, _CHUNK), encoding=codec, errors="strict", newline="")
        reader = csv.reader(text)
        line = 0
        try:
            for line, row in enumerate(reader, start=1):
                if line > self.max_physical_rows:
                    raise _too_many_rows(self.max_physical_rows - EXTRA_ROWS)
                yield line, row
        except csv.Error as exc:
            raise PayrollFileRefused(
                f"CSV格式错误，第{line + 1}行附近 (malformed CSV near line {line + 1}: {exc})", "malformed_csv"
            )
        self.content_sha256 = meter.sha256.hexdigest()

    def _iter_csv(self) -> Iterator[tuple[int, list[str]]]:
        complete = len(self._head) < _SNIFF_BYTES
        codec, ascii_start = _detect_encoding(self._head, complete=complete)
        if ascii_start and not complete and not self._whole_file_is_utf8():
            codec = "gb18030"  # English header aliases up front, GBK names further down
        self.encoding = "utf-8" if codec == "utf-8-sig" else codec
        try:
            yield from self._csv_rows(codec)
        except UnicodeDecodeError:
            raise PayrollFileRefused(
                "文件编码不一致或损坏，请整体保存为UTF-8或GBK (the file mixes encodings or is damaged: save it as UTF-8 or GBK)",
                "encoding",
            )

    def _whole_file_is_utf8(self) -> bool:
        stream = self.source.stream
        stream.seek(self.start)
        decoder = codecs.getincrementaldecoder("utf-8")()
        read = 0
        try:
            while chunk := stream.read(_CHUNK):
                read += len(chunk)
                if read > self.max_bytes:
                    raise _refuse_oversized(self.max_bytes)
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return True
        except UnicodeDecodeError:
            return False
        finally:
            stream.seek(self.start)

    # XLSX ----------------------------------------------------------------------------------
    def _check_zip(self) -> None:
        stream = self.source.stream
        stream.seek(self.start)
        meter = _MeteredReader(stream, limit=self.max_bytes)
        while meter.read(_CHUNK):
            pass
        self.content_sha256 = meter.sha256.hexdigest()
        stream.seek(self.start)
        damaged = PayrollFileRefused(
            "Excel文件已损坏或不完整 (the Excel file is damaged or incomplete)", "damaged_file"
        )
        try:
            with zipfile.ZipFile(stream) as archive:
                members = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            raise damaged
        names = {m.filename for m in members}
        if "xl/workbook.xml" not in names or "[Content_Types].xml" not in names:
            raise _refuse_not_spreadsheet("压缩包中没有Excel工作簿", "the zip holds no Excel workbook")
        if len(members) > MAX_ZIP_MEMBERS:
            raise _zip_bomb()
        total = 0
        for member in members:
            # zipfile never inflates a member past its declared size (and checks the CRC), so the
            # declared sizes are an upper bound we can trust before opening anything.
            total += member.file_size
            if member.file_size > 1024 * 1024 and member.file_size > self.max_compression_ratio * max(
                member.compress_size, 1
            ):
                raise _zip_bomb()
        if total > self.max_uncompressed_bytes:
            raise _zip_bomb()
        stream.seek(self.start)

    def _iter_xlsx(self) -> Iterator[tuple[int, list[str]]]:
        import openpyxl  # imported here: CSV-only callers do not pay for it

        self._check_zip()
        try:
            workbook = openpyxl.load_workbook(
                self.source.stream, read_only=True, data_only=False, keep_links=False, keep_vba=False
            )
        except Exception:  # openpyxl raises many kinds (KeyError, XML errors) for a broken package
            raise PayrollFileRefused(
                "无法读取Excel文件，文件可能已损坏 (cannot read the Excel file; it may be damaged)", "damaged_file"
            )
        try:
            sheet = workbook.worksheets[0]
            sheet.reset_dimensions()  # never trust (or pad to) the declared dimension
            line = 0
            for line, values in enumerate(sheet.iter_rows(min_row=1, min_col=1, values_only=True), start=1):
                if line > self.max_physical_rows:
                    raise _too_many_rows(self.max_physical_rows - EXTRA_ROWS)
                yield line, [_xlsx_text(value, line, index) for index, value in enumerate(values)]
        except PayrollFileRefused:
            raise
        except Exception:
            raise PayrollFileRefused(
                "Excel文件已损坏或不完整 (the Excel file is damaged or incomplete)", "damaged_file"
            )
        finally:
            workbook.close()

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        return self._iter_xlsx() if self.kind == "xlsx" else self._iter_csv()


def _too_many_rows(limit: int) -> PayrollFileRefused:
    return PayrollFileRefused(f"文件行数超过上限 {limit} (file has more than {limit} rows)", "too_many_rows")


def _zip_bomb() -> PayrollFileRefused:
    return PayrollFileRefused(
        "Excel文件解压后过大或压缩比异常，已拒绝 (the Excel file expands to an abnormal size; refused)", "zip_bomb"
    )


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _xlsx_text(value, line: int, index: int) -> str:
    """An XLSX cell value to the text a user would see; exact for numbers (repr, never float maths)."""
    if value is None:
        return ""
    kind = type(value)
    if kind is str:
        if value.startswith("="):
            raise _refuse_formula(line, index)
        return value
    if kind is int:
        return str(value)
    if kind is float:
        text = format(Decimal(repr(value)), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time(0) else value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    raise _refuse_formula(line, index)  # ArrayFormula, DataTableFormula and anything else that is not a value


def _refuse_formula(line: int, index: int) -> PayrollFileRefused:
    cell = f"{_column_letter(index)}{line}"
    return PayrollFileRefused(
        f"单元格{cell}含有公式，请复制后“选择性粘贴-数值”再上传 "
        f"(cell {cell} holds a formula: paste the values only and upload again)",
        "formula",
    )


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
    limits = dict(filename=filename, max_bytes=max_bytes, max_physical_rows=max_rows + EXTRA_ROWS,
                  max_uncompressed_bytes=max_uncompressed_bytes, max_compression_ratio=max_compression_ratio)
    reader = _RowReader(data, **limits)
    expected_lines = min(max_rows, (reader.source.size or 0) // 128 + 1)
    state = _ParseState(max_rows=max_rows, max_problems=max_problems, line_sink=line_sink,
                        keep_lines=keep_lines, expected_lines=expected_lines)
    state.consume(reader.rows())
    return state.result(reader)


def iter_original_rows(
    *, data, filename: str, max_bytes: int = DEFAULT_MAX_BYTES, max_rows: int = DEFAULT_MAX_ROWS
) -> Iterator[tuple[int, list[str]]]:
    """The file's rows as typed (text), with their line numbers: the input of `write_error_report`.

    Raises PayrollFileRefused like `parse_payroll_file`.
    """
    reader = _RowReader(data, filename=filename, max_bytes=max_bytes, max_physical_rows=max_rows + EXTRA_ROWS,
                        max_uncompressed_bytes=DEFAULT_MAX_UNCOMPRESSED_BYTES,
                        max_compression_ratio=DEFAULT_MAX_COMPRESSION_RATIO)
    return reader.rows()


class _ParseState:
    def __init__(self, *, max_rows, max_problems, line_sink, keep_lines, expected_lines):
        self.max_rows = max_rows
        self.max_problems = max_problems
        self.line_sink = line_sink
        self.keep_lines = keep_lines
        self.problems: list[LineProblem] = []
        self.problem_count = 0
        self.header = PayrollHeader()
        self.header_rows: dict[str, tuple[int, str]] = {}  # key -> (line, label as written)
        self.header_row: int | None = None
        self.columns: list[str] = []
        self.ignored_columns: list[str] = []
        self.index: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self.line_total = 0
        self.invalid_lines = 0
        self.file_net_fen = 0
        self.all_nets_read = True
        self.valid_lines = 0
        self.sums = [0] * len(AMOUNT_FIELDS)
        self.lines: list[PayrollLine] = []
        self.seen_employees = _SeenTable(expected_lines)
        self.seen_wallets = _SeenTable(expected_lines)
        self.check_resident_id = _ResidentIdChecker()
        self.amount_cache: dict[str, int] = {}
        self.first_line = None

    # problems ------------------------------------------------------------------------------
    def add(self, line: int, column: str, code: str, message: str | None = None) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(LineProblem(line, column, code, message or _reason(code)))

    # rows ----------------------------------------------------------------------------------
    def consume(self, rows: Iterable[tuple[int, list[str]]]) -> None:
        check_line = self.check_line
        for line, cells in rows:
            if self.first_line is None:
                self.first_line = line
            if self.header_row is None:
                self.header_block_row(line, cells)
                continue
            for cell in cells:  # skip blank rows cheaply
                if cell and not cell.isspace():
                    break
            else:
                continue
            self.line_total += 1
            if self.line_total > self.max_rows:
                raise _too_many_rows(self.max_rows)
            check_line(line, cells)
        if self.header_row is None:
            raise _no_header_row()

    def header_block_row(self, line: int, cells: list[str]) -> None:
        texts = [normalize_text(c) for c in cells]
        if not any(texts):
            return
        keys = [_header_key(t) for t in texts]
        if sum(1 for k in keys if k in _COLUMN_ALIASES) >= 3:
            self.column_header_row(line, cells, keys)
            return
        if line >= HEADER_SEARCH_ROWS:
            raise _no_header_row()
        filled = [(i, t) for i, t in enumerate(texts) if t]
        first_index, first_text = filled[0]
        label, value = cells[first_index].strip(), (filled[1][1] if len(filled) > 1 else "")
        key = _HEADER_ALIASES.get(keys[first_index])
        if key is None and ":" in first_text:  # "工资所属期：2025-06" in one cell
            label, _, value = first_text.partition(":")
            key = _HEADER_ALIASES.get(_header_key(label))
        if key is None or key in self.header_rows:
            return  # a title row or notes: not ours to judge
        self.header_rows[key] = (line, label)
        try:
            self.read_header_value(key, value)
        except _BadValue as exc:
            self.add(line, label, exc.code, exc.message)
        except InvalidIdentifier as exc:
            self.add(line, label, exc.code, str(exc))

    def read_header_value(self, key: str, value: str) -> None:
        if not value:
            raise _BadValue("required")
        if key == "employer_uscc":
            self.header.employer_uscc = validate_uscc(_compact(value).upper())
        elif key == "period":
            self.header.period = _period(value)
        elif key == "line_count":
            self.header.line_count = _whole_number(value)
        elif key == "total_net":
            self.header.total_net_fen = amount_to_fen(_compact(value))

    def column_header_row(self, line: int, cells: list[str], keys: list[str]) -> None:
        self.header_row = line
        self.columns = [c.strip() for c in cells]
        for i, key in enumerate(keys):
            if not key:
                continue
            name = _COLUMN_ALIASES.get(key)
            if name is None:
                if key not in _IGNORED_KEYS:
                    self.ignored_columns.append(self.columns[i])
                continue
            if name in self.index:
                self.add(line, self.columns[i], "column_duplicate")
                continue
            self.index[name] = i
            self.labels[name] = self.columns[i]
        for name, (aliases, required) in COLUMNS.items():
            if required and name not in self.index:
                self.add(line, aliases[0], "column_missing")
        if not any(name in self.index for name in PAY_COMPONENTS):
            self.add(line, COLUMNS["basic_wage"][0][0], "no_pay_component")
        for key, aliases in HEADER_KEYS.items():
            if key not in self.header_rows:
                self.add(self.first_line or 1, aliases[0], "header_missing")
        self.width = max(self.index.values(), default=0) + 1
        self.amount_columns = [(position, self.index[name], self.labels[name])
                               for position, name in enumerate(AMOUNT_FIELDS) if name in self.index]
        self.text_index = tuple(self.index.get(name, -1) for name in ("employee_no", "name", "resident_id", "wallet_id"))
        self.has_components = [name for name in PAY_COMPONENTS if name in self.index]
        self.has_deductions = [name for name in DEDUCTIONS if name in self.index]

    def check_line(self, line: int, cells: list[str]) -> None:
        if len(cells) < self.width:
            cells = cells + [""] * (self.width - len(cells))
        before = self.problem_count
        add = self.add
        labels = self.labels
        i_employee, i_name, i_resident, i_wallet = self.text_index

        employee_no = _compact(cells[i_employee]) if i_employee >= 0 else ""
        if employee_no:
            if len(employee_no) > 32 or employee_no.startswith(_FORMULA_START):
                add(line, labels["employee_no"], "employee_no_format")
        elif i_employee >= 0:
            add(line, labels["employee_no"], "required")

        name = normalize_text(cells[i_name]) if i_name >= 0 else ""
        if name:
            if len(name) > 64 or name.startswith(_FORMULA_START) or _HAS_DIGIT(name):
                add(line, labels["name"], "name_format")
        elif i_name >= 0:
            add(line, labels["name"], "required")

        warnings: tuple[str, ...] = ()
        resident_id = _compact(cells[i_resident]) if i_resident >= 0 else ""
        if resident_id:
            try:
                resident_id, warnings = self.check_resident_id(resident_id)
            except InvalidIdentifier as exc:
                add(line, labels["resident_id"], exc.code, str(exc))
        elif i_resident >= 0:
            add(line, labels["resident_id"], "required")

        wallet_id = _compact(cells[i_wallet]) if i_wallet >= 0 else ""
        wallet_ok = False
        if wallet_id:
            if len(wallet_id) == 16 and wallet_id.isascii() and wallet_id.isdigit():
                wallet_ok = True
            else:
                try:
                    wallet_id = validate_wallet_id(wallet_id)
                    wallet_ok = True
                except InvalidIdentifier as exc:
                    add(line, labels["wallet_id"], exc.code, str(exc))
        elif i_wallet >= 0:
            add(line, labels["wallet_id"], "required")

        # Amounts repeat a lot in a payroll (same allowance for everyone): a bounded cache of
        # text -> fen saves most of the parsing.
        cache = self.amount_cache
        amounts = [0] * 12  # AMOUNT_FIELDS order: 5 components, gross, 5 deductions, net
        unread = 0  # bit per position that could not be read
        for position, i, label in self.amount_columns:
            raw = cells[i]
            value = cache.get(raw)
            if value is None:
                if not raw or raw.isspace():
                    if position == _GROSS or position == _NET:
                        add(line, label, "required")
                        unread |= 1 << position
                    continue  # a blank component or deduction is 0
                try:
                    value = amount_to_fen(raw)
                except _BadValue as exc:
                    add(line, label, exc.code, exc.message)
                    unread |= 1 << position
                    continue
                if len(cache) < _AMOUNT_CACHE_SIZE:  # full: keep the amounts seen first (the common ones)
                    cache[raw] = value
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

        if employee_no:
            earlier = self.seen_employees.add(hash(employee_no), line)
            if earlier is not None:
                add(line, self.labels["employee_no"], "duplicate_employee",
                    f"工号与第{earlier}行重复 (employee number repeats line {earlier})")
        if wallet_ok:
            earlier = self.seen_wallets.add(int(wallet_id) + 1, line)
            if earlier is not None:
                add(line, self.labels["wallet_id"], "duplicate_wallet",
                    f"钱包编号与第{earlier}行重复 (wallet id repeats line {earlier})")

        if self.problem_count != before:
            self.invalid_lines += 1
            return
        payroll_line = PayrollLine(line, employee_no, name, resident_id, wallet_id, *amounts, warnings)
        self.valid_lines += 1
        self.sums = list(map(int.__add__, self.sums, amounts))
        if self.line_sink is not None:
            self.line_sink(payroll_line)
        if self.keep_lines:
            self.lines.append(payroll_line)

    # end -----------------------------------------------------------------------------------
    def control_totals(self) -> None:
        declared = self.header.line_count
        if declared is not None and declared != self.line_total:
            line, label = self.header_rows["line_count"]
            self.add(line, label, "line_count_mismatch",
                     f"总笔数为{declared}，文件实有{self.line_total}笔 "
                     f"(line count says {declared}, the file has {self.line_total} lines)")
        declared_net = self.header.total_net_fen
        if declared_net is not None and self.all_nets_read and declared_net != self.file_net_fen:
            line, label = self.header_rows["total_net"]
            self.add(line, label, "total_net_mismatch",
                     f"实发合计为{fen_to_yuan_str(declared_net)}，各行实发金额之和为{fen_to_yuan_str(self.file_net_fen)} "
                     f"(total net says {fen_to_yuan_str(declared_net)}, the lines add up to "
                     f"{fen_to_yuan_str(self.file_net_fen)})")

    def result(self, reader: _RowReader) -> ParsedPayroll:
        self.control_totals()
        self.problems.sort(key=lambda p: p.line)  # stable: a line's problems stay in column order
        return ParsedPayroll(
            file_format=reader.kind,
            encoding=reader.encoding,
            content_sha256=reader.content_sha256,
            header=self.header,
            header_row=self.header_row,
            columns=self.columns,
            ignored_columns=self.ignored_columns,
            line_total=self.line_total,
            invalid_line_count=self.invalid_lines,
            file_net_fen=self.file_net_fen,
            totals=PayrollTotals(
                lines=self.valid_lines,
                gross_fen=self.sums[_GROSS],
                net_fen=self.sums[_NET],
                components_fen={name: self.sums[AMOUNT_FIELDS.index(name)] for name in PAY_COMPONENTS},
                deductions_fen={name: self.sums[AMOUNT_FIELDS.index(name)] for name in DEDUCTIONS},
            ),
            problems=self.problems,
            problem_count=self.problem_count,
            problems_truncated=self.problem_count > len(self.problems),
            lines=self.lines,
        )


def _no_header_row() -> PayrollFileRefused:
    return PayrollFileRefused(
        f"前{HEADER_SEARCH_ROWS}行中找不到列标题行（工号、姓名、身份证号……），请使用模板 "
        f"(no column header row (工号, 姓名, 身份证号 ...) in the first {HEADER_SEARCH_ROWS} rows: use the template)",
        "no_header_row",
    )


# ---------------------------------------------------------------------------------------------
# Error report
# ---------------------------------------------------------------------------------------------
def csv_safe(value: str) -> str:
    """OWASP: a cell starting with = + - @ tab or CR is prefixed with ' so no spreadsheet runs it."""
    if value and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_error_report(
    *,
    problems: Iterable[LineProblem],
    original_rows: Iterable[tuple[int, list[str]]],
    fmt: str = "csv",
    out=None,
) -> bytes:
    """The original rows with an error column appended, as CSV (UTF-8 with BOM) or XLSX.

    Every row is kept (line numbers stay those of the uploaded file), so the user fixes the
    marked rows and uploads the file again; the parser ignores the error column. CSV cells are
    formula-injection safe; XLSX cells are written as text, never as formulas. Writes to `out`
    (a binary file) when given and returns b"", else returns the bytes.
    """
    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"fmt must be 'csv' or 'xlsx', not {fmt!r}")
    by_line: dict[int, list[str]] = {}
    for problem in problems:
        text = f"{problem.column}: {problem.message}" if problem.column else problem.message
        by_line.setdefault(problem.line, []).append(text)
    rows = _report_rows(original_rows, by_line)
    if fmt == "csv":
        return _report_csv(rows, out)
    return _report_xlsx(rows, out)


def _report_rows(original_rows, by_line) -> Iterator[tuple[list[str], str]]:
    """Yield (cells, errors) with the error text lined up in one column after the widest header cell."""
    buffered = []
    width = None
    drop = None  # index of a previous report's error column, if the user re-uploaded a report
    for line, cells in original_rows:
        cells = list(cells)
        while cells and not (cells[-1] or "").strip():
            cells.pop()
        if width is None:
            keys = [_header_key(c) for c in cells]
            if sum(1 for k in keys if k in _COLUMN_ALIASES) >= 3:
                if _header_key(ERROR_COLUMN_TITLE) in keys:
                    drop = keys.index(_header_key(ERROR_COLUMN_TITLE))
                    cells = cells[:drop] + cells[drop + 1:]
                width = len(cells)
                for b_line, b_cells in buffered:
                    yield b_cells + [""] * (width - len(b_cells)), "; ".join(by_line.get(b_line, ()))
                buffered = []
                yield cells, ERROR_COLUMN_TITLE
                continue
            if len(buffered) < HEADER_SEARCH_ROWS:
                buffered.append((line, cells))
                continue
            width = max((len(c) for _, c in buffered), default=0)
            for b_line, b_cells in buffered:
                yield b_cells + [""] * (width - len(b_cells)), "; ".join(by_line.get(b_line, ()))
            buffered = []
        if drop is not None and len(cells) > drop:
            cells = cells[:drop] + cells[drop + 1:]
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        yield cells, "; ".join(by_line.get(line, ()))
    if width is None:
        width = max((len(c) for _, c in buffered), default=0)
        for b_line, b_cells in buffered:
            yield b_cells + [""] * (width - len(b_cells)), "; ".join(by_line.get(b_line, ()))


def _report_csv(rows, out) -> bytes:
    target = out if out is not None else io.BytesIO()
    text = io.TextIOWrapper(target, encoding="utf-8-sig", newline="", write_through=True)
    writer = csv.writer(text)
    for cells, errors in rows:
        writer.writerow([csv_safe(c) for c in cells] + [csv_safe(errors)])
    text.flush()
    text.detach()
    return b"" if out is not None else target.getvalue()


def _report_xlsx(rows, out) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("工资表")
    red = Font(color="C00000")

    def text_cell(value, font=None):
        cell = WriteOnlyCell(sheet, value=None)
        cell.value = value
        cell.data_type = "s"  # a string, never a formula, even if it starts with "="
        if font is not None:
            cell.font = font
        return cell

    for cells, errors in rows:
        sheet.append([text_cell(c) for c in cells] + [text_cell(errors, red if errors else None)])
    target = out if out is not None else io.BytesIO()
    workbook.save(target)
    return b"" if out is not None else target.getvalue()
