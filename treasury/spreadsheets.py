"""Spreadsheet files (CSV, XLSX) that clerks upload: read safely, row by row, as typed. No database.

Payroll files and fiscal payee files are built on this module; each domain describes its format with a
`SheetLayout` (header block items and columns: Chinese name first, then aliases) and checks the values
of a line in a `LineChecker` subclass. This module:
- opens bytes or a file with size limits, tells CSV from XLSX by content, reads UTF-8 or GBK/GB18030,
  and yields rows as typed, refusing zip bombs, formulas, too many rows (`SpreadsheetFile`);
- finds the header block items and the column header row, then yields the data lines (`SheetReader`);
- normalises what people type, reads amounts to integer fen, spots duplicates in bounded memory
  (`SeenTable`) and collects every `LineProblem` (`ProblemList`);
- runs a whole file through a domain's checks (`check_file`) into what every result holds (`ParsedSheet`);
- writes the error report: the file as typed with an error column (`write_error_report`);
- writes a format's blank template with example rows as CSV or XLSX (`SheetTemplate`).

A file that is not what it claims raises `SpreadsheetRefused` with a clerk-readable message and a code.
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
from dataclasses import dataclass
from decimal import Decimal

from stdnum.cn import ric

from treasury.identifiers import InvalidIdentifier, validate_resident_id, validate_wallet_id
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

# Reasons of the problems this module finds; a domain adds its own codes to these.
MESSAGES = {
    "required": "必填项为空 (required value is missing)",
    "column_missing": "缺少必填列 (required column is missing)",
    "column_duplicate": "列重复出现 (column appears more than once)",
    "header_missing": "表头缺少此项 (this header item is missing)",
    "amount_format": "金额格式无效，应为元，最多两位小数 (amount must be yuan with at most two decimals)",
    "amount_decimals": "金额最多两位小数 (amount has more than two decimals)",
    "amount_negative": "金额不能为负 (amount must not be negative)",
    "amount_too_large": "金额过大 (amount is too large)",
    "line_count_format": "总笔数应为整数 (line count must be a whole number)",
    "control_character": "含有不可见的控制字符，请删除后重新上传 (contains an invisible control character: delete it)",
}


# ---------------------------------------------------------------------------------------------
# Results and errors
# ---------------------------------------------------------------------------------------------
class SpreadsheetRefused(ValueError):
    """The file as a whole cannot be read; `code` is for API clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class BadValue(ValueError):
    """One value cannot be read; the caller turns it into a LineProblem at its line and column."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _bad(code: str) -> BadValue:
    return BadValue(MESSAGES[code], code)


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int  # row number as the user sees it (spreadsheet row, CSV record)
    column: str  # header text as written in the file ("" for the whole line)
    code: str
    message: str  # "中文 (English)"


class ProblemList:
    """Every problem of a file: the first `limit` kept, all of them counted."""

    def __init__(self, *, messages: dict[str, str], limit: int = DEFAULT_MAX_PROBLEMS):
        self.messages = messages
        self.limit = limit
        self.kept: list[LineProblem] = []
        self.count = 0

    def add(self, line: int, column: str, code: str, message: str | None = None) -> None:
        self.count += 1
        if len(self.kept) < self.limit:
            self.kept.append(LineProblem(line, column, code, message or self.messages[code]))

    def by_line(self) -> list[LineProblem]:
        return sorted(self.kept, key=lambda p: p.line)  # stable: a line's problems stay in column order

    @property
    def truncated(self) -> bool:
        return self.count > len(self.kept)


# ---------------------------------------------------------------------------------------------
# Normalisation of what people type
# ---------------------------------------------------------------------------------------------
# Full-width ASCII (U+FF01..U+FF5E) to half-width, ideographic and no-break spaces to a space, full-width
# yuan/yen signs to "¥", invisible characters dropped. Deliberately not NFKC: NFKC also rewrites CJK
# compatibility ideographs, which would change some people's names.
_FOLD = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FOLD.update({0x3000: " ", 0x00A0: " ", 0x202F: " ", 0xFFE5: "¥", 0xFFE0: None, 0xFFE1: None})
_FOLD.update(dict.fromkeys([0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF], None))
# translate() walks every character through a dict; most non-ASCII cells (Chinese names) have nothing
# to fold, and one regex search over the same characters says so in a third of the time.
_NEEDS_FOLD = re.compile("[" + "".join(re.escape(chr(code)) for code in sorted(_FOLD)) + "]").search
_FOLD = str.maketrans(_FOLD)
_WHITESPACE = re.compile(r"\s+")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Control characters no name or memo holds: XML 1.0 (vouchers, TIPS messages) and worksheets cannot carry them.
# Tab and line breaks are not among them: normalize_text makes them spaces.
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def normalize_text(value: str) -> str:
    """Half-width, trimmed, inner whitespace runs folded to one space."""
    if not value.isascii() and _NEEDS_FOLD(value):
        value = value.translate(_FOLD)
    value = value.strip()
    if "  " in value or "\t" in value or "\n" in value:
        value = _WHITESPACE.sub(" ", value)
    return value


def compact_text(value: str) -> str:
    """For identifiers and amounts: half-width, no spaces at all, no Excel text apostrophe."""
    if not value.isascii() and _NEEDS_FOLD(value):
        value = value.translate(_FOLD)
    if " " in value or "\t" in value:
        value = _WHITESPACE.sub("", value)
    value = value.strip()
    if value.startswith("'"):
        value = value[1:]
    return value


def header_key(value: str) -> str:
    """Header text to a lookup key: half-width, lower case, no spaces/underscores, unit suffix dropped."""
    key = normalize_text(value).casefold()
    key = re.sub(r"[(\[（【].*?[)\]）】]", "", key)  # 基本工资(元), 姓名 (name)
    key = key.rstrip(":：")
    return re.sub(r"[\s_\-*]", "", key)


# ---------------------------------------------------------------------------------------------
# Amounts (exact: text or Decimal(repr(float)), never float arithmetic)
# ---------------------------------------------------------------------------------------------
_PLAIN_AMOUNT = re.compile(r"(\d{1,13})(?:\.(\d{1,2}))?")
_LOOSE_AMOUNT = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
_MAX_YUAN_DIGITS = 13


def _amount_slow(text: str) -> int:
    cleaned = compact_text(text)
    if cleaned.startswith("(") and cleaned.endswith(")"):  # accounting style negative
        cleaned = "-" + cleaned[1:-1]
    cleaned = cleaned.replace("¥", "").replace("元", "").replace("RMB", "").replace("CNY", "")
    if cleaned.startswith("-¥") or cleaned.startswith("¥-"):
        cleaned = "-" + cleaned[2:]
    if "," in cleaned:
        if not _THOUSANDS.fullmatch(cleaned):
            raise _bad("amount_format")  # "8000,50" must never become 800050
        cleaned = cleaned.replace(",", "")
    match = _LOOSE_AMOUNT.fullmatch(cleaned)
    if not match:
        raise _bad("amount_format")
    sign, whole, fraction = match.groups()
    fraction = (fraction or "").rstrip("0")  # 8000.100 means 8000.10; what matters is the value
    if len(fraction) > 2:
        raise _bad("amount_decimals")
    if sign == "-" and (whole.strip("0") or fraction):
        raise _bad("amount_negative")
    if len(whole.lstrip("0")) > _MAX_YUAN_DIGITS:
        raise _bad("amount_too_large")
    return int(whole) * 100 + int(fraction.ljust(2, "0"))


def amount_to_fen(text: str) -> int:
    """Yuan as typed ("8,000.10", "８０００.1", "¥8000") to integer fen; raises BadValue on anything doubtful."""
    match = _PLAIN_AMOUNT.fullmatch(text)
    if match:
        whole, fraction = match.groups()
        if fraction is None:
            return int(whole) * 100
        return int(whole) * 100 + int(fraction) * (10 if len(fraction) == 1 else 1)
    return _amount_slow(text)


def read_line_count(text: str) -> int:
    """A declared line count (总笔数): a whole number, also as an Excel number cell ("120.0")."""
    cleaned = compact_text(text).replace(",", "")
    if re.fullmatch(r"\d{1,9}", cleaned):
        return int(cleaned)
    if re.fullmatch(r"\d{1,9}\.0*", cleaned):
        return int(cleaned.split(".")[0])
    raise _bad("line_count_format")


# ---------------------------------------------------------------------------------------------
# Identifiers in bulk: the foundation's validators decide; fast paths for the common, valid case
# ---------------------------------------------------------------------------------------------
class ResidentIdChecker:
    """validate_resident_id for many numbers: stdnum's region lookup is skipped when the same region
    and birth year were already seen (the region note depends on nothing else)."""

    def __init__(self):
        self._region_notes: dict[str, tuple[str, ...]] = {}
        self._birth_dates: set[str] = set()  # YYYYMMDD texts already found to be real dates

    def __call__(self, text: str) -> tuple[str, tuple[str, ...]]:
        """-> (18-character number, warnings); raises InvalidIdentifier."""
        number = text.upper()
        if len(number) == 18 and number.isascii() and number[:17].isdigit() and (
            number[17].isdigit() or number[17] == "X"
        ):
            notes = self._region_notes.get(number[:10])
            if notes is not None and ric.calc_check_digit(number) == number[17]:
                # A set lookup instead of building a date: people share birthdays, a file has a few
                # thousand distinct ones, and datetime.date() was a tenth of a line's checks.
                if number[6:14] in self._birth_dates:
                    return number, notes
                try:
                    datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
                except ValueError:
                    pass  # let the foundation word the error
                else:
                    if len(self._birth_dates) > 100_000:
                        self._birth_dates.clear()
                    self._birth_dates.add(number[6:14])
                    return number, notes
        checked = validate_resident_id(number)  # raises InvalidIdentifier
        if len(self._region_notes) > 200_000:
            self._region_notes.clear()
        self._region_notes[checked.number[:10]] = checked.warnings
        return checked.number, checked.warnings


# ---------------------------------------------------------------------------------------------
# Duplicate detection in bounded memory
# ---------------------------------------------------------------------------------------------
def resident_id_key(number: str) -> int:
    """A valid 18-character resident ID as an exact SeenTable key (below 1.1 * 10^18, fits in 63 bits):
    the number itself, or 10^18 plus its first 17 digits when the check character is X."""
    return int(number) if number[17] != "X" else 10**18 + int(number[:17])


def wallet_id_key(wallet_id: str) -> int:
    """A valid wallet id (16 digits) as an exact SeenTable key."""
    return int(wallet_id) + 1


class SeenTable:
    """Open-addressing table of 64-bit keys -> first line number, in two flat arrays (12 bytes a slot,
    at most 80% full: linear probing stays short at that load with a multiplicative hash).

    Keys are exact where a value fits in 63 bits (wallet ids, resident IDs: see the *_key functions)
    and Python's 64-bit string hash otherwise (a false duplicate needs a 64-bit collision: about 1 in
    10^7 for a million lines).
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
        # Called three times a line: the multiplier is a literal (_MULTIPLIER) and the first probe,
        # usually the last, reads no other attribute.
        key = (key & 0x7FFFFFFFFFFFFFFF) or 1  # 0 marks an empty slot
        keys = self._keys
        slot = ((key * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> self._shift
        found = keys[slot]
        while found:
            if found == key:
                return self._lines[slot]
            slot = (slot + 1) & self._mask
            found = keys[slot]
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
def refuse_oversized(limit: int) -> SpreadsheetRefused:
    return SpreadsheetRefused(
        f"文件超过大小上限 {limit // (1024 * 1024)} MB (file is larger than the {limit // (1024 * 1024)} MB limit)",
        "file_too_large",
    )


class _MeteredReader(io.RawIOBase):
    def __init__(self, source, *, limit: int):
        self._source = source
        self._limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()
        # A NUL byte seen anywhere so far (one memchr a chunk): the rows are then searched for it, so that the line
        # holding it is named. UTF-8 and GB18030 never use the byte 0 inside a character.
        self.saw_nul = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.size += n
        if self.size > self._limit:
            raise refuse_oversized(self._limit)
        self.sha256.update(data)
        if not self.saw_nul and b"\x00" in data:
            self.saw_nul = True
        return n


def _open_seekable(data, *, max_bytes: int) -> tuple[io.BufferedIOBase, int | None]:
    """Bytes or a file-like object -> (a seekable binary stream, its size), refusing oversized input up front."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > max_bytes:
            raise refuse_oversized(max_bytes)
        return io.BytesIO(bytes(data)), len(data)
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
        raise refuse_oversized(max_bytes)
    if not seekable:  # spool once (limit enforced while copying) so the file can be read twice
        spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
        copied = 0
        while chunk := stream.read(_CHUNK):
            copied += len(chunk)
            if copied > max_bytes:
                raise refuse_oversized(max_bytes)
            spool.write(chunk)
        spool.seek(0)
        return spool, copied
    return stream, size


# ---------------------------------------------------------------------------------------------
# Recognising what the file really is
# ---------------------------------------------------------------------------------------------
def _refuse_not_spreadsheet(detail_zh: str, detail_en: str) -> SpreadsheetRefused:
    return SpreadsheetRefused(f"不是有效的表格文件：{detail_zh} (not a spreadsheet: {detail_en})", "not_a_spreadsheet")


def _sniff_kind(head: bytes, filename: str) -> str:
    name = (filename or "").lower()
    if head.startswith(b"%PDF"):
        raise _refuse_not_spreadsheet("这是PDF文件", "this is a PDF file")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise SpreadsheetRefused(
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
        if is_utf16_or_32(head):
            raise refuse_utf16()
        if b"\x00" in head:
            raise _refuse_not_spreadsheet("文件名为.csv但内容不是文本", "named .csv but is not text")
        return "csv"
    raise SpreadsheetRefused("只接受.csv或.xlsx文件 (only .csv and .xlsx files are accepted)", "unsupported_format")


def is_utf16_or_32(head: bytes) -> bool:
    """Whether text starts as UTF-16 or UTF-32 does (a BOM, or a NUL byte beside each of the first ASCII characters):
    what Excel writes as "Unicode text", which is text all the same, not "not text"."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # the UTF-32 BOMs start with these too
        return True
    return len(head) >= 4 and (head[1] == head[3] == 0 or head[0] == head[2] == 0) and head[:4] != b"\x00" * 4


def refuse_utf16() -> SpreadsheetRefused:
    return SpreadsheetRefused(
        "文件为UTF-16/UTF-32编码（如Excel的“Unicode文本”），请另存为“CSV UTF-8（逗号分隔）”或“CSV（逗号分隔）” "
        "(the file is UTF-16 or UTF-32 text, such as Excel's \"Unicode Text\": save it as \"CSV UTF-8 (comma delimited)\" "
        "or \"CSV (comma delimited)\")",
        "encoding",
    )


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
        raise SpreadsheetRefused(
            "无法识别文件编码，请保存为UTF-8或GBK编码的CSV (cannot decode the file: save the CSV as UTF-8 or GBK)",
            "encoding",
        )
    return "gb18030", False


def _refuse_nul(line: int, row: list[str]) -> None:
    """Refuse a CSV row holding a NUL character, naming its cell: a text file has none (the first 64 KB are refused
    whole by `_sniff_kind`), and no database text column can store one."""
    for index, cell in enumerate(row):
        if "\x00" in cell:
            where = f"{line}行{_column_letter(index)}列"
            raise _refuse_not_spreadsheet(f"第{where}含有空字符(NUL)，不是文本",
                                          f"line {line}, column {_column_letter(index)} holds a NUL character: not text")


def _too_many_rows(limit: int) -> SpreadsheetRefused:
    return SpreadsheetRefused(f"文件行数超过上限 {limit} (file has more than {limit} rows)", "too_many_rows")


def _zip_bomb() -> SpreadsheetRefused:
    return SpreadsheetRefused(
        "Excel文件解压后过大或压缩比异常，已拒绝 (the Excel file expands to an abnormal size; refused)", "zip_bomb"
    )


def _damaged() -> SpreadsheetRefused:
    return SpreadsheetRefused("Excel文件已损坏或不完整 (the Excel file is damaged or incomplete)", "damaged_file")


# ---------------------------------------------------------------------------------------------
# Row source: yields (line_number, cells) with cells as text exactly as the user typed them
# ---------------------------------------------------------------------------------------------
class SpreadsheetFile:
    """An uploaded .csv or .xlsx file whose content must confirm its name; `rows()` reads it once.

    Raises SpreadsheetRefused (with `.code`): file_too_large, too_many_rows (`max_rows` plus EXTRA_ROWS
    for the header block and blank rows), not_a_spreadsheet, unsupported_format, damaged_file, zip_bomb,
    formula, encoding, malformed_csv. After `rows()` is read to the end, `encoding` (CSV) and
    `content_sha256` (of the raw bytes) describe what was read.
    """

    def __init__(self, data, *, filename: str, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_rows: int = DEFAULT_MAX_ROWS,
                 max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
                 max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO):
        self.stream, self.size = _open_seekable(data, max_bytes=max_bytes)
        self.max_bytes = max_bytes
        self.max_physical_rows = max_rows + EXTRA_ROWS
        self.max_uncompressed_bytes = max_uncompressed_bytes
        self.max_compression_ratio = max_compression_ratio
        self.start = self.stream.tell()
        self._head = self.stream.read(_SNIFF_BYTES)
        self.stream.seek(self.start)
        self.kind = _sniff_kind(self._head, filename)  # "csv" | "xlsx"
        self.encoding: str | None = None  # "utf-8" | "gb18030" for CSV
        self.content_sha256 = ""

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        return self._iter_xlsx() if self.kind == "xlsx" else self._iter_csv()

    # CSV -----------------------------------------------------------------------------------
    def _csv_rows(self, codec: str) -> Iterator[tuple[int, list[str]]]:
        self.stream.seek(self.start)
        meter = _MeteredReader(self.stream, limit=self.max_bytes)
        text = io.TextIOWrapper(io.BufferedReader(meter, _CHUNK), encoding=codec, errors="strict", newline="")
        line = 0
        try:
            for line, row in enumerate(csv.reader(text), start=1):
                if line > self.max_physical_rows:
                    raise _too_many_rows(self.max_physical_rows - EXTRA_ROWS)
                if meter.saw_nul:
                    _refuse_nul(line, row)
                yield line, row
        except csv.Error as exc:
            raise SpreadsheetRefused(
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
            raise SpreadsheetRefused(
                "文件编码不一致或损坏，请整体保存为UTF-8或GBK (the file mixes encodings or is damaged: save it as UTF-8 or GBK)",
                "encoding",
            )

    def _whole_file_is_utf8(self) -> bool:
        self.stream.seek(self.start)
        decoder = codecs.getincrementaldecoder("utf-8")()
        read = 0
        try:
            while chunk := self.stream.read(_CHUNK):
                read += len(chunk)
                if read > self.max_bytes:
                    raise refuse_oversized(self.max_bytes)
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return True
        except UnicodeDecodeError:
            return False
        finally:
            self.stream.seek(self.start)

    # XLSX ----------------------------------------------------------------------------------
    def _check_zip(self) -> None:
        self.stream.seek(self.start)
        meter = _MeteredReader(self.stream, limit=self.max_bytes)
        while meter.read(_CHUNK):
            pass
        self.content_sha256 = meter.sha256.hexdigest()
        self.stream.seek(self.start)
        try:
            with zipfile.ZipFile(self.stream) as archive:
                members = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            raise _damaged()
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
        self.stream.seek(self.start)

    def _iter_xlsx(self) -> Iterator[tuple[int, list[str]]]:
        import openpyxl  # imported here: CSV-only callers do not pay for it

        self._check_zip()
        try:
            workbook = openpyxl.load_workbook(
                self.stream, read_only=True, data_only=False, keep_links=False, keep_vba=False
            )
        except Exception:  # openpyxl raises many kinds (KeyError, XML errors) for a broken package
            raise SpreadsheetRefused(
                "无法读取Excel文件，文件可能已损坏 (cannot read the Excel file; it may be damaged)", "damaged_file"
            )
        try:
            sheet = workbook.worksheets[0]
            sheet.reset_dimensions()  # never trust (or pad to) the declared dimension
            # Rows the sheet holds are counted, not row numbers: openpyxl yields the rows between two stored ones as
            # empty, and a stray cell at row 1,048,576 (Excel's last) refused a file of a few lines as too long.
            held = 0
            for line, values in enumerate(sheet.iter_rows(min_row=1, min_col=1, values_only=True), start=1):
                if values.count(None) != len(values):
                    held += 1
                    if held > self.max_physical_rows:
                        raise _too_many_rows(self.max_physical_rows - EXTRA_ROWS)
                yield line, [_xlsx_text(value, line, index) for index, value in enumerate(values)]
        except SpreadsheetRefused:
            raise
        except Exception:
            raise _damaged()
        finally:
            workbook.close()


def iter_original_rows(
    *, data, filename: str, max_bytes: int = DEFAULT_MAX_BYTES, max_rows: int = DEFAULT_MAX_ROWS
) -> Iterator[tuple[int, list[str]]]:
    """The file's rows as typed (text), with their line numbers: the input of `write_error_report`.

    Raises SpreadsheetRefused like `SpreadsheetFile`.
    """
    return SpreadsheetFile(data, filename=filename, max_bytes=max_bytes, max_rows=max_rows).rows()


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


class DigitsLost(str):
    """The text of an XLSX number cell of 16 or more digits. Spreadsheet programs keep 15 significant digits
    of a number, so a resident ID or wallet id typed into a cell not formatted as text has other last digits
    once the file is saved (110101199001010015 becomes 110101199001010000), and may even be another valid
    number: such a cell is never read as an identifier (`LineChecker.read_identifier`)."""


_LOST_DIGITS_FROM = 10**15
# "1.10101E+17": how a spreadsheet program saves a long number in a General cell to CSV.
_SCIENTIFIC = re.compile(r"[+-]?\d+(\.\d*)?E\+?\d+", re.IGNORECASE)


def in_scientific_notation(text: str) -> bool:
    """Whether an identifier that failed its check is a number saved as "1.10101E+17"
    (`LineChecker.read_identifier`)."""
    return _SCIENTIFIC.fullmatch(text) is not None


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
        return str(value) if -_LOST_DIGITS_FROM < value < _LOST_DIGITS_FROM else DigitsLost(value)
    if kind is float:
        text = format(Decimal(repr(value)), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text if -_LOST_DIGITS_FROM < value < _LOST_DIGITS_FROM else DigitsLost(text)
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time(0) else value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime.timedelta):  # a number cell formatted as a duration ([h]:mm:ss): not a formula
        return _duration_text(value)
    raise _refuse_formula(line, index)  # ArrayFormula, DataTableFormula and anything else that is not a value


def _duration_text(value: datetime.timedelta) -> str:
    """30 hours -> "30:00:00", as a spreadsheet program shows a cell formatted [h]:mm:ss."""
    sign, value = ("-", -value) if value < datetime.timedelta(0) else ("", value)
    minutes, seconds = divmod(value.days * 86400 + value.seconds, 60)
    text = f"{sign}{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
    return f"{text}.{value.microseconds:06d}".rstrip("0") if value.microseconds else text


def _refuse_formula(line: int, index: int) -> SpreadsheetRefused:
    cell = f"{_column_letter(index)}{line}"
    return SpreadsheetRefused(
        f"单元格{cell}含有公式，请复制后“选择性粘贴-数值”再上传 "
        f"(cell {cell} holds a formula: paste the values only and upload again)",
        "formula",
    )


# ---------------------------------------------------------------------------------------------
# Layout: header block items, the column header row, data lines
# ---------------------------------------------------------------------------------------------
def _alias_map(spec: dict) -> dict[str, str]:
    mapping = {}
    for name, entry in spec.items():
        aliases = entry[0] if isinstance(entry[0], tuple) else entry
        for alias in aliases:
            mapping[header_key(alias)] = name
    return mapping


class SheetLayout:
    """A file format: the header block items and the columns a domain reads.

    `header_items`: key -> aliases (Chinese first); one item a row before the column header row,
    the name in the first cell and the value in the next (or "name：value" in one cell). A `line_count`
    item is the declared number of lines (`SheetReader.check_line_count`).
    `columns`: field -> (aliases, required column). The column header row is the first row with at
    least three known column names. `ignored_columns` (and the error report's column) are skipped
    silently; other unknown columns are listed in `SheetReader.ignored_columns`.
    """

    def __init__(self, *, columns: dict[str, tuple[tuple[str, ...], bool]], header_items: dict[str, tuple[str, ...]],
                 required_header_items: Iterable[str] = (), ignored_columns: Iterable[str] = (), sheet_title: str):
        self.columns = columns
        self.header_items = header_items
        self.required_header_items = tuple(required_header_items)
        self.sheet_title = sheet_title  # of the error report's XLSX sheet
        self.column_aliases = _alias_map(columns)
        self.header_aliases = _alias_map(header_items)
        self.ignored_keys = {header_key(a) for a in ignored_columns} | {header_key(ERROR_COLUMN_TITLE)}

    def is_column_header(self, keys: list[str]) -> bool:
        return sum(1 for k in keys if k in self.column_aliases) >= 3

    def write_error_report(self, *, problems: Iterable[LineProblem], original_rows: Iterable[tuple[int, list[str]]],
                           fmt: str = "csv", out=None) -> bytes:
        """A file of this format as uploaded, with an error column: see the module's `write_error_report`."""
        return write_error_report(problems=problems, original_rows=original_rows, layout=self, fmt=fmt, out=out)

    def no_header_row(self) -> SpreadsheetRefused:
        names = [aliases[0] for aliases, required in self.columns.values() if required][:3]
        return SpreadsheetRefused(
            f"前{HEADER_SEARCH_ROWS}行中找不到列标题行（{'、'.join(names)}……），请使用模板 "
            f"(no column header row ({', '.join(names)} ...) in the first {HEADER_SEARCH_ROWS} rows: use the template)",
            "no_header_row",
        )


@dataclass(frozen=True)
class HeaderItem:
    line: int
    label: str  # as written in the file
    value: str  # normalised text of the next filled cell ("" if none)


class SheetReader:
    """Walks one file's rows for a layout: `read_head` up to the column header row, then `data_lines`.

    Problems of the header block and the column header row go to `problems`. After `read_head`:
    `header_items` (key -> HeaderItem, the first of each key), `header_row`, `columns` (as written),
    `ignored_columns`, `index` (field -> column position), `labels` (field -> header as written), `width`.
    """

    def __init__(self, layout: SheetLayout, *, problems: ProblemList, max_lines: int = DEFAULT_MAX_ROWS):
        self.layout = layout
        self.problems = problems
        self.max_lines = max_lines
        self.header_items: dict[str, HeaderItem] = {}
        self.header_row: int | None = None
        self.columns: list[str] = []
        self.ignored_columns: list[str] = []
        self.index: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self.width = 0
        self.line_total = 0  # data lines so far (blank rows not counted)

    def read_head(self, rows: Iterator[tuple[int, list[str]]]) -> None:
        """Consume rows up to and including the column header row.

        Raises SpreadsheetRefused(no_header_row) when it is not within the first HEADER_SEARCH_ROWS rows.
        """
        for line, cells in rows:
            texts = [normalize_text(c) for c in cells]
            if not any(texts):
                continue
            keys = [header_key(t) for t in texts]
            if self.layout.is_column_header(keys):
                self._column_header_row(line, cells, keys)
                return
            if line >= HEADER_SEARCH_ROWS:
                break
            self._header_block_row(line, cells, texts, keys)
        raise self.layout.no_header_row()

    def _header_block_row(self, line: int, cells: list[str], texts: list[str], keys: list[str]) -> None:
        filled = [(i, t) for i, t in enumerate(texts) if t]
        first_index, first_text = filled[0]
        label, value = cells[first_index].strip(), (filled[1][1] if len(filled) > 1 else "")
        key = self.layout.header_aliases.get(keys[first_index])
        if key is None and ":" in first_text:  # "工资所属期：2025-06" in one cell
            label, _, value = first_text.partition(":")
            key = self.layout.header_aliases.get(header_key(label))
            value = value.strip()
        if key is None or key in self.header_items:
            return  # a title row or notes: not ours to judge
        self.header_items[key] = HeaderItem(line, label, value)

    def _column_header_row(self, line: int, cells: list[str], keys: list[str]) -> None:
        layout = self.layout
        self.header_row = line
        self.columns = [c.strip() for c in cells]
        for i, key in enumerate(keys):
            if not key:
                continue
            name = layout.column_aliases.get(key)
            if name is None:
                if key not in layout.ignored_keys:
                    self.ignored_columns.append(self.columns[i])
                continue
            if name in self.index:
                self.problems.add(line, self.columns[i], "column_duplicate")
                continue
            self.index[name] = i
            self.labels[name] = self.columns[i]
        for name, (aliases, required) in layout.columns.items():
            if required and name not in self.index:
                self.problems.add(line, aliases[0], "column_missing")
        for key in layout.required_header_items:
            if key not in self.header_items:
                self.problems.add(1, layout.header_items[key][0], "header_missing")
        self.width = max(self.index.values(), default=0) + 1

    def header_values(self, readers: dict[str, Callable[[str], object]]) -> dict[str, object]:
        """Each header item found, read by its reader (key -> function of the text); a value that is
        empty or cannot be read (BadValue, InvalidIdentifier) is a problem on the item's row."""
        values = {}
        for key, item in self.header_items.items():
            if not item.value:
                self.problems.add(item.line, item.label, "required")
                continue
            try:
                values[key] = readers[key](item.value)
            except (BadValue, InvalidIdentifier) as exc:
                self.problems.add(item.line, item.label, exc.code, str(exc))
        return values

    def data_lines(self, rows: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
        """The rows after the column header row that are not blank, counted in `line_total`.

        Raises SpreadsheetRefused(too_many_rows) past `max_lines`.
        """
        max_lines = self.max_lines
        for line, cells in rows:
            for cell in cells:  # skip blank rows cheaply
                if cell and not cell.isspace():
                    break
            else:
                continue
            self.line_total += 1
            if self.line_total > max_lines:
                raise _too_many_rows(max_lines)
            yield line, cells

    def check_line_count(self, declared: int | None) -> None:
        """The header's declared line count against the lines read (after `data_lines` is done)."""
        if declared is not None and declared != self.line_total:
            item = self.header_items["line_count"]
            self.problems.add(item.line, item.label, "line_count_mismatch",
                              f"总笔数为{declared}，文件实有{self.line_total}笔 "
                              f"(line count says {declared}, the file has {self.line_total} lines)")

    def check_declared_total(self, key: str, declared: int | None, actual: int, *, code: str,
                             total_zh: str, sum_zh: str, total_en: str) -> None:
        """A header item's declared sum in fen (`key`, e.g. 实发合计) against the sum of the lines' values."""
        if declared is not None and declared != actual:
            item = self.header_items[key]
            said, found = fen_to_yuan_str(declared), fen_to_yuan_str(actual)
            self.problems.add(item.line, item.label, code,
                              f"{total_zh}为{said}，{sum_zh}为{found} ({total_en} says {said}, the lines add up to {found})")


# ---------------------------------------------------------------------------------------------
# A whole file through a domain's line checks
# ---------------------------------------------------------------------------------------------
class LineChecker:
    """A domain's checks of one data line after another; a subclass names its format and defines `check`.

    Class attributes: `layout` (SheetLayout), `messages` (code -> reason, with the shared MESSAGES),
    `header_readers` (header item key -> function of its text, see `SheetReader.header_values`) and
    `bytes_per_line` (a typical line's size, to size the duplicate tables from the file's size).
    `check(line, cells)` (at least `width` cells, blank ones added) adds the line's problems to `problems`; a line with any is counted in
    `invalid_lines`, a line without any is built and handed to `accept` (so every other data line is
    a valid one). What every format keeps is here: the valid lines (to `line_sink` as they are read,
    in `lines` only with `keep_lines`), the wallet duplicate table and the bulk resident ID checker.
    """

    layout: SheetLayout
    messages: dict[str, str]
    header_readers: dict[str, Callable[[str], object]]
    bytes_per_line = 128
    accept: Callable[[object], None]  # a valid line: to line_sink, and to lines with keep_lines

    def __init__(self, sheet: SheetReader, *, expected_lines: int, line_sink, keep_lines: bool):
        self.sheet = sheet
        self.problems = sheet.problems
        self.labels = sheet.labels
        self.lines: list = []
        self.invalid_lines = 0
        self.seen_wallets = SeenTable(expected_lines)
        self.check_resident_id = ResidentIdChecker()
        # A valid line goes to one callable, the sink itself in the usual case: no extra call a line.
        if line_sink is not None and keep_lines:
            def accept(parsed_line) -> None:
                line_sink(parsed_line)
                self.lines.append(parsed_line)
            self.accept = accept
        elif line_sink is not None:
            self.accept = line_sink
        elif keep_lines:
            self.accept = self.lines.append
        else:
            self.accept = _ignore

    @property
    def valid_lines(self) -> int:
        return self.sheet.line_total - self.invalid_lines

    def check(self, line: int, cells: list[str]) -> None:
        raise NotImplementedError

    def read_identifier(self, line: int, cells: list[str], index: int, field: str,
                        check: Callable[..., object], *args) -> object:
        """The identifier in the line's `field` column as `check(text, *args)` returns it ("" if the file has no
        such column), or None once the problem is added: blank, a number cell that lost digits (`DigitsLost`), or
        what `check` raised (InvalidIdentifier), named as lost digits when the text is in scientific notation."""
        text = compact_text(cells[index]) if index >= 0 else ""
        if text:
            if type(cells[index]) is DigitsLost:
                self.lost_digits(line, field)
                return None
            try:
                return check(text, *args)
            except InvalidIdentifier as exc:
                if in_scientific_notation(text):
                    self.lost_digits(line, field)
                else:
                    self.problems.add(line, self.labels[field], exc.code, str(exc))
                return None
        if index >= 0:
            self.problems.add(line, self.labels[field], "required")
            return None
        return ""

    def read_wallet(self, line: int, cells: list[str], index: int) -> str | None:
        """The wallet id in the line's `wallet_id` column as `read_identifier` reads it. A text cell of plainly
        16 digits, the common case, is one as it stands (a number cell of 16 digits is a `DigitsLost`, not a str)."""
        cell = cells[index] if index >= 0 else ""
        if type(cell) is str and len(cell) == 16 and cell.isascii() and cell.isdigit():
            return cell
        return self.read_identifier(line, cells, index, "wallet_id", validate_wallet_id)

    def lost_digits(self, line: int, field: str) -> None:
        """The identifier in `field` was stored as a number (`DigitsLost`, or saved to CSV as "1.10101E+17"):
        its last digits are not the ones typed, so the line is refused with how to fix the file."""
        self.problems.add(
            line, self.labels[field], "number_lost_digits",
            "此单元格被表格软件存成了数字，只保留15位有效数字，后几位已不是原来录入的数字：请把该列设为“文本”格式，重新录入后再上传 "
            "(the spreadsheet program stored this cell as a number, which keeps 15 significant digits, so its last "
            "digits are no longer the ones typed: format the column as text, enter the numbers again and upload)",
        )

    def check_duplicate_wallet(self, line: int, wallet_id: str) -> None:
        """The first line with a wallet stays valid; each later one names it."""
        earlier = self.seen_wallets.add(wallet_id_key(wallet_id), line)
        if earlier is not None:
            self.problems.add(line, self.labels["wallet_id"], "duplicate_wallet",
                              f"钱包编号与第{earlier}行重复 (wallet id repeats line {earlier})")


def _ignore(parsed_line) -> None:
    pass


@dataclass
class CheckedFile:
    """What `check_file` read: the file, its head, the header item values and the domain's checker."""

    file: SpreadsheetFile
    sheet: SheetReader
    header_values: dict[str, object]
    checker: LineChecker

    def sheet_fields(self) -> dict[str, object]:
        """The `ParsedSheet` fields; call it after the last problem is added."""
        file, sheet, problems = self.file, self.sheet, self.sheet.problems
        return dict(
            file_format=file.kind,
            encoding=file.encoding,
            content_sha256=file.content_sha256,
            header_row=sheet.header_row,
            columns=sheet.columns,
            ignored_columns=sheet.ignored_columns,
            line_total=sheet.line_total,
            invalid_line_count=self.checker.invalid_lines,
            problems=problems.by_line(),
            problem_count=problems.count,
            problems_truncated=problems.truncated,
            lines=self.checker.lines,
        )


def check_file(
    checker_class: type[LineChecker],
    *,
    data,
    filename: str,
    line_sink,
    keep_lines: bool,
    max_bytes: int,
    max_rows: int,
    max_problems: int,
    max_uncompressed_bytes: int,
    max_compression_ratio: float,
) -> CheckedFile:
    """Read a file of `checker_class`'s format: the header block (each item read by its reader), the
    column header row, every data line through `checker_class.check`, then the declared line count.

    Problems are collected in that order (so the first `max_problems` kept are the first found).
    Raises SpreadsheetRefused like `SpreadsheetFile` and `SheetReader.read_head`.
    """
    file = SpreadsheetFile(data, filename=filename, max_bytes=max_bytes, max_rows=max_rows,
                           max_uncompressed_bytes=max_uncompressed_bytes, max_compression_ratio=max_compression_ratio)
    problems = ProblemList(messages=checker_class.messages, limit=max_problems)
    sheet = SheetReader(checker_class.layout, problems=problems, max_lines=max_rows)
    rows = file.rows()
    sheet.read_head(rows)
    values = sheet.header_values(checker_class.header_readers)
    checker = checker_class(sheet, expected_lines=min(max_rows, (file.size or 0) // checker_class.bytes_per_line + 1),
                            line_sink=line_sink, keep_lines=keep_lines)
    check = checker.check
    width = sheet.width
    for line, cells in sheet.data_lines(rows):
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        check(line, cells)
    sheet.check_line_count(values.get("line_count"))
    return CheckedFile(file, sheet, values, checker)


@dataclass
class ParsedSheet:
    """What every parsed file of a domain tells; a domain's result adds its header, sums and lines."""

    file_format: str  # "csv" | "xlsx"
    encoding: str | None  # "utf-8" | "gb18030" for CSV
    content_sha256: str
    header_row: int | None  # line of the column header row
    columns: list[str]  # header row as written in the file
    ignored_columns: list[str]
    line_total: int  # data lines in the file (blank rows not counted)
    invalid_line_count: int
    problems: list[LineProblem]
    problem_count: int  # may exceed len(problems) when problems_truncated
    problems_truncated: bool
    lines: list  # filled only with keep_lines=True

    @property
    def is_valid(self) -> bool:
        return self.problem_count == 0


# ---------------------------------------------------------------------------------------------
# Error report
# ---------------------------------------------------------------------------------------------
def csv_safe(value: str) -> str:
    """OWASP: a cell starting with = + - @ tab or CR is prefixed with ' so no spreadsheet runs it."""
    if value and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_error_report(
    *,
    problems: Iterable[LineProblem],
    original_rows: Iterable[tuple[int, list[str]]],
    layout: SheetLayout,
    fmt: str = "csv",
    out=None,
) -> bytes:
    """The original rows with an error column appended, as CSV (UTF-8 with BOM) or XLSX.

    Every row is kept (line numbers stay those of the uploaded file), so the user fixes the
    marked rows and uploads the file again; the parser ignores the error column, and a previous
    report's error column is replaced. CSV cells are formula-injection safe; XLSX cells are written
    as text, never as formulas. Writes to `out` (a binary file) when given and returns b"", else
    returns the bytes.
    """
    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"fmt must be 'csv' or 'xlsx', not {fmt!r}")
    by_line: dict[int, list[str]] = {}
    for problem in problems:
        text = f"{problem.column}: {problem.message}" if problem.column else problem.message
        by_line.setdefault(problem.line, []).append(text)
    rows = _report_rows(original_rows, by_line, layout)
    if fmt == "csv":
        return _report_csv(rows, out)
    return _report_xlsx(rows, out, layout.sheet_title)


def _report_rows(original_rows, by_line, layout: SheetLayout) -> Iterator[tuple[list[str], str]]:
    """Yield (cells, errors) with the error text lined up in one column after the widest header cell."""
    error_key = header_key(ERROR_COLUMN_TITLE)
    buffered = []
    width = None
    drop = None  # index of a previous report's error column, if the user re-uploaded a report
    for line, cells in original_rows:
        cells = list(cells)
        while cells and not (cells[-1] or "").strip():
            cells.pop()
        if width is None:
            keys = [header_key(c) for c in cells]
            if layout.is_column_header(keys):
                if error_key in keys:
                    drop = keys.index(error_key)
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


# What openpyxl refuses in a cell (its ILLEGAL_CHARACTERS_RE): C0 controls but tab, line feed and carriage return.
_NOT_IN_XLSX_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_NOT_IN_XLSX = _NOT_IN_XLSX_RE.search
_NOT_IN_XLSX_SUB = _NOT_IN_XLSX_RE.sub


def _report_csv(rows, out) -> bytes:
    target = out if out is not None else io.BytesIO()
    text = io.TextIOWrapper(target, encoding="utf-8-sig", newline="", write_through=True)
    writer = csv.writer(text)
    for cells, errors in rows:
        writer.writerow([csv_safe(c) for c in cells] + [csv_safe(errors)])
    text.flush()
    text.detach()
    return b"" if out is not None else target.getvalue()


def _report_xlsx(rows, out, sheet_title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_title)
    red = Font(color="C00000")

    def text_cell(value, font=None):
        cell = WriteOnlyCell(sheet, value=None)
        if value and not value.isprintable() and _NOT_IN_XLSX(value):
            # A worksheet cannot hold control characters (openpyxl raises): shown as U+FFFD, so the cell the
            # error column blames stays where it was, the character visible where it stood.
            value = _NOT_IN_XLSX_SUB("\ufffd", value)
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


# ---------------------------------------------------------------------------------------------
# Blank templates
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SheetTemplate:
    """A format's blank template: header block rows (label, value; an empty row ends it), the column
    titles and example rows (text as typed; amounts in yuan), written as CSV or XLSX.

    In XLSX, `text_columns` (titles) stay text (Excel would round an 18-digit number) and the others
    are amounts: numbers with two decimals. `widths` maps each title to its column width. The second
    sheet, 说明 (notes), holds `notes` and then the line every template ends with.
    """

    sheet_title: str
    header_block: list[list[str]]
    columns: list[str]
    examples: list[list[str]]
    text_columns: frozenset[str]
    widths: dict[str, int]
    notes: list[list[str]]

    def csv(self) -> bytes:
        """The template as CSV in UTF-8 with a BOM (so Excel opens the Chinese headers correctly)."""
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerows(self.header_block)
        writer.writerow(self.columns)
        writer.writerows(self.examples)
        return buffer.getvalue().encode("utf-8-sig")

    def xlsx(self) -> bytes:
        """The template as XLSX: identifiers formatted as text (Excel would round an 18-digit number),
        amounts as numbers with two decimals; a second sheet explains the columns."""
        from openpyxl import Workbook
        from openpyxl.styles import Font, PatternFill
        from openpyxl.utils import get_column_letter

        workbook = Workbook()
        sheet = workbook.active
        sheet.title = self.sheet_title
        bold = Font(bold=True)
        for row in self.header_block:
            sheet.append(row)
            if row:
                sheet.cell(row=sheet.max_row, column=1).font = bold
                sheet.cell(row=sheet.max_row, column=2).number_format = "@"
        sheet.append(self.columns)
        header_row = sheet.max_row
        fill = PatternFill("solid", fgColor="DDEBF7")
        for index, title in enumerate(self.columns, start=1):
            cell = sheet.cell(row=header_row, column=index)
            cell.font = bold
            cell.fill = fill
            sheet.column_dimensions[get_column_letter(index)].width = self.widths[title]
        text = [title in self.text_columns for title in self.columns]
        for example in self.examples:
            # Amounts go in as Decimal (openpyxl writes them as numbers), never through float.
            sheet.append([value if is_text else Decimal(value) for is_text, value in zip(text, example)])
            for index, is_text in enumerate(text, start=1):
                sheet.cell(row=sheet.max_row, column=index).number_format = "@" if is_text else "#,##0.00"
        sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)

        notes = workbook.create_sheet("说明 (notes)")
        for row in self.notes:
            notes.append(row)
        notes.append(["只读取第一个工作表；请填写数值，不要使用公式。 (Only the first sheet is read; enter values, not formulas.)"])
        buffer = io.BytesIO()
        workbook.save(buffer)
        return buffer.getvalue()
