"""Employer pages of payroll: upload, history, a batch (report, lines, actions, live progress), approvals.

Views read the request and the clock, ask `payroll.selectors` (already scoped: another employer's
batch is a 404) and call one service per action; a refusal becomes a message on the page, never a 500.
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from treasury.access import roles
from treasury.access.decorators import role_required, writable_required
from treasury.access.errors import AccessDenied
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.money import fen_to_yuan_str, format_yuan, yuan_to_fen
from treasury.receipts.selectors import downloadable_receipt_numbers
from treasury.services.transfers import OperatorUnavailable

from . import members, selectors, services, templates_files
from .models import ArchiveState
from .models import BatchState as B
from .forms import (
    BATCH_STATE_LABELS, LINE_STATE_LABELS, BatchFilterForm, CancelForm, DuesCallForm, MemberImportForm,
    MemberSearchForm, UnionMemberForm, UploadForm, line_ids_from, period_of, recent_periods,
)
from .parsing import PayrollFileRefused

BATCHES_PER_PAGE = 50
LINES_PER_PAGE = 100
WARNINGS_PER_PAGE = 50
EMPLOYER_ROLES = (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER, roles.AUDITOR)
REPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _refusal_message(exc: Exception) -> str:
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _("This action is not possible in the batch's current state. The page shows what it is now.")
    if isinstance(exc, OperatorUnavailable):
        return _("The e-CNY operator cannot be reached just now; nothing was recorded. Please try again in a "
                 "moment (%(detail)s).") % {"detail": exc}
    return str(exc)


# ---------------------------------------------------------------------------------------------
# Upload and the blank template
# ---------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
@role_required(roles.EMPLOYER_OPERATOR)
@writable_required
def upload(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 400
        employer = user_organization(request.user)
        if employer is None:
            form.add_error(None, _("Your account does not belong to an employer."))
        elif form.is_valid():
            uploaded = form.cleaned_data["file"]
            try:
                batch = services.import_payroll_file(
                    employer=employer, user=request.user, filename=uploaded.name, data=uploaded,
                    now=timezone.now(), hold_invalid_lines=form.cleaned_data["hold_invalid_lines"],
                )
            except (services.PayrollError, PayrollFileRefused, AccessDenied, OperatorUnavailable) as exc:
                form.add_error("file", _refusal_message(exc))
            else:
                if batch.state == B.REJECTED:
                    messages.error(request, _(
                        "The file has %(count)s problem(s) and was not accepted. Download the report, fix the "
                        "lines and upload the file again.") % {"count": batch.problem_count})
                elif batch.problem_count:
                    messages.warning(request, _(
                        "%(payable)s line(s) accepted; %(count)s problem(s) found, the lines concerned are not "
                        "paid.") % {"payable": batch.payable_count, "count": batch.problem_count})
                else:
                    messages.success(request, _("The file is correct: %(payable)s line(s), %(total)s in all.") % {
                        "payable": batch.payable_count, "total": format_yuan(batch.total_net_fen)})
                if batch.warning_count:
                    messages.warning(request, _(
                        "%(count)s line(s) have warnings: see them on the batch page. A warning does not stop "
                        "paying.") % {"count": batch.warning_count})
                return redirect("payroll:batch-detail", batch_id=batch.pk)
    return render(request, "payroll/upload.html", {"form": form}, status=status)


def _can_upload(user) -> bool:
    """Whether the upload page (employers' payroll operators, not read-only roles) is for this user."""
    return roles.has_role(user, roles.EMPLOYER_OPERATOR) and not roles.is_read_only(user)


@require_safe
@login_required
def template_download(request, fmt: str):
    if fmt == "csv":
        data, name = templates_files.template_csv(), "payroll-template.csv"
    elif fmt == "xlsx":
        data, name = templates_files.template_xlsx(), "payroll-template.xlsx"
    else:
        raise Http404("unknown format")
    response = HttpResponse(data, content_type=REPORT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# ---------------------------------------------------------------------------------------------
# History and approvals
# ---------------------------------------------------------------------------------------------


def _label_states(batches):
    for batch in batches:
        batch.state_text = BATCH_STATE_LABELS.get(batch.state, batch.state)
    return batches


@require_safe
@login_required
@role_required(*EMPLOYER_ROLES)
def batch_list(request):
    form = BatchFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    batches = selectors.batch_list(user=request.user, state=filters.get("state", ""),
                                   period=filters.get("period", ""))
    page = Paginator(batches, BATCHES_PER_PAGE).get_page(request.GET.get("page"))
    _label_states(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "payroll/batch_list.html", {
        "form": form, "page": page, "filter_query": query.urlencode(),
        "can_upload": _can_upload(request.user),
    })


@require_safe
@login_required
@role_required(roles.EMPLOYER_APPROVER, roles.AUDITOR)
def approval_queue(request):
    batches = _label_states(list(selectors.approval_queue(user=request.user)))
    return render(request, "payroll/approval_queue.html", {"batches": batches})


# ---------------------------------------------------------------------------------------------
# One batch
# ---------------------------------------------------------------------------------------------


def _finish_if_paying(batch):
    """While paying, each look at the batch also closes it once no line is still open."""
    if batch.state == B.PAYING:
        services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
        batch.refresh_from_db()
    return batch


class _CountedPaginator(Paginator):
    """Pages of a list whose length is known already (a batch keeps its `warning_count`): no COUNT over the
    lines of a 100,000-line batch on each page view."""

    def __init__(self, object_list, per_page, *, count: int):
        super().__init__(object_list, per_page)
        self._known_count = count

    @property
    def count(self) -> int:
        return self._known_count


def _progress_data(batch) -> dict:
    progress = selectors.progress(batch=batch)
    data = {"batch_id": batch.pk, "state": batch.state, "state_label": str(BATCH_STATE_LABELS[batch.state]),
            "paused": batch.paused, "finished": batch.state != B.PAYING}
    if progress is None:
        return data
    data.update({
        "count": progress.count, "amount_fen": progress.amount_fen,
        "paid_count": progress.paid_count, "paid_fen": progress.paid_fen, "paid_yuan": format_yuan(progress.paid_fen),
        "failed_count": progress.failed_count, "failed_fen": progress.failed_fen,
        "failed_yuan": format_yuan(progress.failed_fen),
        "open_count": progress.open_count, "open_fen": progress.open_fen, "open_yuan": format_yuan(progress.open_fen),
        "held_count": progress.held_count, "returned_count": progress.returned_count,
        "percent": progress.percent, "done": progress.done,
    })
    return data


@require_safe
@login_required
@role_required(*EMPLOYER_ROLES)
def batch_detail(request, batch_id: int):
    batch = _finish_if_paying(selectors.batch_get(user=request.user, batch_id=batch_id))
    batch.state_text = BATCH_STATE_LABELS.get(batch.state, batch.state)
    page = Paginator(selectors.batch_lines(batch=batch), LINES_PER_PAGE).get_page(request.GET.get("page"))
    for line in page.object_list:
        line.state_value = selectors.line_state(line)
        line.state_text = LINE_STATE_LABELS.get(line.state_value, line.state_value)
    actions = selectors.batch_actions(user=request.user, batch=batch)
    lines_editable = selectors.can_act_on_lines(user=request.user, batch=batch)
    for line in page.object_list:
        line.actionable = lines_editable and selectors.line_is_actionable(line)
    warned_page = None
    if batch.warning_count:
        warned_page = _CountedPaginator(selectors.batch_lines(batch=batch, with_warnings=True), WARNINGS_PER_PAGE,
                                        count=batch.warning_count).get_page(request.GET.get("warnings_page"))
    query = request.GET.copy()
    query.pop("page", None)
    lines_query = query.urlencode()  # the lines' pages keep the warnings' page, and the other way round
    query = request.GET.copy()
    query.pop("warnings_page", None)
    return render(request, "payroll/batch_detail.html", {
        "batch": batch,
        "page": page,
        "lines_query": lines_query,
        "warned_page": warned_page,
        "warnings_query": query.urlencode(),
        "lines_editable": lines_editable and any(line.actionable for line in page.object_list),
        "summary_receipt": selectors.summary_receipt(batch=batch),
        "can_issue_summary_receipt": selectors.can_issue_summary_receipt(user=request.user, batch=batch),
        "actions": actions.available,
        "awaiting_other_approver": actions.awaiting_other_approver,
        "cancel_form": CancelForm(),
        "progress": _progress_data(batch) if batch.state in selectors.PAYING_OR_LATER else None,
        "payslip_archive": _archive_data(batch, selectors.latest_payslip_archive(batch=batch)),
        "total_net_yuan": fen_to_yuan_str(batch.total_net_fen),
        "can_upload": _can_upload(request.user),
    })


@require_safe
@login_required
@role_required(*EMPLOYER_ROLES)
def batch_progress(request, batch_id: int):
    """The live progress as JSON, polled by the batch page every two seconds."""
    batch = _finish_if_paying(selectors.batch_get(user=request.user, batch_id=batch_id))
    return JsonResponse(_progress_data(batch))


@require_safe
@login_required
@role_required(*EMPLOYER_ROLES)
def error_report(request, batch_id: int, fmt: str):
    batch = selectors.batch_get(user=request.user, batch_id=batch_id)
    if fmt not in REPORT_TYPES:
        raise Http404("unknown format")
    return FileResponse(services.error_report(batch=batch, fmt=fmt), as_attachment=True,
                        filename=f"payroll-{batch.pk}-errors.{fmt}", content_type=REPORT_TYPES[fmt])


_PAID_ALL = gettext_lazy("Every line is paid.")
_PAID_PART = gettext_lazy("Paying is finished; some lines were not paid. See the lines below.")
_SUCCESS = {
    selectors.SUBMIT: gettext_lazy("Submitted for approval."),
    selectors.APPROVE: gettext_lazy("Approved."),
    selectors.FUND: gettext_lazy("Funded: the corporate wallet holds the total."),
    selectors.PAY: gettext_lazy("Paying has started."),
    selectors.PAUSE: gettext_lazy("Paying is paused: lines not yet sent wait until you resume."),
    selectors.RESUME: gettext_lazy("Paying has resumed."),
    selectors.CANCEL: gettext_lazy("The batch is cancelled."),
    selectors.CLOSE: gettext_lazy("The batch is closed."),
}


@require_POST
@login_required
@role_required(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER)
@writable_required
def batch_action(request, batch_id: int, action: str):
    """One transition of the batch, by a POST form; any refusal comes back as a message."""
    batch = selectors.batch_get(user=request.user, batch_id=batch_id)  # 404 before anything else
    now = timezone.now()
    kwargs = {"batch_id": batch.pk, "user": request.user, "now": now}
    try:
        if action == selectors.SUBMIT:
            services.submit_batch(**kwargs)
        elif action == selectors.APPROVE:
            services.approve_batch(**kwargs)
        elif action == selectors.FUND:
            services.fund_batch(**kwargs)
        elif action == selectors.PAY:
            services.pay_batch(**kwargs)
            services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
        elif action == selectors.PAUSE:
            services.pause_batch(**kwargs)
        elif action == selectors.RESUME:
            services.resume_batch(**kwargs)
        elif action == selectors.CANCEL:
            form = CancelForm(request.POST)
            if not form.is_valid():
                messages.error(request, _("Please give a reason for cancelling."))
                return redirect("payroll:batch-detail", batch_id=batch.pk)
            services.cancel_batch(reason=form.cleaned_data["reason"], **kwargs)
        elif action == selectors.CLOSE:
            services.close_batch(**kwargs)
        else:
            raise Http404("unknown action")
    except (services.PayrollError, AccessDenied, TransitionNotAllowed, ConcurrentTransition,
            OperatorUnavailable) as exc:
        messages.error(request, _refusal_message(exc))
    else:
        text = _SUCCESS[action]
        if action == selectors.PAY:
            state = selectors.batch_get(user=request.user, batch_id=batch.pk).state
            text = {B.PAID: _PAID_ALL, B.PARTIALLY_PAID: _PAID_PART}.get(state, text)
        messages.success(request, str(text))
    return redirect(reverse("payroll:batch-detail", kwargs={"batch_id": batch.pk}))


RETRY, RETURN = "retry", "return"


@require_POST
@login_required
@role_required(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER)
@writable_required
def batch_lines_action(request, batch_id: int):
    """Retry the ticked held or failed lines, or return them with a reason (one form, two buttons)."""
    batch = selectors.batch_get(user=request.user, batch_id=batch_id)  # 404 before anything else
    line_ids = line_ids_from(request.POST)
    what = request.POST.get("do")
    if what not in (RETRY, RETURN):
        raise Http404("unknown action")
    if not line_ids:
        messages.error(request, _("Tick the lines to retry or return first."))
        return redirect("payroll:batch-detail", batch_id=batch.pk)
    try:
        if what == RETRY:
            services.retry_lines(batch_id=batch.pk, line_ids=line_ids, user=request.user, now=timezone.now())
            services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
        else:
            reason = request.POST.get("reason", "").strip()
            if not reason:
                messages.error(request, _("Please give a reason for returning the lines."))
                return redirect("payroll:batch-detail", batch_id=batch.pk)
            services.return_lines(batch_id=batch.pk, line_ids=line_ids, user=request.user, reason=reason,
                                  now=timezone.now())
    except (services.PayrollError, AccessDenied, TransitionNotAllowed, ConcurrentTransition,
            OperatorUnavailable) as exc:
        messages.error(request, _refusal_message(exc))
    else:
        if what == RETRY:
            text = _("%(count)s line(s) sent to pay again.") % {"count": len(line_ids)}
        else:
            text = _("%(count)s line(s) returned: they will not be paid in this batch.") % {"count": len(line_ids)}
        messages.success(request, text)
    return redirect("payroll:batch-detail", batch_id=batch.pk)


@require_POST
@login_required
@role_required(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER)
@writable_required
def summary_receipt(request, batch_id: int):
    """Issue the batch's summary receipt (the same one if it exists) and link it on the batch page."""
    from . import payslips

    batch = selectors.batch_get(user=request.user, batch_id=batch_id)
    try:
        if not selectors.can_issue_summary_receipt(user=request.user, batch=batch):
            raise services.PayrollError(
                _("The summary receipt comes once the batch is paid or partially paid."), "batch_not_finished")
        receipt = payslips.batch_summary_receipt(batch=batch, now=timezone.now())
    except services.PayrollError as exc:
        messages.error(request, _refusal_message(exc))
    else:
        messages.success(request, _("Summary receipt %(number)s is ready.") % {"number": receipt.number})
    return redirect("payroll:batch-detail", batch_id=batch.pk)


# ---------------------------------------------------------------------------------------------
# Payslips
# ---------------------------------------------------------------------------------------------


@require_safe
@login_required
@role_required(*EMPLOYER_ROLES)
def payslip(request, batch_id: int, line_no: int):
    """One employee's payslip (PDF), opened in the browser."""
    from . import payslips

    batch = selectors.batch_get(user=request.user, batch_id=batch_id)
    line = selectors.batch_line(batch=batch, line_no=line_no)
    response = HttpResponse(payslips.payslip_pdf(line=line, now=timezone.now()), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{payslips.payslip_filename(line=line)}"'
    return response


def _archive_data(batch, archive) -> dict | None:
    """The payslip archive as the batch page and its polling show it (None: none asked for yet)."""
    from . import payslips

    if archive is None:
        return None
    ready = archive.state == ArchiveState.READY
    return {
        "id": archive.pk, "state": archive.state, "done_count": archive.done_count,
        "total_count": archive.total_count, "percent": archive.percent, "error": archive.error,
        "building": archive.state in payslips.ACTIVE_ARCHIVE_STATES,
        "current": ready and payslips.archive_is_current(archive=archive),
        "finished_at": archive.finished_at,
        "progress_url": reverse("payroll:payslips-progress", args=[batch.pk, archive.pk]),
        "download_url": reverse("payroll:payslips-download", args=[batch.pk, archive.pk]) if ready else None,
    }


@require_POST
@login_required
@role_required(*EMPLOYER_ROLES)
def payslips_request(request, batch_id: int):
    """Ask for the batch's payslips as a zip, built in the background. Auditors may ask too: an
    archive only reads the batch."""
    from . import payslips

    batch = selectors.batch_get(user=request.user, batch_id=batch_id)  # 404 before anything else
    try:
        archive = payslips.request_payslip_archive(batch_id=batch.pk, user=request.user, now=timezone.now())
    except (services.PayrollError, AccessDenied) as exc:
        messages.error(request, str(exc))
    else:
        archive = selectors.payslip_archive_get(batch=batch, archive_id=archive.pk)  # as the task left it
        if archive.state == ArchiveState.READY:
            messages.success(request, _("The payslips are ready to download."))
        elif archive.state == ArchiveState.FAILED:
            messages.error(request, archive.error)
        else:
            messages.info(request, _("The payslips are being prepared; the download appears here when they are "
                                     "ready."))
    return redirect(reverse("payroll:batch-detail", kwargs={"batch_id": batch.pk}) + "#payslips")


@require_safe
@login_required
@role_required(*EMPLOYER_ROLES)
def payslips_progress(request, batch_id: int, archive_id: int):
    """The archive's progress as JSON, polled by the batch page while it is built."""
    batch = selectors.batch_get(user=request.user, batch_id=batch_id)
    return JsonResponse(_archive_data(batch, selectors.payslip_archive_get(batch=batch, archive_id=archive_id)))


@require_safe
@login_required
@role_required(*EMPLOYER_ROLES)
def payslips_download(request, batch_id: int, archive_id: int):
    """Every payslip of the batch in one zip, as the archive was built."""
    from . import payslips

    batch = selectors.batch_get(user=request.user, batch_id=batch_id)
    archive = selectors.payslip_archive_get(batch=batch, archive_id=archive_id)
    try:
        path = payslips.archive_file(archive=archive)
    except services.PayrollError:
        raise Http404("payslip archive not ready")
    return FileResponse(path.open("rb"), as_attachment=True, content_type="application/zip",
                        filename=payslips.payslips_zip_filename(batch=batch))


# ---------------------------------------------------------------------------------------------
# Unions (工会): members, rules, dues calls, arrears
# ---------------------------------------------------------------------------------------------

ARREARS_MONTHS = 3  # this month and the two before


def _business_date():
    return timezone.localdate()  # Asia/Shanghai


@require_safe
@login_required
def union_list(request):
    """The unions the user may see; a user of one union (or its employer) goes straight to it."""
    if not selectors.may_see_unions(request.user):
        raise Http404("no union")
    unions = list(selectors.visible_unions(request.user))
    if len(unions) == 1 and not sees_all_organizations(request.user):
        return redirect("payroll:union-detail", union_id=unions[0].pk)
    return render(request, "payroll/union_list.html", {"unions": unions})


@require_safe
@login_required
def union_detail(request, union_id: int):
    union = selectors.union_get(user=request.user, union_id=union_id)
    return _union_page(request, union, DuesCallForm(current_period=period_of(_business_date())))


def _union_page(request, union, form, status=200):
    from . import union as union_rules

    today = _business_date()
    months = selectors.dues_months(union=union)
    shown = request.GET.get("period", "")
    if shown not in {m.period for m in months}:
        shown = months[0].period if months else ""
    calls = list(selectors.dues_calls(union=union, periods=[shown])) if shown else []
    downloadable = downloadable_receipt_numbers(user=request.user, rows=calls)  # the union's receipts
    for call in calls:
        call.state_value = call.transfer.state if call.transfer_id else "not_paid"
        receipt = getattr(call.transfer, "receipt", None) if call.transfer_id else None
        call.receipt_number = receipt.number if receipt and receipt.number in downloadable else ""
    arrear_periods = recent_periods(today, ARREARS_MONTHS)
    # Newest month first; within a month, the service's member order.
    owed = sorted(union_rules.arrears(union_id=union.pk, periods=arrear_periods), key=lambda a: a.period, reverse=True)
    return render(request, "payroll/union_detail.html", {
        "union": union,
        "rules": _union_rules(union),
        "members": selectors.union_members(union=union),
        "months": months,
        "shown_period": shown,
        "calls": calls,
        "arrears": owed,
        "arrears_total_fen": sum(a.amount_fen for a in owed),
        "arrear_periods": arrear_periods,
        "can_call": selectors.can_issue_dues_call(user=request.user, union=union),
        "can_edit_members": members.may_edit_members(user=request.user, union=union),
        "form": form,
        # Shown again after a refused dues call: at the union's address, which its links and the language take.
        "page_url": reverse("payroll:union-detail", args=[union.pk]) if request.method == "POST" else "",
    }, status=status)


def _percent(basis_points: int) -> str:
    """Basis points as a percentage for people: 50 -> 0.5%, 6000 -> 60%."""
    from . import union as union_rules

    return f"{union_rules.percent_text(basis_points)}%"


def _union_rules(union) -> dict:
    return {
        "dues_rate": _percent(union.dues_rate_bp),
        "dues_base": union.base_components,
        "funds_rate": _percent(union.funds_rate_bp),
        "grassroots_share": _percent(union.grassroots_share_bp),
        "higher_share": _percent(10000 - union.grassroots_share_bp),
        "dues_in_payroll": union.dues_in_payroll,
    }


@require_POST
@login_required
@writable_required
def union_dues_call(request, union_id: int):
    """Call this month's dues from every authorised member who has none for it yet (a second call collects nothing)."""
    from . import union as union_rules

    union = selectors.union_get(user=request.user, union_id=union_id)  # 404 before anything else
    if not selectors.can_issue_dues_call(user=request.user, union=union):
        raise PermissionDenied("仅工会或用人单位的经办人、复核人可发起会费征收 (only the union's or the employer's "
                               "operators and approvers call dues)")
    form = DuesCallForm(request.POST, current_period=period_of(_business_date()))
    if not form.is_valid():
        return _union_page(request, union, form, status=400)
    period = form.cleaned_data["period"]
    try:
        calls = union_rules.issue_dues_call(union_id=union.pk, period=period, actor=request.user.username,
                                           now=timezone.now())
    except services.PayrollError as exc:  # e.g. the operator does not know a member's wallet
        messages.error(request, _("The dues call was not made: %(reason)s") % {"reason": exc})
        return redirect("payroll:union-detail", union_id=union.pk)
    if calls:
        messages.success(request, _("Dues for %(period)s called from %(count)s member(s), %(total)s in all.") % {
            "period": period, "count": len(calls), "total": format_yuan(sum(c.amount_fen for c in calls))})
    else:
        messages.info(request, _(
            "Nothing to call for %(period)s: every member with a standing authorisation already has dues for "
            "that month.") % {"period": period})
    return redirect(f"{reverse('payroll:union-detail', kwargs={'union_id': union.pk})}?period={period}")


# ---------------------------------------------------------------------------------------------
# Union members: list and search, add, edit, deactivate / reactivate, import from CSV
# ---------------------------------------------------------------------------------------------

MEMBERS_PER_PAGE = 100


@require_safe
@login_required
def union_members(request, union_id: int):
    """The union's members (resident IDs and wallets masked), searched by name or employee number."""
    union = selectors.union_get(user=request.user, union_id=union_id)
    form = MemberSearchForm(request.GET or None)
    search, active = "", None
    if form.is_valid():
        search, active = form.cleaned_data["q"].strip(), form.active()
    page = Paginator(selectors.union_members(union=union, search=search, active=active),
                     MEMBERS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "payroll/union_members.html", {
        "union": union, "form": form, "page": page, "filter_query": query.urlencode(),
        "current_query": request.GET.urlencode(),
        "can_edit": members.may_edit_members(user=request.user, union=union),
    })


def _union_for_editing(request, union_id: int):
    """The union (404 if the user may not see it), if the user may change its members (else 403)."""
    union = selectors.union_get(user=request.user, union_id=union_id)
    if not members.may_edit_members(user=request.user, union=union):
        raise PermissionDenied("仅工会或用人单位的经办人可管理会员 (only the union's or the employer's operators "
                               "manage members)")
    return union


def _member_details(form) -> members.MemberDetails:
    data = form.cleaned_data
    return members.MemberDetails(
        name=data["name"], wallet_id=data["wallet_id"], dues_base_fen=yuan_to_fen(data["dues_base"]),
        standing_authorisation=data["standing_authorisation"], employee_no=data["employee_no"],
        resident_id=data.get("resident_id", ""),
    )


def _show_problems(form, refused) -> None:
    for problem in refused.problems:
        form.add_error(problem.field if problem.field in form.fields else None, problem.message)


@require_http_methods(["GET", "POST"])
@login_required
@writable_required
def union_member_add(request, union_id: int):
    union = _union_for_editing(request, union_id)
    form = UnionMemberForm(request.POST or None, adding=True)
    if request.method == "POST":
        if form.is_valid():
            try:
                member = members.add_member(union_id=union.pk, user=request.user, details=_member_details(form),
                                            now=timezone.now())
            except members.MembersRefused as exc:
                _show_problems(form, exc)
            except OperatorUnavailable as exc:  # the member's wallet is checked with the operator
                form.add_error(None, _refusal_message(exc))
            else:
                messages.success(request, _("Member %(name)s added.") % {"name": member.name})
                return redirect("payroll:union-members", union_id=union.pk)
        return render(request, "payroll/union_member_form.html", {"union": union, "form": form}, status=400)
    return render(request, "payroll/union_member_form.html", {"union": union, "form": form})


@require_http_methods(["GET", "POST"])
@login_required
@writable_required
def union_member_edit(request, union_id: int, member_id: int):
    union = _union_for_editing(request, union_id)
    member = selectors.union_member_get(union=union, member_id=member_id)
    initial = {"employee_no": member.employee_no, "name": member.name, "wallet_id": member.wallet_id,
               "dues_base": fen_to_yuan_str(member.dues_base_fen),
               "standing_authorisation": member.standing_authorisation}
    form = UnionMemberForm(request.POST or None, initial=initial, adding=False)
    if request.method == "POST":
        if form.is_valid():
            try:
                members.update_member(member_id=member.pk, user=request.user, details=_member_details(form),
                                      now=timezone.now())
            except members.MembersRefused as exc:
                _show_problems(form, exc)
            except OperatorUnavailable as exc:
                form.add_error(None, _refusal_message(exc))
            else:
                messages.success(request, _("Member %(name)s saved.") % {"name": form.cleaned_data["name"]})
                return redirect("payroll:union-members", union_id=union.pk)
        status = 400
    else:
        status = 200
    return render(request, "payroll/union_member_form.html", {"union": union, "form": form, "member": member},
                  status=status)


@require_POST
@login_required
@writable_required
def union_member_active(request, union_id: int, member_id: int):
    """Deactivate (`active=0`) or reactivate (`active=1`) a member; members are never deleted."""
    union = _union_for_editing(request, union_id)
    member = selectors.union_member_get(union=union, member_id=member_id)
    active = request.POST.get("active") == "1"
    members.set_member_active(member_id=member.pk, user=request.user, active=active, now=timezone.now())
    if active:
        messages.success(request, _("Member %(name)s is active again.") % {"name": member.name})
    else:
        messages.success(request, _("Member %(name)s deactivated: no more dues are taken, their dues history "
                                    "stays.") % {"name": member.name})
    query = QueryDict(request.POST.get("query", "")).urlencode()  # back to the same search and page
    return redirect(reverse("payroll:union-members", kwargs={"union_id": union.pk}) + (f"?{query}" if query else ""))


@require_http_methods(["GET", "POST"])
@login_required
@writable_required
def union_members_import(request, union_id: int):
    """Import members from a CSV file: all of them, or none and every problem by line and column."""
    union = _union_for_editing(request, union_id)
    form = MemberImportForm(request.POST or None, request.FILES or None)
    problems, problem_count, status = [], 0, 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                added = members.import_members(union_id=union.pk, user=request.user,
                                               data=form.cleaned_data["file"].read(), now=timezone.now())
            except members.MembersRefused as exc:
                problems, problem_count = exc.problems[:members.MAX_PROBLEMS_SHOWN], len(exc.problems)
            except OperatorUnavailable as exc:
                form.add_error("file", _refusal_message(exc))
            else:
                count = len(added)
                messages.success(request, ngettext("%(count)s member imported.", "%(count)s members imported.",
                                                   count) % {"count": count})
                return redirect("payroll:union-members", union_id=union.pk)
    return render(request, "payroll/union_members_import.html", {
        "union": union, "form": form, "problems": problems, "problem_count": problem_count,
        "columns": ", ".join(header for _field, header in members.COLUMNS),  # the file's own headers, as they are
    }, status=status)


@require_safe
@login_required
def union_members_template(request, union_id: int):
    selectors.union_get(user=request.user, union_id=union_id)
    response = HttpResponse(members.members_template_csv(), content_type=REPORT_TYPES["csv"])
    response["Content-Disposition"] = 'attachment; filename="union-members-template.csv"'
    return response
