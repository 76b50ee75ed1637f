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
from django.db.models import Q
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
from tax.services import MAX_AMOUNT_FEN, ensure_tax_staff
from treasury.access import roles
from treasury.access.makerchecker import ensure_can_approve
from treasury.errors import InvalidTransfers
from treasury.models import NOT_PAID_STATES, Transfer, TransferState
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
    counted: bool = True  # the transfer its document counts as its payment (only then does a match reconcile it)


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


def _ours(check_date: dt.date) -> dict[str, _Ours]:
    """Our half of a day, by request id: every premium transfer (a declaration's attempt, a flexible payment)
    that settled on the check date or whose money came back (returned, reversed) on it, with what it moved into
    the fund that day (its amount on the day it settled, less its amount on the day it came back) and what
    should have moved: for the transfer its declaration or payment counts as paid (paying, paid,
    reconciled), the confirmed or due amount on the day it settled and nothing on other days; for one whose
    document gave it up when its money came back (the month is to be paid again), what it moved. The documents'
    rows are locked."""
    day_start, day_end = _day_bounds(check_date)
    came_back = (TransferState.RETURNED, TransferState.REVERSED)
    types = ContentType.objects.get_for_models(Declaration, Payment)
    transfers = list(Transfer.objects.filter(
        source_type_id__in=[types[Declaration].pk, types[Payment].pk],
        state__in=(TransferState.SETTLED, *came_back),
    ).filter(Q(settled_at__gte=day_start, settled_at__lt=day_end)
             | Q(state__in=came_back, finished_at__gte=day_start, finished_at__lt=day_end)).order_by("pk"))
    by_type = {types[Declaration].pk: [], types[Payment].pk: []}
    for t in transfers:
        by_type[t.source_type_id].append(t.source_id)
    declarations = {d.pk: d for d in Declaration.objects.select_for_update(of=("self",))
                    .filter(pk__in=by_type[types[Declaration].pk]).order_by("pk")}
    payments = {p.pk: p for p in Payment.objects.select_for_update(of=("self",)).select_related("enrolment")
                .filter(pk__in=by_type[types[Payment].pk]).order_by("pk")}
    ours: dict[str, _Ours] = {}
    for t in transfers:
        settled_today = t.settled_at is not None and day_start <= t.settled_at < day_end
        moved = (t.amount_fen if settled_today else 0) - (
            t.amount_fen if t.state in came_back and t.finished_at and day_start <= t.finished_at < day_end else 0)
        if t.source_type_id == types[Declaration].pk:
            d = declarations.get(t.source_id)
            if d is None:
                continue
            counted = d.transfer_id == t.pk and d.state in (S.PAYING, S.PAID, S.RECONCILED)
            ours[t.idempotency_key] = _Ours(
                source=ReconciliationSource.DECLARATION, document_no=d.declaration_no,
                tax_authority_id=d.tax_authority_id, ours_fen=moved,
                expected_fen=(d.confirmed_total_fen if settled_today else 0) if counted else moved,
                acknowledged=d.payment_notified_at is not None if counted else True, declaration=d, counted=counted)
        else:
            p = payments.get(t.source_id)
            if p is None:
                continue
            counted = p.transfer_id == t.pk and p.state in (PaymentState.PAYING, PaymentState.PAID)
            ours[t.idempotency_key] = _Ours(
                source=ReconciliationSource.FLEXIBLE, document_no=p.payment_no,
                tax_authority_id=p.enrolment.collecting_authority_id, ours_fen=moved,
                expected_fen=(p.amount_fen if settled_today else 0) if counted else moved,
                acknowledged=p.notified_at is not None if counted else True, payment=p, counted=counted)
    return ours


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
        # A return is booked under the payment's key, a reversal under `<key>:reversal[:n]`: both net its credit off.
        booked = operator.setdefault(payment_key(request_id), _Booked(wallet_id=row[4] if len(row) > 4 else None))
        booked.credits += 1 if direction == "credit" and kind == "transfer" else 0
        booked.net_fen += amount_fen if direction == "credit" else -amount_fen
    with transaction.atomic():
        ours = _ours(check_date)
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
    if not mine.counted:  # an attempt whose money came back: its document is paid by another, or to be paid again
        return
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
    if payment.state != PaymentState.PAID or payment.reconciled_at is not None:
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


def parse_request_id(request_id: str) -> tuple[str, int | None]:
    """(source, document id) of a premium payment's request id: `social:<declaration id>:<attempt>` or
    `socialflex:payment:<payment id>`, and a reversal of either, booked under `<key>:reversal` or
    `<key>:reversal:<n>` (treasury reverse_transfer); ("", None) for anything else."""
    parts = request_id.split(":")
    if len(parts) >= 2 and parts[-1].isdigit() and parts[-2] == "reversal":
        parts = parts[:-2]
    elif parts and parts[-1] == "reversal":
        parts = parts[:-1]
    if len(parts) == 3 and parts[0] == "social" and parts[1].isdigit() and parts[2].isdigit():
        return ReconciliationSource.DECLARATION, int(parts[1])
    if len(parts) == 3 and parts[:2] == ["socialflex", "payment"] and parts[2].isdigit():
        return ReconciliationSource.FLEXIBLE, int(parts[2])
    return "", None


def payment_key(request_id: str) -> str:
    """The key of the payment a statement line belongs to: a reversal's debit nets its payment's credit off."""
    source, pk = parse_request_id(request_id)
    if source == ReconciliationSource.FLEXIBLE:
        return f"socialflex:payment:{pk}"
    if source == ReconciliationSource.DECLARATION:
        return ":".join(request_id.split(":")[:3])
    return request_id


