"""Declaration pages. Employers: the list, a new declaration (entered, imported or from payroll), the
declaration with its lines, clamping notes, totals, the payroll comparison, actions and the receipt.
Tax staff: every declaration their authority collects (read only); auditors read all.

Views read the request and the clock, ask `social_security.selectors` (scoped: another employer's
declaration is a 404) and call one service per action; a refusal becomes a message on the page.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
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
from treasury.access.scoping import visible_transfers
from treasury.identifiers import mask_name, mask_resident_id
from treasury.receipts.selectors import visible_receipts
from treasury.errors import InvalidTransfers

from . import parsing, selectors, services
from .forms import FilterForm, LineForm, NewDeclarationForm, ReasonForm

PER_PAGE = 50
LINES_PER_PAGE = 100
READ_ROLES = selectors.READ_ROLES
_DONE = {
    "declare": gettext_lazy("Declared; waiting for the tax system's confirmation."),
    "pay": gettext_lazy("Payment started."),
    "reopen": gettext_lazy("Back to draft: it can be changed."),
    "cancel": gettext_lazy("The declaration is cancelled."),
}


def _shows_personal_data(user, declaration) -> bool:
    """Employers see their own staff in full; tax staff and auditors see names and IDs masked."""
    return roles.has_role(user, *selectors.EMPLOYER_ROLES) and not roles.is_read_only(user)


@require_safe
@login_required
@role_required(*READ_ROLES)
def declaration_list(request):
    form = FilterForm(request.GET or None)
    state = period = ""
    if form.is_valid():
        state, period = form.cleaned_data["state"], form.cleaned_data["period"].strip()
    declarations = selectors.declaration_list(user=request.user, state=state, period=period)
    page = Paginator(declarations, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "social_security/declaration_list.html", {
        "page": page, "form": form, "may_prepare": selectors.may_prepare(request.user),
        "staff_view": roles.has_role(request.user, roles.TAX_STAFF, roles.AUDITOR, roles.ADMIN)})


@require_http_methods(["GET", "POST"])
@login_required
@role_required(roles.EMPLOYER_OPERATOR)
@writable_required
def declaration_new(request):
    batches = selectors.payroll_batches(user=request.user)
    choices = [(str(b.pk), f"{b.period} #{b.pk} ({b.get_state_display()})") for b in batches[:50]]
    form = NewDeclarationForm(request.POST or None, request.FILES or None, payroll_choices=choices)
    problems = []
    if request.method == "POST" and form.is_valid():
        data, now = form.cleaned_data, timezone.now()
        try:
            if data["source"] == "imported":
                upload = data["file"]
                declaration = services.import_declaration_file(
                    user=request.user, region_code=data["region"], period=data["period"], data=upload.read(),
                    filename=upload.name, now=now)
            elif data["source"] == "payroll":
                declaration = services.declaration_from_payroll(
                    user=request.user, payroll_batch_id=int(data["payroll_batch"]), region_code=data["region"], now=now)
            else:
                declaration = services.create_declaration(user=request.user, region_code=data["region"],
                                                          period=data["period"], rows=[], now=now)
        except services.DeclarationRefused as exc:
            problems = exc.problems
            messages.error(request, str(exc))
        except parsing.DeclarationFileRefused as exc:
            messages.error(request, f"{exc} ({exc.code})")
        except (services.SocialError, AccessDenied) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Draft declaration %(no)s created.") % {"no": declaration.declaration_no})
            return redirect("social:declaration-detail", declaration_id=declaration.pk)
    refused = request.method == "POST"  # here only when nothing was created
    # A file input cannot be given its file back: the page shown again says which one to choose again.
    not_kept = request.FILES["file"].name if refused and "file" in request.FILES else ""
    return render(request, "social_security/declaration_new.html", {
        "form": form, "problems": problems[:500], "problem_count": len(problems), "file_not_kept": not_kept,
    }, status=400 if refused else 200)


@require_safe
@login_required
@role_required(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER)
def declaration_template(request, file_format: str):
    if file_format == "csv":
        return HttpResponse(parsing.template_csv(), content_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="social-declaration-template.csv"'})
    if file_format == "xlsx":
        return HttpResponse(parsing.template_xlsx(),
                            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                            headers={"Content-Disposition": 'attachment; filename="social-declaration-template.xlsx"'})
    raise Http404("unknown format")


@require_safe
@login_required
@role_required(*READ_ROLES)
def declaration_detail(request, declaration_id: int):
    return _declaration_page(request, selectors.declaration_get(user=request.user, declaration_id=declaration_id))


# A refused line's problem goes under the field of its column (file columns and page fields share the checks).
_FIELD_OF_COLUMN = {"姓名": "name", "身份证号": "resident_id", "缴费基数": "base"}


def _declaration_page(request, declaration, *, line_form=None, status: int = 200):
    """The declaration page; after a refused line, with the bound add-line form (what was typed, and why)."""
    page = Paginator(selectors.declaration_lines(declaration=declaration), LINES_PER_PAGE).get_page(
        request.GET.get("page"))
    full = _shows_personal_data(request.user, declaration)
    for line in page.object_list:
        line.shown_name = line.name if full else mask_name(line.name)
        line.shown_id = line.resident_id if full else mask_resident_id(line.resident_id)
    actions = selectors.declaration_actions(user=request.user, declaration=declaration)
    # The paying transfer and its receipt are the employer's: linked only for whoever may open them (tax staff
    # read the declaration, not the employer's transfers).
    receipt_number = selectors.receipt_number(declaration=declaration)
    if receipt_number and not visible_receipts(request.user).filter(number=receipt_number).exists():
        receipt_number = ""
    transfer_visible = bool(declaration.transfer_id) and visible_transfers(request.user).filter(
        pk=declaration.transfer_id).exists()
    return render(request, "social_security/declaration_detail.html", {
        "declaration": declaration, "page": page, "actions": actions, "line_form": line_form or LineForm(),
        "reason_form": ReasonForm(), "receipt_number": receipt_number, "transfer_visible": transfer_visible,
        "withheld_differences": services.withheld_differences(declaration=declaration).count(),
        "agreement": services.active_agreement(declaration=declaration) if actions.pay else None,
        "page_url": reverse("social:declaration-detail", args=[declaration.pk]) if request.method == "POST" else ""},
        status=status)


@require_POST
@login_required
@role_required(roles.EMPLOYER_OPERATOR)
@writable_required
def declaration_add_line(request, declaration_id: int):
    declaration = selectors.declaration_get(user=request.user, declaration_id=declaration_id)
    form = LineForm(request.POST)
    if not form.is_valid():
        return _declaration_page(request, declaration, line_form=form, status=400)
    try:
        services.add_line(declaration_id=declaration.pk, user=request.user, name=form.cleaned_data["name"],
                          resident_id=form.cleaned_data["resident_id"], base_fen=form.cleaned_data["base"],
                          now=timezone.now())
    except services.DeclarationRefused as exc:
        for problem in exc.problems:
            form.add_error(_FIELD_OF_COLUMN.get(problem.column), problem.message)
        return _declaration_page(request, declaration, line_form=form, status=400)
    except (services.SocialError, AccessDenied) as exc:
        form.add_error(None, str(exc))
        return _declaration_page(request, declaration, line_form=form, status=400)
    messages.success(request, _("Line added."))
    return redirect("social:declaration-detail", declaration_id=declaration.pk)


@require_POST
@login_required
@role_required(roles.EMPLOYER_OPERATOR)
@writable_required
def declaration_remove_line(request, declaration_id: int, line_id: int):
    declaration = selectors.declaration_get(user=request.user, declaration_id=declaration_id)
    try:
        services.remove_line(declaration_id=declaration.pk, user=request.user, line_id=line_id, now=timezone.now())
    except (services.SocialError, AccessDenied) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Line removed."))
    return redirect("social:declaration-detail", declaration_id=declaration.pk)


@require_POST
@login_required
@role_required(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER)
@writable_required
def declaration_action(request, declaration_id: int, action: str):
    """declare / pay (an approver, not the preparer), reopen, cancel (with a reason), by a POST form."""
    declaration = selectors.declaration_get(user=request.user, declaration_id=declaration_id)  # 404 first
    if action not in _DONE:
        raise Http404("unknown action")
    kwargs = {"declaration_id": declaration.pk, "user": request.user, "now": timezone.now()}
    if action == "cancel":
        form = ReasonForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Please give the reason for cancelling the declaration."))
            return redirect("social:declaration-detail", declaration_id=declaration.pk)
        kwargs["reason"] = form.cleaned_data["reason"]
    service = {"declare": services.declare, "pay": services.pay_declaration, "reopen": services.reopen_declaration,
               "cancel": services.cancel_declaration}[action]
    try:
        service(**kwargs)
    except (TransitionNotAllowed, ConcurrentTransition):
        messages.error(request, _("The declaration's state does not allow this; the page shows what it is now."))
    except (services.SocialError, AccessDenied, InvalidTransfers) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _DONE[action])
    return redirect("social:declaration-detail", declaration_id=declaration.pk)


