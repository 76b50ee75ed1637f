"""Reconciliation pages (对账): runs by check date with totals per outcome, a run's result rows by outcome,
discrepancy cases with investigate / resolve, a "run now" form (queues the run; its page shows the progress),
CSV and PDF reports of a run.

Tax staff act (on their own tax authority's cases); auditors and administrators read. Reads come from
`selectors` (scoped: another authority's case is a 404); each action calls one service.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST, require_safe
from django_fsm import ConcurrentTransition, TransitionNotAllowed, can_proceed

from tax.views import READ_ROLES, shown_deduction
from treasury.access import roles
from treasury.access.decorators import role_required
from treasury.access.errors import AccessDenied
from treasury.access.scoping import user_organization
from treasury.exports import download
from treasury.views import filter_query

from . import corrections, documents, selectors, services
from .forms import (
    CaseFilterForm, CorrectionForm, InvestigateForm, OutcomeFilterForm, RejectCorrectionForm, ResolveForm, RunNowForm,
)
from .models import CaseState, RunStep
from .page_helpers import (
    CASES_PER_PAGE, RESULTS_PER_PAGE, add_correction_refusal, correction_of, run_list_page, shown_corrections,
)


def acts(user) -> bool:
    """Only tax staff act here; auditors and administrators read."""
    return roles.has_role(user, roles.TAX_STAFF) and not roles.is_read_only(user) and not roles.has_role(user, roles.ADMIN)


def staff_only(view):
    def wrapped(request, *args, **kwargs):
        if not acts(request.user):
            raise PermissionDenied("仅税务人员可操作 (only tax staff act on reconciliation)")
        return view(request, *args, **kwargs)

    wrapped.__name__, wrapped.__doc__ = view.__name__, view.__doc__
    return wrapped


def staff_tax_org_code(user) -> str:
    org = user_organization(user)
    return org.code if org is not None and org.code else ""


def describe_results(results) -> list:
    """Each row with `shown`: the payer's name and wallet masked (from our deduction, when there is one)."""
    deductions = selectors.deductions_of(results)
    for result in results:
        deduction = deductions.get(result.deduction_id)
        result.shown = shown_deduction(deduction) if deduction else {"tax_pay_name": "", "pay_acct": ""}
    return results


@require_safe
@login_required
@role_required(*READ_ROLES)
def run_list(request):
    return run_list_page(request, template="tax/reconciliation/run_list.html",
                         runs=selectors.run_list(user=request.user), run_totals=selectors.run_totals,
                         can_act=acts(request.user))


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@staff_only
def run_now(request):
    """Queue the reconciliation of a check date for the user's tax authority; its page shows the progress."""
    form = RunNowForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("check_date", [])) or _("Please give a check date."))
        return redirect("tax:reconciliation")
    try:
        run, queued = services.request_run(check_date=form.cleaned_data["check_date"],
                                           tax_org_code=staff_tax_org_code(request.user), user=request.user,
                                           now=timezone.now())
    except AccessDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    if not queued:
        messages.info(request, _("This check date is already being reconciled; this page shows how far it is."))
    elif run.step:
        messages.success(request, _("Queued: this page shows how far the reconciliation is."))
    elif run.failure:  # a worker in this process (Celery eager) already tried
        messages.error(request, run.failure)  # the failure is data (bilingual)
    elif run.state == "waiting":
        messages.warning(request, run.note or _("The tax system's check detail is not complete."))  # the note is data
    else:
        messages.success(request, ngettext("Reconciled: %(count)s discrepancy.", "Reconciled: %(count)s discrepancies.",
                                           run.discrepancy_count) % {"count": run.discrepancy_count})
    return redirect("tax:reconciliation-run", run_id=run.pk)


