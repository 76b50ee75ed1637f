"""Payroll files to validated lines: formats, encodings, normalisation, every kind of line problem."""
import io

import pytest

from payroll.parsing import PayrollFileRefused, iter_original_rows, parse_payroll_file, write_error_report
from payroll.templates_files import EXAMPLE_USCC, TEMPLATE_COLUMNS, template_csv, template_xlsx
from tests.payroll.builders import employee_row, payroll_rows, resident_id, to_csv, to_xlsx
from tests.spreadsheet_files import (
    assert_no_formula_cells,
    csv_report_rows,
    first_sheet,
    forbid_opening_workbooks,
    zip_bomb,
)

COL = {name: i for i, name in enumerate(TEMPLATE_COLUMNS)}
HEADER_ROW = 6  # 4 header block rows, a blank row, then the column headers
FIRST_LINE = 7


def parse(data, filename="payroll.csv", **kwargs):
    return parse_payroll_file(data=data, filename=filename, keep_lines=True, **kwargs)


def problems_of(parsed):
    return [(p.line, p.column, p.code) for p in parsed.problems]


# --- formats and encodings -------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_every_encoding_reads_the_same(rows, encoding):
    parsed = parse(to_csv(payroll_rows(rows), encoding=encoding))
    assert parsed.problems == []
    assert parsed.encoding == ("utf-8" if encoding.startswith("utf") else "gb18030")
    assert [line.line for line in parsed.lines] == [7, 8, 9]
    assert parsed.lines[0].name == "张三"
    assert parsed.header.employer_uscc == EXAMPLE_USCC
    assert parsed.header.period == "2025-06"


def test_gbk_names_after_a_long_ascii_start_are_detected():
    """English aliases and ASCII up front (past the sniffed start), GBK names further down."""
    rows = [employee_row(i) for i in range(2000)]
    for row in rows:
        row[COL["姓名"]] = "Zhang San"
    rows[-1][COL["姓名"]] = "王五"
    columns = ["employee_no", "name", "resident_id", "wallet_id", "basic_wage", "allowances", "subsidies", "bonus",
               "other_pay", "gross", "social_insurance", "housing_fund", "income_tax", "union_dues",
               "other_deductions", "net"]
    all_rows = payroll_rows(rows, columns=columns)
    for row in all_rows[:4]:
        row[0] = {"单位统一社会信用代码": "employer_uscc", "工资所属期": "period", "总笔数": "line_count",
                  "实发合计": "total_net"}[row[0]]
    parsed = parse(to_csv(all_rows, encoding="gbk"))
    assert parsed.problems == []
    assert parsed.encoding == "gb18030"
    assert parsed.lines[-1].name == "王五"


def test_xlsx_reads_numbers_exactly(rows):
    # As numbers in the sheet: 8000.1 is a float cell and must be exactly 800010 fen.
    rows[0][4:] = ["8000.10", "500.00", "300.00", "0.00", "0.00", "8800.10",
                   "400.00", "600.00", "25.50", "2.50", "0.00", "7772.10"]
    parsed = parse(to_xlsx(payroll_rows(rows)), filename="payroll.xlsx")
    assert parsed.file_format == "xlsx"
    assert parsed.problems == [], parsed.problems
    line = parsed.lines[0]
    assert (line.basic_wage_fen, line.gross_fen, line.income_tax_fen, line.net_fen) == (800010, 880010, 2550, 777210)


def test_ids_a_spreadsheet_program_stored_as_numbers_are_refused_with_how_to_fix_them(rows):
    """Typed into a General cell, an 18-digit ID keeps 15 significant digits (110101199001010015 is saved as
    1.10101199001010E+17, read back 110101199001010000), and a 16-digit wallet id may turn into another valid
    one: a number cell of 16 or more digits is never read as an identifier, whatever its check digit says."""
    all_rows = payroll_rows(rows)
    first, second = FIRST_LINE - 1, FIRST_LINE  # 0-based rows of the first two lines
    all_rows[first][COL["身份证号"]] = float(rows[0][COL["身份证号"]])  # as Excel keeps it: a float
    all_rows[second][COL["数字人民币钱包"]] = int(rows[1][COL["数字人民币钱包"]])  # exact, still a number
    parsed = parse(to_xlsx(all_rows), filename="payroll.xlsx")
    assert problems_of(parsed) == [(FIRST_LINE, "身份证号", "number_lost_digits"),
                                   (FIRST_LINE + 1, "数字人民币钱包", "number_lost_digits")]
    assert "设为“文本”格式" in parsed.problems[0].message and "format the column as text" in parsed.problems[0].message
    assert [line.line for line in parsed.lines] == [FIRST_LINE + 2]  # the text cells of the third line are fine


