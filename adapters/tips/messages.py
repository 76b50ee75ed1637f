"""Build and read TIPS-style CFX documents (schemas/cfx.xsd) and their SOAP carriage (schemas/tips_soap.xsd).

Shared by the inbound endpoint, the outbound client and the sandbox tax system.

Writing: documents are written from escaped text templates (like adapters.budget.messages: a 1,000-item
3102 or 2102 is a few hundred kilobytes, and text is the fastest way to write it), then encoded as the
caller asks: UTF-8 or GBK (real TIPS traffic is GBK). The XML declaration names the encoding; a character
GBK cannot carry is written as a character reference, which XML reads back unchanged.

Reading: `read_document` is the only way in for a CFX document. It goes through `adapters.xml`
(size limit, no DOCTYPE, no entities, no network) and validates against cfx.xsd before any field is
read; it then checks that HEAD/MsgNo names the blocks in MSG. The per-message readers below take a
validated `Document` and return the dataclasses of `adapters.tips.interface`; domain code never sees
lxml objects. `read_soap` does the same for the SOAP envelope around a document.

Amounts are yuan text `-?\\d{1,15}\\.\\d{2}` on the wire and integer fen inside: the XSD pattern
guarantees the form, so conversion is integer arithmetic on the digits (no float, no rounding).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from adapters.tips.interface import (
    Acknowledgement,
    AgreementVerification,
    AgreementVerificationReply,
    BatchDeduction,
    BatchResult,
    CheckDetail,
    CheckLine,
    CheckResult,
    DeductionItem,
    DeductionResult,
    MessageHead,
    RealTimeDeduction,
    RefundItem,
    RefundItemResult,
    RefundOrder,
    RefundResult,
    Reversal,
    ReversalReply,
    StopPayment,
    StopPaymentReply,
    EntryLine,
    TreasuryEntryDetail,
    TaxTypeItem,
    TreasuryAccount,
)
from adapters.xml import SCHEMA_INVALID, XmlRefused, parse, parse_and_validate, validate

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
CFX_XSD_PATH = SCHEMA_DIR / "cfx.xsd"
SOAP_XSD_PATH = SCHEMA_DIR / "tips_soap.xsd"
BANK_WSDL_PATH = SCHEMA_DIR / "tips_bank.wsdl"  # this service's endpoint
TAX_WSDL_PATH = SCHEMA_DIR / "tips_tax.wsdl"  # the tax system's endpoint (the sandbox's)

NS = "urn:ecny-treasury:tips:v1"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ACTION = "urn:ecny-treasury:tips:v1:Send"
VERSION = "1.0"
APP = "TIPS"

# Message numbers (MsgNo).
AGREEMENT_VERIFY = "9114"
AGREEMENT_REPLY = "9115"
REAL_TIME_DEDUCTION = "3001"
REAL_TIME_REPLY = "2001"
BATCH_DEDUCTION = "3102"
BATCH_ACK = "9121"
BATCH_RESULT = "2102"
GENERIC_REPLY = "9120"
CONNECTIVITY_TEST = "9005"
CHECK_DETAIL = "3111"
CHECK_RESULT = "2111"
MESSAGE_NUMBERS = (AGREEMENT_VERIFY, AGREEMENT_REPLY, REAL_TIME_DEDUCTION, REAL_TIME_REPLY, BATCH_DEDUCTION,
                   BATCH_ACK, BATCH_RESULT, GENERIC_REPLY, CONNECTIVITY_TEST, CHECK_DETAIL, CHECK_RESULT)
# Refunds, reversals and stop payments (2104 is project-defined: front-ends name no refund result).
REFUND_ORDER = "1104"
REFUND_RESULT = "2104"
REVERSAL = "1021"
REVERSAL_REPLY = "2021"
STOP_PAYMENT = "1123"
STOP_PAYMENT_REPLY = "2123"
ENTRY_DETAIL = "3139"
MESSAGE_NUMBERS += (REFUND_ORDER, REFUND_RESULT, REVERSAL, REVERSAL_REPLY, STOP_PAYMENT, STOP_PAYMENT_REPLY,
                    ENTRY_DETAIL)
# Social-insurance premiums (project-defined numbers: no public TIPS message carries a declaration).
SOCIAL_DECLARATION = "5101"
SOCIAL_DECLARATION_REPLY = "5102"
SOCIAL_PAYMENT = "5103"
SOCIAL_FLEXIBLE_PAYMENT = "5104"
MESSAGE_NUMBERS += (SOCIAL_DECLARATION, SOCIAL_DECLARATION_REPLY, SOCIAL_PAYMENT, SOCIAL_FLEXIBLE_PAYMENT)
BATCH_MAX_ITEMS = 1000
ENCODINGS = ("UTF-8", "GBK")

_SOAP_ENVELOPE = f"{{{SOAP_NS}}}Envelope"
_SOAP_HEADER = f"{{{SOAP_NS}}}Header"
_SOAP_BODY = f"{{{SOAP_NS}}}Body"
_SOAP_FAULT = f"{{{SOAP_NS}}}Fault"
SEND_REQUEST = f"{{{NS}}}SendRequest"
SEND_RESPONSE = f"{{{NS}}}SendResponse"
_FAULT_DETAIL = f"{{{NS}}}FaultDetail"

_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BLOCK_NUMBER = re.compile(r"[A-Za-z]+([0-9]{4})")


# ---------------------------------------------------------------------------------------------
# Amounts, dates, identifiers
# ---------------------------------------------------------------------------------------------


def fen_to_yuan_text(fen: int) -> str:
    """-123456 -> '-1234.56'. Only int fen (TypeError otherwise, before anything is sent)."""
    if type(fen) is not int:
        raise TypeError(f"amounts must be int fen, got {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    if fen >= 10 ** 17:
        raise ValueError("amount too large for a TIPS message (15 digits of yuan)")
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def yuan_text_to_fen(text: str) -> int:
    """'-1234.56' -> -123456, for text the XSD's Amount pattern has already validated."""
    negative = text.startswith("-")
    whole, point, cents = text.lstrip("-").partition(".")
    if not point or len(cents) != 2 or not whole.isdigit() or not cents.isdigit():
        raise ValueError(f"not a yuan amount with two decimals: {text!r}")
    fen = int(whole) * 100 + int(cents)
    return -fen if negative else fen


def date_text(value: dt.date) -> str:
    """2026-11-26 -> '20261126' (isoformat without its dashes: a sixth of strftime's time, once a line)."""
    return value.isoformat().replace("-", "")


def read_date(text: str) -> dt.date:
    """'20261126' -> 2026-11-26; anything but eight digits of a real date is a ValueError. (fromisoformat
    reads the basic form; strptime took seven times as long, once a line of a 1,000-line result.)"""
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a date as YYYYMMDD: {text!r}")
    return dt.date.fromisoformat(text)


def new_msg_id(work_date: dt.date) -> str:
    """A fresh 20-digit MsgID: the work date and 12 random digits (a retry reuses the same document, so
    the same MsgID)."""
    return f"{date_text(work_date)}{secrets.randbelow(10 ** 12):012d}"


def new_head(*, msg_no: str, src: str, des: str, work_date: dt.date, msg_ref: str = "",
             msg_id: str = "") -> MessageHead:
    """A head for a new message; a request refers to itself (MsgRef = MsgID), a reply to its request."""
    msg_id = msg_id or new_msg_id(work_date)
    return MessageHead(version=VERSION, src=src, des=des, app=APP, msg_no=msg_no, msg_id=msg_id,
                       msg_ref=msg_ref or msg_id, work_date=work_date)


def reply_head(request: MessageHead, *, msg_no: str, work_date: dt.date | None = None) -> MessageHead:
    """The head of the reply to `request`: source and destination swapped, MsgRef = the request's MsgID."""
    return new_head(msg_no=msg_no, src=request.des, des=request.src, work_date=work_date or request.work_date,
                    msg_ref=request.msg_id)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _x(value: str) -> str:
    return escape(value) if value else ""


def _opt(tag: str, value: str) -> str:
    return f"<{tag}>{escape(value)}</{tag}>" if value else ""


def _head_xml(head: MessageHead) -> str:
    return (f"<HEAD><VER>{_x(head.version)}</VER><SRC>{_x(head.src)}</SRC><DES>{_x(head.des)}</DES>"
            f"<APP>{_x(head.app)}</APP><MsgNo>{_x(head.msg_no)}</MsgNo><MsgID>{_x(head.msg_id)}</MsgID>"
            f"<MsgRef>{_x(head.msg_ref)}</MsgRef><WorkDate>{date_text(head.work_date)}</WorkDate></HEAD>")


