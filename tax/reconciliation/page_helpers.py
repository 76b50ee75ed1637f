"""View code both reconciliations' pages share (tax: tax.reconciliation.views, social insurance:
social_security.reconciliation_views): the run list page, a run report as a download, a case's corrections
as the page shows them. Each app keeps its own selectors and services and passes them in."""
from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from treasury.identifiers import mask_wallet_id
from treasury.views import filter_query

from .forms import RunNowForm

RUNS_PER_PAGE = 30
RESULTS_PER_PAGE = 100
CASES_PER_PAGE = 50


def run_list_page(request, *, template: str, runs, run_totals, can_act: bool) -> HttpResponse:
    """A page of runs, each with `shown_totals` (over the results the user may see), and the "run now" form."""
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    totals = run_totals(user=request.user, run_ids=[run.pk for run in page.object_list])
    for run in page.object_list:
        run.shown_totals = totals[run.pk]
    return render(request, template, {
        "page": page, "form": RunNowForm(initial={"check_date": timezone.localdate()}),
        "can_act": can_act, "filter_query": filter_query(request)})


def correction_of(case, correction_id: int):
    """One of the case's corrections; a 404 for another case's or none."""
    correction = case.corrections.filter(pk=correction_id).first()
    if correction is None:
        raise Http404("no such correction")
    return correction


def shown_corrections(corrections, *, user, can_act: bool, correction_actions) -> list:
    """Each correction with the actions the user may take and the wallets masked."""
    corrections = list(corrections)
    for c in corrections:
        c.actions = correction_actions(c, user) if can_act else []
        c.payer_shown, c.payee_shown = mask_wallet_id(c.payer.wallet_id), mask_wallet_id(c.payee.wallet_id)
    return corrections


# A refused proposal's problem goes under the field it is about (the rest above the form).
_CORRECTION_FIELD_OF_REFUSAL = {
    "invalid_amount": "amount", "exceeds_held": "amount", "reason_required": "reason",
    "invalid_kind": "kind", "not_signed": "kind",
}


def add_correction_refusal(form, exc: Exception) -> None:
    """A service's refusal of a proposed correction on the bound form the case page shows again."""
    field = _CORRECTION_FIELD_OF_REFUSAL.get(getattr(exc, "code", ""))
    form.add_error(field if field in form.fields else None, str(exc))
