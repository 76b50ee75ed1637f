"""Queries the pages and the API use, already scoped to the user (the one place that says who sees what).

- employer operators and approvers: their own employer's declarations (another employer's answer 404);
- tax staff: every declaration their tax authority collects (read only);
- auditors and administrators: all (auditors read only);
- anyone else: none.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django_fsm import can_proceed

from social_security.models import Declaration, DeclarationLine
from social_security.models import DeclarationState as S
from treasury.access import roles
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.waiting import Waiting

EMPLOYER_ROLES = (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER)
READ_ROLES = EMPLOYER_ROLES + (roles.TAX_STAFF, roles.AUDITOR, roles.ADMIN)


def visible_declarations(user) -> QuerySet[Declaration]:
    base = Declaration.objects.select_related("employer", "region", "tax_authority", "transfer")
    if sees_all_organizations(user):
        return base
    org = user_organization(user)
    if org is None:
        return base.none()
    if roles.has_role(user, *EMPLOYER_ROLES):
        return base.filter(employer=org)
    if roles.has_role(user, roles.TAX_STAFF):
        return base.filter(tax_authority=org)
    return base.none()


def declaration_list(*, user, state: str = "", period: str = "", employer: str = "") -> QuerySet[Declaration]:
    qs = visible_declarations(user)
    if state:
        qs = qs.filter(state=state)
    if period:
        qs = qs.filter(period=period)
    if employer:
        qs = qs.filter(employer__name__icontains=employer)
    return qs.order_by("-period", "-created_at", "-pk")


def declaration_get(*, user, declaration_id) -> Declaration:
    """The declaration if the user may see it; Http404 otherwise (as if it did not exist)."""
    try:
        return visible_declarations(user).get(pk=int(declaration_id))
    except (Declaration.DoesNotExist, ValueError, TypeError):
        raise Http404("no such declaration")


def declaration_lines(*, declaration: Declaration) -> QuerySet[DeclarationLine]:
    return declaration.lines.order_by("line_no")


@dataclass(frozen=True)
class DeclarationActions:
    """What the user may do on a declaration now (drives buttons and the API's `actions`)."""

    edit: bool = False
    declare: bool = False
    pay: bool = False
    reopen: bool = False
    cancel: bool = False

    def names(self) -> list[str]:
        return [name for name in ("edit", "declare", "pay", "reopen", "cancel") if getattr(self, name)]


def declaration_actions(*, user, declaration: Declaration) -> DeclarationActions:
    if roles.is_read_only(user) or user_organization(user) != declaration.employer:
        return DeclarationActions()
    operator = roles.has_role(user, roles.EMPLOYER_OPERATOR)
    # Maker-checker shown as the services enforce it: the preparer never declares or pays.
    approver = roles.has_role(user, roles.EMPLOYER_APPROVER) and declaration.prepared_by_id != user.pk
    return DeclarationActions(
        edit=operator and declaration.state == S.DRAFT and declaration.prepared_by_id == user.pk,
        declare=approver and can_proceed(declaration.declare),
        pay=approver and declaration.state == S.CONFIRMED,
        reopen=operator and declaration.state == S.REJECTED,
        cancel=(operator or approver) and declaration.state in (S.DRAFT, S.REJECTED),
    )


def may_prepare(user) -> bool:
    org = user_organization(user)
    return bool(org is not None and roles.has_role(user, roles.EMPLOYER_OPERATOR) and not roles.is_read_only(user))


def receipt_number(*, declaration: Declaration) -> str:
    """The signed receipt (电子回单) of the transfer that paid it, once issued."""
    from treasury.receipts.models import Receipt

    if declaration.transfer_id is None or declaration.state not in (S.PAID, S.RECONCILED):
        return ""
    return Receipt.objects.filter(transfer_id=declaration.transfer_id).values_list("number", flat=True).first() or ""


def payroll_batches(*, user):
    """The employer's payroll batches a declaration may be taken from (validated or later)."""
    from payroll.models import BatchState, PayrollBatch

    org = user_organization(user)
    if org is None:
        return PayrollBatch.objects.none()
    return (PayrollBatch.objects.filter(employer=org)
            .exclude(state__in=[BatchState.UPLOADED, BatchState.REJECTED, BatchState.CANCELLED])
            .order_by("-period", "-pk"))


# ---------------------------------------------------------------------------------------------
# Reconciliation: tax staff see their authority's results and cases; auditors and administrators all
# ---------------------------------------------------------------------------------------------

RECONCILIATION_ROLES = (roles.TAX_STAFF, roles.AUDITOR, roles.ADMIN)


def _authority_scope(user, qs):
    if sees_all_organizations(user):
        return qs
    org = user_organization(user)
    if org is None or not roles.has_role(user, roles.TAX_STAFF):
        return qs.none()
    return qs.filter(tax_authority=org)


def visible_results(user):
    from social_security.models import ReconciliationResult

    return _authority_scope(user, ReconciliationResult.objects.select_related("case", "run"))


def visible_cases(user):
    from social_security.models import SocialDiscrepancyCase

    return _authority_scope(user, SocialDiscrepancyCase.objects.select_related("tax_authority"))


def reconciliation_runs(*, user):
    """Every day reconciled (a run covers every authority); what each shows is scoped by `run_totals`."""
    from social_security.models import ReconciliationRun

    if not roles.has_role(user, *RECONCILIATION_ROLES):
        return ReconciliationRun.objects.none()
    return ReconciliationRun.objects.order_by("-check_date")


def reconciliation_run_get(*, user, run_id):
    from social_security.models import ReconciliationRun

    try:
        return reconciliation_runs(user=user).get(pk=int(run_id))
    except (ReconciliationRun.DoesNotExist, ValueError, TypeError):
        raise Http404("no such reconciliation run")


def run_totals(*, user, run_ids: list[int]) -> dict[int, dict]:
    """Per run, over the results the user may see: count and sums (ours, operator) per outcome and in all."""
    from django.db.models import Count, Sum

    from social_security.models import ReconciliationOutcome

    labels = dict(ReconciliationOutcome.choices)
    totals = {pk: {"outcomes": [], "count": 0, "discrepancies": 0, "ours_fen": 0, "operator_fen": 0}
              for pk in run_ids}
    rows = (visible_results(user).filter(run_id__in=run_ids).values("run_id", "outcome")
            .annotate(count=Count("pk"), ours_fen=Sum("ours_fen"), operator_fen=Sum("operator_fen"))
            .order_by("run_id", "outcome"))
    for row in rows:
        item = {"outcome": row["outcome"], "label": labels.get(row["outcome"], row["outcome"]),
                "count": row["count"], "ours_fen": row["ours_fen"] or 0, "operator_fen": row["operator_fen"] or 0}
        run = totals[row["run_id"]]
        run["outcomes"].append(item)
        run["count"] += item["count"]
        run["discrepancies"] += item["count"] if item["outcome"] != ReconciliationOutcome.MATCHED else 0
        run["ours_fen"] += item["ours_fen"]
        run["operator_fen"] += item["operator_fen"]
    return totals


def run_results(*, user, run, outcome: str = "", source: str = ""):
    qs = visible_results(user).filter(run=run)
    if outcome:
        qs = qs.filter(outcome=outcome)
    if source:
        qs = qs.filter(source=source)
    return qs.order_by("source", "request_id")


def case_list(*, user, state: str = "", check_date=None, source: str = "", outcome: str = "",
              correction_proposed: bool = False):
    qs = visible_cases(user)
    if state:
        qs = qs.filter(state=state)
    if check_date:
        qs = qs.filter(check_date=check_date)
    if source:
        qs = qs.filter(source=source)
    if outcome:
        qs = qs.filter(outcome=outcome)
    if correction_proposed:  # a case has one proposed correction at most (a constraint): no row twice
        qs = qs.filter(corrections__state="proposed")
    return qs.order_by("-check_date", "request_id")


def case_get(*, user, case_id):
    """The case if the user may see it; Http404 otherwise (another authority's case as if it did not exist)."""
    from social_security.models import SocialDiscrepancyCase

    try:
        return visible_cases(user).get(pk=int(case_id))
    except (SocialDiscrepancyCase.DoesNotExist, ValueError, TypeError):
        raise Http404("no such case")


def waiting_for(user) -> list[Waiting]:
    """For the employer's approvers, declarations someone else prepared, to declare and, once the tax system
    confirmed them, to pay; for its operators, declarations sent back; for tax staff, premium discrepancy cases
    still open and corrections waiting for approval by someone other than their proposer (maker-checker;
    treasury.waiting)."""
    if roles.is_read_only(user):
        return []
    if roles.has_role(user, *EMPLOYER_ROLES):
        return _declarations_waiting_for(user)
    if roles.has_role(user, roles.TAX_STAFF, roles.ADMIN):
        return _cases_waiting_for(user)
    return []


def _declarations_waiting_for(user) -> list[Waiting]:
    declarations = visible_declarations(user)
    url = reverse("social:declaration-list")
    items = []
    if roles.has_role(user, roles.EMPLOYER_APPROVER):
        others = declarations.exclude(prepared_by=user).aggregate(
            to_declare=Count("pk", filter=Q(state=S.DRAFT)), to_pay=Count("pk", filter=Q(state=S.CONFIRMED)))
        items += [
            Waiting("social_to_declare", _("Premium declarations to declare"), others["to_declare"],
                    f"{url}?state={S.DRAFT}"),
            Waiting("social_to_pay", _("Premium declarations confirmed, to pay"), others["to_pay"],
                    f"{url}?state={S.CONFIRMED}"),
        ]
    if roles.has_role(user, roles.EMPLOYER_OPERATOR):
        items.append(Waiting("social_sent_back", _("Premium declarations sent back"),
                             declarations.filter(state=S.REJECTED).count(), f"{url}?state={S.REJECTED}"))
    return items


def _cases_waiting_for(user) -> list[Waiting]:
    from social_security.models import SocialCaseCorrection
    from tax.reconciliation.selectors import cases_waiting_for

    return cases_waiting_for(user, cases=visible_cases(user), corrections=SocialCaseCorrection.objects,
                             url=reverse("social:reconciliation-cases"), key="social",
                             labels=(_("Premium discrepancy cases to take up"), _("Premium corrections to approve")))