def run_progress_data(run) -> dict:
    """How far a run is, for its page's progress panel and the JSON it polls."""
    now = timezone.now()
    steps = [RunStep.QUEUED, RunStep.FETCHING, RunStep.MATCHING]
    current = steps.index(run.step) if run.step in steps else -1
    in_progress = run.in_progress(now)
    return {
        "run_id": run.pk, "state": run.state, "state_label": str(run.get_state_display()),
        "in_progress": in_progress, "stalled": bool(run.step) and not in_progress,
        "step": run.step, "step_label": str(run.get_step_display()) if run.step else "",
        "step_number": current + 1, "step_count": len(steps),
        "steps": [{"step": step.value, "label": str(step.label), "done": i < current, "current": i == current}
                  for i, step in enumerate(steps)],
        "step_at": run.step_at.isoformat() if run.step_at else None,
        "seconds": int((now - run.step_at).total_seconds()) if run.step and run.step_at else None,
        "requested_by": run.requested_by, "requested_at": run.requested_at.isoformat() if run.requested_at else None,
        "failure": run.failure,
    }


@require_safe
@login_required
@role_required(*READ_ROLES)
def run_progress(request, run_id: int):
    """JSON: how far a run is (the run page polls it while the run is queued or under way)."""
    run = selectors.run_get(user=request.user, run_id=run_id)
    return JsonResponse(run_progress_data(run))


@require_safe
@login_required
@role_required(*READ_ROLES)
def run_detail(request, run_id: int):
    run = selectors.run_get(user=request.user, run_id=run_id)
    form = OutcomeFilterForm(request.GET or None)
    outcome = form.cleaned_data.get("outcome", "") if form.is_valid() else ""
    page = Paginator(selectors.result_list(user=request.user, run=run, outcome=outcome),
                     RESULTS_PER_PAGE).get_page(request.GET.get("page"))
    describe_results(page.object_list)
    return render(request, "tax/reconciliation/run_detail.html", {
        "run": run, "page": page, "form": form,
        "totals": selectors.run_totals(user=request.user, run_ids=[run.pk])[run.pk],
        "progress": run_progress_data(run), "can_act": acts(request.user), "filter_query": filter_query(request)})


@require_safe
@login_required
@role_required(*READ_ROLES)
def run_report_csv(request, run_id: int):
    run = selectors.run_get(user=request.user, run_id=run_id)
    return download(documents.run_csv(user=request.user, run=run), content_type="text/csv; charset=utf-8",
                    filename=f"tax-reconciliation-{run.check_date:%Y%m%d}.csv")


@require_safe
@login_required
@role_required(*READ_ROLES)
def run_report_pdf(request, run_id: int):
    run = selectors.run_get(user=request.user, run_id=run_id)
    return download(documents.run_pdf(user=request.user, run=run), content_type="application/pdf",
                    filename=f"tax-reconciliation-{run.check_date:%Y%m%d}.pdf")


@require_safe
@login_required
@role_required(*READ_ROLES)
def case_list(request):
    form = CaseFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    page = Paginator(selectors.case_list(user=request.user, state=data.get("state") or "",
                                         check_date=data.get("check_date"),
                                         correction_proposed=bool(data.get("correction_proposed"))),
                     CASES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "tax/reconciliation/case_list.html", {
        "page": page, "form": form, "filter_query": filter_query(request)})


@require_safe
@login_required
@role_required(*READ_ROLES)
def case_detail(request, case_id: int):
    return _case_page(request, selectors.case_get(user=request.user, case_id=case_id))


def _case_page(request, case, *, correction_form=None, status: int = 200):
    """The case page; after a refused proposal, with the bound form (what was typed, and why) and a 400."""
    results = describe_results(list(selectors.case_results(user=request.user, case=case)[:20]))
    can_act = acts(request.user)
    case_corrections = shown_corrections(
        case.corrections.select_related("payer", "payee", "transfer").order_by("-proposed_at"),
        user=request.user, can_act=can_act, correction_actions=corrections.correction_actions)
    return render(request, "tax/reconciliation/case_detail.html", {
        "case": case, "results": results,
        "can_investigate": can_act and can_proceed(case.investigate),
        "can_resolve": can_act and case.state != CaseState.RESOLVED,
        "investigate_form": InvestigateForm(), "resolve_form": ResolveForm(),
        "corrections": case_corrections, "correction_form": correction_form or CorrectionForm(),
        "can_propose": can_act and case.state != CaseState.RESOLVED,
        "page_url": reverse("tax:reconciliation-case", args=[case.pk]) if request.method == "POST" else ""},
        status=status)