def document(head: MessageHead, msg: str, *, encoding: str = "UTF-8") -> bytes:
    """A CFX document around MSG content (already escaped XML text), encoded as `encoding` (UTF-8 or GBK)."""
    if encoding.upper() not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
    text = f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n<CFX>{_head_xml(head)}<MSG>{msg}</MSG></CFX>'
    if _NOT_XML_CHARS.search(text):
        raise ValueError("a field contains a control character XML cannot carry")
    data = text.encode(encoding.lower(), errors="xmlcharrefreplace")
    # What we send is held to the schema we hold others to: a field out of its pattern (a 13-digit bank code,
    # a result code of 6 characters) is our bug and is refused here, before anything is signed or sent.
    try:
        parse_and_validate(data, schema=CFX_XSD_PATH, max_bytes=len(data))
    except XmlRefused as exc:
        raise ValueError(f"the {head.msg_no} written is not valid: {exc}") from None
    return data


def _tax_types(tag: str, items: tuple[TaxTypeItem, ...]) -> str:
    return "".join(
        f"<{tag}><ProjectId>{_x(t.project_id)}</ProjectId><TaxTypeName>{_x(t.tax_type_name)}</TaxTypeName>"
        f"<TaxStartDate>{date_text(t.tax_start_date)}</TaxStartDate><TaxEndDate>{date_text(t.tax_end_date)}</TaxEndDate>"
        f"<TaxTypeAmt>{fen_to_yuan_text(t.amount_fen)}</TaxTypeAmt></{tag}>" for t in items)


def verification_document(*, head: MessageHead, message: AgreementVerification, encoding: str = "UTF-8") -> bytes:
    """9114."""
    m = message
    return document(head, (
        f"<VerifyHead9114><SendOrgCode>{_x(m.send_org_code)}</SendOrgCode>"
        f"<EntrustDate>{date_text(m.entrust_date)}</EntrustDate><VCNo>{_x(m.vc_no)}</VCNo></VerifyHead9114>"
        f"<ProveInfo9114><VCSign>{_x(m.vc_sign)}</VCSign><TaxOrgCode>{_x(m.tax_org_code)}</TaxOrgCode>"
        f"<TaxPayCode>{_x(m.tax_pay_code)}</TaxPayCode><TaxPayName>{_x(m.tax_pay_name)}</TaxPayName>"
        f"<PayOpBkCode>{_x(m.pay_op_bk_code)}</PayOpBkCode><PayBkCode>{_x(m.pay_bk_code)}</PayBkCode>"
        f"<PayAcct>{_x(m.pay_acct)}</PayAcct><HandOrgName>{_x(m.hand_org_name)}</HandOrgName>"
        f"<ProtocolNo>{_x(m.protocol_no)}</ProtocolNo></ProveInfo9114>"), encoding=encoding)


def verification_reply_document(*, head: MessageHead, reply: AgreementVerificationReply,
                                request: AgreementVerification, encoding: str = "UTF-8") -> bytes:
    """9115."""
    return document(head, (
        f"<ProveReturn9115><OriSendOrgCode>{_x(request.send_org_code)}</OriSendOrgCode>"
        f"<OriEntrustDate>{date_text(request.entrust_date)}</OriEntrustDate><VCNo>{_x(reply.vc_no)}</VCNo>"
        f"<VCResult>{_x(reply.vc_result)}</VCResult>{_opt('AddWord', reply.add_word[:200])}</ProveReturn9115>"),
        encoding=encoding)


def _turn_account(number: str, treasury: TreasuryAccount, tail: str) -> str:
    t = treasury
    return (f"<TurnAccount{number}><HandleType>{_x(t.handle_type)}</HandleType>"
            f"<PayeeBankNo>{_x(t.payee_bank_no)}</PayeeBankNo><PayeeOrgCode>{_x(t.payee_org_code)}</PayeeOrgCode>"
            f"<PayeeAcct>{_x(t.payee_acct)}</PayeeAcct><PayeeName>{_x(t.payee_name)}</PayeeName>"
            f"<PayBkCode>{_x(t.pay_bk_code)}</PayBkCode>{tail}</TurnAccount{number}>")


def _payment_tail(number: str, i: DeductionItem) -> str:
    return (f"<PayAcct>{_x(i.pay_acct)}</PayAcct><HandOrgName>{_x(i.hand_org_name)}</HandOrgName>"
            f"<TraAmt>{fen_to_yuan_text(i.amount_fen)}</TraAmt><TaxVouNo>{_x(i.tax_vou_no)}</TaxVouNo>"
            f"<TaxPayName>{_x(i.tax_pay_name)}</TaxPayName><ProtocolNo>{_x(i.protocol_no)}</ProtocolNo>"
            f"<BudgetType>{_x(i.budget_type)}</BudgetType><BudgetLevelCode>{_x(i.budget_level_code)}</BudgetLevelCode>"
            f"{_opt('Remark', i.remark)}<TaxTypeNum>{len(i.tax_types)}</TaxTypeNum>"
            f"{_tax_types('TaxTypeList' + number, i.tax_types)}")


def real_time_document(*, message: RealTimeDeduction, encoding: str = "UTF-8") -> bytes:
    """3001 (the head is `message.head`)."""
    m, i = message, message.item
    return document(m.head, (
        f"<RealHead3001><TaxOrgCode>{_x(m.tax_org_code)}</TaxOrgCode>"
        f"<EntrustDate>{date_text(m.entrust_date)}</EntrustDate><TraNo>{_x(i.tra_no)}</TraNo></RealHead3001>"
        + _turn_account("3001", m.treasury, f"<PayOpBkCode>{_x(i.pay_op_bk_code)}</PayOpBkCode>")
        + f"<Payment3001>{_payment_tail('3001', i)}</Payment3001>"), encoding=encoding)


def _result_fields(r: DeductionResult) -> str:
    return (f"<TaxVouNo>{_x(r.tax_vou_no)}</TaxVouNo><TraAmt>{fen_to_yuan_text(r.amount_fen)}</TraAmt>"
            f"{'<TaxDate>' + date_text(r.tax_date) + '</TaxDate>' if r.tax_date else ''}"
            f"<Result>{_x(r.result)}</Result>{_opt('AddWord', r.add_word[:200])}")


def real_time_reply_document(*, head: MessageHead, result: DeductionResult, encoding: str = "UTF-8") -> bytes:
    """2001."""
    r = result
    return document(head, (
        f"<SingleReturn2001><OriTaxOrgCode>{_x(r.ori_tax_org_code)}</OriTaxOrgCode><OriTraNo>{_x(r.ori_tra_no)}</OriTraNo>"
        f"<OriEntrustDate>{date_text(r.ori_entrust_date)}</OriEntrustDate>{_result_fields(r)}</SingleReturn2001>"),
        encoding=encoding)


def batch_document(*, message: BatchDeduction, encoding: str = "UTF-8") -> bytes:
    """3102 (the head is `message.head`); at most 1,000 items (ValueError)."""
    m = message
    if not 1 <= len(m.items) <= BATCH_MAX_ITEMS:
        raise ValueError(f"a 3102 package carries 1 to {BATCH_MAX_ITEMS} items, not {len(m.items)}")
    parts = [f"<BatchHead3102><TaxOrgCode>{_x(m.tax_org_code)}</TaxOrgCode>"
             f"<EntrustDate>{date_text(m.entrust_date)}</EntrustDate><PackNo>{_x(m.pack_no)}</PackNo>"
             f"<AllNum>{int(m.all_num)}</AllNum><AllAmt>{fen_to_yuan_text(m.all_amount_fen)}</AllAmt></BatchHead3102>",
             _turn_account("3102", m.treasury, f"<ReturnTerm>{int(m.return_term)}</ReturnTerm>")]
    parts += [f"<Payment3102><TraNo>{_x(i.tra_no)}</TraNo><PayOpBkCode>{_x(i.pay_op_bk_code)}</PayOpBkCode>"
              f"{_payment_tail('3102', i)}</Payment3102>" for i in m.items]
    return document(m.head, "".join(parts), encoding=encoding)


def batch_ack_document(*, head: MessageHead, ack: Acknowledgement, request: BatchDeduction | RefundOrder,
                       encoding: str = "UTF-8") -> bytes:
    """9121: the package (a 3102, or a 1104 refund order) received (90000) or refused with a code."""
    return document(head, (
        f"<MsgReturn9121><OriTaxOrgCode>{_x(request.tax_org_code)}</OriTaxOrgCode>"
        f"<OriEntrustDate>{date_text(request.entrust_date)}</OriEntrustDate><OriPackNo>{_x(request.pack_no)}</OriPackNo>"
        f"<Result>{_x(ack.result)}</Result>{_opt('AddWord', ack.add_word[:200])}</MsgReturn9121>"), encoding=encoding)