def test_ids_saved_to_csv_in_scientific_notation_are_named_as_such(rows):
    rows[0][COL["身份证号"]] = "1.10101E+17"
    rows[1][COL["数字人民币钱包"]] = "1E+15"
    rows[2][COL["身份证号"]] = "11010119900101001"  # 17 digits: an ordinary format error, not a number
    parsed = parse(to_csv(payroll_rows(rows)))
    codes = problems_of(parsed)
    assert (FIRST_LINE, "身份证号", "number_lost_digits") in codes
    assert (FIRST_LINE + 1, "数字人民币钱包", "number_lost_digits") in codes
    assert [c for c in codes if c[0] == FIRST_LINE + 2][0][2] != "number_lost_digits"


def test_xlsx_float_with_more_than_two_decimals_is_refused_not_rounded(rows):
    rows[1][COL["津贴"]] = "500.005"
    parsed = parse(to_xlsx(payroll_rows(rows)), filename="payroll.xlsx")
    assert (FIRST_LINE + 1, "津贴", "amount_decimals") in problems_of(parsed)


def test_xlsx_period_typed_as_a_date_and_blank_rows_keep_line_numbers(rows):
    from datetime import datetime

    all_rows = payroll_rows(rows)
    all_rows[1][1] = datetime(2025, 6, 1)
    all_rows.insert(7, [])  # a blank row between two employees
    parsed = parse(to_xlsx(all_rows), filename="payroll.xlsx")
    assert parsed.problems == []
    assert parsed.header.period == "2025-06"
    assert [line.line for line in parsed.lines] == [7, 9, 10]


def test_templates_parse_without_problems():
    for data, name in ((template_csv(), "t.csv"), (template_xlsx(), "t.xlsx")):
        parsed = parse(data, filename=name)
        assert parsed.problems == [], name
        assert parsed.line_total == 2
        assert parsed.lines[0].warnings == ()
        assert parsed.totals.net_fen == parsed.header.total_net_fen == 1340670
    assert template_csv().startswith(b"\xef\xbb\xbf")


def test_file_like_input_and_content_hash(rows, tmp_path):
    import hashlib

    data = to_csv(payroll_rows(rows))
    path = tmp_path / "p.csv"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        parsed = parse(handle)
    assert parsed.content_sha256 == hashlib.sha256(data).hexdigest()
    assert parse(data).content_sha256 == parsed.content_sha256
    xlsx = to_xlsx(payroll_rows(rows))
    assert parse(xlsx, filename="p.xlsx").content_sha256 == hashlib.sha256(xlsx).hexdigest()


def test_line_sink_receives_valid_lines_and_nothing_is_kept(rows):
    received = []
    rows[1][COL["身份证号"]] = "110101199003071234"  # wrong check digit
    parsed = parse_payroll_file(data=to_csv(payroll_rows(rows)), filename="p.csv", line_sink=received.append)
    assert [line.line for line in received] == [7, 9]
    assert parsed.lines == []
    assert parsed.totals.lines == 2 and parsed.invalid_line_count == 1
    assert parsed.totals.net_fen == sum(line.net_fen for line in received)


