"""Tax: three-party agreements and deductions, one function per action.

Money moves only through `treasury.services.transfers`; the tax system is answered through the
handler (`tax.handlers`) and reached only through `adapters.tips` (`_tips()`), never while a row
lock or a transaction is held. Every action locks its row, re-checks the state (django-fsm
transitions raise on an illegal move) and writes a trace event: per agreement
(`tax-agreement-<id>`), per package (`tax-package-<id>`) or per deduction (`tax-deduction-<id>`).

Real-time deductions (3001) are answered in the same call: the transfer is created in a
transaction and submitted synchronously after commit. An outcome the operator did not give
(timeout) is answered 94999 and reversed (冲正) automatically once recovery learns it settled, as bank
front-ends do. Batch packages (3102) are acknowledged at once and deducted by a Celery task in
chunks; their result (2102) is an outbox sent until the tax system acknowledges it.
"""
from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from types import SimpleNamespace
from typing import Callable, NamedTuple

import orjson
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum, TextField
from django.db.models.functions import Cast
from django.db.models.expressions import RawSQL
from django.utils import timezone

from adapters.tips.interface import (
    Acknowledgement,
    AgreementVerification,
    AgreementVerificationReply,
    BatchDeduction,
    BatchResult,
    DeductionItem,
    DeductionResult,
    RealTimeDeduction,
    RefundItem,
    RefundItemResult,
    RefundOrder as RefundOrderMessage,
    RefundResult,
    ResultCode,
    TaxTypeItem,
    TipsFault,
    TipsUnavailable,
    TreasuryAccount,
)
from treasury import bulk, identifiers
from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.access.makerchecker import ensure_can_approve
from treasury.access.scoping import individual_person, user_organization
from treasury.errors import InvalidTransfers, TransferNotReversible
from treasury.models import NOT_PAID_STATES, LedgerAccount, Organization, Transfer, TransferState, Wallet
from treasury.services import transfers as transfer_services
from treasury.services.transfers import NewTransfer, OperatorUnavailable, create_transfers
from treasury.services.wallets import ensure_personal_wallets, register_wallet, verify_wallets
from treasury.services.parties import register_organization
from treasury.trace.services import EventSpec, append_events

from .models import (
    DECIDED_DEDUCTION_STATES,
    OPEN_AGREEMENT_STATES,
    DeductionKind,
    DeductionPackage,
    StopPaymentRequest,
    TaxAgreement,
    TaxDeduction,
    TaxpayerKind,
    TaxReversal,
    TreasuryEntry,
    UnresolvedDeduction,
)
from .models import AgreementState as A
from .models import DeductionState as D
from .models import PackageState as P
from .models import DECIDED_REFUND_STATES, Refund, RefundOrder
from .models import RefundOrderState as RO
from .models import RefundState as RS

logger = logging.getLogger(__name__)

AGREEMENT = "tax.agreement"
DEDUCTION = "tax.deduction"
PACKAGE = "tax.package"

# Operator refusal codes (adapters.ecny RefusalCode) -> TIPS result codes (adapters.tips ResultCode).
REFUSAL_TO_RESULT = {
    "INSUFFICIENT_BALANCE": ResultCode.INSUFFICIENT_BALANCE,
    "WALLET_NOT_FOUND": ResultCode.ACCOUNT_NOT_FOUND,
    "WALLET_INACTIVE": ResultCode.ACCOUNT_FROZEN,
    "SINGLE_LIMIT_EXCEEDED": ResultCode.WALLET_LIMIT,
    "DAILY_LIMIT_EXCEEDED": ResultCode.WALLET_LIMIT,
    "CONDITION_PAYEE_NOT_ALLOWED": ResultCode.CONTRACT_CONDITION,
    "CONDITION_PAYEE_CATEGORY": ResultCode.CONTRACT_CONDITION,
    "CONDITION_PURPOSE": ResultCode.CONTRACT_CONDITION,
    "CONDITION_EXPIRED": ResultCode.CONTRACT_CONDITION,
}
RESULT_NOTES = {
    ResultCode.SUCCESS: "扣款成功 (debited)",
    ResultCode.INSUFFICIENT_BALANCE: "钱包余额不足 (insufficient balance)",
    ResultCode.ACCOUNT_NOT_FOUND: "钱包不存在 (no such wallet)",
    ResultCode.ACCOUNT_FROZEN: "钱包冻结或注销 (wallet frozen or closed)",
    ResultCode.WALLET_LIMIT: "超过钱包等级限额 (wallet class limit)",
    ResultCode.CONTRACT_CONDITION: "智能合约条件不允许 (smart-contract condition)",
    ResultCode.NOT_SIGNED: "未签订有效三方协议 (no verified and active agreement)",
    ResultCode.TIMEOUT: "扣款结果未明，将自动冲正 (outcome unknown; reversed automatically if debited)",
    ResultCode.OTHER_FAILURE: "扣款失败 (other failure)",
}
# A package refused as a whole (too many items, totals not matching the items, repeated numbers).
PACKAGE_REFUSED = ResultCode.PARSE_ERROR
PURPOSE_CODE = "TAX"
MAX_AMOUNT_FEN = 10**17 - 1  # the most a TIPS amount carries (15 digits of yuan, 2 of fen)
VOUCHER_NUMBER = re.compile(r"[0-9A-Za-z]{1,20}")  # TIPS's VouNo (cfx.xsd)


class TaxError(Exception):
    """A clerk-readable refusal; `code` is for API clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _tips():
    # Imported late: the adapter is configured (and may be replaced) separately from the domain.
    from adapters.tips.client import get_tips_client

    return get_tips_client()


def send_to_tips(send: Callable[[], Acknowledgement]) -> tuple[bool, str, str]:
    """Call `send` (one message through the TIPS client) and judge the tax system's reply: (acknowledged,
    error, fault code). 90000, or 94051 for a message it already has, acknowledges; an unreachable tax
    system leaves no fault code (send again later); a refusal, or any other result, names one."""
    try:
        reply = send()
    except TipsUnavailable as exc:
        return False, f"税务系统暂不可达，稍后重发 (unreachable, will resend): {exc}", ""
    except TipsFault as exc:
        return False, f"税务系统拒收 (refused): {exc}", exc.code or "fault"
    if reply.result in (ResultCode.SUCCESS, ResultCode.DUPLICATE):
        return True, "", ""
    return False, f"{reply.result} {reply.add_word}", reply.result


def local_date(now: datetime) -> date:
    return timezone.localtime(now).date()


# ---------------------------------------------------------------------------------------------
# Trace, locks, access
# ---------------------------------------------------------------------------------------------


def _trace(stream_key: str, subject_type: str, subject_id, kind: str, *, actor: str, now: datetime,
           amount_fen: int | None = None, source_ref: str = "", data: dict | None = None) -> None:
    append_events(stream_key=stream_key, now=now, events=[_event(subject_type, subject_id, kind, actor=actor,
                                                                 amount_fen=amount_fen, source_ref=source_ref,
                                                                 data=data)])


def _event(subject_type: str, subject_id, kind: str, *, actor: str, amount_fen: int | None = None,
           source_ref: str = "", data: dict | None = None) -> EventSpec:
    """One event for `append_events`: a package's events of one transaction go in one append (the stream head
    is locked, read and moved once, not once an event)."""
    return EventSpec(kind=kind, subject_type=subject_type, subject_id=str(subject_id), actor=actor,
                     amount_fen=amount_fen, source_ref=source_ref, data=data or {})


def _locked_agreement(agreement_id: int) -> TaxAgreement:
    return TaxAgreement.objects.select_for_update().get(pk=agreement_id)


def _locked_deduction(deduction_id: int) -> TaxDeduction:
    return TaxDeduction.objects.select_for_update().get(pk=deduction_id)


def _locked_package(package_id: int) -> DeductionPackage:
    return DeductionPackage.objects.select_for_update().get(pk=package_id)


def ensure_tax_staff(user, *, tax_org_code: str) -> None:
    """Tax staff of the tax authority with this code, or an administrator.

    Raises:
        AccessDenied: anyone else.
    """
    if roles.has_role(user, roles.ADMIN):
        return
    org = user_organization(user)
    if not roles.has_role(user, roles.TAX_STAFF) or org is None or org.code != tax_org_code:
        raise AccessDenied("仅本税务机关人员可操作 (only staff of this tax authority may do this)")


def _actor(user) -> str:
    return getattr(user, "username", "") or "system"


def _tax_authority(tax_org_code: str) -> Organization | None:
    return Organization.objects.filter(org_type=Organization.Type.TAX_AUTHORITY, code=tax_org_code).first()


# ---------------------------------------------------------------------------------------------
# Agreements
# ---------------------------------------------------------------------------------------------


def _taxpayer(taxpayer_id: str, *, personal: bool) -> tuple[str, str]:
    """(normalized id, kind): a resident ID for a personal wallet, a credit code otherwise."""
    try:
        if personal:
            return identifiers.validate_resident_id(taxpayer_id).number, TaxpayerKind.PERSON
        return identifiers.validate_uscc(taxpayer_id), TaxpayerKind.ORGANIZATION
    except identifiers.InvalidIdentifier as exc:
        raise TaxError(str(exc), exc.code)


def sign_agreement(*, user, tax_org_code: str, taxpayer_id: str, taxpayer_name: str, wallet_id: str,
                   protocol_no: str, signed_date: date, now: datetime) -> TaxAgreement:
    """Record a three-party agreement signed at the counter or online; it waits for the tax system's
    verification (9114) in `pending`.

    The wallet must exist and be active at the operator and be held by the taxpayer (asked of the
    operator); a wallet unknown here is registered. Re-signing is refused while an agreement for the
    same taxpayer, tax authority and wallet is open (pending, verified, active or suspended).

    Raises:
        AccessDenied: the user is not staff of this tax authority.
        TaxError: bad codes or ids (`tax_org_code`, `id_*`, `uscc_*`, `wallet_id_format`), the operator
            does not know the wallet (`wallet_not_found`), it is not active (`wallet_inactive`), its holder is
            someone else (`holder_mismatch`), an open agreement exists (`already_signed`), the agreement
            number is taken (`protocol_taken`).
        OperatorUnavailable: the operator could not be asked; nothing recorded.
    """
    ensure_tax_staff(user, tax_org_code=tax_org_code)
    if not (len(tax_org_code) == 11 and tax_org_code.isdigit()):
        raise TaxError("征收机关代码应为11位数字 (tax authority code must be 11 digits)", "tax_org_code")
    protocol_no = protocol_no.strip()
    if not protocol_no or len(protocol_no) > 60:
        raise TaxError("协议书号必填，至多60位 (agreement number required, at most 60 characters)", "protocol_no")
    taxpayer_name = taxpayer_name.strip()
    try:
        wallet_id = identifiers.validate_wallet_id(wallet_id)
    except identifiers.InvalidIdentifier as exc:
        raise TaxError(str(exc), exc.code)
    (check,) = verify_wallets(pairs=[(wallet_id, taxpayer_name)])
    if not check.exists:
        raise TaxError("运营机构查无此钱包 (the operator does not know this wallet)", "wallet_not_found")
    if not check.active:
        raise TaxError("钱包已冻结或注销 (the wallet is frozen or closed)", "wallet_inactive")
    if not check.holder_name_matches:
        raise TaxError("钱包户名与纳税人名称不符 (the wallet is held by someone else)", "holder_mismatch")
    personal = check.wallet_type in (Wallet.Type.PERSONAL, Wallet.Type.PERSONAL_SUB, Wallet.Type.HARDWARE)
    taxpayer_id, kind = _taxpayer(taxpayer_id, personal=personal)
    with transaction.atomic():
        wallet = _wallet_for(wallet_id=wallet_id, taxpayer_id=taxpayer_id, taxpayer_name=taxpayer_name,
                             personal=personal, check=check)
        if TaxAgreement.objects.select_for_update().filter(
                tax_org_code=tax_org_code, taxpayer_id=taxpayer_id, wallet=wallet,
                state__in=OPEN_AGREEMENT_STATES).exists():
            raise TaxError("该纳税人已用此钱包签约，不能重复签约 (an agreement for this taxpayer and wallet is open)",
                           "already_signed")
        if TaxAgreement.objects.filter(tax_org_code=tax_org_code, protocol_no=protocol_no).exists():
            raise TaxError("协议书号已被使用 (agreement number already used)", "protocol_taken")
        agreement = TaxAgreement.objects.create(
            tax_authority=_tax_authority(tax_org_code), tax_org_code=tax_org_code, taxpayer_kind=kind,
            taxpayer_id=taxpayer_id, taxpayer_name=taxpayer_name, pay_op_bk_code=_operator_bank_code(wallet),
            wallet=wallet, protocol_no=protocol_no, signed_date=signed_date, created_by=_actor(user), created_at=now,
        )
        _trace(agreement.stream_key, AGREEMENT, agreement.pk, "tax.agreement.signed", actor=_actor(user), now=now,
               data={"tax_org_code": tax_org_code, "protocol_no": protocol_no, "wallet": wallet_id,
                     "taxpayer": identifiers.mask_resident_id(taxpayer_id) if personal else taxpayer_id})
    return agreement


def _operator_bank_code(wallet: Wallet) -> str:
    """The operator's 12-digit bank code if it is recorded as its institution code, else its wallet prefix."""
    return wallet.operator.code