def _case_document(case: SocialDiscrepancyCase, *, lock: bool = False) -> tuple[Declaration | None, Payment | None]:
    """The declaration or flexible payment a case's request id belongs to, if it is of the case's authority
    (found from the key, so also for a case whose latest run matched, or an attempt the operator booked that we
    hold failed). With `lock`, its row is locked: corrections of the same payment are decided one at a time."""
    source, pk = parse_request_id(case.request_id)
    if source == ReconciliationSource.DECLARATION:
        qs = Declaration.objects.select_related("payer_wallet", "transfer", "region__fund_account__wallet")
        if lock:
            qs = qs.select_for_update(of=("self",))
        found = qs.filter(pk=pk, tax_authority_id=case.tax_authority_id).first()
        return found, None
    if source == ReconciliationSource.FLEXIBLE:
        qs = Payment.objects.select_related("wallet", "fund_wallet", "transfer")
        if lock:
            qs = qs.select_for_update(of=("self",))
        found = qs.filter(pk=pk, enrolment__collecting_authority_id=case.tax_authority_id).first()
        return None, found
    return None, None


def _document_wallets(declaration: Declaration | None, payment: Payment | None):
    """(payer's wallet, fund wallet) of the payment behind a case; (None, None) when it was never paid."""
    if declaration is not None and declaration.payer_wallet_id:
        return declaration.payer_wallet, declaration.region.fund_account.wallet
    if payment is not None:
        return payment.wallet, payment.fund_wallet
    return None, None


def _cases_of(declaration: Declaration | None, payment: Payment | None):
    if declaration is not None:
        return SocialDiscrepancyCase.objects.filter(request_id__startswith=f"social:{declaration.pk}:")
    return SocialDiscrepancyCase.objects.filter(request_id=payment.idempotency_key)


def held_fen(declaration: Declaration | None, payment: Payment | None) -> int:
    """What the fund holds for a declaration or flexible payment by our records: its paying transfer while it
    stands (settled: not failed, returned or reversed), plus the collections and minus the refunds of the approved
    corrections of its cases whose money moved or is on its way."""
    document = declaration if declaration is not None else payment
    if document is None:
        return 0
    paid = (declaration.state in (S.PAID, S.RECONCILED) if declaration is not None
            else payment.state == PaymentState.PAID)
    transfer = document.transfer
    held = transfer.amount_fen if paid and transfer is not None and transfer.state == TransferState.SETTLED else 0
    moved = (SocialCaseCorrection.objects.filter(case__in=_cases_of(declaration, payment),
                                                 state=CorrectionState.APPROVED)
             .exclude(transfer__state__in=NOT_PAID_STATES).values_list("kind", "amount_fen"))
    return held + sum(fen if kind == CorrectionKind.COLLECT else -fen for kind, fen in moved)


def _ensure_held(declaration: Declaration | None, payment: Payment | None, amount_fen: int) -> None:
    """A refund pays back only what the fund holds for the payment: not money that came back by itself (returned,
    reversed), nor what earlier corrections of any of its cases already refunded. Raises ReconciliationError
    `exceeds_held`."""
    held = held_fen(declaration, payment)
    if amount_fen > held:
        raise ReconciliationError(f"退还金额超过基金就此笔缴费持有的 {held} 分 (the refund exceeds the {held} fen the fund "
                                  "holds for this payment: returned, reversed, or already refunded)",
                                  code="exceeds_held")


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
    without a declaration under an agreement that is still active), `exceeds_held` (a refund of more than the fund
    holds for the payment: `held_fen`), `correction_pending`.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReconciliationError("请填写原因 (a reason is required)", code="reason_required")
    if type(amount_fen) is not int or not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise ReconciliationError("金额必须为正整数（分），不超过金额上限 (the amount must be a positive number of fen "
                                  "within the amount limit)", code="invalid_amount")
    if kind not in CorrectionKind.values:
        raise ReconciliationError("更正方式须为退还或补收 (kind must be refund or collect)", code="invalid_kind")
    with transaction.atomic():
        case = _locked_case(case_id)
        _ensure_staff(user, case)
        if case.state == CaseState.RESOLVED:
            raise ReconciliationError("差异已解决 (the case is resolved)", code="invalid_state")
        declaration, payment = _case_document(case, lock=True)
        payer_wallet, fund_wallet = _document_wallets(declaration, payment)
        if payer_wallet is None:
            raise ReconciliationError("此差异没有本方缴费记录，无法以转账更正 (no payment of ours behind this case)",
                                      code="no_payment")
        if kind == CorrectionKind.COLLECT:
            _ensure_agreement_in_force(declaration)
        else:
            _ensure_held(declaration, payment, amount_fen)
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
    collection whose agreement is no longer active), `exceeds_held` (a refund of more than the fund still holds
    for the payment), `transfer_refused`."""
    with transaction.atomic():
        correction = (SocialCaseCorrection.objects.select_for_update(of=("self",))
                      .select_related("case__tax_authority").get(pk=correction_id))
        case = _locked_case(correction.case_id)
        _ensure_staff(user, case)
        ensure_can_approve(approver=user, prepared_by_id=correction.proposed_by_id, approver_roles=APPROVER_ROLES)
        if correction.state != CorrectionState.PROPOSED:
            # Decided already (a second checker a moment later): said as such, not as the refund it made exceeding
            # what the fund now holds.
            correction.approve()  # raises TransitionNotAllowed naming the state
        case_flow.ensure_correctable(case)
        # The payment's row is locked, so corrections of its other cases are decided after this one and see it.
        declaration, payment = _case_document(case, lock=True)
        if correction.kind == CorrectionKind.COLLECT:
            _ensure_agreement_in_force(declaration)  # suspended or revoked since the proposal
        else:
            _ensure_held(declaration, payment, correction.amount_fen)  # returned, or refunded since the proposal
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
