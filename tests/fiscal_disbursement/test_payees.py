"""Payee files to validated payee lines: formats, encodings, ID kinds, every line problem, refusals, the report."""
import csv
import io

import pytest
from stdnum.cn import ric

from fiscal_disbursement.payees import PayeeFileRefused, iter_original_rows, parse_payee_file, write_error_report
from fiscal_disbursement.templates_files import EXAMPLE_TOTAL, TEMPLATE_COLUMNS, template_csv, template_xlsx
from tests.spreadsheet_files import (
    assert_no_formula_cells,
    csv_report_rows,
    first_sheet,
    forbid_opening_workbooks,
    zip_bomb,
)

COLUMNS = ["序号", "收款人", "证件号码", "钱包编号", "金额", "用途", "类别"]
COL = {name: i for i, name in enumerate(COLUMNS)}
HEADER_ROW = 4  # 总笔数, 金额合计, a blank row, then the column headers
FIRST_LINE = 5
COMPANY_USCC = "91350100M000100Y43"
DIGITS_ONLY_USCC = "913501000000000051"  # a valid credit code of digits only, not a valid resident ID
BOTH_KINDS = "110105199003070439"  # valid as a resident ID and as a credit code


def resident_id(i: int) -> str:
    base = f"110101{1960 + i % 40}{1 + i // 40 % 12:02d}{1 + i // 480 % 28:02d}{i // 13_440 % 1000:03d}"
    return base + ric.calc_check_digit(base + "0")


def payee_row(i: int) -> list[str]:
    return [str(i + 1), f"受助人{i + 1}", resident_id(i), f"200{i:013d}", f"{500 + i}.50", "2026年高龄津贴", "个人"]


def fen(amount: str) -> int:
    yuan, cents = amount.split(".")
    return int(yuan) * 100 + int(cents)


def payee_rows(rows, *, columns=COLUMNS, line_count=None, total=None) -> list[list]:
    """Header block (总笔数, 金额合计), a blank row, the column headers, the rows."""
    if total is None:
        total_fen = sum(fen(r[COL["金额"]]) for r in rows)
        total = f"{total_fen // 100}.{total_fen % 100:02d}"
    return [["总笔数", str(len(rows) if line_count is None else line_count)], ["金额合计", total], [],
            list(columns)] + [list(r) for r in rows]


def to_csv(all_rows, *, encoding="utf-8-sig") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(all_rows)
    return buffer.getvalue().encode(encoding)


def to_xlsx(all_rows) -> bytes:
    """Amount cells become numbers, as Excel users have them; everything else stays text."""
    from decimal import Decimal

    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("收款人")
    for row in all_rows:
        out = list(row)
        if len(out) > COL["金额"] and isinstance(out[COL["金额"]], str) and out[COL["金额"]].replace(".", "", 1).isdigit():
            out[COL["金额"]] = float(Decimal(out[COL["金额"]]))
        sheet.append(out)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def parse(data, filename="payees.csv", **kwargs):
    return parse_payee_file(data, filename=filename, keep_lines=True, **kwargs)


def problems_of(parsed):
    return [(p.line, p.column, p.code) for p in parsed.problems]


@pytest.fixture
def rows():
    return [payee_row(i) for i in range(3)]


# --- valid files -----------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_in_utf8_and_gbk_reads_the_same(rows, encoding):
    rows.append(["4", "示范养老服务有限公司", COMPANY_USCC, "2000000000000099", "35000.00", "运营补贴", "单位"])
    parsed = parse(to_csv(payee_rows(rows), encoding=encoding))
    assert parsed.problems == [], parsed.problems
    assert parsed.encoding == ("utf-8" if encoding.startswith("utf") else "gb18030")
    assert parsed.header_row == HEADER_ROW and parsed.line_total == 4
    assert [line.line for line in parsed.lines] == [5, 6, 7, 8]
    first, company = parsed.lines[0], parsed.lines[3]
    assert (first.name, first.id_kind, first.id_number, first.wallet_id, first.amount_fen, first.memo) == (
        "受助人1", "resident", resident_id(0), "2000000000000000", 50050, "2026年高龄津贴")
    assert (company.id_kind, company.id_number, company.amount_fen) == ("uscc", COMPANY_USCC, 3_500_000)
    assert parsed.totals.lines == 4 and parsed.totals.amount_fen == 50050 + 50150 + 50250 + 3_500_000
    assert parsed.header.line_count == 4 and parsed.header.total_amount_fen == parsed.totals.amount_fen