def _case_action(request, case_id: int, action: str):
    case = selectors.case_get(user=request.user, case_id=case_id)  # 404 before anything else
    try:
        if action == "investigate":
            form = InvestigateForm(request.POST)
            note = form.cleaned_data["note"] if form.is_valid() else ""
            services.investigate_case(case_id=case.pk, user=request.user, note=note, now=timezone.now())
            messages.success(request, _("The case is being investigated."))
        else:
            form = ResolveForm(request.POST)
            if not form.is_valid():
                messages.error(request, _("Please give the resolution reason."))
                return redirect("tax:reconciliation-case", case_id=case.pk)
            services.resolve_case(case_id=case.pk, user=request.user, reason=form.cleaned_data["reason"],
                                  now=timezone.now())
            messages.success(request, _("The case is resolved."))
    except (TransitionNotAllowed, ConcurrentTransition):
        messages.error(request, _("The case's state does not allow this; the page shows what it is now."))
    except (services.ReconciliationError, AccessDenied) as exc:
        messages.error(request, str(exc))
    return redirect("tax:reconciliation-case", case_id=case.pk)


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@staff_only
def case_investigate(request, case_id: int):
    return _case_action(request, case_id, "investigate")


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@staff_only
def case_resolve(request, case_id: int):
    return _case_action(request, case_id, "resolve")


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@staff_only
def case_correction_propose(request, case_id: int):
    """The maker proposes a correcting transfer; another staff member approves it."""
    case = selectors.case_get(user=request.user, case_id=case_id)
    form = CorrectionForm(request.POST)
    if not form.is_valid():
        return _case_page(request, case, correction_form=form, status=400)
    try:
        corrections.propose_correction(case_id=case.pk, user=request.user, kind=form.cleaned_data["kind"],
                                       amount_fen=form.cleaned_data["amount"], reason=form.cleaned_data["reason"],
                                       now=timezone.now())
    except (services.ReconciliationError, AccessDenied) as exc:
        add_correction_refusal(form, exc)
        return _case_page(request, case, correction_form=form, status=400)
    messages.success(request, _("Correction proposed; another tax staff member approves it."))
    return redirect("tax:reconciliation-case", case_id=case.pk)


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@staff_only
def case_correction_decide(request, case_id: int, correction_id: int, decision: str):
    """Approve (the transfer is made) or reject (with a reason) a proposed correction."""
    case = selectors.case_get(user=request.user, case_id=case_id)
    correction = correction_of(case, correction_id)
    try:
        if decision == "approve":
            done = corrections.approve_correction(correction_id=correction.pk, user=request.user, now=timezone.now())
            messages.success(request, _("Approved; correcting transfer %(id)s submitted.") % {"id": done.transfer_id})
        else:
            form = RejectCorrectionForm(request.POST)
            if not form.is_valid():
                messages.error(request, _("Please give a reason for rejecting."))
                return redirect("tax:reconciliation-case", case_id=case.pk)
            corrections.reject_correction(correction_id=correction.pk, user=request.user,
                                          reason=form.cleaned_data["reason"], now=timezone.now())
            messages.success(request, _("The correction is rejected."))
    except (TransitionNotAllowed, ConcurrentTransition):
        messages.error(request, _("The correction's state does not allow this."))
    except (services.ReconciliationError, AccessDenied) as exc:
        messages.error(request, str(exc))
    return redirect("tax:reconciliation-case", case_id=case.pk)
