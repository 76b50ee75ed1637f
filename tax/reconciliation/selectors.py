"""Reads of reconciliation for pages and the API, scoped like the other tax reads: tax staff see their own
tax authority's results and cases (and the runs that cover it: its own and the all-authority run);
auditors and administrators see everything."""
from __future__ import annotations

from django.db.models import Q, Sum
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tax.models import TaxDeduction
from tax.selectors import _tax_org_codes
from treasury.access import roles
from treasury.waiting import Waiting

from .models import (
    CONSISTENT_OUTCOMES,
    CaseCorrection,
    CaseState,
    CorrectionState,
    DiscrepancyCase,
    Outcome,
    ReconciliationResult,
    ReconciliationRun,
    ReconciliationTotal,
)


def visible_runs(user):
    codes = _tax_org_codes(user)
    qs = ReconciliationRun.objects.all()
    return qs if codes is None else qs.filter(Q(tax_org_code="") | Q(tax_org_code__in=codes))


def run_list(*, user):
    return visible_runs(user).order_by("-check_date", "tax_org_code", "-pk")


def run_get(*, user, run_id: int) -> ReconciliationRun:
    run = visible_runs(user).filter(pk=run_id).first()
    if run is None:
        raise Http404("no such run")
    return run


def _scoped(qs, user):
    codes = _tax_org_codes(user)
    return qs if codes is None else qs.filter(tax_org_code__in=codes)


def result_list(*, user, run: ReconciliationRun, outcome: str = ""):
    """The run's result rows: every serial that is not matched (matched serials are only counted, see
    `run_totals`)."""
    qs = _scoped(ReconciliationResult.objects.filter(run=run), user).select_related("case")
    if outcome:
        qs = qs.filter(outcome=outcome)
    return qs.order_by("entrust_date", "tra_no", "pk")


def run_totals(*, user, run_ids: list[int]) -> dict[int, dict]:
    """{run id: {"outcomes": [{outcome, label, count, tax_fen, ours_fen, operator_fen}], "count": n,
    "discrepancies": n, "tax_fen", "ours_fen", "operator_fen"}} over the serials the user may see (from the
    run's totals per tax authority and outcome, so matched serials, which have no result row, count too)."""
    labels = dict(Outcome.choices)
    rows = (_scoped(ReconciliationTotal.objects.filter(run_id__in=run_ids), user)
            .values("run_id", "outcome")
            .annotate(n=Sum("count"), tax_fen=Sum("tax_amount_fen"), ours_fen=Sum("ours_amount_fen"),
                      operator_fen=Sum("operator_amount_fen"))
            .order_by("run_id", "outcome"))
    totals = {run_id: {"outcomes": [], "count": 0, "discrepancies": 0, "tax_fen": 0, "ours_fen": 0,
                       "operator_fen": 0} for run_id in run_ids}
    order = {value: i for i, value in enumerate(Outcome.values)}
    for row in rows:
        t = totals[row["run_id"]]
        item = {"outcome": row["outcome"], "label": labels.get(row["outcome"], row["outcome"]), "count": int(row["n"] or 0),
                "tax_fen": int(row["tax_fen"] or 0), "ours_fen": int(row["ours_fen"] or 0),
                "operator_fen": int(row["operator_fen"] or 0)}
        t["outcomes"].append(item)
        t["count"] += item["count"]
        if row["outcome"] not in CONSISTENT_OUTCOMES:
            t["discrepancies"] += item["count"]
        for key in ("tax_fen", "ours_fen", "operator_fen"):
            t[key] += item[key]
    for t in totals.values():
        t["outcomes"].sort(key=lambda item: order.get(item["outcome"], 99))
    return totals


def deductions_of(results) -> dict[int, TaxDeduction]:
    ids = {r.deduction_id for r in results if r.deduction_id}
    return TaxDeduction.objects.select_related("agreement").in_bulk(ids) if ids else {}


def visible_cases(user):
    return _scoped(DiscrepancyCase.objects.all(), user)


def case_list(*, user, state: str = "", check_date=None, correction_proposed: bool = False):
    qs = visible_cases(user)
    if state:
        qs = qs.filter(state=state)
    if check_date:
        qs = qs.filter(check_date=check_date)
    if correction_proposed:  # a case has one proposed correction at most (a constraint): no row twice
        qs = qs.filter(corrections__state=CorrectionState.PROPOSED)
    return qs.order_by("-check_date", "tra_no", "pk")


def case_get(*, user, case_id: int) -> DiscrepancyCase:
    case = visible_cases(user).filter(pk=case_id).first()
    if case is None:
        raise Http404("no such case")
    return case


def case_results(*, user, case: DiscrepancyCase):
    return _scoped(ReconciliationResult.objects.filter(case=case), user).select_related("run").order_by("-run__check_date")


def waiting_for(user) -> list[Waiting]:
    """Tax discrepancy cases to take up and corrections to approve (treasury.waiting)."""
    if roles.is_read_only(user) or not roles.has_role(user, roles.TAX_STAFF, roles.ADMIN):
        return []
    return cases_waiting_for(user, cases=visible_cases(user), corrections=CaseCorrection.objects,
                             url=reverse("tax:reconciliation-cases"), key="tax",
                             labels=(_("Tax discrepancy cases to take up"), _("Tax corrections to approve")))


def cases_waiting_for(user, *, cases, corrections, url: str, key: str, labels) -> list[Waiting]:
    """What a case workflow has waiting (tax and premium reconciliation alike): the cases still open, and the
    corrections of those cases waiting for approval by someone other than their proposer (maker-checker)."""
    open_label, approve_label = labels
    to_approve = (corrections.filter(state=CorrectionState.PROPOSED, case__in=cases)
                  .exclude(proposed_by=user).count())
    return [
        Waiting(f"{key}_cases_open", open_label, cases.filter(state=CaseState.OPEN).count(),
                f"{url}?state={CaseState.OPEN}"),
        Waiting(f"{key}_corrections_to_approve", approve_label, to_approve, f"{url}?correction_proposed=on"),
    ]