def test_xlsx_reads_amounts_exactly(rows):
    rows[0][COL["金额"]] = "1200.10"  # a float cell in the sheet: exactly 120010 fen
    parsed = parse(to_xlsx(payee_rows(rows)), filename="payees.xlsx")
    assert parsed.file_format == "xlsx" and parsed.encoding is None
    assert parsed.problems == [], parsed.problems
    assert parsed.lines[0].amount_fen == 120010
    assert parsed.lines[2].id_number == resident_id(2)


def test_ids_and_wallets_stored_as_numbers_are_refused_with_how_to_fix_them(rows):
    """A spreadsheet program keeps 15 significant digits of a number: an ID or wallet cell holding a number of
    16 or more digits (XLSX), or saved to CSV as "1.10101E+17", is refused, never read as an identifier."""
    all_rows = payee_rows(rows)
    all_rows[FIRST_LINE - 1][COL["证件号码"]] = float(rows[0][COL["证件号码"]])
    all_rows[FIRST_LINE][COL["钱包编号"]] = int(rows[1][COL["钱包编号"]])
    parsed = parse(to_xlsx(all_rows), filename="payees.xlsx")
    assert problems_of(parsed) == [(FIRST_LINE, "证件号码", "number_lost_digits"),
                                   (FIRST_LINE + 1, "钱包编号", "number_lost_digits")]
    rows[0][COL["证件号码"]] = "1.10101E+17"
    assert (FIRST_LINE, "证件号码", "number_lost_digits") in problems_of(parse(to_csv(payee_rows(rows))))


def test_templates_parse_without_problems():
    for data, name in ((template_csv(), "t.csv"), (template_xlsx(), "t.xlsx")):
        parsed = parse(data, filename=name)
        assert parsed.problems == [], name
        assert [line.id_kind for line in parsed.lines] == ["resident", "uscc"]
        assert parsed.totals.amount_fen == parsed.header.total_amount_fen == fen(EXAMPLE_TOTAL)
    assert template_csv().startswith(b"\xef\xbb\xbf")
    assert TEMPLATE_COLUMNS == COLUMNS


def test_header_block_is_optional_and_english_aliases_and_units_are_read(rows):
    columns = ["no", "payee", "id_number", "Wallet_ID", "金额（元）", "memo", "category"]
    parsed = parse(to_csv([columns] + rows))
    assert parsed.problems == [], parsed.problems
    assert parsed.header.line_count is None and parsed.header.total_amount_fen is None
    assert parsed.header_row == 1 and parsed.lines[0].line == 2


def test_minimal_columns_and_ignored_ones(rows):
    columns = ["姓名", "身份证号", "数字人民币钱包", "金额", "科室"]
    parsed = parse(to_csv([columns] + [[r[1], r[2], r[3], r[4], "民政科"] for r in rows]))
    assert parsed.problems == []
    assert parsed.ignored_columns == ["科室"]
    assert parsed.lines[0].memo == ""


def test_what_people_type_is_normalised(rows):
    rows[0][COL["证件号码"]] = " 11010519491231002x "  # lower-case x, stray spaces
    rows[0][COL["钱包编号"]] = "２０００ ００００ ００００ ００００"  # full-width, grouped
    rows[0][COL["金额"]] = "￥1,200.5元"
    rows[0][COL["收款人"]] = "\u3000张\u3000三 "
    rows[0][COL["类别"]] = "个人 (person)"
    rows[1][COL["证件号码"]] = "440524800101536"  # an old 15-digit number: 19 inserted, check recomputed
    rows[1][COL["类别"]] = "Person"
    rows[2][COL["证件号码"]] = "９１３５０１００ｍ０００１００ｙ４３"
    rows[2][COL["类别"]] = "单位"
    parsed = parse(to_csv(payee_rows(rows, total="")), filename="p.csv")
    assert [p for p in parsed.problems if p.line >= FIRST_LINE] == []
    first, second, third = parsed.lines
    assert (first.id_number, first.wallet_id, first.amount_fen, first.name) == (
        "11010519491231002X", "2000000000000000", 120050, "张 三")
    converted = "44052419800101536"
    assert (second.id_kind, second.id_number) == ("resident", converted + ric.calc_check_digit(converted + "0"))
    assert (third.id_kind, third.id_number) == ("uscc", COMPANY_USCC)