# --- normalisation ---------------------------------------------------------------------------
def test_full_width_spaces_separators_and_lower_case_x_are_normalised(rows):
    row = rows[0]
    row[COL["工号"]] = "Ｅ０００００００"
    row[COL["身份证号"]] = " 11010519491231002x "  # lower-case x, stray spaces
    row[COL["数字人民币钱包"]] = "１０００ ００００ ００００ ００００"  # full-width, grouped
    basic = row[COL["基本工资"]]
    row[COL["基本工资"]] = "¥" + "{:,}".format(int(basic.split(".")[0])) + "." + basic.split(".")[1]
    row[COL["津贴"]] = "５００．００"  # full-width digits and point
    row[COL["补贴"]] = "￥300元"
    row[COL["姓名"]] = "\u3000张\u3000三 "  # ideographic spaces
    all_rows = payroll_rows(rows)
    all_rows[0][1] = "９１３５０１００ｍ０００１００ｙ４３"  # full-width, lower case credit code
    all_rows[1][1] = "2025年6月"
    parsed = parse(to_csv(all_rows))
    assert parsed.problems == [], parsed.problems
    line = parsed.lines[0]
    assert line.employee_no == "E0000000"
    assert line.resident_id == "11010519491231002X"
    assert line.wallet_id == "1000000000000000"
    assert line.allowances_fen == 50000 and line.subsidies_fen == 30000
    assert line.name == "张 三"
    assert parsed.header.employer_uscc == EXAMPLE_USCC
    assert parsed.header.period == "2025-06"


def test_headers_with_units_and_english_aliases(rows):
    columns = [c + "（元）" if i >= 4 else c for i, c in enumerate(TEMPLATE_COLUMNS)]
    columns[0] = "Employee_No"
    columns[2] = "resident_id"
    parsed = parse(to_csv(payroll_rows(rows, columns=columns)))
    assert parsed.problems == []
    assert parsed.lines[2].net_fen > 0


def test_decimal_comma_is_never_read_as_thousands(rows):
    rows[0][COL["奖金"]] = "1000,50"
    parsed = parse(to_csv(payroll_rows(rows)))
    assert (FIRST_LINE, "奖金", "amount_format") in problems_of(parsed)


def test_unknown_region_is_a_warning_not_an_error(rows):
    rows[0][COL["身份证号"]] = "932682198501010017"  # foreigners' permanent residence ID
    rows[1][COL["身份证号"]] = "81000019980902013X"  # Hong Kong residents' permit
    parsed = parse(to_csv(payroll_rows(rows)))
    assert parsed.problems == []
    assert parsed.lines[0].warnings and "region" in parsed.lines[0].warnings[0]


def test_region_notes_are_the_foundations_for_every_number():
    """The fast path for a repeated region and birth year says exactly what validate_resident_id says."""
    from treasury.identifiers import validate_resident_id

    from stdnum.cn import ric

    odd = [base + ric.calc_check_digit(base + "0") for base in ("37010219600101001", "37010219900101001",
                                                                 "37010219600102001", "93268219850102001")]
    numbers = [resident_id(i) for i in range(300)] + ["932682198501010017"] + odd
    rows = [employee_row(i) for i in range(len(numbers))]
    for row, number in zip(rows, numbers):
        row[COL["身份证号"]] = number
    parsed = parse(to_csv(payroll_rows(rows)))
    assert parsed.problems == []
    for line in parsed.lines:
        assert line.warnings == validate_resident_id(line.resident_id).warnings