def batch_result_document(*, head: MessageHead, result: BatchResult, encoding: str = "UTF-8") -> bytes:
    """2102: a package's result with its lines (at most 1,000)."""
    r = result
    if len(r.items) > BATCH_MAX_ITEMS:
        raise ValueError(f"a 2102 carries at most {BATCH_MAX_ITEMS} lines, not {len(r.items)}")
    parts = [f"<BatchHead2102><PayBkCode>{_x(r.pay_bk_code)}</PayBkCode><EntrustDate>{date_text(r.entrust_date)}</EntrustDate>"
             f"<PackNo>{_x(r.pack_no)}</PackNo><OriTaxOrgCode>{_x(r.ori_tax_org_code)}</OriTaxOrgCode>"
             f"<OriEntrustDate>{date_text(r.ori_entrust_date)}</OriEntrustDate><OriPackNo>{_x(r.ori_pack_no)}</OriPackNo>"
             f"<AllNum>{int(r.all_num)}</AllNum><AllAmt>{fen_to_yuan_text(r.all_amount_fen)}</AllAmt>"
             f"<SuccNum>{int(r.succ_num)}</SuccNum><SuccAmt>{fen_to_yuan_text(r.succ_amount_fen)}</SuccAmt>"
             f"<Result>{_x(r.result)}</Result>{_opt('AddWord', r.add_word[:200])}</BatchHead2102>"]
    parts += [f"<BatchReturn2102><OriTraNo>{_x(i.ori_tra_no)}</OriTraNo><TraAmt>{fen_to_yuan_text(i.amount_fen)}</TraAmt>"
              f"<TaxVouNo>{_x(i.tax_vou_no)}</TaxVouNo>"
              f"{'<TaxDate>' + date_text(i.tax_date) + '</TaxDate>' if i.tax_date else ''}"
              f"<Result>{_x(i.result)}</Result>{_opt('AddWord', i.add_word[:200])}</BatchReturn2102>" for i in r.items]
    return document(head, "".join(parts), encoding=encoding)


def check_detail_document(*, message: CheckDetail, encoding: str = "UTF-8") -> bytes:
    """3111: one package of the day's check detail (the head is `message.head`); at most 1,000 lines."""
    d = message
    if len(d.lines) > BATCH_MAX_ITEMS:
        raise ValueError(f"a 3111 package carries at most {BATCH_MAX_ITEMS} lines, not {len(d.lines)}")
    parts = [f"<BatchHead3111><PayBkCode>{_x(d.pay_bk_code)}</PayBkCode><ChkDate>{date_text(d.chk_date)}</ChkDate>"
             f"<ChkAcctOrd>{_x(d.chk_acct_ord)}</ChkAcctOrd><PayeeBankNo>{_x(d.payee_bank_no)}</PayeeBankNo>"
             f"<ChkAcctType>{_x(d.chk_acct_type)}</ChkAcctType><AllNum>{int(d.all_num)}</AllNum>"
             f"<AllAmt>{fen_to_yuan_text(d.all_amount_fen)}</AllAmt><ChildPackNum>{int(d.child_pack_num)}</ChildPackNum>"
             f"<CurPackNo>{int(d.cur_pack_no)}</CurPackNo></BatchHead3111>"]
    parts += [f"<BankCompare3111><PayOpBkCode>{_x(i.pay_op_bk_code)}</PayOpBkCode><PayAcct>{_x(i.pay_acct)}</PayAcct>"
              f"<OriTaxOrgCode>{_x(i.ori_tax_org_code)}</OriTaxOrgCode>"
              f"<OriEntrustDate>{date_text(i.ori_entrust_date)}</OriEntrustDate>{_opt('OriPackNo', i.ori_pack_no)}"
              f"<OriTraNo>{_x(i.ori_tra_no)}</OriTraNo><TraAmt>{fen_to_yuan_text(i.amount_fen)}</TraAmt>"
              f"{_opt('TaxVouNo', i.tax_vou_no)}{_opt('TaxPayName', i.tax_pay_name)}{_opt('ProtocolNo', i.protocol_no)}"
              f"</BankCompare3111>" for i in d.lines]
    return document(d.head, "".join(parts), encoding=encoding)


def check_result_document(*, head: MessageHead, result: CheckResult, encoding: str = "UTF-8") -> bytes:
    """2111: our answer to a check date's detail, "0" every record agrees, "1" some differ."""
    r = result
    return document(head, (
        f"<MsgReturn2111><OriPayBankNo>{_x(r.ori_pay_bank_no)}</OriPayBankNo><OriChkDate>{date_text(r.ori_chk_date)}"
        f"</OriChkDate><OriChkAcctOrd>{_x(r.ori_chk_acct_ord)}</OriChkAcctOrd>{_opt('OriPayeeBankNo', r.ori_payee_bank_no)}"
        f"<Result>{_x(r.result)}</Result>{_opt('AddWord', r.add_word[:200])}</MsgReturn2111>"), encoding=encoding)


def generic_reply_document(*, head: MessageHead, ori_msg_no: str, result: str, add_word: str = "",
                           encoding: str = "UTF-8") -> bytes:
    """9120: the generic reply (a 2102 received, a connectivity test answered, a message refused)."""
    return document(head, f"<MsgReturn9120><OriMsgNo>{_x(ori_msg_no)}</OriMsgNo><Result>{_x(result)}</Result>"
                          f"{_opt('AddWord', add_word[:200])}</MsgReturn9120>", encoding=encoding)


def test_document(*, head: MessageHead, remark: str = "", encoding: str = "UTF-8") -> bytes:
    """9005: a connectivity test from node `head.src`."""
    return document(head, f"<NetTest9005><SendOrgCode>{_x(head.src)}</SendOrgCode>{_opt('Remark', remark)}"
                          f"</NetTest9005>", encoding=encoding)


# ---------------------------------------------------------------------------------------------
# Reading documents
# ---------------------------------------------------------------------------------------------


class UnrecognisedMessage(ValueError):
    """A valid document whose MsgNo does not name its body, or a message number not handled here (92001)."""


@dataclass(frozen=True)
class Document:
    """A CFX document validated against cfx.xsd: its head, and MSG (an lxml element, for the readers here)."""

    head: MessageHead
    msg: etree._Element
    encoding: str


def read_head(element: etree._Element) -> MessageHead:
    f = {c.tag: c.text or "" for c in element}
    return MessageHead(version=f["VER"], src=f["SRC"], des=f["DES"], app=f["APP"], msg_no=f["MsgNo"],
                       msg_id=f["MsgID"], msg_ref=f["MsgRef"], work_date=read_date(f["WorkDate"]))


# The elements cfx.xsd types Date8, whose pattern lets a day the calendar lacks through (20260230).
_DATE_ELEMENTS = tuple(sorted(
    e.get("name") for e in etree.parse(str(CFX_XSD_PATH)).iter("{http://www.w3.org/2001/XMLSchema}element")
    if e.get("type") == "Date8"))


def read_document(data: bytes, *, max_bytes: int) -> Document:
    """Untrusted bytes (GBK or UTF-8, as the XML declaration says) -> a validated Document.

    Raises XmlRefused (oversized, doctype_forbidden, malformed, schema_invalid: answer 92004) before
    anything is read, UnrecognisedMessage when HEAD/MsgNo does not match the blocks in MSG (92001).
    Beyond the schema, refused as schema_invalid: an encoding a reply could not be written in (any but UTF-8 and
    GBK), and a date that is no calendar day, so that no reader meets either after the message was accepted.
    """
    root = parse_and_validate(data, schema=CFX_XSD_PATH, max_bytes=max_bytes)
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper()
    if encoding not in ENCODINGS:
        raise XmlRefused(SCHEMA_INVALID, f"encoding {encoding} is not one of {', '.join(ENCODINGS)}")
    for element in root.iter(*_DATE_ELEMENTS):
        try:
            read_date(element.text or "")
        except ValueError:
            raise XmlRefused(SCHEMA_INVALID, f"{element.tag} {element.text!r} is not a calendar date",
                             line=element.sourceline) from None
    head = read_head(root[0])
    msg = root[1]
    number = _BLOCK_NUMBER.fullmatch(msg[0].tag)
    if number is None or number.group(1) != head.msg_no:
        raise UnrecognisedMessage(f"MsgNo {head.msg_no} does not match the body ({msg[0].tag})")
    return Document(head=head, msg=msg, encoding=encoding)


def _fields(element: etree._Element) -> dict[str, str]:
    return {c.tag: c.text or "" for c in element}


