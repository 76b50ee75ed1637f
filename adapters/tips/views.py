"""The TIPS endpoint (/tips/soap/, its WSDL at ?wsdl) and the pages of the TIPS message log (报文日志).

The endpoint is thin: it reads at most TIPS_MESSAGE_MAX_BYTES and hands the bytes to
`adapters.tips.inbound.handle_soap`. The pages are for tax staff, auditors and administrators, bodies shown with
personal data masked; the message as it travelled is a download for auditors and administrators. Nobody
changes the log.
"""
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from adapters.tips import inbound, messagelog, selectors
from adapters.tips import messages as m
from adapters.tips.forms import MessageFilterForm
from adapters.tips.models import TipsMessage
from treasury.access import roles
from treasury.access.decorators import role_required

MESSAGE_ROLES = (roles.TAX_STAFF, roles.AUDITOR, roles.ADMIN)
# The message as it travelled (personal data whole, the bytes its signature covers): for those who verify it.
RAW_BODY_ROLES = (roles.AUDITOR, roles.ADMIN)
MESSAGES_PER_PAGE = 50
_XML = "text/xml; charset=utf-8"


@csrf_exempt
def soap_endpoint(request):
    """POST: one signed CFX document in, its signed reply out. GET ?wsdl: the WSDL, addressed here."""
    if request.method == "GET" and "wsdl" in {k.lower() for k in request.GET}:
        wsdl = m.served_wsdl(m.BANK_WSDL_PATH, address=request.build_absolute_uri(request.path))
        return HttpResponse(wsdl, content_type=_XML)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    max_bytes = settings.TIPS_MESSAGE_MAX_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = max_bytes + 1
    # Read the stream directly (not request.body: DATA_UPLOAD_MAX_MEMORY_SIZE is for forms) and never
    # more than the limit, so an oversized body is refused without being read.
    body = b"" if length > max_bytes else request.read(max_bytes + 1)
    status, data = inbound.handle_soap(body, content_length=length)
    return HttpResponse(data, status=status, content_type=_XML)


@require_safe
def soap_schema(request, name: str):
    """tips_soap.xsd, next to the WSDL (the served WSDL inlines it; this is for readers who want the file)."""
    if name != "tips_soap":
        raise Http404("no such schema")
    return HttpResponse(m.SOAP_XSD_PATH.read_bytes(), content_type=_XML)


@require_safe
@login_required
@role_required(*MESSAGE_ROLES)
def message_list(request):
    form = MessageFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    messages = selectors.message_list(msg_no=filters.get("msg_no", ""), direction=filters.get("direction", ""),
                                      key=(filters.get("key") or "").strip(),
                                      msg_id=(filters.get("msg_id") or "").strip(), result=filters.get("result", ""))
    page = Paginator(messages, MESSAGES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "tips/message_list.html", {"form": form, "page": page, "filter_query": query.urlencode()})


def _message(message_id: int) -> TipsMessage:
    try:
        return selectors.message_detail(message_id=message_id)
    except TipsMessage.DoesNotExist:
        raise Http404("no such message")


@require_safe
@login_required
@role_required(*MESSAGE_ROLES)
def message_detail(request, message_id: int):
    message = _message(message_id)
    text, cut = messagelog.shown_body(messagelog.body_bytes(message))
    return render(request, "tips/message_detail.html", {
        "message": message, "related": selectors.related_to(message=message), "body_text": text, "body_cut": cut,
        "display_max_kib": messagelog.DISPLAY_MAX_BYTES // 1024,
        "may_download": roles.has_role(request.user, *RAW_BODY_ROLES),
    })


@require_safe
@login_required
@role_required(*RAW_BODY_ROLES)
def message_body(request, message_id: int):
    """The message as it travelled (a download, never rendered), for auditors and administrators."""
    message = _message(message_id)
    response = HttpResponse(messagelog.body_bytes(message), content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="tips-{message.pk}-{message.msg_no or "raw"}.xml"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
