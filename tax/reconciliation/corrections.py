"""Corrections of discrepancy cases: money moved by a proper transfer, never by editing records.

One tax staff member of the case's authority proposes a correction (the maker): `refund` returns an
over-debit from the treasury single account to the taxpayer's wallet, `collect` debits a shortfall from the
taxpayer's wallet to the treasury under the taxpayer's active agreement. A different staff member approves it
(the checker, `ensure_can_approve`); the approval creates the transfer through `create_transfers` in the same
transaction (submitted by the transfer core after commit; idempotency key `taxcorr:<correction id>`), links it
to the case (`correcting_transfer`) and writes the case's history and trace stream `tax-recon-case-<id>`.
The case is resolved separately, with a reason, once the transfer settled; re-running the day then shows
the sources agreeing or not, and sends a changed 2111.
"""
from __future__ import annotations

import datetime as dt

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction

from tax import services as tax_services
from tax.models import AgreementState, TaxDeduction
from treasury.access import roles
from treasury.access.makerchecker import ensure_can_approve
from treasury.errors import InvalidTransfers
from treasury.models import Wallet
from treasury.services.transfers import NewTransfer, create_transfers

from .models import CaseCorrection, CaseState, CorrectionKind, CorrectionState, DiscrepancyCase
from .services import ReconciliationError, _actor

APPROVER_ROLES = (roles.TAX_STAFF, roles.ADMIN)
CORRECTION = "tax.reconciliation.correction"


def _trace(correction: CaseCorrection, kind: str, *, user, now: dt.datetime, data: dict | None = None) -> None:
    tax_services._trace(correction.stream_key, CORRECTION, correction.pk, kind, actor=_actor(user), now=now,
                        amount_fen=correction.amount_fen, source_ref=f"case {correction.case_id}",
                        data={"kind": correction.kind, **(data or {})})


def _note(case: DiscrepancyCase, *, user, now: dt.datetime, note: str) -> None:
    case.history = [*case.history, {"at": now.isoformat(), "by": _actor(user), "to": case.state, "note": note}]