def _tax_type_items(elements) -> tuple[TaxTypeItem, ...]:
    items = []
    for e in elements:
        f = _fields(e)
        items.append(TaxTypeItem(project_id=f["ProjectId"], tax_type_name=f["TaxTypeName"],
                                 tax_start_date=read_date(f["TaxStartDate"]), tax_end_date=read_date(f["TaxEndDate"]),
                                 amount_fen=yuan_text_to_fen(f["TaxTypeAmt"])))
    return tuple(items)


def _expect(doc: Document, msg_no: str) -> None:
    if doc.head.msg_no != msg_no:
        raise UnrecognisedMessage(f"expected a {msg_no}, got a {doc.head.msg_no}")


def read_verification(doc: Document) -> AgreementVerification:
    """A validated 9114 -> AgreementVerification."""
    _expect(doc, AGREEMENT_VERIFY)
    h, p = _fields(doc.msg[0]), _fields(doc.msg[1])
    return AgreementVerification(
        send_org_code=h["SendOrgCode"], entrust_date=read_date(h["EntrustDate"]), vc_no=h["VCNo"],
        vc_sign=p["VCSign"], tax_org_code=p["TaxOrgCode"], tax_pay_code=p["TaxPayCode"], tax_pay_name=p["TaxPayName"],
        pay_op_bk_code=p["PayOpBkCode"], pay_bk_code=p["PayBkCode"], pay_acct=p["PayAcct"],
        hand_org_name=p["HandOrgName"], protocol_no=p["ProtocolNo"])


def read_verification_reply(doc: Document) -> AgreementVerificationReply:
    """A validated 9115 -> AgreementVerificationReply."""
    _expect(doc, AGREEMENT_REPLY)
    f = _fields(doc.msg[0])
    return AgreementVerificationReply(vc_no=f["VCNo"], vc_result=f["VCResult"], add_word=f.get("AddWord", ""))


def _treasury(element: etree._Element) -> TreasuryAccount:
    f = _fields(element)
    return TreasuryAccount(payee_bank_no=f["PayeeBankNo"], payee_org_code=f["PayeeOrgCode"], payee_acct=f["PayeeAcct"],
                           payee_name=f["PayeeName"], pay_bk_code=f["PayBkCode"], handle_type=f["HandleType"])


def _item(element: etree._Element, *, tra_no: str, pay_op_bk_code: str, number: str) -> DeductionItem:
    f = _fields(element)
    return DeductionItem(
        tra_no=tra_no, pay_op_bk_code=pay_op_bk_code, pay_acct=f["PayAcct"], hand_org_name=f["HandOrgName"],
        amount_fen=yuan_text_to_fen(f["TraAmt"]), tax_vou_no=f["TaxVouNo"], tax_pay_name=f["TaxPayName"],
        protocol_no=f["ProtocolNo"], remark=f.get("Remark", ""),
        tax_types=_tax_type_items(element.iterchildren("TaxTypeList" + number)),
        budget_type=f["BudgetType"], budget_level_code=f["BudgetLevelCode"])


def read_real_time(doc: Document) -> RealTimeDeduction:
    """A validated 3001 -> RealTimeDeduction."""
    _expect(doc, REAL_TIME_DEDUCTION)
    head, turn = _fields(doc.msg[0]), _fields(doc.msg[1])
    item = _item(doc.msg[2], tra_no=head["TraNo"], pay_op_bk_code=turn["PayOpBkCode"], number="3001")
    return RealTimeDeduction(head=doc.head, tax_org_code=head["TaxOrgCode"], entrust_date=read_date(head["EntrustDate"]),
                             treasury=_treasury(doc.msg[1]), item=item)


def _result(f: dict[str, str], *, ori_tax_org_code: str, ori_entrust_date: dt.date, ori_tra_no: str) -> DeductionResult:
    tax_date = f.get("TaxDate")
    return DeductionResult(ori_tax_org_code=ori_tax_org_code, ori_entrust_date=ori_entrust_date, ori_tra_no=ori_tra_no,
                           tax_vou_no=f["TaxVouNo"], amount_fen=yuan_text_to_fen(f["TraAmt"]), result=f["Result"],
                           add_word=f.get("AddWord", ""), tax_date=read_date(tax_date) if tax_date else None)


def read_real_time_reply(doc: Document) -> DeductionResult:
    """A validated 2001 -> DeductionResult."""
    _expect(doc, REAL_TIME_REPLY)
    f = _fields(doc.msg[0])
    return _result(f, ori_tax_org_code=f["OriTaxOrgCode"], ori_entrust_date=read_date(f["OriEntrustDate"]),
                   ori_tra_no=f["OriTraNo"])


def read_batch(doc: Document) -> BatchDeduction:
    """A validated 3102 -> BatchDeduction (AllNum/AllAmt as declared; the handler checks them against the items)."""
    _expect(doc, BATCH_DEDUCTION)
    head, turn = _fields(doc.msg[0]), _fields(doc.msg[1])
    items = tuple(_item(p, tra_no=p[0].text, pay_op_bk_code=p[1].text, number="3102") for p in doc.msg[2:])
    return BatchDeduction(head=doc.head, tax_org_code=head["TaxOrgCode"], entrust_date=read_date(head["EntrustDate"]),
                          pack_no=head["PackNo"], all_num=int(head["AllNum"]),
                          all_amount_fen=yuan_text_to_fen(head["AllAmt"]), return_term=int(turn["ReturnTerm"]),
                          treasury=_treasury(doc.msg[1]), items=items)


def read_batch_ack(doc: Document) -> Acknowledgement:
    """A validated 9121 -> Acknowledgement (ori_msg_id: the head's MsgRef)."""
    _expect(doc, BATCH_ACK)
    f = _fields(doc.msg[0])
    return Acknowledgement(ori_msg_id=doc.head.msg_ref, result=f["Result"], add_word=f.get("AddWord", ""))


def read_batch_result(doc: Document) -> BatchResult:
    """A validated 2102 -> BatchResult."""
    _expect(doc, BATCH_RESULT)
    h = _fields(doc.msg[0])
    ori_date = read_date(h["OriEntrustDate"])
    items = tuple(_result(_fields(e), ori_tax_org_code=h["OriTaxOrgCode"], ori_entrust_date=ori_date,
                          ori_tra_no=e[0].text) for e in doc.msg[1:])
    return BatchResult(pay_bk_code=h["PayBkCode"], entrust_date=read_date(h["EntrustDate"]), pack_no=h["PackNo"],
                       ori_tax_org_code=h["OriTaxOrgCode"], ori_entrust_date=ori_date, ori_pack_no=h["OriPackNo"],
                       all_num=int(h["AllNum"]), all_amount_fen=yuan_text_to_fen(h["AllAmt"]),
                       succ_num=int(h["SuccNum"]), succ_amount_fen=yuan_text_to_fen(h["SuccAmt"]), result=h["Result"],
                       add_word=h.get("AddWord", ""), items=items)


@dataclass(frozen=True)
class GenericReply:
    """A 9120: which message it answers (`ori_msg_no`, and the head's MsgRef), the result and a note."""

    ori_msg_id: str
    ori_msg_no: str
    result: str
    add_word: str = ""

    def acknowledgement(self) -> Acknowledgement:
        return Acknowledgement(ori_msg_id=self.ori_msg_id, result=self.result, add_word=self.add_word)


def read_generic_reply(doc: Document) -> GenericReply:
    _expect(doc, GENERIC_REPLY)
    f = _fields(doc.msg[0])
    return GenericReply(ori_msg_id=doc.head.msg_ref, ori_msg_no=f["OriMsgNo"], result=f["Result"],
                        add_word=f.get("AddWord", ""))


def read_test(doc: Document) -> str:
    """A validated 9005 -> its remark."""
    _expect(doc, CONNECTIVITY_TEST)
    return _fields(doc.msg[0]).get("Remark", "")


def read_check_detail(doc: Document) -> CheckDetail:
    """A validated 3111 -> CheckDetail (AllNum/AllAmt as declared; the domain checks them against the lines)."""
    _expect(doc, CHECK_DETAIL)
    h = _fields(doc.msg[0])
    lines = []
    for e in doc.msg[1:]:
        f = _fields(e)
        lines.append(CheckLine(pay_op_bk_code=f["PayOpBkCode"], pay_acct=f["PayAcct"], ori_tax_org_code=f["OriTaxOrgCode"],
                               ori_entrust_date=read_date(f["OriEntrustDate"]), ori_pack_no=f.get("OriPackNo", ""),
                               ori_tra_no=f["OriTraNo"], amount_fen=yuan_text_to_fen(f["TraAmt"]),
                               tax_vou_no=f.get("TaxVouNo", ""), tax_pay_name=f.get("TaxPayName", ""),
                               protocol_no=f.get("ProtocolNo", "")))
    return CheckDetail(head=doc.head, pay_bk_code=h["PayBkCode"], chk_date=read_date(h["ChkDate"]),
                       chk_acct_ord=h["ChkAcctOrd"], payee_bank_no=h["PayeeBankNo"], chk_acct_type=h["ChkAcctType"],
                       all_num=int(h["AllNum"]), all_amount_fen=yuan_text_to_fen(h["AllAmt"]),
                       child_pack_num=int(h["ChildPackNum"]), cur_pack_no=int(h["CurPackNo"]), lines=tuple(lines))