def _wallet_for(*, wallet_id: str, taxpayer_id: str, taxpayer_name: str, personal: bool, check,
                register: bool = True) -> Wallet:
    """The registered wallet, registering it if new and `register`; its recorded holder must be the taxpayer."""
    wallet = Wallet.objects.select_related("holder_person", "holder_org").filter(wallet_id=wallet_id).first()
    if wallet is None and not register:
        # The operator checks only the holder's name: registering here would bind the wallet to whatever
        # ID was typed, and its real holder could then never sign an agreement for it.
        raise TaxError("本系统未登记该钱包的持有人身份，无法核对纳税人证件号码；请先签订三方协议 "
                       "(the wallet's holder is not on record here, so the taxpayer's ID cannot be checked; "
                       "sign an agreement for the wallet first)", "holder_unverified")
    if wallet is None:
        if personal:
            ensure_personal_wallets(holders=[(wallet_id, taxpayer_name, taxpayer_id)], known_checks={wallet_id: check})
            wallet = Wallet.objects.select_related("holder_person", "holder_org").get(wallet_id=wallet_id)
        else:
            operator = Organization.objects.filter(org_type=Organization.Type.OPERATOR_BANK,
                                                   code=wallet_id[:3]).first()
            if operator is None:
                raise TaxError("未登记的运营机构 (no operator registered for this wallet)", "operator_unknown")
            org = register_organization(name=taxpayer_name, org_type=Organization.Type.EMPLOYER, uscc=taxpayer_id)
            wallet = register_wallet(wallet_id=wallet_id, wallet_type=check.wallet_type or Wallet.Type.CORPORATE,
                                     operator=operator, holder_name=taxpayer_name, holder_org=org)
    holder_id = wallet.holder_person.resident_id if wallet.holder_person_id else wallet.holder_org.uscc
    if holder_id != taxpayer_id or wallet.holder_name != taxpayer_name:
        raise TaxError("钱包持有人与纳税人不符 (the wallet is held by someone else)", "holder_mismatch")
    if wallet.status != Wallet.Status.ACTIVE:
        raise TaxError("钱包已冻结或注销 (the wallet is frozen or closed)", "wallet_inactive")
    return wallet


def _agreement_action(agreement_id: int, method: str, kind: str, *, user, reason: str, now: datetime,
                      require_reason: bool = True) -> TaxAgreement:
    if require_reason and not reason.strip():
        raise TaxError("请填写原因 (a reason is required)", "reason_required")
    with transaction.atomic():
        agreement = _locked_agreement(agreement_id)
        if user is not None:
            ensure_tax_staff(user, tax_org_code=agreement.tax_org_code)
        getattr(agreement, method)()  # raises TransitionNotAllowed on an illegal move
        agreement.state_reason = reason.strip()[:255]
        if method == "activate":
            agreement.activated_at = now
        if method == "revoke":
            agreement.revoked_at = now
        agreement.save()
        _trace(agreement.stream_key, AGREEMENT, agreement.pk, kind, actor=_actor(user) if user else "tips", now=now,
               data={"reason": agreement.state_reason})
    return agreement


def activate_agreement(*, agreement_id: int, user, now: datetime) -> TaxAgreement:
    """verified -> active (when TAX_AGREEMENT_ACTIVATE_ON_VERIFY is off). Raises TransitionNotAllowed, AccessDenied."""
    return _agreement_action(agreement_id, "activate", "tax.agreement.activated", user=user, reason="", now=now,
                             require_reason=False)


def suspend_agreement(*, agreement_id: int, user, reason: str, now: datetime) -> TaxAgreement:
    """active -> suspended: no deduction until resumed. Raises TaxError, TransitionNotAllowed, AccessDenied."""
    return _agreement_action(agreement_id, "suspend", "tax.agreement.suspended", user=user, reason=reason, now=now)


def resume_agreement(*, agreement_id: int, user, reason: str, now: datetime) -> TaxAgreement:
    """suspended -> active. Raises TaxError, TransitionNotAllowed, AccessDenied."""
    return _agreement_action(agreement_id, "resume", "tax.agreement.resumed", user=user, reason=reason, now=now)


def revoke_agreement(*, agreement_id: int, user, reason: str, now: datetime) -> TaxAgreement:
    """Any open state -> revoked, for good (the taxpayer may sign again). Raises TaxError,
    TransitionNotAllowed, AccessDenied."""
    return _agreement_action(agreement_id, "revoke", "tax.agreement.revoked", user=user, reason=reason, now=now)


def handle_agreement_verification(*, message: AgreementVerification, now: datetime) -> AgreementVerificationReply:
    """9114 -> 9115. Verify (vc_sign "0"): TaxOrgCode + ProtocolNo find the agreement; the tax system's
    TaxPayCode, TaxPayName, PayAcct and HandOrgName must match our record; a pending agreement then becomes
    verified, and active at once when TAX_AGREEMENT_ACTIVATE_ON_VERIFY (the default). Delete (vc_sign "1"): the
    agreement is revoked. Both are idempotent: asking again gives the same answer and changes nothing more.
    """
    def reply(result: str, note: str) -> AgreementVerificationReply:
        return AgreementVerificationReply(vc_no=message.vc_no, vc_result=result, add_word=note[:255])

    with transaction.atomic():
        agreement = (TaxAgreement.objects.select_for_update().select_related("wallet")
                     .filter(tax_org_code=message.tax_org_code, protocol_no=message.protocol_no).first())
        if agreement is None:
            return reply("1", "无此协议 (no such agreement)")
        if message.vc_sign == "1":
            if agreement.state != A.REVOKED:
                agreement.revoke()
                agreement.state_reason = "税务机关删除协议 (deleted by the tax authority)"
                agreement.revoked_at = now
                agreement.save()
                _trace(agreement.stream_key, AGREEMENT, agreement.pk, "tax.agreement.revoked", actor="tips", now=now,
                       data={"reason": agreement.state_reason, "vc_no": message.vc_no})
            return reply("0", "协议已撤销 (agreement revoked)")
        if message.vc_sign != "0":
            return reply("1", f"验证标志无效 (unknown VCSign {message.vc_sign!r})")
        problems = _verification_mismatches(agreement, message)
        if agreement.state == A.REVOKED:
            problems.append("协议已撤销 (agreement revoked)")
        result = "1" if problems else "0"
        note = "; ".join(problems) if problems else "验证通过 (verified)"
        agreement.last_verification_result, agreement.last_verification_note = result, note[:255]
        agreement.last_verification_at = now
        changed = []
        if not problems and agreement.state == A.PENDING:
            agreement.verify()
            agreement.verified_at = now
            changed.append("tax.agreement.verified")
            if settings.TAX_AGREEMENT_ACTIVATE_ON_VERIFY:
                agreement.activate()
                agreement.activated_at = now
                changed.append("tax.agreement.activated")
        agreement.save()
        _trace(agreement.stream_key, AGREEMENT, agreement.pk,
               "tax.agreement.verification_passed" if not problems else "tax.agreement.verification_failed",
               actor="tips", now=now, data={"vc_no": message.vc_no, "note": note})
        for kind in changed:
            _trace(agreement.stream_key, AGREEMENT, agreement.pk, kind, actor="tips", now=now)
    return reply(result, note)


def _verification_mismatches(agreement: TaxAgreement, message: AgreementVerification) -> list[str]:
    checks = [
        ("纳税人识别号 (TaxPayCode)", message.tax_pay_code.strip().upper(), agreement.taxpayer_id),
        ("纳税人名称 (TaxPayName)", message.tax_pay_name.strip(), agreement.taxpayer_name),
        ("缴款账户 (PayAcct)", message.pay_acct.strip(), agreement.wallet.wallet_id),
        ("账户名称 (HandOrgName)", message.hand_org_name.strip(), agreement.wallet.holder_name),
    ]
    return [f"{label}不符 (does not match)" for label, theirs, ours in checks if theirs != ours]


# ---------------------------------------------------------------------------------------------
# Deductions: shared pieces
# ---------------------------------------------------------------------------------------------


def _tax_types_json(item: DeductionItem) -> list[dict]:
    return [{"project_id": t.project_id, "tax_type_name": t.tax_type_name,
             "tax_start_date": t.tax_start_date.isoformat(), "tax_end_date": t.tax_end_date.isoformat(),
             "amount_fen": t.amount_fen} for t in item.tax_types]


def _deduction_row(*, kind: str, tax_org_code: str, entrust_date: date, item: DeductionItem, treasury_code: str,
                   now: datetime, package: DeductionPackage | None = None) -> TaxDeduction:
    return TaxDeduction(
        kind=kind, tax_org_code=tax_org_code, entrust_date=entrust_date, tra_no=item.tra_no, package=package,
        pay_acct=item.pay_acct, pay_op_bk_code=item.pay_op_bk_code, hand_org_name=item.hand_org_name,
        tax_pay_name=item.tax_pay_name, protocol_no=item.protocol_no, amount_fen=item.amount_fen,
        tax_vou_no=item.tax_vou_no, tax_types=_tax_types_json(item), budget_type=item.budget_type,
        budget_level_code=item.budget_level_code, remark=item.remark[:140], treasury_code=treasury_code,
        created_at=now,
    )


def result_of(deduction: TaxDeduction) -> DeductionResult:
    """The 2001 answer (or 2102 line) a deduction gives, now and every time it is asked again."""
    return DeductionResult(
        ori_tax_org_code=deduction.tax_org_code, ori_entrust_date=deduction.entrust_date, ori_tra_no=deduction.tra_no,
        tax_vou_no=deduction.tax_vou_no, amount_fen=deduction.amount_fen,
        result=deduction.result_code or ResultCode.TIMEOUT, add_word=deduction.add_word, tax_date=deduction.tax_date,
    )


def treasury_wallet(*, treasury: TreasuryAccount | None = None, treasury_code: str = "") -> Wallet | None:
    """The treasury single account (国库单一账户) wallet to credit: the message's PayeeAcct when it is one,
    else the one of the treasury with that code; the only one there is only when nothing names a treasury.
    None when what is named is not registered here: the money must not go to another treasury."""
    accounts = LedgerAccount.objects.filter(kind=LedgerAccount.Kind.TREASURY_SINGLE, wallet__isnull=False)
    if treasury is not None and treasury.payee_acct:
        found = accounts.filter(wallet__wallet_id=treasury.payee_acct).select_related("wallet").first()
        if found:
            return found.wallet
        treasury_code = treasury_code or treasury.payee_org_code
    named = bool(treasury_code) or (treasury is not None and bool(treasury.payee_acct))
    if treasury_code:
        found = accounts.filter(wallet__holder_org__code=treasury_code).select_related("wallet").first()
        if found:
            return found.wallet
    if named:
        return None
    found = list(accounts.select_related("wallet")[:2])
    return found[0].wallet if len(found) == 1 else None


def _active_agreement(*, tax_org_code: str, pay_acct: str, protocol_no: str) -> TaxAgreement | None:
    return (TaxAgreement.objects.select_related("wallet")
            .filter(tax_org_code=tax_org_code, wallet__wallet_id=pay_acct, protocol_no=protocol_no, state=A.ACTIVE)
            .first())


def _organization_for(tax_org_code: str, treasury: Wallet) -> int:
    """Transfers run on behalf of the tax authority (its staff see them), else of the treasury."""
    authority = _tax_authority(tax_org_code)
    return authority.pk if authority else treasury.holder_org_id


def _result_for_transfer(transfer: Transfer) -> tuple[str, str]:
    """(TIPS result code, note) of a transfer the operator decided: settled, or not paid (failed, cancelled; or
    settled and come back already, returned or reversed, when recovery learnt both at once: nothing is debited)."""
    if transfer.state == TransferState.SETTLED:
        return ResultCode.SUCCESS, RESULT_NOTES[ResultCode.SUCCESS]
    code = REFUSAL_TO_RESULT.get(transfer.failure_code, ResultCode.OTHER_FAILURE)
    note = RESULT_NOTES[code]
    if transfer.failure_message:
        note = f"{note}: {transfer.failure_message}"
    elif transfer.state in (TransferState.RETURNED, TransferState.REVERSED):
        note = f"{note}: 扣款已退回纳税人 (the debit came back): {transfer.state}"
    return code, note[:255]