# --- every kind of line problem, all at once ------------------------------------------------
def test_every_problem_of_every_line_is_reported_at_once():
    rows = [employee_row(i) for i in range(12)]
    spoil = {
        0: ("身份证号", "110101199003071234", "id_checksum"),
        1: ("身份证号", "11010119900307", "id_format"),
        2: ("身份证号", "110101199002301234", None),  # birth date 1990-02-30: code filled below
        3: ("数字人民币钱包", "123456789012345", "wallet_id_format"),
        4: ("奖金", "-100.00", "amount_negative"),
        5: ("津贴", "500.123", "amount_decimals"),
        6: ("姓名", "", "required"),
        7: ("基本工资", "abc", "amount_format"),
    }
    from stdnum.cn import ric

    bad_date = "11010119900230123"
    spoil[2] = ("身份证号", bad_date + ric.calc_check_digit(bad_date + "0"), "id_birth_date")
    for index, (column, value, _code) in spoil.items():
        rows[index][COL[column]] = value
    rows[8][COL["应发合计"]] = "1.00"  # gross != components (and then net != gross - deductions)
    rows[9][COL["实发金额"]] = "1.00"  # gross - deductions != net
    rows[10][COL["工号"]] = rows[0][COL["工号"]]  # duplicate employee number
    rows[11][COL["数字人民币钱包"]] = rows[5][COL["数字人民币钱包"]]  # duplicate wallet
    rows[11][COL["个人所得税"]] = "２５.５５５"  # and a second problem on the same line
    parsed = parse(to_csv(payroll_rows(rows, line_count=12, total_net=123)))
    found = problems_of(parsed)
    for index, (column, _value, code) in spoil.items():
        assert (FIRST_LINE + index, column, code) in found, (index, code, found)
    assert (FIRST_LINE + 8, "应发合计", "gross_mismatch") in found
    assert (FIRST_LINE + 9, "实发金额", "net_mismatch") in found
    assert (FIRST_LINE + 10, "工号", "duplicate_employee") in found
    assert (FIRST_LINE + 11, "数字人民币钱包", "duplicate_wallet") in found
    assert (FIRST_LINE + 11, "个人所得税", "amount_decimals") in found
    assert (4, "实发合计", "total_net_mismatch") in found  # every net was readable, and they add up to more
    assert (3, "总笔数", "line_count_mismatch") not in found
    duplicate = next(p for p in parsed.problems if p.code == "duplicate_employee")
    assert f"line {FIRST_LINE}" in duplicate.message and f"第{FIRST_LINE}行" in duplicate.message
    for problem in parsed.problems:
        assert "(" in problem.message and problem.message.endswith(")")  # 中文 (English)
    assert parsed.invalid_line_count == 12
    assert [p.line for p in parsed.problems] == sorted(p.line for p in parsed.problems)
    assert parsed.totals.lines == 0 and parsed.lines == []


def test_a_resident_id_repeated_in_the_file_names_the_first_line(rows):
    first = rows[0][COL["身份证号"]]
    rows[2][COL["身份证号"]] = f"{first[:6]} {first[6:14]} {first[14:]}"  # the same number, typed in groups
    rows.append(employee_row(3))
    rows[3][COL["身份证号"]] = first
    parsed = parse(to_csv(payroll_rows(rows)))
    duplicates = [p for p in parsed.problems if p.code == "duplicate_resident_id"]
    assert [(p.line, p.column) for p in duplicates] == [(FIRST_LINE + 2, "身份证号"), (FIRST_LINE + 3, "身份证号")]
    for problem in duplicates:
        assert problem.message == f"身份证号与第{FIRST_LINE}行重复 (resident ID repeats line {FIRST_LINE})"
    assert [line.line for line in parsed.lines] == [FIRST_LINE, FIRST_LINE + 1]  # the first occurrence stays valid


def test_missing_required_values_and_blank_optional_amounts(rows):
    rows[0][COL["实发金额"]] = ""
    rows[0][COL["数字人民币钱包"]] = " "
    rows[1][COL["奖金"]] = ""  # a blank component is 0 ...
    rows[1][COL["应发合计"]] = "9999.00"  # ... so this gross no longer matches
    parsed = parse(to_csv(payroll_rows(rows, total_net=1)))
    found = problems_of(parsed)
    assert (7, "实发金额", "required") in found
    assert (7, "数字人民币钱包", "required") in found
    assert (8, "应发合计", "gross_mismatch") in found
    assert (8, "奖金", "required") not in found
    assert not any(code == "total_net_mismatch" for _l, _c, code in found)  # a net was unreadable


def test_zero_net_and_formula_like_names(rows):
    rows[0][COL["姓名"]] = "=HYPERLINK(\"http://x\")"
    rows[1][4:] = ["0.00"] * 12
    parsed = parse(to_csv(payroll_rows(rows)))
    assert (7, "姓名", "name_format") in problems_of(parsed)
    assert (8, "实发金额", "net_not_positive") in problems_of(parsed)