def read_check_result(doc: Document) -> CheckResult:
    """A validated 2111 -> CheckResult."""
    _expect(doc, CHECK_RESULT)
    f = _fields(doc.msg[0])
    return CheckResult(ori_pay_bank_no=f["OriPayBankNo"], ori_chk_date=read_date(f["OriChkDate"]),
                       ori_chk_acct_ord=f["OriChkAcctOrd"], ori_payee_bank_no=f.get("OriPayeeBankNo", ""),
                       result=f["Result"], add_word=f.get("AddWord", ""))


# ---------------------------------------------------------------------------------------------
# Refunds (1104 / 2104), reversals (1021 / 2021), stop payments (1123 / 2123)
# ---------------------------------------------------------------------------------------------


def refund_order_document(*, message: RefundOrder, encoding: str = "UTF-8") -> bytes:
    """1104 (the head is `message.head`); 1 to 1,000 items (ValueError)."""
    m = message
    if not 1 <= len(m.items) <= BATCH_MAX_ITEMS:
        raise ValueError(f"a 1104 package carries 1 to {BATCH_MAX_ITEMS} items, not {len(m.items)}")
    parts = [f"<BatchHead1104><TaxOrgCode>{_x(m.tax_org_code)}</TaxOrgCode>"
             f"<EntrustDate>{date_text(m.entrust_date)}</EntrustDate><PackNo>{_x(m.pack_no)}</PackNo>"
             f"<ReturnTerm>{int(m.return_term)}</ReturnTerm><AllNum>{int(m.all_num)}</AllNum>"
             f"<AllAmt>{fen_to_yuan_text(m.all_amount_fen)}</AllAmt></BatchHead1104>"]
    parts += [f"<RetTreasury1104><TraNo>{_x(i.tra_no)}</TraNo><DrawBackTreCode>{_x(i.draw_back_tre_code)}</DrawBackTreCode>"
              f"<PayeeBankNo>{_x(i.payee_bank_no)}</PayeeBankNo><PayeeOpBkCode>{_x(i.payee_op_bk_code)}</PayeeOpBkCode>"
              f"<PayeeAcct>{_x(i.payee_acct)}</PayeeAcct><PayeeName>{_x(i.payee_name)}</PayeeName>"
              f"<TaxPayCode>{_x(i.tax_pay_code)}</TaxPayCode><TaxPayName>{_x(i.tax_pay_name)}</TaxPayName>"
              f"<DrawBackVouNo>{_x(i.draw_back_vou_no)}</DrawBackVouNo><OriTaxVouNo>{_x(i.ori_tax_vou_no)}</OriTaxVouNo>"
              f"<TraAmt>{fen_to_yuan_text(i.amount_fen)}</TraAmt><BillDate>{date_text(i.bill_date)}</BillDate>"
              f"<BudgetType>{_x(i.budget_type)}</BudgetType>{_opt('BudgetSubjectCode', i.budget_subject_code)}"
              f"<BudgetLevelCode>{_x(i.budget_level_code)}</BudgetLevelCode><TrimSign>{_x(i.trim_sign)}</TrimSign>"
              f"{_opt('DrawBackReasonCode', i.draw_back_reason_code)}</RetTreasury1104>" for i in m.items]
    return document(m.head, "".join(parts), encoding=encoding)


def read_refund_order(doc: Document) -> RefundOrder:
    """A validated 1104 -> RefundOrder (AllNum/AllAmt as declared; the domain checks them against the items)."""
    _expect(doc, REFUND_ORDER)
    h = _fields(doc.msg[0])
    items = []
    for e in doc.msg[1:]:
        f = _fields(e)
        items.append(RefundItem(
            tra_no=f["TraNo"], draw_back_tre_code=f["DrawBackTreCode"], payee_bank_no=f["PayeeBankNo"],
            payee_op_bk_code=f["PayeeOpBkCode"], payee_acct=f["PayeeAcct"], payee_name=f["PayeeName"],
            tax_pay_code=f["TaxPayCode"], tax_pay_name=f["TaxPayName"], draw_back_vou_no=f["DrawBackVouNo"],
            ori_tax_vou_no=f["OriTaxVouNo"], amount_fen=yuan_text_to_fen(f["TraAmt"]), bill_date=read_date(f["BillDate"]),
            budget_type=f["BudgetType"], budget_subject_code=f.get("BudgetSubjectCode", ""),
            budget_level_code=f["BudgetLevelCode"], trim_sign=f["TrimSign"],
            draw_back_reason_code=f.get("DrawBackReasonCode", "")))
    return RefundOrder(head=doc.head, tax_org_code=h["TaxOrgCode"], entrust_date=read_date(h["EntrustDate"]),
                       pack_no=h["PackNo"], return_term=int(h["ReturnTerm"]), all_num=int(h["AllNum"]),
                       all_amount_fen=yuan_text_to_fen(h["AllAmt"]), items=tuple(items))


def refund_result_document(*, head: MessageHead, result: RefundResult, encoding: str = "UTF-8") -> bytes:
    """2104 (project-defined): a refund order's result with one line per item (at most 1,000)."""
    r = result
    if len(r.items) > BATCH_MAX_ITEMS:
        raise ValueError(f"a 2104 carries at most {BATCH_MAX_ITEMS} lines, not {len(r.items)}")
    parts = [f"<BatchHead2104><OriTaxOrgCode>{_x(r.ori_tax_org_code)}</OriTaxOrgCode>"
             f"<OriEntrustDate>{date_text(r.ori_entrust_date)}</OriEntrustDate><OriPackNo>{_x(r.ori_pack_no)}</OriPackNo>"
             f"<AllNum>{int(r.all_num)}</AllNum><AllAmt>{fen_to_yuan_text(r.all_amount_fen)}</AllAmt>"
             f"<SuccNum>{int(r.succ_num)}</SuccNum><SuccAmt>{fen_to_yuan_text(r.succ_amount_fen)}</SuccAmt>"
             f"<Result>{_x(r.result)}</Result>{_opt('AddWord', r.add_word[:200])}</BatchHead2104>"]
    parts += [f"<RetTreasury2104><OriTraNo>{_x(i.ori_tra_no)}</OriTraNo><DrawBackVouNo>{_x(i.draw_back_vou_no)}"
              f"</DrawBackVouNo><TraAmt>{fen_to_yuan_text(i.amount_fen)}</TraAmt><Result>{_x(i.result)}</Result>"
              f"{_opt('AddWord', i.add_word[:200])}</RetTreasury2104>" for i in r.items]
    return document(head, "".join(parts), encoding=encoding)


def read_refund_result(doc: Document) -> RefundResult:
    """A validated 2104 -> RefundResult."""
    _expect(doc, REFUND_RESULT)
    h = _fields(doc.msg[0])
    items = tuple(RefundItemResult(ori_tra_no=f["OriTraNo"], draw_back_vou_no=f["DrawBackVouNo"],
                                   amount_fen=yuan_text_to_fen(f["TraAmt"]), result=f["Result"],
                                   add_word=f.get("AddWord", ""))
                  for f in map(_fields, doc.msg[1:]))
    return RefundResult(ori_tax_org_code=h["OriTaxOrgCode"], ori_entrust_date=read_date(h["OriEntrustDate"]),
                        ori_pack_no=h["OriPackNo"], all_num=int(h["AllNum"]), all_amount_fen=yuan_text_to_fen(h["AllAmt"]),
                        succ_num=int(h["SuccNum"]), succ_amount_fen=yuan_text_to_fen(h["SuccAmt"]), result=h["Result"],
                        add_word=h.get("AddWord", ""), items=items)


def _cancel_fields(r: Reversal) -> str:
    return (f"<TaxOrgCode>{_x(r.tax_org_code)}</TaxOrgCode><EntrustDate>{date_text(r.entrust_date)}</EntrustDate>"
            f"<CancelNo>{_x(r.cancel_no)}</CancelNo><OriEntrustDate>{date_text(r.ori_entrust_date)}</OriEntrustDate>"
            f"<OriTraNo>{_x(r.ori_tra_no)}</OriTraNo>")


