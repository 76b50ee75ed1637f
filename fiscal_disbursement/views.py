"""Finance bureau pages of fiscal disbursement: quotas, a new request and its draft, the approval queue,
a request's run (live progress, lines, returns, voucher), returns to handle, the daily report.

Views read the request and the clock, ask `fiscal_disbursement.selectors` (already scoped: another
bureau's request is a 404) and call one service per action; a refusal becomes a message on the page,
never a 500.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.utils.translation import pgettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from adapters.budget.interface import BudgetError, BudgetFault, BudgetUnavailable
from treasury.access import roles
from treasury.access.decorators import role_required, writable_required
from treasury.access.errors import AccessDenied
from treasury.identifiers import mask_name, mask_resident_id, mask_wallet_id
from treasury.money import format_yuan
from treasury.services.transfers import OperatorUnavailable
from treasury.views import filter_query

from . import selectors, services
from .forms import (
    LINE_FILTER_LABELS, LINE_STATE_LABELS, PAY_TYPE_LABELS, REQUEST_STATE_LABELS, AttachmentForm, DailyReportForm,
    PayeeFileForm, QuotaFilterForm, QuotaSyncForm, ReasonForm, RequestFilterForm, RequestForm, line_ids_from,
)
from .models import PayeeKind
from .payees import PayeeFileRefused
from .models import RequestState as R

QUOTAS_PER_PAGE = 50
REQUESTS_PER_PAGE = 50
LINES_PER_PAGE = 100
RETURNS_LISTED = 1000  # lines on the returns page, oldest requests' last
READ_ROLES = selectors.READ_ROLES
FILE_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def refusal_message(exc: Exception) -> str:
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _("This action is not possible in the request's current state. The page shows what it is now.")
    if isinstance(exc, OperatorUnavailable):
        return _("The e-CNY operator cannot be reached just now; nothing was recorded. Please try again in a "
                 "moment (%(detail)s).") % {"detail": exc}
    return str(exc)


def budget_error_message(exc: BudgetError) -> str:
    if isinstance(exc, BudgetUnavailable):
        return _("The budget-management system cannot be reached now (%(reason)s). Nothing was changed; "
                 "try again later.") % {"reason": exc}
    if isinstance(exc, BudgetFault):
        return _("The budget-management system refused the request: %(reason)s") % {"reason": exc}
    return _("The budget-management system answered with an error: %(reason)s") % {"reason": exc}


def _label(request):
    request.state_text = REQUEST_STATE_LABELS.get(request.state, request.state)
    request.pay_type_text = PAY_TYPE_LABELS.get(request.pay_type, request.pay_type)
    return request


def _label_all(requests):
    for request in requests:
        _label(request)
    return requests


# ---------------------------------------------------------------------------------------------
# Quotas (指标)
# ---------------------------------------------------------------------------------------------


@require_safe
@login_required
@role_required(*READ_ROLES)
def quota_list(request):
    form = QuotaFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    quotas = selectors.quota_list(user=request.user, fiscal_year=filters.get("fiscal_year"),
                                  agency=filters.get("agency") or "",
                                  classification=filters.get("classification") or "", search=filters.get("q") or "")
    page = Paginator(quotas, QUOTAS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "fiscal/quota_list.html", {
        "form": form, "page": page, "filter_query": filter_query(request),
        "sync_form": QuotaSyncForm(initial={"fiscal_year": timezone.localdate().year}),
        "can_sync": selectors.may_sync_quotas(request.user),
        "can_create": selectors.may_create_requests(request.user),
    })


@require_POST
@login_required
@role_required(roles.FINANCE_CLERK)
@writable_required
def quota_sync(request):
    """Ask the budget-management system for quotas now; its refusal or silence is shown as it is."""
    form = QuotaSyncForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter a fiscal year between 2000 and 2100, or leave it empty."))
        return redirect("fiscal:quota_list")
    try:
        count = services.sync_quotas(now=timezone.now(), agency_code=form.cleaned_data["agency_code"] or "",
                                     fiscal_year=form.cleaned_data["fiscal_year"])
    except BudgetError as exc:
        messages.error(request, budget_error_message(exc))
    else:
        messages.success(request, _("%(count)s quota(s) received from the budget-management system.") % {
            "count": count})
    return redirect("fiscal:quota_list")


# ---------------------------------------------------------------------------------------------
# Requests: list, a new one, the template
# ---------------------------------------------------------------------------------------------


@require_safe
@login_required
@role_required(*READ_ROLES)
def request_list(request):
    form = RequestFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    requests = selectors.request_list(user=request.user, state=filters.get("state") or "",
                                      quota=request.GET.get("quota", ""), search=filters.get("q") or "")
    page = Paginator(requests, REQUESTS_PER_PAGE).get_page(request.GET.get("page"))
    _label_all(page.object_list)
    return render(request, "fiscal/request_list.html", {
        "form": form, "page": page, "filter_query": filter_query(request),
        "can_create": selectors.may_create_requests(request.user),
    })


def _report_upload(request, payment_request) -> None:
    """The outcome of a payee file as a message: accepted, or how many problems to fix."""
    if payment_request.problem_count:
        messages.error(request, _(
            "The payee file has %(count)s problem(s) and was not accepted. Download the error report, fix the "
            "lines and upload the file again.") % {"count": payment_request.problem_count})
    else:
        messages.success(request, _("The payee file is correct: %(lines)s payee(s), %(total)s in all.") % {
            "lines": payment_request.line_count, "total": format_yuan(payment_request.total_fen)})
        warned = selectors.earmark_warned_count(request=payment_request)
        if warned:
            messages.warning(request, _(
                "%(count)s payee(s) do not meet the earmark conditions: the operator will refuse them and they "
                "will come back as returns.") % {"count": warned})


@require_http_methods(["GET", "POST"])
@login_required
@role_required(roles.FINANCE_CLERK)
@writable_required
def request_create(request):
    quotas = selectors.quotas_for_request(user=request.user)
    initial = {"quota": request.GET.get("quota", "")}
    form = RequestForm(request.POST or None, request.FILES or None, quotas=quotas, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                payment_request = services.create_request(
                    user=request.user, quota_id=data["quota"], pay_type=data["pay_type"], title=data["title"],
                    now=timezone.now(), purpose_code=data["purpose_code"], exp_eco_code=data["exp_eco_code"],
                    conditions=form.conditions(),
                )
            except (services.DisbursementError, AccessDenied) as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Draft %(bill_no)s created.") % {"bill_no": payment_request.bill_no})
                uploaded = data.get("file")
                if uploaded:
                    _load_payees(request, payment_request.pk, uploaded)
                return redirect("fiscal:request_detail", request_id=payment_request.pk)
    # A file input cannot be given its file back: the page shown again says which one to choose again.
    not_kept = request.FILES["file"].name if status != 200 and "file" in request.FILES else ""
    return render(request, "fiscal/request_form.html", {"form": form, "quotas": quotas, "file_not_kept": not_kept},
                  status=status)


def _load_payees(request, request_id: int, uploaded) -> None:
    try:
        payment_request = services.load_payee_file(request_id=request_id, user=request.user, filename=uploaded.name,
                                                   data=uploaded.read(), now=timezone.now())
    except (services.DisbursementError, AccessDenied, PayeeFileRefused) as exc:
        messages.error(request, _("The payee file was not read: %(reason)s") % {"reason": exc})
    except OperatorUnavailable as exc:  # the wallets could not be checked: the draft is as it was
        messages.error(request, refusal_message(exc))
    else:
        _report_upload(request, payment_request)


@require_safe
@login_required
def template_download(request, fmt: str):
    """The blank payee file (CSV or XLSX) with its column headers and an example line."""
    from . import templates_files

    makers = {"csv": "template_csv", "xlsx": "template_xlsx"}
    if fmt not in makers or not hasattr(templates_files, makers[fmt]):
        raise Http404("unknown format")
    response = HttpResponse(getattr(templates_files, makers[fmt])(), content_type=FILE_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="fiscal-payees-template.{fmt}"'
    return response


# ---------------------------------------------------------------------------------------------
# Approvals and returns
# ---------------------------------------------------------------------------------------------


@require_safe
@login_required
@role_required(roles.FINANCE_APPROVER, roles.AUDITOR)
def approval_queue(request):
    requests = _label_all(list(selectors.approval_queue(user=request.user)))
    for item in requests:
        item.needs_second = services.needs_second_approval(item)
        item.actions = selectors.request_actions(user=request.user, request=item)
    return render(request, "fiscal/approval_queue.html", {
        "requests": requests, "reject_form": ReasonForm(),
        "second_approval_above": settings.DISBURSEMENT_SECOND_APPROVAL_FEN,
    })


@require_safe
@login_required
@role_required(*READ_ROLES)
def returns(request):
    """Failed lines of requests whose paying has ended, by request: retry them or confirm them returned."""
    lines = list(selectors.returns_to_handle(user=request.user)[:RETURNS_LISTED])
    groups: dict[int, dict] = {}
    for line in lines:
        group = groups.setdefault(line.request_id, {
            "request": _label(line.request), "lines": [],
            "editable": selectors.request_actions(user=request.user, request=line.request).can_act_on_lines,
        })
        _describe_line(line)
        line.actionable = group["editable"]
        group["lines"].append(line)
    # Each request's whole count and amount, not only its listed lines' (a long run's returns are listed in part).
    totals = selectors.returns_totals(user=request.user, request_ids=list(groups))
    for request_id, group in groups.items():
        group["count"], group["total_fen"] = totals[request_id]
    return render(request, "fiscal/returns.html", {"groups": list(groups.values()), "count": len(lines)})


# ---------------------------------------------------------------------------------------------
# One request
# ---------------------------------------------------------------------------------------------


def _finish_if_paying(payment_request):
    """While paying, each look at the request also moves it on once no line is still open (so the page does
    not wait for the periodic task)."""
    if payment_request.state == R.PAYING:
        services.finish_request_if_done(request_id=payment_request.pk, now=timezone.now())
        payment_request.refresh_from_db()
    return payment_request


def progress_data(payment_request) -> dict:
    data = {"request_id": payment_request.pk, "state": payment_request.state,
            "state_label": str(REQUEST_STATE_LABELS[payment_request.state]),
            "finished": payment_request.state != R.PAYING}
    if payment_request.state not in selectors.PAYING_OR_LATER:
        return data
    progress = services.line_progress(request=payment_request)
    data.update({
        "total": progress.total, "paid": progress.paid, "paid_fen": progress.paid_fen,
        "paid_yuan": format_yuan(progress.paid_fen), "failed": progress.failed, "open": progress.open,
        "returned": progress.returned, "returned_fen": progress.returned_fen,
        "returned_yuan": format_yuan(progress.returned_fen), "percent": progress.percent, "done": progress.done,
    })
    return data


def _describe_line(line) -> None:
    """What a page shows of a line: its state in words, the refusal, personal data masked."""
    line.state_value = selectors.line_state(line)
    line.state_text = LINE_STATE_LABELS.get(line.state_value, line.state_value)
    line.refusal = selectors.line_refusal(line)
    line.return_note = selectors.return_note(line) if line.returned else ""
    line.receipt_number = selectors.settled_receipt_number(line)
    person = line.id_kind == PayeeKind.PERSON
    line.shown_name = mask_name(line.payee_name) if person else line.payee_name
    line.shown_id = mask_resident_id(line.id_number) if person else line.id_number
    line.shown_wallet = mask_wallet_id(line.wallet_id)


def budget_messages_url(voucher_no: str) -> str:
    """The budget message log filtered by a voucher number (its `key` matches the voucher and its result
    reports, whose numbers start with it); empty while the log's pages are not mounted."""
    if not voucher_no:
        return ""
    try:
        return f"{reverse('budget:messages')}?{urlencode({'key': voucher_no})}"
    except NoReverseMatch:
        return ""


