"""1104 / 2104 (refund order and its project-defined result), 1021 / 2021 (reversal) and 1123 / 2123 (stop
payment), 3139 (treasury entry detail): written, validated against cfx.xsd, read back unchanged in UTF-8 and GBK; what the schema refuses."""
import datetime as dt
from dataclasses import replace

import pytest

from adapters.tips import messages as m
from adapters.tips.interface import (
    EntryLine, RefundItem, RefundItemResult, RefundOrder, RefundResult, Reversal, ReversalReply, StopPayment,
    StopPaymentReply, TreasuryEntryDetail,
)
from adapters.xml import XmlRefused

DAY = dt.date(2026, 11, 26)
TAX, SERVICE = "100000000002", "100000000001"


def _head(msg_no: str):
    return m.new_head(msg_no=msg_no, src=TAX, des=SERVICE, work_date=DAY)


ITEM = RefundItem(tra_no="00000001", draw_back_tre_code="3201000000", payee_bank_no="001000000000",
                  payee_op_bk_code="001000000000", payee_acct="0012345678901234", payee_name="示范纳税企业有限公司",
                  tax_pay_code="91320100MA1XXXXX0X", tax_pay_name="示范纳税企业有限公司",
                  draw_back_vou_no="40000000100000001", ori_tax_vou_no="32000000011126", amount_fen=1_234_56,
                  bill_date=DAY, budget_subject_code="101010101", trim_sign="1", draw_back_reason_code="01")


def _order(items) -> RefundOrder:
    return RefundOrder(head=_head(m.REFUND_ORDER), tax_org_code="13201000000", entrust_date=DAY, pack_no="00000009",
                       return_term=3, all_num=len(items), all_amount_fen=sum(i.amount_fen for i in items),
                       items=tuple(items))


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK"])
def test_refund_order_round_trip(encoding):
    order = _order([ITEM, replace(ITEM, tra_no="00000002", amount_fen=1, budget_subject_code="",
                                  draw_back_reason_code="")])
    doc = m.read_document(m.refund_order_document(message=order, encoding=encoding), max_bytes=1_000_000)
    assert doc.encoding == encoding
    assert m.read_body(doc) == order
    assert m.message_key(doc) == "TK-13201000000-20261126-00000009"


def test_refund_order_limits_and_schema():
    with pytest.raises(ValueError, match="1 to 1000 items"):
        m.refund_order_document(message=_order([]))
    with pytest.raises(ValueError, match="not valid"):  # a treasury code of 9 characters
        m.refund_order_document(message=_order([replace(ITEM, draw_back_tre_code="320100000")]))
    data = m.refund_order_document(message=_order([ITEM])).replace(b"<TrimSign>1</TrimSign>", b"<TrimSign>2</TrimSign>")
    with pytest.raises(XmlRefused):
        m.read_document(data, max_bytes=1_000_000)


def test_refund_result_round_trip():
    result = RefundResult(ori_tax_org_code="13201000000", ori_entrust_date=DAY, ori_pack_no="00000009", all_num=2,
                          all_amount_fen=1_234_57, succ_num=1, succ_amount_fen=1_234_56, result="90000",
                          add_word="成功1笔 (refunded 1)",
                          items=(RefundItemResult(ori_tra_no="00000001", draw_back_vou_no="40000000100000001",
                                                  amount_fen=1_234_56, result="90000"),
                                 RefundItemResult(ori_tra_no="00000002", draw_back_vou_no="40000000100000002",
                                                  amount_fen=1, result="E0003", add_word="余额上限 (balance cap)")))
    head = m.new_head(msg_no=m.REFUND_RESULT, src=SERVICE, des=TAX, work_date=DAY)
    doc = m.read_document(m.refund_result_document(head=head, result=result, encoding="GBK"), max_bytes=1_000_000)
    assert m.read_body(doc) == result
    assert m.message_key(doc) == "TK-13201000000-20261126-00000009"


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK"])
def test_reversal_and_its_answer_round_trip(encoding):
    request = Reversal(head=_head(m.REVERSAL), tax_org_code="13201000000", entrust_date=DAY, cancel_no="00000003",
                       ori_entrust_date=dt.date(2026, 11, 25), ori_tra_no="00000001", cancel_reason="重复扣款 (twice)")
    doc = m.read_document(m.reversal_document(message=request, encoding=encoding), max_bytes=1_000_000)
    assert m.read_body(doc) == request
    assert m.message_key(doc) == "13201000000-20261125-00000001"  # the deduction's own key
    reply = ReversalReply(cancel_answer="0", result="90000", add_word="已冲正 (reversed)")
    head = m.reply_head(request.head, msg_no=m.REVERSAL_REPLY)
    answer = m.read_document(m.reversal_reply_document(head=head, reply=reply, request=request, encoding=encoding),
                             max_bytes=1_000_000)
    assert m.read_body(answer) == reply and answer.head.msg_ref == request.head.msg_id
    with pytest.raises(ValueError, match="not valid"):  # CancelAnswer is 0 or 1
        m.reversal_reply_document(head=head, reply=replace(reply, cancel_answer="2"), request=request)


@pytest.mark.parametrize("tra_no", ["", "00000005"])
def test_stop_payment_and_its_answer_round_trip(tra_no):
    request = StopPayment(head=_head(m.STOP_PAYMENT), tax_org_code="13201000000", entrust_date=DAY, stop_no="00000004",
                          ori_entrust_date=DAY, ori_pack_no="00000009", ori_tra_no=tra_no)
    doc = m.read_document(m.stop_payment_document(message=request, encoding="GBK"), max_bytes=1_000_000)
    assert m.read_body(doc) == request
    assert m.message_key(doc) == "13201000000-20261126-00000009"
    reply = StopPaymentReply(stop_num=3, stop_amount_fen=300_00, done_num=2, result="24020", add_word="止付 3 笔")
    head = m.reply_head(request.head, msg_no=m.STOP_PAYMENT_REPLY)
    answer = m.read_document(m.stop_payment_reply_document(head=head, reply=reply, request=request), max_bytes=1_000_000)
    assert m.read_body(answer) == reply


def test_treasury_entry_detail_round_trip_with_a_reversed_entry():
    detail = TreasuryEntryDetail(
        tre_code="3201000000", tax_org_code="13201000000", in_tre_date=DAY, pack_no="00000002", all_num=2,
        all_amount_fen=50_00, child_pack_num=2, cur_pack_no=2,
        lines=(EntryLine(budget_type="1", budget_level_code="1", amount_fen=150_00, budget_subject_code="101010",
                         exp_tax_vou_no="320000000011126"),
               EntryLine(budget_type="1", budget_level_code="3", amount_fen=-100_00)))
    head = m.new_head(msg_no=m.ENTRY_DETAIL, src=SERVICE, des=TAX, work_date=DAY)
    doc = m.read_document(m.entry_detail_document(head=head, detail=detail, encoding="GBK"), max_bytes=1_000_000)
    assert m.read_body(doc) == detail
    assert m.message_key(doc) == "RK-13201000000-3201000000-20261126-2"
    with pytest.raises(ValueError, match="not valid"):  # a budget level outside 0-5
        m.entry_detail_document(head=head, detail=replace(detail, lines=(replace(detail.lines[0], budget_level_code="7"),)))
