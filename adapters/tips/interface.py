"""The TIPS-style tax interface (财税库银横向联网), as this service sees it.

The tax system (TIPS and the tax authority behind it) talks to this service, the bank/operator side, in
XML messages (envelope `CFX/HEAD` + `MSG`, see ../DOMAIN and `adapters/tips/schemas/`) carried over
SOAP. `adapters.tips` parses, validates, verifies and signs those messages; the tax domain sees only
the plain dataclasses below, never XML:

- inbound (tax system -> service): the SOAP endpoint turns a message into one of the request
  dataclasses and calls the matching `TaxMessageHandler` method (implemented by `tax.handlers`); the
  returned reply dataclass is signed and sent back in the same call;
- outbound (service -> tax system): `TipsClient` sends what the service reports later (batch results
  2102, refund results, reconciliation results 2111).

Amounts are integer fen here; messages carry yuan strings `-?\\d{1,15}\\.\\d{2}` converted at the edge.
Result codes are those front-ends use (`ResultCode`), plus project codes for e-CNY-only refusals.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol


class ResultCode:
    SUCCESS = "90000"
    DUPLICATE = "94051"  # the same (TaxOrgCode, EntrustDate, TraNo) again: the original answer is repeated
    TIMEOUT = "94999"  # communication error or timeout; outcome unknown (reversed automatically)
    ACCOUNT_NOT_FOUND = "24001"
    ACCOUNT_FROZEN = "24004"
    INSUFFICIENT_BALANCE = "24007"
    OTHER_FAILURE = "24008"
    NOT_SIGNED = "24009"  # no verified and active agreement for TaxOrgCode + PayAcct + ProtocolNo
    AGREEMENT_VERIFY_FAILED = "24011"
    ALREADY_STOPPED = "24020"
    SIGNATURE_INVALID = "91005"
    UNRECOGNISED = "92001"
    PARSE_ERROR = "92004"
    # Project codes (e-CNY only; not TIPS codes):
    WALLET_LIMIT = "E0001"  # the payer wallet's class limit (single or daily)
    CONTRACT_CONDITION = "E0002"  # a smart-contract condition refused the payment
    BALANCE_CAP = "E0003"  # the payee wallet's balance cap (refunds into a personal wallet)
    ORIGINAL_NOT_FOUND = "E0004"  # a reversal or stop payment names a deduction or package we never received
    DECLARATION_REFUSED = "S0001"  # project code: the tax system refused a social-insurance declaration (5102)


@dataclass(frozen=True)
class MessageHead:
    """The envelope head. `msg_ref` ties a reply to its request (the request's msg_id)."""

    version: str  # VER, 3 characters
    src: str  # SRC node code, 12 digits
    des: str  # DES node code, 12 digits
    app: str  # APP
    msg_no: str  # MsgNo, 4 digits: 3001, 2001, 3102, 9121, 2102, 9114, 9115, 1104, 3111, 2111, 9120, 9005 ...
    msg_id: str  # MsgID, 20 digits
    msg_ref: str  # MsgRef, 20 digits
    work_date: dt.date  # WorkDate


# --- three-party agreements (9114 / 9115) --------------------------------------------------------


@dataclass(frozen=True)
class AgreementVerification:
    """9114: the tax system asks the service to verify (vc_sign "0") or delete ("1") an agreement."""

    send_org_code: str
    entrust_date: dt.date
    vc_no: str
    vc_sign: str  # "0" verify, "1" delete
    tax_org_code: str
    tax_pay_code: str  # taxpayer id: unified social credit code or resident ID
    tax_pay_name: str
    pay_op_bk_code: str  # the payer's operator (12 digits)
    pay_bk_code: str  # clearing bank (12 digits)
    pay_acct: str  # the payer's e-CNY wallet id
    hand_org_name: str  # account (wallet holder) name
    protocol_no: str  # agreement number


@dataclass(frozen=True)
class AgreementVerificationReply:
    """9115: vc_result "0" passed, "1" failed, with a note."""

    vc_no: str
    vc_result: str
    add_word: str = ""


# --- deductions (3001 / 2001, 3102 / 9121 / 2102) --------------------------------------------------


@dataclass(frozen=True)
class TaxTypeItem:
    project_id: str
    tax_type_name: str  # e.g. 增值税, 企业所得税, 个人所得税
    tax_start_date: dt.date
    tax_end_date: dt.date
    amount_fen: int


@dataclass(frozen=True)
class DeductionItem:
    tra_no: str  # 8 digits; (tax_org_code, entrust_date, tra_no) is the idempotency key
    pay_op_bk_code: str
    pay_acct: str  # the taxpayer's e-CNY wallet id
    hand_org_name: str
    amount_fen: int  # TraAmt
    tax_vou_no: str
    tax_pay_name: str
    protocol_no: str
    remark: str = ""
    tax_types: tuple[TaxTypeItem, ...] = ()
    budget_type: str = "1"  # 1 in budget, 2 outside
    budget_level_code: str = "3"  # 0 shared, 1 central, 2 province, 3 city, 4 county, 5 township


@dataclass(frozen=True)
class TreasuryAccount:
    """TurnAccount: where the money goes (the treasury)."""

    payee_bank_no: str
    payee_org_code: str  # treasury code (10 characters)
    payee_acct: str  # the treasury's e-CNY wallet id
    payee_name: str
    pay_bk_code: str = ""  # the clearing bank (12 digits), PayBkCode of TurnAccount3001/3102
    handle_type: str = "0"  # HandleType of TurnAccount3001/3102


@dataclass(frozen=True)
class RealTimeDeduction:
    """3001: one deduction, answered in the same call with 2001."""

    head: MessageHead
    tax_org_code: str
    entrust_date: dt.date
    treasury: TreasuryAccount
    item: DeductionItem


@dataclass(frozen=True)
class DeductionResult:
    """2001 (and one BatchReturn2102 line)."""

    ori_tax_org_code: str
    ori_entrust_date: dt.date
    ori_tra_no: str
    tax_vou_no: str
    amount_fen: int
    result: str  # ResultCode
    add_word: str = ""
    tax_date: dt.date | None = None  # the day the tax was debited


@dataclass(frozen=True)
class BatchDeduction:
    """3102: a package of at most 1,000 items, acknowledged at once (9121), answered later (2102)."""

    head: MessageHead
    tax_org_code: str
    entrust_date: dt.date
    pack_no: str
    all_num: int
    all_amount_fen: int
    return_term: int  # days to answer
    treasury: TreasuryAccount
    items: tuple[DeductionItem, ...]


@dataclass(frozen=True)
class Acknowledgement:
    """9121 / 9120: received (ResultCode.SUCCESS) or refused with a code."""

    ori_msg_id: str
    result: str
    add_word: str = ""


@dataclass(frozen=True)
class BatchResult:
    """2102: the result of a package, sent by the service when every item is decided."""

    pay_bk_code: str
    entrust_date: dt.date
    pack_no: str
    ori_tax_org_code: str
    ori_entrust_date: dt.date
    ori_pack_no: str
    all_num: int
    all_amount_fen: int
    succ_num: int
    succ_amount_fen: int
    result: str
    add_word: str = ""
    items: tuple[DeductionResult, ...] = field(default_factory=tuple)


class TaxMessageHandler(Protocol):
    """What the tax domain answers; the inbound endpoint calls it with validated, verified messages."""

    def verify_agreement(self, message: AgreementVerification) -> AgreementVerificationReply: ...

    def deduct_real_time(self, message: RealTimeDeduction) -> DeductionResult: ...

    def receive_batch(self, message: BatchDeduction) -> Acknowledgement: ...


class TipsError(Exception):
    """Base of what the TIPS client raises."""


class TipsUnavailable(TipsError):
    """Timeout, connection failure, 5xx or an unreadable reply: send again later under the same MsgID."""


class TipsFault(TipsError):
    """The tax system answered with a SOAP fault or refused the message (signature, schema)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class TipsClient(Protocol):
    def send_batch_result(self, result: BatchResult) -> Acknowledgement:
        """2102 to the tax system; idempotent on (ori_tax_org_code, ori_entrust_date, ori_pack_no)."""

    def send_refund_result(self, result: "RefundResult") -> Acknowledgement:
        """2104 (project-defined) to the tax system; idempotent on (ori_tax_org_code, ori_entrust_date,
        ori_pack_no)."""


@dataclass(frozen=True)
class CheckLine:
    """3111 BankCompare3111: one record the tax system holds as paid on the check date."""

    pay_op_bk_code: str
    pay_acct: str
    ori_tax_org_code: str
    ori_entrust_date: dt.date
    ori_pack_no: str
    ori_tra_no: str
    amount_fen: int
    tax_vou_no: str = ""
    tax_pay_name: str = ""
    protocol_no: str = ""


@dataclass(frozen=True)
class CheckDetail:
    """3111: the tax system's check detail (对账明细) for a day; one of `child_pack_num` packages."""

    head: MessageHead
    pay_bk_code: str
    chk_date: dt.date
    chk_acct_ord: str
    payee_bank_no: str
    chk_acct_type: str  # "0" intraday, else end of day
    all_num: int
    all_amount_fen: int
    child_pack_num: int
    cur_pack_no: int
    lines: tuple[CheckLine, ...]


@dataclass(frozen=True)
class CheckResult:
    """2111 MsgReturn2111: our answer to a day's check detail. Result "0" matches, "1" differs."""

    ori_pay_bank_no: str
    ori_chk_date: dt.date
    ori_chk_acct_ord: str
    ori_payee_bank_no: str
    result: str
    add_word: str = ""


# --- refunds from the treasury (退库, 1104) ----------------------------------------------------------


@dataclass(frozen=True)
class RefundItem:
    """One RetTreasury1104 line: a refund paid from the treasury to the taxpayer's wallet."""

    tra_no: str  # TraNo; (tax_org_code, entrust_date, pack_no, tra_no) identifies the item
    draw_back_tre_code: str  # DrawBackTreCode: the treasury paying the refund (10 characters)
    payee_bank_no: str  # PayeeBankNo
    payee_op_bk_code: str  # PayeeOpBkCode: the payee's operator (12 digits)
    payee_acct: str  # PayeeAcct: the taxpayer's e-CNY wallet id
    payee_name: str  # PayeeName: the wallet holder's name
    tax_pay_code: str  # TaxPayCode: taxpayer id
    tax_pay_name: str
    draw_back_vou_no: str  # DrawBackVouNo: refund voucher number
    ori_tax_vou_no: str  # OriTaxVouNo: the tax voucher refunded
    amount_fen: int  # TraAmt
    bill_date: dt.date
    budget_type: str = "1"  # 1 in budget, 2 outside
    budget_subject_code: str = ""
    budget_level_code: str = "3"  # 0 shared, 1 central, 2 province, 3 city, 4 county, 5 township
    trim_sign: str = "0"  # 0 current year, 1 prior-year adjustment
    draw_back_reason_code: str = ""


@dataclass(frozen=True)
class RefundOrder:
    """1104: a refund package (BatchHead1104 + RetTreasury1104[]), at most 1,000 items, acknowledged at
    once and paid after a second person's approval."""

    head: MessageHead
    tax_org_code: str
    entrust_date: dt.date
    pack_no: str
    return_term: int  # days to answer
    all_num: int
    all_amount_fen: int
    items: tuple[RefundItem, ...]


@dataclass(frozen=True)
class RefundItemResult:
    """The result of one refund item."""

    ori_tra_no: str
    draw_back_vou_no: str
    amount_fen: int
    result: str  # ResultCode
    add_word: str = ""


@dataclass(frozen=True)
class RefundResult:
    """The result of a refund package, sent by the service when every item is decided (or the
    package was rejected)."""

    ori_tax_org_code: str
    ori_entrust_date: dt.date
    ori_pack_no: str
    all_num: int
    all_amount_fen: int
    succ_num: int
    succ_amount_fen: int
    result: str
    add_word: str = ""
    items: tuple[RefundItemResult, ...] = field(default_factory=tuple)


# --- reversal (冲正, 1021 / 2021) and stop payment (止付, 1123 / 2123) -------------------------------


@dataclass(frozen=True)
class Reversal:
    """1021: the tax system asks to reverse (冲正) the deduction (tax_org_code, ori_entrust_date, ori_tra_no).
    (tax_org_code, entrust_date, cancel_no) identifies the request."""

    head: MessageHead
    tax_org_code: str
    entrust_date: dt.date
    cancel_no: str  # CancelNo, 8 digits
    ori_entrust_date: dt.date
    ori_tra_no: str
    cancel_reason: str = ""


@dataclass(frozen=True)
class ReversalReply:
    """2021: cancel_answer "0" reversed (or nothing was debited), "1" not reversed; result says why."""

    cancel_answer: str
    result: str  # ResultCode
    add_word: str = ""


@dataclass(frozen=True)
class StopPayment:
    """1123: stop (止付) a batch package's items not yet deducted, or one item (ori_tra_no) of it.
    (tax_org_code, entrust_date, stop_no) identifies the request."""

    head: MessageHead
    tax_org_code: str
    entrust_date: dt.date
    stop_no: str  # StopNo, 8 digits
    ori_entrust_date: dt.date
    ori_pack_no: str
    ori_tra_no: str = ""  # "" stops the whole package
    stop_reason: str = ""


@dataclass(frozen=True)
class StopPaymentReply:
    """2123: how many items were stopped now (never deducted; 24020 in the 2102) and how many were already
    deducted or decided (reported in the 2102 as they are)."""

    stop_num: int
    stop_amount_fen: int
    done_num: int
    result: str  # ResultCode
    add_word: str = ""


# --- social-insurance premiums (project-defined: declaration 5101 / 5102, payment notice 5103) ---------


# Insurance type codes in 5101 (险种代码 as social-insurance systems number them) <-> the domain's names.
SOCIAL_INSURANCE_CODES = {"pension": "110", "unemployment": "210", "medical": "310", "work_injury": "410"}


@dataclass(frozen=True)
class SocialDeclarationType:
    """One insurance type's totals in a declaration; ins_type is the domain's name (pension, medical, ...)."""

    ins_type: str
    employer_amount_fen: int
    individual_amount_fen: int


@dataclass(frozen=True)
class SocialDeclaration:
    """5101 (service -> tax system): an employer's monthly social-insurance declaration. The tax system
    dedupes on (tax_org_code, decl_no): the same declaration sent again gets its first answer."""

    tax_org_code: str
    decl_no: str  # DeclNo: the service's declaration number, 12 characters
    payer_code: str  # the employer's unified social credit code
    payer_name: str
    region_code: str  # 6 digits
    period: str  # YYYYMM
    person_num: int
    base_amount_fen: int
    employer_amount_fen: int
    individual_amount_fen: int
    all_amount_fen: int
    types: tuple[SocialDeclarationType, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SocialDeclarationReply:
    """5102 (tax system -> service, in the same call): 90000 confirmed with the payment voucher number
    and the confirmed total, or a refusal (S0001 ...) with the reason in add_word."""

    ori_msg_id: str
    ori_tax_org_code: str
    ori_decl_no: str
    result: str
    vou_no: str = ""
    confirmed_amount_fen: int = 0
    add_word: str = ""

    def acknowledgement(self) -> "SocialDeclarationReply":
        return self


@dataclass(frozen=True)
class SocialPayment:
    """5103 (service -> tax system, answered with 9120): the premiums of a confirmed declaration were paid
    into the fund wallet. Deduped on (tax_org_code, decl_no); a repeat is answered 94051."""

    tax_org_code: str
    decl_no: str
    vou_no: str
    pay_acct: str  # the payer's e-CNY wallet id
    amount_fen: int
    pay_date: dt.date
    pay_serial: str  # the transfer's idempotency key (the operator knows the payment by it)


@dataclass(frozen=True)
class SocialFlexiblePayment:
    """5104 (project-defined, service -> tax system, answered with 9120): a flexible-employment individual
    paid consecutive months (start_period..end_period, YYYYMM) into the fund wallet. Deduped on
    (tax_org_code, pay_no); a repeat is answered 94051."""

    tax_org_code: str
    pay_no: str  # 'F' and the payment id in 11 digits
    payer_id: str  # the person's resident ID
    payer_name: str
    region_code: str
    start_period: str
    end_period: str
    month_num: int
    premium_amount_fen: int
    late_fee_fen: int
    amount_fen: int
    pay_acct: str  # the person's e-CNY wallet id
    pay_date: dt.date
    pay_serial: str  # the transfer's idempotency key


# --- treasury entry detail (入库流水, 3139) -------------------------------------------------------------


@dataclass(frozen=True)
class EntryLine:
    """One TreDetail3139 line: money entered into the treasury (negative: an entry reversed)."""

    budget_type: str
    budget_level_code: str
    amount_fen: int
    budget_subject_code: str = ""
    exp_tax_vou_no: str = ""  # the tax voucher of the deduction entered


@dataclass(frozen=True)
class TreasuryEntryDetail:
    """3139: one of `child_pack_num` packages of a day's treasury entries of a tax authority at a treasury."""

    tre_code: str
    tax_org_code: str
    in_tre_date: dt.date
    pack_no: str
    all_num: int
    all_amount_fen: int
    child_pack_num: int
    cur_pack_no: int
    lines: tuple[EntryLine, ...] = ()
    fin_org_code: str = ""
