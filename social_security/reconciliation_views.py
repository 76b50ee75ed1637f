"""Premium reconciliation pages (社保费对账, /social/reconciliation/): a day's run with totals by outcome, its
results (discrepancies first) filtered by outcome and source, CSV and PDF; discrepancy cases with investigate /
resolve and correcting transfers (one staff member proposes, another approves).

Tax staff act on their own authority's cases; auditors and administrators read. The page patterns, forms and
who-acts rule are the tax reconciliation pages' (tax/reconciliation/views.py, forms.py, page_helpers.py); reads
come from `selectors` (another authority's case is a 404) and each action calls one service.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST, require_safe
from django_fsm import ConcurrentTransition, TransitionNotAllowed, can_proceed

from social_security import reconciliation, reconciliation_reports, selectors
from social_security.models import CorrectionKind, ReconciliationOutcome, ReconciliationSource
from tax.reconciliation.forms import (
    CaseFilterForm, CorrectionForm, InvestigateForm, RejectCorrectionForm, ResolveForm, RunNowForm,
)
from tax.forms import ALL
from tax.reconciliation.models import CaseState
from tax.reconciliation.page_helpers import (
    CASES_PER_PAGE, RESULTS_PER_PAGE, add_correction_refusal, correction_of, run_list_page, shown_corrections,
)
from tax.reconciliation.services import ReconciliationError
from tax.reconciliation.views import acts, staff_only
from treasury.access import roles
from treasury.access.decorators import role_required
from treasury.access.errors import AccessDenied
from treasury.exports import download
from treasury.services.transfers import OperatorRejected, OperatorUnavailable
from treasury.views import filter_query

ANY = [ALL]


class ResultFilterForm(forms.Form):
    outcome = forms.ChoiceField(label=gettext_lazy("Outcome"), required=False,
                                choices=ANY + list(ReconciliationOutcome.choices))
    source = forms.ChoiceField(label=gettext_lazy("Source"), required=False,
                               choices=ANY + list(ReconciliationSource.choices))


class SocialCaseFilterForm(CaseFilterForm):
    source = forms.ChoiceField(label=gettext_lazy("Source"), required=False,
                               choices=ANY + list(ReconciliationSource.choices))
    outcome = forms.ChoiceField(label=gettext_lazy("Discrepancy kind"), required=False,
                                choices=ANY + [c for c in ReconciliationOutcome.choices if c[0] != "matched"])


class SocialCorrectionForm(CorrectionForm):
    kind = forms.ChoiceField(label=gettext_lazy("Correction kind"), choices=CorrectionKind.choices)


def _cleaned(form) -> dict:
    return form.cleaned_data if form.is_valid() else {}


@require_safe
@login_required
@role_required(*selectors.RECONCILIATION_ROLES)
def run_list(request):
    return run_list_page(request, template="social_security/reconciliation/run_list.html",
                         runs=selectors.reconciliation_runs(user=request.user), run_totals=selectors.run_totals,
                         can_act=acts(request.user))


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@staff_only
def run_now(request):
    """Reconcile a check date now (the day's run covers every authority; each sees their own)."""
    form = RunNowForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("check_date", [])) or _("Please give a check date."))
        return redirect("social:reconciliation")
    try:
        run = reconciliation.reconcile_now(check_date=form.cleaned_data["check_date"])
    except (OperatorUnavailable, OperatorRejected) as exc:
        messages.error(request, _("The operator's statement could not be fetched; nothing changed: %(error)s")
                       % {"error": exc})
        return redirect("social:reconciliation")
    messages.success(request, _("Reconciled."))
    return redirect("social:reconciliation-run", run_id=run.pk)


@require_safe
@login_required
@role_required(*selectors.RECONCILIATION_ROLES)
def run_detail(request, run_id: int):
    run = selectors.reconciliation_run_get(user=request.user, run_id=run_id)
    form = ResultFilterForm(request.GET or None)
    data = _cleaned(form)
    results = selectors.run_results(user=request.user, run=run, outcome=data.get("outcome") or "",
                                    source=data.get("source") or "").select_related("tax_authority")
    page = Paginator(results, RESULTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "social_security/reconciliation/run_detail.html", {
        "run": run, "page": page, "form": form,
        "totals": selectors.run_totals(user=request.user, run_ids=[run.pk])[run.pk],
        "filter_query": filter_query(request)})


@require_safe
@login_required
@role_required(*selectors.RECONCILIATION_ROLES)
def run_report_csv(request, run_id: int):
    run = selectors.reconciliation_run_get(user=request.user, run_id=run_id)
    return download(reconciliation_reports.run_csv(user=request.user, run=run), content_type="text/csv; charset=utf-8",
                    filename=f"social-reconciliation-{run.check_date:%Y%m%d}.csv")