def reversal_document(*, message: Reversal, encoding: str = "UTF-8") -> bytes:
    """1021 (the head is `message.head`)."""
    return document(message.head, f"<Cancel1021>{_cancel_fields(message)}{_opt('CancelReason', message.cancel_reason[:200])}"
                                  f"</Cancel1021>", encoding=encoding)


def reversal_reply_document(*, head: MessageHead, reply: ReversalReply, request: Reversal,
                            encoding: str = "UTF-8") -> bytes:
    """2021: the request's keys, CancelAnswer, Result and a note."""
    return document(head, f"<CancelReturn2021>{_cancel_fields(request)}<CancelAnswer>{_x(reply.cancel_answer)}"
                          f"</CancelAnswer><Result>{_x(reply.result)}</Result>{_opt('AddWord', reply.add_word[:200])}"
                          f"</CancelReturn2021>", encoding=encoding)


def read_reversal(doc: Document) -> Reversal:
    """A validated 1021 -> Reversal."""
    _expect(doc, REVERSAL)
    f = _fields(doc.msg[0])
    return Reversal(head=doc.head, tax_org_code=f["TaxOrgCode"], entrust_date=read_date(f["EntrustDate"]),
                    cancel_no=f["CancelNo"], ori_entrust_date=read_date(f["OriEntrustDate"]), ori_tra_no=f["OriTraNo"],
                    cancel_reason=f.get("CancelReason", ""))


def read_reversal_reply(doc: Document) -> ReversalReply:
    """A validated 2021 -> ReversalReply."""
    _expect(doc, REVERSAL_REPLY)
    f = _fields(doc.msg[0])
    return ReversalReply(cancel_answer=f["CancelAnswer"], result=f["Result"], add_word=f.get("AddWord", ""))


def _stop_fields(s: StopPayment) -> str:
    return (f"<TaxOrgCode>{_x(s.tax_org_code)}</TaxOrgCode><EntrustDate>{date_text(s.entrust_date)}</EntrustDate>"
            f"<StopNo>{_x(s.stop_no)}</StopNo><OriEntrustDate>{date_text(s.ori_entrust_date)}</OriEntrustDate>"
            f"<OriPackNo>{_x(s.ori_pack_no)}</OriPackNo>{_opt('OriTraNo', s.ori_tra_no)}")


def stop_payment_document(*, message: StopPayment, encoding: str = "UTF-8") -> bytes:
    """1123 (the head is `message.head`)."""
    return document(message.head, f"<StopPay1123>{_stop_fields(message)}{_opt('StopReason', message.stop_reason[:200])}"
                                  f"</StopPay1123>", encoding=encoding)


def stop_payment_reply_document(*, head: MessageHead, reply: StopPaymentReply, request: StopPayment,
                                encoding: str = "UTF-8") -> bytes:
    """2123: the request's keys, how many items were stopped (and their amount) and how many were already done."""
    r = reply
    return document(head, f"<StopReturn2123>{_stop_fields(request)}<StopNum>{int(r.stop_num)}</StopNum>"
                          f"<StopAmt>{fen_to_yuan_text(r.stop_amount_fen)}</StopAmt><DoneNum>{int(r.done_num)}</DoneNum>"
                          f"<Result>{_x(r.result)}</Result>{_opt('AddWord', r.add_word[:200])}</StopReturn2123>",
                    encoding=encoding)


def read_stop_payment(doc: Document) -> StopPayment:
    """A validated 1123 -> StopPayment."""
    _expect(doc, STOP_PAYMENT)
    f = _fields(doc.msg[0])
    return StopPayment(head=doc.head, tax_org_code=f["TaxOrgCode"], entrust_date=read_date(f["EntrustDate"]),
                       stop_no=f["StopNo"], ori_entrust_date=read_date(f["OriEntrustDate"]), ori_pack_no=f["OriPackNo"],
                       ori_tra_no=f.get("OriTraNo", ""), stop_reason=f.get("StopReason", ""))


def read_stop_payment_reply(doc: Document) -> StopPaymentReply:
    """A validated 2123 -> StopPaymentReply."""
    _expect(doc, STOP_PAYMENT_REPLY)
    f = _fields(doc.msg[0])
    return StopPaymentReply(stop_num=int(f["StopNum"]), stop_amount_fen=yuan_text_to_fen(f["StopAmt"]),
                            done_num=int(f["DoneNum"]), result=f["Result"], add_word=f.get("AddWord", ""))


def entry_detail_document(*, head: MessageHead, detail: TreasuryEntryDetail, encoding: str = "UTF-8") -> bytes:
    """3139: one package of a day's treasury entries (at most 1,000 lines)."""
    d = detail
    if len(d.lines) > BATCH_MAX_ITEMS:
        raise ValueError(f"a 3139 package carries at most {BATCH_MAX_ITEMS} lines, not {len(d.lines)}")
    parts = [f"<BatchHead3139><TreCode>{_x(d.tre_code)}</TreCode>{_opt('FinOrgCode', d.fin_org_code)}"
             f"<TaxOrgCode>{_x(d.tax_org_code)}</TaxOrgCode><InTreDate>{date_text(d.in_tre_date)}</InTreDate>"
             f"<PackNo>{_x(d.pack_no)}</PackNo><AllNum>{int(d.all_num)}</AllNum>"
             f"<AllAmt>{fen_to_yuan_text(d.all_amount_fen)}</AllAmt><ChildPackNum>{int(d.child_pack_num)}</ChildPackNum>"
             f"<CurPackNo>{int(d.cur_pack_no)}</CurPackNo></BatchHead3139>"]
    parts += [f"<TreDetail3139><BudgetType>{_x(i.budget_type)}</BudgetType>"
              f"<BudgetLevelCode>{_x(i.budget_level_code)}</BudgetLevelCode>"
              f"{_opt('BudgetSubjectCode', i.budget_subject_code)}<TraAmt>{fen_to_yuan_text(i.amount_fen)}</TraAmt>"
              f"{_opt('ExpTaxVouNo', i.exp_tax_vou_no)}</TreDetail3139>" for i in d.lines]
    return document(head, "".join(parts), encoding=encoding)


def read_entry_detail(doc: Document) -> TreasuryEntryDetail:
    """A validated 3139 -> TreasuryEntryDetail."""
    _expect(doc, ENTRY_DETAIL)
    h = _fields(doc.msg[0])
    lines = tuple(EntryLine(budget_type=f["BudgetType"], budget_level_code=f["BudgetLevelCode"],
                            amount_fen=yuan_text_to_fen(f["TraAmt"]), budget_subject_code=f.get("BudgetSubjectCode", ""),
                            exp_tax_vou_no=f.get("ExpTaxVouNo", ""))
                  for f in map(_fields, doc.msg[1:]))
    return TreasuryEntryDetail(tre_code=h["TreCode"], fin_org_code=h.get("FinOrgCode", ""), tax_org_code=h["TaxOrgCode"],
                               in_tre_date=read_date(h["InTreDate"]), pack_no=h["PackNo"], all_num=int(h["AllNum"]),
                               all_amount_fen=yuan_text_to_fen(h["AllAmt"]), child_pack_num=int(h["ChildPackNum"]),
                               cur_pack_no=int(h["CurPackNo"]), lines=lines)


READERS = {
    AGREEMENT_VERIFY: read_verification, AGREEMENT_REPLY: read_verification_reply,
    REAL_TIME_DEDUCTION: read_real_time, REAL_TIME_REPLY: read_real_time_reply, BATCH_DEDUCTION: read_batch,
    BATCH_ACK: read_batch_ack, BATCH_RESULT: read_batch_result, GENERIC_REPLY: read_generic_reply,
    CONNECTIVITY_TEST: read_test, CHECK_DETAIL: read_check_detail, CHECK_RESULT: read_check_result,
    REFUND_ORDER: read_refund_order, REFUND_RESULT: read_refund_result, REVERSAL: read_reversal,
    REVERSAL_REPLY: read_reversal_reply, STOP_PAYMENT: read_stop_payment, STOP_PAYMENT_REPLY: read_stop_payment_reply,
    ENTRY_DETAIL: read_entry_detail,
}


def read_body(doc: Document):
    """The dataclass of a validated document, by its MsgNo."""
    return READERS[doc.head.msg_no](doc)