def test_missing_columns_and_duplicate_columns(rows):
    columns = list(TEMPLATE_COLUMNS)
    columns[COL["数字人民币钱包"]] = "备注"
    columns[COL["津贴"]] = "基本工资"
    parsed = parse(to_csv(payroll_rows(rows, columns=columns)))
    found = problems_of(parsed)
    assert (HEADER_ROW, "数字人民币钱包", "column_missing") in found
    assert (HEADER_ROW, "基本工资", "column_duplicate") in found


@pytest.mark.parametrize("dropped", ["应发合计", "实发金额"])
def test_a_missing_gross_or_net_column_is_one_problem_not_a_crash(rows, dropped):
    columns = list(TEMPLATE_COLUMNS)
    columns[COL[dropped]] = "备注"
    parsed = parse(to_csv(payroll_rows(rows, columns=columns)))
    assert problems_of(parsed) == [(HEADER_ROW, dropped, "column_missing")]


# --- header block and control totals ---------------------------------------------------------
def test_control_totals_that_do_not_match(rows):
    parsed = parse(to_csv(payroll_rows(rows, line_count=4, total_net=100)))
    found = problems_of(parsed)
    assert (3, "总笔数", "line_count_mismatch") in found
    assert (4, "实发合计", "total_net_mismatch") in found
    message = next(p.message for p in parsed.problems if p.code == "line_count_mismatch")
    assert "4" in message and "3" in message


def test_bad_employer_code_and_period(rows):
    parsed = parse(to_csv(payroll_rows(rows, uscc="91350100M000100Y44", period="2025-13")))
    found = problems_of(parsed)
    assert (1, "单位统一社会信用代码", "uscc_checksum") in found
    assert (2, "工资所属期", "period_format") in found


def test_missing_header_block(rows):
    all_rows = payroll_rows(rows)[5:]  # column headers first
    parsed = parse(to_csv(all_rows))
    codes = [(p.column, p.code) for p in parsed.problems]
    for key in ("单位统一社会信用代码", "工资所属期", "总笔数", "实发合计"):
        assert (key, "header_missing") in codes


def test_no_column_header_row_is_refused():
    with pytest.raises(PayrollFileRefused) as refused:
        parse(to_csv([["hello", "world"]] * 60))
    assert refused.value.code == "no_header_row"


# --- files that are not what they claim -----------------------------------------------------
def test_pdf_renamed_xlsx_is_refused():
    with pytest.raises(PayrollFileRefused) as refused:
        parse(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", filename="payroll.xlsx")
    assert refused.value.code == "not_a_spreadsheet"
    assert "PDF" in str(refused.value)


def test_xlsx_named_csv_and_other_types_are_refused(rows):
    with pytest.raises(PayrollFileRefused) as refused:
        parse(to_xlsx(payroll_rows(rows)), filename="payroll.csv")
    assert refused.value.code == "not_a_spreadsheet"
    with pytest.raises(PayrollFileRefused) as refused:
        parse(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), filename="payroll.xlsx")
    assert refused.value.code == "unsupported_format"
    with pytest.raises(PayrollFileRefused) as refused:
        parse(to_csv(payroll_rows(rows)), filename="payroll.pdf")
    assert refused.value.code == "unsupported_format"


