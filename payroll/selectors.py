"""Queries behind the payroll pages and API, already scoped to the user's organization.

An employer user reads their own employer's batches; auditors and administrators read every
employer's. Another employer's batch is "not found", exactly like one that does not exist.
Nothing here writes; nothing here reads the clock.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from django_fsm import can_proceed

from treasury.access import roles
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.models import TransferState

from .models import BatchState as B
from .models import PayrollBatch, PayrollLine

# States after which the batch has transfers and a progress to show.
PAYING_OR_LATER = (B.PAYING, B.PAID, B.PARTIALLY_PAID, B.CLOSED)


def visible_batches(user) -> QuerySet[PayrollBatch]:
    """The user's employer's batches (every employer's for auditors and administrators)."""
    if sees_all_organizations(user):
        return PayrollBatch.objects.all()
    org = user_organization(user)
    if org is None:
        return PayrollBatch.objects.none()
    return PayrollBatch.objects.filter(employer=org)


def batch_list(*, user, state: str = "", period: str = "") -> QuerySet[PayrollBatch]:
    """The history of batches the user may see, newest first, optionally filtered by state and period."""
    qs = visible_batches(user).select_related("employer", "prepared_by", "approved_by")
    if state:
        qs = qs.filter(state=state)
    if period:
        qs = qs.filter(period=period.strip())
    return qs.order_by("-created_at", "-pk")


def batch_get(*, user, batch_id) -> PayrollBatch:
    """One batch the user may see.

    Raises:
        Http404: no such batch, or it belongs to another employer (the two look the same).
    """
    try:
        return visible_batches(user).select_related("employer", "payer_wallet", "prepared_by", "approved_by").get(
            pk=batch_id
        )
    except (PayrollBatch.DoesNotExist, ValueError, TypeError):
        raise Http404("payroll batch not found")


def batch_lines(*, batch: PayrollBatch) -> QuerySet[PayrollLine]:
    """The lines of a batch already checked by `batch_get`, in file order, with their transfers."""
    return batch.lines.select_related("transfer").order_by("line_no")


@dataclass(frozen=True)
class Progress:
    """Where a batch's lines stand, each counted once by its current transfer (a retried line once)."""

    count: int  # lines sent to pay (not held, not returned)
    amount_fen: int
    paid_count: int
    paid_fen: int
    failed_count: int  # the current attempt failed (or was cancelled), not yet retried or returned
    failed_fen: int
    open_count: int  # being paid: not decided yet
    open_fen: int
    held_count: int
    returned_count: int

    @property
    def done(self) -> bool:
        return self.open_count == 0

    @property
    def percent(self) -> int:
        return round(100 * (self.paid_count + self.failed_count) / self.count) if self.count else 100


def batch_line(*, batch: PayrollBatch, line_no) -> PayrollLine:
    """One line of a batch already checked by `batch_get`, with what its payslip prints.

    Raises:
        Http404: the batch has no such line.
    """
    try:
        return batch.lines.select_related("batch__employer", "transfer__receipt").get(line_no=line_no)
    except (PayrollLine.DoesNotExist, ValueError, TypeError):
        raise Http404("payroll line not found")


def progress(*, batch: PayrollBatch) -> Progress | None:
    """Paid, failed and open lines and amounts of a batch that has started paying (None before), in one query."""
    if batch.state not in PAYING_OR_LATER:
        return None
    settled = Q(transfer__state=TransferState.SETTLED)
    failed = Q(transfer__state__in=[TransferState.FAILED, TransferState.CANCELLED], returned=False)
    still_open = Q(transfer__state__in=[TransferState.PENDING, TransferState.SUBMITTED, TransferState.UNKNOWN])
    sent = settled | failed | still_open
    t = batch.lines.aggregate(
        n=Count("pk", filter=sent), fen=Sum("net_fen", filter=sent),
        n_paid=Count("pk", filter=settled), fen_paid=Sum("net_fen", filter=settled),
        n_failed=Count("pk", filter=failed), fen_failed=Sum("net_fen", filter=failed),
        n_open=Count("pk", filter=still_open), fen_open=Sum("net_fen", filter=still_open),
        n_held=Count("pk", filter=Q(held=True, returned=False)), n_returned=Count("pk", filter=Q(returned=True)),
    )
    return Progress(count=t["n"], amount_fen=t["fen"] or 0, paid_count=t["n_paid"], paid_fen=t["fen_paid"] or 0,
                    failed_count=t["n_failed"], failed_fen=t["fen_failed"] or 0, open_count=t["n_open"],
                    open_fen=t["fen_open"] or 0, held_count=t["n_held"], returned_count=t["n_returned"])


def approval_queue(*, user) -> QuerySet[PayrollBatch]:
    """Submitted batches of the user's employer, oldest first: what waits for an approver."""
    return (
        visible_batches(user)
        .filter(state=B.SUBMITTED)
        .select_related("employer", "prepared_by")
        .order_by("submitted_at", "pk")
    )


def line_state(line: PayrollLine) -> str:
    """A line's payment state: returned, held, its transfer's state, or not paid yet."""
    if line.returned:
        return "returned_line"
    if line.held:
        return "held"
    if line.transfer_id is None:
        return "not_paid"
    return line.transfer.state


# ---------------------------------------------------------------------------------------------
# What the user may do now (drives which buttons a page shows; the services decide for real)
# ---------------------------------------------------------------------------------------------

SUBMIT, APPROVE, FUND, PAY, PAUSE, RESUME, CANCEL = "submit", "approve", "fund", "pay", "pause", "resume", "cancel"
ACTIONS = (SUBMIT, APPROVE, FUND, PAY, PAUSE, RESUME, CANCEL)

_ACTION_ROLES = {
    SUBMIT: (roles.EMPLOYER_OPERATOR,),
    APPROVE: (roles.EMPLOYER_APPROVER,),
    FUND: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    PAY: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    PAUSE: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    RESUME: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    CANCEL: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
}
_ACTION_TRANSITIONS = {
    SUBMIT: "submit", APPROVE: "approve", FUND: "fund", PAY: "start_paying", CANCEL: "cancel",
}
# Pause and resume are no state change: they apply while paying, one or the other.
_PAUSING = {PAUSE: False, RESUME: True}


@dataclass(frozen=True)
class BatchActions:
    available: tuple[str, ...]
    awaiting_other_approver: bool  # the user prepared it and holds the approver role: someone else must approve


def batch_actions(*, user, batch: PayrollBatch) -> BatchActions:
    """The transitions `user` may start on `batch` now (read-only roles: none)."""
    if roles.is_read_only(user):
        return BatchActions(available=(), awaiting_other_approver=False)
    own = user_organization(user) == batch.employer or roles.has_role(user, roles.ADMIN)
    available = []
    awaiting = False
    for action in ACTIONS:
        if action in _PAUSING:
            possible = batch.state == B.PAYING and bool(getattr(batch, "paused", False)) == _PAUSING[action]
        else:
            possible = can_proceed(getattr(batch, _ACTION_TRANSITIONS[action]))
        if not own or not possible or not roles.has_role(user, *_ACTION_ROLES[action]):
            continue
        if action == APPROVE and batch.prepared_by_id == user.pk:
            awaiting = True
            continue
        available.append(action)
    return BatchActions(available=tuple(available), awaiting_other_approver=awaiting)
