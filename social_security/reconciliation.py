"""Reconciliation (对账) of a day's premium payments, both halves: employers' declarations and
flexible-employment payments. Three sources keyed on the payment's request id (the transfer's idempotency key:
`social:<declaration id>:<attempt>` or `socialflex:payment:<payment id>`):

    ours       declarations paid (or already reconciled) and flexible payments paid whose transfer settled on
               the check date
    operator   the operator's statement of every region's fund wallet for that day (credits, reversals)
    authority  the collecting authority's acknowledgement of the payment notice (5103 for a declaration,
               5104 for a flexible payment)

Outcomes, in the order they are decided (as the tax engine's table in tax/README.md, for these sources):

| outcome | meaning |
| --- | --- |
| duplicate_operator | the operator booked the key more than once |
| missing_ours | the operator credited a social-insurance key we hold no paid declaration or payment for |
| missing_operator | we recorded a payment the operator's statement does not show |
| amount_mismatch | the operator's net amount, our transfer and what was confirmed (declaration) or due (payment) differ |
| not_acknowledged | the authority has not acknowledged the payment notice yet (sent again by the sweep) |
| matched | all agree: a declaration moves paid -> reconciled, a flexible payment gets `reconciled_at` |

Every payment of the day gets a `ReconciliationResult` (a day holds one per paying employer and individual:
thousands, not the tax engine's millions, so they are grouped here in memory rather than in one SQL
statement over the tax tables). Every outcome but matched opens a `SocialDiscrepancyCase` (one per request id
and kind; found again on a re-run it is the same case), worked like the tax engine's cases: open ->
investigating -> resolved with a reason, by staff of the case's tax authority, money moved only by a correcting
transfer proposed by one staff member and approved by another.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.utils import timezone

from social_security.flexible.models import Payment, PaymentState
from social_security.models import (
    CorrectionKind, Declaration, FundAccount, ReconciliationOutcome, ReconciliationResult, ReconciliationRun,
    ReconciliationSource, SocialCaseCorrection, SocialDiscrepancyCase,
)
from social_security.models import DeclarationState as S
from tax.models import AgreementState, TaxAgreement
from tax.reconciliation import services as case_flow
from tax.reconciliation.models import CaseState, CorrectionState
from tax.reconciliation.services import ReconciliationError
from tax.services import ensure_tax_staff
from treasury.access import roles
from treasury.access.makerchecker import ensure_can_approve
from treasury.errors import InvalidTransfers
from treasury.models import TransferState
from treasury.services.transfers import NewTransfer, create_transfers
from treasury.trace.services import EventSpec, append_events

O = ReconciliationOutcome
KEY_PREFIXES = ("social:", "socialflex:payment:")
APPROVER_ROLES = (roles.TAX_STAFF, roles.ADMIN)


def fetch_statement(*, check_date: dt.date) -> list[tuple[str, str, int, str, int]]:
    """(request_id, direction, amount_fen, kind, fund wallet pk) of the day's bookings on every fund wallet.

    Raises OperatorUnavailable / OperatorRejected: the statement could not be fetched (nothing changes).
    """
    from treasury.services.wallets import operator_statement

    rows = []
    for fund in FundAccount.objects.select_related("wallet").order_by("pk"):
        for line in operator_statement(wallet=fund.wallet, day=check_date):
            rows.append((line.request_id, line.direction, line.amount_fen, line.kind, fund.wallet_id))
    return rows


@dataclass
class _Ours:
    source: str
    document_no: str
    tax_authority_id: int
    ours_fen: int
    expected_fen: int
    acknowledged: bool
    declaration: Declaration | None = None
    payment: Payment | None = None


@dataclass
class _Booked:
    credits: int = 0
    net_fen: int = 0
    wallet_id: int | None = None


def _day_bounds(check_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(check_date, dt.time.min))
    return start, start + dt.timedelta(days=1)


def _outcome(ours: _Ours | None, booked: _Booked | None) -> str:
    if booked and booked.credits > 1:
        return O.DUPLICATE_OPERATOR
    if ours is None:
        return O.MISSING_OURS
    if booked is None:
        return O.MISSING_OPERATOR
    if not booked.net_fen == ours.ours_fen == ours.expected_fen:
        return O.AMOUNT_MISMATCH
    if not ours.acknowledged:
        return O.NOT_ACKNOWLEDGED
    return O.MATCHED


def reconcile_day(*, check_date: dt.date, now: dt.datetime, statement_rows: list[tuple] | None = None
                  ) -> ReconciliationRun:
    """Reconcile one check date, both halves. Matched declarations become reconciled, matched flexible
    payments get `reconciled_at`; every other outcome opens (or finds again) a case. Idempotent: a re-run
    replaces the day's results in one transaction; cases and their history stay. No lock is held while the
    operator is asked. `statement_rows` (request_id, direction, amount_fen, kind[, fund wallet pk]) stands in
    for the operator's statement.

    Raises OperatorUnavailable / OperatorRejected when the statement cannot be fetched (nothing changes).
    """
    if statement_rows is None:
        statement_rows = fetch_statement(check_date=check_date)
    authority_of_wallet = dict(FundAccount.objects.values_list("wallet_id", "tax_authority_id"))
    operator: dict[str, _Booked] = {}
    for row in statement_rows:
        request_id, direction, amount_fen, kind = row[:4]
        if not request_id.startswith(KEY_PREFIXES):
            continue
        booked = operator.setdefault(request_id, _Booked(wallet_id=row[4] if len(row) > 4 else None))
        booked.credits += 1 if direction == "credit" and kind == "transfer" else 0
        booked.net_fen += amount_fen if direction == "credit" else -amount_fen
    day_start, day_end = _day_bounds(check_date)
    settled_that_day = dict(transfer__state=TransferState.SETTLED, transfer__settled_at__gte=day_start,
                            transfer__settled_at__lt=day_end)
    with transaction.atomic():
        ours: dict[str, _Ours] = {}
        for d in (Declaration.objects.select_for_update(of=("self",)).select_related("transfer")
                  .filter(state__in=[S.PAID, S.RECONCILED], **settled_that_day).order_by("pk")):
            ours[d.transfer.idempotency_key] = _Ours(
                source=ReconciliationSource.DECLARATION, document_no=d.declaration_no,
                tax_authority_id=d.tax_authority_id, ours_fen=d.transfer.amount_fen,
                expected_fen=d.confirmed_total_fen, acknowledged=d.payment_notified_at is not None, declaration=d)
        for p in (Payment.objects.select_for_update(of=("self",)).select_related("transfer", "enrolment")
                  .filter(state=PaymentState.PAID, **settled_that_day).order_by("pk")):
            ours[p.transfer.idempotency_key] = _Ours(
                source=ReconciliationSource.FLEXIBLE, document_no=p.payment_no,
                tax_authority_id=p.enrolment.collecting_authority_id, ours_fen=p.transfer.amount_fen,
                expected_fen=p.amount_fen, acknowledged=p.notified_at is not None, payment=p)
        run, _ = ReconciliationRun.objects.select_for_update().get_or_create(check_date=check_date,
                                                                            defaults={"ran_at": now})
        run.results.all().delete()
        results, matched = [], []
        for key in sorted(set(ours) | set(operator)):
            mine, booked = ours.get(key), operator.get(key)
            outcome = _outcome(mine, booked)
            result = ReconciliationResult(
                run=run, request_id=key, outcome=outcome,
                source=mine.source if mine else (ReconciliationSource.FLEXIBLE if key.startswith("socialflex:")
                                                 else ReconciliationSource.DECLARATION),
                tax_authority_id=mine.tax_authority_id if mine else authority_of_wallet.get(booked.wallet_id),
                document_no=mine.document_no if mine else "", ours_fen=mine.ours_fen if mine else None,
                expected_fen=mine.expected_fen if mine else None, operator_fen=booked.net_fen if booked else None,
                operator_count=booked.credits if booked else 0, acknowledged=bool(mine and mine.acknowledged),
                declaration=mine.declaration if mine else None, flexible_payment=mine.payment if mine else None)
            if outcome == O.MATCHED:
                matched.append(mine)
            else:
                result.case, _ = SocialDiscrepancyCase.objects.get_or_create(
                    request_id=key, outcome=outcome, defaults=dict(
                        tax_authority_id=result.tax_authority_id, source=result.source,
                        document_no=result.document_no, check_date=check_date, first_run=run, created_at=now))
            results.append(result)
        ReconciliationResult.objects.bulk_create(results)
        for mine in matched:
            _mark_reconciled(mine, check_date=check_date, now=now)
        run.matched_count, run.discrepancy_count = len(matched), len(results) - len(matched)
        run.runs, run.ran_at = run.runs + 1, now
        run.save()
    return run


def _mark_reconciled(mine: _Ours, *, check_date: dt.date, now: dt.datetime) -> None:
    data = {"check_date": check_date.isoformat()}
    if mine.declaration is not None:
        declaration = mine.declaration
        if declaration.state != S.PAID:
            return
        declaration.reconcile()
        declaration.reconciled_at = now
        declaration.save()
        append_events(stream_key=declaration.stream_key, now=now, events=[EventSpec(
            kind="social.declaration.reconciled", subject_type="social.declaration", subject_id=str(declaration.pk),
            actor="system", amount_fen=mine.ours_fen, source_ref=declaration.declaration_no, data=data)])
        return
    payment = mine.payment
    if payment.reconciled_at is not None:
        return
    payment.reconciled_at = now
    payment.save(update_fields=["reconciled_at"])
    append_events(stream_key=payment.stream_key, now=now, events=[EventSpec(
        kind="social.flexible.reconciled", subject_type="social.flexible.payment", subject_id=str(payment.pk),
        actor="system", amount_fen=mine.ours_fen, source_ref=payment.payment_no, data=data)])


def reconcile_now(*, check_date: dt.date) -> ReconciliationRun:
    return reconcile_day(check_date=check_date, now=timezone.now())


# ---------------------------------------------------------------------------------------------
# Cases: the tax engine's workflow (tax.reconciliation.services.investigate / resolve)
# ---------------------------------------------------------------------------------------------


def _locked_case(case_id: int) -> SocialDiscrepancyCase:
    return SocialDiscrepancyCase.objects.select_for_update(of=("self",)).select_related("tax_authority").get(pk=case_id)


def _ensure_staff(user, case: SocialDiscrepancyCase) -> None:
    ensure_tax_staff(user, tax_org_code=case.tax_authority.code if case.tax_authority_id else "")


def investigate_case(*, case_id: int, user, note: str = "", now: dt.datetime) -> SocialDiscrepancyCase:
    """Take an open case into investigation.

    Raises AccessDenied (not staff of the case's authority), django_fsm.TransitionNotAllowed (not open)."""
    with transaction.atomic():
        case = _locked_case(case_id)
        _ensure_staff(user, case)
        case_flow.investigate(case, user=user, note=note, now=now)
    return case


def resolve_case(*, case_id: int, user, reason: str, now: dt.datetime) -> SocialDiscrepancyCase:
    """Resolve a case with a reason; a correcting transfer approved for it is linked already. No record is
    edited to make the sources agree.

    Raises AccessDenied, ReconciliationError (`reason_required`), django_fsm.TransitionNotAllowed (resolved)."""
    if not (reason or "").strip():
        raise ReconciliationError("请填写处理说明 (a reason is required)", code="reason_required")
    with transaction.atomic():
        case = _locked_case(case_id)
        _ensure_staff(user, case)
        case_flow.resolve(case, user=user, reason=reason, now=now)
    return case


def _note(case: SocialDiscrepancyCase, *, user, now: dt.datetime, note: str) -> None:
    case.history = [*case.history, {"at": now.isoformat(), "by": case_flow._actor(user), "to": case.state,
                                    "note": note}]


def _document_wallets(case: SocialDiscrepancyCase):
    """(payer's wallet, fund wallet, declaration or None) of the payment behind a case, from the day's result."""
    result = (ReconciliationResult.objects.filter(case=case).select_related(
        "declaration__payer_wallet", "declaration__region__fund_account__wallet", "flexible_payment__wallet",
        "flexible_payment__fund_wallet").order_by("-run__check_date").first())
    if result is not None and result.declaration_id:
        d = result.declaration
        return d.payer_wallet, d.region.fund_account.wallet, d
    if result is not None and result.flexible_payment_id:
        return result.flexible_payment.wallet, result.flexible_payment.fund_wallet, None
    return None, None, None


def _ensure_agreement_in_force(declaration: Declaration | None) -> None:
    """A collection debits the employer's wallet under the three-party agreement its declaration was paid under:
    only while that agreement is active (revoked or suspended, it no longer allows a debit). The agreement's row
    is locked, as revoking it locks it, so a revocation at the same moment is seen or waits.

    Raises ReconciliationError `not_signed`."""
    if declaration is None or declaration.agreement_id is None:
        raise ReconciliationError("补收只适用于有三方协议的单位申报 (collect needs an employer's declaration "
                                  "under an agreement)", code="not_signed")
    agreement = TaxAgreement.objects.select_for_update().get(pk=declaration.agreement_id)
    if agreement.state != AgreementState.ACTIVE:
        raise ReconciliationError("单位的三方协议已不在有效状态，不能补收 (the employer's three-party agreement is no "
                                  "longer active: nothing can be collected under it)", code="not_signed")


def propose_correction(*, case_id: int, user, kind: str, amount_fen: int, reason: str,
                       now: dt.datetime) -> SocialCaseCorrection:
    """The maker's step: a correcting transfer for another staff member to approve. Nothing moves yet.
    `refund`: fund wallet -> the payer's wallet (an over-collection, a duplicate credit); `collect`: the
    employer's wallet -> the fund wallet under its three-party agreement (a flexible payer pays a shortfall
    themselves: collect is refused for them).

    Raises AccessDenied, ReconciliationError: `reason_required`, `invalid_amount`, `invalid_kind`,
    `invalid_state` (resolved), `no_payment` (no payment of ours behind the case), `not_signed` (collect
    without a declaration under an agreement that is still active), `correction_pending`.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReconciliationError("请填写原因 (a reason is required)", code="reason_required")
    if type(amount_fen) is not int or amount_fen <= 0:
        raise ReconciliationError("金额必须为正整数（分） (the amount must be a positive number of fen)",
                                  code="invalid_amount")
    if kind not in CorrectionKind.values:
        raise ReconciliationError("更正方式须为退还或补收 (kind must be refund or collect)", code="invalid_kind")
    with transaction.atomic():
        case = _locked_case(case_id)
        _ensure_staff(user, case)
        if case.state == CaseState.RESOLVED:
            raise ReconciliationError("差异已解决 (the case is resolved)", code="invalid_state")
        payer_wallet, fund_wallet, declaration = _document_wallets(case)
        if payer_wallet is None:
            raise ReconciliationError("此差异没有本方缴费记录，无法以转账更正 (no payment of ours behind this case)",
                                      code="no_payment")
        if kind == CorrectionKind.COLLECT:
            _ensure_agreement_in_force(declaration)
        payer, payee = (fund_wallet, payer_wallet) if kind == CorrectionKind.REFUND else (payer_wallet, fund_wallet)
        try:
            with transaction.atomic():
                correction = SocialCaseCorrection.objects.create(
                    case=case, kind=kind, amount_fen=amount_fen, reason=reason, payer=payer, payee=payee,
                    proposed_by=user, proposed_at=now)
        except IntegrityError:
            raise ReconciliationError("已有待审批的更正 (a correction is already waiting for approval)",
                                      code="correction_pending")
        _note(case, user=user, now=now, note=f"提出更正 (correction proposed) {kind} {amount_fen}: {reason}")
        case.save(update_fields=["history"])
    return correction


def approve_correction(*, correction_id: int, user, now: dt.datetime) -> SocialCaseCorrection:
    """The checker's step: a staff member other than the proposer approves; the transfer is created through
    the treasury's transfer services in the same transaction (idempotency key `socialcorr:<id>`, submitted
    after commit) and linked as the case's correcting transfer.

    Raises AccessDenied / MakerCheckerViolation, django_fsm.TransitionNotAllowed (decided already),
    ReconciliationError: `invalid_state` (the case is no longer open or investigating), `not_signed` (a
    collection whose agreement is no longer active), `transfer_refused`."""
    with transaction.atomic():
        correction = (SocialCaseCorrection.objects.select_for_update(of=("self",))
                      .select_related("case__tax_authority").get(pk=correction_id))
        case = _locked_case(correction.case_id)
        _ensure_staff(user, case)
        ensure_can_approve(approver=user, prepared_by_id=correction.proposed_by_id, approver_roles=APPROVER_ROLES)
        case_flow.ensure_correctable(case)
        if correction.kind == CorrectionKind.COLLECT:
            _ensure_agreement_in_force(_document_wallets(case)[2])  # suspended or revoked since the proposal
        correction.approve()
        try:
            (transfer_id,) = create_transfers(
                organization_id=case.tax_authority_id, batch_ref=f"social-recon-correction-{correction.pk}",
                transfers=[NewTransfer(
                    payer_id=correction.payer_id, payee_id=correction.payee_id, amount_fen=correction.amount_fen,
                    idempotency_key=f"socialcorr:{correction.pk}", purpose_code="SICR",
                    memo=f"社保费对账更正 {case.document_no or case.request_id}"[:140],
                    source_type_id=ContentType.objects.get_for_model(SocialCaseCorrection).pk,
                    source_id=correction.pk, source_ref=f"social case {case.pk} correction {correction.pk}")],
                actor=user.username, now=now)
        except InvalidTransfers as exc:
            raise ReconciliationError(str(exc), code="transfer_refused") from exc
        correction.transfer_id, correction.decided_by, correction.decided_at = transfer_id, user, now
        correction.save()
        case.correcting_transfer_id = transfer_id
        _note(case, user=user, now=now, note=f"批准更正 (correction approved), transfer {transfer_id}")
        case.save(update_fields=["correcting_transfer", "history"])
        append_events(stream_key=correction.stream_key, now=now, events=[EventSpec(
            kind="social.reconciliation.correction.approved", subject_type="social.reconciliation.correction",
            subject_id=str(correction.pk), actor=user.username, amount_fen=correction.amount_fen,
            source_ref=f"case {case.pk}", data={"kind": correction.kind, "transfer": transfer_id})])
    return correction


def reject_correction(*, correction_id: int, user, reason: str, now: dt.datetime) -> SocialCaseCorrection:
    """The checker rejects a proposed correction with a reason; nothing moves. Also once its case is resolved
    (unlike approving): nothing else could ever decide the correction, and rejecting it moves no money.

    Raises AccessDenied / MakerCheckerViolation, ReconciliationError (`reason_required`),
    django_fsm.TransitionNotAllowed (decided already)."""
    reason = (reason or "").strip()
    if not reason:
        raise ReconciliationError("请填写拒绝原因 (a reason is required)", code="reason_required")
    with transaction.atomic():
        correction = SocialCaseCorrection.objects.select_for_update(of=("self",)).get(pk=correction_id)
        case = _locked_case(correction.case_id)
        _ensure_staff(user, case)
        ensure_can_approve(approver=user, prepared_by_id=correction.proposed_by_id, approver_roles=APPROVER_ROLES)
        correction.reject()
        correction.reject_reason, correction.decided_by, correction.decided_at = reason[:255], user, now
        correction.save()
        _note(case, user=user, now=now, note=f"拒绝更正 (correction rejected): {reason}")
        case.save(update_fields=["history"])
    return correction


def correction_actions(correction: SocialCaseCorrection, user) -> list[str]:
    """What the user may do with a correction: approve / reject, if proposed by someone else; only reject once
    its case is resolved (`approve_correction` refuses then)."""
    if correction.state != CorrectionState.PROPOSED or correction.proposed_by_id == user.pk:
        return []
    if correction.case.state == CaseState.RESOLVED:
        return ["reject"]
    return ["approve", "reject"]