@require_safe
@login_required
@role_required(*selectors.RECONCILIATION_ROLES)
def run_report_pdf(request, run_id: int):
    run = selectors.reconciliation_run_get(user=request.user, run_id=run_id)
    return download(reconciliation_reports.run_pdf(user=request.user, run=run), content_type="application/pdf",
                    filename=f"social-reconciliation-{run.check_date:%Y%m%d}.pdf")


@require_safe
@login_required
@role_required(*selectors.RECONCILIATION_ROLES)
def case_list(request):
    form = SocialCaseFilterForm(request.GET or None)
    data = _cleaned(form)
    cases = selectors.case_list(user=request.user, state=data.get("state") or "", check_date=data.get("check_date"),
                                source=data.get("source") or "", outcome=data.get("outcome") or "",
                                correction_proposed=bool(data.get("correction_proposed")))
    page = Paginator(cases, CASES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "social_security/reconciliation/case_list.html", {
        "page": page, "form": form, "filter_query": filter_query(request)})


@require_safe
@login_required
@role_required(*selectors.RECONCILIATION_ROLES)
def case_detail(request, case_id: int):
    return _case_page(request, selectors.case_get(user=request.user, case_id=case_id))


def _case_page(request, case, *, correction_form=None, status: int = 200):
    """The case page; after a refused proposal, with the bound form (what was typed, and why) and a 400."""
    can_act = acts(request.user)
    results = list(case.results.select_related("run").order_by("-run__check_date")[:20])
    corrections = shown_corrections(
        case.corrections.select_related("payer", "payee", "transfer", "proposed_by", "decided_by"),
        user=request.user, can_act=can_act, correction_actions=reconciliation.correction_actions)
    return render(request, "social_security/reconciliation/case_detail.html", {
        "case": case, "results": results, "corrections": corrections,
        "can_investigate": can_act and can_proceed(case.investigate),
        "can_resolve": can_act and case.state != CaseState.RESOLVED,
        "can_propose": can_act and case.state != CaseState.RESOLVED,
        "correction_form": correction_form or SocialCorrectionForm(),
        "page_url": reverse("social:reconciliation-case", args=[case.pk]) if request.method == "POST" else ""},
        status=status)


def _refused(request, exc) -> None:
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        messages.error(request, _("The state does not allow this; the page shows what it is now."))
    else:
        messages.error(request, str(exc))


REFUSALS = (TransitionNotAllowed, ConcurrentTransition, ReconciliationError, AccessDenied)


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@staff_only
def case_action(request, case_id: int, action: str):
    case = selectors.case_get(user=request.user, case_id=case_id)  # 404 before anything else
    now = timezone.now()
    try:
        if action == "investigate":
            form = InvestigateForm(request.POST)
            reconciliation.investigate_case(case_id=case.pk, user=request.user,
                                            note=_cleaned(form).get("note", ""), now=now)
            messages.success(request, _("The case is being investigated."))
        elif action == "resolve":
            form = ResolveForm(request.POST)
            reconciliation.resolve_case(case_id=case.pk, user=request.user, reason=_cleaned(form).get("reason", ""),
                                        now=now)
            messages.success(request, _("The case is resolved."))
        elif action == "propose":
            form = SocialCorrectionForm(request.POST)
            if not form.is_valid():
                return _case_page(request, case, correction_form=form, status=400)
            try:
                reconciliation.propose_correction(case_id=case.pk, user=request.user, kind=form.cleaned_data["kind"],
                                                  amount_fen=form.cleaned_data["amount"],
                                                  reason=form.cleaned_data["reason"], now=now)
            except (ReconciliationError, AccessDenied) as exc:  # shown with what was typed, at its field
                add_correction_refusal(form, exc)
                return _case_page(request, case, correction_form=form, status=400)
            messages.success(request, _("Correction proposed; another tax staff member approves it."))
        else:
            raise Http404("no such action")
    except REFUSALS as exc:
        _refused(request, exc)
    return redirect("social:reconciliation-case", case_id=case.pk)


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@staff_only
def correction_decide(request, case_id: int, correction_id: int, decision: str):
    """Approve (the transfer is made) or reject (with a reason) a proposed correction."""
    case = selectors.case_get(user=request.user, case_id=case_id)
    correction = correction_of(case, correction_id)
    now = timezone.now()
    try:
        if decision == "approve":
            done = reconciliation.approve_correction(correction_id=correction.pk, user=request.user, now=now)
            messages.success(request, _("Approved; correcting transfer %(id)s submitted.") % {"id": done.transfer_id})
        else:
            form = RejectCorrectionForm(request.POST)
            reconciliation.reject_correction(correction_id=correction.pk, user=request.user,
                                             reason=_cleaned(form).get("reason", ""), now=now)
            messages.success(request, _("The correction is rejected."))
    except REFUSALS as exc:
        _refused(request, exc)
    return redirect("social:reconciliation-case", case_id=case.pk)