@require_safe
@login_required
@role_required(*READ_ROLES)
def request_detail(request, request_id: int):
    payment_request = _label(_finish_if_paying(selectors.request_get(user=request.user, request_id=request_id)))
    status_filter = request.GET.get("lines", "all")
    if status_filter not in selectors.LINE_FILTERS:
        status_filter = "all"
    page = Paginator(selectors.request_lines(request=payment_request, status=status_filter),
                     LINES_PER_PAGE).get_page(request.GET.get("page"))
    actions = selectors.request_actions(user=request.user, request=payment_request)
    for line in page.object_list:
        _describe_line(line)
        line.actionable = actions.can_act_on_lines and selectors.line_is_actionable(line)
    paying_or_later = payment_request.state in selectors.PAYING_OR_LATER
    return render(request, "fiscal/request_detail.html", {
        "req": payment_request,
        "quota": payment_request.quota,
        "page": page,
        "filter_query": urlencode({"lines": status_filter}),
        "line_filter": status_filter,
        "line_filters": [(key, LINE_FILTER_LABELS[key]) for key in selectors.LINE_FILTERS],
        "actions": actions.available,
        "awaiting_other_approver": actions.awaiting_other_approver,
        "can_edit_payees": actions.can_edit_payees,
        "can_add_attachments": actions.can_add_attachments,
        "lines_editable": any(line.actionable for line in page.object_list),
        "needs_second_approval": services.needs_second_approval(payment_request),
        "conditions": payment_request.conditions or {},
        "attachments": selectors.request_attachments(request=payment_request),
        "progress": progress_data(payment_request) if paying_or_later else None,
        "budget_messages_url": budget_messages_url(payment_request.voucher_no),
        "trace_url": reverse("trace:batch", kwargs={"ref": payment_request.batch_ref}),
        "reason_form": ReasonForm(),
        "payee_form": PayeeFileForm(),
        "attachment_form": AttachmentForm(),
    })


