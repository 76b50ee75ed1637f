"""Queries behind the payroll pages and API, already scoped to the user's organization.

An employer user reads their own employer's batches; auditors and administrators read every
employer's. Another employer's batch is "not found", exactly like one that does not exist.
Nothing here writes; nothing here reads the clock.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django_fsm import can_proceed

from treasury.access import roles
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.models import NOT_PAID_STATES, TransferState
from treasury.waiting import Waiting

from .models import BatchState as B
from .models import DuesCall, PayrollBatch, PayrollLine, PayslipArchive, UnionMember, UnionSettings

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


def batch_lines(*, batch: PayrollBatch, with_warnings: bool = False) -> QuerySet[PayrollLine]:
    """The lines of a batch already checked by `batch_get`, in file order, with their transfers; with
    `with_warnings`, only the lines that carry a warning (`batch.warning_count` of them)."""
    lines = batch.lines.select_related("transfer").order_by("line_no")
    return lines.exclude(warnings=[]) if with_warnings else lines


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


# Where a line stands, by its current transfer: one definition for the page's progress and the run's finishing
# (services.line_progress), which had drifted apart.
LINE_PAID = Q(transfer__state=TransferState.SETTLED)
# Failed: nothing moved, or the money came back (returned by the operator, reversed): the line is not paid.
LINE_FAILED = Q(transfer__state__in=NOT_PAID_STATES, returned=False)
# Being paid: the line's transfer waits for an outcome, or the line still waits for its transfer (the task
# makes them a chunk at a time).
LINE_OPEN = (Q(transfer__state__in=[TransferState.PENDING, TransferState.SUBMITTED, TransferState.UNKNOWN])
             | Q(transfer__isnull=True, held=False, returned=False))


def progress(*, batch: PayrollBatch) -> Progress | None:
    """Paid, failed and open lines and amounts of a batch that has started paying (None before), in one query."""
    if batch.state not in PAYING_OR_LATER:
        return None
    settled, failed, still_open = LINE_PAID, LINE_FAILED, LINE_OPEN
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
CLOSE = "close"
ACTIONS = (SUBMIT, APPROVE, FUND, PAY, PAUSE, RESUME, CANCEL, CLOSE)

_ACTION_ROLES = {
    SUBMIT: (roles.EMPLOYER_OPERATOR,),
    APPROVE: (roles.EMPLOYER_APPROVER,),
    FUND: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    PAY: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    PAUSE: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    RESUME: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    CANCEL: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
    CLOSE: (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER),
}
_ACTION_TRANSITIONS = {
    SUBMIT: "submit", APPROVE: "approve", FUND: "fund", PAY: "start_paying", CANCEL: "cancel", CLOSE: "close",
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


# ---------------------------------------------------------------------------------------------
# Held and failed lines, closing, the batch summary receipt
# ---------------------------------------------------------------------------------------------

# A line can be retried or returned while the batch pays or after a partial payment, or once it is paid, if a
# salary came back since (reversed, returned by the operator).
LINE_ACTION_STATES = (B.PAYING, B.PARTIALLY_PAID, B.PAID)
# States in which a batch has (or can be given) its summary receipt.
SUMMARY_RECEIPT_STATES = (B.PAID, B.PARTIALLY_PAID, B.CLOSED)


def line_is_actionable(line: PayrollLine) -> bool:
    """Held, or its current payment failed; and not returned (what `services.retry_lines` accepts)."""
    if line.returned:
        return False
    return line.held or (line.transfer_id is not None and line.transfer.state in NOT_PAID_STATES)


def _may_change(user, batch: PayrollBatch) -> bool:
    """The batch's employer operator or approver (or an administrator), not a read-only role."""
    return (
        not roles.is_read_only(user)
        and roles.has_role(user, roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER, roles.ADMIN)
        and (user_organization(user) == batch.employer or roles.has_role(user, roles.ADMIN))
    )


def can_act_on_lines(*, user, batch: PayrollBatch) -> bool:
    """May the user retry or return lines of this batch now (drives the page's checkboxes)?"""
    return batch.state in LINE_ACTION_STATES and _may_change(user, batch)


def can_issue_summary_receipt(*, user, batch: PayrollBatch) -> bool:
    return batch.state in SUMMARY_RECEIPT_STATES and _may_change(user, batch)


def summary_receipt(*, batch: PayrollBatch):
    """The batch's summary receipt if it was issued already, else None (issuing is `payslips.batch_summary_receipt`)."""
    from treasury.receipts.models import Receipt

    if batch.state not in SUMMARY_RECEIPT_STATES:
        return None
    return Receipt.objects.filter(kind=Receipt.Kind.BATCH, batch_ref=batch.batch_ref).order_by("pk").first()


def latest_payslip_archive(*, batch: PayrollBatch) -> PayslipArchive | None:
    """The batch's newest payslip archive (the one its page and the API show), or None."""
    return batch.payslip_archives.select_related("batch", "requested_by").order_by("-pk").first()


def payslip_archive_get(*, batch: PayrollBatch, archive_id) -> PayslipArchive:
    """One payslip archive of a batch already checked by `batch_get` (so scoped like the batch).

    Raises:
        Http404: the batch has no such archive.
    """
    try:
        return batch.payslip_archives.select_related("batch", "requested_by").get(pk=archive_id)
    except (PayslipArchive.DoesNotExist, ValueError, TypeError):
        raise Http404("payslip archive not found")


# ---------------------------------------------------------------------------------------------
# Unions (工会): members, dues calls, arrears
# ---------------------------------------------------------------------------------------------

# Employer users of the union's organization or of its employer read the union's page.
UNION_ROLES = (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER)


