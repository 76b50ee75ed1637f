"""Pages of flexible-employment premiums (/social/flexible/).

Individuals: their enrolment (or the form to enrol), change of base or frequency, the months owed with late
fees to today, paying (a confirmation page shows every month's late fee and the total before anything is
debited), payment history with receipts, the statement PDF. Tax staff: their authority's enrolments with
filters and arrears totals, one enrolment read-only. Another person's records answer 404.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from treasury.access import roles
from treasury.access.decorators import role_required, writable_required
from treasury.money import format_yuan
from treasury.services.transfers import OperatorUnavailable

from . import selectors, services
from .forms import ChangeForm, EnrolForm, StaffFilterForm
from social_security.models import FundAccount

from .models import Enrolment, PaymentState, PeriodState
from .statement import statement_pdf

ENROLMENTS_PER_PAGE = 50


def _refusal(exc: Exception) -> str:
    if isinstance(exc, OperatorUnavailable):
        return _("The operator cannot be reached; nothing was recorded. Please try again later: %(error)s") % {
            "error": exc}
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _("The state changed; the page shows what it is now.")
    return str(exc)


def _individual(request):
    if not selectors.is_individual(request.user):
        raise PermissionDenied("此页面仅供个人用户使用 (this page is for individuals)")


def period_rows(enrolment: Enrolment, *, now) -> list[dict]:
    """Every month made, with days overdue and the late fee it would carry if paid today."""
    today = services.local_date(now)
    rows = []
    for period in enrolment.periods.select_related("enrolment__region").order_by("month"):
        days, fee = (0, 0) if period.state == PeriodState.PAID else services.late_fee_for(period=period, on=today)
        rows.append({"period": period, "overdue_days": days, "late_fee_fen": fee,
                     "amount_fen": period.total_fen + fee})
    return rows


def _levels(region, now):
    try:
        return services.base_levels(region=region, on=services.local_date(now))
    except services.FlexibleError:
        return None


@require_safe
@login_required
@role_required(roles.INDIVIDUAL)
def mine(request):
    _individual(request)
    now = timezone.now()
    enrolment = selectors.my_enrolment(request.user)
    if enrolment is None:
        levels = _enrol_levels(now)
        form = EnrolForm(levels=levels, initial={"start_month": f"{services.local_date(now):%Y-%m}"})
        return render(request, "social_security/flexible/enrol.html", {"form": form, "levels": levels})
    # A read: the months shown are those made so far (enrolment, the nightly task, paying make them).
    return render(request, "social_security/flexible/mine.html", _enrolment_context(enrolment, now=now, own=True))


def _enrol_levels(now):
    """The base levels the enrolment form offers, with what each costs (the first region's)."""
    fund = FundAccount.objects.select_related("region").order_by("region__code").first()
    return _levels(fund.region, now) if fund else None


def _enrolment_context(enrolment: Enrolment, *, now, own: bool) -> dict:
    rows = period_rows(enrolment, now=now)
    payable = services.payable_periods(enrolment=enrolment, now=now)
    arrears = [r for r in rows if r["period"].state == PeriodState.DUE and r["overdue_days"] > 0]
    context = {
        "enrolment": enrolment, "rows": rows, "payable": payable, "own": own,
        "arrears_fen": sum(r["period"].total_fen for r in arrears),
        "arrears_late_fee_fen": sum(r["late_fee_fen"] for r in arrears),
        "payments": enrolment.payments.select_related("transfer__receipt").prefetch_related("lines__period")[:20],
        "changes": enrolment.changes.all()[:10],
    }
    if own:
        levels = _levels(enrolment.region, now)
        context["change_form"] = ChangeForm(levels=levels, initial={"base_level": enrolment.base_level,
                                                                    "frequency": enrolment.frequency})
    return context


@require_POST
@login_required
@role_required(roles.INDIVIDUAL)
def enrol(request):
    _individual(request)
    now = timezone.now()
    levels = _enrol_levels(now)
    form = EnrolForm(request.POST, levels=levels)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.enrol(user=request.user, region_code=data["region"], base_level=data["base_level"],
                           frequency=data["frequency"], wallet_id=data["wallet_id"], start_month=data["start_month"],
                           now=now)
        except (services.FlexibleError, OperatorUnavailable) as exc:
            form.add_error(None, _refusal(exc))
        else:
            messages.success(request, _("Enrolled."))
            return redirect("social_flexible:mine")
    # Shown again as the enrolment page shows it, at that page's address (this one takes only a POST).
    return render(request, "social_security/flexible/enrol.html", {
        "form": form, "levels": levels, "page_url": reverse("social_flexible:mine")}, status=400)


def _own_enrolment(request) -> Enrolment:
    enrolment = selectors.my_enrolment(request.user)
    if enrolment is None:
        raise Http404("not enrolled")
    return enrolment


@require_POST
@login_required
@role_required(roles.INDIVIDUAL)
def change(request):
    _individual(request)
    enrolment = _own_enrolment(request)
    form = ChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a base level and a payment frequency."))
        return redirect("social_flexible:mine")
    try:
        result = services.change_base(user=request.user, enrolment_id=enrolment.pk, now=timezone.now(),
                                      **form.cleaned_data)
    except services.FlexibleError as exc:
        messages.error(request, _refusal(exc))
    else:
        messages.success(request, _("Changed: from %(month)s you pay at the %(level)s%% level, %(frequency)s.") % {
            "month": f"{result.effective_month:%Y-%m}", "level": result.base_level,
            "frequency": result.get_frequency_display()})
    return redirect("social_flexible:mine")


@require_http_methods(["GET", "POST"])
@login_required
@role_required(roles.INDIVIDUAL)
@writable_required
def pay(request):
    """GET ?through=<period id>: the months from the oldest due one through that one, each with its late fee
    to today, and the total, with a button to pay. POST period_ids: pay them."""
    _individual(request)
    enrolment = _own_enrolment(request)
    now = timezone.now()
    payable = services.payable_periods(enrolment=enrolment, now=now)
    if request.method == "POST":
        try:
            ids = [int(v) for v in request.POST.getlist("period_ids")]
        except ValueError:
            ids = []
        try:
            payment = services.pay(user=request.user, enrolment_id=enrolment.pk, period_ids=ids, now=now)
        except (services.FlexibleError, OperatorUnavailable, TransitionNotAllowed, ConcurrentTransition) as exc:
            messages.error(request, _refusal(exc))
            return redirect("social_flexible:mine")
        amounts = {"amount": format_yuan(payment.amount_fen), "late_fees": format_yuan(payment.late_fee_fen)}
        if payment.state == PaymentState.PAID:
            messages.success(request, _("Paid: %(amount)s, late fees %(late_fees)s included.") % amounts)
        elif payment.state == PaymentState.FAILED:
            messages.error(request, _("Not paid; the months are due again: %(reason)s") % {
                "reason": payment.failure_reason})
        else:
            messages.warning(request, _("The outcome is not known yet; do not pay again: %(amount)s, late fees "
                                        "%(late_fees)s included.") % amounts)
        return redirect("social_flexible:payments")
    try:
        through = int(request.GET.get("through", ""))
    except ValueError:
        through = payable[0].pk if payable else 0
    ids = [p.pk for p in payable]
    chosen = payable[: ids.index(through) + 1] if through in ids else []
    if not chosen:
        messages.error(request, _("Nothing to pay."))
        return redirect("social_flexible:mine")
    priced = services.quote(periods=chosen, now=now)
    paid_today = services.wallet_paid_today_fen(wallet=enrolment.wallet, now=now)
    limit_problem = services.class_limit_problem(enrolment.wallet, priced.amount_fen, paid_today_fen=paid_today)
    return render(request, "social_security/flexible/pay.html",
                  {"enrolment": enrolment, "quote": priced, "limit_problem": limit_problem})


@require_safe
@login_required
@role_required(roles.INDIVIDUAL)
def payments(request):
    _individual(request)
    enrolment = _own_enrolment(request)
    rows = (enrolment.payments.select_related("transfer__receipt").prefetch_related("lines__period"))
    return render(request, "social_security/flexible/payments.html", {"enrolment": enrolment, "payments": rows})


def _statement_response(enrolment: Enrolment) -> HttpResponse:
    response = HttpResponse(statement_pdf(enrolment=enrolment, now=timezone.now()), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="statement-{enrolment.pk}.pdf"'
    return response


@require_safe
@login_required
@role_required(roles.INDIVIDUAL)
def my_statement(request):
    _individual(request)
    return _statement_response(_own_enrolment(request))


# ---------------------------------------------------------------------------------------------
# Staff
# ---------------------------------------------------------------------------------------------


@require_safe
@login_required
@role_required(roles.TAX_STAFF, roles.AUDITOR)
def staff_list(request):
    form = StaffFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    today = services.local_date(timezone.now())
    enrolments = selectors.staff_enrolments(user=request.user, today=today, region=filters.get("region", ""),
                                            search=filters.get("q", ""), in_arrears=bool(filters.get("arrears")))
    overdue = Q(state=PeriodState.DUE, due_date__lt=today)
    totals = (selectors.visible_periods(request.user).filter(enrolment__in=enrolments.values("pk"))
              .aggregate(overdue_months=Count("pk", filter=overdue), arrears_fen=Sum("total_fen", filter=overdue),
                         paid_fen=Sum("total_fen", filter=Q(state=PeriodState.PAID)),
                         late_fees_fen=Sum("late_fee_fen", filter=Q(state=PeriodState.PAID))))
    page = Paginator(enrolments, ENROLMENTS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "social_security/flexible/staff_list.html",
                  {"form": form, "page": page, "totals": totals, "count": page.paginator.count,
                   "filter_query": query.urlencode()})


@require_safe
@login_required
@role_required(roles.TAX_STAFF, roles.AUDITOR)
def staff_detail(request, enrolment_id: int):
    enrolment = selectors.enrolment_get(user=request.user, enrolment_id=enrolment_id)
    return render(request, "social_security/flexible/staff_detail.html",
                  _enrolment_context(enrolment, now=timezone.now(), own=False))


@require_safe
@login_required
@role_required(roles.TAX_STAFF, roles.AUDITOR)
def staff_statement(request, enrolment_id: int):
    return _statement_response(selectors.enrolment_get(user=request.user, enrolment_id=enrolment_id))