def test_truncated_xlsx_is_refused(rows):
    data = to_xlsx(payroll_rows(rows))
    with pytest.raises(PayrollFileRefused) as refused:
        parse(data[: len(data) // 2], filename="payroll.xlsx")
    assert refused.value.code == "damaged_file"


def test_zip_that_is_not_a_workbook_is_refused():
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    with pytest.raises(PayrollFileRefused) as refused:
        parse(buffer.getvalue(), filename="payroll.xlsx")
    assert refused.value.code == "not_a_spreadsheet"


def test_zip_bomb_is_refused_before_openpyxl_opens_it(rows, monkeypatch):
    data = zip_bomb(to_xlsx(payroll_rows(rows)))
    forbid_opening_workbooks(monkeypatch)
    with pytest.raises(PayrollFileRefused) as refused:
        parse(data, filename="payroll.xlsx")
    assert refused.value.code == "zip_bomb"
    with pytest.raises(PayrollFileRefused) as refused:  # total size limit, whatever the ratio
        parse(data, filename="payroll.xlsx", max_compression_ratio=10_000, max_uncompressed_bytes=10 * 1024 * 1024)
    assert refused.value.code == "zip_bomb"


def test_formulas_are_refused(rows):
    all_rows = payroll_rows(rows)
    all_rows[FIRST_LINE][COL["实发金额"]] = "=J8-K8-L8-M8-N8-O8"
    with pytest.raises(PayrollFileRefused) as refused:
        parse(to_xlsx(all_rows), filename="payroll.xlsx")
    assert refused.value.code == "formula"
    assert "P8" in str(refused.value)


def test_oversized_files_are_refused_before_and_while_reading(rows):
    data = to_csv(payroll_rows(rows))
    with pytest.raises(PayrollFileRefused) as refused:
        parse(data, max_bytes=len(data) - 1)
    assert refused.value.code == "file_too_large"

    class Unsized(io.RawIOBase):  # a stream that cannot tell its size: refused while reading
        def __init__(self):
            self._inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self._inner.read(min(len(buffer), 100))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    with pytest.raises(PayrollFileRefused) as refused:
        parse(Unsized(), max_bytes=len(data) - 1)
    assert refused.value.code == "file_too_large"
    assert parse(Unsized()).problems == []


def test_too_many_rows_is_refused(rows):
    with pytest.raises(PayrollFileRefused) as refused:
        parse(to_csv(payroll_rows(rows)), max_rows=2)
    assert refused.value.code == "too_many_rows"
    with pytest.raises(PayrollFileRefused) as refused:
        parse(to_xlsx(payroll_rows(rows)), filename="p.xlsx", max_rows=2)
    assert refused.value.code == "too_many_rows"


def test_a_stray_cell_on_the_last_row_of_a_sheet_is_a_line_not_a_million_rows(rows):
    """openpyxl yields every row number up to the last stored one: a note left on row 1,048,576 refused a file of
    three lines as having more than a million. The rows the sheet holds are counted; the stray cell is a line with
    its own problems, named by its row."""
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(to_xlsx(payroll_rows(rows))))
    workbook.worksheets[0].cell(row=1_048_576, column=1, value="E9")
    buffer = io.BytesIO()
    workbook.save(buffer)
    parsed = parse(buffer.getvalue(), filename="p.xlsx")
    assert {(p.line, p.column) for p in parsed.problems if p.code == "required"} >= {(1_048_576, "姓名")}
    assert parsed.line_total == 4 and len(parsed.lines) == 3


@pytest.mark.parametrize("encoding, filename", [("utf-16", "p.csv"), ("utf-16", "p.txt"), ("utf-32", "p.csv")])
def test_a_utf16_file_is_refused_as_an_encoding_saying_how_to_save_it(rows, encoding, filename):
    """Excel's "Unicode text" is UTF-16 with a BOM: it was refused as "not text", which it is; now as an encoding,
    with the format to save it in."""
    data = to_csv(payroll_rows(rows), encoding="utf-8").decode("utf-8").encode(encoding)
    with pytest.raises(PayrollFileRefused) as refused:
        parse(data, filename=filename)
    assert refused.value.code == "encoding" and "UTF-16" in str(refused.value) and "CSV UTF-8" in str(refused.value)
    english_first = "employee_no,name\r\n".encode("utf-16-le")  # no BOM: a NUL beside each ASCII character
    with pytest.raises(PayrollFileRefused) as refused:
        parse(english_first)
    assert refused.value.code == "encoding"


def test_a_duration_cell_is_read_as_shown_not_refused_as_a_formula(rows):
    """openpyxl reads a number cell formatted [h]:mm:ss (overtime hours beside the pay) as a timedelta, which was
    taken for a formula: the whole file was refused, naming the cell as holding one."""
    import datetime as dt

    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(to_xlsx(payroll_rows(rows))))
    sheet = workbook.worksheets[0]
    sheet.cell(row=HEADER_ROW, column=len(TEMPLATE_COLUMNS) + 1, value="加班时长")
    sheet.cell(row=FIRST_LINE, column=len(TEMPLATE_COLUMNS) + 1, value=dt.timedelta(hours=30, minutes=5))
    buffer = io.BytesIO()
    workbook.save(buffer)
    parsed = parse(buffer.getvalue(), filename="p.xlsx")
    assert parsed.problems == [] and parsed.ignored_columns == ["加班时长"] and len(parsed.lines) == 3
    original = dict(iter_original_rows(data=buffer.getvalue(), filename="p.xlsx"))
    assert original[FIRST_LINE][len(TEMPLATE_COLUMNS)] == "30:05:00"


