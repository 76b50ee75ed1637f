"""Every message type round-trips through build and read, validates against cfx.xsd, in UTF-8 and GBK."""
import datetime as dt

import pytest
from lxml import etree

from adapters.tips import messages as m
from adapters.tips.interface import Acknowledgement, AgreementVerificationReply, DeductionResult
from adapters.xml import XmlRefused, load_schema
from tests.adapters.tips.conftest import WORK_DATE, batch, batch_result, head, real_time, verification

ENCODINGS = ["UTF-8", "GBK"]


def roundtrip(data: bytes):
    doc = m.read_document(data, max_bytes=10 ** 7)
    assert load_schema(m.CFX_XSD_PATH).validate(etree.fromstring(data))
    return doc, m.read_body(doc)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_9114_and_9115(encoding):
    v = verification(tax_pay_name="上海某某有限公司 & <分公司>")
    data = m.verification_document(head=head(m.AGREEMENT_VERIFY), message=v, encoding=encoding)
    assert data.startswith(f'<?xml version="1.0" encoding="{encoding}"?>'.encode())
    doc, back = roundtrip(data)
    assert back == v and doc.encoding == encoding
    reply = AgreementVerificationReply(vc_no=v.vc_no, vc_result="1", add_word="账户名称不符")
    data = m.verification_reply_document(head=m.reply_head(doc.head, msg_no=m.AGREEMENT_REPLY), reply=reply, request=v,
                                         encoding=encoding)
    doc2, back2 = roundtrip(data)
    assert back2 == reply and doc2.head.msg_ref == doc.head.msg_id


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_3001_and_2001(encoding):
    message = real_time(remark="滞纳金 €")  # € is not in GBK: a character reference, read back the same
    doc, back = roundtrip(m.real_time_document(message=message, encoding=encoding))
    assert back == message
    result = DeductionResult(ori_tax_org_code=message.tax_org_code, ori_entrust_date=message.entrust_date,
                             ori_tra_no=message.item.tra_no, tax_vou_no=message.item.tax_vou_no,
                             amount_fen=message.item.amount_fen, result="90000", tax_date=WORK_DATE)
    _, back2 = roundtrip(m.real_time_reply_document(head=m.reply_head(doc.head, msg_no=m.REAL_TIME_REPLY),
                                                    result=result, encoding=encoding))
    assert back2 == result


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_3102_9121_2102(encoding):
    pack = batch(5)
    doc, back = roundtrip(m.batch_document(message=pack, encoding=encoding))
    assert back == pack
    ack = Acknowledgement(ori_msg_id=pack.head.msg_id, result="90000")
    _, back2 = roundtrip(m.batch_ack_document(head=m.reply_head(doc.head, msg_no=m.BATCH_ACK), ack=ack, request=pack,
                                              encoding=encoding))
    assert back2 == ack
    result = batch_result(pack)
    _, back3 = roundtrip(m.batch_result_document(head=head(m.BATCH_RESULT), result=result, encoding=encoding))
    assert back3 == result


def test_9120_and_9005():
    doc, back = roundtrip(m.test_document(head=head(m.CONNECTIVITY_TEST), remark="ping"))
    assert back == "ping"
    _, reply = roundtrip(m.generic_reply_document(head=m.reply_head(doc.head, msg_no=m.GENERIC_REPLY),
                                                  ori_msg_no="9005", result="90000"))
    assert (reply.ori_msg_no, reply.result, reply.ori_msg_id) == ("9005", "90000", doc.head.msg_id)


def test_a_package_holds_at_most_1000_items():
    pack = batch(1000)
    assert len(m.read_batch(m.read_document(m.batch_document(message=pack), max_bytes=10 ** 7)).items) == 1000
    too_many = m.batch_document(message=pack).replace(b"</MSG>", b"</MSG>")  # the schema refuses a 1,001st too
    extra = too_many.split(b"<Payment3102>", 2)
    data = extra[0] + b"<Payment3102>" + extra[1] + b"<Payment3102>" + extra[1] + b"<Payment3102>" + extra[2]
    with pytest.raises(XmlRefused) as refused:
        m.read_document(data, max_bytes=10 ** 7)
    assert refused.value.code == "schema_invalid"
    with pytest.raises(ValueError):
        m.batch_document(message=batch(1001))


def test_amounts_are_integer_fen_both_ways():
    assert m.fen_to_yuan_text(-123456) == "-1234.56" and m.fen_to_yuan_text(5) == "0.05"
    assert m.yuan_text_to_fen("-1234.56") == -123456 and m.yuan_text_to_fen("999999999999999.99") == 99999999999999999
    with pytest.raises(TypeError):
        m.fen_to_yuan_text(12.5)


def test_msg_no_that_does_not_name_its_body_is_unrecognised():
    data = m.real_time_document(message=real_time()).replace(b"<MsgNo>3001</MsgNo>", b"<MsgNo>3102</MsgNo>")
    with pytest.raises(m.UnrecognisedMessage):
        m.read_document(data, max_bytes=10 ** 6)


@pytest.mark.parametrize("bad", [b"<TraAmt>12.5</TraAmt>", b"<TraAmt>1,234.56</TraAmt>"])
def test_amounts_must_have_two_decimals(bad):
    data = m.real_time_document(message=real_time(amount_fen=1234_56))
    data = data.replace(b"<TraAmt>1234.56</TraAmt>", bad)
    with pytest.raises(XmlRefused):
        m.read_document(data, max_bytes=10 ** 6)


def test_dates_are_yyyymmdd():
    assert m.date_text(dt.date(2026, 3, 2)) == "20260302" and m.read_date("20260302") == dt.date(2026, 3, 2)
    assert m.date_text(dt.date(999, 1, 5)) == "09990105"


@pytest.mark.parametrize("bad", ["2026-03-02", "2026W101", "20260230", "2026032", "202603021", "２０２６０３０２"])
def test_only_eight_digits_of_a_real_date_are_a_date(bad):
    with pytest.raises(ValueError):
        m.read_date(bad)


def test_a_message_that_would_not_validate_is_refused_before_sending():
    with pytest.raises(ValueError, match="not valid"):
        m.real_time_document(message=real_time(pay_op_bk_code="12345"))  # a bank code is 12 digits


def test_a_1000_item_package_is_quick_to_write_and_read():
    import time

    pack = batch(1000)
    started = time.perf_counter()
    data = m.batch_document(message=pack, encoding="GBK")
    back = m.read_batch(m.read_document(data, max_bytes=10 ** 7))
    assert back == pack and time.perf_counter() - started < 2