@require_safe
@login_required
@role_required(*READ_ROLES)
def request_progress(request, request_id: int):
    """The live progress as JSON, polled by the request page while it pays."""
    payment_request = _finish_if_paying(selectors.request_get(user=request.user, request_id=request_id))
    return JsonResponse(progress_data(payment_request))


@require_safe
@login_required
@role_required(*READ_ROLES)
def error_report(request, request_id: int, fmt: str):
    payment_request = selectors.request_get(user=request.user, request_id=request_id)
    if fmt not in FILE_TYPES or not payment_request.upload_path or not payment_request.problems:
        raise Http404("no error report")
    data = services.error_report(request=payment_request, fmt=fmt)
    response = HttpResponse(data, content_type=FILE_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="fiscal-{payment_request.pk}-errors.{fmt}"'
    return response


@require_safe
@login_required
@role_required(*READ_ROLES)
def voucher_pdf(request, request_id: int):
    """The payment voucher (PDF) of an approved request."""
    from . import documents

    payment_request = selectors.request_get(user=request.user, request_id=request_id)
    if not payment_request.voucher_no:
        raise Http404("no voucher before approval")
    response = HttpResponse(documents.render_voucher_pdf(request=payment_request), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="voucher-{payment_request.voucher_no}.pdf"'
    return response


@require_safe
@login_required
@role_required(*READ_ROLES)
def attachment_download(request, request_id: int, attachment_id: int):
    payment_request = selectors.request_get(user=request.user, request_id=request_id)
    attachment = selectors.attachment_get(request=payment_request, attachment_id=attachment_id)
    path = Path(settings.MEDIA_ROOT) / attachment.path
    if not path.is_file():
        raise Http404("attachment file missing")
    return FileResponse(path.open("rb"), as_attachment=True, filename=attachment.filename)


@require_POST
@login_required
@role_required(roles.FINANCE_CLERK)
@writable_required
def request_payees(request, request_id: int):
    """Upload a (corrected) payee file to a draft: its lines replace the previous ones."""
    payment_request = selectors.request_get(user=request.user, request_id=request_id)  # 404 before anything else
    form = PayeeFileForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, _("Choose a payee file (CSV or XLSX) first."))
    else:
        _load_payees(request, payment_request.pk, form.cleaned_data["file"])
    return redirect("fiscal:request_detail", request_id=payment_request.pk)


@require_POST
@login_required
@role_required(roles.FINANCE_CLERK)
@writable_required
def request_attachment(request, request_id: int):
    payment_request = selectors.request_get(user=request.user, request_id=request_id)
    form = AttachmentForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, _("Choose a file to attach first."))
        return redirect("fiscal:request_detail", request_id=payment_request.pk)
    uploaded = form.cleaned_data["file"]
    try:
        attachment = services.add_attachment(request_id=payment_request.pk, user=request.user, filename=uploaded.name,
                                             data=uploaded.read(), now=timezone.now())
    except (services.DisbursementError, AccessDenied) as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, _("%(name)s attached.") % {"name": attachment.filename})
    return redirect("fiscal:request_detail", request_id=payment_request.pk)