def message_key(doc: Document) -> str:
    """The business key of a message, for the message log: TaxOrgCode+EntrustDate+TraNo of a deduction,
    TaxOrgCode+EntrustDate+PackNo of a package, VCNo of a verification, MsgRef of a reply otherwise."""
    msg, no = doc.msg, doc.head.msg_no
    first = _fields(msg[0])
    if no == REAL_TIME_DEDUCTION:
        return f"{first['TaxOrgCode']}-{first['EntrustDate']}-{first['TraNo']}"
    if no == BATCH_DEDUCTION:
        return f"{first['TaxOrgCode']}-{first['EntrustDate']}-{first['PackNo']}"
    if no == REAL_TIME_REPLY:
        return f"{first['OriTaxOrgCode']}-{first['OriEntrustDate']}-{first['OriTraNo']}"
    if no in (BATCH_RESULT, BATCH_ACK):
        return f"{first['OriTaxOrgCode']}-{first['OriEntrustDate']}-{first['OriPackNo']}"
    if no == CHECK_DETAIL:
        return f"CHK-{first['PayBkCode']}-{first['ChkDate']}-{first['ChkAcctOrd']}-{first['CurPackNo']}"
    if no == CHECK_RESULT:
        return f"CHK-{first['OriPayBankNo']}-{first['OriChkDate']}-{first['OriChkAcctOrd']}"
    if no in (AGREEMENT_VERIFY, AGREEMENT_REPLY):
        return f"VC-{first.get('SendOrgCode') or first.get('OriSendOrgCode')}-{first['VCNo']}"
    if no == REFUND_ORDER:
        return f"TK-{first['TaxOrgCode']}-{first['EntrustDate']}-{first['PackNo']}"
    if no == REFUND_RESULT:
        return f"TK-{first['OriTaxOrgCode']}-{first['OriEntrustDate']}-{first['OriPackNo']}"
    if no in (REVERSAL, REVERSAL_REPLY):  # the deduction's key, so its log shows the reversal beside it
        return f"{first['TaxOrgCode']}-{first['OriEntrustDate']}-{first['OriTraNo']}"
    if no in (STOP_PAYMENT, STOP_PAYMENT_REPLY):
        return f"{first['TaxOrgCode']}-{first['OriEntrustDate']}-{first['OriPackNo']}"
    if no == ENTRY_DETAIL:
        return f"RK-{first['TaxOrgCode']}-{first['TreCode']}-{first['InTreDate']}-{first['CurPackNo']}"
    if no == SOCIAL_FLEXIBLE_PAYMENT:
        return social_key(first["TaxOrgCode"], first["PayNo"])
    if no in (SOCIAL_DECLARATION, SOCIAL_DECLARATION_REPLY, SOCIAL_PAYMENT):
        return social_key(first.get("TaxOrgCode") or first["OriTaxOrgCode"], first.get("DeclNo") or first["OriDeclNo"])
    return doc.head.msg_ref


# ---------------------------------------------------------------------------------------------
# SOAP carriage
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedDocument:
    """What a Send request or response carries: the document's exact bytes and the sender's signature."""

    document: bytes
    signature: str  # base64 Ed25519; "" when missing
    key_id: str = ""


@dataclass(frozen=True)
class SoapFault:
    """A SOAP fault as received: faultcode (soap:Client / soap:Server), our code from FaultDetail, the reason."""

    faultcode: str
    code: str
    message: str


def _envelope(payload: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body>'
            f"{payload}</soap:Body></soap:Envelope>").encode()


def soap_message(signed: SignedDocument, *, response: bool = False) -> bytes:
    """A Send request (or response) carrying `signed`."""
    tag = "SendResponse" if response else "SendRequest"
    return _envelope(f'<{tag} xmlns="{NS}"><Document>{base64.b64encode(signed.document).decode()}</Document>'
                     f"{_opt('Signature', signed.signature)}{_opt('KeyId', signed.key_id)}</{tag}>")


_WSDL_IMPORT = re.compile(rb"<xs:schema>\s*<xs:import [^>]*/>\s*</xs:schema>")
_ADDRESS = re.compile(rb'(<soap:address location=")[^"]*(")')
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*\?>\s*")


def served_wsdl(path: Path, *, address: str) -> bytes:
    """The WSDL at `path` as an endpoint serves it: soap:address pointing at `address`, and tips_soap.xsd inlined
    (a client that forbids external references, as zeep does by default, reads it in one document)."""
    schema = _XML_DECLARATION.sub(b"", SOAP_XSD_PATH.read_bytes())
    wsdl = _WSDL_IMPORT.sub(lambda _: schema, path.read_bytes(), count=1)
    return _ADDRESS.sub(lambda match: match.group(1) + address.encode() + match.group(2), wsdl, count=1)


def fault_body(*, client_error: bool, code: str, message: str) -> bytes:
    """A SOAP 1.1 fault (sent with HTTP 500): soap:Client (the request was wrong) or soap:Server, with our
    code (a TIPS result code such as 92004, or another short code) in detail/FaultDetail."""
    faultcode = "soap:Client" if client_error else "soap:Server"
    message = message[:500]
    return _envelope(f"<soap:Fault><faultcode>{faultcode}</faultcode><faultstring>{escape(message)}</faultstring>"
                     f'<detail><FaultDetail xmlns="{NS}"><Code>{escape(code)}</Code><Message>{escape(message)}</Message>'
                     f"</FaultDetail></detail></soap:Fault>")


