"""Build and read the budget system's SOAP documents (schemas/budget.xsd, schemas/budget.wsdl).

Shared by the client and the sandbox. Two kinds of body:
- the large ones (SubmitVoucher, ReportPayment: up to 100,000 details) are written here from
  escaped text templates: zeep takes about 1.7 s to serialise a 50,000-detail voucher and an lxml
  tree about 0.45 s, text templates about 0.1 s (bench/budget.py). They are the same documents
  (tests check them against the XSD and deserialise them with zeep from the WSDL);
- the small ones (QueryQuotas, QueryVoucherStatus requests) are built by zeep from the WSDL
  (see adapters.budget.client).

Reading: `read_envelope` is the only way in. It parses with the hardened parser
(adapters.xml: size limit, no DOCTYPE, no entities, no network), checks the SOAP 1.1 envelope and
validates the body's payload against budget.xsd before any field is read. A validated payload's
children come in the XSD's fixed order, so the bulk readers take them by position.

Amounts are yuan text with exactly two decimals on the wire ("1234.56") and integer fen inside:
the XSD pattern guarantees the form, so conversion is integer arithmetic on the digits.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from adapters.budget.interface import (
    Acknowledgement,
    PaymentLineResult,
    PaymentReport,
    QuotaInfo,
    Voucher,
    VoucherStatus,
)
from adapters.xml import SCHEMA_INVALID, XmlRefused, parse, validate

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
XSD_PATH = SCHEMA_DIR / "budget.xsd"
WSDL_PATH = SCHEMA_DIR / "budget.wsdl"

NS = "urn:ecny-treasury:budget:v1"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ACTION_PREFIX = "urn:ecny-treasury:budget:v1:"

QUERY_QUOTAS = "QueryQuotas"
SUBMIT_VOUCHER = "SubmitVoucher"
REPORT_PAYMENT = "ReportPayment"
QUERY_VOUCHER_STATUS = "QueryVoucherStatus"
OPERATIONS = (QUERY_QUOTAS, SUBMIT_VOUCHER, REPORT_PAYMENT, QUERY_VOUCHER_STATUS)


def request_tag(operation: str) -> str:
    return f"{{{NS}}}{operation}Request"


def response_tag(operation: str) -> str:
    return f"{{{NS}}}{operation}Response"


_SOAP_ENVELOPE = f"{{{SOAP_NS}}}Envelope"
_SOAP_HEADER = f"{{{SOAP_NS}}}Header"
_SOAP_BODY = f"{{{SOAP_NS}}}Body"
_SOAP_FAULT = f"{{{SOAP_NS}}}Fault"
_FAULT_DETAIL = f"{{{NS}}}FaultDetail"

# Characters XML 1.0 cannot carry at all (escaping does not help): refused before sending.
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# ---------------------------------------------------------------------------------------------
# Amounts
# ---------------------------------------------------------------------------------------------


def fen_to_yuan_text(fen: int) -> str:
    """123456 -> '1234.56'. Only int fen >= 0 (TypeError / ValueError otherwise, before anything is sent)."""
    if type(fen) is not int:
        raise TypeError(f"amounts must be int fen, got {type(fen).__name__}")
    if fen < 0:
        raise ValueError(f"amounts on the wire are not negative: {fen}")
    return f"{fen // 100}.{fen % 100:02d}"


def yuan_text_to_fen(text: str) -> int:
    """'1234.56' -> 123456, for text the XSD's Yuan pattern has already validated (no Decimal needed:
    two decimals exactly, so the digits without the point are the fen)."""
    whole, point, cents = text.partition(".")
    if not point or len(cents) != 2 or not whole.isdigit() or not cents.isdigit():
        raise ValueError(f"not a yuan amount with two decimals: {text!r}")
    return int(whole) * 100 + int(cents)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _x(value: str) -> str:
    return escape(value) if value else ""


def _escaped(values: list[str]) -> list[str]:
    """Escape a whole column at once (one pass over the joined text instead of one call per value).

    NUL separates the values: a value holding one itself is refused (XML cannot carry it anyway)."""
    if not values:
        return []
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:
        raise ValueError("a field contains a control character XML cannot carry")
    if "&" in joined or "<" in joined or ">" in joined:
        joined = escape(joined)
    return joined.split("\x00")


def _amount_text(fen: int) -> str:
    if type(fen) is not int or fen < 0:
        return fen_to_yuan_text(fen)  # raises the right error
    return f"{fen // 100}.{fen % 100:02d}"


def envelope(payload: str) -> bytes:
    """A SOAP 1.1 envelope around a payload (already escaped XML text, default namespace set)."""
    if _NOT_XML_CHARS.search(payload):
        raise ValueError("a field contains a control character XML cannot carry")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body>'
            f"{payload}</soap:Body></soap:Envelope>").encode()


def submit_voucher_body(voucher: Voucher) -> bytes:
    """The SubmitVoucher request for a voucher (see the module docstring for why text templates)."""
    parts = [
        f'<SubmitVoucherRequest xmlns="{NS}"><Voucher>'
        f"<VoucherNo>{_x(voucher.voucher_no)}</VoucherNo><AdmDivCode>{_x(voucher.adm_div_code)}</AdmDivCode>"
        f"<StYear>{int(voucher.fiscal_year)}</StYear><VtCode>{_x(voucher.vt_code)}</VtCode>"
        f"<VouDate>{voucher.vou_date.isoformat()}</VouDate><BillNo>{_x(voucher.bill_no)}</BillNo>"
        f"<AgencyCode>{_x(voucher.agency_code)}</AgencyCode><AgencyName>{_x(voucher.agency_name)}</AgencyName>"
        f"<QuotaID>{_x(voucher.quota_id)}</QuotaID><FundTypeCode>{_x(voucher.fund_type_code)}</FundTypeCode>"
        f"<PayTypeCode>{_x(voucher.pay_type_code)}</PayTypeCode><ExpFuncCode>{_x(voucher.exp_func_code)}</ExpFuncCode>"
        f"<GovExpEcoCode>{_x(voucher.exp_eco_code)}</GovExpEcoCode><PayAcctNo>{_x(voucher.pay_acct_no)}</PayAcctNo>"
        f"<PayAcctName>{_x(voucher.pay_acct_name)}</PayAcctName>"
        f"<PaySummaryName>{_x(voucher.purpose)}</PaySummaryName>"
        f"<PayAmt>{fen_to_yuan_text(voucher.amount_fen)}</PayAmt><DetailList>"
    ]
    details = voucher.details
    amounts = [_amount_text(d.amount_fen) for d in details]
    purposes = [f"<PaySummaryName>{p}</PaySummaryName>" if p else ""
                for p in _escaped([d.purpose for d in details])]
    parts += [f"<Detail><TrackingID>{tid}</TrackingID><PayeeAcctName>{name}</PayeeAcctName>"
              f"<PayeeAcctNo>{acct}</PayeeAcctNo><PayeeAcctBankNo>{bank}</PayeeAcctBankNo>"
              f"<PayAmt>{amount}</PayAmt>{purpose}</Detail>"
              for tid, name, acct, bank, amount, purpose in zip(
                  _escaped([d.tracking_id for d in details]), _escaped([d.payee_name for d in details]),
                  _escaped([d.payee_acct_no for d in details]), _escaped([d.payee_bank_no for d in details]),
                  amounts, purposes)]
    parts.append("</DetailList></Voucher></SubmitVoucherRequest>")
    return envelope("".join(parts))


def _aware_iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("paid_at must be timezone-aware")
    return moment.isoformat()


def report_payment_body(report: PaymentReport) -> bytes:
    """The ReportPayment request for a report of some lines of one voucher."""
    parts = [f'<ReportPaymentRequest xmlns="{NS}"><PaymentReport><ReportNo>{_x(report.report_no)}</ReportNo>'
             f"<VoucherNo>{_x(report.voucher_no)}</VoucherNo><DetailList>"]
    lines = report.lines
    optional = zip([_aware_iso(line.paid_at) if line.paid_at is not None else "" for line in lines],
                   _escaped([line.agent_business_no for line in lines]), _escaped([line.return_reason for line in lines]))
    parts += [f"<Detail><TrackingID>{tid}</TrackingID><PayStatus>{status}</PayStatus><XPayAmt>{amount}</XPayAmt>"
              + (f"<XPayDate>{paid_at}</XPayDate>" if paid_at else "")
              + (f"<XAgentBusinessNo>{business_no}</XAgentBusinessNo>" if business_no else "")
              + (f"<XAddWord>{reason}</XAddWord>" if reason else "") + "</Detail>"
              for tid, status, amount, (paid_at, business_no, reason) in zip(
                  _escaped([line.tracking_id for line in lines]), _escaped([line.status for line in lines]),
                  [_amount_text(line.amount_fen) for line in lines], optional)]
    parts.append("</DetailList></PaymentReport></ReportPaymentRequest>")
    return envelope("".join(parts))


def _opt(tag: str, value: str) -> str:
    return f"<{tag}>{escape(value)}</{tag}>" if value else ""


def ack_body(operation: str, ack: Acknowledgement) -> bytes:
    """SubmitVoucherResponse / ReportPaymentResponse carrying an acknowledgement."""
    return envelope(
        f'<{operation}Response xmlns="{NS}"><Ack><Key>{escape(ack.key)}</Key>'
        f"<Accepted>{'true' if ack.accepted else 'false'}</Accepted>"
        f"<Duplicate>{'true' if ack.duplicate else 'false'}</Duplicate><AckID>{escape(ack.ack_id)}</AckID>"
        f"{_opt('Code', ack.code)}{_opt('Message', ack.message[:500])}</Ack></{operation}Response>")


def quotas_body(quotas: list[QuotaInfo]) -> bytes:
    parts = [f'<QueryQuotasResponse xmlns="{NS}">']
    for q in quotas:
        parts.append(
            f"<Quota><QuotaID>{escape(q.quota_id)}</QuotaID><AdmDivCode>{escape(q.adm_div_code)}</AdmDivCode>"
            f"<StYear>{q.fiscal_year}</StYear><AgencyCode>{escape(q.agency_code)}</AgencyCode>"
            f"<AgencyName>{escape(q.agency_name)}</AgencyName><ExpFuncCode>{escape(q.exp_func_code)}</ExpFuncCode>"
            f"<GovExpEcoCode>{escape(q.exp_eco_code)}</GovExpEcoCode><FundTypeCode>{escape(q.fund_type_code)}</FundTypeCode>"
            f"<PayTypeCode>{escape(q.pay_type_code)}</PayTypeCode><QuotaAmt>{fen_to_yuan_text(q.amount_fen)}</QuotaAmt>"
            f"<UsedAmt>{fen_to_yuan_text(q.used_fen)}</UsedAmt><ReservedAmt>{fen_to_yuan_text(q.reserved_fen)}</ReservedAmt>"
            f"<AvailableAmt>{fen_to_yuan_text(q.available_fen)}</AvailableAmt>{_opt('Purpose', q.purpose)}</Quota>")
    parts.append("</QueryQuotasResponse>")
    return envelope("".join(parts))


def voucher_status_body(status: VoucherStatus) -> bytes:
    return envelope(
        f'<QueryVoucherStatusResponse xmlns="{NS}"><VoucherNo>{escape(status.voucher_no)}</VoucherNo>'
        f"<State>{status.state}</State><PayAmt>{fen_to_yuan_text(status.amount_fen)}</PayAmt>"
        f"<DetailCount>{status.line_count}</DetailCount><ReportedCount>{status.reported_count}</ReportedCount>"
        f"<PaidAmt>{fen_to_yuan_text(status.paid_fen)}</PaidAmt><ReturnedAmt>{fen_to_yuan_text(status.returned_fen)}</ReturnedAmt>"
        f"{_opt('Message', status.message[:500])}</QueryVoucherStatusResponse>")


def fault_body(*, client_error: bool, code: str, message: str) -> bytes:
    """A SOAP 1.1 fault: faultcode soap:Client (the request was wrong) or soap:Server, our own code
    in detail/FaultDetail. Sent with HTTP 500, as SOAP 1.1 over HTTP requires."""
    faultcode = "soap:Client" if client_error else "soap:Server"
    message = message[:500]
    return envelope(
        f"<soap:Fault><faultcode>{faultcode}</faultcode><faultstring>{escape(message)}</faultstring>"
        f'<detail><FaultDetail xmlns="{NS}"><Code>{escape(code)}</Code><Message>{escape(message)}</Message>'
        f"</FaultDetail></detail></soap:Fault>")


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoapFault:
    """A SOAP fault as received: `faultcode` (soap:Client / soap:Server), our `code` from FaultDetail
    (the faultcode's local name when the detail is missing), and the reason."""

    faultcode: str
    code: str
    message: str


def read_envelope(data: bytes, *, max_bytes: int, expected: tuple[str, ...]) -> etree._Element | SoapFault:
    """Untrusted SOAP bytes -> the Body's payload element, validated against budget.xsd, or a SoapFault.

    `expected`: the payload tags (Clark notation) allowed here. Raises XmlRefused (oversized,
    doctype_forbidden, malformed, schema_invalid) for anything else; nothing is read before that.
    """
    root = parse(data, max_bytes=max_bytes)
    if root.tag != _SOAP_ENVELOPE:
        raise XmlRefused(SCHEMA_INVALID, f"not a SOAP 1.1 envelope: root element is {root.tag}", line=root.sourceline)
    children = [c for c in root if isinstance(c.tag, str)]
    if children and children[0].tag == _SOAP_HEADER:
        children = children[1:]
    if len(children) != 1 or children[0].tag != _SOAP_BODY:
        raise XmlRefused(SCHEMA_INVALID, "the envelope must hold one soap:Body (after an optional soap:Header)",
                         line=root.sourceline)
    body = children[0]
    payloads = [c for c in body if isinstance(c.tag, str)]
    if len(payloads) != 1:
        raise XmlRefused(SCHEMA_INVALID, f"soap:Body must hold exactly one element, found {len(payloads)}",
                         line=body.sourceline)
    payload = payloads[0]
    if payload.tag == _SOAP_FAULT:
        return _read_fault(payload)
    if payload.tag not in expected:
        wanted = ", ".join(etree.QName(t).localname for t in expected)
        raise XmlRefused(SCHEMA_INVALID, f"unexpected element {etree.QName(payload).localname} (expected {wanted})",
                         line=payload.sourceline)
    return validate(payload, schema=XSD_PATH)


def _read_fault(fault: etree._Element) -> SoapFault:
    faultcode = (fault.findtext("faultcode") or "").strip()
    message = (fault.findtext("faultstring") or "").strip()
    code = faultcode.rpartition(":")[2] or "Fault"
    detail = fault.find(f"detail/{_FAULT_DETAIL}")
    if detail is not None:
        validate(detail, schema=XSD_PATH)
        code = detail.findtext(f"{{{NS}}}Code") or code
    if not faultcode or not message:
        raise XmlRefused(SCHEMA_INVALID, "a soap:Fault needs faultcode and faultstring", line=fault.sourceline)
    return SoapFault(faultcode=faultcode, code=code, message=message)


def _text(element: etree._Element, name: str) -> str:
    return element.findtext(f"{{{NS}}}{name}") or ""


def read_ack(payload: etree._Element) -> Acknowledgement:
    """A validated SubmitVoucherResponse / ReportPaymentResponse -> Acknowledgement."""
    ack = payload[0]
    return Acknowledgement(
        key=_text(ack, "Key"),
        accepted=_text(ack, "Accepted") in ("true", "1"),
        duplicate=_text(ack, "Duplicate") in ("true", "1"),
        ack_id=_text(ack, "AckID"),
        code=_text(ack, "Code"),
        message=_text(ack, "Message"),
    )


def read_voucher_status(payload: etree._Element) -> VoucherStatus:
    """A validated QueryVoucherStatusResponse -> VoucherStatus."""
    return VoucherStatus(
        voucher_no=_text(payload, "VoucherNo"),
        state=_text(payload, "State"),
        amount_fen=yuan_text_to_fen(_text(payload, "PayAmt")),
        line_count=int(_text(payload, "DetailCount")),
        reported_count=int(_text(payload, "ReportedCount")),
        paid_fen=yuan_text_to_fen(_text(payload, "PaidAmt")),
        returned_fen=yuan_text_to_fen(_text(payload, "ReturnedAmt")),
        message=_text(payload, "Message"),
    )


def read_quotas(payload: etree._Element) -> list[QuotaInfo]:
    """A validated QueryQuotasResponse -> QuotaInfo list, in the order given."""
    quotas = []
    for q in payload:
        quotas.append(QuotaInfo(
            quota_id=_text(q, "QuotaID"), adm_div_code=_text(q, "AdmDivCode"), fiscal_year=int(_text(q, "StYear")),
            agency_code=_text(q, "AgencyCode"), agency_name=_text(q, "AgencyName"),
            exp_func_code=_text(q, "ExpFuncCode"), exp_eco_code=_text(q, "GovExpEcoCode"),
            fund_type_code=_text(q, "FundTypeCode"), pay_type_code=_text(q, "PayTypeCode"),
            amount_fen=yuan_text_to_fen(_text(q, "QuotaAmt")), used_fen=yuan_text_to_fen(_text(q, "UsedAmt")),
            reserved_fen=yuan_text_to_fen(_text(q, "ReservedAmt")),
            available_fen=yuan_text_to_fen(_text(q, "AvailableAmt")), purpose=_text(q, "Purpose"),
        ))
    return quotas


def read_payment_report(payload: etree._Element) -> PaymentReport:
    """A validated ReportPaymentRequest -> PaymentReport (lines by position: the XSD fixes the order)."""
    report = payload[0]
    lines = []
    for detail in report[2]:
        fields = {etree.QName(c).localname: c.text or "" for c in detail}
        paid_at = fields.get("XPayDate")
        lines.append(PaymentLineResult(
            tracking_id=fields["TrackingID"], status=fields["PayStatus"],
            amount_fen=yuan_text_to_fen(fields["XPayAmt"]),
            paid_at=dt.datetime.fromisoformat(paid_at) if paid_at else None,
            agent_business_no=fields.get("XAgentBusinessNo", ""), return_reason=fields.get("XAddWord", ""),
        ))
    return PaymentReport(report_no=report[0].text, voucher_no=report[1].text, lines=tuple(lines))


# Bulk readers for the receiving side (the sandbox): plain tuples, no per-line objects, children by
# position (the XSD fixes the order; optional elements come last and are told apart by tag).
_VOUCHER_FIELDS = ("VoucherNo", "AdmDivCode", "StYear", "VtCode", "VouDate", "BillNo", "AgencyCode", "AgencyName",
                   "QuotaID", "FundTypeCode", "PayTypeCode", "ExpFuncCode", "GovExpEcoCode", "PayAcctNo",
                   "PayAcctName", "PaySummaryName", "PayAmt")
_X_PAY_DATE = f"{{{NS}}}XPayDate"
_X_AGENT_BUSINESS_NO = f"{{{NS}}}XAgentBusinessNo"


def voucher_rows(payload: etree._Element) -> tuple[dict[str, str], list[tuple[str, str, str, str, int, str]]]:
    """A validated SubmitVoucherRequest -> (header fields by XSD name, with PayAmt in fen as 'PayAmtFen';
    details as (TrackingID, PayeeAcctName, PayeeAcctNo, PayeeAcctBankNo, amount_fen, PaySummaryName))."""
    voucher = payload[0]
    header = {name: (voucher[i].text or "") for i, name in enumerate(_VOUCHER_FIELDS)}
    header["PayAmtFen"] = yuan_text_to_fen(header["PayAmt"])
    rows = []
    append = rows.append
    for detail in voucher[len(_VOUCHER_FIELDS)]:
        c = detail[:]
        whole, _, cents = c[4].text.partition(".")
        append((c[0].text, c[1].text, c[2].text, c[3].text, int(whole) * 100 + int(cents),
                (c[5].text or "") if len(c) > 5 else ""))
    return header, rows


def report_rows(payload: etree._Element) -> tuple[str, str, list[tuple[str, str, int, str, str, str]]]:
    """A validated ReportPaymentRequest -> (ReportNo, VoucherNo, lines as (TrackingID, PayStatus,
    amount_fen, XPayDate text, XAgentBusinessNo, XAddWord))."""
    report = payload[0]
    rows = []
    append = rows.append
    for detail in report[2]:
        c = detail[:]
        whole, _, cents = c[2].text.partition(".")
        paid_at = business_no = reason = ""
        for extra in c[3:]:
            if extra.tag == _X_PAY_DATE:
                paid_at = extra.text or ""
            elif extra.tag == _X_AGENT_BUSINESS_NO:
                business_no = extra.text or ""
            else:
                reason = extra.text or ""
        append((c[0].text, c[1].text, int(whole) * 100 + int(cents), paid_at, business_no, reason))
    return report[0].text, report[1].text, rows
