"""The shared spreadsheet reading: duplicate table, exact keys, the header block, a file through a format's line
checks. (Formats, refusals and the error report are tested through the payroll and payee parsers built on it.)"""
import pytest

from treasury.spreadsheets import (
    MESSAGES,
    LineChecker,
    ProblemList,
    SeenTable,
    SheetLayout,
    SheetReader,
    SpreadsheetRefused,
    check_file,
    resident_id_key,
    wallet_id_key,
)


def test_seen_table_grows_past_its_first_size_and_remembers_every_first_line():
    table = SeenTable(expected=10)
    keys = [wallet_id_key(f"100{i:013d}") for i in range(5_000)]
    assert all(table.add(key, line) is None for line, key in enumerate(keys, start=1))
    assert table.add(keys[0], 9_999) == 1
    assert table.add(keys[4_321], 9_999) == 4_322
    assert table.add(0, 1) is None and table.add(1, 2) == 1  # 0 marks an empty slot, so it is stored as 1


def test_resident_id_keys_are_exact_and_fit_in_63_bits():
    assert resident_id_key("11010519491231002X") != resident_id_key("110105194912310020")
    assert resident_id_key("999999999999999999") < resident_id_key("99999999999999999X") < 2**63


LAYOUT = SheetLayout(
    columns={"name": (("姓名", "name"), True), "id": (("证件号码",), True), "amount": (("金额",), True)},
    header_items={"line_count": ("总笔数",), "title": ("标题",), "period": ("所属期",)},
    required_header_items=("period",),
    sheet_title="表",
)


def test_header_block_items_in_one_or_two_cells_then_the_data_lines():
    problems = ProblemList(messages={"required": "r", "header_missing": "h", "line_count_mismatch": "m"})
    sheet = SheetReader(LAYOUT, problems=problems)
    rows = iter([(1, ["某某补贴发放表"]), (2, ["总笔数：3"]), (3, ["标题：", " 冬季  补贴 "]), (4, ["总笔数", "9"]),
                 (5, ["姓名", "证件号码", "金额（元）", "备注"]), (6, ["a", "b", "1"]), (7, ["", " "]), (8, ["c"])])
    sheet.read_head(rows)
    assert sheet.header_items["line_count"].line == 2 and sheet.header_items["line_count"].value == "3"
    assert sheet.header_items["title"].label == "标题：" and sheet.header_items["title"].value == "冬季 补贴"
    assert (sheet.header_row, sheet.index, sheet.ignored_columns) == (5, {"name": 0, "id": 1, "amount": 2}, ["备注"])
    assert [(p.line, p.column, p.code) for p in problems.kept] == [(1, "所属期", "header_missing")]
    assert [line for line, _cells in sheet.data_lines(rows)] == [6, 8]
    sheet.check_line_count(int(sheet.header_items["line_count"].value))
    assert problems.kept[-1].code == "line_count_mismatch" and problems.kept[-1].line == 2


def test_no_column_header_row_names_the_first_required_columns():
    sheet = SheetReader(LAYOUT, problems=ProblemList(messages={}))
    with pytest.raises(SpreadsheetRefused) as refused:
        sheet.read_head(iter([(line, ["note"]) for line in range(1, 60)]))
    assert refused.value.code == "no_header_row" and "姓名、证件号码、金额" in str(refused.value)


class _NameChecker(LineChecker):
    """A format of names only: a line is valid when its name is filled."""

    layout = LAYOUT
    messages = {**MESSAGES, "header_missing": "h"}
    header_readers = {"line_count": int, "title": str, "period": str}

    def check(self, line, cells):
        before = self.problems.count
        if not cells[0].strip():
            self.problems.add(line, self.labels["name"], "required")
        if self.problems.count != before:
            self.invalid_lines += 1
            return
        self.accept((line, cells[0]))


@pytest.mark.parametrize("with_sink,keep_lines", [(True, True), (True, False), (False, True), (False, False)])
def test_check_file_hands_each_valid_line_to_the_sink_and_keeps_it_only_when_asked(with_sink, keep_lines):
    data = "所属期,2025-06\n总笔数,3\n姓名,证件号码,金额\na,1,1\n,2,2\n\nc\n".encode()
    received = []
    checked = check_file(_NameChecker, data=data, filename="f.csv", line_sink=received.append if with_sink else None,
                         keep_lines=keep_lines, max_bytes=10_000, max_rows=10, max_problems=10,
                         max_uncompressed_bytes=10_000, max_compression_ratio=10)
    valid = [(4, "a"), (7, "c")]  # the short line 7 is padded to the header's width
    assert received == (valid if with_sink else [])
    assert checked.checker.lines == (valid if keep_lines else [])
    assert (checked.checker.valid_lines, checked.checker.invalid_lines, checked.sheet.line_total) == (2, 1, 3)
    fields = checked.sheet_fields()
    assert [(p.line, p.code) for p in fields["problems"]] == [(5, "required")]
    assert (fields["header_row"], fields["file_format"], fields["encoding"]) == (3, "csv", "utf-8")
