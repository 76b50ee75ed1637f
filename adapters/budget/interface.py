"""The interface a budget-management integration system (预算管理一体化系统) integration implements.

The fiscal disbursement domain talks to the budget-management system only through `BudgetClient`.
The project ships one implementation over SOAP (`adapters.budget.client`, zeep, WSDL in
`adapters/budget/schemas/`) and a sandbox budget system serving the same WSDL
(`adapters.budget.sandbox`). Field names follow the budget system's voucher vocabulary (VoucherNo,
AgencyCode, ExpFuncCode, TrackingID ...) so a mapping to the real interface stays thin.

Idempotency: the voucher number is the key of a voucher submission, the report number the key of a
result report. Sending either again returns the original acknowledgement (with `duplicate=True`)
and changes nothing on the budget side.

Quota arithmetic on the budget side (and mirrored by the service):
- a voucher accepted reserves its amount on the quota (refused when the quota's available amount is short);
- a reported `paid` line moves its amount from reserved to used;
- a reported `returned` line releases its amount (reserved goes down, used does not change).
So after every line of every voucher is reported, `reserved_fen` is back to zero and `used_fen` is
exactly what was paid.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol


class PayType:
    DIRECT = "1"  # 财政直接支付: from the fiscal zero-balance account (voucher type 5201)
    AUTHORISED = "2"  # 财政授权支付: from the budget unit's zero-balance account (voucher type 8202)


VOUCHER_TYPE = {PayType.DIRECT: "5201", PayType.AUTHORISED: "8202"}

# The most details one voucher (and one report) carries: DetailList/Detail's maxOccurs in budget.xsd.
MAX_VOUCHER_DETAILS = 100_000


class LineStatus:
    PAID = "paid"
    RETURNED = "returned"  # 退回: the payee was refused (or the line was cancelled); the amount goes back to the quota


class VoucherState:
    """What the budget system says about a voucher number."""

    NOT_FOUND = "not_found"  # never received: safe to send again under the same number
    ACCEPTED = "accepted"  # reserved on the quota, waiting for results
    REFUSED = "refused"  # not accepted (e.g. quota short); nothing reserved
    REPORTED = "reported"  # every line has a reported result


# Business refusal codes (in acknowledgements, not faults). The sandbox uses exactly these.
class RefusalCode:
    QUOTA_NOT_FOUND = "QUOTA_NOT_FOUND"
    QUOTA_INSUFFICIENT = "QUOTA_INSUFFICIENT"
    CLASSIFICATION_MISMATCH = "CLASSIFICATION_MISMATCH"  # voucher codes differ from the quota's
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # PayAmt is not the sum of the details
    VOUCHER_NOT_FOUND = "VOUCHER_NOT_FOUND"  # a report for a voucher never accepted
    LINE_UNKNOWN = "LINE_UNKNOWN"  # a report line whose TrackingID is not on the voucher
    LINE_ALREADY_REPORTED = "LINE_ALREADY_REPORTED"  # the same line reported under another report number


@dataclass(frozen=True)
class QuotaInfo:
    """A budget quota (指标) as the budget system holds it."""

    quota_id: str
    adm_div_code: str  # administrative division, 6 digits
    fiscal_year: int
    agency_code: str  # budget unit
    agency_name: str
    exp_func_code: str  # functional classification, e.g. 2080505
    exp_eco_code: str  # economic classification, e.g. 30305
    fund_type_code: str  # fund nature: 1 general public budget, 2 government fund, 3 state capital operation
    pay_type_code: str  # PayType allowed for this quota
    amount_fen: int
    used_fen: int
    reserved_fen: int
    available_fen: int  # amount - used - reserved
    purpose: str = ""


@dataclass(frozen=True)
class VoucherDetail:
    tracking_id: str  # 业务追溯识别码: ties this line from application to receipt (our line reference)
    payee_name: str
    payee_acct_no: str  # the payee's e-CNY wallet id
    payee_bank_no: str  # the wallet's operator institution code (12-digit CNAPS)
    amount_fen: int
    purpose: str = ""


@dataclass(frozen=True)
class Voucher:
    """A payment voucher (支付凭证)."""

    voucher_no: str
    vou_date: dt.date
    fiscal_year: int
    adm_div_code: str
    pay_type_code: str  # PayType
    bill_no: str  # the payment application number (our request reference)
    agency_code: str
    agency_name: str
    quota_id: str
    exp_func_code: str
    exp_eco_code: str
    fund_type_code: str
    pay_acct_no: str  # payer: the zero-balance account's e-CNY wallet id
    pay_acct_name: str
    amount_fen: int  # PayAmt: the sum of the details
    purpose: str  # PaySummaryName
    details: tuple[VoucherDetail, ...]

    @property
    def vt_code(self) -> str:
        return VOUCHER_TYPE[self.pay_type_code]


@dataclass(frozen=True)
class Acknowledgement:
    key: str  # the voucher number or report number acknowledged
    accepted: bool
    code: str = ""  # a RefusalCode when not accepted
    message: str = ""
    duplicate: bool = False  # the budget system had seen this key before; this is its original answer
    ack_id: str = ""  # the budget system's own reference for the acknowledgement


@dataclass(frozen=True)
class PaymentLineResult:
    tracking_id: str
    status: str  # LineStatus
    amount_fen: int  # XPayAmt
    paid_at: dt.datetime | None = None  # XPayDate
    agent_business_no: str = ""  # XAgentBusinessNo: the operator's transaction id
    return_reason: str = ""  # XAddWord


@dataclass(frozen=True)
class PaymentReport:
    """Results of some lines of one voucher (a long voucher is reported in several reports)."""

    report_no: str
    voucher_no: str
    lines: tuple[PaymentLineResult, ...]


@dataclass(frozen=True)
class VoucherStatus:
    voucher_no: str
    state: str  # VoucherState
    amount_fen: int = 0
    line_count: int = 0
    reported_count: int = 0
    paid_fen: int = 0
    returned_fen: int = 0
    message: str = ""


class BudgetError(Exception):
    """Base of everything the budget client raises."""


class BudgetUnavailable(BudgetError):
    """Timeout, connection failure, 5xx or an unreadable reply, after the client's own retries.

    The outcome is unknown: send again later under the same voucher or report number (the budget
    system dedupes on it), or ask with `voucher_status`.
    """


class BudgetFault(BudgetError):
    """The budget system answered with a SOAP fault (malformed request, bad credentials, schema error).

    Terminal for that request; nothing was applied. `code` is the fault code, `str(e)` a readable reason.
    """

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class BudgetClient(Protocol):
    def query_quotas(self, *, agency_code: str = "", fiscal_year: int | None = None,
                     quota_ids: tuple[str, ...] = ()) -> list[QuotaInfo]:
        """Quotas matching every given filter (all quotas when none is given)."""

    def submit_voucher(self, voucher: Voucher) -> Acknowledgement:
        """Send a payment voucher; accepted means its amount is reserved on the quota."""

    def report_payment(self, report: PaymentReport) -> Acknowledgement:
        """Report paid and returned lines of an accepted voucher (回单 / 退回)."""

    def voucher_status(self, voucher_no: str) -> VoucherStatus:
        """What the budget system holds for a voucher number."""
