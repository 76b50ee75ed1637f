"""Queries behind the fiscal disbursement pages and API, already scoped to the user.

Finance clerks and approvers read their own finance bureau's payment requests; auditors and
administrators read every bureau's. Anyone else reads nothing: another bureau's request, or any
request for an employer user, is "not found", exactly like one that does not exist.

Quotas (指标) are the budget system's, synchronised for the whole administrative division: finance
users, auditors and administrators read all of them; other roles none.

Nothing here writes; nothing here reads the clock. What a user may do (`request_actions`) only
drives which buttons a page shows: the services decide for real.
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
from treasury.models import NOT_PAID_STATES, Organization, TransferState
from treasury.waiting import Waiting

from .models import PaymentLine, PaymentRequest, Quota, earmark_warned
from .models import RequestState as R

FINANCE_ROLES = (roles.FINANCE_CLERK, roles.FINANCE_APPROVER)
READ_ROLES = FINANCE_ROLES + (roles.AUDITOR,)

# States after which the request's lines have transfers and a progress to show.
PAYING_OR_LATER = (R.PAYING, R.PAID, R.PARTIALLY_PAID, R.FAILED, R.REPORTING, R.REPORTED, R.RECONCILED)
# Failed lines can be retried or returned once paying has ended with failures.
LINE_ACTION_STATES = (R.PARTIALLY_PAID, R.FAILED)
ATTACHMENT_STATES = (R.DRAFT, R.SUBMITTED, R.REJECTED)
_OPEN = (TransferState.PENDING, TransferState.SUBMITTED, TransferState.UNKNOWN)


# ---------------------------------------------------------------------------------------------
# Quotas
# ---------------------------------------------------------------------------------------------


def may_see_quotas(user) -> bool:
    return sees_all_organizations(user) or roles.has_role(user, *FINANCE_ROLES)


def visible_quotas(user) -> QuerySet[Quota]:
    if not may_see_quotas(user):
        return Quota.objects.none()
    return Quota.objects.all()


def quota_list(*, user, fiscal_year: int | None = None, agency: str = "", classification: str = "",
               search: str = "") -> QuerySet[Quota]:
    """Quotas the user may see, by year then quota id. `agency` matches a budget unit's code or name,
    `classification` a functional or economic classification code (prefix: 208 finds 2080505), `search`
    the quota id, purpose or budget unit."""
    qs = visible_quotas(user).select_related("agency")
    if fiscal_year:
        qs = qs.filter(fiscal_year=fiscal_year)
    if agency := agency.strip():
        qs = qs.filter(Q(agency_code=agency) | Q(agency_name__icontains=agency))
    if classification := classification.strip():
        qs = qs.filter(Q(exp_func_code__startswith=classification) | Q(exp_eco_code__startswith=classification))
    if search := search.strip():
        qs = qs.filter(Q(quota_id__icontains=search) | Q(purpose__icontains=search)
                       | Q(agency_name__icontains=search) | Q(agency_code=search))
    return qs.order_by("-fiscal_year", "quota_id")


def quota_get(*, user, quota_id) -> Quota:
    """One quota by its primary key.

    Raises:
        Http404: no such quota, or the user may not see quotas.
    """
    try:
        return visible_quotas(user).select_related("agency").get(pk=quota_id)
    except (Quota.DoesNotExist, ValueError, TypeError):
        raise Http404("quota not found")


def quotas_for_request(*, user) -> QuerySet[Quota]:
    """Quotas a new request can draw on: something available, newest year first."""
    return visible_quotas(user).order_by("-fiscal_year", "quota_id")


# ---------------------------------------------------------------------------------------------
# Payment requests
# ---------------------------------------------------------------------------------------------


def visible_requests(user) -> QuerySet[PaymentRequest]:
    """The user's finance bureau's requests (every bureau's for auditors and administrators)."""
    if sees_all_organizations(user):
        return PaymentRequest.objects.all()
    org = user_organization(user)
    if org is None or not roles.has_role(user, *FINANCE_ROLES):
        return PaymentRequest.objects.none()
    return PaymentRequest.objects.filter(organization=org)


def request_list(*, user, state: str = "", quota: str = "", search: str = "") -> QuerySet[PaymentRequest]:
    """Requests the user may see, newest first, optionally by state, quota id and text (purpose,
    voucher number, file name)."""
    qs = visible_requests(user).select_related("organization", "quota", "prepared_by", "approved_by",
                                               "first_approved_by")
    if state:
        qs = qs.filter(state=state)
    if quota := quota.strip():
        qs = qs.filter(quota__quota_id=quota)
    if search := search.strip():
        qs = qs.filter(Q(title__icontains=search) | Q(voucher_no=search) | Q(filename__icontains=search))
    return qs.order_by("-created_at", "-pk")


def request_get(*, user, request_id) -> PaymentRequest:
    """One request the user may see.

    Raises:
        Http404: no such request, or it belongs to another bureau (the two look the same).
    """
    try:
        return visible_requests(user).select_related(
            "organization", "quota", "agency", "payer_wallet", "prepared_by", "first_approved_by", "approved_by",
        ).get(pk=request_id)
    except (PaymentRequest.DoesNotExist, ValueError, TypeError):
        raise Http404("payment request not found")


def approval_queue(*, user) -> QuerySet[PaymentRequest]:
    """Submitted requests of the user's bureau, oldest first: what waits for an approver."""
    return (visible_requests(user).filter(state=R.SUBMITTED)
            .select_related("organization", "quota", "prepared_by", "first_approved_by")
            .order_by("submitted_at", "pk"))


def request_attachments(*, request: PaymentRequest):
    return request.attachments.select_related("uploaded_by").order_by("uploaded_at", "pk")


def attachment_get(*, request: PaymentRequest, attachment_id):
    try:
        return request.attachments.get(pk=attachment_id)
    except (request.attachments.model.DoesNotExist, ValueError, TypeError):
        raise Http404("attachment not found")


# ---------------------------------------------------------------------------------------------
# Lines
# ---------------------------------------------------------------------------------------------

LINE_FILTERS = ("all", "paid", "failed", "returned", "open")


def _line_filter(status: str) -> Q | None:
    return {
        "paid": Q(returned=False, transfer__state=TransferState.SETTLED),
        "failed": Q(returned=False, transfer__state__in=NOT_PAID_STATES),
        "returned": Q(returned=True),
        "open": Q(returned=False, transfer__state__in=_OPEN),
    }.get(status)


def request_lines(*, request: PaymentRequest, status: str = "all") -> QuerySet[PaymentLine]:
    """Lines of a request already checked by `request_get`, in file order, with their transfer and
    receipt; `status` one of LINE_FILTERS (anything else: all)."""
    qs = request.lines.select_related("transfer", "transfer__receipt").order_by("line_no")
    condition = _line_filter(status)
    return qs.filter(condition) if condition is not None else qs


def line_state(line: PaymentLine) -> str:
    """returned_line, not_paid, or the state of the line's current transfer."""
    if line.returned:
        return "returned_line"
    if line.transfer_id is None:
        return "not_paid"
    return line.transfer.state


def line_is_actionable(line: PaymentLine) -> bool:
    """Its current payment failed and it was not returned (what retry_lines and return_lines accept)."""
    return not line.returned and line.transfer_id is not None and line.transfer.state in NOT_PAID_STATES


def earmark_warned_count(*, request: PaymentRequest) -> int:
    """Lines the earmark conditions will have the operator refuse (warned when the file was read)."""
    return sum(map(earmark_warned, request.lines.exclude(warnings=[]).values_list("warnings", flat=True)))


def line_refusal(line: PaymentLine) -> str:
    """The operator's refusal of the line's current payment (e.g. an earmark condition), if any; for a payment
    whose money came back, that it was returned or reversed."""
    if line.transfer_id is None or line.transfer.state not in NOT_PAID_STATES:
        return ""
    transfer = line.transfer
    if transfer.state in (TransferState.RETURNED, TransferState.REVERSED):
        return TransferState(transfer.state).label
    if transfer.failure_message and transfer.failure_code:
        return f"{transfer.failure_code}: {transfer.failure_message}"
    return transfer.failure_message or transfer.failure_code or ""


def return_note(line: PaymentLine) -> str:
    """The clerk's reason for returning the line: the stored reason (what the budget system is told) starts with
    the operator's refusal, which the page shows on its own (`line_refusal`)."""
    refusal = (line.transfer.failure_message or line.transfer.failure_code) if line.transfer_id else ""
    return line.return_reason.removeprefix(f"{refusal}; ") if refusal else line.return_reason


def returns_to_handle(*, user) -> QuerySet[PaymentLine]:
    """Failed lines (not retried, not returned) of the user's requests whose paying has ended:
    what a clerk retries or confirms as returned, grouped by request."""
    return (PaymentLine.objects.filter(request__in=visible_requests(user).filter(state__in=LINE_ACTION_STATES),
                                       returned=False, transfer__state__in=NOT_PAID_STATES)
            .select_related("request", "request__organization", "transfer")
            .order_by("-request__created_at", "request_id", "line_no"))


def returns_totals(*, user, request_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{request id: (lines, fen)} of every return to handle of these requests: the page lists a bounded number of
    lines, and a group's count and amount are the request's whole, not the listed part's."""
    rows = (returns_to_handle(user=user).filter(request_id__in=request_ids).order_by().values("request_id")
            .annotate(lines=Count("pk"), fen=Sum("amount_fen")))
    return {row["request_id"]: (row["lines"], row["fen"] or 0) for row in rows}


def settled_receipt_number(line: PaymentLine) -> str:
    """The number of the signed receipt of a settled line's payment, once issued."""
    if line.returned or line.transfer_id is None or line.transfer.state != TransferState.SETTLED:
        return ""
    receipt = getattr(line.transfer, "receipt", None)
    return receipt.number if receipt else ""


# ---------------------------------------------------------------------------------------------
# What the user may do now
# ---------------------------------------------------------------------------------------------

SUBMIT, APPROVE, REJECT, REWORK, CANCEL, RECONCILE = "submit", "approve", "reject", "rework", "cancel", "reconcile"
RESEND_VOUCHER, PAY = "resend_voucher", "pay"
ACTIONS = (SUBMIT, APPROVE, REJECT, REWORK, RESEND_VOUCHER, PAY, CANCEL, RECONCILE)
_CLERK = (roles.FINANCE_CLERK, roles.ADMIN)
_ACTION_ROLES = {
    SUBMIT: _CLERK,
    APPROVE: (roles.FINANCE_APPROVER,),  # maker-checker: an administrator needs the approver role too
    REJECT: (roles.FINANCE_APPROVER, roles.ADMIN),
    REWORK: _CLERK,
    RESEND_VOUCHER: (roles.FINANCE_CLERK, roles.FINANCE_APPROVER, roles.ADMIN),
    PAY: (roles.FINANCE_CLERK, roles.FINANCE_APPROVER, roles.ADMIN),
    CANCEL: (roles.FINANCE_CLERK, roles.FINANCE_APPROVER, roles.ADMIN),
    RECONCILE: (roles.FINANCE_CLERK, roles.FINANCE_APPROVER, roles.ADMIN),
}
# Sending the voucher again is possible while the voucher can still be issued (the request is approved);
# paying starts from an accepted voucher (normally at once; by hand after the payer account was short).
_ACTION_TRANSITIONS = {SUBMIT: "submit", APPROVE: "approve", REJECT: "reject", REWORK: "rework", CANCEL: "cancel",
                       RECONCILE: "reconcile", RESEND_VOUCHER: "issue_voucher", PAY: "start_paying"}


@dataclass(frozen=True)
class RequestActions:
    available: tuple[str, ...]
    awaiting_other_approver: bool  # the user prepared it or approved it first: someone else must approve
    can_edit_payees: bool
    can_add_attachments: bool
    can_act_on_lines: bool


def _own(user, request: PaymentRequest) -> bool:
    return user_organization(user) == request.organization or roles.has_role(user, roles.ADMIN)


def may_change(user, request: PaymentRequest, *role_names: str) -> bool:
    return not roles.is_read_only(user) and _own(user, request) and roles.has_role(user, *role_names)


def request_actions(*, user, request: PaymentRequest) -> RequestActions:
    """The transitions `user` may start on `request` now (read-only roles: none)."""
    available = []
    awaiting = False
    for action in ACTIONS:
        if not may_change(user, request, *_ACTION_ROLES[action]):
            continue
        if not can_proceed(getattr(request, _ACTION_TRANSITIONS[action])):
            continue
        if action == SUBMIT and (request.problem_count or not request.line_count
                                 or user.pk != request.prepared_by_id):
            continue
        if action == APPROVE and user.pk in (request.prepared_by_id, request.first_approved_by_id):
            awaiting = True
            continue
        available.append(action)
    return RequestActions(
        available=tuple(available),
        awaiting_other_approver=awaiting,
        can_edit_payees=(request.state == R.DRAFT and user.pk == request.prepared_by_id
                         and may_change(user, request, *_CLERK)),
        can_add_attachments=request.state in ATTACHMENT_STATES and may_change(user, request, *_CLERK),
        can_act_on_lines=request.state in LINE_ACTION_STATES and may_change(user, request, *_CLERK),
    )


def may_create_requests(user) -> bool:
    return (not roles.is_read_only(user) and roles.has_role(user, roles.FINANCE_CLERK)
            and user_organization(user) is not None)


def may_sync_quotas(user) -> bool:
    return not roles.is_read_only(user) and roles.has_role(user, roles.FINANCE_CLERK, roles.ADMIN)


# ---------------------------------------------------------------------------------------------
# The daily report
# ---------------------------------------------------------------------------------------------


def report_organizations(user) -> QuerySet[Organization]:
    """Finance bureaus whose daily report the user may read: their own; every one for auditors and admins."""
    bureaus = Organization.objects.filter(org_type=Organization.Type.FINANCE_BUREAU).order_by("name", "pk")
    if sees_all_organizations(user):
        return bureaus
    org = user_organization(user)
    if org is None or not roles.has_role(user, *FINANCE_ROLES):
        return bureaus.none()
    return Organization.objects.filter(pk=org.pk)


def report_organization(*, user, organization_id=None) -> Organization:
    """The bureau a daily report is about: the one asked for (if the user may read it), else the user's own,
    else (auditors without one) the first bureau.

    Raises:
        Http404: the user may read no such bureau's report.
    """
    allowed = report_organizations(user)
    if organization_id not in (None, ""):
        try:
            return allowed.get(pk=organization_id)
        except (Organization.DoesNotExist, ValueError, TypeError):
            raise Http404("organization not found")
    own = user_organization(user)
    if own is not None and (sees_all_organizations(user) or allowed.filter(pk=own.pk).exists()):
        return own
    first = allowed.first()
    if first is None:
        raise Http404("no finance bureau")
    return first


def waiting_for(user) -> list[Waiting]:
    """For approvers, submitted requests they neither prepared nor approved first (maker-checker); for clerks,
    requests sent back to them for changes and vouchers the budget system refused (treasury.waiting)."""
    approver = roles.has_role(user, roles.FINANCE_APPROVER)
    clerk = roles.has_role(user, *_CLERK)
    if roles.is_read_only(user) or not (approver or clerk):
        return []
    requests = visible_requests(user)
    url = reverse("fiscal:request_list")
    items = []
    if approver:
        to_approve = (requests.filter(state=R.SUBMITTED).exclude(prepared_by=user)
                      .exclude(first_approved_by=user).count())
        items.append(Waiting("fiscal_to_approve", _("Payment requests to approve"), to_approve,
                             f"{url}?state={R.SUBMITTED}"))
    if clerk:
        counts = requests.aggregate(returned=Count("pk", filter=Q(state=R.REJECTED)),
                                    refused=Count("pk", filter=Q(state=R.VOUCHER_REFUSED)))
        items += [
            Waiting("fiscal_returned", _("Payment requests returned for changes"), counts["returned"],
                    f"{url}?state={R.REJECTED}"),
            Waiting("fiscal_voucher_refused", _("Payment vouchers the budget system refused"), counts["refused"],
                    f"{url}?state={R.VOUCHER_REFUSED}"),
        ]
    return items


def failure_handled():
    """A failed transfer whose payment line the clerk confirmed returned (treasury.waiting.HANDLED_FAILURES)."""
    return Q(source_type_id=ContentType.objects.get_for_model(PaymentLine).pk) & Exists(
        PaymentLine.objects.filter(pk=OuterRef("source_id"), returned=True))
