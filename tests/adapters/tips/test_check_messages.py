"""3111 (check detail) and 2111 (its answer): written, validated against cfx.xsd, read back unchanged, in UTF-8
and GBK; what the schema refuses."""
import datetime as dt

import pytest

from adapters.tips import messages as m
from adapters.tips.interface import CheckDetail, CheckLine, CheckResult
from adapters.xml import XmlRefused

DAY = dt.date(2026, 11, 26)


def _detail(lines, **overrides) -> CheckDetail:
    fields = dict(head=m.new_head(msg_no=m.CHECK_DETAIL, src="100000000002", des="100000000001", work_date=DAY),
                  pay_bk_code="001000000000", chk_date=DAY, chk_acct_ord="0001", payee_bank_no="011100000003",
                  chk_acct_type="1", all_num=len(lines), all_amount_fen=sum(line.amount_fen for line in lines),
                  child_pack_num=2, cur_pack_no=1, lines=tuple(lines))
    fields.update(overrides)
    return CheckDetail(**fields)


LINES = [CheckLine(pay_op_bk_code="001000000000", pay_acct="0012345678901234", ori_tax_org_code="13201000000",
                   ori_entrust_date=DAY, ori_pack_no="", ori_tra_no="00000001", amount_fen=123_45,
                   tax_vou_no="320000000011126", tax_pay_name="示范纳税企业有限公司", protocol_no="P-0001"),
         CheckLine(pay_op_bk_code="001000000000", pay_acct="0012345678901235", ori_tax_org_code="13201000000",
                   ori_entrust_date=DAY, ori_pack_no="00000007", ori_tra_no="00000002", amount_fen=1)]


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK"])
def test_check_detail_round_trip(encoding):
    detail = _detail(LINES)
    doc = m.read_document(m.check_detail_document(message=detail, encoding=encoding), max_bytes=1_000_000)
    assert m.read_body(doc) == detail
    assert m.message_key(doc) == "CHK-001000000000-20261126-0001-1"


def test_an_empty_package_of_a_day_is_valid():
    detail = _detail([])
    doc = m.read_document(m.check_detail_document(message=detail), max_bytes=1_000_000)
    assert m.read_check_detail(doc).lines == ()


def test_check_result_round_trip():
    head = m.new_head(msg_no=m.CHECK_RESULT, src="100000000001", des="100000000002", work_date=DAY)
    result = CheckResult(ori_pay_bank_no="001000000000", ori_chk_date=DAY, ori_chk_acct_ord="0001",
                         ori_payee_bank_no="011100000003", result="1", add_word="差异 3 笔 (discrepancies)")
    doc = m.read_document(m.check_result_document(head=head, result=result, encoding="GBK"), max_bytes=1_000_000)
    assert m.read_body(doc) == result
    assert m.message_key(doc) == "CHK-001000000000-20261126-0001"


def test_what_the_schema_refuses_is_not_written():
    with pytest.raises(ValueError):
        m.check_detail_document(message=_detail(LINES, pay_bk_code="123"))  # a bank code is 12 digits
    head = m.new_head(msg_no=m.CHECK_RESULT, src="100000000001", des="100000000002", work_date=DAY)
    with pytest.raises(ValueError):
        m.check_result_document(head=head, result=CheckResult(
            ori_pay_bank_no="001000000000", ori_chk_date=DAY, ori_chk_acct_ord="0001", ori_payee_bank_no="",
            result="2"))  # 0 or 1


def test_a_3111_with_another_message_number_is_unrecognised():
    data = m.check_detail_document(message=_detail(LINES)).replace(b"<MsgNo>3111</MsgNo>", b"<MsgNo>3102</MsgNo>")
    with pytest.raises((m.UnrecognisedMessage, XmlRefused)):
        m.read_document(data, max_bytes=1_000_000)