def test_undecodable_csv_is_refused():
    with pytest.raises(PayrollFileRefused) as refused:
        parse("工号,姓名\n".encode("utf-8") + b"\xff\xfe\xfa\n" * 10)
    assert refused.value.code == "encoding"


@pytest.mark.parametrize("column", ["工号", "姓名"])
def test_a_nul_character_past_the_first_64_kb_is_refused_naming_its_cell(column):
    """The first 64 KB are sniffed for a NUL byte (not text); one further down was read as part of a name or an
    employee number, which no PostgreSQL text column can store: the upload then failed with a server error."""
    rows = [employee_row(i) for i in range(700)]
    rows[650][COL[column]] = rows[650][COL[column]][:1] + "\x00" + rows[650][COL[column]][1:]
    data = to_csv(payroll_rows(rows))
    assert b"\x00" not in data[:64 * 1024]
    with pytest.raises(PayrollFileRefused) as refused:
        parse(data)
    letter = "AB"[COL[column]]
    assert refused.value.code == "not_a_spreadsheet"
    assert f"第{FIRST_LINE + 650}行{letter}列" in str(refused.value) and f"line {FIRST_LINE + 650}, column {letter}" in str(
        refused.value)


def test_problem_list_is_bounded_but_counted():
    rows = [employee_row(i) for i in range(50)]
    for row in rows:
        row[COL["身份证号"]] = "bad"
    parsed = parse(to_csv(payroll_rows(rows)), max_problems=10)
    assert len(parsed.problems) == 10 and parsed.problem_count == 50 and parsed.problems_truncated


# --- error report ----------------------------------------------------------------------------
def test_error_report_csv_is_formula_safe_and_can_be_fixed_and_uploaded_again(rows):
    rows[1][COL["姓名"]] = "=1+2"
    rows[2][COL["奖金"]] = "-5.00"
    data = to_csv(payroll_rows(rows))
    parsed = parse(data)
    report = write_error_report(problems=parsed.problems,
                                original_rows=iter_original_rows(data=data, filename="p.csv"), fmt="csv")
    lines = csv_report_rows(report)
    assert lines[HEADER_ROW - 1][-1] == "错误说明 (errors)"
    assert lines[7][COL["姓名"]] == "'=1+2"
    assert lines[8][COL["奖金"]] == "'-5.00"
    assert "姓名" in lines[7][-1] and "name" in lines[7][-1]
    assert lines[6][-1] == ""
    assert_no_formula_cells(lines)
    # Fix the two cells in the report and upload it again: the error column is ignored.
    lines[7][COL["姓名"]] = "李四"
    lines[8][COL["奖金"]] = rows[2][COL["奖金"]] = employee_row(2)[COL["奖金"]]
    fixed = to_csv(lines)
    again = parse(fixed)
    assert again.problems == [], again.problems
    assert again.line_total == 3


def test_error_report_xlsx_holds_text_not_formulas(rows):
    rows[0][COL["姓名"]] = "=SUM(A1:A2)"
    data = to_csv(payroll_rows(rows))
    parsed = parse(data)
    report = write_error_report(problems=parsed.problems,
                                original_rows=iter_original_rows(data=data, filename="p.csv"), fmt="xlsx")
    sheet = first_sheet(report)
    cell = sheet.cell(row=FIRST_LINE, column=COL["姓名"] + 1)
    assert cell.value == "=SUM(A1:A2)" and cell.data_type == "s"
    assert "name_format" not in str(sheet.cell(row=FIRST_LINE, column=len(TEMPLATE_COLUMNS) + 1).value)
    assert "姓名" in sheet.cell(row=FIRST_LINE, column=len(TEMPLATE_COLUMNS) + 1).value
    assert sheet.cell(row=HEADER_ROW, column=len(TEMPLATE_COLUMNS) + 1).value == "错误说明 (errors)"


