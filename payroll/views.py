"""Employer pages of payroll: upload, history, a batch (report, lines, actions, live progress), approvals.

Views read the request and the clock, ask `payroll.selectors` (already scoped: another employer's
batch is a 404) and call one service per action; a refusal becomes a message on the page, never a 500.
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from treasury.access import roles
from treasury.access.decorators import role_required, writable_required
from treasury.access.errors import AccessDenied
from treasury.access.scoping import user_organization
from treasury.money import fen_to_yuan_str, format_yuan

from . import selectors, services, templates_files
from .models import BatchState as B
from .forms import BATCH_STATE_LABELS, LINE_STATE_LABELS, BatchFilterForm, CancelForm, UploadForm
from .parsing import PayrollFileRefused

BATCHES_PER_PAGE = 50
LINES_PER_PAGE = 100
EMPLOYER_ROLES = (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER, roles.AUDITOR)
REPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _refusal_message(exc: Exception) -> str:
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _("This action is not possible in the batch's current state. The page shows what it is now.")
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
                    employer=employer, user=request.user, filename=uploaded.name, data=uploaded.read(),
                    now=timezone.now(), hold_invalid_lines=form.cleaned_data["hold_invalid_lines"],
                )
            except (services.PayrollError, PayrollFileRefused, AccessDenied) as exc:
                form.add_error("file", str(exc))
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
                return redirect("payroll:batch-detail", batch_id=batch.pk)
    return render(request, "payroll/upload.html", {"form": form}, status=status)


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
        "can_upload": roles.has_role(request.user, roles.EMPLOYER_OPERATOR) and not roles.is_read_only(request.user),
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
    return render(request, "payroll/batch_detail.html", {
        "batch": batch,
        "page": page,
        "actions": actions.available,
        "awaiting_other_approver": actions.awaiting_other_approver,
        "cancel_form": CancelForm(),
        "progress": _progress_data(batch) if batch.state in selectors.PAYING_OR_LATER else None,
        "total_net_yuan": fen_to_yuan_str(batch.total_net_fen),
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
    data = services.error_report(batch=batch, fmt=fmt)
    response = HttpResponse(data, content_type=REPORT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="payroll-{batch.pk}-errors.{fmt}"'
    return response


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
        else:
            raise Http404("unknown action")
    except (services.PayrollError, AccessDenied, TransitionNotAllowed, ConcurrentTransition) as exc:
        messages.error(request, _refusal_message(exc))
    else:
        text = _SUCCESS[action]
        if action == selectors.PAY:
            state = selectors.batch_get(user=request.user, batch_id=batch.pk).state
            text = {B.PAID: _PAID_ALL, B.PARTIALLY_PAID: _PAID_PART}.get(state, text)
        messages.success(request, str(text))
    return redirect(reverse("payroll:batch-detail", kwargs={"batch_id": batch.pk}))


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


@require_safe
@login_required
@role_required(*EMPLOYER_ROLES)
def payslips_zip(request, batch_id: int):
    """Every payslip of a batch in one zip."""
    import io

    from . import payslips

    batch = selectors.batch_get(user=request.user, batch_id=batch_id)
    buffer = io.BytesIO()
    payslips.payslips_zip(batch=batch, out=buffer, now=timezone.now())
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{payslips.payslips_zip_filename(batch=batch)}"'
    return response