def test_id_kind_is_detected_and_the_category_decides_an_ambiguous_number(rows):
    rows[0][COL["证件号码"]], rows[0][COL["类别"]] = DIGITS_ONLY_USCC, ""
    rows[1][COL["证件号码"]], rows[1][COL["类别"]] = BOTH_KINDS, ""
    rows[2][COL["证件号码"]], rows[2][COL["类别"]] = BOTH_KINDS, "单位"
    rows.append(["4", "示范早期试点公司", "91350100M0001TGQXM", "2000000000000099", "1.00", "", ""])  # whitelisted
    parsed = parse(to_csv(payee_rows(rows)))
    found = problems_of(parsed)
    assert (FIRST_LINE + 2, "证件号码", "duplicate_id_number") not in found  # another kind, another payee
    assert [p for p in found if p[2] != "duplicate_id_number"] == []
    assert [(line.id_kind, line.id_number) for line in parsed.lines] == [
        ("uscc", DIGITS_ONLY_USCC), ("resident", BOTH_KINDS), ("uscc", BOTH_KINDS), ("uscc", "91350100M0001TGQXM")]


def test_unknown_region_is_a_warning_not_an_error(rows):
    rows[0][COL["证件号码"]] = "932682198501010017"  # foreigners' permanent residence ID
    rows[1][COL["证件号码"]] = "81000019980902013X"  # Hong Kong residents' permit
    parsed = parse(to_csv(payee_rows(rows)))
    assert parsed.problems == []
    assert parsed.lines[0].warnings and "region" in parsed.lines[0].warnings[0]
    assert parsed.lines[2].warnings == ()


# --- every kind of line problem, at its line and column ----------------------------------------
def test_every_problem_of_every_line_is_reported_with_line_and_column():
    bad_date = "11010119900230123"
    spoil = [
        ("收款人", "", "required"),
        ("收款人", "=HYPERLINK(\"http://x\")", "name_format"),
        ("收款人", "名" * 201, "name_format"),
        ("证件号码", "", "required"),
        ("证件号码", "110101199003071234", "id_checksum"),
        ("证件号码", bad_date + ric.calc_check_digit(bad_date + "0"), "id_birth_date"),
        ("证件号码", "11010119900307", "id_number_format"),
        ("证件号码", "91350100M000100Y44", "uscc_checksum"),
        ("证件号码", "91350100M000100IO4", "uscc_format"),
        ("钱包编号", "", "required"),
        ("钱包编号", "123456789012345", "wallet_id_format"),
        ("金额", "", "required"),
        ("金额", "abc", "amount_format"),
        ("金额", "1000,50", "amount_format"),
        ("金额", "10.005", "amount_decimals"),
        ("金额", "-10.00", "amount_negative"),
        ("金额", "12345678901234.00", "amount_too_large"),
        ("金额", "0.00", "amount_not_positive"),
        ("用途", "补" * 141, "memo_too_long"),
        ("类别", "家庭", "category_format"),
        ("类别", "单位", "category_mismatch"),  # a resident ID
    ]
    rows = [payee_row(i) for i in range(len(spoil) + 3)]
    for row, (column, value, _code) in zip(rows, spoil):
        row[COL[column]] = value
    rows[-3][COL["证件号码"]], rows[-3][COL["类别"]] = COMPANY_USCC, "个人"  # category_mismatch the other way
    rows[-2][COL["证件号码"]] = resident_id(3)  # line FIRST_LINE + 3 left its ID blank: no duplicate, a valid line
    rows[-1][COL["证件号码"]] = resident_id(1)  # repeats line FIRST_LINE + 1
    rows[-1][COL["钱包编号"]] = rows[2][COL["钱包编号"]]  # repeats line FIRST_LINE + 2
    parsed = parse(to_csv(payee_rows(rows, line_count=99, total="1.00")))
    found = problems_of(parsed)
    for index, (column, _value, code) in enumerate(spoil):
        assert (FIRST_LINE + index, column, code) in found, (index, code, found)
    last = FIRST_LINE + len(rows) - 1
    assert (last - 2, "类别", "category_mismatch") in found
    assert (last, "证件号码", "duplicate_id_number") in found
    assert (last, "钱包编号", "duplicate_wallet") in found
    assert (last - 1, "证件号码", "duplicate_id_number") not in found
    assert (1, "总笔数", "line_count_mismatch") in found
    assert not any(code == "total_amount_mismatch" for _l, _c, code in found)  # some amounts were unreadable
    duplicate = next(p for p in parsed.problems if p.code == "duplicate_id_number")
    assert duplicate.message == f"证件号码与第{FIRST_LINE + 1}行重复 (ID number repeats line {FIRST_LINE + 1})"
    wallet = next(p for p in parsed.problems if p.code == "duplicate_wallet")
    assert f"第{FIRST_LINE + 2}行" in wallet.message and f"line {FIRST_LINE + 2}" in wallet.message
    mismatch = [p.message for p in parsed.problems if p.code == "category_mismatch"]
    assert "resident ID" in mismatch[0] and "credit code" in mismatch[1]
    for problem in parsed.problems:
        assert "(" in problem.message and problem.message.endswith(")")  # 中文 (English)
    assert [p.line for p in parsed.problems] == sorted(p.line for p in parsed.problems)
    assert [line.line for line in parsed.lines] == [last - 1]
    assert parsed.invalid_line_count == len(rows) - 1 and parsed.totals.lines == 1