def test_control_total_problems_land_on_their_header_rows_in_the_report(rows):
    data = to_csv(payroll_rows(rows, line_count=9))
    parsed = parse(data)
    report = write_error_report(problems=parsed.problems,
                                original_rows=iter_original_rows(data=data, filename="p.csv"))
    lines = csv_report_rows(report)
    assert "总笔数" in lines[2][-1] and len(lines[2]) == len(TEMPLATE_COLUMNS) + 1


# --- memory ----------------------------------------------------------------------------------
def _peak_memory_parsing(path, lines: int) -> int:
    import tracemalloc

    received = 0

    def count(line):
        nonlocal received
        received += 1

    path.write_bytes(to_csv(payroll_rows([employee_row(i) for i in range(lines)])))
    tracemalloc.start()
    try:
        with open(path, "rb") as handle:
            parsed = parse_payroll_file(data=handle, filename=path.name, line_sink=count)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed.problems == [] and received == lines
    return peak


@pytest.mark.slow
def test_memory_grows_by_a_fraction_of_what_the_file_grows(tmp_path):
    """Streaming: no line is kept once checked. Measured as the growth from a file to one four times its size,
    so that the parser's fixed memory (2-3 MB) does not hide it: what a line leaves behind (its slots in the
    duplicate tables, and early on new amount texts in the capped cache) is a third to a half of its 134 bytes
    of CSV; a parser that kept the lines or the text would add at least a line's size per line (keeping the
    lines: 4.1 times). tracemalloc slows parsing fivefold, so 40,000 lines, not a million."""
    # stdnum's region table is loaded once per process (a few MB); load it before measuring a file.
    from treasury.identifiers import validate_resident_id

    validate_resident_id(resident_id(1))
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small_peak = _peak_memory_parsing(small, 10_000)
    large_peak = _peak_memory_parsing(large, 40_000)
    file_growth = large.stat().st_size - small.stat().st_size
    assert large_peak - small_peak < 0.75 * file_growth, (small_peak, large_peak, file_growth)


def test_a_control_character_in_a_name_or_employee_number_is_a_problem_of_its_line(rows):
    """Payee files refused them; payroll took them, into the wallet name check and the payslips, and the XLSX
    error report of such a file was a server error."""
    rows[0][COL["姓名"]] = "张\x01三"
    rows[1][COL["工号"]] = "E\x7f2"
    data = to_csv(payroll_rows(rows))
    parsed = parse(data)
    assert problems_of(parsed) == [(FIRST_LINE, "姓名", "control_character"),
                                   (FIRST_LINE + 1, "工号", "control_character")]
    report = write_error_report(problems=parsed.problems,
                                original_rows=iter_original_rows(data=data, filename="p.csv"), fmt="xlsx")
    sheet = first_sheet(report)
    assert sheet.cell(row=FIRST_LINE, column=COL["姓名"] + 1).value == "张\ufffd三"
    assert "control character" in sheet.cell(row=FIRST_LINE, column=len(TEMPLATE_COLUMNS) + 1).value


def test_digits_of_another_script_are_no_resident_id_or_wallet(rows):
    """\\d matched Arabic-Indic digits and int() read them: the line was valid, its ID and wallet in digits no
    operator knows."""
    rows[0][COL["身份证号"]] = "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X"
    rows[1][COL["数字人民币钱包"]] = "١٠٠١٢٣٤٥٦٧٨٩٠١٢٣"
    parsed = parse(to_csv(payroll_rows(rows)))
    assert problems_of(parsed) == [(FIRST_LINE, "身份证号", "id_format"),
                                   (FIRST_LINE + 1, "数字人民币钱包", "wallet_id_format")]