def propose_correction(*, case_id: int, user, kind: str, amount_fen: int, reason: str,
                       now: dt.datetime) -> CaseCorrection:
    """The maker's step: record a correcting transfer to be approved by someone else. Nothing moves yet.

    Raises:
        AccessDenied: not staff of the case's tax authority.
        ReconciliationError: no reason (`reason_required`), amount not a positive integer (`invalid_amount`),
            unknown kind (`invalid_kind`), case resolved (`invalid_state`), no deduction behind the case
            (`no_deduction`), no treasury account (`no_treasury`), no active agreement for a collection
            (`not_signed`), another correction waiting (`correction_pending`).
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReconciliationError("请填写原因 (a reason is required)", code="reason_required")
    if type(amount_fen) is not int or amount_fen <= 0:
        raise ReconciliationError("金额必须为正整数（分） (the amount must be a positive number of fen)",
                                  code="invalid_amount")
    if kind not in CorrectionKind.values:
        raise ReconciliationError(f"未知的更正方式 (unknown kind) {kind!r}", code="invalid_kind")
    try:
        with transaction.atomic():
            case = DiscrepancyCase.objects.select_for_update().get(pk=case_id)
            tax_services.ensure_tax_staff(user, tax_org_code=case.tax_org_code)
            if case.state == CaseState.RESOLVED:
                raise ReconciliationError("差异已解决 (the case is resolved)", code="invalid_state")
            deduction, payer, payee = _parties(case, kind)
            correction = CaseCorrection.objects.create(
                case=case, kind=kind, amount_fen=amount_fen, reason=reason[:255], deduction=deduction, payer=payer,
                payee=payee, proposed_by=user, proposed_at=now)
            _note(case, user=user, now=now, note=f"提出更正 (correction proposed): {correction.get_kind_display()} "
                                                 f"{amount_fen} fen: {reason}"[:500])
            case.save(update_fields=["history"])
            _trace(correction, "tax.reconciliation.correction.proposed", user=user, now=now,
                   data={"reason": reason[:255], "payer": payer.wallet_id, "payee": payee.wallet_id})
    except IntegrityError:
        raise ReconciliationError("已有待审批的更正 (a correction of this case waits for approval)",
                                  code="correction_pending") from None
    return correction


def _parties(case: DiscrepancyCase, kind: str) -> tuple[TaxDeduction, Wallet, Wallet]:
    deduction = (TaxDeduction.objects.select_related("agreement__wallet")
                 .filter(tax_org_code=case.tax_org_code, entrust_date=case.entrust_date, tra_no=case.tra_no).first())
    if deduction is None:
        raise ReconciliationError("本方无此扣税记录，无法转账更正 (no deduction of ours: nothing to correct by a "
                                  "transfer)", code="no_deduction")
    treasury = tax_services.treasury_wallet(treasury_code=deduction.treasury_code)
    if treasury is None:
        raise ReconciliationError("国库账户未登记 (no treasury single account)", code="no_treasury")
    agreement = deduction.agreement
    if kind == CorrectionKind.COLLECT:
        if agreement is None or agreement.state != AgreementState.ACTIVE:
            raise ReconciliationError("补收需有效三方协议 (collecting needs an active agreement)", code="not_signed")
        return deduction, agreement.wallet, treasury
    taxpayer = agreement.wallet if agreement else Wallet.objects.filter(wallet_id=deduction.pay_acct).first()
    if taxpayer is None:
        raise ReconciliationError("纳税人钱包未登记 (the taxpayer's wallet is not registered)", code="no_wallet")
    return deduction, treasury, taxpayer


def approve_correction(*, correction_id: int, user, now: dt.datetime) -> CaseCorrection:
    """The checker's step: approve and, in the same transaction, create the transfer (submitted after commit)
    and link it to the case.

    Raises:
        AccessDenied: not staff of the case's tax authority, or no approving role.
        MakerCheckerViolation: the approver proposed it.
        TransitionNotAllowed: not waiting for approval.
        ReconciliationError: the case is no longer open or investigating (`invalid_state`), the transfer core
            refused the transfer (`transfer_refused`); nothing changed.
    """
    with transaction.atomic():
        correction = CaseCorrection.objects.select_for_update().get(pk=correction_id)
        case = DiscrepancyCase.objects.select_for_update().get(pk=correction.case_id)
        tax_services.ensure_tax_staff(user, tax_org_code=case.tax_org_code)
        ensure_can_approve(approver=user, prepared_by_id=correction.proposed_by_id, approver_roles=APPROVER_ROLES)
        # A case resolved since the proposal was settled without this money: moving it now would undo that.
        if case.state not in (CaseState.OPEN, CaseState.INVESTIGATING):
            raise ReconciliationError("差异已解决，不能再批准更正 (the case is resolved: the correction cannot be "
                                      "approved)", code="invalid_state")
        correction.approve()
        treasury = correction.payer if correction.kind == CorrectionKind.REFUND else correction.payee
        refund = correction.kind == CorrectionKind.REFUND
        try:
            (transfer_id,) = create_transfers(
                organization_id=tax_services._organization_for(case.tax_org_code, treasury),
                batch_ref=correction.stream_key,
                transfers=[NewTransfer(
                    payer_id=correction.payer_id, payee_id=correction.payee_id, amount_fen=correction.amount_fen,
                    idempotency_key=f"taxcorr:{correction.pk}",
                    purpose_code=tax_services.REFUND_PURPOSE_CODE if refund else tax_services.PURPOSE_CODE,
                    memo=f"对账更正 {case.tra_no} ({'退还' if refund else '补收'})"[:140],
                    source_type_id=ContentType.objects.get_for_model(CaseCorrection).pk, source_id=correction.pk,
                    source_ref=f"reconciliation case {case.pk} {case.tra_no}")],
                actor=_actor(user), now=now)
        except InvalidTransfers as exc:
            raise ReconciliationError(f"转账被拒绝 (the transfer core refused it): {exc}", code="transfer_refused")
        correction.transfer_id = transfer_id
        correction.decided_by, correction.decided_at = user, now
        correction.save()
        case.correcting_transfer_id = transfer_id
        _note(case, user=user, now=now, note=f"批准更正，转账 {transfer_id} (correction approved; transfer {transfer_id})")
        case.save(update_fields=["correcting_transfer", "history"])
        _trace(correction, "tax.reconciliation.correction.approved", user=user, now=now,
               data={"transfer": transfer_id, "proposed_by": correction.proposed_by_id})
    return correction


def reject_correction(*, correction_id: int, user, reason: str, now: dt.datetime) -> CaseCorrection:
    """Reject a proposed correction with a reason; nothing moves.

    Raises:
        ReconciliationError: no reason (`reason_required`).
        AccessDenied: not staff of the case's tax authority.
        TransitionNotAllowed: not waiting for approval.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReconciliationError("请填写原因 (a reason is required)", code="reason_required")
    with transaction.atomic():
        correction = CaseCorrection.objects.select_for_update().get(pk=correction_id)
        case = DiscrepancyCase.objects.select_for_update().get(pk=correction.case_id)
        tax_services.ensure_tax_staff(user, tax_org_code=case.tax_org_code)
        correction.reject()
        correction.decided_by, correction.decided_at, correction.reject_reason = user, now, reason[:255]
        correction.save()
        _note(case, user=user, now=now, note=f"拒绝更正 (correction rejected): {reason}"[:500])
        case.save(update_fields=["history"])
        _trace(correction, "tax.reconciliation.correction.rejected", user=user, now=now, data={"reason": reason[:255]})
    return correction


def correction_actions(correction: CaseCorrection, user) -> list[str]:
    """What `user` may do with a correction now (for the page and the API)."""
    if correction.state != CorrectionState.PROPOSED:
        return []
    if user.pk == correction.proposed_by_id:
        return ["reject"]
    return ["approve", "reject"]