def read_soap(data: bytes, *, max_bytes: int, expected: str) -> SignedDocument | SoapFault:
    """Untrusted SOAP bytes -> the SignedDocument of a Send request or response (`expected`: SEND_REQUEST or
    SEND_RESPONSE), validated against tips_soap.xsd, or a SoapFault. Raises XmlRefused otherwise; nothing is
    read before validation. The document inside is not parsed here (see `read_document`)."""
    root = parse(data, max_bytes=max_bytes)
    if root.tag != _SOAP_ENVELOPE:
        raise XmlRefused(SCHEMA_INVALID, f"not a SOAP 1.1 envelope: root element is {root.tag}", line=root.sourceline)
    children = [c for c in root if isinstance(c.tag, str)]
    if children and children[0].tag == _SOAP_HEADER:
        children = children[1:]
    if len(children) != 1 or children[0].tag != _SOAP_BODY:
        raise XmlRefused(SCHEMA_INVALID, "the envelope must hold one soap:Body (after an optional soap:Header)",
                         line=root.sourceline)
    payloads = [c for c in children[0] if isinstance(c.tag, str)]
    if len(payloads) != 1:
        raise XmlRefused(SCHEMA_INVALID, f"soap:Body must hold exactly one element, found {len(payloads)}",
                         line=children[0].sourceline)
    payload = payloads[0]
    if payload.tag == _SOAP_FAULT:
        return _read_fault(payload)
    if payload.tag != expected:
        raise XmlRefused(SCHEMA_INVALID, f"unexpected element {etree.QName(payload).localname}"
                                         f" (expected {etree.QName(expected).localname})", line=payload.sourceline)
    validate(payload, schema=SOAP_XSD_PATH)
    try:
        document_bytes = base64.b64decode("".join((payload.findtext(f"{{{NS}}}Document") or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise XmlRefused(SCHEMA_INVALID, "Document is not base64", line=payload.sourceline) from None
    return SignedDocument(document=document_bytes, signature=payload.findtext(f"{{{NS}}}Signature") or "",
                          key_id=payload.findtext(f"{{{NS}}}KeyId") or "")


def _read_fault(fault: etree._Element) -> SoapFault:
    faultcode = (fault.findtext("faultcode") or "").strip()
    message = (fault.findtext("faultstring") or "").strip()
    code = faultcode.rpartition(":")[2] or "Fault"
    detail = fault.find(f"detail/{_FAULT_DETAIL}")
    if detail is not None:
        validate(detail, schema=SOAP_XSD_PATH)
        code = detail.findtext(f"{{{NS}}}Code") or code
    if not faultcode or not message:
        raise XmlRefused(SCHEMA_INVALID, "a soap:Fault needs faultcode and faultstring", line=fault.sourceline)
    return SoapFault(faultcode=faultcode, code=code, message=message)


# ---------------------------------------------------------------------------------------------
# Social-insurance premiums: 5101 declaration, 5102 its answer, 5103 payment notice (project-defined)
# ---------------------------------------------------------------------------------------------
from adapters.tips.interface import (  # noqa: E402  (kept with the block it serves)
    SOCIAL_INSURANCE_CODES, SocialDeclaration, SocialDeclarationReply, SocialDeclarationType,
    SocialFlexiblePayment, SocialPayment,
)

_SOCIAL_TYPE_NAMES = {code: name for name, code in SOCIAL_INSURANCE_CODES.items()}


def social_key(tax_org_code: str, decl_no: str) -> str:
    """The message-log key of a declaration's messages: SI-TaxOrgCode-DeclNo."""
    return f"SI-{tax_org_code}-{decl_no}"


def social_declaration_document(*, head: MessageHead, message: SocialDeclaration, encoding: str = "UTF-8") -> bytes:
    d = message
    types = "".join(
        f"<SIDeclType5101><InsType>{SOCIAL_INSURANCE_CODES[t.ins_type]}</InsType>"
        f"<EmployerAmt>{fen_to_yuan_text(t.employer_amount_fen)}</EmployerAmt>"
        f"<IndividualAmt>{fen_to_yuan_text(t.individual_amount_fen)}</IndividualAmt></SIDeclType5101>"
        for t in d.types)
    return document(head, (
        f"<SIDeclHead5101><TaxOrgCode>{_x(d.tax_org_code)}</TaxOrgCode><DeclNo>{_x(d.decl_no)}</DeclNo>"
        f"<PayerCode>{_x(d.payer_code)}</PayerCode><PayerName>{_x(d.payer_name)}</PayerName>"
        f"<RegionCode>{_x(d.region_code)}</RegionCode><Period>{_x(d.period)}</Period>"
        f"<PersonNum>{int(d.person_num)}</PersonNum><BaseAmt>{fen_to_yuan_text(d.base_amount_fen)}</BaseAmt>"
        f"<EmployerAmt>{fen_to_yuan_text(d.employer_amount_fen)}</EmployerAmt>"
        f"<IndividualAmt>{fen_to_yuan_text(d.individual_amount_fen)}</IndividualAmt>"
        f"<AllAmt>{fen_to_yuan_text(d.all_amount_fen)}</AllAmt></SIDeclHead5101>{types}"), encoding=encoding)


def read_social_declaration(doc: Document) -> SocialDeclaration:
    _expect(doc, SOCIAL_DECLARATION)
    h = _fields(doc.msg[0])
    types = []
    for e in doc.msg[1:]:
        f = _fields(e)
        if f["InsType"] not in _SOCIAL_TYPE_NAMES:
            raise UnrecognisedMessage(f"unknown insurance type {f['InsType']}")
        types.append(SocialDeclarationType(ins_type=_SOCIAL_TYPE_NAMES[f["InsType"]],
                                           employer_amount_fen=yuan_text_to_fen(f["EmployerAmt"]),
                                           individual_amount_fen=yuan_text_to_fen(f["IndividualAmt"])))
    return SocialDeclaration(
        tax_org_code=h["TaxOrgCode"], decl_no=h["DeclNo"], payer_code=h["PayerCode"], payer_name=h["PayerName"],
        region_code=h["RegionCode"], period=h["Period"], person_num=int(h["PersonNum"]),
        base_amount_fen=yuan_text_to_fen(h["BaseAmt"]), employer_amount_fen=yuan_text_to_fen(h["EmployerAmt"]),
        individual_amount_fen=yuan_text_to_fen(h["IndividualAmt"]), all_amount_fen=yuan_text_to_fen(h["AllAmt"]),
        types=tuple(types))


def social_declaration_reply_document(*, head: MessageHead, reply: SocialDeclarationReply,
                                      encoding: str = "UTF-8") -> bytes:
    r = reply
    amount = f"<ConfirmedAmt>{fen_to_yuan_text(r.confirmed_amount_fen)}</ConfirmedAmt>" if r.vou_no else ""
    return document(head, (
        f"<SIDeclReturn5102><OriTaxOrgCode>{_x(r.ori_tax_org_code)}</OriTaxOrgCode>"
        f"<OriDeclNo>{_x(r.ori_decl_no)}</OriDeclNo><Result>{_x(r.result)}</Result>{_opt('VouNo', r.vou_no)}"
        f"{amount}{_opt('AddWord', r.add_word)}</SIDeclReturn5102>"), encoding=encoding)


def read_social_declaration_reply(doc: Document) -> SocialDeclarationReply:
    """A validated 5102. Raises XmlRefused (schema_invalid) for a confirmation (90000) without its voucher number
    or a positive confirmed total: the declaration would be confirmed for an amount no transfer can pay."""
    _expect(doc, SOCIAL_DECLARATION_REPLY)
    f = _fields(doc.msg[0])
    if f["Result"] == "90000" and not (f.get("VouNo") and yuan_text_to_fen(f.get("ConfirmedAmt", "0.00")) > 0):
        raise XmlRefused(SCHEMA_INVALID, "a 5102 confirming a declaration (90000) carries its VouNo and a positive "
                                         "ConfirmedAmt", line=doc.msg[0].sourceline)
    return SocialDeclarationReply(
        ori_msg_id=doc.head.msg_ref, ori_tax_org_code=f["OriTaxOrgCode"], ori_decl_no=f["OriDeclNo"],
        result=f["Result"], vou_no=f.get("VouNo", ""),
        confirmed_amount_fen=yuan_text_to_fen(f["ConfirmedAmt"]) if "ConfirmedAmt" in f else 0,
        add_word=f.get("AddWord", ""))


def social_payment_document(*, head: MessageHead, message: SocialPayment, encoding: str = "UTF-8") -> bytes:
    p = message
    return document(head, (
        f"<SIPayment5103><TaxOrgCode>{_x(p.tax_org_code)}</TaxOrgCode><DeclNo>{_x(p.decl_no)}</DeclNo>"
        f"<VouNo>{_x(p.vou_no)}</VouNo><PayAcct>{_x(p.pay_acct)}</PayAcct>"
        f"<TraAmt>{fen_to_yuan_text(p.amount_fen)}</TraAmt><PayDate>{date_text(p.pay_date)}</PayDate>"
        f"<PaySerial>{_x(p.pay_serial)}</PaySerial></SIPayment5103>"), encoding=encoding)


def read_social_payment(doc: Document) -> SocialPayment:
    _expect(doc, SOCIAL_PAYMENT)
    f = _fields(doc.msg[0])
    return SocialPayment(tax_org_code=f["TaxOrgCode"], decl_no=f["DeclNo"], vou_no=f["VouNo"], pay_acct=f["PayAcct"],
                         amount_fen=yuan_text_to_fen(f["TraAmt"]), pay_date=read_date(f["PayDate"]),
                         pay_serial=f["PaySerial"])


def social_flexible_payment_document(*, head: MessageHead, message: SocialFlexiblePayment,
                                     encoding: str = "UTF-8") -> bytes:
    p = message
    return document(head, (
        f"<SIFlexPayment5104><TaxOrgCode>{_x(p.tax_org_code)}</TaxOrgCode><PayNo>{_x(p.pay_no)}</PayNo>"
        f"<PayerID>{_x(p.payer_id)}</PayerID><PayerName>{_x(p.payer_name)}</PayerName>"
        f"<RegionCode>{_x(p.region_code)}</RegionCode><StartPeriod>{_x(p.start_period)}</StartPeriod>"
        f"<EndPeriod>{_x(p.end_period)}</EndPeriod><MonthNum>{int(p.month_num)}</MonthNum>"
        f"<PremiumAmt>{fen_to_yuan_text(p.premium_amount_fen)}</PremiumAmt>"
        f"<LateFeeAmt>{fen_to_yuan_text(p.late_fee_fen)}</LateFeeAmt><TraAmt>{fen_to_yuan_text(p.amount_fen)}</TraAmt>"
        f"<PayAcct>{_x(p.pay_acct)}</PayAcct><PayDate>{date_text(p.pay_date)}</PayDate>"
        f"<PaySerial>{_x(p.pay_serial)}</PaySerial></SIFlexPayment5104>"), encoding=encoding)


def read_social_flexible_payment(doc: Document) -> SocialFlexiblePayment:
    _expect(doc, SOCIAL_FLEXIBLE_PAYMENT)
    f = _fields(doc.msg[0])
    return SocialFlexiblePayment(
        tax_org_code=f["TaxOrgCode"], pay_no=f["PayNo"], payer_id=f["PayerID"], payer_name=f["PayerName"],
        region_code=f["RegionCode"], start_period=f["StartPeriod"], end_period=f["EndPeriod"],
        month_num=int(f["MonthNum"]), premium_amount_fen=yuan_text_to_fen(f["PremiumAmt"]),
        late_fee_fen=yuan_text_to_fen(f["LateFeeAmt"]), amount_fen=yuan_text_to_fen(f["TraAmt"]),
        pay_acct=f["PayAcct"], pay_date=read_date(f["PayDate"]), pay_serial=f["PaySerial"])


READERS.update({SOCIAL_DECLARATION: read_social_declaration,
                SOCIAL_DECLARATION_REPLY: read_social_declaration_reply, SOCIAL_PAYMENT: read_social_payment})
READERS[SOCIAL_FLEXIBLE_PAYMENT] = read_social_flexible_payment