def visible_unions(user) -> QuerySet[UnionSettings]:
    """Unions the user may see: every union for auditors and administrators; for an employer operator
    or approver, the union that is their organization or whose employer is; nothing for anyone else."""
    qs = UnionSettings.objects.select_related("union", "employer", "wallet", "higher_union_wallet")
    if sees_all_organizations(user):
        return qs.order_by("union__name", "pk")
    org = user_organization(user)
    if org is None or not roles.has_role(user, *UNION_ROLES):
        return qs.none()
    return qs.filter(Q(union=org) | Q(employer=org)).order_by("union__name", "pk")


def may_see_unions(user) -> bool:
    """Whether the union pages exist for this user at all (everyone else gets a 404)."""
    if sees_all_organizations(user):
        return True
    return user_organization(user) is not None and roles.has_role(user, *UNION_ROLES)


def union_get(*, user, union_id) -> UnionSettings:
    """One union the user may see.

    Raises:
        Http404: no such union, or the user may not see it (the two look the same).
    """
    try:
        return visible_unions(user).get(pk=union_id)
    except (UnionSettings.DoesNotExist, ValueError, TypeError):
        raise Http404("union not found")


def can_issue_dues_call(*, user, union: UnionSettings) -> bool:
    """The union's or its employer's operators and approvers call dues; auditors and administrators only read."""
    org = user_organization(user)
    return (
        not roles.is_read_only(user)
        and roles.has_role(user, *UNION_ROLES)
        and org is not None
        and org.pk in (union.union_id, union.employer_id)
    )


def union_members(*, union: UnionSettings, search: str = "", active: bool | None = None) -> QuerySet[UnionMember]:
    """A union's members, active first, by employee number; optionally those whose name or employee number
    contains `search`, and only the active (or inactive) ones."""
    qs = union.members.all()
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(employee_no__icontains=search))
    if active is not None:
        qs = qs.filter(active=active)
    return qs.order_by("-active", "employee_no", "pk")


def union_member_get(*, union: UnionSettings, member_id) -> UnionMember:
    """One member of a union already checked by `union_get` (so scoped like the union).

    Raises:
        Http404: the union has no such member.
    """
    try:
        return union.members.get(pk=member_id)
    except (UnionMember.DoesNotExist, ValueError, TypeError):
        raise Http404("union member not found")


def dues_calls(*, union: UnionSettings, periods: list[str] | None = None) -> QuerySet[DuesCall]:
    """A union's dues, newest month first, with the payment and its receipt (optionally only some months)."""
    qs = union.dues_calls.select_related("member", "transfer", "transfer__receipt")
    if periods is not None:
        qs = qs.filter(period__in=periods)
    return qs.order_by("-period", "member__employee_no", "member_id")


@dataclass(frozen=True)
class DuesMonth:
    period: str
    count: int
    amount_fen: int
    paid_count: int
    paid_fen: int
    failed_count: int
    open_count: int


def dues_months(*, union: UnionSettings) -> list[DuesMonth]:
    """Each month's dues in one row: how many, how much, and how many paid, failed or still open."""
    paid = Q(transfer__state=TransferState.SETTLED)
    failed = Q(transfer__state__in=NOT_PAID_STATES)
    still_open = Q(transfer__state__in=[TransferState.PENDING, TransferState.SUBMITTED, TransferState.UNKNOWN])
    rows = (
        union.dues_calls.values("period")
        .annotate(n=Count("pk"), fen=Sum("amount_fen"), n_paid=Count("pk", filter=paid),
                  fen_paid=Sum("amount_fen", filter=paid), n_failed=Count("pk", filter=failed),
                  n_open=Count("pk", filter=still_open))
        .order_by("-period")
    )
    return [DuesMonth(period=r["period"], count=r["n"], amount_fen=r["fen"] or 0, paid_count=r["n_paid"],
                      paid_fen=r["fen_paid"] or 0, failed_count=r["n_failed"], open_count=r["n_open"])
            for r in rows]


def waiting_for(user) -> list[Waiting]:
    """For the employer's operators, checked runs to submit and approved runs to fund; for its approvers, runs
    submitted by someone else (maker-checker; treasury.waiting)."""
    operator = roles.has_role(user, roles.EMPLOYER_OPERATOR)
    approver = roles.has_role(user, roles.EMPLOYER_APPROVER)
    if roles.is_read_only(user) or not (operator or approver):
        return []
    counts = visible_batches(user).aggregate(
        to_submit=Count("pk", filter=Q(state=B.VALIDATED)),
        to_approve=Count("pk", filter=Q(state=B.SUBMITTED) & ~Q(prepared_by=user)),
        to_fund=Count("pk", filter=Q(state=B.APPROVED)))
    url = reverse("payroll:batch-list")
    items = []
    if operator:
        items.append(Waiting("payroll_to_submit", _("Payroll runs checked, to submit"), counts["to_submit"],
                             f"{url}?state={B.VALIDATED}"))
    if approver:
        items.append(Waiting("payroll_to_approve", _("Payroll runs to approve"), counts["to_approve"],
                             f"{url}?state={B.SUBMITTED}"))
    items.append(Waiting("payroll_to_fund", _("Payroll runs approved, funds to check"), counts["to_fund"],
                         f"{url}?state={B.APPROVED}"))
    return items


def failure_handled():
    """A failed transfer whose payroll line was returned to the employer (treasury.waiting.HANDLED_FAILURES)."""
    return Q(source_type_id=ContentType.objects.get_for_model(PayrollLine).pk) & Exists(
        PayrollLine.objects.filter(pk=OuterRef("source_id"), returned=True))