def test_duplicates_name_the_first_line_which_stays_valid(rows):
    rows.append(payee_row(3))
    rows[2][COL["证件号码"]] = rows[0][COL["证件号码"]]
    rows[3][COL["证件号码"]] = rows[0][COL["证件号码"]]
    rows[3][COL["钱包编号"]] = " ".join(rows[1][COL["钱包编号"]][i:i + 4] for i in range(0, 16, 4))  # same, typed in groups
    parsed = parse(to_csv(payee_rows(rows)))
    assert problems_of(parsed) == [
        (FIRST_LINE + 2, "证件号码", "duplicate_id_number"),
        (FIRST_LINE + 3, "证件号码", "duplicate_id_number"),
        (FIRST_LINE + 3, "钱包编号", "duplicate_wallet"),
    ]
    assert all(f"第{FIRST_LINE}行" in p.message for p in parsed.problems[:2])
    assert f"第{FIRST_LINE + 1}行" in parsed.problems[2].message
    assert [line.line for line in parsed.lines] == [FIRST_LINE, FIRST_LINE + 1]


def test_header_totals_that_do_not_match(rows):
    parsed = parse(to_csv(payee_rows(rows, line_count=4, total="100.00")))
    found = problems_of(parsed)
    assert found == [(1, "总笔数", "line_count_mismatch"), (2, "金额合计", "total_amount_mismatch")]
    line_count, total = parsed.problems
    assert "4" in line_count.message and "3" in line_count.message
    assert total.message == ("金额合计为100.00，各行金额之和为1504.50 "
                             "(total amount says 100.00, the lines add up to 1504.50)")


def test_header_values_that_cannot_be_read(rows):
    all_rows = payee_rows(rows, line_count="三笔", total="")
    parsed = parse(to_csv(all_rows))
    assert problems_of(parsed) == [(1, "总笔数", "line_count_format"), (2, "金额合计", "required")]


def test_missing_and_duplicate_columns(rows):
    columns = list(COLUMNS)
    columns[COL["钱包编号"]] = "开户行"
    columns[COL["用途"]] = "金额"
    parsed = parse(to_csv(payee_rows(rows, columns=columns)))
    found = problems_of(parsed)
    assert (HEADER_ROW, "钱包编号", "column_missing") in found
    assert (HEADER_ROW, "金额", "column_duplicate") in found
    assert parsed.ignored_columns == ["开户行"]