_SUCCESS = {
    selectors.SUBMIT: gettext_lazy("Submitted for approval."),
    selectors.REJECT: gettext_lazy("Sent back to the preparer."),
    selectors.REWORK: gettext_lazy("The request is a draft again: change it and submit it again."),
    selectors.CANCEL: gettext_lazy("The request is cancelled; what it reserved on the quota is released."),
}
# Where the run stands after an approval, a voucher sent again or paying started by hand. With Celery
# eager (tests, the demo) the voucher, the payments and the reports all happen within the request.
_OUTCOME = {
    R.SUBMITTED: gettext_lazy("First approval recorded: a second approver must approve this request."),
    R.APPROVED: gettext_lazy("The voucher has not reached the budget-management system yet; it is sent again "
                             "automatically: %(error)s"),
    R.VOUCHER_REFUSED: gettext_lazy("The budget-management system refused the voucher: %(error)s"),
    R.VOUCHER_ISSUED: gettext_lazy("The voucher was accepted; paying waits: %(error)s"),
    R.PAYING: gettext_lazy("The voucher was accepted and paying has started."),
    R.PAID: gettext_lazy("Paid: every line reached its wallet."),
    R.REPORTING: gettext_lazy("Paid: every line reached its wallet; the results are being reported."),
    R.REPORTED: gettext_lazy("Paid: every line reached its wallet; the results are reported to the "
                             "budget-management system."),
    R.PARTIALLY_PAID: gettext_lazy("Paid, except some lines the operator refused. See the returns."),
    R.FAILED: gettext_lazy("The operator refused every line. See the returns."),
}
_WAITING = (R.APPROVED, R.VOUCHER_REFUSED, R.VOUCHER_ISSUED)