def _decide(deduction: TaxDeduction, *, code: str, note: str, now: datetime, actor: str = "operator",
            settled_at: datetime | None = None) -> None:
    """Record the outcome of a deduction that was being debited (locked by the caller). A debit is entered on
    the day the operator settled it (`settled_at`), the day the treasury wallet was credited."""
    deduction.result_code, deduction.add_word, deduction.decided_at = code, note[:255], now
    if code == ResultCode.SUCCESS:
        deduction.succeed()
        deduction.tax_date = local_date(settled_at or now)
        _record_entries([deduction], entry_date=deduction.tax_date)
        kind = "tax.deduction.succeeded"
    else:
        deduction.fail()
        kind = "tax.deduction.failed"
    deduction.save()
    _trace(deduction.stream_key, DEDUCTION, deduction.pk, kind, actor=actor, now=now, amount_fen=deduction.amount_fen,
           source_ref=deduction.tra_no, data={"result": code, "note": deduction.add_word})


def split_revenue(*, amount_fen: int, tax_type_name: str, budget_level_code: str) -> tuple[int, int]:
    """(central, local) fen of an amount by the revenue-sharing table; the central share is rounded
    ROUND_HALF_UP and the local share is the rest, so the two always add up."""
    share = settings.TAX_REVENUE_SHARING.get(tax_type_name)
    if share is None:
        return (amount_fen, 0) if budget_level_code == "1" else (0, amount_fen)
    if type(share[0]) is int:  # whole percent, as configured: exact in integers, a third of Decimal's time
        central = (abs(amount_fen) * share[0] * 2 + 100) // 200  # half up (away from zero when negative)
        if amount_fen < 0:
            central = -central
        return central, amount_fen - central
    central = int((Decimal(amount_fen) * Decimal(share[0]) / Decimal(100)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return central, amount_fen - central


def entry_parts(*, tax_types: list, amount_fen: int) -> list[tuple[str, str, int]]:
    """The (project id, tax type name, fen) parts a deduction is entered under: its tax types (TaxTypeList)
    merged by project and name; the whole amount under no type (or the only type's name) when they do not
    add up to it."""
    parts = [(t.get("project_id", ""), t.get("tax_type_name", ""), int(t["amount_fen"])) for t in tax_types]
    if not parts or sum(p[2] for p in parts) != amount_fen:
        parts = [("", parts[0][1] if len(parts) == 1 else "", amount_fen)]
    merged = defaultdict(int)
    for project_id, name, amount in parts:
        merged[(project_id, name)] += amount
    return [(project_id, name, amount) for (project_id, name), amount in merged.items()]


def _record_entries(deductions: list, *, entry_date: date) -> None:
    """Treasury entries of settled deductions, by tax type (the whole amount when no tax types came), in
    one bulk insert in the caller's transaction. `deductions` are TaxDeduction rows or anything with their
    pk, tax_org_code, treasury_code, amount_fen, tax_types, budget_type and budget_level_code."""
    rows = []
    day = bulk.copy_time(entry_date)
    for d in deductions:
        for project_id, name, amount in entry_parts(tax_types=d.tax_types, amount_fen=d.amount_fen):
            central, local = split_revenue(amount_fen=amount, tax_type_name=name, budget_level_code=d.budget_level_code)
            rows.append((d.pk, day, d.treasury_code, d.tax_org_code, project_id, name, d.budget_type,
                         d.budget_level_code, amount, central, local))
    # A unique constraint (deduction, project, tax type) refuses entering a deduction twice.
    with connection.wrap_database_errors:  # COPY's errors as Django's (IntegrityError ...)
        bulk.insert_rows(table=TreasuryEntry._meta.db_table, columns=_ENTRY_COLUMNS, rows=rows)


_ENTRY_COLUMNS = ["deduction_id", "entry_date", "treasury_code", "tax_org_code", "project_id", "tax_type_name",
                  "budget_type", "budget_level_code", "amount_fen", "central_fen", "local_fen"]


# ---------------------------------------------------------------------------------------------
# Real-time deduction (3001 -> 2001) and own payments
# ---------------------------------------------------------------------------------------------


def deduct_real_time(*, message: RealTimeDeduction, now: datetime) -> DeductionResult:
    """3001 -> 2001, answered in the same call, in the order bank front-ends follow: already known?
    answer again -> store -> already reversed (a 1021 of the serial came first)? (24008) -> verified and active
    agreement for TaxOrgCode + PayAcct + ProtocolNo? (else 24009) -> debit the wallet into the treasury -> answer.

    Idempotent on (TaxOrgCode, EntrustDate, TraNo): the same serial again gets the original answer and
    never a second debit; the same serial with a different payer or amount gets 94051.
    An unknown outcome is answered 94999; `resolve_unknown_deductions` later reverses the debit if it
    happened.
    """
    item = message.item
    if type(item.amount_fen) is not int or item.amount_fen <= 0:  # the schema's Amount allows 0.00 and a minus
        return DeductionResult(
            ori_tax_org_code=message.tax_org_code, ori_entrust_date=message.entrust_date, ori_tra_no=item.tra_no,
            tax_vou_no=item.tax_vou_no, amount_fen=item.amount_fen, result=ResultCode.OTHER_FAILURE,
            add_word="扣税金额必须为正 (the amount must be positive)")
    key = dict(tax_org_code=message.tax_org_code, entrust_date=message.entrust_date, tra_no=item.tra_no)
    existing = TaxDeduction.objects.filter(**key).first()
    if existing is not None:
        return _repeat_answer(existing, item)
    try:
        with transaction.atomic():
            deduction = _deduction_row(kind=DeductionKind.REAL_TIME, tax_org_code=message.tax_org_code,
                                       entrust_date=message.entrust_date, item=item,
                                       treasury_code=message.treasury.payee_org_code, now=now)
            deduction.save()
            _trace(deduction.stream_key, DEDUCTION, deduction.pk, "tax.deduction.received", actor="tips", now=now,
                   amount_fen=deduction.amount_fen, source_ref=deduction.tra_no,
                   data={"msg_id": message.head.msg_id, "tax_vou_no": item.tax_vou_no, "pay_acct": item.pay_acct})
    except IntegrityError:
        # The same serial arrived twice at once: the other call stored it and answers it.
        return _repeat_answer(TaxDeduction.objects.get(**key), item)
    agreement = _active_agreement(tax_org_code=message.tax_org_code, pay_acct=item.pay_acct,
                                  protocol_no=item.protocol_no)
    return _debit_now(deduction_id=deduction.pk, agreement=agreement, wallet=agreement.wallet if agreement else None,
                      treasury=treasury_wallet(treasury=message.treasury), now=now)


def _repeat_answer(existing: TaxDeduction, item: DeductionItem) -> DeductionResult:
    # A serial of a batch item (3102) is not a 3001 asked again: its state is not this message's answer.
    if existing.kind != DeductionKind.REAL_TIME or (existing.pay_acct, existing.amount_fen, existing.protocol_no) != (
            item.pay_acct, item.amount_fen, item.protocol_no):
        return DeductionResult(
            ori_tax_org_code=existing.tax_org_code, ori_entrust_date=existing.entrust_date, ori_tra_no=existing.tra_no,
            tax_vou_no=item.tax_vou_no, amount_fen=item.amount_fen, result=ResultCode.DUPLICATE,
            add_word="交易流水号重复且内容不同 (the serial was used for another deduction)")
    return result_of(existing)


def _debit_now(*, deduction_id: int, agreement: TaxAgreement | None, wallet: Wallet | None,
               treasury: Wallet | None, now: datetime) -> DeductionResult:
    """Create the transfer, submit it at once after commit, record the operator's answer."""
    with transaction.atomic():
        deduction = _locked_deduction(deduction_id)
        if deduction.state != D.RECEIVED:
            return result_of(deduction)
        refusal = None
        if deduction.kind == DeductionKind.REAL_TIME and TaxReversal.objects.filter(
                tax_org_code=deduction.tax_org_code, ori_entrust_date=deduction.entrust_date,
                ori_tra_no=deduction.tra_no).exists():
            # Already reversed? The tax system reversed (1021) this serial before its 3001 reached us: not debited.
            refusal = (ResultCode.OTHER_FAILURE, "已收到该交易的冲正，不予扣款 (a reversal of this serial came first: "
                                                 "not debited)")
        elif wallet is None:
            refusal = (ResultCode.NOT_SIGNED, RESULT_NOTES[ResultCode.NOT_SIGNED])
        elif treasury is None:
            refusal = (ResultCode.OTHER_FAILURE, "收款国库账户未登记 (no treasury single account for the payee)")
        elif wallet.status != Wallet.Status.ACTIVE:
            refusal = (ResultCode.ACCOUNT_FROZEN, RESULT_NOTES[ResultCode.ACCOUNT_FROZEN])
        if refusal:
            deduction.refuse()
            deduction.result_code, deduction.add_word, deduction.decided_at = refusal[0], refusal[1], now
            deduction.save()
            _trace(deduction.stream_key, DEDUCTION, deduction.pk, "tax.deduction.refused", actor="system", now=now,
                   amount_fen=deduction.amount_fen, source_ref=deduction.tra_no,
                   data={"result": refusal[0], "note": refusal[1]})
            return result_of(deduction)
        try:
            (transfer_id,) = create_transfers(
                organization_id=_organization_for(deduction.tax_org_code, treasury),
                batch_ref=f"tax-{deduction.kind}-{deduction.tax_org_code}-{deduction.entrust_date:%Y%m%d}",
                transfers=[_new_transfer(deduction, payer=wallet, treasury=treasury)],
                actor="tips" if deduction.kind == DeductionKind.REAL_TIME else "taxpayer", now=now, enqueue=False)
        except InvalidTransfers as exc:
            deduction.refuse()
            deduction.result_code, deduction.add_word = ResultCode.OTHER_FAILURE, str(exc)[:255]
            deduction.decided_at = now
            deduction.save()
            return result_of(deduction)
        deduction.agreement = agreement
        deduction.transfer_id = transfer_id
        deduction.start()
        deduction.save()
        _trace(deduction.stream_key, DEDUCTION, deduction.pk, "tax.deduction.debiting", actor="system", now=now,
               amount_fen=deduction.amount_fen, source_ref=deduction.tra_no,
               data={"transfer": transfer_id, "payer": wallet.wallet_id, "treasury": treasury.wallet_id})
    # After commit, without a lock: the caller is waiting for the answer, so it is sent now, not by a
    # worker (no task was queued). Should the sweeper have claimed it meanwhile, its answer is awaited.
    transfer_services.submit_transfer_chunk(transfer_ids=[transfer_id], now=now)
    transfer = _await_transfer(transfer_id)
    return _record_real_time_outcome(deduction_id=deduction_id, transfer=transfer, now=now)


def _new_transfer(deduction: TaxDeduction, *, payer: Wallet, treasury: Wallet) -> NewTransfer:
    return NewTransfer(
        payer_id=payer.pk, payee_id=treasury.pk, amount_fen=deduction.amount_fen,
        idempotency_key=deduction.idempotency_key, purpose_code=PURPOSE_CODE,
        memo=f"税票 {deduction.tax_vou_no}"[:140], source_type_id=ContentType.objects.get_for_model(TaxDeduction).pk,
        source_id=deduction.pk, source_ref=f"tax {deduction.tax_org_code} {deduction.entrust_date:%Y%m%d} {deduction.tra_no}",
    )


OPEN_TRANSFER_STATES = (TransferState.PENDING, TransferState.SUBMITTED)


def _await_transfer(transfer_id: int) -> Transfer:
    deadline = time.monotonic() + settings.ECNY_OPERATOR_TIMEOUT_SECONDS + 1
    transfer = Transfer.objects.get(pk=transfer_id)
    while transfer.state in OPEN_TRANSFER_STATES and time.monotonic() < deadline:
        time.sleep(0.05)
        transfer = Transfer.objects.get(pk=transfer_id)
    return transfer


def _record_real_time_outcome(*, deduction_id: int, transfer: Transfer, now: datetime) -> DeductionResult:
    with transaction.atomic():
        deduction = _locked_deduction(deduction_id)
        if deduction.state != D.DEDUCTING:
            return result_of(deduction)
        if transfer.state == TransferState.SETTLED or transfer.state in NOT_PAID_STATES:
            code, note = _result_for_transfer(transfer)
            _decide(deduction, code=code, note=note, now=now, settled_at=transfer.settled_at)
        else:
            deduction.mark_unknown()
            deduction.result_code, deduction.add_word = ResultCode.TIMEOUT, RESULT_NOTES[ResultCode.TIMEOUT]
            deduction.save()
            UnresolvedDeduction.objects.create(deduction=deduction, created_at=now)  # for resolve_unknown_deductions
            _trace(deduction.stream_key, DEDUCTION, deduction.pk, "tax.deduction.outcome_unknown", actor="system",
                   now=now, amount_fen=deduction.amount_fen, source_ref=deduction.tra_no,
                   data={"transfer": transfer.pk, "transfer_state": transfer.state})
    return result_of(deduction)


PERSONAL_WALLET_TYPES = (Wallet.Type.PERSONAL, Wallet.Type.PERSONAL_SUB, Wallet.Type.HARDWARE)
UNPAID_DEDUCTION_STATES = (D.FAILED, D.REVERSED)  # nothing debited, or the debit given back


def pay_own_tax(*, wallet_id: str, taxpayer_id: str, taxpayer_name: str, tax_org_code: str, tax_vou_no: str,
                amount_fen: int, tax_types: tuple = (), treasury_code: str = "", budget_type: str = "1",
                budget_level_code: str = "3", now: datetime) -> TaxDeduction:
    """An individual pays a tax voucher from a personal wallet, without an agreement. Debited at once
    like a real-time deduction. Idempotent on (tax authority, voucher number): paying the same voucher
    again with the same wallet, taxpayer and amount returns the payment made or under way. An attempt that
    paid nothing (failed: not enough money, a frozen wallet; or reversed) does not use the voucher up: the
    next one is a new attempt with a serial of its own ("V<voucher>/2", ...), with any wallet.

    The wallet must already be registered here with the taxpayer as its holder (an agreement, a payroll
    or another domain registered it): the operator confirms only the holder's name, so the ID typed at
    the counter is checked against the holder on record and never used to register a wallet.

    Raises:
        TaxError: bad id or amount, the wallet is not the taxpayer's personal wallet (`holder_mismatch`,
            `not_personal`, `wallet_not_found`), its holder is not on record here (`holder_unverified`),
            the voucher was paid with another wallet, taxpayer or amount (`idempotency_conflict`), no
            treasury account (`no_treasury`).
        OperatorUnavailable: the operator could not be asked to check the wallet; nothing recorded.
    """
    if type(amount_fen) is not int or amount_fen <= 0:
        raise TaxError("金额必须为正整数分 (amount must be a positive whole number of fen)", "amount")
    if not VOUCHER_NUMBER.fullmatch(tax_vou_no.strip()):
        raise TaxError("税票号码为1-20位字母或数字 (a tax voucher number is 1 to 20 letters or digits)", "tax_vou_no")
    taxpayer_id, _ = _taxpayer(taxpayer_id, personal=True)
    try:
        wallet_id = identifiers.validate_wallet_id(wallet_id)
    except identifiers.InvalidIdentifier as exc:
        raise TaxError(str(exc), exc.code)
    # The voucher's serial: "V<voucher>", then "V<voucher>/2", ... for each attempt after one that paid nothing.
    serial = f"V{tax_vou_no.strip()}"[:21]
    attempts = TaxDeduction.objects.filter(kind=DeductionKind.OWN, tax_org_code=tax_org_code).filter(
        Q(tra_no=serial) | Q(tra_no__startswith=f"{serial}/"))
    latest = attempts.order_by("-pk").first()
    if latest is not None and latest.state not in UNPAID_DEDUCTION_STATES:  # paid, or being paid
        return _same_payment(latest, wallet_id=wallet_id, taxpayer_id=taxpayer_id, amount_fen=amount_fen)
    tra_no = serial if latest is None else f"{serial}/{attempts.count() + 1}"
    (check,) = verify_wallets(pairs=[(wallet_id, taxpayer_name)])
    if not check.exists:
        raise TaxError("运营机构查无此钱包 (the operator does not know this wallet)", "wallet_not_found")
    if check.wallet_type not in PERSONAL_WALLET_TYPES:
        raise TaxError("只能使用个人钱包缴税 (a personal wallet is needed)", "not_personal")
    if not check.holder_name_matches:
        raise TaxError("姓名与钱包户名不符 (the name is not the wallet holder's)", "holder_mismatch")
    treasury = treasury_wallet(treasury_code=treasury_code)
    if treasury is None:
        raise TaxError("收款国库账户未登记 (no treasury single account)", "no_treasury")
    with transaction.atomic():
        wallet = _wallet_for(wallet_id=wallet_id, taxpayer_id=taxpayer_id, taxpayer_name=taxpayer_name,
                             personal=True, check=check, register=False)
        item = DeductionItem(tra_no=tra_no, pay_op_bk_code=wallet.operator.code, pay_acct=wallet_id,
                             hand_org_name=taxpayer_name, amount_fen=amount_fen, tax_vou_no=tax_vou_no,
                             tax_pay_name=taxpayer_name, protocol_no="", tax_types=tuple(tax_types),
                             budget_type=budget_type, budget_level_code=budget_level_code)
        deduction = _deduction_row(kind=DeductionKind.OWN, tax_org_code=tax_org_code, entrust_date=local_date(now),
                                   item=item, treasury_code=treasury_code or (treasury.holder_org.code or ""), now=now)
        deduction.taxpayer_id = taxpayer_id
        try:
            with transaction.atomic():
                deduction.save()
        except IntegrityError:  # the same voucher paid at the same moment (a second click): that payment stands
            return _same_payment(TaxDeduction.objects.get(tax_org_code=tax_org_code, entrust_date=deduction.entrust_date,
                                                          tra_no=tra_no),
                                 wallet_id=wallet_id, taxpayer_id=taxpayer_id, amount_fen=amount_fen)
        _trace(deduction.stream_key, DEDUCTION, deduction.pk, "tax.deduction.received", actor="taxpayer", now=now,
               amount_fen=amount_fen, source_ref=tra_no, data={"tax_vou_no": tax_vou_no, "pay_acct": wallet_id})
    _debit_now(deduction_id=deduction.pk, agreement=None, wallet=wallet, treasury=treasury, now=now)
    deduction.refresh_from_db()
    return deduction


def _same_payment(existing: TaxDeduction, *, wallet_id: str, taxpayer_id: str, amount_fen: int) -> TaxDeduction:
    """The voucher's payment asked for again: the same one, or a conflict if the details differ."""
    if (existing.pay_acct, existing.taxpayer_id, existing.amount_fen) != (wallet_id, taxpayer_id, amount_fen):
        raise TaxError("该税票已用其他钱包、纳税人或金额缴过 (this tax voucher was already paid with another "
                       "wallet, taxpayer or amount)", "idempotency_conflict")
    return existing


def own_tax_types(*, tax_type_name: str, amount_fen: int, on: date) -> tuple[TaxTypeItem, ...]:
    """The one tax type a voucher paid by an individual names (none when no name was given), for today."""
    if not tax_type_name:
        return ()
    return (TaxTypeItem(project_id="", tax_type_name=tax_type_name, tax_start_date=on, tax_end_date=on,
                        amount_fen=amount_fen),)


def my_wallets(user):
    """The personal wallets registered here under the signed-in individual (none for anyone else)."""
    person = individual_person(user)
    if person is None:
        return Wallet.objects.none()
    return Wallet.objects.filter(holder_person=person, wallet_type__in=PERSONAL_WALLET_TYPES).order_by("wallet_id")


def pay_my_tax(*, user, wallet_id: str, tax_org_code: str, tax_vou_no: str, amount_fen: int,
               tax_type_name: str = "", now: datetime) -> TaxDeduction:
    """The signed-in individual pays a tax voucher from one of their own personal wallets (self-service):
    `pay_own_tax` with the taxpayer taken from the user's person, not typed.

    Only a wallet already registered here under that person can pay (an agreement, a payroll or an
    enrolment registered it): the operator confirms only a holder's name, so a wallet is never bound to a
    person on a name here either.

    Raises:
        TaxError: `individual_required` (no individual's account), `not_your_wallet`,
            `unknown_tax_authority`, and those of `pay_own_tax`.
        OperatorUnavailable: as `pay_own_tax`.
    """
    person = individual_person(user)
    if person is None:
        raise TaxError("需以个人身份登录 (sign in as an individual)", "individual_required")
    wallet_id = (wallet_id or "").strip()
    if not my_wallets(user).filter(wallet_id=wallet_id).exists():
        raise TaxError("只能从本人已登记的个人钱包缴税 (pay from your own personal wallet registered here)",
                       "not_your_wallet")
    if _tax_authority(tax_org_code) is None:
        raise TaxError(f"征收机关 {tax_org_code} 不存在 (no such tax authority)", "unknown_tax_authority")
    return pay_own_tax(wallet_id=wallet_id, taxpayer_id=person.resident_id, taxpayer_name=person.name,
                       tax_org_code=tax_org_code, tax_vou_no=tax_vou_no, amount_fen=amount_fen,
                       tax_types=own_tax_types(tax_type_name=tax_type_name, amount_fen=amount_fen,
                                               on=local_date(now)), now=now)


def resolve_unknown_deductions(*, now: datetime) -> dict[str, int]:
    """Settle what was answered 94999: asks the operator about open transfers first (the transfer
    core's recovery), then a real-time or own deduction whose debit settled is reversed (冲正) and one
    whose debit never happened is failed; a transfer the operator never saw is cancelled so it is not
    sent late. Batch items are decided when their package finishes. Safe to run repeatedly. The deductions
    answered 94999 are listed in UnresolvedDeduction until they are settled here.
    """
    counts = defaultdict(int)
    unknown = list(UnresolvedDeduction.objects.order_by("pk").values_list("pk", "deduction__transfer_id"))
    if not unknown:
        return {}
    transfer_services.recover_unconfirmed_transfers(now=now)
    for deduction_id, transfer_id in unknown:
        transfer = Transfer.objects.get(pk=transfer_id)
        if transfer.state == TransferState.PENDING:
            transfer_services.cancel_pending_transfers(
                transfer_ids=[transfer_id], reason="实时扣税结果未明已答复94999 (answered 94999; not sent late)",
                actor="system", now=now)
            transfer.refresh_from_db()
        if transfer.state == TransferState.SETTLED:
            try:
                transfer = transfer_services.reverse_transfer(
                    transfer_id=transfer_id, reason="实时扣税结果未明，自动冲正 (outcome answered unknown: reversed)",
                    actor="system", now=now)
            except (TransferNotReversible, OperatorUnavailable) as exc:  # try again next round
                logger.warning("reversal of deduction %s failed, will try again: %s", deduction_id, exc)
                counts["reversal_failed"] += 1
                continue
        with transaction.atomic():
            deduction = _locked_deduction(deduction_id)
            if deduction.state != D.UNKNOWN:
                UnresolvedDeduction.objects.filter(pk=deduction_id).delete()
                continue
            if transfer.state == TransferState.REVERSED:
                deduction.reverse()
                deduction.add_word = "结果未明，已自动冲正 (outcome unknown: debited and reversed)"
                kind = "tax.deduction.reversed"
            elif transfer.state in NOT_PAID_STATES:  # failed, cancelled, or debited and come back (returned)
                deduction.fail()
                deduction.add_word = "结果未明，确认未扣款 (outcome unknown: nothing was debited)"
                kind = "tax.deduction.failed"
            else:
                counts["still_unknown"] += 1
                continue
            deduction.decided_at = now
            deduction.save()
            UnresolvedDeduction.objects.filter(pk=deduction_id).delete()
            _trace(deduction.stream_key, DEDUCTION, deduction.pk, kind, actor="system", now=now,
                   amount_fen=deduction.amount_fen, source_ref=deduction.tra_no, data={"transfer": transfer_id})
            counts[deduction.state] += 1
    return dict(counts)


# ---------------------------------------------------------------------------------------------
# Batch deduction (3102 -> 9121, later 2102)
# ---------------------------------------------------------------------------------------------


def receive_batch(*, message: BatchDeduction, now: datetime) -> Acknowledgement:
    """3102 -> 9121 at once. The package and its items are stored in one transaction and deducted by a
    task after commit. A package received before is answered with its original acknowledgement (94051 if
    its counts differ). Refused as a whole (nothing stored) when it carries more than TAX_BATCH_MAX_ITEMS
    items, its counts or totals do not match its items, or a serial repeats. Void (24020, nothing stored) when the
    tax system stopped the whole package (1123) before it came; items it stopped one by one before the package
    came are stored decided 24020, never debited.
    """
    def ack(result: str, note: str) -> Acknowledgement:
        return Acknowledgement(ori_msg_id=message.head.msg_id, result=result, add_word=note[:255])

    key = dict(tax_org_code=message.tax_org_code, entrust_date=message.entrust_date, pack_no=message.pack_no)
    existing = DeductionPackage.objects.filter(**key).first()
    if existing is not None:
        return _repeat_package_ack(existing, message)
    problem = _package_problem(message)
    if problem:
        return ack(PACKAGE_REFUSED, problem)
    treasury = treasury_wallet(treasury=message.treasury)
    try:
        with transaction.atomic():
            lock_package_number(**key)
            stopped = _stopped_before_arrival(message)
            if "" in stopped:
                return ack(ResultCode.ALREADY_STOPPED, "该包已止付 (the package was stopped before it arrived)")
            package = DeductionPackage(
                tax_authority=_tax_authority(message.tax_org_code), msg_id=message.head.msg_id,
                all_num=message.all_num, all_amount_fen=message.all_amount_fen, return_term=message.return_term,
                treasury_code=message.treasury.payee_org_code[:10], treasury_wallet=treasury, received_at=now,
                ack_result=ResultCode.SUCCESS, ack_add_word="已接收 (received)", **key,
            )
            package.mark_received()  # stored with its items in this transaction: nobody sees it receiving
            package.save()
            _insert_items(package, message, now=now)
            _trace(package.stream_key, PACKAGE, package.pk, "tax.package.received", actor="tips", now=now,
                   amount_fen=package.all_amount_fen, source_ref=package.pack_no,
                   data={"msg_id": message.head.msg_id, "items": package.all_num})
            early = [i for i in message.items if i.tra_no in stopped]
            if early:  # items the tax system stopped (1123) before the package came: never debited
                TaxDeduction.objects.filter(package=package, tra_no__in=[i.tra_no for i in early]).update(
                    state=D.FAILED, result_code=ResultCode.ALREADY_STOPPED, add_word=STOP_NOTE, decided_at=now)
                _trace(package.stream_key, PACKAGE, package.pk, "tax.package.stopped", actor="tips", now=now,
                       amount_fen=sum(i.amount_fen for i in early), source_ref=package.pack_no,
                       data={"before_arrival": True, "stopped": len(early), "items": [i.tra_no for i in early][:100]})
            transaction.on_commit(partial(_enqueue_process, package.pk))
    except IntegrityError:
        existing = DeductionPackage.objects.filter(**key).first()
        if existing is not None:
            return _repeat_package_ack(existing, message)
        return ack(ResultCode.DUPLICATE, "包内交易流水号已被使用 (a serial of this package was used before)")
    return ack(package.ack_result, package.ack_add_word)


_ITEM_COLUMNS = ["kind", "tax_org_code", "entrust_date", "tra_no", "package_id", "agreement_id", "pay_acct",
                 "pay_op_bk_code", "hand_org_name", "tax_pay_name", "taxpayer_id", "protocol_no", "amount_fen",
                 "tax_vou_no", "tax_types", "budget_type", "budget_level_code", "remark", "treasury_code", "state",
                 "result_code", "add_word", "created_at"]


def _insert_items(package: DeductionPackage, message: BatchDeduction, *, now: datetime) -> None:
    """A package's items as received deductions, in one bulk insert (COPY on PostgreSQL): the same
    rows `_deduction_row` makes, without a model instance per item."""
    entrust_date = bulk.copy_time(message.entrust_date)
    created_at = bulk.copy_time(now)
    # Read once, not per item (an enum member read is a descriptor call). An item's tax types go to orjson as
    # they are: it writes a dataclass as an object of its fields in order, dates as ISO text, the same JSON
    # as `_tax_types_json` (a test holds them equal) in a quarter of the time (0.7 µs against 2.8, timeit).
    batch, received = DeductionKind.BATCH.value, D.RECEIVED.value
    tax_org_code, package_pk, treasury_code = message.tax_org_code, package.pk, package.treasury_code
    # The agreement each item names (its number and wallet), in whatever state: stored now, so that marking
    # the item deducting changes no indexed column and is made in place (tax 0008). Whether the agreement
    # is active is checked when the item is deducted.
    agreements = _agreements_named(tax_org_code, message.items)
    rows = [(batch, tax_org_code, entrust_date, item.tra_no, package_pk,
             agreements.get((item.pay_acct, item.protocol_no), (None,))[0], item.pay_acct, item.pay_op_bk_code, item.hand_org_name, item.tax_pay_name, "", item.protocol_no, item.amount_fen,
             item.tax_vou_no, orjson.dumps(item.tax_types).decode(), item.budget_type,
             item.budget_level_code, item.remark[:140], treasury_code, received, "", "", created_at)
            for item in message.items]
    # The unique (tax authority, entrust date, serial) constraint refuses a serial used before.
    with connection.wrap_database_errors:  # COPY's errors as Django's (IntegrityError ...)
        bulk.insert_rows(table=TaxDeduction._meta.db_table, columns=_ITEM_COLUMNS, rows=rows)


def _agreements_named(tax_org_code: str, items, *, active_only: bool = False) -> dict[tuple[str, str], tuple]:
    """{(wallet id, agreement number): (agreement id, wallet pk, wallet status)} of the agreements these items
    name (in any state, or only active ones), in one query: the number is unique per tax authority (an index),
    and the wallet must match too (the key)."""
    agreements = TaxAgreement.objects.filter(
        tax_org_code=tax_org_code, protocol_no__in=_text_values({i.protocol_no for i in items}))
    if active_only:
        agreements = agreements.filter(state=A.ACTIVE)
    return {
        (wallet_id, protocol_no): (pk, wallet_pk, status)
        for pk, wallet_pk, wallet_id, protocol_no, status in agreements.order_by().values_list(
            "pk", "wallet_id", "wallet__wallet_id", "protocol_no", "wallet__status")
    }


def _enqueue_process(package_id: int) -> None:
    from .tasks import process_package_task

    process_package_task.apply_async(kwargs={"package_id": package_id})


STOP_NOTE = "已止付，未扣款 (stopped at the tax system's request; not debited)"


def lock_package_number(*, tax_org_code: str, entrust_date: date, pack_no: str) -> None:
    """In the caller's transaction: a package's 3102 and a 1123 naming it are taken one at a time (PostgreSQL
    advisory lock on the package's key), so a stop that comes while its package is being stored waits and then
    finds the package, rather than finding nothing while the package, not seeing the stop, is debited. SQLite
    writes one transaction at a time anyway."""
    if bulk.is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                           [f"tax-package:{tax_org_code}:{entrust_date.isoformat()}:{pack_no}"])


def _stopped_before_arrival(message: BatchDeduction) -> set[str]:
    """What of this package the tax system stopped (1123) before the package came, as bank front-ends keep such a
    stop: "" for the whole package, else the serials of the items stopped. Those stops were answered E0004 and
    name no package; they are few, so one query on a small table."""
    return set(StopPaymentRequest.objects.filter(
        tax_org_code=message.tax_org_code, ori_entrust_date=message.entrust_date, ori_pack_no=message.pack_no,
        package__isnull=True).values_list("ori_tra_no", flat=True))


def _repeat_package_ack(existing: DeductionPackage, message: BatchDeduction) -> Acknowledgement:
    if (existing.all_num, existing.all_amount_fen) != (message.all_num, message.all_amount_fen):
        return Acknowledgement(ori_msg_id=message.head.msg_id, result=ResultCode.DUPLICATE,
                               add_word="包流水号重复且内容不同 (package number used for another package)")
    return Acknowledgement(ori_msg_id=message.head.msg_id, result=existing.ack_result, add_word=existing.ack_add_word)


def _text_values(values):
    """Strings for an `__in` lookup: on PostgreSQL one array parameter (`bulk.array_literal`)."""
    if not bulk.is_postgresql():
        return list(values)
    return RawSQL("SELECT unnest(%s::text[])", [bulk.array_literal(values)])


def _items_problem(message: BatchDeduction | RefundOrderMessage, *, max_items: int) -> str:
    """Why a package (3102) or refund order (1104) is refused as a whole, as the tax system is told: too many
    or no items, counts or totals that do not match its items, a serial repeated in it. "" when none."""
    if len(message.items) > max_items:
        return f"包内笔数超过{max_items} (more than {max_items} items)"
    if not message.items:
        return "包内无明细 (no items)"
    if message.all_num != len(message.items):
        return f"总笔数{message.all_num}与明细{len(message.items)}笔不符 (AllNum does not match the items)"
    if any(type(i.amount_fen) is not int or i.amount_fen <= 0 for i in message.items):
        return "明细金额必须为正 (item amounts must be positive)"
    if message.all_amount_fen != sum(i.amount_fen for i in message.items):
        return "总金额与明细合计不符 (AllAmt does not match the items)"
    tra_nos = [i.tra_no for i in message.items]
    if len(set(tra_nos)) != len(tra_nos):
        return "包内交易流水号重复 (a serial repeats in the package)"
    return ""


def _package_problem(message: BatchDeduction) -> str:
    problem = _items_problem(message, max_items=settings.TAX_BATCH_MAX_ITEMS)
    if not problem and _serials_taken(tax_org_code=message.tax_org_code, entrust_date=message.entrust_date,
                                      tra_nos=[i.tra_no for i in message.items]):
        problem = "包内交易流水号已被使用 (a serial of this package was used before)"
    return problem


def _serials_taken(*, tax_org_code: str, entrust_date: date, tra_nos: list[str]) -> bool:
    """Whether a deduction of this tax authority and entrust date has one of these serials already. On
    PostgreSQL one probe of the (tax authority, entrust date, serial) key per serial: asked as
    `tra_no IN (...)` or `= ANY(...)` the planner walks every deduction of the day instead (at 100,000 a
    day 30 ms a package against 3 ms, and growing with the day)."""
    if not bulk.is_postgresql():
        return TaxDeduction.objects.filter(tax_org_code=tax_org_code, entrust_date=entrust_date,
                                           tra_no__in=tra_nos).exists()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM unnest(%s::text[]) AS s(tra_no), LATERAL (SELECT 1 FROM {TaxDeduction._meta.db_table} d "
            "WHERE d.tax_org_code = %s AND d.entrust_date = %s AND d.tra_no = s.tra_no LIMIT 1) AS taken LIMIT 1",
            [bulk.array_literal(tra_nos), tax_org_code, entrust_date])
        return cursor.fetchone() is not None


def process_package(*, package_id: int, now: datetime) -> dict[str, int]:
    """Deduct a received package's items, TAX_BATCH_CHUNK_SIZE at a time, then finish it if every item is
    decided. Per chunk: one transaction records its transfers (one create_transfers call, claimed by this
    task) and marks its items. With no lock held, the transfers go to the operator from this task, not
    through another task: one batch call (`send_claimed_transfers`) per TRANSFER_CHUNK_SIZE transfers. Items
    refused here (no active agreement) are decided at once with 24009. Returns the items debiting and refused by this run.

    Safe to run again or concurrently: items that already have a transfer or a result are skipped, and each
    transfer is created claimed by one run. Transfers a killed run left unsent are asked of the operator by
    the core's recovery, which puts those it never saw back to pending; the next run (or the core's sweep of
    stranded transfers) claims and sends those.
    """
    counts = defaultdict(int)
    _submit(_pending_transfer_ids(package_id), now=now)  # left pending by a run that was killed
    to_send = []
    treasury = content_type_id = None
    while True:
        with transaction.atomic():
            package = _locked_package(package_id)  # one chunk at a time per package
            events = []
            if package.state == P.RECEIVED:
                package.start_deducting()
                package.save()
                events.append(_event(PACKAGE, package.pk, "tax.package.deducting", actor="system"))
            elif package.state != P.DEDUCTING:
                return {}
            chunk = [_BatchItem(*row) for row in
                     TaxDeduction.objects.select_for_update(of=("self",)).filter(package_id=package_id, state=D.RECEIVED)
                     .order_by("pk").values_list(*_BatchItem._fields)[: settings.TAX_BATCH_CHUNK_SIZE]]
            if not chunk:
                append_events(stream_key=package.stream_key, events=events, now=now)  # none, as a rule
                break
            if content_type_id is None:
                treasury = package.treasury_wallet or treasury_wallet(treasury_code=package.treasury_code)
                content_type_id = ContentType.objects.get_for_model(TaxDeduction).pk
            chunk_counts, transfer_ids, chunk_event = _deduct_chunk(package, chunk, treasury=treasury,
                                                                    content_type_id=content_type_id, now=now)
            append_events(stream_key=package.stream_key, events=events + [chunk_event], now=now)
        for name, count in chunk_counts.items():
            counts[name] += count
        to_send += transfer_ids
        if len(to_send) >= settings.TRANSFER_CHUNK_SIZE:  # full operator batches, not one per chunk
            _submit(to_send, now=now, claimed=True)
            to_send = []
        # That was the last (items only come with the package): fewer than a chunk's worth, or all of them.
        if len(chunk) < settings.TAX_BATCH_CHUNK_SIZE or len(chunk) == package.all_num:
            break
    _submit(to_send, now=now, claimed=True)
    finish_package(package_id=package_id, now=now)
    return dict(counts)


class _BatchItem(NamedTuple):
    """The columns of a package item that deducting it needs (no model instance per item)."""

    pk: int
    tax_org_code: str
    entrust_date: date
    tra_no: str
    pay_acct: str
    protocol_no: str
    amount_fen: int
    tax_vou_no: str
    # The agreement the item named when it was received (`_insert_items`), read with it: one join, not a
    # second query by agreement number.
    agreement_id: int | None
    agreement__state: str | None
    agreement__wallet_id: int | None
    agreement__wallet__status: str | None

    idempotency_key = TaxDeduction.idempotency_key  # the model's own key, computed from the same fields


def _pending_transfer_ids(package_id: int) -> list[int]:
    return list(TaxDeduction.objects.filter(package_id=package_id, state=D.DEDUCTING,
                                            transfer__state=TransferState.PENDING)
                .order_by("transfer_id").values_list("transfer_id", flat=True))


def _submit(transfer_ids: list[int], *, now: datetime, claimed: bool = False) -> None:
    """Send transfers to the operator, one batch call per TRANSFER_CHUNK_SIZE: pending ones claimed first, or
    with `claimed` those this run created claimed (`_deduct_chunk`) as they are. An unknown outcome is the
    transfer core's to resolve (recovery); the items wait for it."""
    send = transfer_services.send_claimed_transfers if claimed else transfer_services.submit_transfer_chunk
    for start in range(0, len(transfer_ids), settings.TRANSFER_CHUNK_SIZE):
        send(transfer_ids=transfer_ids[start:start + settings.TRANSFER_CHUNK_SIZE], now=now)


def _deduct_chunk(package: DeductionPackage, chunk: list[_BatchItem], *, treasury: Wallet | None,
                  content_type_id: int, now: datetime) -> tuple[dict[str, int], list[int], EventSpec]:
    """Refuse the items that cannot be debited and record a transfer for each of the others, in the
    caller's transaction: one create_transfers call, one UPDATE of the items, and an agreement query only for
    items received before their agreement was signed (the others' came with them).
    Returns the counts, the transfer ids to submit and the chunk's trace event (the caller appends it)."""
    # An item received before its agreement was signed names none yet: looked up by number now.
    unnamed = [d for d in chunk if d.agreement_id is None]
    signed_since = _agreements_named(package.tax_org_code, unnamed, active_only=True) if unnamed else {}
    to_debit, refused = [], []
    for d in chunk:
        if d.agreement_id is None:
            agreement = signed_since.get((d.pay_acct, d.protocol_no))
        elif d.agreement__state == A.ACTIVE:
            agreement = (d.agreement_id, d.agreement__wallet_id, d.agreement__wallet__status)
        else:
            agreement = None
        if treasury is None:
            refused.append((d, ResultCode.OTHER_FAILURE, "收款国库账户未登记 (no treasury single account)"))
        elif agreement is None:
            refused.append((d, ResultCode.NOT_SIGNED, RESULT_NOTES[ResultCode.NOT_SIGNED]))
        elif agreement[2] != Wallet.Status.ACTIVE:
            refused.append((d, ResultCode.ACCOUNT_FROZEN, RESULT_NOTES[ResultCode.ACCOUNT_FROZEN]))
        else:
            to_debit.append((d, agreement))
    ids = []
    if to_debit:
        ids = create_transfers(
            organization_id=_organization_for(package.tax_org_code, treasury),
            batch_ref=package.stream_key,
            transfers=[
                NewTransfer(payer_id=a[1], payee_id=treasury.pk, amount_fen=d.amount_fen,
                            idempotency_key=d.idempotency_key, purpose_code=PURPOSE_CODE,
                            memo=f"税票 {d.tax_vou_no}"[:140], source_type_id=content_type_id, source_id=d.pk,
                            source_ref=f"tax package {package.pack_no} {d.tra_no}")
                for d, a in to_debit
            ],
            actor="tips", now=now, claimed=True,  # sent by this task after commit (process_package)
        )
    # The moves of TaxDeduction.start / .refuse, set-based: the items were selected in state received
    # under row locks, the only source of both transitions.
    _start_items(package_id=package.pk,
                 rows=[(d.pk, a[0], transfer_id) for (d, a), transfer_id in zip(to_debit, ids)])
    refusals = defaultdict(list)
    for d, code, note in refused:
        refusals[(code, note[:255])].append(d.pk)
    for (code, note), refused_ids in refusals.items():
        _move_items(package_id=package.pk, ids=refused_ids, state=D.FAILED, result_code=code, add_word=note,
                    decided_at=now)
    event = _event(PACKAGE, package.pk, "tax.package.chunk", actor="system",
                   data={"debiting": len(to_debit), "refused": len(refused),
                         "refused_items": [d.tra_no for d, _, _ in refused][:100]})
    return {"debiting": len(to_debit), "refused": len(refused)}, ids, event


def _start_items(*, package_id: int, rows: list[tuple[int, int, int]]) -> None:
    """Items of one package -> deducting, each with its agreement and transfer: rows are (item id,
    agreement id, transfer id). One statement, like `bulk.update_rows`, but on PostgreSQL:
    - bounded by the package's index too: joined on the primary key alone, a table that grew faster than
      its statistics (a day's packages arriving) is planned as a scan of every row;
    - the id arrays go as '{1,2,...}' text, which costs next to nothing to send, where psycopg quotes a
      list parameter element by element in Python (several microseconds each)."""
    if not rows:
        return
    table = TaxDeduction._meta.db_table
    if not bulk.is_postgresql():
        bulk.update_rows(table=table, columns=[("agreement_id", "bigint"), ("transfer_id", "bigint")], rows=rows,
                         set_sql="state = %s", set_params=[D.DEDUCTING.value])
        return
    ids, agreement_ids, transfer_ids = ("{" + ",".join(map(str, column)) + "}" for column in zip(*rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET state = %s, agreement_id = v.agreement_id, transfer_id = v.transfer_id "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS v(id, agreement_id, transfer_id) "
            f"WHERE {table}.id = v.id AND {table}.package_id = %s",
            [D.DEDUCTING.value, ids, agreement_ids, transfer_ids, package_id],
        )


def _move_items(*, package_id: int, ids: list[int], **values) -> None:
    """Set the same values on these items of one package, in one UPDATE (the ids as one text parameter on
    PostgreSQL, see `_start_items`)."""
    items = TaxDeduction.objects.filter(package_id=package_id)
    if bulk.is_postgresql():
        items = items.filter(pk__in=RawSQL("SELECT unnest(%s::bigint[])", ["{" + ",".join(map(str, ids)) + "}"]))
    else:
        items = items.filter(pk__in=ids)
    items.update(**values)


_DECIDABLE = TaxDeduction.sources_of(TaxDeduction.succeed)  # deducting, unknown: also those of .fail
_TRANSFER_DECIDED = (TransferState.SETTLED, *NOT_PAID_STATES)  # come back (returned, reversed): not debited


class _DecidedItem(NamedTuple):
    """A package item whose transfer is decided: its transfer's outcome and what its treasury entries need."""

    pk: int
    transfer__state: str
    transfer__failure_code: str
    transfer__failure_message: str
    tax_org_code: str
    treasury_code: str
    amount_fen: int
    budget_type: str
    budget_level_code: str
    transfer__settled_at: datetime | None
    tax_types: list  # read as text and decoded with orjson (a fifth of the JSON field's json.loads a line)


def finish_package(*, package_id: int, now: datetime) -> DeductionPackage:
    """Record the outcome of items whose transfers the operator decided; when every item is decided the
    package is done and its 2102 result goes into the outbox (sent after commit). Safe to run often."""
    with transaction.atomic():
        package = _locked_package(package_id)
        if package.state != P.DEDUCTING:
            return package
        # Only the items whose transfer the operator decided are read and locked; those still waiting
        # are left alone (a sweep does not re-lock a whole package every time it runs).
        decided = [_DecidedItem(*row[:-1], orjson.loads(row[-1])) for row in
                   TaxDeduction.objects.select_for_update(of=("self",))
                   .filter(package_id=package_id, state__in=_DECIDABLE, transfer__state__in=_TRANSFER_DECIDED)
                   .annotate(tax_types_text=Cast("tax_types", TextField()))
                   .order_by("pk").values_list(*_DecidedItem._fields[:-1], "tax_types_text")]
        results, moves, succeeded, days = {}, defaultdict(list), defaultdict(list), {}
        for d in decided:
            outcome = (d.transfer__state, d.transfer__failure_code, d.transfer__failure_message)
            if outcome not in results:  # a handful of distinct outcomes per package
                results[outcome] = _result_for_transfer(SimpleNamespace(
                    state=outcome[0], failure_code=outcome[1], failure_message=outcome[2]))
            code, note = results[outcome]
            # A debit is entered on the day the operator settled it (the treasury wallet's credit), which for a
            # run that began before midnight may be the next day.
            # (A chunk's transfers share the moment they settled: its day is worked out once.)
            settled_at = d.transfer__settled_at or now
            if code != ResultCode.SUCCESS:
                tax_date = None
            elif (tax_date := days.get(settled_at)) is None:
                tax_date = days[settled_at] = local_date(settled_at)
            if tax_date is not None:
                succeeded[tax_date].append(d)
            moves[(code, note, tax_date)].append(d.pk)
        # The moves of TaxDeduction.succeed / .fail (from _DECIDABLE, the states the query selected): one
        # UPDATE per distinct outcome and day, as a rule one for the whole package.
        for (code, note, tax_date), ids in moves.items():
            success = code == ResultCode.SUCCESS
            _move_items(package_id=package_id, ids=ids, state=D.SUCCEEDED if success else D.FAILED,
                        result_code=code, add_word=note, decided_at=now, tax_date=tax_date)
        for tax_date, items in succeeded.items():
            _record_entries(items, entry_date=tax_date)
        succeeded = [d for items in succeeded.values() for d in items]
        events = [_event(PACKAGE, package.pk, "tax.package.items_decided", actor="operator",
                         data={"succeeded": len(succeeded), "failed": len(decided) - len(succeeded)})] if decided else []
        totals = TaxDeduction.objects.filter(package_id=package_id).aggregate(
            undecided=Count("pk", filter=~Q(state__in=DECIDED_DEDUCTION_STATES)),
            n=Count("pk", filter=Q(state=D.SUCCEEDED)), fen=Sum("amount_fen", filter=Q(state=D.SUCCEEDED)))
        if totals["undecided"]:
            if events:
                append_events(stream_key=package.stream_key, events=events, now=now)
            return package
        package.succ_num, package.succ_amount_fen = totals["n"], totals["fen"] or 0
        package.finish()
        package.done_at = now
        package.result_pending = True
        package.save()
        events.append(_event(PACKAGE, package.pk, "tax.package.done", actor="system", amount_fen=package.succ_amount_fen,
                             source_ref=package.pack_no, data={"succ_num": package.succ_num, "all_num": package.all_num}))
        append_events(stream_key=package.stream_key, events=events, now=now)
        transaction.on_commit(partial(_enqueue_send_result, package.pk))
    return package


def _enqueue_send_result(package_id: int) -> None:
    from .tasks import send_package_result_task

    send_package_result_task.apply_async(kwargs={"package_id": package_id})


def package_progress(*, package_id: int) -> dict:
    """How far a package is: items per state, and whether its result was acknowledged."""
    package = DeductionPackage.objects.get(pk=package_id)
    by_state = defaultdict(int, TaxDeduction.objects.filter(package_id=package_id).order_by()
                           .values_list("state").annotate(n=Count("pk")))
    return {"state": package.state, "all_num": package.all_num, "items": dict(by_state),
            "decided": sum(by_state[s] for s in DECIDED_DEDUCTION_STATES), "succ_num": package.succ_num,
            "succ_amount_fen": package.succ_amount_fen, "result_acknowledged": package.result_acknowledged}


class _ResultLine(NamedTuple):
    """What result_of reads of a deduction, without a model instance per line of a 2102."""

    tax_org_code: str
    entrust_date: date
    tra_no: str
    tax_vou_no: str
    amount_fen: int
    result_code: str
    add_word: str
    tax_date: date | None


def batch_result(*, package: DeductionPackage, now: datetime) -> BatchResult:
    """The 2102 of a done package; built the same way every time it is sent."""
    items = tuple(result_of(_ResultLine(*row)) for row in TaxDeduction.objects.filter(package=package)
                  .order_by("pk").values_list(*_ResultLine._fields))
    return BatchResult(
        pay_bk_code=settings.TAX_PAY_BANK_CODE, entrust_date=local_date(package.done_at or now), pack_no=package.pack_no, ori_tax_org_code=package.tax_org_code,
        ori_entrust_date=package.entrust_date, ori_pack_no=package.pack_no, all_num=package.all_num,
        all_amount_fen=package.all_amount_fen, succ_num=package.succ_num, succ_amount_fen=package.succ_amount_fen,
        result=ResultCode.SUCCESS, add_word=f"成功{package.succ_num}笔 (succeeded {package.succ_num})", items=items,
    )


def send_package_result(*, package_id: int, now: datetime) -> DeductionPackage:
    """Send a done package's 2102 to the tax system (idempotent there on the original package), and
    again later until it is acknowledged. No lock is held while sending. `result_sent_at` is the last
    attempt (the acknowledged one once `result_acknowledged`)."""
    package = DeductionPackage.objects.get(pk=package_id)
    if package.state != P.DONE or not package.result_pending:
        return package
    result = batch_result(package=package, now=now)
    acknowledged, error, fault_code = send_to_tips(lambda: _tips().send_batch_result(result))
    with transaction.atomic():
        package = _locked_package(package_id)
        if not package.result_pending:
            return package
        package.result_attempts += 1
        package.result_error = error[:255]
        package.result_fault_code = fault_code[:10]
        package.result_sent_at = now
        if acknowledged:
            package.result_pending, package.result_acknowledged = False, True
        package.save()
        _trace(package.stream_key, PACKAGE, package.pk,
               "tax.package.result_acknowledged" if acknowledged else "tax.package.result_not_acknowledged",
               actor="tips", now=now, data={"attempt": package.result_attempts, "error": package.result_error,
                                            "succ_num": package.succ_num})
    return package


def _due_for_resend(last_attempt: datetime | None, attempts: int, *, now: datetime, first_after_seconds: int = 20,
                    at_most_every_seconds: int = 600) -> bool:
    """Whether a result not acknowledged is due again: `first_after_seconds` after its last attempt, then twice
    as long after each attempt that failed, up to `at_most_every_seconds`, so a tax system down for hours is not
    sent everything every time."""
    wait = min(first_after_seconds * 2 ** max(attempts - 1, 0), at_most_every_seconds)
    return last_attempt is None or last_attempt <= now - timedelta(seconds=wait)


def finish_packages(*, now: datetime, resume_after_seconds: int = 60, resend_after_seconds: int = 20,
                    resend_at_most_every_seconds: int = 600) -> dict[str, int]:
    """The periodic sweep: finish deducting packages with items whose transfers were decided (also late, by
    the transfer core's recovery), send results not yet acknowledged (those the tax system refused stay
    for a person; one not tried yet is left to its task for `resend_after_seconds` after the package is
    done), and resume packages received more than `resume_after_seconds` ago whose items are not
    all taken yet (their task never ran, or its worker died); younger ones are left to their own task.
    A result is resent `resend_after_seconds` after its last attempt, then twice as long after each
    attempt that failed, up to `resend_at_most_every_seconds`: a tax system that is down for hours is
    not sent every package every time. One query finds the packages of each kind, so a sweep with
    nothing to do costs next to nothing, however often it runs."""
    counts = defaultdict(int)
    items = TaxDeduction.objects.filter(package_id=OuterRef("pk"))
    stalled = DeductionPackage.objects.filter(
        Q(state=P.RECEIVED) | Q(state=P.DEDUCTING) & Exists(items.filter(state=D.RECEIVED)),
        received_at__lt=now - timedelta(seconds=resume_after_seconds))
    for package_id in stalled.order_by("pk").values_list("pk", flat=True):
        process_package(package_id=package_id, now=now)
        counts["processed"] += 1
    decidable = DeductionPackage.objects.filter(
        Exists(items.filter(state__in=_DECIDABLE, transfer__state__in=_TRANSFER_DECIDED))
        | ~Exists(items.exclude(state__in=DECIDED_DEDUCTION_STATES)), state=P.DEDUCTING)
    for package_id in decidable.order_by("pk").values_list("pk", flat=True):
        if finish_package(package_id=package_id, now=now).state == P.DONE:
            counts["finished"] += 1
    # A result never tried is its task's (queued when the package was done) for as long as a resend waits:
    # sent by both at once, the tax system got it twice.
    pending = DeductionPackage.objects.filter(
        Q(result_sent_at__isnull=True, done_at__lt=now - timedelta(seconds=resend_after_seconds))
        | Q(result_sent_at__lt=now - timedelta(seconds=resend_after_seconds)),
        state=P.DONE, result_pending=True, result_fault_code="")
    for package_id, sent_at, attempts in pending.order_by("pk").values_list("pk", "result_sent_at",
                                                                             "result_attempts"):
        if not _due_for_resend(sent_at, attempts, now=now, first_after_seconds=resend_after_seconds,
                               at_most_every_seconds=resend_at_most_every_seconds):
            continue
        if send_package_result(package_id=package_id, now=now).result_acknowledged:
            counts["results_acknowledged"] += 1
    return dict(counts)


# ---------------------------------------------------------------------------------------------
# Refunds from the treasury (退库, 1104 -> acknowledgement, later the refund result)
#
# Maker-checker: a refund order comes from the tax system, so no person prepared it here. The first
# tax staff member of the authority who checks it against the refund decisions reviews it (the maker,
# `reviewed_by`); a different staff member approves it (the checker, `approved_by`, enforced by
# `ensure_can_approve`), and the approval pays it in the same transaction. Either may reject it with a
# reason before it is paid. Trace stream `tax-refund-<id>`.
# ---------------------------------------------------------------------------------------------

REFUND = "tax.refund"
REFUND_MAX_ITEMS = 1000
REFUND_APPROVER_ROLES = (roles.TAX_STAFF, roles.ADMIN)
REFUND_PURPOSE_CODE = "TAXREFUND"
# Operator refusals of a refund payment; the payee's balance cap is an e-CNY-only project code.
REFUND_REFUSAL_TO_RESULT = {**REFUSAL_TO_RESULT, "BALANCE_CAP_EXCEEDED": ResultCode.BALANCE_CAP}
REFUND_NOTES = {
    **RESULT_NOTES,
    ResultCode.SUCCESS: "退付成功 (refunded)",
    ResultCode.INSUFFICIENT_BALANCE: "国库账户余额不足 (insufficient balance in the treasury account)",
    ResultCode.BALANCE_CAP: "收款钱包余额将超过钱包等级上限 (the payee wallet's balance cap)",
}


def _locked_refund_order(order_id: int) -> RefundOrder:
    return RefundOrder.objects.select_for_update().get(pk=order_id)


def receive_refund_order(*, message: RefundOrderMessage, now: datetime) -> Acknowledgement:
    """1104 -> acknowledgement at once. The order and its items are stored in one transaction, to wait
    for review and approval. Idempotent: an order received before (same tax authority, entrust date and
    package number) is answered with its original acknowledgement (94051 if its counts differ).

    Refused as a whole, nothing stored, when it has no items or more than 1,000, its counts or totals do
    not match its items, a serial repeats, its items name more than one treasury (DrawBackTreCode), no
    treasury single account pays it, or a payee wallet is
    unknown to the operator, not active, or not held by the taxpayer (asked of the operator in one call).
    """
    def ack(result: str, note: str) -> Acknowledgement:
        return Acknowledgement(ori_msg_id=message.head.msg_id, result=result, add_word=note[:255])

    key = dict(tax_org_code=message.tax_org_code, entrust_date=message.entrust_date, pack_no=message.pack_no)
    existing = RefundOrder.objects.filter(**key).first()
    if existing is not None:
        return _repeat_refund_ack(existing, message)
    problem = _items_problem(message, max_items=REFUND_MAX_ITEMS)
    if not problem and len({i.draw_back_tre_code for i in message.items}) > 1:
        # One order is paid from one treasury single account (`treasury_wallet`) and entered under each item's code.
        problem = "包内明细的退库国库不一致 (the items name more than one treasury)"
    if problem:
        return ack(PACKAGE_REFUSED, problem)
    treasury = treasury_wallet(treasury_code=message.items[0].draw_back_tre_code)
    if treasury is None:
        return ack(ResultCode.OTHER_FAILURE, "付款国库账户未登记 (no treasury single account)")
    try:
        checks = _check_payees(message.items)
    except OperatorUnavailable as exc:
        return ack(ResultCode.TIMEOUT, f"运营机构暂不可达，请重发 (operator unreachable, send again): {exc}")
    problems = [(code, f"{i.tra_no}: {note}") for i in message.items
                for code, note in [_payee_problem(i, checks[i.payee_acct, i.payee_name])] if code]
    if problems:
        return ack(problems[0][0], "; ".join(note for _, note in problems))
    try:
        with transaction.atomic():
            wallets = {}
            for i in message.items:
                if i.payee_acct not in wallets:
                    check = checks[i.payee_acct, i.payee_name]
                    taxpayer_id, _ = _taxpayer(i.tax_pay_code, personal=_is_personal(check))
                    wallets[i.payee_acct] = (_wallet_for(wallet_id=i.payee_acct, taxpayer_id=taxpayer_id,
                                                         taxpayer_name=i.tax_pay_name,
                                                         personal=_is_personal(check), check=check), taxpayer_id)
            order = RefundOrder.objects.create(
                tax_authority=_tax_authority(message.tax_org_code), msg_id=message.head.msg_id,
                return_term=message.return_term, all_num=message.all_num, all_amount_fen=message.all_amount_fen,
                treasury_wallet=treasury, received_at=now, ack_result=ResultCode.SUCCESS,
                ack_add_word="已接收，待复核审批 (received; waiting for review and approval)", **key)
            Refund.objects.bulk_create([
                Refund(order=order, tra_no=i.tra_no, draw_back_tre_code=i.draw_back_tre_code[:10],
                       payee_bank_no=i.payee_bank_no, payee_op_bk_code=i.payee_op_bk_code,
                       payee_wallet=wallets[i.payee_acct][0], payee_acct=i.payee_acct, payee_name=i.payee_name,
                       taxpayer_id=wallets[i.payee_acct][1], tax_pay_name=i.tax_pay_name,
                       draw_back_vou_no=i.draw_back_vou_no, ori_tax_vou_no=i.ori_tax_vou_no, amount_fen=i.amount_fen,
                       bill_date=i.bill_date, budget_type=i.budget_type, budget_subject_code=i.budget_subject_code,
                       budget_level_code=i.budget_level_code, trim_sign=i.trim_sign,
                       draw_back_reason_code=i.draw_back_reason_code, created_at=now, **key)
                for i in message.items], batch_size=1000)
            _trace(order.stream_key, REFUND, order.pk, "tax.refund.received", actor="tips", now=now,
                   amount_fen=order.all_amount_fen, source_ref=order.pack_no,
                   data={"msg_id": message.head.msg_id, "items": order.all_num})
    except TaxError as exc:
        return ack(ResultCode.OTHER_FAILURE, str(exc))
    except IntegrityError:
        existing = RefundOrder.objects.filter(**key).first()
        if existing is not None:
            return _repeat_refund_ack(existing, message)
        raise
    return ack(order.ack_result, order.ack_add_word)


def _is_personal(check) -> bool:
    return check.wallet_type in (Wallet.Type.PERSONAL, Wallet.Type.PERSONAL_SUB, Wallet.Type.HARDWARE)


def _repeat_refund_ack(existing: RefundOrder, message: RefundOrderMessage) -> Acknowledgement:
    if (existing.all_num, existing.all_amount_fen) != (message.all_num, message.all_amount_fen):
        return Acknowledgement(ori_msg_id=message.head.msg_id, result=ResultCode.DUPLICATE,
                               add_word="包流水号重复且内容不同 (package number used for another refund order)")
    return Acknowledgement(ori_msg_id=message.head.msg_id, result=existing.ack_result, add_word=existing.ack_add_word)


def _check_payees(items: tuple[RefundItem, ...]) -> dict:
    """{(wallet id, holder name): WalletCheck}, one operator call per 1,000 distinct pairs."""
    pairs = list(dict.fromkeys((i.payee_acct, i.payee_name) for i in items))
    return dict(zip(pairs, verify_wallets(pairs=pairs)))


def _payee_problem(item: RefundItem, check) -> tuple[str, str]:
    if not check.exists:
        return ResultCode.ACCOUNT_NOT_FOUND, "运营机构查无此钱包 (the operator does not know the payee wallet)"
    if not check.active:
        return ResultCode.ACCOUNT_FROZEN, "收款钱包已冻结或注销 (the payee wallet is frozen or closed)"
    if not check.holder_name_matches or item.payee_name.strip() != item.tax_pay_name.strip():
        return ResultCode.OTHER_FAILURE, "收款钱包持有人不是纳税人 (the payee wallet is not held by the taxpayer)"
    return "", ""


def review_refund_order(*, order_id: int, user, now: datetime) -> RefundOrder:
    """received -> reviewed: the maker's step; the reviewer cannot approve the same order.

    Raises:
        AccessDenied: not staff of the order's tax authority.
        TransitionNotAllowed: the order is not waiting for review.
    """
    with transaction.atomic():
        order = _locked_refund_order(order_id)
        ensure_tax_staff(user, tax_org_code=order.tax_org_code)
        order.review()
        order.reviewed_by, order.reviewed_at = user, now
        order.save()
        _trace(order.stream_key, REFUND, order.pk, "tax.refund.reviewed", actor=_actor(user), now=now,
               amount_fen=order.all_amount_fen, source_ref=order.pack_no)
    return order


def approve_refund_order(*, order_id: int, user, now: datetime) -> RefundOrder:
    """reviewed -> paying, and in the same transaction one `create_transfers` call from the treasury
    single account to each payee wallet (submitted after commit). Items whose payee wallet is no longer
    active here are refused at once (24004). The order finishes once the operator decided every item.

    Raises:
        AccessDenied: not staff of the order's tax authority, or no approving role.
        MakerCheckerViolation: the approver reviewed the order.
        TransitionNotAllowed: the order is not reviewed.
        TaxError: the transfer core refused the payments (`transfer_refused`); nothing changed.
    """
    with transaction.atomic():
        order = _locked_refund_order(order_id)
        ensure_tax_staff(user, tax_org_code=order.tax_org_code)
        ensure_can_approve(approver=user, prepared_by_id=order.reviewed_by_id, approver_roles=REFUND_APPROVER_ROLES)
        order.approve()
        order.approved_by, order.approved_at = user, now
        order.save()
        _trace(order.stream_key, REFUND, order.pk, "tax.refund.approved", actor=_actor(user), now=now,
               amount_fen=order.all_amount_fen, source_ref=order.pack_no, data={"reviewed_by": order.reviewed_by_id})
        _pay_refunds(order, actor=_actor(user), now=now)
        transaction.on_commit(partial(finish_refund_order, order_id=order.pk, now=now))
    return order


def _pay_refunds(order: RefundOrder, *, actor: str, now: datetime) -> None:
    refunds = list(Refund.objects.select_for_update(of=("self",)).select_related("payee_wallet")
                   .filter(order=order, state=RS.RECEIVED).order_by("pk"))
    treasury = order.treasury_wallet
    to_pay = [r for r in refunds if r.payee_wallet.status == Wallet.Status.ACTIVE]
    refused = [r for r in refunds if r.payee_wallet.status != Wallet.Status.ACTIVE]
    for r in refused:
        r.refuse()
        r.result_code, r.add_word, r.decided_at = ResultCode.ACCOUNT_FROZEN, REFUND_NOTES[ResultCode.ACCOUNT_FROZEN], now
    content_type_id = ContentType.objects.get_for_model(Refund).pk
    try:
        ids = create_transfers(
            organization_id=_organization_for(order.tax_org_code, treasury), batch_ref=order.stream_key,
            transfers=[NewTransfer(payer_id=treasury.pk, payee_id=r.payee_wallet_id, amount_fen=r.amount_fen,
                                   idempotency_key=r.idempotency_key, purpose_code=REFUND_PURPOSE_CODE,
                                   memo=f"退库 {r.draw_back_vou_no}"[:140], source_type_id=content_type_id,
                                   source_id=r.pk, source_ref=f"tax refund {order.pack_no} {r.tra_no}")
                       for r in to_pay],
            actor=actor, now=now)
    except InvalidTransfers as exc:
        raise TaxError(f"转账被拒绝 (the transfer core refused the refunds): {exc}", "transfer_refused")
    for r, transfer_id in zip(to_pay, ids):
        r.start()
        r.transfer_id = transfer_id
    Refund.objects.bulk_update(refunds, ["state", "result_code", "add_word", "decided_at", "transfer"])
    _trace(order.stream_key, REFUND, order.pk, "tax.refund.paying", actor=actor, now=now,
           amount_fen=sum(r.amount_fen for r in to_pay),
           data={"paying": len(to_pay), "refused": len(refused), "refused_items": [r.tra_no for r in refused][:100]})


def reject_refund_order(*, order_id: int, user, reason: str, now: datetime) -> RefundOrder:
    """received or reviewed -> rejected with a reason; nothing is paid, every item is answered 24008 with
    the reason, and the result goes into the outbox (sent after commit).

    Raises:
        TaxError: no reason (`reason_required`).
        AccessDenied: not staff of the order's tax authority.
        TransitionNotAllowed: the order is already being paid, done or rejected.
    """
    reason = reason.strip()
    if not reason:
        raise TaxError("请填写原因 (a reason is required)", "reason_required")
    with transaction.atomic():
        order = _locked_refund_order(order_id)
        ensure_tax_staff(user, tax_org_code=order.tax_org_code)
        order.reject()
        order.rejected_by, order.reject_reason = user, reason[:255]
        order.done_at, order.result_pending = now, True
        order.save()
        refunds = list(Refund.objects.select_for_update(of=("self",)).filter(order=order).order_by("pk"))
        for r in refunds:
            r.reject()
            r.result_code, r.add_word, r.decided_at = ResultCode.OTHER_FAILURE, f"退库被拒绝 (rejected): {reason}"[:255], now
        Refund.objects.bulk_update(refunds, ["state", "result_code", "add_word", "decided_at"])
        _trace(order.stream_key, REFUND, order.pk, "tax.refund.rejected", actor=_actor(user), now=now,
               amount_fen=order.all_amount_fen, source_ref=order.pack_no, data={"reason": order.reject_reason})
        transaction.on_commit(partial(send_refund_result, order_id=order.pk, now=now))
    return order


def finish_refund_order(*, order_id: int, now: datetime) -> RefundOrder:
    """Record the outcome of items whose transfers the operator decided; when every item is decided the
    order is done and its result goes into the outbox (sent after commit). Safe to run often."""
    with transaction.atomic():
        order = _locked_refund_order(order_id)
        if order.state != RO.PAYING:
            return order
        waiting = list(Refund.objects.select_for_update(of=("self",)).select_related("transfer")
                       .filter(order=order, state=RS.PAYING).order_by("pk"))
        decided, settled = [], []
        for r in waiting:
            t = r.transfer
            if t.state != TransferState.SETTLED and t.state not in NOT_PAID_STATES:
                continue
            if t.state == TransferState.SETTLED:
                code, note = ResultCode.SUCCESS, REFUND_NOTES[ResultCode.SUCCESS]
                r.succeed()
                settled.append((r, local_date(t.settled_at or now)))
            else:
                # Failed or cancelled; or paid and come back already (returned, reversed: its answer was lost, and
                # recovery learnt both at once): the taxpayer does not hold it, so it is not paid.
                code = REFUND_REFUSAL_TO_RESULT.get(t.failure_code, ResultCode.OTHER_FAILURE)
                why = t.failure_message or (f"退付款已退回国库 (the refund came back): {t.get_state_display()}"
                                            if t.state in (TransferState.RETURNED, TransferState.REVERSED) else "")
                note = f"{REFUND_NOTES[code]}: {why}" if why else REFUND_NOTES[code]
                r.fail()
            r.result_code, r.add_word, r.decided_at = code, note[:255], now
            decided.append(r)
        Refund.objects.bulk_update(decided, ["state", "result_code", "add_word", "decided_at"])
        _record_refund_entries(settled, order=order)
        if decided:
            _trace(order.stream_key, REFUND, order.pk, "tax.refund.items_decided", actor="operator", now=now,
                   data={"paid": sum(r.state == RS.PAID for r in decided),
                         "failed": sum(r.state == RS.FAILED for r in decided)})
        if Refund.objects.filter(order=order).exclude(state__in=DECIDED_REFUND_STATES).exists():
            return order
        paid = list(Refund.objects.filter(order=order, state=RS.PAID).values_list("amount_fen", flat=True))
        order.succ_num, order.succ_amount_fen = len(paid), sum(paid)
        order.finish()
        order.done_at, order.result_pending = now, True
        order.save()
        _trace(order.stream_key, REFUND, order.pk, "tax.refund.done", actor="system", now=now,
               amount_fen=order.succ_amount_fen, source_ref=order.pack_no,
               data={"succ_num": order.succ_num, "all_num": order.all_num})
        transaction.on_commit(partial(send_refund_result, order_id=order.pk, now=now))
    return order


def _record_refund_entries(settled: list[tuple[Refund, date]], *, order: RefundOrder) -> None:
    """Each paid refund's negative treasury entry, dated the day its transfer settled, in one insert in the
    caller's transaction (a unique constraint refuses entering a refund twice). The 1104 names no tax type:
    the refunded voucher's, when its deduction was entered under one, decides the central and local shares
    as it did for the deduction; otherwise the budget level does (`split_revenue`)."""
    if not settled:
        return
    types = defaultdict(set)
    vouchers = {r.ori_tax_vou_no for r, _ in settled if r.ori_tax_vou_no}
    for vou_no, project_id, name in _tax_types_of_vouchers(tax_org_code=order.tax_org_code, vouchers=vouchers):
        types[vou_no].add((project_id, name))
    treasury_code = order.treasury_wallet.holder_org.code or ""
    entries = []
    for r, entry_date in settled:
        found = types.get(r.ori_tax_vou_no, ())
        project_id, name = next(iter(found)) if len(found) == 1 else (r.budget_subject_code[:20], "")
        central, local = split_revenue(amount_fen=r.amount_fen, tax_type_name=name, budget_level_code=r.budget_level_code)
        entries.append(TreasuryEntry(
            refund=r, entry_date=entry_date, tax_org_code=r.tax_org_code,
            treasury_code=r.draw_back_tre_code or treasury_code, project_id=project_id, tax_type_name=name,
            budget_type=r.budget_type, budget_level_code=r.budget_level_code, amount_fen=-r.amount_fen,
            central_fen=-central, local_fen=-local))
    TreasuryEntry.objects.bulk_create(entries, batch_size=1000)


def _tax_types_of_vouchers(*, tax_org_code: str, vouchers: set[str]):
    """(voucher, project id, tax type name) of the entries of the authority's deductions under these vouchers:
    the deductions found through their voucher index (tax 0013), then their entries through theirs."""
    return (TaxDeduction.objects.filter(tax_org_code=tax_org_code, tax_vou_no__in=vouchers)
            # The index's condition, said again: PostgreSQL proves it from a list of at most 100 vouchers only,
            # and an order has up to 1,000 items.
            .exclude(tax_vou_no="")
            .filter(entries__reverses=False)
            .order_by()  # the deductions' default order would add created_at to the DISTINCT
            .values_list("tax_vou_no", "entries__project_id", "entries__tax_type_name").distinct())


def refund_result(*, order: RefundOrder) -> RefundResult:
    """The refund result of a done or rejected order; built the same way every time it is sent."""
    items = tuple(RefundItemResult(ori_tra_no=r.tra_no, draw_back_vou_no=r.draw_back_vou_no, amount_fen=r.amount_fen,
                                   result=r.result_code or ResultCode.OTHER_FAILURE, add_word=r.add_word)
                  for r in Refund.objects.filter(order=order).order_by("pk"))
    if order.state == RO.REJECTED:
        result, note = ResultCode.OTHER_FAILURE, f"退库被拒绝 (rejected): {order.reject_reason}"
    else:
        result, note = ResultCode.SUCCESS, f"成功{order.succ_num}笔 (refunded {order.succ_num})"
    return RefundResult(ori_tax_org_code=order.tax_org_code, ori_entrust_date=order.entrust_date,
                        ori_pack_no=order.pack_no, all_num=order.all_num, all_amount_fen=order.all_amount_fen,
                        succ_num=order.succ_num, succ_amount_fen=order.succ_amount_fen, result=result,
                        add_word=note[:255], items=items)


def send_refund_result(*, order_id: int, now: datetime) -> RefundOrder:
    """Send a done or rejected order's result, and again later until it is acknowledged; an unreachable
    tax system leaves it pending; a refusal (fault) stays pending with the reason, for the sweep and a
    person. No lock is held while sending (the 2104 goes through the TIPS client's `send_refund_result`)."""
    order = RefundOrder.objects.get(pk=order_id)
    if not order.result_pending:
        return order
    result = refund_result(order=order)
    acknowledged, error, fault_code = send_to_tips(lambda: _tips().send_refund_result(result))
    with transaction.atomic():
        order = _locked_refund_order(order_id)
        if not order.result_pending:
            return order
        order.result_attempts += 1
        order.result_error = error[:255]
        order.result_fault_code = fault_code[:10]
        order.result_tried_at = now
        if acknowledged:
            order.result_pending, order.result_acknowledged, order.result_sent_at = False, True, now
        order.save()
        _trace(order.stream_key, REFUND, order.pk,
               "tax.refund.result_acknowledged" if acknowledged else "tax.refund.result_pending",
               actor="tips", now=now, data={"attempt": order.result_attempts, "error": order.result_error})
    return order


def finish_refund_orders(*, now: datetime) -> dict[str, int]:
    """The periodic sweep: finish paying orders whose items are decided, resend results not yet
    acknowledged."""
    counts = defaultdict(int)
    for order_id in RefundOrder.objects.filter(state=RO.PAYING).values_list("pk", flat=True):
        if finish_refund_order(order_id=order_id, now=now).state == RO.DONE:
            counts["finished"] += 1
    # As for packages' 2102: a refused result waits for a person, the others are resent with a growing wait.
    pending = RefundOrder.objects.filter(result_pending=True, result_fault_code="")
    for order_id, tried_at, attempts in pending.order_by("pk").values_list("pk", "result_tried_at", "result_attempts"):
        if not _due_for_resend(tried_at, attempts, now=now):
            continue
        if send_refund_result(order_id=order_id, now=now).result_acknowledged:
            counts["results_acknowledged"] += 1
    return dict(counts)
