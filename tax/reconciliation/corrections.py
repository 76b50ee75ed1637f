"""Corrections of discrepancy cases: money moved by a proper transfer, never by editing records.

One tax staff member of the case's authority proposes a correction (the maker): `refund` returns an
over-debit from the treasury single account to the taxpayer's wallet, `collect` debits a shortfall from the
taxpayer's wallet to the treasury under the taxpayer's active agreement. A different staff member approves it
(the checker, `ensure_can_approve`); the approval creates the transfer through `create_transfers` in the same
transaction (submitted by the transfer core after commit; idempotency key `taxcorr:<correction id>`), links it
to the case (`correcting_transfer`) and writes the case's history and trace stream `tax-recon-case-<id>`.
The case is resolved separately, with a reason, once the transfer settled; re-running the day then shows
the sources agreeing or not, and sends a changed 2111.

When the transfer settles, `book_correction_entries` books its treasury entry (入库): positive for money
collected into the treasury, negative for money paid back out of it, under the tax types, budget type and
level of the deduction the case is about, dated the day the transfer settled; once per correction (a unique
constraint and the correction's row lock). It runs when the transfer core announces the case's transfer
decided (`batch_decided`), at the start of every reconciliation run, before each day's entry detail (3139),
and in the sweep `tax_reconciliation.book_correction_entries`: a lost announcement costs a minute's wait.
"""
from __future__ import annotations

import datetime as dt

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from tax import services as tax_services
from tax.models import AgreementState, DeductionState, TaxDeduction, TreasuryEntry
from treasury.access import roles
from treasury.access.makerchecker import ensure_can_approve
from treasury.errors import InvalidTransfers
from treasury.models import NOT_PAID_STATES, TransferState, Wallet
from treasury.services.transfers import NewTransfer, create_transfers

from .models import CASE_STREAM_PREFIX, CaseCorrection, CaseState, CorrectionKind, CorrectionState, DiscrepancyCase
from .services import ReconciliationError, _actor, ensure_correctable

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
    if type(amount_fen) is not int or not 0 < amount_fen <= tax_services.MAX_AMOUNT_FEN:
        raise ReconciliationError("金额必须为正整数（分），不超过TIPS金额上限 (the amount must be a positive number of "
                                  "fen a TIPS amount can carry)", code="invalid_amount")
    if kind not in CorrectionKind.values:
        raise ReconciliationError(f"未知的更正方式 (unknown kind) {kind!r}", code="invalid_kind")
    try:
        with transaction.atomic():
            case = DiscrepancyCase.objects.select_for_update().get(pk=case_id)
            tax_services.ensure_tax_staff(user, tax_org_code=case.tax_org_code)
            if case.state == CaseState.RESOLVED:
                raise ReconciliationError("差异已解决 (the case is resolved)", code="invalid_state")
            deduction, payer, payee = _parties(case, kind)
            if kind == CorrectionKind.REFUND:
                _ensure_held(deduction, amount_fen)
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


def _moved_corrections(deduction: TaxDeduction):
    """(kind, fen) of the deduction's approved corrections whose money moved or is on its way."""
    return (CaseCorrection.objects.filter(deduction=deduction, state=CorrectionState.APPROVED)
            .exclude(transfer__state__in=NOT_PAID_STATES).values_list("kind", "amount_fen"))


def held_fen(deduction: TaxDeduction) -> int:
    """What the treasury holds for a deduction's serial: its debit while it stands (not failed, not reversed, and no
    reversal asked of the operator without an answer), plus the collections and minus the refunds of approved
    corrections whose money moved or is on its way."""
    stands = deduction.state == DeductionState.SUCCEEDED and deduction.reversal_asked_at is None
    held = deduction.amount_fen if stands else 0
    return held + sum(fen if kind == CorrectionKind.COLLECT else -fen for kind, fen in _moved_corrections(deduction))


def refunded_by_corrections(deduction: TaxDeduction) -> bool:
    """Has a correction paid (or is it paying) money of this deduction back? Then it is not reversed whole."""
    return any(kind == CorrectionKind.REFUND for kind, _ in _moved_corrections(deduction))


def _ensure_held(deduction: TaxDeduction, amount_fen: int) -> None:
    """A refund pays back only what the treasury holds for the serial: not a debit reversed at the tax
    system's request (1021), nor one an earlier correction already returned."""
    held = held_fen(deduction)
    if amount_fen > held:
        raise ReconciliationError(f"退还金额超过国库就此流水持有的 {held} 分 (the refund exceeds the {held} fen the "
                                  "treasury holds for this serial: reversed, or already refunded)", code="exceeds_held")


