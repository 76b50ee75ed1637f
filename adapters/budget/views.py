"""Pages of the message log (报文日志): every exchange with the budget-management system.

Finance clerks and approvers, auditors and administrators read it, bodies shown with payees' names and wallets
masked; the exchange as it travelled is a download for auditors and administrators. Nobody changes it.
"""
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from adapters.budget import messagelog, selectors
from adapters.budget.forms import MessageFilterForm
from adapters.budget.models import BudgetMessage
from treasury.access import roles
from treasury.access.decorators import role_required

MESSAGE_ROLES = (roles.FINANCE_CLERK, roles.FINANCE_APPROVER, roles.AUDITOR)
# The exchange as it travelled (payees' names and wallets whole): for those who verify it.
RAW_BODY_ROLES = (roles.AUDITOR, roles.ADMIN)
MESSAGES_PER_PAGE = 50


@require_safe
@login_required
@role_required(*MESSAGE_ROLES)
def message_list(request):
    form = MessageFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    messages = selectors.message_list(operation=filters.get("operation", ""), key=filters.get("key", "").strip(),
                                      outcome=filters.get("outcome", ""))
    page = Paginator(messages, MESSAGES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "budget/message_list.html", {"form": form, "page": page,
                                                        "filter_query": query.urlencode()})


def _message(message_id: int) -> BudgetMessage:
    try:
        return selectors.message_detail(message_id=message_id)
    except BudgetMessage.DoesNotExist:
        raise Http404("no such message")


@require_safe
@login_required
@role_required(*MESSAGE_ROLES)
def message_detail(request, message_id: int):
    message = _message(message_id)
    request_text, request_cut = messagelog.shown_body(messagelog.request_bytes(message))
    response_text, response_cut = messagelog.shown_body(messagelog.response_bytes(message))
    return render(request, "budget/message_detail.html", {
        "message": message, "attempts": selectors.attempts_of(message=message),
        "request_text": request_text, "request_cut": request_cut,
        "response_text": response_text, "response_cut": response_cut,
        "display_max_kib": messagelog.DISPLAY_MAX_BYTES // 1024,
        "may_download": roles.has_role(request.user, *RAW_BODY_ROLES),
    })


@require_safe
@login_required
@role_required(*RAW_BODY_ROLES)
def message_body(request, message_id: int, part: str):
    """The whole request or response as it was sent or received (a download, never rendered), for auditors and
    administrators."""
    message = _message(message_id)
    if part == "request":
        data = messagelog.request_bytes(message)
    elif part == "response":
        data = messagelog.response_bytes(message)
    else:
        raise Http404("no such part")
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="budget-{message.pk}-{part}.xml"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