def test_problem_list_is_bounded_but_counted():
    rows = [payee_row(i) for i in range(50)]
    for row in rows:
        row[COL["证件号码"]] = "bad"
    parsed = parse(to_csv(payee_rows(rows)), max_problems=10)
    assert len(parsed.problems) == 10 and parsed.problem_count == 50 and parsed.problems_truncated


# --- files that are refused as a whole ---------------------------------------------------------
def test_not_a_spreadsheet_is_refused(rows):
    with pytest.raises(PayeeFileRefused) as refused:
        parse(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", filename="payees.xlsx")
    assert refused.value.code == "not_a_spreadsheet" and "PDF" in str(refused.value)
    with pytest.raises(PayeeFileRefused) as refused:
        parse(to_xlsx(payee_rows(rows)), filename="payees.csv")
    assert refused.value.code == "not_a_spreadsheet"
    with pytest.raises(PayeeFileRefused) as refused:
        parse(to_csv(payee_rows(rows)), filename="payees.doc")
    assert refused.value.code == "unsupported_format"
    with pytest.raises(PayeeFileRefused) as refused:
        parse(to_csv([["hello", "world"]] * 60))
    assert refused.value.code == "no_header_row" and "收款人、证件号码、钱包编号" in str(refused.value)


def test_oversized_files_are_refused(rows):
    data = to_csv(payee_rows(rows))
    with pytest.raises(PayeeFileRefused) as refused:
        parse(data, max_bytes=len(data) - 1)
    assert refused.value.code == "file_too_large"
    assert "MB" in str(refused.value) and "limit" in str(refused.value)


def test_too_many_rows_and_undecodable_files_are_refused(rows):
    with pytest.raises(PayeeFileRefused) as refused:
        parse(to_csv(payee_rows(rows)), max_rows=2)
    assert refused.value.code == "too_many_rows"
    with pytest.raises(PayeeFileRefused) as refused:
        parse("收款人,证件号码\n".encode("utf-8") + b"\xff\xfe\xfa\n" * 10)
    assert refused.value.code == "encoding"


def test_formulas_are_refused(rows):
    all_rows = payee_rows(rows)
    all_rows[FIRST_LINE][COL["金额"]] = "=E5*2"
    with pytest.raises(PayeeFileRefused) as refused:
        parse(to_xlsx(all_rows), filename="payees.xlsx")
    assert refused.value.code == "formula"
    assert f"E{FIRST_LINE + 1}" in str(refused.value)


def test_zip_bomb_is_refused_before_openpyxl_opens_it(rows, monkeypatch):
    data = zip_bomb(to_xlsx(payee_rows(rows)))
    forbid_opening_workbooks(monkeypatch)
    with pytest.raises(PayeeFileRefused) as refused:
        parse(data, filename="payees.xlsx")
    assert refused.value.code == "zip_bomb"


# --- streaming ---------------------------------------------------------------------------------
def test_line_sink_receives_valid_lines_as_they_are_read_and_nothing_is_kept(rows, tmp_path):
    rows[1][COL["钱包编号"]] = "12345"
    path = tmp_path / "payees.csv"
    path.write_bytes(to_csv(payee_rows(rows)))
    received = []
    with open(path, "rb") as handle:
        parsed = parse_payee_file(handle, filename="payees.csv", line_sink=received.append)
    assert [line.line for line in received] == [FIRST_LINE, FIRST_LINE + 2]
    assert parsed.lines == []
    assert parsed.totals.lines == 2 and parsed.invalid_line_count == 1
    assert parsed.totals.amount_fen == sum(line.amount_fen for line in received)
    import hashlib

    assert parsed.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- error report ------------------------------------------------------------------------------
def test_error_report_csv_round_trip(rows):
    rows[0][COL["收款人"]] = "=1+2"
    rows[2][COL["金额"]] = "-5.00"
    data = to_csv(payee_rows(rows, line_count=9))
    parsed = parse(data)
    report = write_error_report(problems=parsed.problems,
                                original_rows=iter_original_rows(data=data, filename="p.csv"), fmt="csv")
    lines = csv_report_rows(report)
    assert lines[HEADER_ROW - 1] == COLUMNS + ["错误说明 (errors)"]
    assert lines[FIRST_LINE - 1][COL["收款人"]] == "'=1+2"
    assert "收款人" in lines[FIRST_LINE - 1][-1] and "payee name" in lines[FIRST_LINE - 1][-1]
    assert lines[FIRST_LINE][-1] == ""
    assert "金额" in lines[FIRST_LINE + 1][-1]
    assert "总笔数" in lines[0][-1] and len(lines[0]) == len(COLUMNS) + 1
    assert_no_formula_cells(lines)
    # Fix the cells in the report and upload it again: the error column is ignored.
    lines[FIRST_LINE - 1][COL["收款人"]] = "受助人1"
    lines[FIRST_LINE + 1][COL["金额"]] = "502.50"
    lines[0][1], lines[1][1] = "3", "1504.50"
    again = parse(to_csv(lines))
    assert again.problems == [], again.problems
    assert again.totals.lines == 3 and again.columns[-1] == "错误说明 (errors)" and again.ignored_columns == []


def test_error_report_xlsx_holds_text_not_formulas(rows):
    rows[0][COL["收款人"]] = "=SUM(A1:A2)"
    data = to_csv(payee_rows(rows))
    parsed = parse(data)
    report = write_error_report(problems=parsed.problems,
                                original_rows=iter_original_rows(data=data, filename="p.csv"), fmt="xlsx")
    sheet = first_sheet(report)
    assert sheet.title == "收款人"
    cell = sheet.cell(row=FIRST_LINE, column=COL["收款人"] + 1)
    assert cell.value == "=SUM(A1:A2)" and cell.data_type == "s"
    assert "收款人" in sheet.cell(row=FIRST_LINE, column=len(COLUMNS) + 1).value
    assert sheet.cell(row=HEADER_ROW, column=len(COLUMNS) + 1).value == "错误说明 (errors)"


def test_control_characters_in_a_name_or_memo_are_a_problem_of_their_line(rows):
    """A voucher cannot carry them (XML 1.0), so a file holding one is refused where the clerk can fix it; tabs and
    line breaks inside a cell are only whitespace."""
    rows[0][COL["用途"]] = "高龄\x01津贴"
    rows[1][COL["收款人"]] = "受助人\x1f2"
    rows[2][COL["用途"]] = "高龄\t津贴\n2026"
    parsed = parse(to_csv(payee_rows(rows)))
    assert problems_of(parsed) == [(FIRST_LINE, "用途", "control_character"),
                                   (FIRST_LINE + 1, "收款人", "control_character")]
    assert [line.memo for line in parsed.lines] == ["高龄 津贴 2026"]


def test_the_xlsx_error_report_of_a_file_with_a_control_character_shows_where_it_stood(rows):
    """A worksheet cannot hold a control character: the report of the very file the check refused for one was a
    server error; the character is shown as U+FFFD in its cell, the error column says what to fix."""
    rows[1][COL["收款人"]] = "受助人\x01二"
    data = to_csv(payee_rows(rows))
    parsed = parse_payee_file(data, filename="p.csv")
    assert problems_of(parsed) == [(FIRST_LINE + 1, "收款人", "control_character")]
    report = write_error_report(problems=parsed.problems,
                                original_rows=iter_original_rows(data=data, filename="p.csv"), fmt="xlsx")
    sheet = first_sheet(report)
    assert sheet.cell(row=FIRST_LINE + 1, column=COL["收款人"] + 1).value == "受助人\ufffd二"
    assert "控制字符" in sheet.cell(row=FIRST_LINE + 1, column=len(COLUMNS) + 1).value


@pytest.mark.parametrize("column,value", [("证件号码", "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X"), ("钱包编号", "٢٠٠٠٠٠٠٠٠٠٠٠٠٠٠١")])
def test_digits_of_another_script_are_no_identifier(rows, column, value):
    """Arabic-Indic digits match \\d and int() reads them, so the ID passed its check digit and the wallet its
    format, and were stored in digits no operator or message knows."""
    rows[0][COL[column]] = value
    parsed = parse_payee_file(to_csv(payee_rows(rows)), filename="p.csv", keep_lines=True)
    assert [(p.line, p.column) for p in parsed.problems] == [(FIRST_LINE, column)]
    assert all(line.id_number.isascii() and line.wallet_id.isascii() for line in parsed.lines)