def _after_action(request, payment_request_id: int) -> str:
    if request.POST.get("from") == "queue":
        return reverse("fiscal:approval_queue")
    return reverse("fiscal:request_detail", kwargs={"request_id": payment_request_id})


@require_POST
@login_required
@role_required(roles.FINANCE_CLERK, roles.FINANCE_APPROVER)
@writable_required
def request_action(request, request_id: int, action: str):
    """One transition of the request, by a POST form; any refusal comes back as a message."""
    payment_request = selectors.request_get(user=request.user, request_id=request_id)  # 404 before anything else
    if action not in selectors.ACTIONS:
        raise Http404("unknown action")
    kwargs = {"request_id": payment_request.pk, "user": request.user, "now": timezone.now()}
    try:
        if action in (selectors.REJECT, selectors.CANCEL):
            form = ReasonForm(request.POST)
            if not form.is_valid():
                messages.error(request, _("Please give a reason."))
                return redirect(_after_action(request, payment_request.pk))
            service = services.reject_request if action == selectors.REJECT else services.cancel_request
            service(reason=form.cleaned_data["reason"], **kwargs)
        elif action == selectors.SUBMIT:
            services.submit_request(**kwargs)
        elif action == selectors.APPROVE:
            services.approve_request(**kwargs)
        elif action == selectors.REWORK:
            services.rework_request(**kwargs)
        elif action == selectors.RECONCILE:
            services.reconcile_request(**kwargs)
        elif action == selectors.PAY:
            services.start_paying(**kwargs)
        elif action == selectors.RESEND_VOUCHER:
            if payment_request.state != R.APPROVED:  # the voucher went out already, or the request moved on
                raise TransitionNotAllowed("only an approved request's voucher is sent again")
            services.send_voucher(request_id=payment_request.pk, now=kwargs["now"])
    except BudgetError as exc:
        messages.error(request, budget_error_message(exc))
    except (services.DisbursementError, AccessDenied, TransitionNotAllowed, ConcurrentTransition,
            OperatorUnavailable) as exc:
        messages.error(request, refusal_message(exc))
    else:
        fresh = selectors.request_get(user=request.user, request_id=payment_request.pk)
        if action in (selectors.APPROVE, selectors.RESEND_VOUCHER, selectors.PAY):
            fresh = _finish_if_paying(fresh)
            text = str(_OUTCOME.get(fresh.state, REQUEST_STATE_LABELS[fresh.state]))
            if fresh.state in _WAITING:
                messages.warning(request, text % {"error": fresh.voucher_error or "—"})
            else:
                messages.success(request, text)
        elif action == selectors.RECONCILE:
            if fresh.state == R.RECONCILED:
                messages.success(request, _("Reconciled: the budget-management system holds the same figures."))
            else:
                messages.warning(request, _("Not reconciled: %(note)s") % {"note": fresh.reconcile_note})
        else:
            messages.success(request, str(_SUCCESS[action]))
    return redirect(_after_action(request, payment_request.pk))