def approve_correction(*, correction_id: int, user, now: dt.datetime) -> CaseCorrection:
    """The checker's step: approve and, in the same transaction, create the transfer (submitted after commit)
    and link it to the case.

    Raises:
        AccessDenied: not staff of the case's tax authority, or no approving role.
        MakerCheckerViolation: the approver proposed it.
        TransitionNotAllowed: not waiting for approval.
        ReconciliationError: the case is no longer open or investigating (`invalid_state`), a collection's
            agreement is no longer active (`not_signed`), a refund exceeds what the treasury still holds for the
            serial (`exceeds_held`), the transfer core refused the transfer (`transfer_refused`); nothing changed.
    """
    with transaction.atomic():
        correction = CaseCorrection.objects.select_for_update().get(pk=correction_id)
        case = DiscrepancyCase.objects.select_for_update().get(pk=correction.case_id)
        # The deduction's lock orders this approval with a reversal (1021) and with corrections of other cases
        # of the same serial, so what `held_fen` reads stays true until commit.
        deduction = tax_services._locked_deduction(correction.deduction_id)
        tax_services.ensure_tax_staff(user, tax_org_code=case.tax_org_code)
        ensure_can_approve(approver=user, prepared_by_id=correction.proposed_by_id, approver_roles=APPROVER_ROLES)
        if correction.state != CorrectionState.PROPOSED:
            # Decided already (a second checker a moment later): said as such, not as the refund it made exceeding
            # what the treasury now holds.
            correction.approve()  # raises TransitionNotAllowed naming the state
        ensure_correctable(case)
        # What held at the proposal may not hold now: the agreement revoked, the debit reversed or refunded.
        _parties(case, correction.kind)
        if correction.kind == CorrectionKind.REFUND:
            _ensure_held(deduction, correction.amount_fen)
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


# ---------------------------------------------------------------------------------------------
# Treasury entries (入库) of settled corrections
# ---------------------------------------------------------------------------------------------


def apportion(amount_fen: int, parts: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """`amount_fen` shared over (project id, tax type name, fen) parts in proportion to their amounts: each
    share rounded down (ROUND_DOWN, integer division), then the fen left over given one each to the parts
    with the largest remainders (the earlier part first on a tie), so the shares add up exactly. Parts whose
    share is 0 are left out."""
    if len(parts) == 1:
        return [(parts[0][0], parts[0][1], amount_fen)]
    total = sum(part[2] for part in parts)
    if total <= 0 or any(part[2] < 0 for part in parts):
        return [("", "", amount_fen)]
    shares = [amount_fen * part[2] // total for part in parts]
    remainders = [amount_fen * part[2] % total for part in parts]
    for i in sorted(range(len(parts)), key=lambda i: (-remainders[i], i))[:amount_fen - sum(shares)]:
        shares[i] += 1
    return [(project_id, name, share) for (project_id, name, _), share in zip(parts, shares) if share]


def correction_entries(correction: CaseCorrection, *, now: dt.datetime) -> list[TreasuryEntry]:
    """The treasury entries of a settled correction (not saved): its amount apportioned over the tax types of
    the deduction the case is about, split central/local as that deduction was (`split_revenue`), with its
    budget type and level; positive for a collection, negative for money paid back; dated the day the
    transfer settled."""
    deduction = correction.deduction
    collect = correction.kind == CorrectionKind.COLLECT
    sign = 1 if collect else -1
    treasury = correction.payee if collect else correction.payer
    treasury_code = deduction.treasury_code or (treasury.holder_org.code if treasury.holder_org_id else "")
    day = tax_services.local_date(correction.transfer.settled_at or now)
    entries = []
    parts = tax_services.entry_parts(tax_types=deduction.tax_types, amount_fen=deduction.amount_fen)
    for project_id, name, amount in apportion(correction.amount_fen, parts):
        central, local = tax_services.split_revenue(amount_fen=amount, tax_type_name=name,
                                                    budget_level_code=deduction.budget_level_code)
        entries.append(TreasuryEntry(
            correction=correction, entry_date=day, treasury_code=treasury_code, tax_org_code=deduction.tax_org_code,
            project_id=project_id, tax_type_name=name, budget_type=deduction.budget_type,
            budget_level_code=deduction.budget_level_code, amount_fen=sign * amount, central_fen=sign * central,
            local_fen=sign * local))
    return entries


def unentered_corrections():
    """Corrections whose transfer settled and that have no treasury entry yet."""
    return (CaseCorrection.objects.filter(state=CorrectionState.APPROVED, transfer__state=TransferState.SETTLED)
            .exclude(Exists(TreasuryEntry.objects.filter(correction=OuterRef("pk")))))


def book_correction_entries(*, now: dt.datetime, case_id: int | None = None) -> int:
    """Book the treasury entries of settled corrections not entered yet (of one case, or all); returns how
    many corrections were entered. Idempotent: each correction is entered under its row lock after checking
    it has no entry, and a unique constraint refuses a second set; a second call, a second announcement of
    the transfer or operator results applied again enter nothing more. One transaction per correction."""
    pending = unentered_corrections()
    if case_id is not None:
        pending = pending.filter(case_id=case_id)
    booked = 0
    for correction_id in pending.order_by("pk").values_list("pk", flat=True):
        try:
            with transaction.atomic():
                correction = (CaseCorrection.objects.select_for_update(of=("self",))
                              .select_related("deduction", "transfer", "payer__holder_org", "payee__holder_org")
                              .get(pk=correction_id))
                if correction.entries.exists():
                    continue
                entries = TreasuryEntry.objects.bulk_create(correction_entries(correction, now=now))
                _trace(correction, "tax.reconciliation.correction.entered", user=None, now=now,
                       data={"entry_date": entries[0].entry_date.isoformat(),
                             "amount_fen": sum(e.amount_fen for e in entries)})
        except IntegrityError:  # entered at the same moment by another caller
            continue
        booked += 1
    return booked


def book_entries_when_settled(sender, *, batch_ref: str, now: dt.datetime, **kwargs) -> None:
    """Receiver of the transfer core's `batch_decided`: a case's correcting transfer was just decided."""
    if batch_ref.startswith(CASE_STREAM_PREFIX) and batch_ref[len(CASE_STREAM_PREFIX):].isdigit():
        book_correction_entries(case_id=int(batch_ref[len(CASE_STREAM_PREFIX):]), now=now)