RETRY, RETURN = "retry", "return"


@require_POST
@login_required
@role_required(roles.FINANCE_CLERK)
@writable_required
def request_lines_action(request, request_id: int):
    """Retry the ticked failed lines, or confirm them as returned with a reason (one form, two buttons)."""
    payment_request = selectors.request_get(user=request.user, request_id=request_id)
    back = reverse("fiscal:returns") if request.POST.get("from") == "returns" else reverse(
        "fiscal:request_detail", kwargs={"request_id": payment_request.pk})
    line_ids = line_ids_from(request.POST)
    what = request.POST.get("do")
    if what not in (RETRY, RETURN):
        raise Http404("unknown action")
    if not line_ids:
        messages.error(request, _("Tick the lines to retry or return first."))
        return redirect(back)
    try:
        if what == RETRY:
            services.retry_lines(request_id=payment_request.pk, line_ids=line_ids, user=request.user,
                                 now=timezone.now())
            services.finish_request_if_done(request_id=payment_request.pk, now=timezone.now())
        else:
            reason = request.POST.get("reason", "").strip()
            if not reason:
                messages.error(request, _("Please give a reason for returning the lines."))
                return redirect(back)
            services.return_lines(request_id=payment_request.pk, line_ids=line_ids, user=request.user, reason=reason,
                                  now=timezone.now())
    except (services.DisbursementError, AccessDenied, TransitionNotAllowed, ConcurrentTransition,
            OperatorUnavailable) as exc:
        messages.error(request, refusal_message(exc))
    else:
        if what == RETRY:
            messages.success(request, pgettext("fiscal", "%(count)s line(s) sent to pay again.") % {"count": len(line_ids)})
        else:
            messages.success(request, _(
                "%(count)s line(s) confirmed as returned; their amount is released on the quota and reported to the "
                "budget-management system.") % {"count": len(line_ids)})
    return redirect(back)


# ---------------------------------------------------------------------------------------------
# The daily report
# ---------------------------------------------------------------------------------------------


def _report_day_and_organization(request):
    form = DailyReportForm(request.GET or None)
    day = timezone.localdate()
    organization_id = None
    if form.is_valid():
        day = form.cleaned_data["day"] or day
        organization_id = form.cleaned_data["organization"]
    elif form.is_bound:
        raise Http404("bad date")
    organization = selectors.report_organization(user=request.user, organization_id=organization_id)
    return form, day, organization


@require_safe
@login_required
@role_required(*READ_ROLES)
def daily_report(request):
    """What a bureau paid and had returned on one day, by functional and economic classification."""
    from . import documents

    if not request.GET and not selectors.report_organizations(request.user).exists():
        # No finance bureau yet (a new installation, an auditor before any bureau is registered): say so.
        return render(request, "fiscal/daily_report.html", {"day": timezone.localdate(), "organization": None})
    form, day, organization = _report_day_and_organization(request)
    report = documents.daily_report(organization=organization, day=day)
    query = urlencode({"day": day.isoformat(), "organization": organization.pk})
    return render(request, "fiscal/daily_report.html", {
        "form": form, "day": day, "organization": organization, "report": report,
        "organizations": selectors.report_organizations(request.user),
        "pdf_url": f"{reverse('fiscal:daily_report_pdf')}?{query}",
        "previous_day": (day - dt.timedelta(days=1)).isoformat(), "next_day": (day + dt.timedelta(days=1)).isoformat(),
    })


@require_safe
@login_required
@role_required(*READ_ROLES)
def daily_report_pdf(request):
    from . import documents

    _form, day, organization = _report_day_and_organization(request)
    response = HttpResponse(documents.render_daily_report_pdf(organization=organization, day=day),
                            content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="fiscal-daily-{day:%Y%m%d}.pdf"'
    return response
